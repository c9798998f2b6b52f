//! `spawn_app`: a server on port 0 with a fresh database, plus typed helpers to drive it.

use std::time::Duration;

use flashsale_server::settings::{DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL};
use flashsale_server::{AdminToken, InventoryStrategy, Settings};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn postgres_base() -> String {
    let base = |url: &str| url.rsplit_once('/').map(|(base, _)| base.to_owned());
    std::env::var("DATABASE_URL")
        .ok()
        .and_then(|url| base(&url))
        .unwrap_or_else(|| base(DEFAULT_DATABASE_URL).expect("ends in /<database>"))
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub pool: PgPool,
    pub redis: redis::aio::MultiplexedConnection,
    db_name: String,
    settings: Settings,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub async fn spawn_app(strategy: InventoryStrategy) -> TestApp {
    spawn_app_with(strategy, |_| {}).await
}

/// A server whose background jobs never tick during the test, for tests that set Redis into a
/// particular wrong state and must see the claim path, not the reconcile, deal with it.
pub async fn spawn_app_without_jobs(strategy: InventoryStrategy) -> TestApp {
    spawn_app_with(strategy, |s| {
        s.units_sync_interval = Duration::from_secs(3600)
    })
    .await
}

pub async fn spawn_app_with(
    strategy: InventoryStrategy,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let db_name = format!("fs_test_{}", Uuid::new_v4().simple());
    let database_url = format!("{}/{db_name}", postgres_base());
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        redis_url: redis_url(),
        admin_token: AdminToken::new(ADMIN_TOKEN),
        inventory: strategy,
        db_pool_size: 8,
        units_sync_interval: Duration::from_millis(100),
        ..Settings::default()
    };
    tweak(&mut settings);
    let server = flashsale_server::build(settings.clone())
        .await
        .expect("server starts");
    let base = format!("http://{}", server.local_addr());
    let pool = server.state().pool.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    TestApp {
        base,
        client: Client::new(),
        pool,
        redis,
        db_name,
        settings,
        stop: Some(stop),
        served: Some(served),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a sale open from a second ago for an hour, with one product `tee` at 1500 cents.
    pub async fn create_sale(&self, cap: Option<i64>) -> Uuid {
        let now = time::OffsetDateTime::now_utc();
        self.create_sale_with(json!({
            "name": "test drop",
            "starts_at": fmt(now - time::Duration::seconds(1)),
            "ends_at": fmt(now + time::Duration::hours(1)),
            "cap": cap,
            "products": [{"product_id": "tee", "sale_price_cents": 1500}],
        }))
        .await
    }

    pub async fn create_sale_with(&self, body: Value) -> Uuid {
        let response = self.admin_post("/admin/sales", &body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{:?}",
            response.text().await
        );
        let sale: Value = response.json().await.unwrap();
        sale["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn live_sale(&self, cap: Option<i64>) -> Uuid {
        let id = self.create_sale(cap).await;
        let response = self
            .admin_post(&format!("/admin/sales/{id}/activate"), &json!({}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        id
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn buy(&self, sale: Uuid, key: &str, buyer: &str, quantity: i64) -> Response {
        self.buy_raw(
            sale,
            Some(key),
            json!({"buyer_id": buyer, "quantity": quantity}).to_string(),
        )
        .await
    }

    pub async fn buy_raw(&self, sale: Uuid, key: Option<&str>, body: String) -> Response {
        let mut request = self
            .client
            .post(self.url(&format!("/sales/{sale}/orders")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.unwrap()
    }

    pub async fn orders(&self, sale: Uuid) -> Vec<Value> {
        self.admin_get(&format!("/admin/sales/{sale}/orders")).await["orders"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn inventory(&self, sale: Uuid) -> Value {
        self.admin_get(&format!("/admin/sales/{sale}/inventory"))
            .await
    }

    pub async fn orders_in_database(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn units_in_database(&self, sale: Uuid) -> i64 {
        sqlx::query_scalar(
            "SELECT coalesce(sum(quantity), 0)::bigint FROM orders WHERE sale_id = $1",
        )
        .bind(sale)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn redis_counter(&mut self, sale: Uuid) -> Option<i64> {
        redis::cmd("GET")
            .arg(flashsale_server::inventory::redis::sold_key(sale))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }

    pub async fn redis_cmd(&mut self, cmd: &mut redis::Cmd) {
        let _: redis::Value = cmd.query_async(&mut self.redis).await.unwrap();
    }

    /// Stops the server and drops its database.
    /// Stops the server gracefully (background jobs and alert workers finish what they started),
    /// waits `pause`, and starts a new one on the same database (a new port: `base` changes).
    pub async fn restart(&mut self, pause: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        tokio::time::sleep(pause).await;
        let server = flashsale_server::build(self.settings.clone())
            .await
            .expect("server restarts");
        self.base = format!("http://{}", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        self.served = Some(tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        })));
        self.stop = Some(stop);
    }

    pub async fn admin_put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = served.await;
        }
        self.pool.close().await;
        let admin = PgPool::connect(&format!("{}/postgres", postgres_base()))
            .await
            .unwrap();
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.db_name
        ))
        .execute(&admin)
        .await
        .unwrap();
    }
}

pub fn fmt(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The error code of an error response.
pub async fn error_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("errors are JSON");
    (
        status,
        body["error"]["code"].as_str().expect("a code").to_owned(),
    )
}

/// Fires `n` concurrent single-unit buys with distinct keys; returns (created, sold_out, other).
pub async fn burst(app: &TestApp, sale: Uuid, n: usize) -> (usize, usize, usize) {
    let run = Uuid::new_v4();
    let responses = futures::future::join_all((0..n).map(|i| {
        let key = format!("burst-{run}-{i}");
        async move { app.buy(sale, &key, &format!("buyer-{i}"), 1).await.status() }
    }))
    .await;
    let created = responses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let sold_out = responses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    (created, sold_out, n - created - sold_out)
}

/// A TCP proxy in front of Redis whose replies can be delayed on demand, to stand in for a Redis
/// that hangs without closing its sockets.
pub struct SlowProxy {
    pub url: String,
    delay_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SlowProxy {
    pub async fn start(upstream_url: &str) -> SlowProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = upstream_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}/", listener.local_addr().unwrap());
        let delay_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let delay = delay_ms.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let delay = delay.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let wait = delay.load(Ordering::Relaxed);
                        if wait > 0 {
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SlowProxy { url, delay_ms }
    }

    pub fn delay_replies(&self, by: Duration) {
        self.delay_ms
            .store(by.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}
