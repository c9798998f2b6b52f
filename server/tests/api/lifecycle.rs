//! Sale lifecycle (issue 16): the durable job queue activates scheduled sales on time across a
//! restart, refuses to activate a sale that fails its preflight (and says why), expires sales at
//! their end; the preflight dry run lists every problem and changes nothing; wishlists refuse bad
//! input whole; a dead worker's unrecorded alert becomes "in doubt", never resent.

use std::time::Duration;

use flashsale_server::InventoryStrategy;
use flashsale_server::jobs::lifecycle::{self, Activation};
use flashsale_server::notify::journal::PgJournal;
use flashsale_server::notify::{Channel, DeliveryJournal};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{error_code, fmt, spawn_app};

fn scheduled_sale(product: &str, starts_in: Duration, cap: i64) -> Value {
    let now = OffsetDateTime::now_utc();
    json!({
        "name": "scheduled drop",
        "starts_at": fmt(now + starts_in),
        "ends_at": fmt(now + starts_in + Duration::from_secs(3600)),
        "cap": cap,
        "products": [{"product_id": product, "sale_price_cents": 1500}],
        "activate_on_schedule": true,
    })
}

async fn sale_row(pool: &sqlx::PgPool, sale: Uuid) -> (String, Option<Value>, bool) {
    sqlx::query_as(
        "SELECT state, preflight_problems,
                coalesce(activated_at <= starts_at, false)
         FROM flash_sales WHERE id = $1",
    )
    .bind(sale)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sale_scheduled_two_seconds_ahead_goes_live_on_time_across_a_restart() {
    let mut app = spawn_app(InventoryStrategy::Postgres).await;
    let put = app
        .admin_put(
            "/admin/products/tee",
            &json!({"name": "Tee", "list_price_cents": 3000}),
        )
        .await;
    assert_eq!(put.status(), StatusCode::OK);
    let body = scheduled_sale("tee", Duration::from_secs(2), 5);
    let starts_at = OffsetDateTime::parse(
        body["starts_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let sale = app.create_sale_with(body).await;
    // The server goes away right after the sale is created and comes back before it starts: the
    // activation job is in the database, not in the process that scheduled it.
    app.restart(Duration::from_millis(300)).await;

    let mut first_success = None;
    let mut n = 0;
    while OffsetDateTime::now_utc() < starts_at + Duration::from_secs(5) {
        n += 1;
        let sent_at = OffsetDateTime::now_utc();
        let response = app.buy(sale, &format!("k-{n}"), &format!("b-{n}"), 1).await;
        if response.status() == StatusCode::CREATED {
            first_success = Some(sent_at);
            break;
        }
        assert_eq!(
            error_code(response).await,
            (StatusCode::CONFLICT, "sale_not_live".to_owned())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_success = first_success.expect("the sale never went live");
    let (state, problems, activated_in_time) = sale_row(&app.pool, sale).await;
    assert_eq!(state, "active");
    assert_eq!(problems, None);
    assert!(
        activated_in_time,
        "the activation job ran after starts_at (it is scheduled a second ahead)"
    );
    // No order before the window: the claim path checks the window itself.
    let (early,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM orders o JOIN flash_sales s ON s.id = o.sale_id
         WHERE o.sale_id = $1 AND o.created_at < s.starts_at",
    )
    .bind(sale)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(early, 0);
    // "On time": the first buy sent after the window opened got through. A request sent just
    // before starts_at can be decided just after it, so the bound is generous, not exact.
    let late = first_success - starts_at;
    assert!(
        late < time::Duration::seconds(1),
        "the first successful buy was sent {late} after starts_at"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_sale_that_fails_its_preflight_is_not_activated_and_says_why() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    // "ghost" is in no catalog; the job runs at once (starts_at is under a second ahead).
    let sale = app
        .create_sale_with(scheduled_sale("ghost", Duration::from_millis(500), 5))
        .await;
    let mut refused_with = None;
    for _ in 0..100 {
        let (state, problems, _) = sale_row(&app.pool, sale).await;
        assert_eq!(state, "scheduled");
        if problems.is_some() {
            refused_with = problems;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_with = refused_with.expect("the activation job never ran");
    assert_eq!(refused_with[0]["code"], "unknown_product", "{refused_with}");
    let view = app
        .admin_post(&format!("/admin/sales/{sale}/preflight"), &json!({}))
        .await;
    assert_eq!(view.status(), StatusCode::OK);
    let view: Value = view.json().await.unwrap();
    assert_eq!(view["activation_refused_with"], refused_with);
    assert_eq!(view["state"], "scheduled");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let response = app.buy(sale, "k", "b", 1).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::CONFLICT, "sale_not_live".to_owned())
    );
    app.finish().await;
}

#[tokio::test]
async fn the_preflight_dry_run_lists_every_problem_and_changes_nothing() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    app.admin_put(
        "/admin/products/tee",
        &json!({"name": "Tee", "list_price_cents": 1000}),
    )
    .await;
    // A live sale of the same product over the same hour.
    let live = app.live_sale(Some(3)).await;
    let now = OffsetDateTime::now_utc();
    let sale = app
        .create_sale_with(json!({
            "name": "bad",
            "starts_at": fmt(now - Duration::from_secs(60)),
            "ends_at": fmt(now + Duration::from_secs(600)),
            "cap": 0,
            "products": [
                {"product_id": "tee", "sale_price_cents": 1500},
                {"product_id": "ghost", "sale_price_cents": 100}
            ],
        }))
        .await;
    let response = app
        .admin_post(&format!("/admin/sales/{sale}/preflight"), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["ready"], false);
    let mut codes: Vec<&str> = view["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            "cap_not_positive",
            "no_discount",
            "overlapping_sale",
            "unknown_product",
            "window_started"
        ],
        "{view}"
    );
    assert!(view.to_string().contains(&live.to_string()));
    let (state, problems, _) = sale_row(&app.pool, sale).await;
    assert_eq!((state.as_str(), problems), ("scheduled", None));
    let missing = app
        .admin_post(
            &format!("/admin/sales/{}/preflight", Uuid::new_v4()),
            &json!({}),
        )
        .await;
    assert_eq!(error_code(missing).await.1, "sale_not_found");
    app.finish().await;
}

#[tokio::test]
async fn the_expiration_job_ends_a_sale_at_ends_at() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    let now = OffsetDateTime::now_utc();
    let sale = app
        .create_sale_with(json!({
            "name": "short",
            "starts_at": fmt(now - Duration::from_secs(1)),
            "ends_at": fmt(now + Duration::from_millis(800)),
            "cap": 5,
            "products": [{"product_id": "tee", "sale_price_cents": 1500}],
        }))
        .await;
    app.admin_post(&format!("/admin/sales/{sale}/activate"), &json!({}))
        .await;
    let mut state = String::new();
    for _ in 0..100 {
        state = sale_row(&app.pool, sale).await.0;
        if state == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "expired");
    let (done,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM lifecycle_jobs WHERE sale_id = $1 AND kind = 'expire'
         AND done_at >= (SELECT ends_at FROM flash_sales WHERE id = $1)",
    )
    .bind(sale)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(done, 1, "expired by its job, at or after ends_at");
    app.finish().await;
}

#[tokio::test]
async fn activating_twice_plans_each_alert_once() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    for user in ["u1", "u2"] {
        let response = app
            .client
            .post(app.url("/wishlist"))
            .json(&json!({"user_id": user, "product_ids": ["tee", "other"], "email": format!("{user}@example.test")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let sale = app.create_sale(Some(5)).await;
    let mut tx = app.pool.begin().await.unwrap();
    let first = lifecycle::activate(&mut tx, sale, false).await.unwrap();
    let second = lifecycle::activate(&mut tx, sale, false).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(first, Activation::Activated { alerts_planned: 2 });
    assert_eq!(second, Activation::AlreadyActive);
    let mut tx = app.pool.begin().await.unwrap();
    assert_eq!(
        flashsale_server::notify::plan_fanout(&mut tx, sale)
            .await
            .unwrap(),
        0,
        "planning again plans nothing"
    );
    tx.commit().await.unwrap();
    app.finish().await;
}

#[tokio::test]
async fn a_wishlist_with_any_bad_field_is_refused_whole() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    let good_sub = json!({"endpoint": "https://push.example.test/abc",
        "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                 "auth": "tBHItJI5svbpez7KI4CCXg"}});
    let cases = [
        (
            json!({"user_id": "", "product_ids": ["tee"], "email": "a@b.test"}),
            "user_id",
        ),
        (
            json!({"user_id": "u", "product_ids": [], "email": "a@b.test"}),
            "product_ids",
        ),
        (json!({"user_id": "u", "product_ids": ["tee"]}), "email"),
        (
            json!({"user_id": "u", "product_ids": ["tee"], "email": "not an address"}),
            "email",
        ),
        (
            json!({"user_id": "u", "product_ids": ["tee"], "push_subscription":
            {"endpoint": "ftp://x", "keys": good_sub["keys"]}}),
            "push_subscription.endpoint",
        ),
        (
            json!({"user_id": "u", "product_ids": ["tee"], "push_subscription":
            {"endpoint": "https://x.test/1", "keys": {"p256dh": "AAAA", "auth": "tBHItJI5svbpez7KI4CCXg"}}}),
            "push_subscription.keys.p256dh",
        ),
        (
            json!({"user_id": "u", "product_ids": ["tee"], "push_subscription":
            {"endpoint": "https://x.test/1", "keys": {"p256dh": good_sub["keys"]["p256dh"], "auth": "AAAA"}}}),
            "push_subscription.keys.auth",
        ),
        (
            json!({"user_id": "u", "product_ids": ["tee"], "email": "a@b.test", "extra": 1}),
            "body",
        ),
    ];
    for (body, field) in cases {
        let response = app
            .client
            .post(app.url("/wishlist"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_field", "{body}");
        assert_eq!(error["error"]["details"]["field"], field, "{body}");
    }
    let (stored,): (i64,) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notification_contacts) + (SELECT count(*) FROM wishlist_entries)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "a refused wishlist stores nothing");
    let ok = app
        .client
        .post(app.url("/wishlist"))
        .json(&json!({"user_id": "u", "product_ids": ["tee"], "push_subscription": good_sub}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn an_alert_whose_sender_died_is_in_doubt_and_never_taken_again() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    let sale = app.create_sale(Some(5)).await;
    sqlx::query(
        "INSERT INTO notification_deliveries
             (sale_id, user_id, channel, address, state, claimed_by, claimed_at)
         VALUES ($1, 'dead', 'email', 'dead@example.test', 'sending', $2, now() - interval '2 minutes'),
                ($1, 'alive', 'email', 'alive@example.test', 'pending', NULL, NULL)",
    )
    .bind(sale)
    .bind(Uuid::new_v4())
    .execute(&app.pool)
    .await
    .unwrap();
    let journal = PgJournal::new(app.pool.clone(), Duration::from_secs(60), 8);
    let taken = journal.take_due(Channel::Email, 10).await.unwrap();
    let users: Vec<&str> = taken.iter().map(|d| d.user_id.as_str()).collect();
    assert_eq!(users, ["alive"]);
    let (state,): (String,) =
        sqlx::query_as("SELECT state FROM notification_deliveries WHERE user_id = 'dead'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(state, "in_doubt");
    assert!(
        journal
            .take_due(Channel::Email, 10)
            .await
            .unwrap()
            .is_empty()
    );
    app.finish().await;
}

#[tokio::test]
async fn a_gone_subscription_is_refused_for_good_and_removed() {
    use flashsale_server::notify::{Attempted, Outcome};
    let app = spawn_app(InventoryStrategy::Postgres).await;
    let endpoint = "https://push.example.test/gone";
    let response = app
        .client
        .post(app.url("/wishlist"))
        .json(&json!({"user_id": "u", "product_ids": ["tee"], "email": "u@example.test",
            "push_subscription": {"endpoint": endpoint, "keys": {
                "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
                "auth": "tBHItJI5svbpez7KI4CCXg"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sale = app.live_sale(Some(5)).await;
    let journal = PgJournal::new(app.pool.clone(), Duration::from_secs(60), 8);
    let taken = journal.take_due(Channel::Push, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].push_keys.is_some());
    journal
        .record(&[Attempted {
            delivery: taken[0].clone(),
            outcome: Outcome::Gone("410".into()),
            retry_after: Duration::from_millis(1),
        }])
        .await
        .unwrap();
    let (state, subscription, email): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT d.state, c.push_endpoint, c.email
         FROM notification_deliveries d JOIN notification_contacts c USING (user_id)
         WHERE d.sale_id = $1 AND d.channel = 'push'",
    )
    .bind(sale)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(state, "refused");
    assert_eq!(subscription, None, "the gone subscription is removed");
    assert_eq!(
        email.as_deref(),
        Some("u@example.test"),
        "the email address stays"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        journal
            .take_due(Channel::Push, 10)
            .await
            .unwrap()
            .is_empty(),
        "never retried"
    );
    app.finish().await;
}
