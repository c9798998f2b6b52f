//! The fixture: every test gets a shop of its own (a fresh database `shop_test_<uuid>`, a Redis
//! prefix of its own, a port chosen by the OS), buyers that talk HTTP to it, and direct SQL and
//! Redis access to check what it did.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flashsale_example_shop::{Config, Variant, bind, gate::left_key, serve};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Barrier, oneshot};
use tokio::task::JoinHandle;

/// The PostgreSQL server (without a database name) and the Redis the tests use.
fn postgres() -> String {
    std::env::var("SHOP_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("SHOP_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// The test PostgreSQL's address, for a proxy in front of it.
pub fn postgres_addr() -> SocketAddr {
    address_in(&postgres(), "postgres://", "SHOP_TEST_POSTGRES")
}

/// The test Redis's address, for a proxy in front of it.
pub fn redis_addr() -> SocketAddr {
    address_in(&redis_url(), "redis://", "SHOP_TEST_REDIS")
}

/// `IP:PORT` out of `scheme[user@]IP:PORT[/...]`.
fn address_in(url: &str, scheme: &str, variable: &str) -> SocketAddr {
    let authority = url
        .trim_start_matches(scheme)
        .split('/')
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    host_port.parse().unwrap_or_else(|_| {
        panic!("{variable} {url:?} does not name IP:PORT (a proxy needs an address)")
    })
}

/// The sku every test drop sells unless a test says otherwise.
pub const SKU: &str = "SKU-1";

/// A drop to insert, as an operator would by SQL.
#[derive(Debug, Clone)]
pub struct NewDrop {
    pub stock: i32,
    pub sku: &'static str,
    pub max_per_customer: Option<i32>,
    /// Seconds from now (negative: in the past).
    pub opens_in: f64,
    pub closes_in: f64,
    pub is_open: bool,
}

impl Default for NewDrop {
    fn default() -> Self {
        Self {
            stock: 10,
            sku: SKU,
            max_per_customer: None,
            opens_in: -60.0,
            closes_in: 3600.0,
            is_open: true,
        }
    }
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn result(&self) -> Option<&str> {
        self.body["result"].as_str()
    }

    pub fn problem(&self) -> Option<&str> {
        self.body["problem"]["type"].as_str()
    }

    /// The purchase reference of a confirmed answer.
    pub fn reference(&self) -> Option<&str> {
        self.body["purchase"]["ref"].as_str()
    }

    pub fn replayed(&self) -> bool {
        self.body["replayed"] == json!(true)
    }
}

/// A checkout to send: path id, body, optional `X-Request-Key`.
#[derive(Debug, Clone)]
pub struct Buy {
    pub drop: String,
    pub body: Value,
    pub key: Option<String>,
}

/// A well-formed checkout of `units` of the default sku.
pub fn buy(drop: i64, customer: impl Display, units: i64, key: Option<String>) -> Buy {
    Buy {
        drop: drop.to_string(),
        body: json!({"customer_id": customer.to_string(), "sku": SKU, "units": units}),
        key,
    }
}

/// A row of `shop_purchases`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PurchaseRow {
    #[sqlx(rename = "ref")]
    pub reference: String,
    pub customer: String,
    pub units: i32,
    pub request_key: Option<String>,
}

pub struct TestShop {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    /// The test's own connections to the shop's database.
    pub db: PgPool,
    pub prefix: String,
    redis: redis::aio::MultiplexedConnection,
    /// Shared by the shops of one test; the last one to finish removes it.
    database: Option<Arc<TestDatabase>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestShop {
    pub async fn start(variant: Variant) -> Self {
        Self::start_with(variant, &redis_url()).await
    }

    /// A shop whose Redis is `shop_redis` (the test itself always uses the real one).
    pub async fn start_with(variant: Variant, shop_redis: &str) -> Self {
        Self::start_on(TestDatabase::create().await, variant, shop_redis, None).await
    }

    /// A shop that reaches PostgreSQL through `postgres_via` (a proxy in front of the test
    /// PostgreSQL); the test's own connections go straight to it.
    pub async fn start_via(variant: Variant, postgres_via: SocketAddr) -> Self {
        Self::start_on(
            TestDatabase::create().await,
            variant,
            &redis_url(),
            Some(postgres_via),
        )
        .await
    }

    /// A correct and a broken shop on one database (each with its own drops and Redis prefix),
    /// for tests that hold both variants to the same contract: one database to create instead
    /// of two, which is most of a small test's time.
    pub async fn start_both() -> (Self, Self) {
        let database = TestDatabase::create().await;
        let correct = Self::start_on(database.clone(), Variant::Correct, &redis_url(), None).await;
        let broken = Self::start_on(database, Variant::Broken, &redis_url(), None).await;
        (correct, broken)
    }

    async fn start_on(
        database: Arc<TestDatabase>,
        variant: Variant,
        shop_redis: &str,
        postgres_via: Option<SocketAddr>,
    ) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database_url = database.url();
        let shop_database_url = match postgres_via {
            Some(via) => format!("postgres://postgres@{via}/{}", database.name),
            None => database_url.clone(),
        };
        let prefix = format!("shop-test-{id}");

        let listener = bind(([127, 0, 0, 1], 0).into()).expect("bind a port");
        let addr = listener.local_addr().expect("bound");
        let config = Config {
            listen: addr,
            database_url: shop_database_url,
            redis_url: shop_redis.to_owned(),
            redis_prefix: prefix.clone(),
            variant,
        };
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(config, listener, async {
            let _ = stop.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let base = format!("http://{addr}");
        let mut shop = Self {
            addr,
            base,
            client,
            db: PgPoolOptions::new()
                .max_connections(4)
                .connect_lazy(&database_url)
                .expect("database URL"),
            prefix,
            redis: redis::Client::open(redis_url())
                .expect("Redis URL")
                .get_multiplexed_async_connection()
                .await
                .expect("Redis on 127.0.0.1:6379; see SHOP_TEST_REDIS"),
            database: Some(database),
            shutdown: Some(shutdown),
            server: Some(server),
        };
        shop.wait_until_serving().await;
        shop
    }

    /// `serve` answers once the schema exists; until then the listener only queues.
    async fn wait_until_serving(&mut self) {
        for _ in 0..500 {
            if let Ok(response) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                assert_eq!(response.status(), 200);
                return;
            }
            if self.server.as_ref().is_some_and(JoinHandle::is_finished) {
                let ended = self.server.take().expect("server").await;
                panic!("the shop stopped before serving: {ended:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the shop did not answer /healthz within 10 s");
    }

    pub async fn create_drop(&self, drop: NewDrop) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO shop_drops
                 (title, sku, price_cents, stock, max_per_customer, opens_at, closes_at, is_open)
             VALUES ('Test drop', $1, 4900, $2, $3,
                     now() + make_interval(secs => $4), now() + make_interval(secs => $5), $6)
             RETURNING id",
        )
        .bind(drop.sku)
        .bind(drop.stock)
        .bind(drop.max_per_customer)
        .bind(drop.opens_in)
        .bind(drop.closes_in)
        .bind(drop.is_open)
        .fetch_one(&self.db)
        .await
        .expect("insert a drop")
    }

    pub async fn send(&self, request: &Buy) -> Answer {
        send(&self.client, &self.base, request).await
    }

    /// A raw POST to the checkout route, for malformed requests.
    pub async fn post_raw(
        &self,
        drop: &str,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &[u8])],
    ) -> Answer {
        let mut post = self
            .client
            .post(format!("{}/api/v2/drops/{drop}/checkout", self.base))
            .body(body);
        for (name, value) in headers {
            post = post.header(
                *name,
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        answer(post.send().await.expect("the shop answers")).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("the shop answers"),
        )
        .await
    }

    /// Sends every request at one instant ("doors open"): each buyer opens its own connection
    /// first and waits at a barrier, so requests do not trickle in behind TCP handshakes.
    /// Answers come back in the order of `requests`. Plain HTTP/1.1 over a socket, not reqwest:
    /// a thousand buyers at once are mostly client work otherwise, and this is a 2-core machine.
    pub async fn burst(&self, requests: Vec<Buy>) -> Vec<Answer> {
        let doors = Arc::new(Barrier::new(requests.len()));
        let buyers: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let (addr, doors) = (self.addr, doors.clone());
                let bytes = raw_request(&request);
                tokio::spawn(async move {
                    let mut stream = TcpStream::connect(addr).await.expect("connect to the shop");
                    doors.wait().await;
                    stream.write_all(&bytes).await.expect("send");
                    let mut response = Vec::new();
                    stream
                        .read_to_end(&mut response)
                        .await
                        .expect("read the answer");
                    raw_answer(&response)
                })
            })
            .collect();
        let mut answers = Vec::with_capacity(buyers.len());
        for buyer in buyers {
            answers.push(buyer.await.expect("buyer"));
        }
        answers
    }

    pub async fn purchases(&self, drop: i64) -> Vec<PurchaseRow> {
        sqlx::query_as(
            "SELECT ref, customer, units, request_key FROM shop_purchases
              WHERE drop_id = $1 ORDER BY id",
        )
        .bind(drop)
        .fetch_all(&self.db)
        .await
        .expect("read the ledger")
    }

    /// `shop_drops.sold`, the shop's own count.
    pub async fn sold(&self, drop: i64) -> i32 {
        sqlx::query_scalar("SELECT sold FROM shop_drops WHERE id = $1")
            .bind(drop)
            .fetch_one(&self.db)
            .await
            .expect("read sold")
    }

    pub async fn execute(&self, sql: &str, drop: i64) {
        sqlx::query(sql)
            .bind(drop)
            .execute(&self.db)
            .await
            .expect("SQL by hand");
    }

    pub fn left_key(&self, drop: i64) -> String {
        left_key(&self.prefix, drop)
    }

    /// The shop's Redis count for the drop; `None` when the key is missing.
    pub async fn redis_left(&self, drop: i64) -> Option<i64> {
        let mut redis = self.redis.clone();
        redis::cmd("GET")
            .arg(self.left_key(drop))
            .query_async(&mut redis)
            .await
            .expect("Redis GET")
    }

    pub async fn redis_set(&self, drop: i64, left: i64) {
        let mut redis = self.redis.clone();
        let () = redis::cmd("SET")
            .arg(self.left_key(drop))
            .arg(left)
            .query_async(&mut redis)
            .await
            .expect("Redis SET");
    }

    pub async fn redis_delete(&self, drop: i64) {
        let mut redis = self.redis.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.left_key(drop))
            .query_async(&mut redis)
            .await
            .expect("Redis DEL");
    }

    /// Polls the Redis count until it equals `expected` (the reconcile task runs every 250 ms)
    /// or `within` passes; returns the last value seen.
    pub async fn settled_left(&self, drop: i64, expected: i64, within: Duration) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = self.redis_left(drop).await;
            if left == Some(expected) || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the shop (it must stop cleanly) and removes its Redis keys, and its database if
    /// no other shop of the test still uses it.
    pub async fn finish(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let stopped = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the shop stops within 10 s of its shutdown signal");
            stopped
                .expect("server task")
                .expect("the shop served without error");
        }
        self.db.close().await;
        remove_keys(&self.prefix).await;
        if let Some(database) = self.database.take().and_then(Arc::into_inner) {
            database.remove().await;
        }
    }
}

