//! Background lifecycle jobs. For now only the units sync (which also expires due cart holds);
//! activation, expiration and notifications are done by hand through the admin API.

pub mod units_sync;
