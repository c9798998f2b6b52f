//! The slot ledger refuses oversell by itself, whatever a buggy or stale caller tries, and the
//! units sync converges `quantity_sold` to the orders (INV-6).

use flashsale_server::InventoryStrategy;
use flashsale_server::ledger::holds::{self, HoldRequest};
use flashsale_server::ledger::orders::{self, InsertError, NewOrder, OrderRequest};
use uuid::Uuid;

use crate::helpers::{burst, spawn_app};

fn request(sale: Uuid, key: &str, quantity: i32) -> OrderRequest {
    OrderRequest {
        sale_id: sale,
        product_id: "tee".into(),
        unit_price_cents: 1500,
        buyer_id: "b".into(),
        quantity,
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn the_database_refuses_every_way_to_oversell() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(2)).await;
    let cap = Some(2);
    orders::insert(&app.pool, &request(sale, "a", 1), cap, &[1], "test")
        .await
        .unwrap();
    orders::insert(&app.pool, &request(sale, "b", 1), cap, &[2], "test")
        .await
        .unwrap();

    // A slot someone already owns.
    let taken = orders::insert(&app.pool, &request(sale, "c", 1), cap, &[2], "test").await;
    assert!(matches!(taken, Err(InsertError::SlotTaken)), "{taken:?}");
    // A slot beyond the cap.
    let beyond = orders::insert(&app.pool, &request(sale, "d", 1), cap, &[3], "test").await;
    assert!(
        matches!(beyond, Err(InsertError::Database(_))),
        "{beyond:?}"
    );
    // Lying about the cap.
    let lie = orders::insert(&app.pool, &request(sale, "e", 1), Some(5), &[3], "test").await;
    assert!(matches!(lie, Err(InsertError::Database(_))), "{lie:?}");
    assert!(format!("{lie:?}").contains("not the sale's"), "{lie:?}");
    // An order with fewer slots than units, or none.
    let short = orders::insert(&app.pool, &request(sale, "f", 2), cap, &[], "test").await;
    assert!(matches!(short, Err(InsertError::Database(_))), "{short:?}");
    // A free slot added later to an order that already owns its quantity.
    let roomy = app.live_sale(Some(3)).await;
    let owner = orders::insert(&app.pool, &request(roomy, "r", 1), Some(3), &[1], "test")
        .await
        .unwrap();
    let extra = sqlx::query(
        "INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 2, 3, $2)",
    )
    .bind(roomy)
    .bind(owner.order_id)
    .execute(&app.pool)
    .await;
    let refusal = extra.expect_err("an order cannot gain slots").to_string();
    assert!(refusal.contains("owns 2 slots"), "{refusal}");
    // A batch where one order is short of its slots: the whole batch is refused.
    let batch = [
        orders::NewOrder {
            req: request(sale, "g", 1),
            sale_cap: cap,
            slots: vec![],
            decided_by: "test",
        },
        orders::NewOrder {
            req: request(sale, "h", 1),
            sale_cap: cap,
            slots: vec![],
            decided_by: "test",
        },
    ];
    let short_batch = orders::insert_many(&app.pool, &batch).await;
    assert!(
        matches!(short_batch, Err(InsertError::Database(_))),
        "{short_batch:?}"
    );
    assert!(format!("{short_batch:?}").contains("but owns 0 slots"));
    // Rewriting history.
    let grow = sqlx::query("UPDATE orders SET quantity = 5")
        .execute(&app.pool)
        .await;
    assert!(grow.is_err());
    let raise = sqlx::query("UPDATE flash_sales SET unit_cap = 100")
        .execute(&app.pool)
        .await;
    assert!(raise.is_err());
    let forget = sqlx::query("DELETE FROM order_units")
        .execute(&app.pool)
        .await;
    assert!(forget.is_err());

    assert_eq!(app.units_in_database(sale).await, 2);
    assert_eq!(app.units_in_database(roomy).await, 1);
    app.finish().await;
}

