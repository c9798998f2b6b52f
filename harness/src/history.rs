//! One record per buy attempt: what the harness meant to send, what it sent, and what came back.
//!
//! The history is the harness's side of the truth; the checker compares it with the server's
//! ledger (see [`crate::ground_truth`]). Times are microseconds since the run's clock origin (the
//! instant the load phase was set up), so a history can be replayed and compared across runs.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

/// Microseconds from the run's clock origin to `at` (0 for an instant before it): the unit of
/// every time in a history.
pub fn micros_since(origin: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(origin).as_micros() as u64
}

/// The error code a server answers with when it has too few units left for the request. The
/// checker judges INV-5 by it and the report splits latency by it, so it lives with the records.
pub const SOLD_OUT: &str = "sold_out";

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
    pub code: Option<Code>,
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

/// An attempt's error code: the server's JSON error code of a rejection, or the harness's kind
/// of an unknown outcome.
///
/// A million attempts carry a handful of distinct codes (`sold_out` above all), so the codes the
/// contract and the harness know are held as `&'static str` and cost no allocation per attempt
/// (G7: the harness's memory for a million recorded attempts); any other code a server answers
/// with is kept as its own string. It reads as a `str` (`attempt.code.as_deref()`), and is
/// written to and read from `history.jsonl` as a plain string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(Cow<'static, str>);

impl Code {
    /// The codes held without an allocation: the server contract's error codes and the
    /// harness's own failure kinds (see `load::classify`).
    const KNOWN: &[&str] = &[
        "sold_out",
        "buyer_limit_reached",
        "timeout",
        "connect",
        "transport",
        "bad_response",
        "unavailable",
        "sale_not_live",
        "sale_not_found",
        "quantity_above_limit",
        "idempotency_key_reused",
        "invalid_quantity",
        "invalid_idempotency_key",
        "missing_idempotency_key",
        "invalid_field",
        "unknown_field",
        "unknown_product",
        "product_required",
        "validation_failed",
        "malformed_json",
        "body_too_large",
        "not_found",
        "method_not_allowed",
        "internal",
        "http_429",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
    ];

    pub fn new(code: &str) -> Self {
        match Self::KNOWN.iter().find(|known| **known == code) {
            Some(known) => Code(Cow::Borrowed(known)),
            None => Code(Cow::Owned(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Code {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Code {
    fn from(code: &str) -> Self {
        Code::new(code)
    }
}

impl From<String> for Code {
    fn from(code: String) -> Self {
        match Code::new(&code) {
            Code(Cow::Owned(_)) => Code(Cow::Owned(code)),
            known => known,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(match code {
            Cow::Borrowed(code) => Code::new(code),
            Cow::Owned(code) => Code::from(code),
        })
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
    /// Units in live cart holds (INV-7), when the target's view reports them; absent from
    /// `samples.jsonl` otherwise, so older files read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_in_live_holds: Option<i64>,
    /// Why the reading failed, if it did.
    pub error: Option<String>,
}

/// Which cart-hold operation a [`HoldAttempt`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldOp {
    Reserve,
    Checkout,
    Release,
}

/// One cart-hold operation of a buyer journey (`holds.jsonl`), recorded like a buy attempt. A
/// checkout is a purchase too: it is also in the history as an [`Attempt`] (its key is the order's
/// key), `attempt_seq` names it, so INV-2..INV-5 judge its order like any other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldAttempt {
    pub kind: HoldOp,
    pub buyer: String,
    /// Reserve and checkout: the `Idempotency-Key` header; release sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The hold acted on; for a reserve, the one answered (`None` when it was refused or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
    pub quantity: u32,
    /// 0 for the first try, 1.. for retries with the same key after an unknown outcome.
    #[serde(default)]
    pub try_number: u32,
    pub sent_us: u64,
    pub completed_us: u64,
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub code: Option<Code>,
    /// The hold's `expires_at` as the server answered it (RFC 3339), on reserve and release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The hold's `state` as answered (`live`, `released`, `expired`, `checked_out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Checkout: the order id of an `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Checkout: the `seq` of the same request in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_seq: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_are_not_allocated_and_every_code_round_trips_as_a_string() {
        assert!(matches!(Code::new("sold_out").0, Cow::Borrowed(_)));
        assert!(matches!(
            Code::from("http_503".to_owned()).0,
            Cow::Borrowed(_)
        ));
        assert!(matches!(Code::new("teapot").0, Cow::Owned(_)));
        for code in ["sold_out", "teapot", "http_418"] {
            let json = serde_json::to_string(&Code::new(code)).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            let back: Code = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
            assert_eq!(back.as_str(), code);
        }
        let attempt_code = Some(Code::new("unavailable"));
        assert_eq!(attempt_code.as_deref(), Some("unavailable"));
    }
}
