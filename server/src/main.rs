//! `flashsale-server`: the reference flash-sale server as a process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, ValueEnum};
use flashsale_server::notify::NotifySettings;
use flashsale_server::settings::{DEFAULT_ADMIN_TOKEN, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL};
use flashsale_server::{AdminToken, InventoryStrategy, Settings};

/// jemalloc instead of the C library's allocator: see "Allocator" in server/README.md.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The strategies a deployed server may run. The deliberately broken ones are not listed, so no
/// flag or environment variable can select them, whatever features the binary was built with.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum DeployableStrategy {
    Redis,
    Postgres,
}

/// Reference flash-sale server: Redis + Lua claims, PostgreSQL slot ledger and fallback.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "FLASHSALE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PostgreSQL URL; the database is created and migrated at start-up.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL)]
    redis_url: String,
    /// Bearer token for the admin routes. Set it outside development.
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", default_value = DEFAULT_ADMIN_TOKEN, hide_default_value = true)]
    admin_token: String,
    /// Inventory strategy.
    #[arg(long, env = "FLASHSALE_INVENTORY", value_enum, default_value = "redis")]
    inventory: DeployableStrategy,
    /// How long a Redis call may take before the claim falls back to PostgreSQL (e.g. 250ms).
    #[arg(long, env = "FLASHSALE_REDIS_TIMEOUT", default_value = "250ms", value_parser = humantime::parse_duration)]
    redis_timeout: Duration,
    /// How often quantity_sold is synced from the orders.
    #[arg(long, env = "FLASHSALE_UNITS_SYNC_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    units_sync_interval: Duration,
    /// Largest quantity one order may ask for.
    #[arg(long, env = "FLASHSALE_MAX_QUANTITY", default_value_t = 100)]
    max_quantity_per_order: u32,
    /// PostgreSQL connections.
    #[arg(long, env = "FLASHSALE_DB_POOL_SIZE", default_value_t = 32)]
    db_pool_size: u32,
    /// How long a client may take to send a request's head (also how long a kept-alive
    /// connection may wait for its next one).
    #[arg(long, env = "FLASHSALE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body (then 408 body_timeout).
    #[arg(long, env = "FLASHSALE_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    body_read_timeout: Duration,
    /// How long a connection may sit with nothing in flight before it is closed.
    #[arg(long, env = "FLASHSALE_IDLE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Connections served at once; beyond it new ones get 503 too_many_connections. Default: as
    /// many as the open-file limit leaves room for.
    #[arg(long, env = "FLASHSALE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// SMTP relay for wishlist alert emails, `smtp://host:port`. Without it no email is sent
    /// (planned alerts wait until it is set).
    #[arg(long, env = "FLASHSALE_SMTP_URL")]
    smtp_url: Option<String>,
    /// Sender address of alert emails.
    #[arg(
        long,
        env = "FLASHSALE_MAIL_FROM",
        default_value = "flashsale@localhost"
    )]
    mail_from: String,
    /// VAPID private key for Web Push alerts: the raw 32-byte P-256 key, base64url. Without it
    /// no push message is sent. Keep it stable: browsers subscribe with its public key.
    #[arg(long, env = "FLASHSALE_VAPID_PRIVATE_KEY", hide_env_values = true)]
    vapid_private_key: Option<String>,
    /// How push services reach the operator (VAPID `sub`): a mailto: or https: URL.
    #[arg(
        long,
        env = "FLASHSALE_VAPID_SUBJECT",
        default_value = "mailto:ops@localhost"
    )]
    vapid_subject: String,
    /// Alert sends per second, per channel, at most.
    #[arg(long, env = "FLASHSALE_NOTIFY_RATE", default_value_t = 2000)]
    notify_rate: u32,
    /// Alert sends in flight, per channel, at most.
    #[arg(long, env = "FLASHSALE_NOTIFY_CONCURRENCY", default_value_t = 32)]
    notify_concurrency: u32,
    /// How long one alert send may take before it counts as a temporary failure.
    #[arg(long, env = "FLASHSALE_NOTIFY_SEND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    notify_send_timeout: Duration,
    /// An alert found still being sent this long after it was taken belongs to a server that
    /// died: it is recorded in doubt, never resent. Must exceed --notify-send-timeout.
    #[arg(long, env = "FLASHSALE_NOTIFY_CLAIM_LAPSE", default_value = "60s", value_parser = humantime::parse_duration)]
    notify_claim_lapse: Duration,
}

impl Args {
    fn settings(self) -> Settings {
        Settings {
            listen: self.listen,
            database_url: self.database_url,
            redis_url: self.redis_url,
            admin_token: AdminToken::new(self.admin_token),
            inventory: match self.inventory {
                DeployableStrategy::Redis => InventoryStrategy::Redis,
                DeployableStrategy::Postgres => InventoryStrategy::Postgres,
            },
            redis_timeout: self.redis_timeout,
            units_sync_interval: self.units_sync_interval,
            max_quantity_per_order: self.max_quantity_per_order,
            db_pool_size: self.db_pool_size,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            notify: NotifySettings {
                smtp_url: self.smtp_url,
                mail_from: self.mail_from,
                vapid_private_key: self.vapid_private_key,
                vapid_subject: self.vapid_subject,
                sends_per_second: self.notify_rate,
                concurrency: self.notify_concurrency,
                send_timeout: self.notify_send_timeout,
                claim_lapse: self.notify_claim_lapse,
                ..NotifySettings::default()
            },
            ..Settings::default()
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let settings = Args::parse().settings();
    // A setting the server cannot run with is a usage error, like a malformed flag: clap's
    // format and exit status 2, before any connection is made.
    if let Err(problem) = settings.validate() {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, problem)
            .exit();
    }
    let server = flashsale_server::build(settings)
        .await
        .context("starting the server")?;
    tracing::info!(addr = %server.local_addr(), "flashsale-server listening");
    server.run_until(stop_signal()).await.context("serving")?;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what a service manager or orchestrator sends for a restart): either stops
/// the server gracefully, alerts in flight included.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployed_server_cannot_name_a_broken_strategy() {
        assert!(Args::try_parse_from(["flashsale-server", "--inventory", "broken-naive"]).is_err());
        assert!(Args::try_parse_from(["flashsale-server", "--inventory", "broken-seed"]).is_err());
        let args = Args::try_parse_from(["flashsale-server", "--inventory", "postgres"]).unwrap();
        assert!(matches!(args.inventory, DeployableStrategy::Postgres));
    }

    #[test]
    fn flags_reach_the_settings_and_are_validated_there() {
        let settings = Args::try_parse_from([
            "flashsale-server",
            "--header-read-timeout",
            "300ms",
            "--max-connections",
            "20",
            "--max-quantity-per-order",
            "4294967295",
        ])
        .unwrap()
        .settings();
        assert_eq!(settings.header_read_timeout, Duration::from_millis(300));
        assert_eq!(settings.max_connections, Some(20));
        let problem = settings.validate().unwrap_err().to_string();
        assert!(problem.contains("--max-quantity-per-order"), "{problem}");
    }
}
