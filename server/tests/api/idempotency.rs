//! Idempotency keys: a retry gets the first order, a changed body is a conflict, and two
//! requests with one key at once never make two orders (HAZ-8, HAZ-12).

use flashsale_server::InventoryStrategy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app, spawn_app_without_jobs};
use crate::metrics::{sample, scrape};

#[tokio::test]
async fn a_retry_returns_the_first_order_even_after_the_sale_sold_out() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(1)).await;
    let first = app.buy(sale, "retry-me", "alice", 1).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let retry = app.buy(sale, "retry-me", "alice", 1).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["order_id"], first["order_id"]);

    let other = app.buy(sale, "someone-else", "bob", 1).await;
    assert_eq!(error_code(other).await.1, "sold_out");
    assert_eq!(app.orders(sale).await.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_conflict() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(10)).await;
    assert_eq!(
        app.buy(sale, "k", "alice", 1).await.status(),
        StatusCode::CREATED
    );
    let changed = app.buy(sale, "k", "alice", 2).await;
    assert_eq!(
        error_code(changed).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        )
    );
    assert_eq!(app.units_in_database(sale).await, 1);
    app.finish().await;
}

#[tokio::test]
async fn a_key_names_one_buyers_request_so_another_buyer_with_it_gets_an_order_of_their_own() {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        let app = spawn_app(strategy).await;
        let sale = app.live_sale(Some(10)).await;
        let alice = app.buy(sale, "shared-key", "alice", 1).await;
        assert_eq!(alice.status(), StatusCode::CREATED, "{strategy}");
        let alice: Value = alice.json().await.unwrap();
        // Another buyer, the same key, another body: a request of its own, never a conflict
        // that would name alice's order, never a replay of it.
        let mallory = app.buy(sale, "shared-key", "mallory", 2).await;
        assert_eq!(mallory.status(), StatusCode::CREATED, "{strategy}");
        assert!(mallory.headers().get("idempotent-replayed").is_none());
        let mallory: Value = mallory.json().await.unwrap();
        assert_ne!(mallory["order_id"], alice["order_id"], "{strategy}");
        assert_eq!(mallory["buyer_id"], "mallory");
        // ...and alice's key still works for alice: her retry is her order.
        let retry = app.buy(sale, "shared-key", "alice", 1).await;
        assert_eq!(retry.status(), StatusCode::CREATED);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        let retry: Value = retry.json().await.unwrap();
        assert_eq!(retry["order_id"], alice["order_id"]);
        assert_eq!(app.units_in_database(sale).await, 3, "{strategy}");
        app.finish().await;
    }
}

