//! Background jobs: activation and expiration (`lifecycle`), run from the durable queue in
//! `job_queue.rs`, and the units sync (which also expires due cart holds). The wishlist alert
//! workers live with the alerts, in `notify`.

pub mod lifecycle;
pub mod units_sync;
