//! Every kind of bad input gets a 4xx with a stable code, and nothing is written: no order, no
//! unit counted in Redis.

use flashsale_server::InventoryStrategy;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, error_code, fmt, spawn_app};

#[tokio::test]
async fn bad_buys_are_refused_with_their_code_and_change_nothing() {
    let mut app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(5)).await;
    // Load the counter with one good order first, so "unchanged" is a real figure.
    assert_eq!(
        app.buy(sale, "good", "b0", 1).await.status(),
        StatusCode::CREATED
    );
    let counter_before = app.redis_counter(sale).await;
    assert_eq!(counter_before, Some(1));

    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        (
            "malformed JSON",
            Some("k1"),
            "{\"buyer_id\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "not an object",
            Some("k2"),
            "[1,2]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "missing buyer",
            Some("k3"),
            json!({"quantity": 1}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "missing quantity",
            Some("k4"),
            json!({"buyer_id": "b"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "buyer not a string",
            Some("k5"),
            json!({"buyer_id": 5, "quantity": 1}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "quantity 0",
            Some("k6"),
            json!({"buyer_id": "b", "quantity": 0}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "negative quantity",
            Some("k7"),
            json!({"buyer_id": "b", "quantity": -2}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "fractional quantity",
            Some("k8"),
            json!({"buyer_id": "b", "quantity": 0.5}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "quantity as string",
            Some("k9"),
            json!({"buyer_id": "b", "quantity": "1"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "huge quantity",
            Some("k10"),
            "{\"buyer_id\": \"b\", \"quantity\": 99999999999999999999999}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            "quantity above the order limit",
            Some("k11"),
            json!({"buyer_id": "b", "quantity": 101}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity_above_limit",
        ),
        (
            "unknown field",
            Some("k12"),
            json!({"buyer_id": "b", "quantity": 1, "price_cents": 1}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
        ),
        (
            "unknown product",
            Some("k13"),
            json!({"buyer_id": "b", "quantity": 1, "product_id": "hat"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_product",
        ),
        (
            "oversized body",
            Some("k14"),
            format!(
                "{{\"buyer_id\": \"{}\", \"quantity\": 1}}",
                "x".repeat(20_000)
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            "missing idempotency key",
            None,
            json!({"buyer_id": "b", "quantity": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
        ),
    ];
    for (what, key, body, status, code) in cases {
        let response = app.buy_raw(sale, key, body).await;
        assert_eq!(
            error_code(response).await,
            (status, code.to_owned()),
            "{what}"
        );
    }
    let huge = app.buy(sale, "k15", "b", 5).await;
    assert_eq!(
        huge.status(),
        StatusCode::CONFLICT,
        "5 units do not fit: 1 of 5 is sold"
    );

    assert_eq!(
        app.orders_in_database().await,
        1,
        "no bad input wrote an order"
    );
    assert_eq!(
        app.redis_counter(sale).await,
        counter_before,
        "no bad input moved the counter"
    );
    app.finish().await;
}

#[tokio::test]
async fn unknown_and_unlive_sales_are_refused() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let unknown = uuid::Uuid::new_v4();
    let (status, code) = error_code(app.buy(unknown, "k", "b", 1).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "sale_not_found")
    );
    let (status, code) = error_code(
        app.client
            .post(app.url("/sales/not-a-uuid/orders"))
            .header("idempotency-key", "k")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "sale_not_found")
    );

    // Created but never activated.
    let scheduled = app.create_sale(Some(3)).await;
    let (status, code) = error_code(app.buy(scheduled, "k1", "b", 1).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "sale_not_live")
    );

    // Activated but its window has not started: the window is checked at the claim (HAZ-13).
    let now = time::OffsetDateTime::now_utc();
    let future = app
        .create_sale_with(json!({
            "name": "later", "starts_at": fmt(now + time::Duration::hours(1)),
            "ends_at": fmt(now + time::Duration::hours(2)), "cap": 3,
            "products": [{"product_id": "tee", "sale_price_cents": 100}],
        }))
        .await;
    app.admin_post(&format!("/admin/sales/{future}/activate"), &json!({}))
        .await;
    let (status, code) = error_code(app.buy(future, "k2", "b", 1).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "sale_not_live")
    );

    // Active and in its window, then expired by hand.
    let expired = app.live_sale(Some(3)).await;
    app.admin_post(&format!("/admin/sales/{expired}/expire"), &json!({}))
        .await;
    let (status, code) = error_code(app.buy(expired, "k3", "b", 1).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "sale_not_live")
    );
    let reactivate = app
        .admin_post(&format!("/admin/sales/{expired}/activate"), &json!({}))
        .await;
    assert_eq!(error_code(reactivate).await.1, "invalid_state_transition");

    assert_eq!(app.orders_in_database().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn admin_routes_need_the_right_token_and_validate_sales() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let body = json!({"name": "x", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z",
                      "cap": 1, "products": [{"product_id": "p", "sale_price_cents": 1}]});
    let missing = app
        .client
        .post(app.url("/admin/sales"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(missing).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let wrong = app
        .client
        .post(app.url("/admin/sales"))
        .bearer_auth("guess")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let export = app
        .client
        .get(app.url(&format!("/admin/sales/{}/orders", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(export).await.0, StatusCode::UNAUTHORIZED);

    let invalid = app
        .client
        .post(app.url("/admin/sales"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "", "starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z",
                      "cap": -4, "products": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let answer: serde_json::Value = invalid.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "validation_failed");
    assert_eq!(
        answer["error"]["details"]["problems"]
            .as_array()
            .unwrap()
            .len(),
        4,
        "{answer}"
    );

    let unknown_field = app
        .admin_post("/admin/sales", &json!({"name": "x", "colour": "red"}))
        .await;
    assert_eq!(error_code(unknown_field).await.1, "invalid_field");
    let sales: i64 = sqlx::query_scalar("SELECT count(*) FROM flash_sales")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sales, 0, "no refused request created a sale");

    let nowhere = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(
        error_code(nowhere).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let wrong_method = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(error_code(wrong_method).await.1, "method_not_allowed");
    app.finish().await;
}

#[tokio::test]
async fn strings_postgresql_cannot_store_are_422_naming_the_field_not_503() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    for (body, field) in [
        (
            json!({"name": "drop\u{0}", "starts_at": "2026-01-01T00:00:00Z",
                   "ends_at": "2026-01-02T00:00:00Z", "cap": 1,
                   "products": [{"product_id": "p", "sale_price_cents": 1}]}),
            "name",
        ),
        (
            json!({"name": "drop", "starts_at": "2026-01-01T00:00:00Z",
                   "ends_at": "2026-01-02T00:00:00Z", "cap": 1,
                   "products": [{"product_id": "p\u{0}", "sale_price_cents": 1}]}),
            "products[0].product_id",
        ),
    ] {
        let response = app.admin_post("/admin/sales", &body).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
        assert_eq!(
            answer["error"]["details"]["problems"][0]["field"], field,
            "{answer}"
        );
    }
    let sales: i64 = sqlx::query_scalar("SELECT count(*) FROM flash_sales")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sales, 0);
    app.finish().await;
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_client_one_is_kept() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let made = app.client.get(app.url("/health")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let kept = app
        .client
        .get(app.url("/nowhere"))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-42");
    app.finish().await;
}

/// A buy whose sale id is a plain path segment is answered without the router
/// (`http::direct_buy`); one with a percent-escape in its id goes through the router. Both must
/// give the same answer to the same request: the same status, code and request-id echo, and the
/// same one order for one key.
#[tokio::test]
async fn a_buy_answered_without_the_router_answers_as_the_router_does() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let live = app.live_sale(Some(100)).await;
    let sold_out = app.live_sale(Some(1)).await;
    assert_eq!(
        app.buy(sold_out, "only", "b-only", 1).await.status(),
        StatusCode::CREATED
    );
    // The first character of the id written as a percent-escape: the router decodes it to the
    // same id; the direct path leaves such paths to the router.
    let escaped = |sale: uuid::Uuid| {
        let id = sale.to_string();
        format!("%{:02X}{}", id.as_bytes()[0], &id[1..])
    };
    let good = |buyer: &str| json!({"buyer_id": buyer, "quantity": 1}).to_string();
    let cases: Vec<(&str, uuid::Uuid, Option<&str>, String)> = vec![
        ("a new order", live, Some("new"), good("b-new")),
        ("sold out", sold_out, Some("late"), good("b-late")),
        ("malformed JSON", live, Some("bad-json"), "{".to_owned()),
        ("no key", live, None, good("b-nokey")),
        (
            "unknown field",
            live,
            Some("unknown"),
            r#"{"buyer_id":"b","quantity":1,"x":1}"#.to_owned(),
        ),
        (
            "unknown sale",
            uuid::Uuid::new_v4(),
            Some("nosale"),
            good("b-nosale"),
        ),
    ];
    for (what, sale, key, body) in cases {
        let mut answers = Vec::new();
        for (route, id) in [("direct", sale.to_string()), ("router", escaped(sale))] {
            let mut request = app
                .client
                .post(app.url(&format!("/sales/{id}/orders")))
                .header("content-type", "application/json")
                .header("x-request-id", format!("{what}-{route}").replace(' ', "-"))
                .body(body.clone());
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            assert_eq!(
                response.headers()["x-request-id"],
                format!("{what}-{route}").replace(' ', "-"),
                "{what} ({route})"
            );
            let body: serde_json::Value = response.json().await.unwrap();
            let code = body["error"]["code"].as_str().map(str::to_owned);
            let order = body["order_id"].as_str().map(str::to_owned);
            answers.push((status, code, order));
        }
        let (direct, router) = (&answers[0], &answers[1]);
        assert_eq!(direct.0, router.0, "{what}: {answers:?}");
        assert_eq!(direct.1, router.1, "{what}: {answers:?}");
        if direct.0 == StatusCode::CREATED {
            // The same key twice: the router's answer is the replay of the direct one's order.
            assert_eq!(direct.2, router.2, "{what}: one order for one key");
        }
    }
    assert_eq!(app.orders(live).await.len(), 1);
    app.finish().await;
}
