//! End-to-end tests: the reference server and the harness together, on real Redis and
//! PostgreSQL, through the committed scenario files.

mod broken_strategies;
mod fanout;
mod faults;
mod hold_mutants;
mod holds;
mod mutants;
mod own_services;
mod per_buyer_limit;
mod reference_server;
mod replicas;
mod shards;
mod soak;
mod verify_mutants;
