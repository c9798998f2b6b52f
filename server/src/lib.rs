//! flashsale reference server: time-boxed sales with a hard unit cap, sold through an atomic
//! Redis + Lua claim with PostgreSQL as the durable slot ledger and the fail-open fallback.
//!
//! Two seams: [`http::router`] builds the app without a socket (tests call it directly), and
//! [`build`] connects the dependencies and binds any listener (port 0 in tests and the harness),
//! returning a [`Server`] that runs until a shutdown future resolves.

pub mod batch;
pub mod db;
pub mod error;
pub mod http;
pub mod inventory;
pub mod jobs;
pub mod ledger;
pub mod orders;
pub mod sales;
pub mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use http::{AppState, router};
pub use inventory::InventoryStrategy;
pub use settings::{AdminToken, Settings};

use inventory::Inventory;
use inventory::breaker::CircuitBreaker;
use inventory::redis::RedisCounter;
use sales::SaleCache;

/// Why the server could not start; each names the dependency and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot reach PostgreSQL at {url}: {source}. Start it (e.g. `pg_ctlcluster 15 main start`) \
         or point DATABASE_URL / --database-url at a running server"
    )]
    Database {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "cannot reach Redis at {url}: {source}. Start it (e.g. `redis-server --daemonize yes`) or \
         point REDIS_URL / --redis-url at a running server"
    )]
    Redis {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A server with its dependencies connected and its socket bound, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

/// Connects PostgreSQL (migrating it) and Redis, and binds the listener.
pub async fn build(settings: Settings) -> Result<Server, StartError> {
    let pool = db::connect_and_migrate(
        &settings.database_url,
        settings.db_pool_size,
        settings.db_acquire_timeout,
    )
    .await
    .map_err(|source| StartError::Database {
        url: redact(&settings.database_url),
        source,
    })?;
    let redis = if settings.inventory.uses_redis() {
        Some(
            RedisCounter::connect(&settings.redis_url, settings.redis_timeout)
                .await
                .map_err(|source| StartError::Redis {
                    url: redact(&settings.redis_url),
                    source,
                })?,
        )
    } else {
        None
    };
    if settings.inventory.is_broken() {
        tracing::warn!(
            strategy = settings.inventory.name(),
            "DELIBERATELY BROKEN inventory strategy: this server oversells; for harness tests only"
        );
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: settings.listen,
            source,
        })?;
    let state = AppState {
        inventory: Arc::new(Inventory::new(
            settings.inventory,
            pool.clone(),
            redis,
            CircuitBreaker::new(
                settings.redis_breaker_failures,
                settings.redis_breaker_open_for,
            ),
            // As long as a buyer may wait for a database connection.
            settings.db_acquire_timeout,
        )),
        sales: Arc::new(SaleCache::new(settings.sale_cache_ttl)),
        pool,
        settings: Arc::new(settings),
    };
    Ok(Server { listener, state })
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops the background jobs and drains connections.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_jobs, jobs_stopped) = watch::channel(false);
        let sync = tokio::spawn(jobs::units_sync::run(
            self.state.pool.clone(),
            self.state.inventory.redis().cloned(),
            self.state.settings.units_sync_interval,
            jobs_stopped,
        ));
        let app = router(self.state);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_jobs.send(true);
        let _ = sync.await;
        served
    }
}

/// A URL with any password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
