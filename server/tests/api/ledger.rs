//! The slot ledger refuses oversell by itself, whatever a buggy or stale caller tries, and the
//! units sync converges `quantity_sold` to the orders (INV-6).

use flashsale_server::InventoryStrategy;
use flashsale_server::ledger::holds::{self, HoldRequest};
use flashsale_server::ledger::orders::{self, InsertError, NewOrder, OrderRequest};
use uuid::Uuid;

use crate::helpers::{TestApp, burst, spawn_app, spawn_app_without_jobs};

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

/// Each order of `sale`: the path that decided it, its own first slot (if it owns a range), and
/// how many slot rows it owns.
async fn decided_and_owned(app: &TestApp, sale: Uuid) -> Vec<(String, Option<i64>, i64)> {
    sqlx::query_as(
        "SELECT o.decided_by, o.slot, (SELECT count(*) FROM order_units u WHERE u.order_id = o.id)
         FROM orders o WHERE o.sale_id = $1",
    )
    .bind(sale)
    .fetch_all(&app.pool)
    .await
    .unwrap()
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
    // Lying about the cap: slot rows name the cap they were checked against, and an order's own
    // slot (migration 0010) is held against the sale's real cap.
    let lie = orders::insert(&app.pool, &request(sale, "e", 2), Some(5), &[3, 5], "test").await;
    assert!(matches!(lie, Err(InsertError::Database(_))), "{lie:?}");
    assert!(format!("{lie:?}").contains("not the sale's"), "{lie:?}");
    let range_lie =
        orders::insert(&app.pool, &request(sale, "e2", 2), Some(5), &[3, 4], "test").await;
    assert!(
        format!("{range_lie:?}").contains("names slot 4, beyond the cap"),
        "{range_lie:?}"
    );
    let own_lie = orders::insert(&app.pool, &request(sale, "e1", 1), Some(5), &[3], "test").await;
    assert!(
        format!("{own_lie:?}").contains("names slot 3, beyond the cap"),
        "{own_lie:?}"
    );
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
    // Forgetting a slot: an order's own slot is a column of an append-only row, and a
    // multi-unit order's slot rows are append-only too (slots sent out of order are stored as
    // rows, migration 0013).
    let pair = orders::insert(&app.pool, &request(roomy, "p", 2), Some(3), &[3, 2], "test")
        .await
        .unwrap();
    for forget in [
        "UPDATE orders SET slot = NULL".to_owned(),
        "DELETE FROM orders".to_owned(),
        format!(
            "DELETE FROM order_units WHERE order_id = '{}'",
            pair.order_id
        ),
        format!(
            "UPDATE order_units SET slot = 9 WHERE order_id = '{}'",
            pair.order_id
        ),
    ] {
        let refused = sqlx::query(&forget).execute(&app.pool).await;
        assert!(refused.is_err(), "{forget} was accepted");
    }
    let slots: Vec<(i64, bool)> = sqlx::query_as(
        "SELECT slot, hold_id IS NULL FROM sale_slots WHERE sale_id = $1 ORDER BY slot",
    )
    .bind(roomy)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(slots, [(1, true), (2, true), (3, true)]);

    assert_eq!(app.units_in_database(sale).await, 2);
    assert_eq!(app.units_in_database(roomy).await, 3);
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
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM sale_slots WHERE sale_id = $1")
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
async fn units_sync_leaves_out_a_sale_still_for_a_while_until_its_next_order_or_a_full_pass() {
    use flashsale_server::jobs::units_sync::{FULL_PASS_EVERY, UnitsSync};
    let still_for = std::time::Duration::from_secs(2);
    let app = spawn_app_without_jobs(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(10)).await;
    assert_eq!(burst(&app, sale, 3).await.0, 3);
    let mut sync = UnitsSync::default().still_for(still_for);
    sync.pass(&app.pool).await.unwrap();
    assert_eq!(
        app.inventory(sale).await["quantity_sold"],
        3,
        "the first pass is a full one"
    );
    // The figure goes wrong while the sale's newest order stays the same: what an order
    // committed after a newer one was read looks like to the job. While the sale moved lately,
    // each tick sums it again.
    let spoil = async || {
        sqlx::query("UPDATE flash_sales SET quantity_sold = 0 WHERE id = $1")
            .bind(sale)
            .execute(&app.pool)
            .await
            .unwrap();
    };
    spoil().await;
    sync.pass(&app.pool).await.unwrap();
    assert_eq!(
        app.inventory(sale).await["quantity_sold"],
        3,
        "a sale that moved lately is summed"
    );
    // Still for longer than `still_for`: left out until the full pass.
    tokio::time::sleep(still_for + std::time::Duration::from_millis(500)).await;
    spoil().await;
    for _ in 2..FULL_PASS_EVERY {
        sync.pass(&app.pool).await.unwrap();
        assert_eq!(
            app.inventory(sale).await["quantity_sold"],
            0,
            "a still sale is left out"
        );
    }
    sync.pass(&app.pool).await.unwrap();
    assert_eq!(
        app.inventory(sale).await["quantity_sold"],
        3,
        "the full pass sums every sale"
    );
    // A new order moves the sale: summed at the next tick, a short one.
    assert_eq!(app.buy(sale, "late", "zoe", 1).await.status().as_u16(), 201);
    sync.pass(&app.pool).await.unwrap();
    assert_eq!(app.inventory(sale).await["quantity_sold"], 4);
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
        "SELECT o.idempotency_key, u.slot FROM sale_slots u JOIN orders o ON o.id = u.order_id
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

/// Migration 0010: a one-unit order carries its slot in `orders.slot`. The same slot is refused
/// whichever table holds it first, and a burst on the Redis path stores one row per order.
#[tokio::test]
async fn an_own_slot_and_a_slot_row_cannot_share_a_number() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(6)).await;
    let cap = Some(6);
    // Own slot first, then a slot row of a two-unit order on it (slots 1 and 3 are not
    // consecutive, so they are rows).
    orders::insert(&app.pool, &request(sale, "own", 1), cap, &[1], "test")
        .await
        .unwrap();
    let row_after =
        orders::insert(&app.pool, &request(sale, "rows", 2), cap, &[1, 3], "test").await;
    assert!(
        matches!(row_after, Err(InsertError::SlotTaken)),
        "{row_after:?}"
    );
    // A slot row first, then an own slot on it.
    orders::insert(&app.pool, &request(sale, "rows", 2), cap, &[3, 5], "test")
        .await
        .unwrap();
    let own_after = orders::insert(&app.pool, &request(sale, "own2", 1), cap, &[5], "test").await;
    assert!(
        matches!(own_after, Err(InsertError::SlotTaken)),
        "{own_after:?}"
    );
    assert_eq!(app.units_in_database(sale).await, 3);

    // The server's orders: a one-unit order the Redis path decided is one row, its slot its
    // own. (Near the end the server may recheck in PostgreSQL, whose append path writes slot
    // rows; every order still owns exactly one slot.)
    let bursting = app.live_sale(Some(5)).await;
    assert_eq!(burst(&app, bursting, 12).await.0, 5);
    let stored = decided_and_owned(&app, bursting).await;
    assert_eq!(stored.len(), 5, "{stored:?}");
    assert!(stored.iter().any(|(by, ..)| by == "redis"), "{stored:?}");
    for (decided_by, own_slot, rows) in &stored {
        assert_eq!(i64::from(own_slot.is_some()) + rows, 1, "{stored:?}");
        if decided_by == "redis" {
            assert!(own_slot.is_some() && *rows == 0, "{stored:?}");
        }
    }
    app.finish().await;
}

