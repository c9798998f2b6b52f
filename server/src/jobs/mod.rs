//! Background lifecycle jobs. For now only the units sync; activation, expiration and
//! notifications are done by hand through the admin API.

pub mod units_sync;
