//! Background jobs: the durable lifecycle queue (`queue`) with activation and expiration
//! (`lifecycle`), and the units sync (which also expires due cart holds). The wishlist alert
//! workers live with the alerts, in `notify`.

pub mod lifecycle;
pub mod queue;
pub mod units_sync;
