//! Test fixtures shared by the checker's tests: hand-made attempts, orders and ledgers, and
//! one way to judge a single invariant on them.

use super::{CheckInput, Index, InvariantResult, TargetRules};

use crate::ground_truth::{InventoryView, Ledger, LedgerOrder};
use crate::history::{Attempt, FaultRecord, InventorySample, Outcome};

/// The rules of a target that takes no idempotency keys (and sets no per-buyer limit).
pub const KEYLESS: TargetRules = TargetRules {
    keys_sent: false,
    per_buyer_units: None,
    per_buyer_orders: None,
};

/// An attempt by buyer `b-<key>`; the tests then set the outcome they need.
pub fn attempt(seq: u64, key: &str, quantity: u32, outcome: Outcome) -> Attempt {
    Attempt {
        seq,
        buyer: format!("b-{key}"),
        idempotency_key: key.to_owned(),
        quantity,
        try_number: 0,
        intended_us: 1_000,
        sent_us: 1_000 + seq,
        completed_us: 2_000 + seq * 10,
        outcome,
        status: None,
        code: None,
        order_id: None,
    }
}

pub fn ok(seq: u64, key: &str, quantity: u32, order_id: &str) -> Attempt {
    Attempt {
        status: Some(201),
        order_id: Some(order_id.to_owned()),
        ..attempt(seq, key, quantity, Outcome::Ok)
    }
}

pub fn rejected(seq: u64, key: &str, quantity: u32, code: &str) -> Attempt {
    Attempt {
        status: Some(409),
        code: Some(code.into()),
        ..attempt(seq, key, quantity, Outcome::Rejected)
    }
}

pub fn unknown(seq: u64, key: &str, quantity: u32) -> Attempt {
    Attempt {
        code: Some("timeout".into()),
        ..attempt(seq, key, quantity, Outcome::Unknown)
    }
}

/// An order for buyer `b-<key>`, committed `second` seconds into the hour.
pub fn order(order_id: &str, key: &str, quantity: u32, second: u32) -> LedgerOrder {
    LedgerOrder {
        order_id: order_id.to_owned(),
        buyer_id: format!("b-{key}"),
        quantity,
        idempotency_key: key.to_owned(),
        decided_by: "redis".to_owned(),
        created_at: format!("2026-11-26T10:00:{second:02}Z"),
    }
}

/// `attempt`, sent by `buyer` instead of `b-<key>`: a buyer with several requests, each with its
/// own key (or, for a keyless target, the harness's own label).
pub fn by(buyer: &str, attempt: Attempt) -> Attempt {
    Attempt {
        buyer: buyer.to_owned(),
        ..attempt
    }
}

/// An order of `buyer` made with `key`, committed `second` seconds into the hour.
pub fn owned(order_id: &str, buyer: &str, key: &str, quantity: u32, second: u32) -> LedgerOrder {
    LedgerOrder {
        buyer_id: buyer.to_owned(),
        ..order(order_id, key, quantity, second)
    }
}

/// An order of `buyer` on a target that takes no idempotency keys: its key field is empty.
pub fn keyless_order(order_id: &str, buyer: &str, quantity: u32, second: u32) -> LedgerOrder {
    owned(order_id, buyer, "", quantity, second)
}

pub fn ledger(orders: Vec<LedgerOrder>, cap: Option<u64>) -> Ledger {
    let units: u32 = orders.iter().map(|o| o.quantity).sum();
    Ledger {
        orders,
        inventory: InventoryView {
            cap,
            redis_counter: None,
            quantity_sold: Some(i64::from(units)),
            units_in_orders: i64::from(units),
            units_in_live_holds: None,
        },
    }
}

/// A fault of `kind` from `started_us`, healed at `ended_us` (`None`: never healed).
pub fn fault(kind: &str, started_us: u64, ended_us: Option<u64>) -> FaultRecord {
    FaultRecord {
        kind: kind.to_owned(),
        planned: format!("{kind} at {started_us} µs"),
        started_us,
        ended_us,
        detail: format!("applied {kind}"),
    }
}

/// An inventory reading at `at_us`; `None` stands for a failed reading.
pub fn sample(at_us: u64, units_in_orders: Option<i64>) -> InventorySample {
    InventorySample {
        at_us,
        units_in_orders,
        units_in_live_holds: None,
        quantity_sold: units_in_orders,
        redis_counter: units_in_orders,
        error: units_in_orders
            .is_none()
            .then(|| "connection refused".to_owned()),
    }
}

pub fn order_ids(cx: &super::Counterexample) -> Vec<&str> {
    cx.orders.iter().map(|o| o.order_id.as_str()).collect()
}

pub fn attempt_seqs(cx: &super::Counterexample) -> Vec<u64> {
    cx.attempts.iter().map(|a| a.seq).collect()
}

/// Judges one invariant on `input` with the index the checker builds, as [`super::check`] does.
pub fn check_one(
    check: fn(&CheckInput, &Index) -> InvariantResult,
    input: &CheckInput,
) -> InvariantResult {
    check(
        input,
        &Index::new(input.history, input.ledger, input.rules.keys_sent),
    )
}
