//! Typed server settings with defaults that work on a fresh development machine.
//!
//! The binary fills them from flags and environment variables (see `main.rs`); tests and the
//! harness build them in code.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::inventory::InventoryStrategy;
use crate::notify::NotifySettings;

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
    /// How long a client may take to send a request's head, counted from the moment the
    /// connection waits for one (a new connection, or a kept-alive one after its last answer):
    /// a slowloris client is closed after this.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body once the handler reads it; after
    /// that the answer is `408 body_timeout` and the connection is closed.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight and no byte sent or received for this long is
    /// closed. (hyper also closes a kept-alive connection whose next head has not come within
    /// `header_read_timeout`, so the effective idle limit is the smaller of the two.)
    pub idle_timeout: Duration,
    /// Connections served at once; `None` takes as many as the process's open-file limit leaves
    /// room for (see [`Settings::connection_limit`]). Beyond the limit, new connections are
    /// answered at once with `503 too_many_connections` (`/health` still answers) and closed.
    pub max_connections: Option<usize>,
    /// How often the lifecycle job queue is polled when no job is due (activation and expiration
    /// run at most this late; activation is scheduled ahead of `starts_at` to absorb it).
    pub lifecycle_poll_interval: Duration,
    /// Wishlist alerts: SMTP relay, VAPID key, rates.
    pub notify: NotifySettings,
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
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: None,
            lifecycle_poll_interval: Duration::from_millis(100),
            notify: NotifySettings::default(),
        }
    }
}

/// Connections beyond the limit that are still read (for `/health`) and answered 503 before
/// being closed; past these, a new connection is closed without a word. Counted in
/// [`Settings::reserved_files`].
pub const REFUSAL_SLOTS: usize = 64;

/// The longest duration any setting takes. Far above any sensible timeout, and far below what
/// would overflow an `Instant` or a timer deadline computed from it.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A setting the server cannot run with; each names the setting and the fix. The binary reports
/// these with exit status 2, like a malformed flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "the admin token is empty, so anyone could use the admin routes: set a secret with \
         --admin-token or FLASHSALE_ADMIN_TOKEN"
    )]
    EmptyAdminToken,
    #[error(
        "the built-in development admin token is public, and --listen is {listen}, which is not a \
         loopback address: set your own secret with --admin-token or FLASHSALE_ADMIN_TOKEN, or \
         listen on 127.0.0.1 for development"
    )]
    DevelopmentTokenOffLoopback { listen: SocketAddr },
    #[error("{setting} is {value}, but {rule}: {fix}")]
    OutOfRange {
        /// The flag, or the `Settings` field for settings without one.
        setting: &'static str,
        value: String,
        rule: String,
        fix: String,
    },
}

impl Settings {
    /// Every check a setting must pass before the server starts: the admin token (never empty;
    /// the development one only on a loopback address) and every number the code converts or
    /// builds a timer from, so no setting can panic or overflow once the server runs.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.admin_token.0.trim().is_empty() {
            return Err(SettingsError::EmptyAdminToken);
        }
        if self.uses_development_token() && !self.listen.ip().is_loopback() {
            return Err(SettingsError::DevelopmentTokenOffLoopback {
                listen: self.listen,
            });
        }
        // A buy's quantity is stored as a PostgreSQL `integer` (i32).
        let max_quantity = i32::MAX as u32;
        if !(1..=max_quantity).contains(&self.max_quantity_per_order) {
            return Err(out_of_range(
                "--max-quantity-per-order",
                self.max_quantity_per_order,
                format!(
                    "must be between 1 and {max_quantity} (an order's quantity is a 32-bit integer)"
                ),
                "pass a value in that range (the default is 100)",
            ));
        }
        if self.db_pool_size == 0 {
            return Err(out_of_range(
                "--db-pool-size",
                0,
                "must be at least 1",
                "pass the number of PostgreSQL connections to keep (the default is 32)",
            ));
        }
        let durations = [
            ("--redis-timeout", self.redis_timeout, false),
            ("--units-sync-interval", self.units_sync_interval, false),
            ("--header-read-timeout", self.header_read_timeout, false),
            ("--body-read-timeout", self.body_read_timeout, false),
            ("--idle-timeout", self.idle_timeout, false),
            ("redis_breaker_open_for", self.redis_breaker_open_for, false),
            ("db_acquire_timeout", self.db_acquire_timeout, false),
            // Zero is meaningful here: no caching.
            ("sale_cache_ttl", self.sale_cache_ttl, true),
            (
                "lifecycle_poll_interval",
                self.lifecycle_poll_interval,
                false,
            ),
            ("--notify-send-timeout", self.notify.send_timeout, false),
            ("--notify-claim-lapse", self.notify.claim_lapse, false),
        ];
        for (setting, value, zero_allowed) in durations {
            if (value.is_zero() && !zero_allowed) || value > MAX_DURATION {
                let least = if zero_allowed { "0s" } else { "1ms" };
                return Err(out_of_range(
                    setting,
                    humantime::format_duration(value),
                    format!("must be between {least} and 24h"),
                    "pass a duration in that range, e.g. 10s or 250ms",
                ));
            }
        }
        if self.notify.claim_lapse <= self.notify.send_timeout {
            return Err(out_of_range(
                "--notify-claim-lapse",
                humantime::format_duration(self.notify.claim_lapse),
                format!(
                    "must exceed the send timeout ({}), or a slow send would be taken for a \
                     dead worker's",
                    humantime::format_duration(self.notify.send_timeout)
                ),
                "raise it, or lower --notify-send-timeout",
            ));
        }
        for (setting, value) in [
            ("--notify-rate", self.notify.sends_per_second),
            ("--notify-concurrency", self.notify.concurrency),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(out_of_range(
                    setting,
                    value,
                    "must be between 1 and 100000",
                    "pass a value in that range",
                ));
            }
        }
        if !(1..=1000).contains(&self.notify.max_attempts) {
            return Err(out_of_range(
                "notify.max_attempts",
                self.notify.max_attempts,
                "must be between 1 and 1000",
                "pass a value in that range",
            ));
        }
        if let Some(wanted) = self.max_connections {
            let room = self.connection_room();
            if wanted == 0 || wanted > room {
                return Err(out_of_range(
                    "--max-connections",
                    wanted,
                    format!(
                        "must be between 1 and {room} (the open-file limit, {}, less {} kept for \
                         the database pool, Redis and refusals)",
                        file_limit(),
                        self.reserved_files()
                    ),
                    "raise the open-file limit (ulimit -n) or pass a smaller value; without the \
                     flag the server takes what the limit allows",
                ));
            }
        }
        Ok(())
    }

    /// Whether the admin token is the public development one.
    pub fn uses_development_token(&self) -> bool {
        self.admin_token.0 == DEFAULT_ADMIN_TOKEN
    }

    /// How many connections are served at once: `max_connections`, or all the open-file limit
    /// leaves room for. Past the file limit `accept` fails and every new client hangs, `/health`
    /// included; below it, refusals are quick and answered.
    pub fn connection_limit(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| self.connection_room())
            .max(1)
    }

    /// Files the server needs besides its client connections: the database pool, the refusal
    /// slots, and a margin for Redis, the listener, the runtime and the logs.
    pub fn reserved_files(&self) -> usize {
        self.db_pool_size as usize + REFUSAL_SLOTS + 64
    }

    fn connection_room(&self) -> usize {
        file_limit().saturating_sub(self.reserved_files()).max(1)
    }
}

