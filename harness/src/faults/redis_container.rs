//! The Redis under test as a testcontainers container, so the harness can kill, stop, pause and
//! restart it (NEM-kill, NEM-stop, NEM-pause).
//!
//! Host networking only: Redis listens on a free loopback port chosen here, and no traffic ever
//! goes to a bridge address. The image is a setting (`FLASHSALE_REDIS_IMAGE`): by default the
//! official `redis:7` when Docker has it, else the image `scripts/docker-setup.sh` builds from
//! this machine's own `redis-server` when it exists (machines that cannot pull), else `redis:7`. The container is removed when
//! this value is dropped, and on Ctrl-C by testcontainers' watchdog.

use std::time::Duration;

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The image `scripts/docker-setup.sh` builds.
pub use crate::target::dependencies::LOCAL_REDIS_IMAGE as LOCAL_IMAGE;
/// The official image, for ordinary Docker hosts.
pub use crate::target::dependencies::OFFICIAL_REDIS_IMAGE as OFFICIAL_IMAGE;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "cannot start the Redis container ({image}): {source}. Redis faults need a Docker engine \
         and the image: run scripts/docker-setup.sh (installs and starts Docker, builds the local \
         image), or set FLASHSALE_REDIS_IMAGE to an image your Docker can run"
    )]
    Start {
        image: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },
    #[error("the Redis container did not {action}: {detail}")]
    Control {
        action: &'static str,
        detail: String,
    },
}

/// Which image to run: `FLASHSALE_REDIS_IMAGE`, else the official one when Docker has it, else
/// the locally built one when Docker has it, else the official one (pulled); the same rule as
/// the services the harness starts when none is running.
pub fn choose_image() -> String {
    crate::target::dependencies::choose_image("FLASHSALE_REDIS_IMAGE", LOCAL_IMAGE, OFFICIAL_IMAGE)
}

pub struct RedisContainer {
    container: ContainerAsync<GenericImage>,
    port: u16,
    image: String,
}

impl std::fmt::Debug for RedisContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisContainer")
            .field("id", &self.container.id())
            .field("port", &self.port)
            .field("image", &self.image)
            .finish()
    }
}

fn free_loopback_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl RedisContainer {
    /// Starts a Redis that keeps nothing on disk (so a restart comes back empty, as NEM-kill
    /// requires) on a free loopback port.
    pub async fn start() -> Result<Self, ContainerError> {
        let image_ref = choose_image();
        let (name, tag) = image_ref
            .rsplit_once(':')
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .unwrap_or((image_ref.clone(), "latest".to_owned()));
        let port = free_loopback_port().map_err(|e| ContainerError::Control {
            action: "get a port",
            detail: e.to_string(),
        })?;
        let container = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_network("host")
            .with_cmd([
                "redis-server".to_owned(),
                "--port".to_owned(),
                port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
            ])
            .with_startup_timeout(Duration::from_secs(30))
            .start()
            .await
            .map_err(|source| ContainerError::Start {
                image: image_ref.clone(),
                source,
            })?;
        Ok(Self {
            container,
            port,
            image: image_ref,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    fn control(
        action: &'static str,
    ) -> impl FnOnce(testcontainers::TestcontainersError) -> ContainerError {
        move |e| ContainerError::Control {
            action,
            detail: e.to_string(),
        }
    }

    /// SIGKILL, no grace (NEM-kill).
    pub async fn kill(&self) -> Result<(), ContainerError> {
        self.container
            .stop_with_timeout(Some(0))
            .await
            .map_err(Self::control("die"))
    }

    /// A graceful stop (NEM-stop).
    pub async fn stop(&self) -> Result<(), ContainerError> {
        self.container
            .stop_with_timeout(Some(2))
            .await
            .map_err(Self::control("stop"))
    }

    /// Starts the stopped container again and waits until Redis answers: it comes back empty.
    pub async fn restart(&self) -> Result<(), ContainerError> {
        self.container
            .start()
            .await
            .map_err(Self::control("start again"))?;
        self.wait_until_answering(Duration::from_secs(15)).await
    }

    pub async fn pause(&self) -> Result<(), ContainerError> {
        self.container.pause().await.map_err(Self::control("pause"))
    }

    pub async fn unpause(&self) -> Result<(), ContainerError> {
        self.container
            .unpause()
            .await
            .map_err(Self::control("unpause"))
    }

    async fn wait_until_answering(&self, within: Duration) -> Result<(), ContainerError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(client) = redis::Client::open(self.url()) {
                let ping = async {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                };
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), ping).await {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ContainerError::Control {
                    action: "answer after restarting",
                    detail: format!("no PONG within {within:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
