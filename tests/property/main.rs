//! Oversell property tests: generated scenarios (cap, buyers, quantities, arrival, retries, reused
//! keys, fault timelines) run against the in-process reference server; every invariant must hold
//! for the good strategies, and each deliberately broken strategy must be caught with a small
//! shrunk counterexample. Plus a model-based test of the inventory service alone.
//!
//! Cases per test: `PROPTEST_CASES` (CI keeps the default, a handful). A deep campaign, locally:
//! `PROPTEST_CASES=2000 cargo test --release -p flashsale-e2e --test oversell_property -- --nocapture`
//! or, against any server, `flashsale explore --cases 2000`.

mod generated;
mod model;

/// Cases per property: `PROPTEST_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runtime for the async runs driven from proptest's synchronous runner.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
