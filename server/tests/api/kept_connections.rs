//! The connection a ledger runner keeps between batches (`ledger::kept`): it is the same backend
//! from one batch to the next, it carries nothing of an abandoned transaction into the next
//! statement, a connection whose statement failed is not kept, a small pool keeps none, and an
//! idle server hands every kept connection back to its pool.

use std::time::{Duration, Instant};

use flashsale_server::InventoryStrategy;
use flashsale_server::ledger::kept::{KEEP_FROM_POOL_SIZE, KeptConnections};
use reqwest::StatusCode;
use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;

use crate::helpers::{burst, postgres_base, spawn_app};

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn advisory_locks_held(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_kept_connection_comes_back_clean_and_only_a_sound_one_is_kept() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let kept = KeptConnections::for_pool(&app.pool, 1);

    // A transaction dropped before its commit, holding a lock, as a claim batch that failed
    // half-way leaves its connection.
    let mut conn = kept.take().await.unwrap();
    let first_backend = backend_pid(&mut conn).await;
    {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(4242)")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(advisory_locks_held(&mut tx).await, 1);
    }
    kept.put_back(conn, true);
    assert_eq!(kept.kept(), 1);

    // The next batch gets the same backend, and the rollback ran before its first statement.
    let mut conn = kept.take().await.unwrap();
    assert_eq!(kept.kept(), 0, "taken out while in use");
    assert_eq!(backend_pid(&mut conn).await, first_backend);
    assert_eq!(
        advisory_locks_held(&mut conn).await,
        0,
        "the abandoned transaction's lock went with its rollback"
    );

    // A statement PostgreSQL refused leaves a sound connection; a failed connection is not kept.
    let refused = sqlx::query("SELECT 1/0")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(flashsale_server::ledger::kept::survives(&refused));
    kept.put_back(conn, true);
    assert_eq!(kept.kept(), 1);
    let conn = kept.take().await.unwrap();
    kept.put_back(conn, false);
    assert_eq!(
        kept.kept(),
        0,
        "an unsound connection goes back to the pool"
    );
    let not_a_refusal = sqlx::Error::Protocol("the connection broke".into());
    assert!(!flashsale_server::ledger::kept::survives(&not_a_refusal));

    // Released: back in the pool.
    let conn = kept.take().await.unwrap();
    kept.put_back(conn, true);
    kept.release();
    assert_eq!(kept.kept(), 0);

    // A pool below the threshold keeps nothing: a runner that never goes idle would otherwise
    // keep one of its few connections from everyone else.
    let small = PgPoolOptions::new()
        .max_connections(KEEP_FROM_POOL_SIZE - 1)
        .connect(&format!("{}/postgres", postgres_base()))
        .await
        .unwrap();
    let small_kept = KeptConnections::for_pool(&small, 1);
    let conn = small_kept.take().await.unwrap();
    small_kept.put_back(conn, true);
    assert_eq!(small_kept.kept(), 0);
    small.close().await;
    app.finish().await;
}

#[tokio::test]
async fn an_idle_server_hands_its_kept_connections_back_to_the_pool() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(1_000)).await;
    let (created, _, other) = burst(&app, sale, 64).await;
    assert_eq!((created, other), (64, 0));
    // The runners went idle after the last batch: every connection the server opened is idle
    // again (a kept one would count as in use), within a bounded wait for the pool's own return
    // task, which pings each connection handed back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (size, idle) = (app.pool.size(), app.pool.num_idle() as u32);
        if size == idle {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {size} connections still in use after the server went idle",
            size - idle
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the next buy still works, on a connection from the pool.
    let response = app.buy(sale, "after-idle", "buyer-after-idle", 1).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.finish().await;
}
