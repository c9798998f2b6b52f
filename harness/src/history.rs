//! One record per buy attempt: what the harness meant to send, what it sent, and what came back.
//!
//! The history is the harness's side of the truth; the checker compares it with the server's
//! ledger (see [`crate::ledger`]). Times are microseconds since the run's clock origin (the
//! instant the load phase was set up), so a history can be replayed and compared across runs.

use serde::{Deserialize, Serialize};

/// How an attempt ended. `Unknown` is Jepsen's `:info`: the server may or may not have created the
/// order (timeout, connection error, 5xx), so the checker must treat it as "maybe", never as "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An order id came back (HTTP 201).
    Ok,
    /// A definite no: sold out, invalid, not live (HTTP 4xx with a JSON error code).
    Rejected,
    /// The server may or may not have acted on the request.
    Unknown,
}

/// One HTTP buy attempt. A retry with the same idempotency key is a new `Attempt` with the same
/// `idempotency_key` and a higher `try_number`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Position of this attempt in the run, unique, starting at 0.
    pub seq: u64,
    /// The buyer id sent in the request body.
    pub buyer: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: String,
    /// Units requested.
    pub quantity: u32,
    /// 0 for the first try of a key, 1.. for retries with the same key.
    pub try_number: u32,
    /// When the load model meant this attempt to be sent (µs since the run's clock origin).
    pub intended_us: u64,
    /// When the request actually left (after waiting for a connection permit).
    pub sent_us: u64,
    /// When the response (or the error) arrived.
    pub completed_us: u64,
    pub outcome: Outcome,
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// For `Rejected`: the server's JSON error code (e.g. `sold_out`). For `Unknown`: the failure
    /// kind (`timeout`, `connect`, `http_5xx`, `bad_response`, …).
    pub code: Option<String>,
    /// For `Ok`: the order id the server returned.
    pub order_id: Option<String>,
}

impl Attempt {
    /// Latency measured from the actual send (µs).
    pub fn service_latency_us(&self) -> u64 {
        self.completed_us.saturating_sub(self.sent_us)
    }

    /// Latency measured from the intended send time (µs): what a shopper waited, including any
    /// queueing in the load generator. This is the coordinated-omission-corrected figure.
    pub fn response_latency_us(&self) -> u64 {
        self.completed_us.saturating_sub(self.intended_us)
    }
}

/// A fault the harness actually applied, with when it started and when it healed. A run whose
/// faults did not happen must not look like a run that survived them, so only faults that took
/// effect are recorded, each with the times observed by the harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// The NEM kind, e.g. `kill`, `pause`, `latency`, `pg-down`.
    pub kind: String,
    /// What the scenario asked for, in words (trigger, duration, parameters).
    pub planned: String,
    /// When the fault took effect (µs since the run's clock origin).
    pub started_us: u64,
    /// When it was healed; `None` if it lasted to the end of the run (e.g. Redis stays dead).
    pub ended_us: Option<u64>,
    /// What was done, e.g. `SIGKILL container 3f2a…, restarted empty`.
    pub detail: String,
}

/// One reading of the server's inventory view taken *during* the run, so INV-1 is checked at
/// every moment sampled, not only at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySample {
    /// When the reading was answered (µs since the run's clock origin).
    pub at_us: u64,
    /// Units in persisted orders; `None` when the reading failed (e.g. PostgreSQL down).
    pub units_in_orders: Option<i64>,
    pub quantity_sold: Option<i64>,
    pub redis_counter: Option<i64>,
    /// Why the reading failed, if it did.
    pub error: Option<String>,
}