/// The lock rule of migration 0010, shown with two open transactions: a writer of a slot row
/// waits while the same slot is an uncommitted own slot (and the reverse), then sees it and is
/// refused. Without the lock each would miss the other's uncommitted row and both would commit
/// the same slot. Writers of other slots of the sale do not wait.
#[tokio::test]
async fn writers_of_one_slot_in_the_two_tables_queue_on_its_lock() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let cap = Some(6);
    for own_first in [true, false] {
        let sale = app.live_sale(cap).await;
        let (first, second) = if own_first {
            (
                (request(sale, "first", 1), vec![2]),
                (request(sale, "second", 2), vec![2, 5]),
            )
        } else {
            (
                (request(sale, "first2", 2), vec![2, 5]),
                (request(sale, "second2", 1), vec![2]),
            )
        };
        let mut tx = app.pool.begin().await.unwrap();
        orders::insert(&mut *tx, &first.0, cap, &first.1, "test")
            .await
            .unwrap();
        let pool = app.pool.clone();
        let waiting =
            tokio::spawn(
                async move { orders::insert(&pool, &second.0, cap, &second.1, "test").await },
            );
        // Long enough for the second insert to reach the lock on a loaded machine; if it has not
        // got there yet, it is still unfinished, so the assertion below cannot pass by accident.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "own slot first: {own_first}: the second writer did not wait"
        );
        // Other slots of the same sale, in either table, are written meanwhile.
        let key = if own_first { "other-own" } else { "other-own2" };
        orders::insert(&app.pool, &request(sale, key, 1), cap, &[4], "test")
            .await
            .unwrap();
        let key = if own_first {
            "other-rows"
        } else {
            "other-rows2"
        };
        orders::insert(&app.pool, &request(sale, key, 2), cap, &[3, 6], "test")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let refused = waiting.await.unwrap();
        assert!(
            matches!(refused, Err(InsertError::SlotTaken)),
            "own slot first: {own_first}: {refused:?}"
        );
        let slots: Vec<i64> =
            sqlx::query_scalar("SELECT slot FROM sale_slots WHERE sale_id = $1 ORDER BY slot")
                .bind(sale)
                .fetch_all(&app.pool)
                .await
                .unwrap();
        let expected = if own_first {
            vec![2, 3, 4, 6]
        } else {
            vec![2, 3, 4, 5, 6]
        };
        assert_eq!(slots, expected, "own slot first: {own_first}");
    }
    app.finish().await;
}

