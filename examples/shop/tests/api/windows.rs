//! `closed`: a drop not opened (`is_open` false), not yet open, or past `closes_at`; judged at
//! the instant of the purchase, so opening a drop by SQL while the shop runs takes effect at
//! once.

use flashsale_example_shop::Variant;

use crate::helpers::{NewDrop, TestShop, buy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_outside_its_window_or_not_opened_is_closed() {
    let (correct, broken) = TestShop::start_both().await;
    tokio::join!(
        a_drop_outside_its_window_or_not_opened_is_closed_on(&correct, Variant::Correct),
        a_drop_outside_its_window_or_not_opened_is_closed_on(&broken, Variant::Broken)
    );
    correct.finish().await;
    broken.finish().await;
}

async fn a_drop_outside_its_window_or_not_opened_is_closed_on(shop: &TestShop, variant: Variant) {
    let early = shop
        .create_drop(NewDrop {
            opens_in: 3600.0,
            closes_in: 7200.0,
            ..NewDrop::default()
        })
        .await;
    let late = shop
        .create_drop(NewDrop {
            opens_in: -7200.0,
            closes_in: -60.0,
            ..NewDrop::default()
        })
        .await;
    let unopened = shop
        .create_drop(NewDrop {
            is_open: false,
            ..NewDrop::default()
        })
        .await;
    for drop in [early, late, unopened] {
        let answer = shop
            .send(&buy(drop, "carl", 1, Some(format!("k{drop}"))))
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.result(), Some("closed"), "{variant}, drop {drop}");
        assert_eq!(shop.sold(drop).await, 0);
        assert!(shop.purchases(drop).await.is_empty());
    }

    shop.execute(
        "UPDATE shop_drops SET is_open = true WHERE id = $1",
        unopened,
    )
    .await;
    let opened = shop
        .send(&buy(unopened, "carl", 1, Some("after".into())))
        .await;
    assert_eq!(opened.result(), Some("confirmed"), "{variant}: {opened:?}");

    shop.execute(
        "UPDATE shop_drops SET is_open = false WHERE id = $1",
        unopened,
    )
    .await;
    let closed_again = shop.send(&buy(unopened, "carl", 1, None)).await;
    assert_eq!(closed_again.result(), Some("closed"), "{variant}");
    assert_eq!(shop.sold(unopened).await, 1);
}
