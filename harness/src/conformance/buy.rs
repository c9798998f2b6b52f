//! Refused buys: bad bodies and quantities, missing, invalid and reused idempotency keys, and
//! sales that cannot be bought from. Each must be answered with the documented status and code
//! and change nothing.

use serde_json::json;
use uuid::Uuid;

use super::probe::{self, Expected, truncate};
use super::{Judged, PER_BUYER_LIMIT, Run, Sales};

const MALFORMED_JSON: Expected = Expected::new(400, "malformed_json");
const MISSING_KEY: Expected = Expected::new(400, "missing_idempotency_key");
const INVALID_KEY: Expected = Expected::new(400, "invalid_idempotency_key");
const SALE_NOT_FOUND: Expected = Expected::new(404, "sale_not_found");
const SALE_NOT_LIVE: Expected = Expected::new(409, "sale_not_live");
const BODY_TOO_LARGE: Expected = Expected::new(413, "body_too_large");
const INVALID_FIELD: Expected = Expected::new(422, "invalid_field");
const UNKNOWN_FIELD: Expected = Expected::new(422, "unknown_field");
const INVALID_QUANTITY: Expected = Expected::new(422, "invalid_quantity");
const QUANTITY_ABOVE_LIMIT: Expected = Expected::new(422, "quantity_above_limit");
const UNKNOWN_PRODUCT: Expected = Expected::new(422, "unknown_product");
const KEY_REUSED: Expected = Expected::new(422, "idempotency_key_reused");
const BUYER_LIMIT_REACHED: Expected = Expected::new(409, "buyer_limit_reached");

/// The per-order limit `BuyRequest.quantity` documents ("100 by default"). A server configured
/// with a higher one will fail `buy/quantity-above-per-order-limit`: the contract names no other
/// figure a client could rely on.
const DOCUMENTED_PER_ORDER_LIMIT: u64 = 100;

impl Run {
    pub(super) fn buy(
        &self,
        sale: &str,
        key: Option<&str>,
        body: String,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url(&format!("/sales/{sale}/orders")))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request
    }

    /// A buy with a fresh key and a fresh buyer that must be refused with `expected`.
    async fn refused_buy(
        &mut self,
        name: &str,
        sale: &Result<String, String>,
        what: &str,
        body: String,
        expected: Expected,
    ) {
        let sale = match sale {
            Ok(sale) => sale.clone(),
            Err(reason) => {
                let request = format!("POST /sales/{{sale}}/orders: {what}");
                return self.not_checked(name, request, expected.to_string(), reason);
            }
        };
        let key = fresh_key();
        let request = format!(
            "POST /sales/{sale}/orders: {what}; body {}",
            truncate(&body, 120)
        );
        let send = self.buy(&sale, Some(&key), body);
        self.refusal(name, request, expected, send).await;
    }
}

fn fresh_key() -> String {
    format!("conformance-{}", Uuid::new_v4())
}

fn fresh_buyer() -> String {
    format!("conformance-buyer-{}", Uuid::new_v4().simple())
}

fn good_body(quantity: u64) -> String {
    json!({"buyer_id": fresh_buyer(), "quantity": quantity}).to_string()
}