/// The lock rule holds at READ COMMITTED only (a later snapshot sees what the lock's previous
/// holder committed); stricter levels are refused before anything is written.
#[tokio::test]
async fn slots_are_not_written_at_stricter_isolation_levels() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(4)).await;
    for level in ["REPEATABLE READ", "SERIALIZABLE"] {
        for (key, quantity, slots) in [
            ("one", 1, vec![1]),
            ("range", 2, vec![1, 2]),
            ("rows", 2, vec![1, 3]),
        ] {
            let mut tx = app.pool.begin().await.unwrap();
            sqlx::query(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            let refused = orders::insert(
                &mut *tx,
                &request(sale, key, quantity),
                Some(4),
                &slots,
                "test",
            )
            .await;
            assert!(
                format!("{refused:?}").contains(&format!("READ COMMITTED only, not at {level}")),
                "{level}, {quantity} units: {refused:?}"
            );
            tx.rollback().await.unwrap();
        }
    }
    assert_eq!(app.units_in_database(sale).await, 0);
    app.finish().await;
}

/// Migration 0011: the orders check no longer counts the slot rows of a one-unit order that
/// carries its own slot in a guarded sale, because the slot-row checks count that own slot. So a
/// slot row naming such an order is refused in the very statement that creates the order, as in
/// a later one; and an own slot in an unguarded sale is still counted, and refused.
#[tokio::test]
async fn a_one_unit_order_gains_no_slot_row_even_in_its_own_statement() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(6)).await;
    let order_id = Uuid::now_v7();
    let same_statement = sqlx::query(
        "WITH new_order AS (
             INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                                 idempotency_key, decided_by, slot)
             VALUES ($2, $1, 'tee', 'b', 1, 1500, 'k', 'test', 1)
         )
         INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 2, 6, $2)",
    )
    .bind(sale)
    .bind(order_id)
    .execute(&app.pool)
    .await;
    let refusal = same_statement
        .expect_err("a one-unit order cannot own a second slot")
        .to_string();
    assert!(refusal.contains("owns 2 slots"), "{refusal}");
    assert_eq!(app.units_in_database(sale).await, 0);

    let unguarded = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO flash_sales (id, name, starts_at, ends_at, state, unit_cap, ledger)
         VALUES ($1, 'unguarded', now() - interval '1 minute', now() + interval '1 hour',
                 'active', 6, 'unguarded')",
    )
    .bind(unguarded)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO flash_sale_products (sale_id, product_id, sale_price_cents)
         VALUES ($1, 'tee', 1500)",
    )
    .bind(unguarded)
    .execute(&app.pool)
    .await
    .unwrap();
    let own_slot = orders::insert(
        &app.pool,
        &request(unguarded, "u", 1),
        Some(6),
        &[1],
        "test",
    )
    .await;
    assert!(
        format!("{own_slot:?}").contains("unlimited or unguarded sale owns slots"),
        "{own_slot:?}"
    );
    app.finish().await;
}

