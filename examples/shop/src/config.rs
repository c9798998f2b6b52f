//! What the shop is told at start-up: the typed [`Config`] the library takes, and the [`Cli`]
//! (flags, each also read from an environment variable) that the binary turns into one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use clap::{Parser, ValueEnum};
use sqlx::postgres::PgConnectOptions;

/// Where the shop listens when nothing says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8090);
/// The machine's own Redis.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";
/// The first segment of every Redis key the shop writes.
pub const DEFAULT_REDIS_PREFIX: &str = "shop";

/// Which implementation of the checkout the shop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// PostgreSQL decides every sale in one guarded transaction; Redis only turns buyers away
    /// early once the drop is sold out.
    Correct,
    /// The classic read-check-write, which oversells under concurrency: it exists so that tests
    /// can show the harness catches it.
    Broken,
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Variant::Correct => "correct",
            Variant::Broken => "broken",
        })
    }
}

/// Everything [`crate::serve`] needs besides its listener.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The address the binary binds. [`crate::serve`] is handed a bound listener and does not
    /// read it; it is here so that one value describes a whole deployment.
    pub listen: SocketAddr,
    /// The PostgreSQL database that holds (or will hold) `shop_drops` and `shop_purchases`.
    pub database_url: String,
    pub redis_url: String,
    /// Every Redis key is `{redis_prefix}:drop:{id}:left`; tests use a prefix of their own.
    pub redis_prefix: String,
    pub variant: Variant,
}

impl Config {
    /// The defaults, on the given database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            database_url: database_url.into(),
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            variant: Variant::Correct,
        }
    }
}

/// The database URL may carry a password, so it is never printed.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &"<not shown>")
            .field("redis_url", &"<not shown>")
            .field("redis_prefix", &self.redis_prefix)
            .field("variant", &self.variant)
            .finish()
    }
}

/// An example flash-sale service with its own API, written for the flashsale harness's tests.
/// It is not a product: see examples/shop/README.md.
#[derive(Debug, Parser)]
#[command(name = "example-shop", version)]
pub struct Cli {
    /// Address to listen on (IP:PORT). Only loopback addresses, unless --allow-public.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8090", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Accept a --listen address other than loopback.
    #[arg(long)]
    pub allow_public: bool,
    /// PostgreSQL URL of the shop's database (tables are created if missing), e.g.
    /// postgres://postgres@127.0.0.1:5432/shop.
    #[arg(long, env = "SHOP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL.
    #[arg(long, env = "SHOP_REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub redis_url: String,
    /// First segment of every Redis key the shop writes.
    #[arg(long, env = "SHOP_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
    /// Checkout implementation: `correct`, or `broken` (oversells on purpose).
    #[arg(long, env = "SHOP_VARIANT", value_enum, default_value = "correct")]
    pub variant: Variant,
}

/// A configuration the shop refuses; each message names the problem and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "no database given: pass --database-url postgres://USER@HOST:PORT/DATABASE or set \
         SHOP_DATABASE_URL"
    )]
    MissingDatabaseUrl,
    #[error(
        "--database-url / SHOP_DATABASE_URL is not a PostgreSQL URL ({reason}): expected \
         postgres://USER@HOST:PORT/DATABASE"
    )]
    BadDatabaseUrl { reason: String },
    #[error(
        "--redis-url / SHOP_REDIS_URL is not a Redis URL ({reason}): expected \
         redis://HOST:PORT/ (default {DEFAULT_REDIS_URL})"
    )]
    BadRedisUrl { reason: String },
    #[error(
        "--redis-prefix / SHOP_REDIS_PREFIX {prefix:?} is not usable: it must be 1 to 100 \
         characters without spaces or control characters, e.g. `shop`"
    )]
    BadRedisPrefix { prefix: String },
    #[error(
        "refusing to listen on {addr}, which is not a loopback address: use 127.0.0.1:PORT, or \
         pass --allow-public if the shop really must be reachable from other machines"
    )]
    PublicListen { addr: SocketAddr },
}

