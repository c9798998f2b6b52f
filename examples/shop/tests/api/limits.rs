//! `max_per_customer`: a customer's units across all their purchases of a drop.

use std::time::Duration;

use flashsale_example_shop::Variant;

use crate::helpers::{NewDrop, TestShop, buy, count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_past_the_limit_is_refused() {
    let (correct, broken) = TestShop::start_both().await;
    tokio::join!(
        a_customer_past_the_limit_is_refused_on(&correct, Variant::Correct),
        a_customer_past_the_limit_is_refused_on(&broken, Variant::Broken)
    );
    correct.finish().await;
    broken.finish().await;
}

async fn a_customer_past_the_limit_is_refused_on(shop: &TestShop, variant: Variant) {
    let drop = shop
        .create_drop(NewDrop {
            max_per_customer: Some(2),
            ..NewDrop::default()
        })
        .await;
    let mut results = Vec::new();
    for (customer, units) in [("ann", 3), ("ann", 1), ("ann", 2), ("ann", 1), ("ben", 2)] {
        let answer = shop.send(&buy(drop, customer, units, None)).await;
        assert_eq!(answer.status, 200);
        results.push(answer.result().unwrap_or_default().to_owned());
    }
    assert_eq!(
        results,
        [
            "limit_reached",
            "confirmed",
            "limit_reached",
            "confirmed",
            "confirmed"
        ],
        "{variant}"
    );
    assert_eq!(shop.sold(drop).await, 4, "{variant}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_customer_buying_20_times_at_once_gets_the_limit_and_no_more() {
    let shop = TestShop::start(Variant::Correct).await;
    let drop = shop
        .create_drop(NewDrop {
            stock: 100,
            max_per_customer: Some(2),
            ..NewDrop::default()
        })
        .await;

    let answers = shop
        .burst(
            (0..20)
                .map(|i| buy(drop, "greedy", 1, Some(format!("greedy-{i}"))))
                .collect(),
        )
        .await;

    assert_eq!(count(&answers, "confirmed"), 2, "{answers:?}");
    assert_eq!(count(&answers, "limit_reached"), 18, "{answers:?}");
    let units: i32 = shop.purchases(drop).await.iter().map(|p| p.units).sum();
    assert_eq!(units, 2);
    assert_eq!(shop.sold(drop).await, 2);
    // The refused purchases' units went back to the gate.
    assert_eq!(
        shop.settled_left(drop, 98, Duration::from_secs(3)).await,
        Some(98)
    );
    shop.finish().await;
}
