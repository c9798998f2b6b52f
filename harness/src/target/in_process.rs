//! The reference server started inside the harness's process for one run, on port 0 and a
//! database of its own; with replicas, several servers on that one database and one Redis, as a
//! fleet behind a load balancer would be.

use std::sync::Arc;
use std::time::Duration;

use flashsale_mutants::InventoryStrategy;
use flashsale_server::{AdminToken, Settings};
use sqlx::PgPool;
use tokio::sync::{Mutex, oneshot};
use uuid::Uuid;

use super::{Dependencies, ServerOverrides, TargetError, with_database, with_host_port};

/// A reference server running inside this process for one run, on its own database.
pub struct InProcessServer {
    /// The first replica's: where the harness sets the sale up and reads the ledger.
    pub base_url: String,
    /// Every replica's, the first included: where buyers go.
    pub replica_urls: Vec<String>,
    pub admin_token: String,
    database_name: String,
    maintenance_url: String,
    keep_database: bool,
    replicas: Arc<Replicas>,
}

/// The running replicas, which a fault may kill and start again (NEM-kill-replica).
pub struct Replicas {
    settings: Settings,
    strategy: InventoryStrategy,
    slots: Mutex<Vec<ReplicaSlot>>,
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas").finish_non_exhaustive()
    }
}

struct ReplicaSlot {
    addr: std::net::SocketAddr,
    /// `None` while the replica is down.
    running: Option<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
}

impl Replicas {
    async fn launch(
        &self,
        listen: std::net::SocketAddr,
    ) -> Result<
        (
            std::net::SocketAddr,
            (
                oneshot::Sender<()>,
                tokio::task::JoinHandle<std::io::Result<()>>,
            ),
        ),
        TargetError,
    > {
        let mut settings = self.settings.clone();
        settings.listen = listen;
        let server = flashsale_mutants::build(settings, self.strategy).await?;
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        Ok((addr, (stop, served)))
    }

    /// How many replicas there are, up or down.
    pub async fn count(&self) -> usize {
        self.slots.lock().await.len()
    }

    /// Kills replica `index` as a crash would: its serving task and background jobs are dropped
    /// mid-flight (requests in progress are abandoned, connections reset, nothing drains).
    pub async fn kill(&self, index: usize) -> Result<(), String> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .get_mut(index)
            .ok_or_else(|| format!("there is no replica {index}"))?;
        let (_stop, served) = slot
            .running
            .take()
            .ok_or_else(|| format!("replica {index} is already down"))?;
        served.abort();
        let _ = served.await;
        Ok(())
    }

    /// Starts replica `index` again on its port (buyers keep their replica).
    pub async fn restart(&self, index: usize) -> Result<(), String> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .get_mut(index)
            .ok_or_else(|| format!("there is no replica {index}"))?;
        if slot.running.is_some() {
            return Ok(());
        }
        // The port was just released; binding it again can take a moment.
        let mut last_error = String::new();
        for _ in 0..50 {
            match self.launch(slot.addr).await {
                Ok((_, running)) => {
                    slot.running = Some(running);
                    return Ok(());
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("replica {index} did not start again: {last_error}"))
    }

    async fn shutdown(&self) {
        let mut slots = self.slots.lock().await;
        let running: Vec<_> = slots.iter_mut().filter_map(|s| s.running.take()).collect();
        for (stop, served) in running {
            let _ = stop.send(());
            let _ = served.await;
        }
    }
}

impl std::fmt::Debug for InProcessServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessServer")
            .field("base_url", &self.base_url)
            .field("database", &self.database_name)
            .finish_non_exhaustive()
    }
}

impl InProcessServer {
    /// Starts the reference server with `strategy` on a fresh database `flashsale_run_<uuid>`.
    /// The sale gets a fresh UUID, so its Redis keys are this run's own.
    pub async fn start(
        deps: &Dependencies,
        strategy: InventoryStrategy,
        overrides: &ServerOverrides,
        keep_database: bool,
    ) -> Result<Self, TargetError> {
        Self::start_replicas(deps, strategy, overrides, keep_database, 1).await
    }

    /// [`InProcessServer::start`] with `replicas` servers (at least one) sharing the database and
    /// Redis, each on its own port, started one after the other (the first creates and migrates
    /// the database).
    pub async fn start_replicas(
        deps: &Dependencies,
        strategy: InventoryStrategy,
        overrides: &ServerOverrides,
        keep_database: bool,
        replicas: usize,
    ) -> Result<Self, TargetError> {
        let maintenance_url = with_database(&deps.database_url, "postgres");
        // Probe PostgreSQL first so that an unreachable server is reported as such, not as a
        // failure to create a database.
        // One plain connection, not a pool: a pool retries a refused connection for its whole
        // acquire timeout, and a wrong URL should be reported at once.
        let probe = <sqlx::PgConnection as sqlx::Connection>::connect(&maintenance_url)
            .await
            .map_err(|source| TargetError::Postgres {
                url: flashsale_server::redact(&maintenance_url),
                source,
            })?;
        let _ = sqlx::Connection::close(probe).await;
        let database_name = format!("flashsale_run_{}", Uuid::new_v4().simple());
        let admin_token = format!("harness-{}", Uuid::new_v4().simple());
        let mut database_url = with_database(&deps.database_url, &database_name);
        if let Some(addr) = overrides.postgres_via {
            database_url = with_host_port(&database_url, addr);
        }
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            database_url,
            redis_url: overrides
                .redis_url
                .clone()
                .unwrap_or_else(|| deps.redis_url.clone()),
            admin_token: AdminToken::new(admin_token.clone()),
            // Quick enough that a run's end state settles (INV-6) within a second or two.
            units_sync_interval: Duration::from_millis(250),
            ..Settings::default()
        };
        if let Some(timeout) = overrides.redis_timeout {
            settings.redis_timeout = timeout;
        }
        if let Some(interval) = overrides.units_sync_interval {
            settings.units_sync_interval = interval;
        }
        // Replicas share one PostgreSQL, as a fleet does: together they keep the connections one
        // server would (PostgreSQL's default limit is 100, and tests run side by side), at least
        // 8 each.
        let replicas = replicas.max(1);
        settings.db_pool_size = (settings.db_pool_size / replicas as u32).max(8);
        let control = Replicas {
            settings,
            strategy,
            slots: Mutex::new(Vec::new()),
        };
        let mut replica_urls = Vec::new();
        let mut slots = Vec::new();
        for _ in 0..replicas {
            let (addr, running) = control.launch(control.settings.listen).await?;
            replica_urls.push(format!("http://{addr}"));
            slots.push(ReplicaSlot {
                addr,
                running: Some(running),
            });
        }
        *control.slots.lock().await = slots;
        Ok(Self {
            base_url: replica_urls[0].clone(),
            replica_urls,
            admin_token,
            database_name,
            maintenance_url,
            keep_database,
            replicas: Arc::new(control),
        })
    }

    /// The replicas, for the faults that act on them.
    pub fn replicas(&self) -> Arc<Replicas> {
        self.replicas.clone()
    }

    pub fn database_name(&self) -> &str {
        &self.database_name
    }

    /// Stops the server and drops its database (unless asked to keep it for inspection).
    pub async fn shutdown(self) {
        self.replicas.shutdown().await;
        if self.keep_database {
            return;
        }
        if let Ok(pool) = PgPool::connect(&self.maintenance_url).await {
            let drop = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database_name
            );
            if let Err(err) = sqlx::query(&drop).execute(&pool).await {
                tracing::warn!(error = %err, database = %self.database_name, "could not drop the run database");
            }
            pool.close().await;
        }
    }
}
