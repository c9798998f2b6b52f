//! Integration tests of the reference server on real PostgreSQL and Redis: one binary, one module
//! per concern, each test with its own database and its own sales (so its own Redis keys).

mod bad_input;
mod buyer_limit;
mod claims;
mod connections;
mod contract;
mod helpers;
mod holds;
mod idempotency;
mod kept_connections;
mod ledger;
mod lifecycle;
mod metrics;
mod startup;