/// Migration 0008 replaced three foreign keys by statement checks that read without locks; each
/// fact they stood for is still refused, and what makes an unlocked read enough (sales and
/// products never go away or change their keys) is refused too.
#[tokio::test]
async fn the_statement_checks_stand_where_the_foreign_keys_stood() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(4)).await;
    let other = app.live_sale(Some(4)).await;
    let owner = orders::insert(&app.pool, &request(other, "o", 1), Some(4), &[1], "test")
        .await
        .unwrap();

    // An order of a product the sale does not sell (was orders -> flash_sale_products).
    let mut stranger = request(sale, "p", 1);
    stranger.product_id = "not-on-sale".into();
    let refused = orders::insert(&app.pool, &stranger, Some(4), &[1], "test").await;
    assert!(
        format!("{refused:?}").contains("does not sell"),
        "{refused:?}"
    );
    // Slots naming no order, or an order of another sale (was order_units -> orders).
    let unit = |order: Uuid| {
        sqlx::query(
            "INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 2, 4, $2)",
        )
        .bind(sale)
        .bind(order)
        .execute(&app.pool)
    };
    for order in [Uuid::new_v4(), owner.order_id] {
        let refusal = unit(order).await.expect_err("refused").to_string();
        assert!(refusal.contains("not an order of sale"), "{refusal}");
    }
    // Slots of an unlimited sale name a cap it does not have (was order_units -> flash_sales;
    // the slot count refuses the order too, whichever check runs first).
    let unlimited = app.live_sale(None).await;
    let uncapped = orders::insert(
        &app.pool,
        &request(unlimited, "u", 1),
        Some(4),
        &[1],
        "test",
    )
    .await;
    assert!(
        matches!(uncapped, Err(InsertError::Database(_))),
        "{uncapped:?}"
    );
    let bare_slot = sqlx::query(
        "INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 1, 4, $2)",
    )
    .bind(unlimited)
    .bind(owner.order_id)
    .execute(&app.pool)
    .await
    .expect_err("refused")
    .to_string();
    assert!(bare_slot.contains("not the sale's"), "{bare_slot}");

    // What the unlocked reads rely on: sales and products are permanent.
    for statement in [
        format!("DELETE FROM flash_sales WHERE id = '{sale}'"),
        format!("DELETE FROM flash_sale_products WHERE sale_id = '{sale}'"),
        format!("UPDATE flash_sale_products SET product_id = 'renamed' WHERE sale_id = '{sale}'"),
        "TRUNCATE flash_sales CASCADE".to_owned(),
        "TRUNCATE flash_sale_products CASCADE".to_owned(),
    ] {
        let outcome = sqlx::query(&statement).execute(&app.pool).await;
        assert!(outcome.is_err(), "{statement} was accepted");
    }
    assert_eq!(app.units_in_database(sale).await, 0);
    assert_eq!(app.units_in_database(other).await, 1);
    app.finish().await;
}

