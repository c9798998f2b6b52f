//! An example flash-sale service with an API of its own (not the reference server's), written
//! for the flashsale harness's target-profile tests; see README.md. It is not a product.
//!
//! [`serve`] runs it on a bound listener until a shutdown future resolves. The [`Variant`]
//! chooses the checkout: [`Variant::Correct`] (PostgreSQL decides every sale, Redis is a
//! sold-out gate) or [`Variant::Broken`] (a read-check-write that oversells, for the harness to
//! catch).

pub mod checkout;
pub mod config;
pub mod drops;
pub mod gate;
pub mod http;
pub mod reconcile;
pub mod redis_link;
pub mod schema;

use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

pub use config::{Cli, Config, ConfigError, Variant};
pub use schema::prepare_schema;

use drops::DropBook;
use gate::Gate;
use redis_link::RedisLink;

/// PostgreSQL connections. On a small machine more only queue inside PostgreSQL instead.
const POOL_SIZE: u32 = 16;
/// How long a checkout waits for a free connection before it is answered 503: as long as it
/// would wait for PostgreSQL itself.
const ACQUIRE_TIMEOUT: Duration = checkout::DATABASE_DEADLINE;
/// How long start-up waits for PostgreSQL's first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the shop could not start serving; each names the dependency and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot connect to PostgreSQL: {0}. Start it, or point --database-url / \
         SHOP_DATABASE_URL at a database that exists"
    )]
    Database(sqlx::Error),
    #[error(
        "PostgreSQL did not answer within {0:?}. Check that --database-url / SHOP_DATABASE_URL \
         names the right host and port"
    )]
    DatabaseSilent(Duration),
    #[error("cannot create the shop's tables: {0}. The database user needs CREATE on the database")]
    Schema(sqlx::Error),
    #[error("--redis-url / SHOP_REDIS_URL is not usable: {0}")]
    Redis(redis::RedisError),
}

/// Everything a checkout uses.
#[derive(Debug)]
pub struct Shop {
    pub(crate) pool: PgPool,
    pub(crate) drops: DropBook,
    pub(crate) gate: Gate,
    pub(crate) link: RedisLink,
    pub(crate) redis_prefix: String,
    pub(crate) variant: Variant,
}

/// How many connections may wait to be accepted. A flash sale opens with every buyer
/// connecting at once; with the usual 128, the kernel drops the SYNs past it and those buyers
/// wait a whole second for their retransmission.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a backlog fit for a burst of buyers ([`LISTEN_BACKLOG`]).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connects PostgreSQL, creates the schema if missing, then serves on `listener` until
/// `shutdown` resolves. Redis is connected lazily: the correct variant sells through
/// PostgreSQL alone while Redis is away. `config.listen` is not read (the listener is bound).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(&config.database_url).map_err(StartError::Database)?;
    // One connection first, for its error: a pool that cannot connect only says it timed out.
    tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| StartError::DatabaseSilent(CONNECT_TIMEOUT))?
        .map_err(StartError::Database)?
        .close()
        .await
        .map_err(StartError::Database)?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(StartError::Database)?;
    prepare_schema(&pool).await.map_err(StartError::Schema)?;
    let link = RedisLink::open(&config.redis_url).map_err(StartError::Redis)?;
    let shop = Arc::new(Shop {
        gate: Gate::new(link.clone(), config.redis_prefix.clone(), pool.clone()),
        pool: pool.clone(),
        drops: DropBook::default(),
        link,
        redis_prefix: config.redis_prefix,
        variant: config.variant,
    });

    let (stop, stopped) = watch::channel(false);
    let reconcile = (config.variant == Variant::Correct)
        .then(|| tokio::spawn(reconcile::run(shop.clone(), stopped)));
    tracing::info!(variant = %config.variant, addr = ?listener.local_addr().ok(), "example-shop serving");
    let served = axum::serve(listener, http::router(shop))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop.send(true);
    if let Some(reconcile) = reconcile {
        let _ = reconcile.await;
    }
    pool.close().await;
    served.context("serving HTTP")
}
