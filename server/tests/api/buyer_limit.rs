//! `per_buyer_limit` bounds a buyer's units across all their orders of a sale, on both claim
//! paths, under concurrency and across a Redis that restarts empty; the database refuses every
//! way around it (migration 0004).

use flashsale_server::InventoryStrategy;
use flashsale_server::ledger::orders::{self, InsertError, OrderRequest};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, error_code, fmt, spawn_app};

/// A live sale of `cap` units (`None`: unlimited) with a limit of `limit` units per buyer.
async fn limited_sale(app: &TestApp, cap: Option<i64>, limit: i64) -> Uuid {
    let now = time::OffsetDateTime::now_utc();
    let id = app
        .create_sale_with(json!({
            "name": "limited drop",
            "starts_at": fmt(now - time::Duration::seconds(1)),
            "ends_at": fmt(now + time::Duration::hours(1)),
            "cap": cap,
            "per_buyer_limit": limit,
            "products": [{"product_id": "tee", "sale_price_cents": 1500}],
        }))
        .await;
    let activated = app
        .admin_post(&format!("/admin/sales/{id}/activate"), &json!({}))
        .await;
    assert_eq!(activated.status(), StatusCode::OK);
    id
}

/// Units of each buyer in the sale's exported orders.
async fn units_by_buyer(app: &TestApp, sale: Uuid) -> std::collections::BTreeMap<String, i64> {
    let mut units = std::collections::BTreeMap::new();
    for order in app.orders(sale).await {
        *units
            .entry(order["buyer_id"].as_str().unwrap().to_owned())
            .or_default() += order["quantity"].as_i64().unwrap();
    }
    units
}

#[tokio::test]
async fn a_buyer_cannot_pass_the_limit_in_several_orders_on_either_path() {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        for cap in [Some(100), None] {
            let app = spawn_app(strategy).await;
            let sale = limited_sale(&app, cap, 2).await;
            assert_eq!(
                app.buy(sale, "a1", "alice", 1).await.status(),
                StatusCode::CREATED
            );
            // 1 + 2 > 2: refused with its own code, naming the limit, and nothing changes.
            let over = app.buy(sale, "a2", "alice", 2).await;
            assert_eq!(over.status(), StatusCode::CONFLICT, "{strategy} {cap:?}");
            let body: Value = over.json().await.unwrap();
            assert_eq!(body["error"]["code"], "buyer_limit_reached");
            assert_eq!(body["error"]["details"]["limit"], 2);
            assert_eq!(
                app.buy(sale, "a3", "alice", 1).await.status(),
                StatusCode::CREATED,
                "{strategy} {cap:?}: exactly the limit is allowed"
            );
            assert_eq!(
                error_code(app.buy(sale, "a4", "alice", 1).await).await,
                (StatusCode::CONFLICT, "buyer_limit_reached".into())
            );
            // The refused request's key made nothing: a retry of it is refused again, and the
            // limit is alice's alone.
            assert_eq!(
                error_code(app.buy(sale, "a4", "alice", 1).await).await.1,
                "buyer_limit_reached"
            );
            // A retry of an order she holds is that order, not a refusal: the limit refuses
            // its claim, and then the key is looked up (a strategy that checks keys in `buy`).
            let retry = app.buy(sale, "a3", "alice", 1).await;
            assert_eq!(retry.status(), StatusCode::CREATED, "{strategy} {cap:?}");
            assert_eq!(retry.headers()["idempotent-replayed"], "true");
            assert_eq!(
                app.buy(sale, "b1", "bob", 2).await.status(),
                StatusCode::CREATED
            );
            let units = units_by_buyer(&app, sale).await;
            assert_eq!(units["alice"], 2, "{strategy} {cap:?}");
            assert_eq!(units["bob"], 2);
            app.finish().await;
        }
    }
}

#[tokio::test]
async fn one_buyers_orders_sent_together_never_pass_the_limit() {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        let app = spawn_app(strategy).await;
        let sale = limited_sale(&app, Some(1000), 3).await;
        // Ten buyers, eight single-unit orders each, all at once, each with its own key.
        let sends = (0..80).map(|i| {
            let buyer = format!("buyer-{}", i % 10);
            let key = format!("k-{i}");
            let app = &app;
            async move { app.buy(sale, &key, &buyer, 1).await.status() }
        });
        let statuses = futures::future::join_all(sends).await;
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((created, refused), (30, 50), "{strategy}: {statuses:?}");
        let units = units_by_buyer(&app, sale).await;
        assert_eq!(units.len(), 10);
        assert!(units.values().all(|u| *u == 3), "{strategy}: {units:?}");
        app.finish().await;
    }
}