fn out_of_range(
    setting: &'static str,
    value: impl fmt::Display,
    rule: impl Into<String>,
    fix: impl Into<String>,
) -> SettingsError {
    SettingsError::OutOfRange {
        setting,
        value: value.to_string(),
        rule: rule.into(),
        fix: fix.into(),
    }
}

/// The process's soft limit on open files (each connection is one). Without one, a bound far
/// above any real load.
#[cfg(unix)]
pub fn file_limit() -> usize {
    const UNLIMITED: usize = 1 << 20;
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(UNLIMITED, |n| {
            usize::try_from(n).unwrap_or(UNLIMITED).min(UNLIMITED)
        })
}

#[cfg(not(unix))]
pub fn file_limit() -> usize {
    8192
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Settings {
        Settings {
            admin_token: AdminToken::new("s3cret"),
            ..Settings::default()
        }
    }

    #[test]
    fn the_defaults_are_valid_and_leave_room_for_connections() {
        assert_eq!(Settings::default().validate(), Ok(()));
        assert!(Settings::default().connection_limit() >= 1);
    }

    #[test]
    fn an_empty_admin_token_is_refused() {
        for token in ["", "  "] {
            let settings = Settings {
                admin_token: AdminToken::new(token),
                ..Settings::default()
            };
            assert_eq!(settings.validate(), Err(SettingsError::EmptyAdminToken));
        }
    }

    #[test]
    fn the_development_token_is_refused_off_loopback_only() {
        let mut settings = Settings {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Settings::default()
        };
        let err = settings.validate().unwrap_err();
        assert!(matches!(
            err,
            SettingsError::DevelopmentTokenOffLoopback { .. }
        ));
        assert!(err.to_string().contains("--admin-token"), "{err}");
        settings.listen = "[::1]:8080".parse().unwrap();
        assert_eq!(settings.validate(), Ok(()));
        settings.listen = "0.0.0.0:8080".parse().unwrap();
        settings.admin_token = AdminToken::new("s3cret");
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn settings_that_would_overflow_are_refused_naming_the_flag() {
        let refused = |tweak: &dyn Fn(&mut Settings)| {
            let mut settings = valid();
            tweak(&mut settings);
            settings.validate().unwrap_err().to_string()
        };
        let err = refused(&|s| s.max_quantity_per_order = i32::MAX as u32 + 1);
        assert!(
            err.contains("--max-quantity-per-order") && err.contains("2147483647"),
            "{err}"
        );
        assert!(refused(&|s| s.max_quantity_per_order = 0).contains("--max-quantity-per-order"));
        assert!(refused(&|s| s.db_pool_size = 0).contains("--db-pool-size"));
        assert!(
            refused(&|s| s.units_sync_interval = Duration::ZERO).contains("--units-sync-interval")
        );
        assert!(
            refused(&|s| s.header_read_timeout = Duration::MAX).contains("--header-read-timeout")
        );
        assert!(
            refused(&|s| s.redis_timeout = Duration::from_secs(1 << 40))
                .contains("--redis-timeout")
        );
        assert!(refused(&|s| s.max_connections = Some(0)).contains("--max-connections"));
        assert!(refused(&|s| s.max_connections = Some(usize::MAX)).contains("ulimit"));
        let mut settings = valid();
        settings.max_quantity_per_order = i32::MAX as u32;
        settings.sale_cache_ttl = Duration::ZERO;
        settings.max_connections = Some(1);
        assert_eq!(settings.validate(), Ok(()));
    }

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