/// Migration 0012: the orders check takes the lock of each own slot itself, in the one query
/// that also counts what the other checks must look at. So an own slot written by a plain
/// `INSERT`, without the server's statement (which takes the locks before its rows), is still
/// under its lock until the writer commits, and only that slot is.
#[tokio::test]
async fn the_orders_check_takes_the_own_slot_locks_itself() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(9)).await;
    let lock_is_free = |slot: i64| {
        let pool = app.pool.clone();
        async move {
            // Outside a transaction the lock, when granted, ends with this statement.
            sqlx::query_scalar::<_, bool>(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))",
            )
            .bind(sale)
            .bind(slot)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let mut tx = app.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                             idempotency_key, decided_by, slot)
         VALUES ($2, $1, 'tee', 'b', 1, 1500, 'plain', 'test', 3),
                ($3, $1, 'tee', 'b', 1, 1500, 'plain2', 'test', 5),
                ($4, $1, 'tee', 'b', 2, 1500, 'plain3', 'test', 7)",
    )
    .bind(sale)
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .unwrap();
    assert!(!lock_is_free(3).await, "own slot 3 is not under its lock");
    assert!(!lock_is_free(5).await, "own slot 5 is not under its lock");
    // Every slot of a range (migration 0013), not only its first.
    assert!(!lock_is_free(7).await, "range slot 7 is not under its lock");
    assert!(!lock_is_free(8).await, "range slot 8 is not under its lock");
    assert!(lock_is_free(4).await, "slot 4, not written, is locked");
    assert!(lock_is_free(9).await, "slot 9, not written, is locked");
    tx.commit().await.unwrap();
    assert!(lock_is_free(3).await, "the lock outlived the transaction");
    assert_eq!(app.units_in_database(sale).await, 4);
    app.finish().await;
}

