//! The PostgreSQL and Redis the in-process server runs on: the ones `DATABASE_URL` / `REDIS_URL`
//! name, else the ones answering on this machine's default addresses, else containers the
//! harness starts itself (testcontainers), so that `flashsale run` needs nothing prepared.
//!
//! A started container listens on a free loopback port with host networking (no traffic to a
//! bridge address), keeps nothing on disk, and is removed when [`Provided`] is dropped, or on
//! Ctrl-C by testcontainers' watchdog. Services that are given or already running are used as
//! they are: no container is started next to them.

use std::net::SocketAddr;
use std::time::Duration;

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::{DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Dependencies, postgres_addr};

/// The Redis image `scripts/docker-setup.sh` builds from this machine's `redis-server`.
pub const LOCAL_REDIS_IMAGE: &str = "flashsale-redis-local:7";
/// The official Redis image, for Docker hosts that can pull.
pub const OFFICIAL_REDIS_IMAGE: &str = "redis:7";
/// The PostgreSQL image `scripts/docker-setup.sh` builds from this machine's PostgreSQL.
pub const LOCAL_POSTGRES_IMAGE: &str = "flashsale-postgres-local:latest";
/// The official PostgreSQL image, for Docker hosts that can pull.
pub const OFFICIAL_POSTGRES_IMAGE: &str = "postgres:16";

/// How long a started PostgreSQL may take to accept connections: the official image creates its
/// cluster first, and a pull (on a host that can) comes before that.
const POSTGRES_READY_WITHIN: Duration = Duration::from_secs(90);

/// Why the dependencies could not be had; exit status 2 at the command line.
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error(
        "nothing answers on {addr} ({service}) and {variable} is not set, so the harness tried to \
         start {service} in a container ({image}), which failed: {detail}. Either start \
         {service} there (scripts/ensure-services.sh starts an installed one), set {variable} to \
         a running one, or make Docker available: scripts/docker-setup.sh (as root) installs and \
         starts the engine and builds the local images; on a host that can pull, the official \
         image is used"
    )]
    Container {
        service: &'static str,
        variable: &'static str,
        addr: String,
        image: String,
        detail: String,
    },
}

/// Which image to run: the setting `variable` when set; else the official image when Docker
/// already has it (a host that pulls); else the locally built one when Docker has it (a host that
/// cannot pull, after `scripts/docker-setup.sh`); else the official one, pulled.
pub fn choose_image(variable: &str, local: &str, official: &str) -> String {
    if let Ok(image) = std::env::var(variable)
        && !image.trim().is_empty()
    {
        return image;
    }
    let present = |image: &str| {
        std::process::Command::new("docker")
            .args(["image", "inspect", image])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if present(official) {
        official.to_owned()
    } else if present(local) {
        local.to_owned()
    } else {
        official.to_owned()
    }
}

/// Where to look when nothing is set: normally this machine's defaults; tests point it at
/// addresses where nothing listens, to see the containers started without stopping anything.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub database_url: String,
    pub redis_url: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            redis_url: DEFAULT_REDIS_URL.to_owned(),
        }
    }
}

/// Where one dependency came from, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Named by its environment variable.
    Given,
    /// Found answering on the default address.
    Running,
    /// Started in this container.
    Container { image: String, id: String },
}

/// The dependencies to run on, and the containers started for them: hold this value for as long
/// as they are used; dropping it removes the containers.
pub struct Provided {
    pub deps: Dependencies,
    pub postgres: Source,
    pub redis: Source,
    containers: Vec<ContainerAsync<GenericImage>>,
}

impl std::fmt::Debug for Provided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provided")
            .field("postgres", &self.postgres)
            .field("redis", &self.redis)
            .field("containers", &self.containers.len())
            .finish()
    }
}

impl Provided {
    /// Whether any container was started (and will be removed on drop).
    pub fn started_any(&self) -> bool {
        !self.containers.is_empty()
    }

    /// The ids of the containers started, for checking that they are gone afterwards.
    pub fn container_ids(&self) -> Vec<String> {
        self.containers.iter().map(|c| c.id().to_owned()).collect()
    }
}

