//! The load group: everything that fires buyers at a target and keeps track of how well it did.
//!
//! - [`schedule`]: when each buyer of an arrival model is meant to send;
//! - [`buyers`]: the buyer driver (plans the buyers, fires them, records every attempt);
//! - [`journeys`]: buyer journeys through a cart hold (reserve, think, checkout/release/abandon);
//! - [`request`]: one buyer's request as the target's profile shapes it, and its answer read;
//! - [`health`]: the generator's self-check (schedule lag, CPU), which says whether a run's
//!   latencies are the server's;
//! - [`progress`]: the live progress line on stderr;
//! - [`blast`]: `flashsale blast`, the raw request rate against one URL;
//! - [`wire`]: `blast`'s HTTP/1.1 exchange, one request at a time with nothing allocated per request.

pub mod blast;
pub mod buyers;
pub mod health;
pub mod journeys;
pub mod progress;
pub mod request;
pub mod schedule;
pub mod wire;
