//! Typed server settings with defaults that work on a fresh development machine.
//!
//! The binary fills them from flags and environment variables (see `main.rs`); tests and the
//! harness build them in code.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::inventory::InventoryStrategy;

/// The admin bearer token. Its `Debug` never prints the secret, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Compares in time independent of where the first difference is, so the token cannot be
    /// guessed byte by byte from response times.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to bind; port 0 picks a free port (tests, the harness).
    pub listen: SocketAddr,
    pub database_url: String,
    pub redis_url: String,
    pub admin_token: AdminToken,
    /// The correct strategy: what [`crate::build`] runs, and what a strategy made outside the
    /// server ([`crate::build_with`]) gets to wrap; it also decides whether Redis is connected.
    pub inventory: InventoryStrategy,
    /// How long a Redis call may take before the claim fails over to PostgreSQL (HAZ-6).
    pub redis_timeout: Duration,
    /// Consecutive Redis failures after which claims skip Redis for `redis_breaker_open_for`.
    pub redis_breaker_failures: u32,
    /// How long the breaker keeps claims off a failing Redis before probing it again.
    pub redis_breaker_open_for: Duration,
    /// How often `flash_sales.quantity_sold` is brought in line with the orders.
    pub units_sync_interval: Duration,
    /// Upper bound on the quantity of one order, whatever the sale allows (HAZ-11).
    pub max_quantity_per_order: u32,
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before answering 503.
    pub db_acquire_timeout: Duration,
    /// How long sale metadata (window, state, cap, products) is cached in process.
    pub sale_cache_ttl: Duration,
}

/// The defaults of a fresh development machine, written only here: the binary's flags, the
/// server's tests and the harness all use these.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/flashsale";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
pub const DEFAULT_ADMIN_TOKEN: &str = "flashsale-dev-admin-token";

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            admin_token: AdminToken::new(DEFAULT_ADMIN_TOKEN),
            inventory: InventoryStrategy::Redis,
            redis_timeout: Duration::from_millis(250),
            redis_breaker_failures: 5,
            redis_breaker_open_for: Duration::from_millis(500),
            units_sync_interval: Duration::from_secs(1),
            max_quantity_per_order: 100,
            db_pool_size: 32,
            db_acquire_timeout: Duration::from_secs(5),
            sale_cache_ttl: Duration::from_millis(500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_never_prints_and_compares_exactly() {
        let token = AdminToken::new("s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches("s3creT"));
        assert!(!token.matches(""));
    }
}
