//! The correct variant's Redis gate under trouble: its key deleted in the middle of a sale, its
//! count set wrong, its link slow then cut, Redis not there at all. PostgreSQL decides every sale, so the stock is sold
//! exactly; the reconcile task brings the count back to `stock - sold`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flashsale_example_shop::Variant;

use crate::helpers::{Answer, NewDrop, TestShop, buy, count, redis_addr};
use crate::proxy::LinkProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_deleted_mid_sale_still_sells_exactly_the_stock() {
    let shop = Arc::new(TestShop::start(Variant::Correct).await);
    let drop = shop
        .create_drop(NewDrop {
            stock: 40,
            ..NewDrop::default()
        })
        .await;
    let mut confirmed = 0;
    for wave in 0..4 {
        // Between waves, and all through the second one, the key disappears (Redis restarted
        // empty, or flushed).
        shop.redis_delete(drop).await;
        let deleting = Arc::new(AtomicBool::new(wave == 1));
        let deleter = tokio::spawn({
            let (shop, deleting) = (shop.clone(), deleting.clone());
            async move {
                while deleting.load(Ordering::Relaxed) {
                    shop.redis_delete(drop).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        let answers = shop
            .burst(
                (0..30)
                    .map(|i| {
                        buy(
                            drop,
                            format!("w{wave}-c{i}"),
                            1,
                            Some(format!("w{wave}-k{i}")),
                        )
                    })
                    .collect(),
            )
            .await;
        deleting.store(false, Ordering::Relaxed);
        deleter.await.expect("deleter");
        assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
        confirmed += count(&answers, "confirmed");
    }
    assert_eq!(confirmed, 40);
    assert_eq!(shop.purchases(drop).await.len(), 40);
    assert_eq!(shop.sold(drop).await, 40);
    assert_eq!(
        shop.settled_left(drop, 0, Duration::from_secs(3)).await,
        Some(0)
    );
    Arc::into_inner(shop)
        .expect("the only owner")
        .finish()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_count_is_reconciled_with_postgres() {
    let shop = TestShop::start(Variant::Correct).await;
    let drop = shop.create_drop(NewDrop::default()).await;
    for i in 0..3 {
        let answer = shop.send(&buy(drop, format!("g{i}"), 1, None)).await;
        assert_eq!(answer.result(), Some("confirmed"));
    }
    let within = Duration::from_secs(3);
    assert_eq!(shop.settled_left(drop, 7, within).await, Some(7));
    shop.redis_set(drop, 999).await;
    assert_eq!(
        shop.settled_left(drop, 7, within).await,
        Some(7),
        "a count set too high"
    );
    shop.redis_set(drop, 0).await;
    assert_eq!(
        shop.settled_left(drop, 7, within).await,
        Some(7),
        "a count set too low"
    );
    shop.redis_delete(drop).await;
    assert_eq!(
        shop.settled_left(drop, 7, within).await,
        Some(7),
        "a count lost"
    );
    shop.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_stock_is_still_sold_exactly() {
    // Nothing listens on port 1: every gate call fails at once, and PostgreSQL decides alone.
    let shop = TestShop::start_with(Variant::Correct, "redis://127.0.0.1:1/").await;
    let drop = shop.create_drop(NewDrop::default()).await;
    let answers = shop
        .burst(
            (0..100)
                .map(|i| buy(drop, format!("h{i}"), 1, Some(format!("k{i}"))))
                .collect(),
        )
        .await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(count(&answers, "confirmed"), 10);
    assert_eq!(count(&answers, "sold_out"), 90);
    assert_eq!(shop.sold(drop).await, 10);
    assert_eq!(shop.purchases(drop).await.len(), 10);
    shop.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_then_cut_redis_link_still_sells_exactly_the_stock() {
    let proxy = LinkProxy::start(redis_addr()).await;
    let shop = TestShop::start_with(Variant::Correct, &format!("redis://{}/", proxy.addr)).await;
    let drop = shop
        .create_drop(NewDrop {
            stock: 30,
            ..NewDrop::default()
        })
        .await;
    let wave = |name: &str, buyers: usize| -> Vec<_> {
        (0..buyers)
            .map(|i| {
                buy(
                    drop,
                    format!("{name}-c{i}"),
                    1,
                    Some(format!("{name}-k{i}")),
                )
            })
            .collect()
    };
    let confirmed = |answers: &[Answer]| {
        assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
        count(answers, "confirmed")
    };

    assert_eq!(confirmed(&shop.burst(wave("fast", 10)).await), 10);
    // Slower than the gate's timeout: every gate call gives up, its take landing later (or not
    // at all), and PostgreSQL sells alone.
    proxy.set_delay(Duration::from_millis(300));
    assert_eq!(confirmed(&shop.burst(wave("slow", 15)).await), 15);
    // Healed, but every connection is cut first: the late takes must not turn the last five
    // units into false sold-outs.
    proxy.set_delay(Duration::ZERO);
    proxy.cut();
    let last = shop.burst(wave("cut", 30)).await;
    assert_eq!(confirmed(&last), 5, "{last:?}");
    assert_eq!(count(&last, "sold_out"), 25);

    assert_eq!(shop.sold(drop).await, 30);
    assert_eq!(shop.purchases(drop).await.len(), 30);
    assert_eq!(
        shop.settled_left(drop, 0, Duration::from_secs(3)).await,
        Some(0)
    );
    shop.finish().await;
}