/// The dependencies from the process environment (`DATABASE_URL`, `REDIS_URL`), this machine's
/// default addresses, or started containers. `say` receives one line per container, before it
/// starts (a first start of the official images includes a pull).
pub async fn provide(say: &(dyn Fn(String) + Sync)) -> Result<Provided, DependencyError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    provide_with(&env, &Defaults::default(), say).await
}

/// [`provide`] with the environment and the default addresses given.
pub async fn provide_with(
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    defaults: &Defaults,
    say: &(dyn Fn(String) + Sync),
) -> Result<Provided, DependencyError> {
    let postgres = async {
        if let Some(url) = env("DATABASE_URL") {
            return Ok((url, Source::Given, None));
        }
        let addr = postgres_addr(&defaults.database_url);
        if answers(addr).await {
            return Ok((defaults.database_url.clone(), Source::Running, None));
        }
        let shown = addr.map_or_else(|| defaults.database_url.clone(), |a| a.to_string());
        start_postgres(&shown, say).await
    };
    let redis = async {
        if let Some(url) = env("REDIS_URL") {
            return Ok((url, Source::Given, None));
        }
        let addr = redis_addr(&defaults.redis_url);
        if answers(addr).await {
            return Ok((defaults.redis_url.clone(), Source::Running, None));
        }
        let shown = addr.map_or_else(|| defaults.redis_url.clone(), |a| a.to_string());
        start_redis(&shown, say).await
    };
    // Both at once: each start is mostly waiting on Docker.
    let (postgres, redis) = tokio::join!(postgres, redis);
    // A container that did start is dropped (removed) with the error of the other.
    let (database_url, postgres, pg_container) = postgres?;
    let (redis_url, redis, redis_container) = redis?;
    Ok(Provided {
        deps: Dependencies {
            database_url,
            redis_url,
        },
        postgres,
        redis,
        containers: pg_container.into_iter().chain(redis_container).collect(),
    })
}

type Started = (String, Source, Option<ContainerAsync<GenericImage>>);

/// Whether something accepts TCP connections at `addr`. Only a refusal or silence counts as
/// "nothing there": whatever answers is used as today, and a wrong service is reported by the
/// run's own connection error.
async fn answers(addr: Option<SocketAddr>) -> bool {
    let Some(addr) = addr else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

fn redis_addr(url: &str) -> Option<SocketAddr> {
    let parsed = url::Url::parse(url).ok()?;
    let host = match parsed.host_str()? {
        "localhost" => "127.0.0.1",
        host => host,
    };
    format!("{host}:{}", parsed.port().unwrap_or(6379))
        .parse()
        .ok()
}

fn free_loopback_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `name:tag` split for `GenericImage` (a missing tag is `latest`, as Docker reads it).
fn name_and_tag(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image.to_owned(), "latest".to_owned()),
    }
}

async fn start_postgres(
    addr: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<Started, DependencyError> {
    let image = choose_image(
        "FLASHSALE_POSTGRES_IMAGE",
        LOCAL_POSTGRES_IMAGE,
        OFFICIAL_POSTGRES_IMAGE,
    );
    let failed = |detail: String| DependencyError::Container {
        service: "PostgreSQL",
        variable: "DATABASE_URL",
        addr: addr.to_owned(),
        image: image.clone(),
        detail,
    };
    let port = free_loopback_port().map_err(|e| failed(format!("no free port: {e}")))?;
    say(format!(
        "flashsale: nothing answers on {addr} and DATABASE_URL is not set: starting PostgreSQL in \
         a container ({image}) on 127.0.0.1:{port}, removed when this command ends"
    ));
    let (name, tag) = name_and_tag(&image);
    // Readiness is judged by connecting (below), not by a log line: the official image prints
    // "ready to accept connections" once for its set-up server too, which listens on no port.
    let container = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::Nothing)
        .with_network("host")
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_cmd(postgres_command(port))
        .with_startup_timeout(POSTGRES_READY_WITHIN)
        .start()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    wait_for_postgres(&url, POSTGRES_READY_WITHIN)
        .await
        .map_err(failed)?;
    let source = Source::Container {
        image: image.clone(),
        id: container.id().to_owned(),
    };
    Ok((url, source, Some(container)))
}

