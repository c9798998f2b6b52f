//! The server under test: the reference server started in-process on port 0 with its own
//! database, or any server at a URL that speaks the contract in `server/openapi.json`. Either
//! way the harness talks to it only over HTTP, through [`AdminClient`] for set-up and ground
//! truth.

use std::time::Duration;

use flashsale_mutants::InventoryStrategy;
use flashsale_server::{AdminToken, Settings, StartError};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::ground_truth::{InventoryView, Ledger, LedgerOrder};
use crate::scenario::{Cap, Scenario};

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
}

/// A sale the harness created: its id and the window it asked for (RFC 3339 has the precision
/// the harness sent, so these are the server's own bounds).
#[derive(Debug, Clone)]
pub struct CreatedSale {
    pub id: String,
    pub starts_at: time::OffsetDateTime,
    pub ends_at: time::OffsetDateTime,
}

/// A reference server running inside this process for one run, on its own database.
pub struct InProcessServer {
    pub base_url: String,
    pub admin_token: String,
    database_name: String,
    maintenance_url: String,
    keep_database: bool,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for InProcessServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessServer")
            .field("base_url", &self.base_url)
            .field("database", &self.database_name)
            .finish_non_exhaustive()
    }
}

/// Where the in-process server's dependencies live.
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
}

/// Replaces host and port of a URL.
fn with_host_port(url: &str, addr: std::net::SocketAddr) -> String {
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
fn with_database(url: &str, database: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{database}"));
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

impl InProcessServer {
    /// Starts the reference server with `strategy` on a fresh database `flashsale_run_<uuid>`.
    /// The sale gets a fresh UUID, so its Redis keys are this run's own.
    pub async fn start(
        deps: &Dependencies,
        strategy: InventoryStrategy,
        overrides: &ServerOverrides,
        keep_database: bool,
    ) -> Result<Self, TargetError> {
        let maintenance_url = with_database(&deps.database_url, "postgres");
        // Probe PostgreSQL first so that an unreachable server is reported as such, not as a
        // failure to create a database.
        // One plain connection, not a pool: a pool retries a refused connection for its whole
        // acquire timeout, and a wrong URL should be reported at once.
        let probe = <sqlx::PgConnection as sqlx::Connection>::connect(&maintenance_url)
            .await
            .map_err(|source| TargetError::Postgres {
                url: flashsale_server::redact(&maintenance_url),
                source,
            })?;
        let _ = sqlx::Connection::close(probe).await;
        let database_name = format!("flashsale_run_{}", Uuid::new_v4().simple());
        let admin_token = format!("harness-{}", Uuid::new_v4().simple());
        let mut database_url = with_database(&deps.database_url, &database_name);
        if let Some(addr) = overrides.postgres_via {
            database_url = with_host_port(&database_url, addr);
        }
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().expect("a valid address"),
            database_url,
            redis_url: overrides
                .redis_url
                .clone()
                .unwrap_or_else(|| deps.redis_url.clone()),
            admin_token: AdminToken::new(admin_token.clone()),
            // Quick enough that a run's end state settles (INV-6) within a second or two.
            units_sync_interval: Duration::from_millis(250),
            ..Settings::default()
        };
        if let Some(timeout) = overrides.redis_timeout {
            settings.redis_timeout = timeout;
        }
        let server = flashsale_mutants::build(settings, strategy).await?;
        let base_url = format!("http://{}", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            base_url,
            admin_token,
            database_name,
            maintenance_url,
            keep_database,
            stop: Some(stop),
            served: Some(served),
        })
    }

    pub fn database_name(&self) -> &str {
        &self.database_name
    }

    /// Stops the server and drops its database (unless asked to keep it for inspection).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        if self.keep_database {
            return;
        }
        if let Ok(pool) = PgPool::connect(&self.maintenance_url).await {
            let drop = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database_name
            );
            if let Err(err) = sqlx::query(&drop).execute(&pool).await {
                tracing::warn!(error = %err, database = %self.database_name, "could not drop the run database");
            }
            pool.close().await;
        }
    }
}