#[tokio::test]
async fn one_key_sent_many_times_at_once_makes_one_order_and_counts_one_unit() {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        // No reconcile tick: it would set a quiet counter to the ledger's figure while losers
        // are still releasing, and this test is about the releases.
        let mut app = spawn_app_without_jobs(strategy).await;
        // Room for every copy: with fewer units than copies, Redis would answer some of them
        // "sold out", the ledger re-check would sell through the PostgreSQL path, and a win
        // there leaves Redis legitimately one under (until the reconcile).
        let sale = app.live_sale(Some(100)).await;
        let answers = futures::future::join_all((0..20).map(|_| {
            app.buy_raw(
                sale,
                Some("same"),
                json!({"buyer_id": "a", "quantity": 1}).to_string(),
            )
        }))
        .await;
        let mut ids = std::collections::HashSet::new();
        for answer in answers {
            assert_eq!(answer.status(), StatusCode::CREATED, "{strategy}");
            let order: Value = answer.json().await.unwrap();
            ids.insert(order["order_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            ids.len(),
            1,
            "{strategy}: every answer names the same order"
        );
        assert_eq!(app.units_in_database(sale).await, 1);
        if strategy == InventoryStrategy::Redis {
            assert_eq!(
                app.redis_counter(sale).await,
                Some(1),
                "losers gave their units back"
            );
        }
        app.finish().await;
    }
}

#[tokio::test]
async fn a_sale_confirmed_sold_out_answers_retries_and_new_buyers_from_memory() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(2)).await;
    let other_sale = app.live_sale(Some(5)).await;
    let first = app.buy(sale, "first", "alice", 2).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        app.buy(other_sale, "elsewhere", "carol", 1).await.status(),
        StatusCode::CREATED
    );
    // The first sold-out answer is confirmed by the ledger; from then on the sale is final.
    assert_eq!(
        error_code(app.buy(sale, "late", "bob", 1).await).await.1,
        "sold_out"
    );

    // Take the orders table away: any answer that still needed PostgreSQL would now be a 503.
    sqlx::query("ALTER TABLE orders RENAME TO orders_away")
        .execute(&app.pool)
        .await
        .unwrap();
    let retry = app.buy(sale, "first", "alice", 2).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["order_id"], first["order_id"]);
    assert_eq!(
        error_code(app.buy(sale, "first", "alice", 1).await).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        )
    );
    // Another buyer's key is not theirs: a new request, and the sale is sold out.
    assert_eq!(
        error_code(app.buy(sale, "first", "mallory", 2).await).await,
        (StatusCode::CONFLICT, "sold_out".into())
    );
    assert_eq!(
        error_code(app.buy(sale, "late-2", "dave", 1).await).await,
        (StatusCode::CONFLICT, "sold_out".into())
    );
    // The documented difference: a key of another sale's order is not looked up here.
    assert_eq!(
        error_code(app.buy(sale, "elsewhere", "carol", 1).await).await,
        (StatusCode::CONFLICT, "sold_out".into())
    );
    // The sale that still has units is not answered from memory: it needs the ledger.
    assert_eq!(
        app.buy(other_sale, "new", "erin", 1).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    sqlx::query("ALTER TABLE orders_away RENAME TO orders")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.units_in_database(sale).await, 2);
    assert_eq!(app.units_in_database(other_sale).await, 1);
    app.finish().await;
}

/// The correct strategies refuse a used key in the ledger (its unique key), so the route asks
/// them to buy first: a fresh key costs no key lookup, and a retry, refused by the unique key,
/// is looked up then, answered with its order, and keeps none of the units its claim took.
#[tokio::test]
async fn a_fresh_key_costs_no_lookup_and_a_retry_keeps_no_unit() {
    for strategy in [InventoryStrategy::Redis, InventoryStrategy::Postgres] {
        let mut app = spawn_app_without_jobs(strategy).await;
        let sale = app.live_sale(Some(10)).await;
        let lookups = |text: &str| {
            sample(
                text,
                "flashsale_ledger_batch_size_count",
                &[("kind", "lookup")],
            )
        };
        let mut first = Value::Null;
        for (key, buyer) in [("k1", "alice"), ("k2", "bob"), ("k3", "carol")] {
            let bought = app.buy(sale, key, buyer, 1).await;
            assert_eq!(bought.status(), StatusCode::CREATED, "{strategy}");
            if buyer == "alice" {
                first = bought.json().await.unwrap();
            }
        }
        assert_eq!(lookups(&scrape(&app).await), 0.0, "{strategy}: fresh keys");

        for _ in 0..3 {
            let retry = app.buy(sale, "k1", "alice", 1).await;
            assert_eq!(retry.status(), StatusCode::CREATED, "{strategy}");
            assert_eq!(retry.headers()["idempotent-replayed"], "true");
            let retry: Value = retry.json().await.unwrap();
            assert_eq!(retry["order_id"], first["order_id"], "{strategy}");
        }
        assert!(lookups(&scrape(&app).await) >= 1.0, "{strategy}: retries");
        assert_eq!(app.units_in_database(sale).await, 3, "{strategy}");
        if strategy == InventoryStrategy::Redis {
            assert_eq!(
                app.redis_counter(sale).await,
                Some(3),
                "the retries' claims were given back"
            );
        }
        app.finish().await;
    }
}
