//! The hold mutants (mutants/src/serial_holds.rs) really break the holds rule — units in orders +
//! units in live holds ≤ cap — where the reference server keeps it, shown on the ledger through
//! the HTTP contract, step by step. (That the harness's checker names what they break is INV-7's
//! business; this proves the mutants are worth catching.)

use std::time::Duration;

use flashsale_harness::target::{Dependencies, InProcessServer, ServerOverrides};
use flashsale_mutants::InventoryStrategy;
use serde_json::{Value, json};

struct Shop {
    server: InProcessServer,
    http: reqwest::Client,
    sale: String,
}

impl Shop {
    /// The in-process server running `strategy`, with one live sale of `cap` units.
    async fn open(strategy: InventoryStrategy, cap: u64) -> Shop {
        let server = InProcessServer::start(
            &Dependencies::from_env(),
            strategy,
            &ServerOverrides::default(),
            false,
        )
        .await
        .expect("the server starts");
        let http = reqwest::Client::new();
        let sale: Value = http
            .post(format!("{}/admin/sales", server.base_url))
            .bearer_auth(&server.admin_token)
            .json(&json!({
                "name": "holds", "cap": cap,
                "starts_at": rfc3339(time::Duration::seconds(-5)),
                "ends_at": rfc3339(time::Duration::hours(1)),
                "products": [{"product_id": "tee", "sale_price_cents": 100}],
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sale = sale["id"].as_str().expect("a sale").to_owned();
        http.post(format!("{}/admin/sales/{sale}/activate", server.base_url))
            .bearer_auth(&server.admin_token)
            .send()
            .await
            .unwrap();
        Shop { server, http, sale }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        let answer = self
            .http
            .post(format!(
                "{}/sales/{}{path}",
                self.server.base_url, self.sale
            ))
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            answer.status().as_u16(),
            answer.json().await.unwrap_or_default(),
        )
    }

    async fn reserve(&self, buyer: &str, quantity: u64, ttl_ms: u64) -> (u16, Value) {
        let body = json!({"buyer_id": buyer, "quantity": quantity, "ttl_ms": ttl_ms});
        self.post("/holds", &format!("h-{buyer}"), body).await
    }

    async fn buy(&self, buyer: &str, quantity: u64) -> u16 {
        let body = json!({"buyer_id": buyer, "quantity": quantity});
        self.post("/orders", &format!("o-{buyer}"), body).await.0
    }

    async fn checkout(&self, hold: &Value) -> u16 {
        let path = format!("/holds/{}/checkout", hold["hold_id"].as_str().unwrap());
        let body = json!({"buyer_id": hold["buyer_id"]});
        self.post(&path, "checkout", body).await.0
    }

    /// Units in orders and in live, unexpired holds, from the inventory view.
    async fn units(&self) -> (i64, i64) {
        let view: Value = self
            .http
            .get(format!(
                "{}/admin/sales/{}/inventory",
                self.server.base_url, self.sale
            ))
            .bearer_auth(&self.server.admin_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            view["units_in_orders"].as_i64().unwrap(),
            view["units_in_live_holds"].as_i64().unwrap(),
        )
    }
}

/// An RFC 3339 instant `offset` from now.
fn rfc3339(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a formattable instant")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_not_counted_sells_units_a_live_hold_keeps() {
    for strategy in [
        InventoryStrategy::Redis,
        InventoryStrategy::Postgres,
        InventoryStrategy::HoldsNotCounted,
    ] {
        let shop = Shop::open(strategy, 2).await;
        let (status, hold) = shop.reserve("alice", 2, 60_000).await;
        assert_eq!(status, 201, "{strategy}: {hold}");
        let bought = shop.buy("bob", 2).await;
        let checked_out = shop.checkout(&hold).await;
        let (orders, _) = shop.units().await;
        if strategy.is_broken() {
            assert_eq!(
                (bought, checked_out, orders),
                (201, 201, 4),
                "{strategy}: 4 units of 2"
            );
        } else {
            assert_eq!((bought, checked_out, orders), (409, 201, 2), "{strategy}");
        }
        shop.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_returns_twice_sells_an_expired_holds_units_twice() {
    for strategy in [
        InventoryStrategy::Redis,
        InventoryStrategy::ExpiryReturnsTwice,
    ] {
        let shop = Shop::open(strategy, 2).await;
        let (status, _) = shop.reserve("alice", 2, 150).await;
        assert_eq!(status, 201);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let first = shop.buy("bob", 2).await;
        let second = shop.buy("carol", 2).await;
        let (orders, held) = shop.units().await;
        if strategy.is_broken() {
            assert_eq!(
                (first, second, orders, held),
                (201, 201, 4, 0),
                "{strategy}"
            );
        } else {
            assert_eq!(
                (first, second, orders, held),
                (201, 409, 2, 0),
                "{strategy}"
            );
        }
        shop.server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_after_expiry_sells_a_resold_holds_units_again() {
    for strategy in [
        InventoryStrategy::Postgres,
        InventoryStrategy::CheckoutAfterExpiry,
    ] {
        let shop = Shop::open(strategy, 2).await;
        let (status, hold) = shop.reserve("alice", 2, 150).await;
        assert_eq!(status, 201);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The hold expired; its units went back and are sold to bob.
        assert_eq!(shop.buy("bob", 2).await, 201, "{strategy}");
        let late = shop.checkout(&hold).await;
        let (orders, _) = shop.units().await;
        if strategy.is_broken() {
            assert_eq!((late, orders), (201, 4), "{strategy}");
        } else {
            assert_eq!((late, orders), (409, 2), "{strategy}");
        }
        shop.server.shutdown().await;
    }
}
