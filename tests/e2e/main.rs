//! End-to-end tests: the reference server and the harness together, on real Redis and
//! PostgreSQL, through the committed scenario files.

mod broken_strategies;
mod faults;
mod reference_server;