/// Migration 0009 folded the four checks an order batch fired into one per table, looking each
/// (sale, product) and (order, sale) pair up once: every fault is still refused, in a batch as
/// alone, and a statement with two faults still names the missing order first.
#[tokio::test]
async fn one_check_per_insert_refuses_what_the_four_refused() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(6)).await;
    let other = app.live_sale(Some(6)).await;
    let new_order = |key: &str, product: &str, slot: i64| {
        let mut req = request(sale, key, 1);
        req.product_id = product.into();
        NewOrder {
            req,
            sale_cap: Some(6),
            slots: vec![slot],
            decided_by: "test",
        }
    };

    // A batch whose second order is of a product the sale does not sell: all refused.
    let mixed = [new_order("a", "tee", 1), new_order("b", "not-on-sale", 2)];
    let refused = orders::insert_many(&app.pool, &mixed).await;
    assert!(
        format!("{refused:?}").contains("does not sell"),
        "{refused:?}"
    );
    assert_eq!(app.units_in_database(sale).await, 0);

    // A batch whose orders own one slot too few: refused by the order check.
    let short = [
        new_order("c", "tee", 1),
        NewOrder {
            slots: vec![],
            ..new_order("d", "tee", 0)
        },
    ];
    let refused = orders::insert_many(&app.pool, &short).await;
    assert!(
        format!("{refused:?}").contains("but owns 0 slots"),
        "{refused:?}"
    );
    assert_eq!(app.units_in_database(sale).await, 0);

    // One statement, two faulty slots: an extra slot for an order of this sale, and a slot naming
    // an order of another sale. The missing order is the one named, whichever row comes first.
    let mine = orders::insert(&app.pool, &request(sale, "m", 1), Some(6), &[1], "test")
        .await
        .unwrap();
    let theirs = orders::insert(&app.pool, &request(other, "t", 1), Some(6), &[1], "test")
        .await
        .unwrap();
    for (first, second) in [
        (mine.order_id, theirs.order_id),
        (theirs.order_id, mine.order_id),
    ] {
        let refusal = sqlx::query(
            "INSERT INTO order_units (sale_id, slot, sale_cap, order_id)
             VALUES ($1, 2, 6, $2), ($1, 3, 6, $3)",
        )
        .bind(sale)
        .bind(first)
        .bind(second)
        .execute(&app.pool)
        .await
        .expect_err("refused")
        .to_string();
        assert!(refusal.contains("not an order of sale"), "{refusal}");
    }
    // The extra slot alone: refused by the count.
    let extra = sqlx::query(
        "INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 2, 6, $2)",
    )
    .bind(sale)
    .bind(mine.order_id)
    .execute(&app.pool)
    .await
    .expect_err("refused")
    .to_string();
    assert!(extra.contains("has quantity 1 but owns 2 slots"), "{extra}");

    // A live hold given one slot more than it holds: refused by the hold check, which now runs
    // only when a statement inserts a hold's slots.
    let hold = HoldRequest {
        sale_id: sale,
        product_id: "tee".into(),
        unit_price_cents: 1500,
        buyer_id: "h".into(),
        quantity: 1,
        idempotency_key: "h".into(),
        ttl: std::time::Duration::from_secs(600),
    };
    let hold = holds::insert(&app.pool, &hold, Some(6), &[4], "test")
        .await
        .unwrap();
    let grown = sqlx::query(
        "INSERT INTO order_units (sale_id, slot, sale_cap, hold_id) VALUES ($1, 5, 6, $2)",
    )
    .bind(sale)
    .bind(hold.hold_id)
    .execute(&app.pool)
    .await
    .expect_err("refused")
    .to_string();
    assert!(grown.contains("has quantity 1 but owns 2 slots"), "{grown}");

    // What was stored: the one order and the one hold of this sale, one slot each.
    assert_eq!(app.units_in_database(sale).await, 1);
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM order_units WHERE sale_id = $1")
        .bind(sale)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(slots, 2);
    app.finish().await;
}

#[tokio::test]
async fn quantity_sold_converges_to_the_orders() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(8)).await;
    assert_eq!(burst(&app, sale, 20).await.0, 8);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let inventory = app.inventory(sale).await;
        if inventory["quantity_sold"] == 8 {
            assert_eq!(inventory["units_in_orders"], 8);
            assert_eq!(inventory["slots_taken"], 8);
            assert_eq!(inventory["redis_counter"], 8);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "quantity_sold stuck: {inventory}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn appending_above_the_highest_slot_writes_all_or_nothing() {
    let app = spawn_app(InventoryStrategy::Postgres).await;
    let sale = app.live_sale(Some(5)).await;
    orders::insert(&app.pool, &request(sale, "hint", 1), Some(5), &[3], "test")
        .await
        .unwrap();
    let new = |key: &str, quantity: i32| orders::NewOrder {
        req: request(sale, key, quantity),
        sale_cap: Some(5),
        slots: Vec::new(),
        decided_by: "test",
    };
    // Slots 4 and 5 are free above the highest (3): three units do not fit, nothing is written
    // (the holes 1 and 2 are the caller's business).
    let too_many = orders::append_many(&app.pool, sale, 5, &[new("a", 1), new("b", 2)])
        .await
        .unwrap();
    assert!(too_many.is_none());
    assert_eq!(app.units_in_database(sale).await, 1);
    // Two fit: in batch order, the first gets slot 4, the second slot 5.
    let stored = orders::append_many(&app.pool, sale, 5, &[new("c", 1), new("d", 1)])
        .await
        .unwrap()
        .expect("fits");
    assert_eq!(stored.len(), 2);
    let slots: Vec<(String, i64)> = sqlx::query_as(
        "SELECT o.idempotency_key, u.slot FROM order_units u JOIN orders o ON o.id = u.order_id
         WHERE u.sale_id = $1 ORDER BY u.slot",
    )
    .bind(sale)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        slots,
        vec![("hint".into(), 3), ("c".into(), 4), ("d".into(), 5)]
    );
    app.finish().await;
}