/// Bodies and quantities the contract refuses, on the live `main` sale.
pub(super) async fn bad_bodies(run: &mut Run, sales: &Sales) {
    let buyer = fresh_buyer();
    let big = format!(
        r#"{{"buyer_id":"{buyer}","quantity":1,"product_id":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    let cases: Vec<(&str, &str, String, Expected)> = vec![
        (
            "buy/malformed-json",
            "the body is not JSON (cut short)",
            format!(r#"{{"buyer_id":"{buyer}","quantity":1"#),
            MALFORMED_JSON,
        ),
        // Valid JSON of the wrong shape: the contract lists `invalid_field` (422) for a bad
        // field and `malformed_json` (400) for what is not JSON; the reference server answers
        // `invalid_field` (field `body`), which is followed here.
        (
            "buy/body-not-an-object",
            "the body is a JSON array",
            "[1,2]".to_owned(),
            INVALID_FIELD,
        ),
        (
            "buy/buyer-id-wrong-type",
            "buyer_id is a number",
            r#"{"buyer_id":7,"quantity":1}"#.to_owned(),
            INVALID_FIELD,
        ),
        (
            "buy/buyer-id-missing",
            "buyer_id is missing",
            r#"{"quantity":1}"#.to_owned(),
            INVALID_FIELD,
        ),
        (
            "buy/buyer-id-empty",
            "buyer_id is empty (minLength 1)",
            r#"{"buyer_id":"","quantity":1}"#.to_owned(),
            INVALID_FIELD,
        ),
        (
            "buy/product-id-wrong-type",
            "product_id is a number",
            format!(r#"{{"buyer_id":"{buyer}","quantity":1,"product_id":3}}"#),
            INVALID_FIELD,
        ),
        (
            "buy/unknown-field",
            "an extra field price_cents (additionalProperties: false)",
            format!(r#"{{"buyer_id":"{buyer}","quantity":1,"price_cents":0}}"#),
            UNKNOWN_FIELD,
        ),
        (
            "buy/quantity-zero",
            "quantity 0",
            format!(r#"{{"buyer_id":"{buyer}","quantity":0}}"#),
            INVALID_QUANTITY,
        ),
        (
            "buy/quantity-negative",
            "quantity -1",
            format!(r#"{{"buyer_id":"{buyer}","quantity":-1}}"#),
            INVALID_QUANTITY,
        ),
        (
            "buy/quantity-fractional",
            "quantity 1.5",
            format!(r#"{{"buyer_id":"{buyer}","quantity":1.5}}"#),
            INVALID_QUANTITY,
        ),
        (
            "buy/quantity-string",
            "quantity is the string \"1\"",
            format!(r#"{{"buyer_id":"{buyer}","quantity":"1"}}"#),
            INVALID_QUANTITY,
        ),
        // A missing quantity is not in `invalid_quantity`'s list (zero, negative, fractional,
        // not a number); the reference server answers `invalid_field`, followed here.
        (
            "buy/quantity-missing",
            "quantity is missing",
            format!(r#"{{"buyer_id":"{buyer}"}}"#),
            INVALID_FIELD,
        ),
        (
            "buy/quantity-above-per-order-limit",
            "quantity 101, above the documented default per-order limit of 100 (the sale has no per-buyer limit)",
            good_body(DOCUMENTED_PER_ORDER_LIMIT + 1),
            QUANTITY_ABOVE_LIMIT,
        ),
        (
            "buy/unknown-product",
            "product_id names no product of the sale",
            format!(r#"{{"buyer_id":"{buyer}","quantity":1,"product_id":"no-such-product"}}"#),
            UNKNOWN_PRODUCT,
        ),
        (
            "buy/body-too-large",
            "a 17 KiB body (the limit is 16 KiB)",
            big,
            BODY_TOO_LARGE,
        ),
    ];
    for (name, what, body, expected) in cases {
        run.refused_buy(name, &sales.main, what, body, expected)
            .await;
    }
}

/// Missing and invalid keys; a key reused with another body, replayed with the same body, sent by
/// another buyer, and reused on another sale.
pub(super) async fn keys(run: &mut Run, sales: &Sales) {
    let Ok(main) = sales.main.clone() else {
        let reason = sales.main.clone().unwrap_err();
        for name in [
            "key/missing",
            "key/contains-a-space",
            "key/too-long",
            "key/reused-with-another-body",
            "key/replayed-with-the-same-body",
            "key/another-buyers-key",
        ] {
            run.not_checked(
                name,
                "POST /sales/{sale}/orders".into(),
                "see docs/contract.md".into(),
                &reason,
            );
        }
        return;
    };
    let request = |what: &str| format!("POST /sales/{main}/orders: {what}; valid body");
    let send = run.buy(&main, None, good_body(1));
    run.refusal(
        "key/missing",
        request("no Idempotency-Key header"),
        MISSING_KEY,
        send,
    )
    .await;
    let send = run.buy(&main, Some("has a space"), good_body(1));
    run.refusal(
        "key/contains-a-space",
        request("Idempotency-Key \"has a space\" (not visible ASCII only)"),
        INVALID_KEY,
        send,
    )
    .await;
    let send = run.buy(&main, Some(&"k".repeat(256)), good_body(1));
    run.refusal(
        "key/too-long",
        request("a 256-character Idempotency-Key (maxLength 255)"),
        INVALID_KEY,
        send,
    )
    .await;

    // The first request with the key must make an order, or the reuse cases say nothing.
    let key = fresh_key();
    let buyer = fresh_buyer();
    let first_body = json!({"buyer_id": buyer, "quantity": 1}).to_string();
    let first = probe::send(run.buy(&main, Some(&key), first_body.clone())).await;
    let first_order = first
        .json
        .as_ref()
        .filter(|_| first.status == Some(201))
        .and_then(|j| j["order_id"].as_str())
        .map(str::to_owned);
    let reused_request = format!(
        "POST /sales/{main}/orders: the key of an order (quantity 1) sent again with quantity 2"
    );
    let replay_request =
        format!("POST /sales/{main}/orders: the key and body of an order sent again");
    let replay_expected =
        "201 with the first order's order_id and `Idempotent-Replayed: true`, no new order";
    let Some(first_order) = first_order else {
        let reason =
            format!("the first buy with the key was answered {first}, not 201 with an order");
        run.not_checked(
            "key/reused-with-another-body",
            reused_request,
            KEY_REUSED.to_string(),
            &reason,
        );
        run.not_checked(
            "key/replayed-with-the-same-body",
            replay_request,
            replay_expected.into(),
            &reason,
        );
        run.not_checked(
            "key/reused-on-another-sale",
            "POST /sales/{limited}/orders".into(),
            KEY_REUSED.to_string(),
            &reason,
        );
        run.not_checked(
            "key/another-buyers-key",
            "POST /sales/{main}/orders".into(),
            ANOTHER_BUYERS_KEY.into(),
            &reason,
        );
        return;
    };
    let second_body = json!({"buyer_id": buyer, "quantity": 2}).to_string();
    let send = run.buy(&main, Some(&key), second_body);
    run.refusal(
        "key/reused-with-another-body",
        reused_request,
        KEY_REUSED,
        send,
    )
    .await;

    let before = run.snapshot().await;
    let replay = probe::send(run.buy(&main, Some(&key), first_body.clone())).await;
    let after = run.snapshot().await;
    let same_order = replay
        .json
        .as_ref()
        .and_then(|j| j["order_id"].as_str())
        .is_some_and(|id| id == first_order);
    let change = match (&before, &after) {
        (Ok(b), Ok(a)) => b.changes_to(a),
        _ => None,
    };
    let got = format!(
        "{replay}, Idempotent-Replayed: {}{}",
        replay.replayed.as_deref().unwrap_or("absent"),
        change
            .as_deref()
            .map(|c| format!("; ledger changed: {c}"))
            .unwrap_or_default()
    );
    let held = replay.status == Some(201)
        && same_order
        && replay.replayed.as_deref() == Some("true")
        && change.is_none();
    run.judged(
        "key/replayed-with-the-same-body",
        replay_request,
        replay_expected.into(),
        if held {
            Judged::Held(got)
        } else {
            Judged::Violated(got)
        },
    );
    if let Some(case) = run.report.cases.last_mut() {
        case.ledger_unchanged = match (&before, &after) {
            (Ok(_), Ok(_)) => Some(change.is_none()),
            _ => None,
        };
    }
    another_buyers_key(run, &main, &key, &first_order).await;
    // Kept for `limited_sale`: a buyer's key is the buyer's across sales, so reusing it for
    // another sale is a conflict.
    run.used_key = Some((key, first_body));
}

const ANOTHER_BUYERS_KEY: &str =
    "201 with an order of its own (keys are scoped to the buyer), not the first buyer's order";

/// Another buyer sending a key one buyer already used: a request of its own, answered with an
/// order of its own, never with the first buyer's order id (which would leak it) and never
/// refused (which would let one buyer block another's key).
async fn another_buyers_key(run: &mut Run, main: &str, key: &str, first_order: &str) {
    let request =
        format!("POST /sales/{main}/orders: the key of another buyer's order, sent by a new buyer");
    let answer = probe::send(run.buy(main, Some(key), good_body(1))).await;
    let order = answer
        .json
        .as_ref()
        .and_then(|j| j["order_id"].as_str())
        .map(str::to_owned);
    let got = answer.to_string();
    let held = answer.status == Some(201)
        && order.as_deref().is_some_and(|id| id != first_order)
        && answer.replayed.is_none();
    run.judged(
        "key/another-buyers-key",
        request,
        ANOTHER_BUYERS_KEY.into(),
        if held {
            Judged::Held(got)
        } else {
            Judged::Violated(got)
        },
    );
}

/// Sales that cannot be bought from: unknown, malformed id, not activated, window not started.
pub(super) async fn unbuyable_sales(run: &mut Run, sales: &Sales) {
    let unknown = Ok(Uuid::new_v4().to_string());
    run.refused_buy(
        "buy/unknown-sale",
        &unknown,
        "a sale id no sale has",
        good_body(1),
        SALE_NOT_FOUND,
    )
    .await;
    let malformed = Ok("not-a-uuid".to_owned());
    run.refused_buy(
        "buy/malformed-sale-id",
        &malformed,
        "a sale id that is not a UUID",
        good_body(1),
        SALE_NOT_FOUND,
    )
    .await;
    run.refused_buy(
        "buy/sale-not-activated",
        &sales.scheduled,
        "a sale in its window that was never activated",
        good_body(1),
        SALE_NOT_LIVE,
    )
    .await;
    run.refused_buy(
        "buy/window-not-started",
        &sales.future,
        "an activated sale whose window starts in an hour",
        good_body(1),
        SALE_NOT_LIVE,
    )
    .await;
}

/// On the `limited` sale (activated by the lifecycle cases): above its per-buyer limit in one
/// order and across two, and a key of the `main` sale's order reused here.
pub(super) async fn limited_sale(run: &mut Run, sales: &Sales) {
    run.refused_buy(
        "buy/quantity-above-per-buyer-limit",
        &sales.limited,
        "quantity 3 on a sale whose per_buyer_limit is 2",
        good_body(PER_BUYER_LIMIT + 1),
        QUANTITY_ABOVE_LIMIT,
    )
    .await;
    buyer_limit_across_orders(run, sales).await;
    let name = "key/reused-on-another-sale";
    let request =
        "POST /sales/{limited}/orders: the key and body of an order of another sale".to_owned();
    match (&sales.limited, run.used_key.clone()) {
        (Err(reason), _) => run.not_checked(name, request, KEY_REUSED.to_string(), reason),
        (Ok(_), None) => run.not_checked(
            name,
            request,
            KEY_REUSED.to_string(),
            "no order with a known key was made on the `main` sale",
        ),
        (Ok(limited), Some((key, body))) => {
            let request = format!(
                "POST /sales/{limited}/orders: the key and body of an order of another sale"
            );
            let send = run.buy(limited, Some(&key), body);
            run.refusal(name, request, KEY_REUSED, send).await;
        }
    }
}

/// A buyer who holds the limit already (one order of `PER_BUYER_LIMIT` units) asking for one
/// more unit with a new key: the limit is on the buyer, not on one order.
async fn buyer_limit_across_orders(run: &mut Run, sales: &Sales) {
    let name = "buy/buyer-limit-across-orders";
    let request = |sale: &str| {
        format!(
            "POST /sales/{sale}/orders: 1 more unit, new key, by a buyer who already bought \
             {PER_BUYER_LIMIT} (the per_buyer_limit)"
        )
    };
    let limited = match &sales.limited {
        Ok(limited) => limited.clone(),
        Err(reason) => {
            return run.not_checked(
                name,
                request("{limited}"),
                BUYER_LIMIT_REACHED.to_string(),
                reason,
            );
        }
    };
    let buyer = fresh_buyer();
    let first = probe::send(run.buy(
        &limited,
        Some(&fresh_key()),
        json!({"buyer_id": buyer, "quantity": PER_BUYER_LIMIT}).to_string(),
    ))
    .await;
    if first.status != Some(201) {
        let reason = format!(
            "the buyer's first order of {PER_BUYER_LIMIT} units was answered {first}, not 201"
        );
        return run.not_checked(
            name,
            request(&limited),
            BUYER_LIMIT_REACHED.to_string(),
            &reason,
        );
    }
    let send = run.buy(
        &limited,
        Some(&fresh_key()),
        json!({"buyer_id": buyer, "quantity": 1}).to_string(),
    );
    run.refusal(name, request(&limited), BUYER_LIMIT_REACHED, send)
        .await;
}
