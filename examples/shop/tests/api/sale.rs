//! The sale itself: the correct variant sells exactly the stock to a burst of buyers; the
//! broken one oversells, every time.

use std::collections::HashSet;
use std::time::Duration;

use flashsale_example_shop::Variant;

use crate::helpers::{NewDrop, TestShop, buy, count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_sells_exactly_the_stock_to_300_concurrent_buyers() {
    let shop = TestShop::start(Variant::Correct).await;
    let drop = shop.create_drop(NewDrop::default()).await;

    let answers = shop
        .burst(
            (0..300)
                .map(|i| buy(drop, format!("c-{i}"), 1, Some(format!("k-{i}"))))
                .collect(),
        )
        .await;

    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(count(&answers, "confirmed"), 10);
    assert_eq!(count(&answers, "sold_out"), 290);
    let confirmed: HashSet<&str> = answers.iter().filter_map(|a| a.reference()).collect();
    let ledger = shop.purchases(drop).await;
    let persisted: HashSet<&str> = ledger.iter().map(|p| p.reference.as_str()).collect();
    assert_eq!(ledger.len(), 10);
    assert_eq!(
        confirmed, persisted,
        "every confirmation is a purchase and back"
    );
    assert_eq!(shop.sold(drop).await, 10);
    assert_eq!(
        shop.settled_left(drop, 0, Duration::from_secs(3)).await,
        Some(0)
    );
    shop.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_unit_order_larger_than_what_is_left_is_sold_out() {
    let (correct, broken) = TestShop::start_both().await;
    tokio::join!(
        a_multi_unit_order_larger_than_what_is_left_is_sold_out_on(&correct, Variant::Correct),
        a_multi_unit_order_larger_than_what_is_left_is_sold_out_on(&broken, Variant::Broken)
    );
    correct.finish().await;
    broken.finish().await;
}

async fn a_multi_unit_order_larger_than_what_is_left_is_sold_out_on(
    shop: &TestShop,
    variant: Variant,
) {
    let drop = shop
        .create_drop(NewDrop {
            stock: 5,
            ..NewDrop::default()
        })
        .await;
    let mut results = Vec::new();
    for (i, units) in [3, 3, 2, 1].into_iter().enumerate() {
        let answer = shop.send(&buy(drop, format!("c-{i}"), units, None)).await;
        results.push(answer.result().unwrap_or_default().to_owned());
    }
    assert_eq!(
        results,
        ["confirmed", "sold_out", "confirmed", "sold_out"],
        "{variant}"
    );
    assert_eq!(shop.sold(drop).await, 5, "{variant}");
    let units: i32 = shop.purchases(drop).await.iter().map(|p| p.units).sum();
    assert_eq!(units, 5, "{variant}");
}

/// The point of the broken variant: the harness must be able to catch it, so it must oversell
/// under a burst, every time, not now and then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_oversells_1000_concurrent_buyers_of_10_units_every_time() {
    let shop = TestShop::start(Variant::Broken).await;
    let mut oversold = Vec::new();
    for run in 0..5 {
        let drop = shop.create_drop(NewDrop::default()).await;
        // Without keys: a key costs a read per buyer and changes nothing in the race, and this
        // is the suite's longest test.
        let answers = shop
            .burst(
                (0..1000)
                    .map(|i| buy(drop, format!("r{run}-c{i}"), 1, None))
                    .collect(),
            )
            .await;
        let purchases = shop.purchases(drop).await.len();
        oversold.push((
            purchases,
            count(&answers, "confirmed"),
            shop.sold(drop).await,
        ));
    }
    eprintln!(
        "broken variant, (purchases, confirmed, sold) per run on a stock of 10: {oversold:?}"
    );
    assert!(
        oversold
            .iter()
            .all(|&(purchases, confirmed, sold)| purchases > 10 && confirmed > 10 && sold > 10),
        "every run must oversell: {oversold:?}"
    );
    shop.finish().await;
}