impl Cli {
    /// Checks what clap cannot, and yields the library's [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if !self.allow_public && !self.listen.ip().to_canonical().is_loopback() {
            return Err(ConfigError::PublicListen { addr: self.listen });
        }
        let database_url = self
            .database_url
            .filter(|url| !url.trim().is_empty())
            .ok_or(ConfigError::MissingDatabaseUrl)?;
        check_database_url(&database_url)?;
        redis::Client::open(self.redis_url.as_str()).map_err(|err| ConfigError::BadRedisUrl {
            reason: err.to_string(),
        })?;
        check_redis_prefix(&self.redis_prefix)?;
        Ok(Config {
            listen: self.listen,
            database_url,
            redis_url: self.redis_url,
            redis_prefix: self.redis_prefix,
            variant: self.variant,
        })
    }
}

/// The URL's own text is never echoed: it may hold a password.
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ConfigError::BadDatabaseUrl {
            reason: "it does not start with postgres:// or postgresql://".to_owned(),
        });
    }
    PgConnectOptions::from_str(url)
        .map(|_| ())
        .map_err(|err| ConfigError::BadDatabaseUrl {
            reason: err.to_string(),
        })
}

fn check_redis_prefix(prefix: &str) -> Result<(), ConfigError> {
    let length = prefix.chars().count();
    if (1..=100).contains(&length) && !prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(ConfigError::BadRedisPrefix {
            prefix: prefix.to_owned(),
        })
    }
}

/// `IP:PORT`, or `localhost:PORT` for the IPv4 loopback.
fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let parsed = match raw.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        None => raw.parse().ok(),
    };
    parsed
        .ok_or_else(|| format!("`{raw}` is not an address: expected IP:PORT, e.g. 127.0.0.1:8090"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "postgres://postgres@127.0.0.1:5432/shop";

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["example-shop"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .expect("clap accepts these flags")
            .into_config()
    }

    #[test]
    fn defaults_listen_on_loopback_with_the_correct_variant() {
        let config = parse(&["--database-url", DB]).unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(config.redis_prefix, "shop");
        assert_eq!(config.variant, Variant::Correct);
    }

    #[test]
    fn the_broken_variant_and_localhost_can_be_named() {
        let config = parse(&[
            "--database-url",
            DB,
            "--variant",
            "broken",
            "--listen",
            "localhost:0",
            "--redis-prefix",
            "t-1",
        ])
        .unwrap();
        assert_eq!(config.variant, Variant::Broken);
        assert_eq!(config.listen.port(), 0);
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.redis_prefix, "t-1");
    }

    #[test]
    fn a_public_address_needs_allow_public() {
        let refused = parse(&["--database-url", DB, "--listen", "0.0.0.0:8090"]);
        assert!(matches!(refused, Err(ConfigError::PublicListen { .. })));
        assert!(refused.unwrap_err().to_string().contains("--allow-public"));
        let allowed = parse(&[
            "--database-url",
            DB,
            "--listen",
            "0.0.0.0:8090",
            "--allow-public",
        ]);
        assert!(allowed.is_ok());
        assert!(parse(&["--database-url", DB, "--listen", "[::1]:8090"]).is_ok());
    }

    #[test]
    fn bad_input_is_named_with_its_fix() {
        // Clap refuses these itself (exit status 2 from `Cli::parse`).
        assert!(Cli::try_parse_from(["example-shop", "--variant", "oversell"]).is_err());
        let listen = Cli::try_parse_from(["example-shop", "--listen", "here"]).unwrap_err();
        assert!(listen.to_string().contains("expected IP:PORT"));

        assert_eq!(parse(&[]), Err(ConfigError::MissingDatabaseUrl));
        assert!(parse(&["--database-url", ""]).is_err());
        let mysql = parse(&["--database-url", "mysql://root:secret@db/shop"]).unwrap_err();
        assert!(matches!(mysql, ConfigError::BadDatabaseUrl { .. }));
        assert!(!mysql.to_string().contains("secret"));
        assert!(matches!(
            parse(&["--database-url", DB, "--redis-url", "http://nope"]),
            Err(ConfigError::BadRedisUrl { .. })
        ));
        assert!(matches!(
            parse(&["--database-url", DB, "--redis-prefix", ""]),
            Err(ConfigError::BadRedisPrefix { .. })
        ));
        assert!(matches!(
            parse(&["--database-url", DB, "--redis-prefix", "a b"]),
            Err(ConfigError::BadRedisPrefix { .. })
        ));
    }

    #[test]
    fn the_database_url_is_not_printed() {
        let config = Config::new("postgres://u:hunter2@127.0.0.1/shop");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