/// A test that failed before `finish` still removes what it made (best effort, on a thread of
/// its own: `Drop` cannot await).
impl Drop for TestShop {
    fn drop(&mut self) {
        let Some(database) = self.database.take() else {
            return;
        };
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let prefix = self.prefix.clone();
        let cleanup = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async {
                    remove_keys(&prefix).await;
                    if let Some(database) = Arc::into_inner(database) {
                        database.remove().await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

/// A database `shop_test_<uuid>` of the test's own, made through the `postgres` maintenance
/// database.
struct TestDatabase {
    name: String,
}

impl TestDatabase {
    async fn create() -> Arc<Self> {
        let name = format!("shop_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", postgres()))
            .await
            .expect(
                "PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth); see SHOP_TEST_POSTGRES",
            );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        // A test's database is thrown away: waiting for each commit to reach the disk would
        // only make the bursts slow (a thousand oversold purchases are two thousand commits).
        admin
            .execute(format!("ALTER DATABASE {name} SET synchronous_commit = off").as_str())
            .await
            .expect("configure the test database");
        admin.close().await.ok();
        Arc::new(Self { name })
    }

    fn url(&self) -> String {
        format!("{}/{}", postgres(), self.name)
    }

    async fn remove(self) {
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", postgres())).await {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
                .await;
            let _ = admin.close().await;
        }
    }
}

async fn remove_keys(prefix: &str) {
    if let Ok(client) = redis::Client::open(redis_url()) {
        if let Ok(mut redis) = client.get_multiplexed_async_connection().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query_async(&mut redis)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut redis).await;
            }
        }
    }
}

async fn send(client: &reqwest::Client, base: &str, request: &Buy) -> Answer {
    let mut post = client
        .post(format!("{base}/api/v2/drops/{}/checkout", request.drop))
        .json(&request.body);
    if let Some(key) = &request.key {
        post = post.header("X-Request-Key", key);
    }
    answer(post.send().await.expect("the shop answers")).await
}

/// One request, closing the connection after its answer.
fn raw_request(request: &Buy) -> Vec<u8> {
    let body = request.body.to_string();
    let key = request
        .key
        .as_ref()
        .map(|key| format!("X-Request-Key: {key}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /api/v2/drops/{}/checkout HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{key}Connection: close\r\n\r\n{body}",
        request.drop,
        body.len()
    )
    .into_bytes()
}

/// Status line and body of a whole HTTP/1.1 response (the shop sends a Content-Length).
fn raw_answer(response: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let body = serde_json::from_str(body)
        .unwrap_or_else(|err| panic!("status {status}: the body is not JSON ({err}): {body:?}"));
    Answer { status, body }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("status {status}: the body is not JSON ({err}): {text:?}"));
    Answer { status, body }
}

/// How many answers have this `result`.
pub fn count(answers: &[Answer], result: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.result() == Some(result))
        .count()
}
