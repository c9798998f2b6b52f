//! The example shop's tests, against a shop served in-process on port 0, each on a database
//! and a Redis prefix of its own. They need PostgreSQL on 127.0.0.1:5432 (user postgres, trust
//! auth) and Redis on 127.0.0.1:6379 (`SHOP_TEST_POSTGRES`, `SHOP_TEST_REDIS` to change).

mod helpers;
mod proxy;

mod idempotency;
mod limits;
mod postgres_outage;
mod redis_gate;
mod requests;
mod sale;
mod windows;
