//! Wishlist-alert fan-out runs (INV-8): the scenario kind `wishlist-fanout`, the loopback SMTP
//! sink and Web Push receiver that stand in for the mail relay and the browsers' push services,
//! and the run that drives the reference server's activation and alert workers through faults.

pub mod push_receiver;
pub mod run;
pub mod scenario;
pub mod smtp_sink;
