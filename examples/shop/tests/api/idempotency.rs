//! `X-Request-Key`: a key used again on the same drop answers with the original purchase,
//! whatever the body says, and concurrent copies of a key make one purchase.

use std::collections::HashSet;
use std::time::Duration;

use flashsale_example_shop::Variant;
use serde_json::json;

use crate::helpers::{Buy, NewDrop, TestShop, buy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_replays_its_purchase_and_refuses_another_body() {
    let (correct, broken) = TestShop::start_both().await;
    tokio::join!(
        a_repeated_key_replays_its_purchase_and_refuses_another_body_on(&correct, Variant::Correct),
        a_repeated_key_replays_its_purchase_and_refuses_another_body_on(&broken, Variant::Broken)
    );
    correct.finish().await;
    broken.finish().await;
}

async fn a_repeated_key_replays_its_purchase_and_refuses_another_body_on(
    shop: &TestShop,
    variant: Variant,
) {
    let drop = shop.create_drop(NewDrop::default()).await;
    let first = shop
        .send(&buy(drop, "alice", 2, Some("key-1".into())))
        .await;
    assert_eq!(first.result(), Some("confirmed"), "{variant}: {first:?}");
    assert!(!first.replayed());

    let again = shop
        .send(&buy(drop, "alice", 2, Some("key-1".into())))
        .await;
    let other_body = shop
        .send(&Buy {
            drop: drop.to_string(),
            body: json!({"customer_id": "mallory", "sku": "NOT-THIS-ONE", "units": 7}),
            key: Some("key-1".into()),
        })
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.result(), Some("confirmed"), "{variant}: {again:?}");
    assert!(again.replayed(), "{variant}: {again:?}");
    assert_eq!(again.body["purchase"], first.body["purchase"], "{variant}");
    // Another customer with alice's key is refused, never told alice's purchase.
    assert_eq!(other_body.status, 200);
    assert_eq!(
        other_body.result(),
        Some("key_reused"),
        "{variant}: {other_body:?}"
    );
    assert!(
        other_body.body.get("purchase").is_none(),
        "{variant}: {other_body:?}"
    );

    // The key is scoped to the drop: on another drop it is a new purchase.
    let other_drop = shop.create_drop(NewDrop::default()).await;
    let elsewhere = shop
        .send(&buy(other_drop, "alice", 1, Some("key-1".into())))
        .await;
    assert_eq!(elsewhere.result(), Some("confirmed"));
    assert!(!elsewhere.replayed());
    assert_ne!(elsewhere.reference(), first.reference());

    let ledger = shop.purchases(drop).await;
    assert_eq!(ledger.len(), 1, "{variant}");
    assert_eq!(ledger[0].customer, "alice");
    assert_eq!(ledger[0].units, 2);
    assert_eq!(ledger[0].request_key.as_deref(), Some("key-1"));
    assert_eq!(shop.sold(drop).await, 2, "{variant}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_copies_of_a_key_make_one_purchase() {
    let shop = TestShop::start(Variant::Correct).await;
    let drop = shop.create_drop(NewDrop::default()).await;

    let answers = shop
        .burst(vec![buy(drop, "bob", 1, Some("same-key".into())); 20])
        .await;

    assert!(
        answers.iter().all(|a| a.result() == Some("confirmed")),
        "every copy is told about the one purchase: {answers:?}"
    );
    let references: HashSet<&str> = answers.iter().filter_map(|a| a.reference()).collect();
    assert_eq!(references.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|a| !a.replayed()).count(), 1);
    assert_eq!(shop.purchases(drop).await.len(), 1);
    assert_eq!(shop.sold(drop).await, 1);
    // The copies' units went back to the gate.
    assert_eq!(
        shop.settled_left(drop, 9, Duration::from_secs(3)).await,
        Some(9)
    );
    shop.finish().await;
}
