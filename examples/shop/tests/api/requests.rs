//! What is not a purchase: malformed requests (400, each with its problem), unknown drops
//! (404), a wrong sku, and the health check.

use flashsale_example_shop::Variant;
use serde_json::json;

use crate::helpers::{Buy, NewDrop, SKU, TestShop, buy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_answered_400_and_change_nothing() {
    let shop = TestShop::start(Variant::Correct).await;
    let drop = shop.create_drop(NewDrop::default()).await;
    let id = drop.to_string();
    let good = json!({"customer_id": "dan", "sku": SKU, "units": 1}).to_string();
    let long_key = vec![b'k'; 129];
    let huge = format!(
        r#"{{"customer_id":"dan","sku":"{SKU}","units":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    type Headers<'a> = Vec<(&'a str, &'a [u8])>;
    let cases: Vec<(&str, String, Headers)> = vec![
        ("empty body", String::new(), vec![]),
        ("not JSON", "units=1".into(), vec![]),
        ("truncated JSON", "{\"customer_id\":".into(), vec![]),
        ("not an object", "[1,2]".into(), vec![]),
        (
            "no customer_id",
            json!({"sku": SKU, "units": 1}).to_string(),
            vec![],
        ),
        (
            "no sku",
            json!({"customer_id": "dan", "units": 1}).to_string(),
            vec![],
        ),
        (
            "no units",
            json!({"customer_id": "dan", "sku": SKU}).to_string(),
            vec![],
        ),
        (
            "units 0",
            json!({"customer_id": "dan", "sku": SKU, "units": 0}).to_string(),
            vec![],
        ),
        (
            "units -1",
            json!({"customer_id": "dan", "sku": SKU, "units": -1}).to_string(),
            vec![],
        ),
        (
            "units 1.5",
            json!({"customer_id": "dan", "sku": SKU, "units": 1.5}).to_string(),
            vec![],
        ),
        (
            "units as text",
            json!({"customer_id": "dan", "sku": SKU, "units": "1"}).to_string(),
            vec![],
        ),
        (
            "units too large",
            json!({"customer_id": "dan", "sku": SKU, "units": 1u64 << 40}).to_string(),
            vec![],
        ),
        (
            "customer_id empty",
            json!({"customer_id": "", "sku": SKU, "units": 1}).to_string(),
            vec![],
        ),
        (
            "customer_id too long",
            json!({"customer_id": "d".repeat(65), "sku": SKU, "units": 1}).to_string(),
            vec![],
        ),
        (
            "customer_id with NUL",
            json!({"customer_id": "d\u{0}n", "sku": SKU, "units": 1}).to_string(),
            vec![],
        ),
        (
            "customer_id a number",
            json!({"customer_id": 5, "sku": SKU, "units": 1}).to_string(),
            vec![],
        ),
        ("empty key", good.clone(), vec![("X-Request-Key", b"")]),
        (
            "key too long",
            good.clone(),
            vec![("X-Request-Key", &long_key)],
        ),
        (
            "key not UTF-8",
            good.clone(),
            vec![("X-Request-Key", b"\xff\xfe")],
        ),
        ("body over 64 KiB", huge, vec![]),
    ];
    for (what, body, headers) in cases {
        let answer = shop.post_raw(&id, body, &headers).await;
        assert_eq!(answer.status, 400, "{what}: {answer:?}");
        assert_eq!(answer.problem(), Some("bad_request"), "{what}: {answer:?}");
        assert!(
            answer.body["problem"]["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}: {answer:?}"
        );
    }
    assert_eq!(shop.get("/healthz").await.body, json!({"ok": true}));
    assert!(shop.purchases(drop).await.is_empty());
    assert_eq!(shop.sold(drop).await, 0);
    // And the shop still sells.
    let answer = shop.post_raw(&id, good, &[]).await;
    assert_eq!(answer.result(), Some("confirmed"), "{answer:?}");
    shop.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_drops_are_404_until_they_are_created() {
    let shop = TestShop::start(Variant::Correct).await;
    for id in [
        "1",
        "999999",
        "0",
        "-1",
        "abc",
        "1.5",
        "99999999999999999999",
    ] {
        let answer = shop
            .send(&Buy {
                drop: id.into(),
                ..buy(1, "eve", 1, None)
            })
            .await;
        assert_eq!(answer.status, 404, "{id}: {answer:?}");
        assert_eq!(
            answer.body,
            json!({"problem": {"type": "no_such_drop"}}),
            "{id}"
        );
    }
    // Drop 1 was asked for before it existed; created now, it is found (no negative caching).
    let drop = shop.create_drop(NewDrop::default()).await;
    assert_eq!(drop, 1);
    let answer = shop.send(&buy(drop, "eve", 1, None)).await;
    assert_eq!(answer.result(), Some("confirmed"), "{answer:?}");

    let other_route = shop.get("/api/v2/drops").await;
    assert_eq!(other_route.status, 404);
    shop.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sku_is_refused_and_sells_nothing() {
    let (correct, broken) = TestShop::start_both().await;
    tokio::join!(
        a_wrong_sku_is_refused_and_sells_nothing_on(&correct, Variant::Correct),
        a_wrong_sku_is_refused_and_sells_nothing_on(&broken, Variant::Broken)
    );
    correct.finish().await;
    broken.finish().await;
}

async fn a_wrong_sku_is_refused_and_sells_nothing_on(shop: &TestShop, variant: Variant) {
    let drop = shop.create_drop(NewDrop::default()).await;
    let answer = shop
        .send(&Buy {
            body: json!({"customer_id": "fay", "sku": "SKU-2", "units": 1}),
            ..buy(drop, "fay", 1, Some("k".into()))
        })
        .await;
    assert_eq!(
        (answer.status, answer.result()),
        (200, Some("wrong_sku")),
        "{variant}"
    );
    assert!(shop.purchases(drop).await.is_empty());
    assert_eq!(shop.sold(drop).await, 0);
    // The key was not used up by the refusal.
    let retry = shop.send(&buy(drop, "fay", 1, Some("k".into()))).await;
    assert_eq!(retry.result(), Some("confirmed"), "{variant}");
    assert!(!retry.replayed());
}
