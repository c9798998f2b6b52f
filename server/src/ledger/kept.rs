//! Connections a batch runner keeps from one batch to the next instead of handing each back to
//! the pool.
//!
//! Why: sqlx's pool pings every connection handed back to it before it lends it again (a round
//! trip to PostgreSQL, run by a task of its own, so that a connection left half-way through a
//! statement is never lent), and it lends idle connections first in, first out. A runner that
//! took a pooled connection for each batch therefore paid a second round trip per batch, and
//! each batch woke a different backend process of the pool's thirty-odd, whose caches had gone
//! cold meanwhile. With 32 wrk connections on two cores (G3, docs/performance.md), keeping the
//! connection took durable orders from 13.3-15.5k to 15.5-17.6k a second (nine 8 s runs of
//! each, servers alternating).
//!
//! The rule that keeps this as safe as the pool's ping: a connection is kept only after the
//! statement that used it completed, successfully or refused by PostgreSQL itself (a constraint,
//! a raised exception), which leaves the protocol at a clean point. A transaction dropped
//! before its commit has queued its rollback on the connection, and sqlx sends it before the
//! next statement. Any other error (I/O, protocol, decoding) drops the connection, and so does a
//! batch abandoned mid-statement at its deadline: it goes back through the pool's own path,
//! ping included.
//!
//! Kept connections go back to the pool when their runner finds no work waiting
//! ([`KeptConnections::release`], called by the coalescer when it goes idle), so an idle server's
//! pool looks as it always did, and only when the pool is large enough that what the runners
//! keep leaves room for everything else ([`KeptConnections::for_pool`]).

use std::sync::{Mutex, PoisonError};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// The smallest pool whose runners keep connections. The ledger's three runners keep at most
/// one each; with eight or more connections, at least five stay for holds, jobs and the
/// requests a batch redoes one by one. A smaller pool is shared as before: a runner that never
/// goes idle would otherwise keep its connection from everyone else for as long as the load
/// lasts.
pub const KEEP_FROM_POOL_SIZE: u32 = 8;

/// The connections one runner (or a few) keep between batches. See the module documentation.
#[derive(Debug)]
pub struct KeptConnections {
    pool: PgPool,
    kept: Mutex<Vec<PoolConnection<Postgres>>>,
    at_most: usize,
}

impl KeptConnections {
    /// Keeps up to `at_most` connections of `pool`, none when the pool has fewer than
    /// [`KEEP_FROM_POOL_SIZE`] connections.
    pub fn for_pool(pool: &PgPool, at_most: usize) -> Self {
        let at_most = if pool.options().get_max_connections() >= KEEP_FROM_POOL_SIZE {
            at_most
        } else {
            0
        };
        Self {
            pool: pool.clone(),
            kept: Mutex::new(Vec::new()),
            at_most,
        }
    }

    /// The pool the connections come from, for work that does not need a kept one.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connection kept last, or one from the pool when none is kept.
    pub async fn take(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        let kept = self.lock().pop();
        match kept {
            Some(conn) => Ok(conn),
            None => self.pool.acquire().await,
        }
    }

    /// Runs `work` on a kept connection (or one from the pool) and keeps the connection afterwards
    /// when `work` succeeded or failed with an error `sound` calls a clean point ([`survives`]).
    /// Dropped half-way (a batch past its deadline), the connection goes back through the pool.
    pub async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
        sound: impl FnOnce(&E) -> bool,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error>,
    {
        let mut conn = self.take().await?;
        let done = work(&mut conn).await;
        let keep = done.as_ref().err().is_none_or(sound);
        self.put_back(conn, keep);
        done
    }

    /// Keeps `conn` for the next batch when `sound` (its last statement completed; see
    /// [`survives`]) and there is room; otherwise it goes back to the pool.
    pub fn put_back(&self, conn: PoolConnection<Postgres>, sound: bool) {
        if !sound {
            return; // dropped: the pool pings it, or closes it if broken
        }
        let mut kept = self.lock();
        if kept.len() < self.at_most {
            kept.push(conn);
        }
    }

    /// Hands every kept connection back to the pool.
    pub fn release(&self) {
        let released = std::mem::take(&mut *self.lock());
        drop(released); // outside the lock: each drop spawns the pool's return task
    }

    /// How many connections are kept now.
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PoolConnection<Postgres>>> {
        // Nothing panics while holding it; a poisoned lock still guards a valid list.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a connection that answered `err` is at a clean point and may be kept: PostgreSQL
/// refused the statement and said so (a database error), rather than the connection failing.
pub fn survives(err: &sqlx::Error) -> bool {
    err.as_database_error().is_some()
}