/// Migration 0013: an order whose slots are consecutive owns them as one row, a range from
/// `orders.slot`. Every way one slot could get a second owner through a range is refused: a
/// range over a slot row or a slot row inside a range, a one-unit order inside a range, a range
/// over another order's first slot or starting inside another range (also within one
/// statement), and a slot row added to a range order. The ranges count as their slots
/// everywhere the ledger is read.
#[tokio::test]
async fn an_order_of_consecutive_slots_is_one_row_that_no_other_owner_can_overlap() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(12)).await;
    let cap = Some(12);
    let range = orders::insert(&app.pool, &request(sale, "r35", 3), cap, &[3, 4, 5], "test")
        .await
        .unwrap();
    orders::insert(&app.pool, &request(sale, "rows", 2), cap, &[7, 9], "test")
        .await
        .unwrap();
    let (own_slot, rows): (Option<i64>, i64) = sqlx::query_as(
        "SELECT o.slot, (SELECT count(*) FROM order_units u WHERE u.order_id = o.id)
         FROM orders o WHERE o.id = $1",
    )
    .bind(range.order_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((own_slot, rows), (Some(3), 0), "a range order is one row");

    // Each is refused; the slot lists are chosen so that consecutive ones are ranges.
    for (key, quantity, slots) in [
        ("inside", 1, vec![4]),
        ("at-the-end", 1, vec![5]),
        ("over-a-first-slot", 3, vec![1, 2, 3]),
        ("over-a-range-end", 2, vec![5, 6]),
        ("starting-inside", 3, vec![4, 5, 6]),
        ("around-a-range", 5, vec![2, 3, 4, 5, 6]),
        ("over-a-row", 2, vec![6, 7]),
        ("around-a-row", 3, vec![8, 9, 10]),
        ("row-inside", 2, vec![4, 11]),
    ] {
        let refused = orders::insert(
            &app.pool,
            &request(sale, key, quantity),
            cap,
            &slots,
            "test",
        )
        .await;
        assert!(
            matches!(refused, Err(InsertError::SlotTaken)),
            "{key}: {refused:?}"
        );
    }
    // Two ranges of one statement that overlap each other, and the same two apart.
    let batch = |a: i64, b: i64| {
        [("batch-a", a), ("batch-b", b)].map(|(key, first)| NewOrder {
            req: request(sale, key, 2),
            sale_cap: cap,
            slots: vec![first, first + 1],
            decided_by: "test",
        })
    };
    let overlapping = orders::insert_many(&app.pool, &batch(10, 11)).await;
    assert!(
        matches!(overlapping, Err(InsertError::SlotTaken)),
        "{overlapping:?}"
    );
    // A range order given one slot row more, in a later statement or in its own.
    let extra = sqlx::query(
        "INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 12, 12, $2)",
    )
    .bind(sale)
    .bind(range.order_id)
    .execute(&app.pool)
    .await
    .expect_err("a range order cannot gain a slot row")
    .to_string();
    assert!(extra.contains("owns 4 slots"), "{extra}");
    let same_statement = sqlx::query(
        "WITH new_order AS (
             INSERT INTO orders (id, sale_id, product_id, buyer_id, quantity, unit_price_cents,
                                 idempotency_key, decided_by, slot)
             VALUES ($2, $1, 'tee', 'b', 2, 1500, 'k', 'test', 10)
         )
         INSERT INTO order_units (sale_id, slot, sale_cap, order_id) VALUES ($1, 12, 12, $2)",
    )
    .bind(sale)
    .bind(Uuid::now_v7())
    .execute(&app.pool)
    .await
    .expect_err("a range order cannot own a slot row")
    .to_string();
    assert!(same_statement.contains("owns 3 slots"), "{same_statement}");

    orders::insert_many(&app.pool, &batch(10, 1)).await.unwrap();
    let slots: Vec<(i64, Option<Uuid>)> =
        sqlx::query_as("SELECT slot, order_id FROM sale_slots WHERE sale_id = $1 ORDER BY slot")
            .bind(sale)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let numbers: Vec<i64> = slots.iter().map(|(slot, _)| *slot).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 7, 9, 10, 11]);
    assert!(
        slots[2..5]
            .iter()
            .all(|(_, owner)| *owner == Some(range.order_id)),
        "{slots:?}"
    );
    let highest: i64 = sqlx::query_scalar("SELECT flashsale_highest_slot($1)")
        .bind(sale)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(highest, 11);
    assert_eq!(app.units_in_database(sale).await, 9);
    app.finish().await;
}