/// The admin side of the contract: set-up and ground truth.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, TargetError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| TargetError::Unreachable {
                url: self.base_url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(TargetError::Refused {
                what: what.to_owned(),
                status: status.as_u16(),
                body,
            });
        }
        serde_json::from_str(&body).map_err(|err| TargetError::Contract {
            what: what.to_owned(),
            problem: format!("not JSON: {err}"),
        })
    }

    /// Creates the scenario's sale, open from a second ago for the scenario's window, and
    /// activates it. Returns the sale id.
    pub async fn create_live_sale(&self, scenario: &Scenario) -> Result<String, TargetError> {
        Ok(self.create_scenario_sale(scenario).await?.id)
    }

    /// Creates and activates the scenario's sale: open from a second ago for the scenario's
    /// window, or, with `sale.opens_after`, from that long after the coming doors open (counted
    /// from now, so a little earlier than the doors the run then opens) for `window`.
    pub async fn create_scenario_sale(
        &self,
        scenario: &Scenario,
    ) -> Result<CreatedSale, TargetError> {
        let now = time::OffsetDateTime::now_utc();
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .expect("a UTC time formats")
        };
        let window = time::Duration::try_from(scenario.sale.window).unwrap_or(time::Duration::DAY);
        let cap = match scenario.sale.cap {
            Cap::Limited(cap) => json!(cap),
            Cap::Unlimited => Value::Null,
        };
        let products: Vec<Value> = scenario
            .sale
            .products
            .iter()
            .map(|p| json!({"product_id": p.id, "sale_price_cents": p.price_cents}))
            .collect();
        let starts_at = match scenario.sale.opens_after {
            Some(after) => {
                now + time::Duration::try_from(scenario.arrival.open_after() + after)
                    .unwrap_or(time::Duration::ZERO)
            }
            None => now - time::Duration::seconds(1),
        };
        let ends_at = match scenario.sale.opens_after {
            Some(_) => starts_at + window,
            None => now + window,
        };
        let mut body = json!({
            "name": scenario.name,
            "starts_at": rfc3339(starts_at),
            "ends_at": rfc3339(ends_at),
            "cap": cap,
            "products": products,
        });
        if let Some(limit) = scenario.sale.per_buyer_limit {
            body["per_buyer_limit"] = json!(limit);
        }
        let id = self.create_sale(&body).await?;
        self.activate(&id).await?;
        Ok(CreatedSale {
            id,
            starts_at,
            ends_at,
        })
    }

    /// Creates a sale from a `NewSale` body (see `server/openapi.json`) without activating it.
    /// Returns the sale id.
    pub async fn create_sale(&self, new_sale: &Value) -> Result<String, TargetError> {
        let url = format!("{}/admin/sales", self.base_url);
        let sale = self
            .call("creating the sale", self.http.post(url).json(new_sale))
            .await?;
        sale["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| TargetError::Contract {
                what: "creating the sale".into(),
                problem: "no `id` in the answer".into(),
            })
    }

    /// Activates a sale; returns the `Sale` the server answered with.
    pub async fn activate(&self, sale_id: &str) -> Result<Value, TargetError> {
        let url = format!("{}/admin/sales/{sale_id}/activate", self.base_url);
        self.call("activating the sale", self.http.post(url).json(&json!({})))
            .await
    }

    /// The inventory view alone (sampled during runs, polled until it settles after them).
    pub async fn inventory(&self, sale_id: &str) -> Result<InventoryView, TargetError> {
        let what = "reading the inventory view";
        let url = format!("{}/admin/sales/{sale_id}/inventory", self.base_url);
        let request = self.http.get(url).timeout(Duration::from_secs(2));
        let view = self.call(what, request).await?;
        serde_json::from_value(view).map_err(|err| TargetError::Contract {
            what: what.into(),
            problem: err.to_string(),
        })
    }

    /// The ground truth: the sale's order ledger and inventory view.
    pub async fn ledger(&self, sale_id: &str) -> Result<Ledger, TargetError> {
        let what = "exporting the order ledger";
        let url = format!("{}/admin/sales/{sale_id}/orders", self.base_url);
        let export = self.call(what, self.http.get(url)).await?;
        let orders: Vec<LedgerOrder> =
            serde_json::from_value(export["orders"].clone()).map_err(|err| {
                TargetError::Contract {
                    what: what.into(),
                    problem: err.to_string(),
                }
            })?;
        let what = "reading the inventory view";
        let url = format!("{}/admin/sales/{sale_id}/inventory", self.base_url);
        let view = self.call(what, self.http.get(url)).await?;
        let inventory: InventoryView =
            serde_json::from_value(view).map_err(|err| TargetError::Contract {
                what: what.into(),
                problem: err.to_string(),
            })?;
        Ok(Ledger { orders, inventory })
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
