//! flashsale reference server: time-boxed sales with a hard unit cap, sold through an atomic
//! Redis + Lua claim with PostgreSQL as the durable slot ledger and the fail-open fallback.
//!
//! Three seams: [`http::router`] builds the app without a socket (tests call it directly);
//! [`build`] connects the dependencies and binds any listener (port 0 in tests and the harness),
//! returning a [`Server`] that runs until a shutdown future resolves; and [`build_with`] does the
//! same with a claim strategy made outside this crate (the harness's mutants), through
//! [`ClaimStrategy`].

pub mod db;
pub mod error;
pub mod http;
pub mod inventory;
pub mod job_queue;
pub mod jobs;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod preflight;
pub mod sales;
mod serve;
pub mod settings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use http::{AppState, AppStateFields, router};
pub use inventory::{ClaimStrategy, Inventory, InventoryStrategy};
pub use settings::{AdminToken, Settings};

use inventory::breaker::CircuitBreaker;
use inventory::redis::RedisCounter;
use sales::SaleCache;
use sqlx::PgPool;

/// Why the server could not start; each names the dependency and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
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
    #[error(transparent)]
    Email(#[from] notify::email::EmailSetupError),
    #[error(transparent)]
    Vapid(#[from] notify::push::VapidKeyError),
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
    /// The alert senders of the channels that are configured.
    senders: Vec<notify::worker::Sender>,
    /// Where alert workers take and record deliveries: the server's own journal unless a test
    /// replaced it ([`Server::with_delivery_journal`]).
    journal: Arc<dyn notify::DeliveryJournal>,
}

/// What a claim strategy is made from, handed to the factory of [`build_with`] once the
/// dependencies are connected.
#[derive(Debug)]
pub struct StrategyParts {
    /// The server's PostgreSQL pool (migrated).
    pub pool: PgPool,
    /// The Redis counter, when `settings.inventory` uses Redis.
    pub redis: Option<RedisCounter>,
    /// The correct inventory for `settings.inventory`, to run as it is or to wrap.
    pub correct: Inventory,
}

/// Connects PostgreSQL (migrating it) and Redis, and binds the listener; claims are decided by
/// the correct [`Inventory`] of `settings.inventory`.
pub async fn build(settings: Settings) -> Result<Server, StartError> {
    build_with(settings, |parts| Arc::new(parts.correct)).await
}

/// [`build`], with the claim strategy made by `strategy` from the connected dependencies (see
/// [`ClaimStrategy`] for what it must do). `settings.inventory` still chooses whether Redis is
/// connected and what [`StrategyParts::correct`] is.
pub async fn build_with(
    settings: Settings,
    strategy: impl FnOnce(StrategyParts) -> Arc<dyn ClaimStrategy>,
) -> Result<Server, StartError> {
    settings.validate()?;
    if settings.uses_development_token() {
        tracing::warn!(
            "the admin routes use the built-in development token, which is public: set your own \
             with --admin-token or FLASHSALE_ADMIN_TOKEN outside development"
        );
    }
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
    let mut senders = Vec::new();
    if let Some(url) = &settings.notify.smtp_url {
        senders.push(notify::worker::Sender::Email(
            notify::email::EmailSender::new(url, &settings.notify)?,
        ));
    }
    if let Some(key) = &settings.notify.vapid_private_key {
        senders.push(notify::worker::Sender::Push(notify::push::PushSender::new(
            key,
            &settings.notify,
        )?));
    }
    let journal: Arc<dyn notify::DeliveryJournal> = Arc::new(notify::journal::PgJournal::new(
        pool.clone(),
        settings.notify.claim_lapse,
        settings.notify.max_attempts,
    ));
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: settings.listen,
            source,
        })?;
    let metrics = Arc::new(metrics::ServerMetrics::new());
    let correct = Inventory::new(
        settings.inventory,
        pool.clone(),
        redis.clone(),
        CircuitBreaker::new(
            settings.redis_breaker_failures,
            settings.redis_breaker_open_for,
        ),
        // As long as a buyer may wait for a database connection.
        settings.db_acquire_timeout,
        metrics.clone(),
    );
    let state = AppState::new(AppStateFields {
        inventory: strategy(StrategyParts {
            pool: pool.clone(),
            redis,
            correct,
        }),
        sales: Arc::new(SaleCache::new(settings.sale_cache_ttl)),
        metrics,
        pool,
        settings,
    });
    Ok(Server {
        listener,
        state,
        senders,
        journal,
    })
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

    /// Replaces the alert workers' journal (the seam the fan-out mutants use; see `mutants/`).
    pub fn with_delivery_journal(
        mut self,
        journal: impl FnOnce(PgPool) -> Arc<dyn notify::DeliveryJournal>,
    ) -> Self {
        self.journal = journal(self.state.pool.clone());
        self
    }

    /// Serves until `shutdown` resolves, then stops the background jobs and drains connections
    /// (see `serve.rs` for the connection limit and the header and idle timeouts).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_jobs, jobs_stopped) = watch::channel(false);
        // The background tasks end with this future: awaited after a graceful stop, aborted if the
        // future is dropped (a crash, or a test killing one replica), never left running on.
        let sync = AbortOnDrop(tokio::spawn(jobs::units_sync::run(
            self.state.pool.clone(),
            self.state.inventory.redis().cloned(),
            self.state.settings.units_sync_interval,
            jobs_stopped,
        )));
        let alerts = Arc::new(tokio::sync::Notify::new());
        let cache = self.state.sales.clone();
        let lifecycle = AbortOnDrop(tokio::spawn(jobs::lifecycle::run(
            self.state.pool.clone(),
            self.state.settings.lifecycle_poll_interval,
            Arc::new(move |sale| cache.invalidate(sale)),
            alerts.clone(),
            stop_jobs.subscribe(),
        )));
        let workers: Vec<_> = self
            .senders
            .into_iter()
            .map(|sender| {
                AbortOnDrop(tokio::spawn(notify::worker::run(
                    self.journal.clone(),
                    sender,
                    self.state.settings.notify.clone(),
                    alerts.clone(),
                    stop_jobs.subscribe(),
                )))
            })
            .collect();
        let limits = serve::Limits::from(&self.state.settings);
        let app = router(self.state.clone());
        let served = serve::serve(self.listener, app, self.state, limits, shutdown).await;
        let _ = stop_jobs.send(true);
        sync.join().await;
        lifecycle.join().await;
        // Alert workers finish and record the sends they started (bounded by the send timeout).
        for worker in workers {
            worker.join().await;
        }
        served
    }
}

/// A spawned task that is aborted when this handle is dropped before it was joined.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    async fn join(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        // A no-op once the task has finished (after `join`).
        self.0.abort();
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