/// Migration 0013's lock rule for ranges: a range takes the lock of every slot it owns, so a
/// writer of any overlapping owner (a one-unit order, another range, a slot row) waits for it,
/// then sees it and is refused, in either order. Without the locks both would commit.
#[tokio::test]
async fn writers_of_overlapping_ranges_queue_on_their_slot_locks() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let cap = Some(8);
    let range = (3, vec![2, 3, 4]);
    for (name, first, second) in [
        ("range, then one unit inside", range.clone(), (1, vec![3])),
        (
            "one unit, then a range over it",
            (1, vec![4]),
            range.clone(),
        ),
        (
            "range, then a range starting inside",
            range.clone(),
            (2, vec![4, 5]),
        ),
        (
            "range, then a range around its start",
            (2, vec![3, 4]),
            range.clone(),
        ),
        (
            "range, then slot rows in it",
            range.clone(),
            (2, vec![4, 6]),
        ),
        (
            "slot rows, then a range over one",
            (2, vec![1, 3]),
            range.clone(),
        ),
    ] {
        let sale = app.live_sale(cap).await;
        let mut tx = app.pool.begin().await.unwrap();
        orders::insert(
            &mut *tx,
            &request(sale, &format!("first-{sale}"), first.0),
            cap,
            &first.1,
            "test",
        )
        .await
        .unwrap();
        let pool = app.pool.clone();
        let waiting = tokio::spawn(async move {
            orders::insert(
                &pool,
                &request(sale, &format!("second-{sale}"), second.0),
                cap,
                &second.1,
                "test",
            )
            .await
        });
        // As in the test above: long enough to reach the lock on a loaded machine, and if it
        // has not, the writer is still unfinished, so the assertion cannot pass by accident.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "{name}: the second writer did not wait"
        );
        tx.commit().await.unwrap();
        let refused = waiting.await.unwrap();
        assert!(
            matches!(refused, Err(InsertError::SlotTaken)),
            "{name}: {refused:?}"
        );
        assert_eq!(
            app.units_in_database(sale).await,
            i64::from(first.0),
            "{name}"
        );
    }
    app.finish().await;
}

/// The server's Redis path hands a claim of several units consecutive slots, so its multi-unit
/// orders are one row each (migration 0013), and the sale still sells exactly its cap when the
/// rest goes in a burst.
#[tokio::test]
async fn the_redis_path_stores_a_multi_unit_order_as_one_row() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(10)).await;
    // One at a time, far from the end: Redis grants each, so each is decided by the Redis path.
    // (In a burst, buyers Redis turns away while the granted orders are still being written are
    // rechecked in PostgreSQL, which may then decide every order of a sale this small.)
    for i in 0..3 {
        let status = app
            .buy(sale, &format!("pair-{i}"), &format!("buyer-{i}"), 2)
            .await
            .status();
        assert_eq!(status.as_u16(), 201, "buy {i}");
    }
    let statuses = futures::future::join_all((3..11).map(|i| {
        let app = &app;
        async move {
            app.buy(sale, &format!("pair-{i}"), &format!("buyer-{i}"), 2)
                .await
                .status()
        }
    }))
    .await;
    let created = statuses.iter().filter(|s| s.as_u16() == 201).count();
    assert_eq!(created, 2, "{statuses:?}");
    let stored = decided_and_owned(&app, sale).await;
    assert_eq!(stored.len(), 5, "{stored:?}");
    let by_redis = stored.iter().filter(|(by, ..)| by == "redis").count();
    assert!(by_redis >= 3, "{stored:?}");
    for (decided_by, own_slot, rows) in &stored {
        if decided_by == "redis" {
            assert!(own_slot.is_some() && *rows == 0, "{stored:?}");
        } else {
            // Near the end the server may decide in PostgreSQL. Its append writes slot rows; its
            // search for holes (when a Redis-path order took the slots above meanwhile) writes
            // consecutive holes as a range, as the Redis path does. Either way two units.
            let as_range = own_slot.is_some() && *rows == 0;
            let as_rows = own_slot.is_none() && *rows == 2;
            assert!(as_range || as_rows, "{stored:?}");
        }
    }
    let slots: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT slot) FROM sale_slots WHERE sale_id = $1")
            .bind(sale)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(slots, 10);
    app.finish().await;
}