#[tokio::test]
async fn a_redis_that_restarts_empty_forgets_no_buyers_units() {
    let mut app = spawn_app(InventoryStrategy::Redis).await;
    let sale = limited_sale(&app, Some(50), 2).await;
    assert_eq!(
        app.buy(sale, "a1", "alice", 2).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(app.redis_counter(sale).await, Some(2));
    // Redis loses everything it knew about the sale.
    app.redis_cmd(redis::cmd("DEL").arg(flashsale_server::inventory::redis::sold_key(sale)))
        .await;
    assert_eq!(
        error_code(app.buy(sale, "a2", "alice", 1).await).await,
        (StatusCode::CONFLICT, "buyer_limit_reached".into())
    );
    assert_eq!(
        app.buy(sale, "b1", "bob", 1).await.status(),
        StatusCode::CREATED
    );
    // The refused claim's unit went back to Redis: the counter is the ledger's figure.
    assert_eq!(app.redis_counter(sale).await, Some(3));
    assert_eq!(app.units_in_database(sale).await, 3);
    app.finish().await;
}

fn request(sale: Uuid, buyer: &str, key: &str, quantity: i32) -> OrderRequest {
    OrderRequest {
        sale_id: sale,
        product_id: "tee".into(),
        unit_price_cents: 1500,
        buyer_id: buyer.into(),
        quantity,
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn the_database_refuses_every_way_around_the_buyer_limit() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = limited_sale(&app, None, 2).await;
    orders::insert(
        &app.pool,
        &request(sale, "alice", "a", 2),
        None,
        &[],
        "test",
    )
    .await
    .unwrap();
    // Written straight to the ledger, past every claim path: still refused.
    let over = orders::insert(
        &app.pool,
        &request(sale, "alice", "b", 1),
        None,
        &[],
        "test",
    )
    .await;
    assert!(matches!(over, Err(InsertError::BuyerLimit)), "{over:?}");
    // Several orders of one buyer in one statement, together over the limit.
    let batch: Vec<_> = ["c", "d", "e"]
        .iter()
        .map(|k| orders::NewOrder {
            req: request(sale, "bob", k, 1),
            sale_cap: None,
            slots: Vec::new(),
            decided_by: "test",
        })
        .collect();
    let together = orders::insert_many(&app.pool, &batch).await;
    assert!(
        matches!(together, Err(InsertError::BuyerLimit)),
        "{together:?}"
    );
    assert_eq!(units_by_buyer(&app, sale).await.get("bob"), None);

    let refused = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query(sql)
                .bind(sale)
                .execute(&pool)
                .await
                .expect_err(sql)
                .to_string()
        }
    };
    // Lowering the buyer's count, deleting it, truncating, or claiming a larger limit for it.
    refused("UPDATE buyer_units SET units = 0 WHERE sale_id = $1").await;
    refused("UPDATE buyer_units SET units = 1 WHERE sale_id = $1").await;
    refused("DELETE FROM buyer_units WHERE sale_id = $1").await;
    refused("UPDATE buyer_units SET buyer_limit = 5 WHERE sale_id = $1").await;
    refused(
        "INSERT INTO buyer_units (sale_id, buyer_id, units, buyer_limit) VALUES ($1, 'carol', 1, 9)",
    )
    .await;
    // Raising the sale's limit afterwards.
    refused("UPDATE flash_sales SET per_buyer_limit = 10 WHERE id = $1").await;
    assert!(
        sqlx::query("TRUNCATE buyer_units")
            .execute(&app.pool)
            .await
            .is_err()
    );
    // After all that, alice still cannot buy.
    let still = orders::insert(
        &app.pool,
        &request(sale, "alice", "f", 1),
        None,
        &[],
        "test",
    )
    .await;
    assert!(matches!(still, Err(InsertError::BuyerLimit)), "{still:?}");
    app.finish().await;
}
