//! A service the harness starts itself from a profile's `[service]` section, so that fault
//! scenarios can run against it: the harness owns the addresses it is started with (its Redis,
//! possibly a container or the fault proxy; its PostgreSQL, possibly through the proxy and on a
//! fresh database), waits until it answers, and stops it at the end.
//!
//! The service's output goes to a log file under the system's temporary directory, named in
//! every error, because a service that will not start usually says why there.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{TargetError, with_database, with_host_port};
use crate::profile::{Service, Values};

/// The addresses a started service is handed (through `{database_url}` and `{redis_url}`).
#[derive(Debug, Clone, Default)]
pub struct ServiceAddresses {
    /// The database the service uses, as the harness reaches it directly.
    pub database_url: Option<String>,
    /// The same database as the service reaches it (through the PostgreSQL fault proxy, if any).
    pub database_url_for_service: Option<String>,
    /// Redis as the harness reaches it directly.
    pub redis_url: Option<String>,
    /// Redis as the service reaches it (the container, or the fault proxy in front of it).
    pub redis_url_for_service: Option<String>,
}

/// A running service started from a profile.
#[derive(Debug)]
pub struct StartedService {
    pub base_url: String,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready_url: String,
    ready_within: Duration,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// The fresh database created for this run: (maintenance URL, name), dropped at the end.
    fresh_database: Option<(String, String)>,
}

/// The database a service gets for a run: its URL as given, or a fresh one created beside it.
pub async fn service_database(
    service: &Service,
) -> Result<(Option<String>, Option<(String, String)>), TargetError> {
    let Some(url) = service
        .database_url
        .as_ref()
        .map(|t| t.render(&Values::new()))
    else {
        return Ok((None, None));
    };
    if !service.fresh_database {
        return Ok((Some(url), None));
    }
    let maintenance = with_database(&url, "postgres");
    let name = format!("flashsale_svc_{}", Uuid::new_v4().simple());
    let pool = PgPool::connect(&maintenance)
        .await
        .map_err(|source| TargetError::Postgres {
            url: flashsale_server::redact(&maintenance),
            source,
        })?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .map_err(|source| TargetError::Postgres {
            url: flashsale_server::redact(&maintenance),
            source,
        })?;
    pool.close().await;
    Ok((Some(with_database(&url, &name)), Some((maintenance, name))))
}

/// The URL of a database reached through a proxy instead.
pub fn through(url: &str, proxy: std::net::SocketAddr) -> String {
    with_host_port(url, proxy)
}

impl StartedService {
    /// Starts the service and waits until its ready URL answers 2xx.
    pub async fn start(
        service: &Service,
        addresses: &ServiceAddresses,
        fresh_database: Option<(String, String)>,
        run_id: &str,
    ) -> Result<StartedService, TargetError> {
        let port = free_port().map_err(|e| {
            TargetError::Setup(format!(
                "cannot find a free local port for the service: {e}"
            ))
        })?;
        let mut values = Values::new();
        values.insert("service_port", Value::from(port));
        values.insert("run_id", Value::from(run_id));
        let base_url = service.base_url.render(&values);
        values.insert("base_url", Value::from(base_url.trim_end_matches('/')));
        let text = |v: &Option<String>| v.clone().map(Value::from).unwrap_or(Value::Null);
        values.insert("database_url", text(&addresses.database_url_for_service));
        values.insert("redis_url", text(&addresses.redis_url_for_service));
        let mut rendered = service.start.iter().map(|t| t.render(&values));
        let program = rendered.next().unwrap_or_default();
        let started = StartedService {
            base_url: base_url.trim_end_matches('/').to_owned(),
            program,
            args: rendered.collect(),
            env: service
                .env
                .iter()
                .map(|(name, t)| (name.clone(), t.render(&values)))
                .collect(),
            ready_url: service.ready.render(&values),
            ready_within: service.ready_within,
            log: std::env::temp_dir()
                .join(format!("flashsale-service-{}.log", Uuid::new_v4().simple())),
            child: Mutex::new(None),
            fresh_database,
        };
        started.spawn().await?;
        Ok(started)
    }

    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    async fn spawn(&self) -> Result<(), TargetError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| {
                TargetError::Setup(format!(
                    "cannot write the service log {}: {e}",
                    self.log.display()
                ))
            })?;
        let err_log = log
            .try_clone()
            .map_err(|e| TargetError::Setup(e.to_string()))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                TargetError::Setup(format!(
                    "cannot start the service ([service] start: `{}`): {e}",
                    self.program
                ))
            })?;
        *self.child.lock().await = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> Result<(), TargetError> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + self.ready_within;
        loop {
            if let Some(child) = self.child.lock().await.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TargetError::Setup(format!(
                    "the service exited ({status}) before it was ready; its output is in {}",
                    self.log.display()
                )));
            }
            let answer = client
                .get(&self.ready_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TargetError::Setup(format!(
                    "the service did not answer 2xx at {} within {} ([service] ready_within); its \
                     output is in {}",
                    self.ready_url,
                    humantime::format_duration(self.ready_within),
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id of the running service, if it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.as_ref().and_then(Child::id)
    }

    /// SIGKILL, the way a crash ends a process.
    pub async fn kill(&self) -> Result<(), TargetError> {
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = child.kill().await;
        }
        Ok(())
    }

    /// Starts the service again with the same command, and waits until it is ready.
    pub async fn restart(&self) -> Result<(), TargetError> {
        self.kill().await?;
        self.spawn().await
    }

    /// Stops the service (SIGTERM, then SIGKILL after 5 s) and drops its fresh database.
    pub async fn shutdown(&self, keep_database: bool) {
        if let Some(mut child) = self.child.lock().await.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        if let (Some((maintenance, name)), false) = (&self.fresh_database, keep_database)
            && let Ok(pool) = PgPool::connect(maintenance).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if let Err(err) = sqlx::query(&drop).execute(&pool).await {
                tracing::warn!(error = %err, database = %name, "could not drop the service's database");
            }
            pool.close().await;
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
