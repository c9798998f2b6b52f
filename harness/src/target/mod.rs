//! The server under test: the reference server started in-process on port 0 with its own
//! database, a service the harness starts itself from a profile's `[service]` commands, or any
//! server at a URL. Whatever it is, a run talks to it through a target profile
//! ([`crate::profile`]), driven by [`driver::Driver`]; [`AdminClient`] is the contract's admin
//! API spoken directly, for the conformance checks and the property tests.

mod admin;
pub mod dependencies;
pub mod driver;
mod in_process;
pub mod server_metrics;
pub mod service;

pub use self::admin::AdminClient;
pub use self::in_process::{InProcessServer, Replicas};

use std::time::Duration;

use flashsale_server::StartError;

/// This machine's defaults, the server's own (any database on that PostgreSQL server will do).
pub use flashsale_server::settings::{DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL};

/// Problems setting up or talking to the target; all of them are exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error(
        "cannot reach PostgreSQL at {url} to create this run's database: {source}. Start \
         PostgreSQL or set DATABASE_URL to a server where the user may create databases"
    )]
    Postgres {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the server at {url} did not answer: {source}. Is it running, and is the URL right?")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what} failed: HTTP {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{what}: the answer did not follow the contract: {problem}")]
    Contract { what: String, problem: String },
    /// What the profile points at is not in the service's answers or database.
    #[error("{0}")]
    Profile(crate::profile::ProfileError),
    #[error("{0}")]
    Setup(String),
}

/// A sale the harness created: its id and the window it asked for (RFC 3339 has the precision
/// the harness sent, so these are the server's own bounds).
#[derive(Debug, Clone)]
pub struct CreatedSale {
    pub id: String,
    pub starts_at: time::OffsetDateTime,
    pub ends_at: time::OffsetDateTime,
}

/// Where the in-process server's dependencies live ([`dependencies::provide`] finds or starts
/// them).
#[derive(Debug, Clone)]
pub struct Dependencies {
    /// Any database URL on the PostgreSQL server to use; the run creates its own database there.
    pub database_url: String,
    pub redis_url: String,
}

impl Dependencies {
    /// From `DATABASE_URL` / `REDIS_URL`, or this machine's defaults.
    pub fn from_env() -> Self {
        Self {
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned()),
            redis_url: std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned()),
        }
    }
}

/// How a run's in-process server differs from the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOverrides {
    /// Redis to use instead of `Dependencies::redis_url` (a container, or the fault proxy).
    pub redis_url: Option<String>,
    /// Reach PostgreSQL through this address (the fault proxy) instead of the URL's host.
    pub postgres_via: Option<std::net::SocketAddr>,
    pub redis_timeout: Option<Duration>,
    /// How often the server writes `quantity_sold` from the ledger (its default here: 250 ms).
    /// A campaign of short generated cases shortens it: each case's end state is read once the
    /// figures agree, so the sync interval is most of what a no-fault case waits for (G8).
    pub units_sync_interval: Option<Duration>,
}

/// Replaces host and port of a URL.
pub(crate) fn with_host_port(url: &str, addr: std::net::SocketAddr) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_host(Some(&addr.ip().to_string()));
            let _ = parsed.set_port(Some(addr.port()));
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// The host and port a PostgreSQL URL points at (for putting a proxy in front of it).
pub fn postgres_addr(url: &str) -> Option<std::net::SocketAddr> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    let port = parsed.port().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{port}").parse().ok()
}

/// Replaces the database name at the end of a PostgreSQL URL.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{database}"));
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_database_replaces_only_the_database_name() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "flashsale_run_1"
            ),
            "postgres://postgres@127.0.0.1:5432/flashsale_run_1"
        );
        assert_eq!(
            with_database("postgres://u:p@db:5433/app?sslmode=disable", "x"),
            "postgres://u:p@db:5433/x?sslmode=disable"
        );
    }

    #[test]
    fn a_proxy_replaces_only_host_and_port() {
        let proxy: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            with_host_port("postgres://postgres@localhost:5432/run_1", proxy),
            "postgres://postgres@127.0.0.1:40000/run_1"
        );
        assert_eq!(
            postgres_addr("postgres://postgres@localhost/x"),
            Some("127.0.0.1:5432".parse().unwrap())
        );
    }
}