/// The server's command line: a throw-away instance, so durability is traded for speed
/// (fsync off); enough connections for the harness's pools and a `cargo test` run's parallel
/// tests, like the machine's own server; no JIT (the local image leaves LLVM out).
fn postgres_command(port: u16) -> Vec<String> {
    ["postgres".to_owned(), "-p".to_owned(), port.to_string()]
        .into_iter()
        .chain(
            [
                "listen_addresses=127.0.0.1",
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "jit=off",
                "max_connections=200",
            ]
            .into_iter()
            .flat_map(|setting| ["-c".to_owned(), setting.to_owned()]),
        )
        .collect()
}

async fn wait_for_postgres(url: &str, within: Duration) -> Result<(), String> {
    use sqlx::Connection;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let attempt =
            tokio::time::timeout(Duration::from_secs(2), sqlx::PgConnection::connect(url)).await;
        let last = match attempt {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connection attempt timed out".to_owned(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "it did not accept connections within {within:?} (last: {last})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_redis(
    addr: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<Started, DependencyError> {
    let image = choose_image(
        "FLASHSALE_REDIS_IMAGE",
        LOCAL_REDIS_IMAGE,
        OFFICIAL_REDIS_IMAGE,
    );
    let failed = |detail: String| DependencyError::Container {
        service: "Redis",
        variable: "REDIS_URL",
        addr: addr.to_owned(),
        image: image.clone(),
        detail,
    };
    let port = free_loopback_port().map_err(|e| failed(format!("no free port: {e}")))?;
    say(format!(
        "flashsale: nothing answers on {addr} and REDIS_URL is not set: starting Redis in a \
         container ({image}) on 127.0.0.1:{port}, removed when this command ends"
    ));
    let (name, tag) = name_and_tag(&image);
    let container = GenericImage::new(name, tag)
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .with_network("host")
        .with_cmd(
            [
                "redis-server",
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(str::to_owned),
        )
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let source = Source::Container {
        image: image.clone(),
        id: container.id().to_owned(),
    };
    Ok((
        format!("redis://127.0.0.1:{port}/"),
        source,
        Some(container),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_without_a_tag_is_latest_and_a_registry_port_is_not_a_tag() {
        assert_eq!(
            name_and_tag("postgres:16"),
            ("postgres".to_owned(), "16".to_owned())
        );
        assert_eq!(
            name_and_tag("registry:5000/pg"),
            ("registry:5000/pg".to_owned(), "latest".to_owned())
        );
    }

    #[test]
    fn the_redis_address_defaults_to_its_port() {
        assert_eq!(
            redis_addr("redis://localhost/"),
            Some("127.0.0.1:6379".parse().unwrap())
        );
        assert_eq!(redis_addr("not a url"), None);
    }

    #[tokio::test]
    async fn given_urls_are_used_as_they_are_without_probing_or_starting_anything() {
        let env = |name: &str| match name {
            "DATABASE_URL" => Some("postgres://u@db.invalid:1/x".to_owned()),
            "REDIS_URL" => Some("redis://cache.invalid:1/".to_owned()),
            _ => None,
        };
        let provided = provide_with(&env, &Defaults::default(), &|line: String| {
            panic!("nothing is started, yet: {line}")
        })
        .await
        .unwrap();
        assert_eq!(provided.deps.database_url, "postgres://u@db.invalid:1/x");
        assert_eq!(provided.deps.redis_url, "redis://cache.invalid:1/");
        assert_eq!(
            (provided.postgres, provided.redis),
            (Source::Given, Source::Given)
        );
    }

    #[tokio::test]
    async fn services_answering_on_the_defaults_are_used_and_nothing_is_started() {
        let postgres = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let redis = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let defaults = Defaults {
            database_url: format!(
                "postgres://postgres@{}/postgres",
                postgres.local_addr().unwrap()
            ),
            redis_url: format!("redis://{}/", redis.local_addr().unwrap()),
        };
        let provided = provide_with(&|_| None, &defaults, &|line: String| {
            panic!("nothing is started, yet: {line}")
        })
        .await
        .unwrap();
        assert_eq!(
            (provided.postgres.clone(), provided.redis.clone()),
            (Source::Running, Source::Running)
        );
        assert_eq!(provided.deps.database_url, defaults.database_url);
        assert!(!provided.started_any());
    }
}
