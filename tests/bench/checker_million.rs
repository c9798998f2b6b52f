//! Benchmark for figures G6 and G7 (docs/performance.md): builds a synthetic history of 1,000,000 buy attempts
//! (a big drop: 10,000 ok, 1 % unknown, the rest sold out, a retry after each unknown) with the
//! matching ledger, times `checker::check` on it, and reports the process's peak resident memory
//! (VmHWM), i.e. what the harness needs to hold and check a million recorded attempts.
//!
//! Run in release (`scripts/bench.sh` does): `cargo run --release --bin checker-million`. It is a
//! binary of the tests crate, not an example of the harness, so `cargo build --release
//! --workspace` builds it with the same features as everything else (an example pulls in the
//! dev-dependencies, which changes features and rebuilds the dependency tree).
//! Prints one JSON line: `{"attempts":…,"build_s":…,"check_s":…,"peak_rss_mb":…,"all_held":…}`.
//! Optional arguments: the number of attempts (default 1,000,000), then `keyless` to check the
//! same run as a target that takes no idempotency keys would record it (orders without keys, two
//! requests per buyer) under a limit of two units per buyer, the costliest matching the checker
//! does.

use std::time::Instant;

use flashsale_harness::checker::{self, CheckInput, TargetRules};
use flashsale_harness::ground_truth::{InventoryView, Ledger, LedgerOrder};
use flashsale_harness::history::{Attempt, Outcome, SOLD_OUT};

fn main() {
    let attempts: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the number of attempts"))
        .unwrap_or(1_000_000);
    let keyless = std::env::args().nth(2).is_some_and(|a| a == "keyless");
    let cap = (attempts / 100).max(1);

    let started = Instant::now();
    let (mut history, mut ledger) = synthetic(attempts, cap);
    let rules = if keyless {
        as_keyless(&mut history, &mut ledger);
        TargetRules {
            keys_sent: false,
            per_buyer_units: Some(2),
            per_buyer_orders: None,
        }
    } else {
        TargetRules::default()
    };
    let build_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let report = checker::check(&CheckInput {
        rules,
        ..CheckInput::new(&history, &ledger, Some(cap))
    });
    let check_s = started.elapsed().as_secs_f64();

    println!(
        "{}",
        serde_json::json!({
            "attempts": history.len(),
            "keyless": keyless,
            "orders": ledger.orders.len(),
            "build_s": build_s,
            "check_s": check_s,
            "peak_rss_mb": peak_rss_kib().map(|kib| kib as f64 / 1024.0),
            "all_held": report.all_held(),
            "violated": report.violated(),
        })
    );
}

/// A burst on `cap` units: the first `cap` distinct keys succeed, every 100th later key times out
/// once and is retried (answered sold out), everything else is sold out.
fn synthetic(attempts: u64, cap: u64) -> (Vec<Attempt>, Ledger) {
    let mut history = Vec::with_capacity(attempts as usize);
    let mut orders = Vec::with_capacity(cap as usize);
    let mut key = 0u64;
    while (history.len() as u64) < attempts {
        let seq = history.len() as u64;
        let idempotency_key = format!("k-{key:08}");
        let base = Attempt {
            seq,
            buyer: format!("buyer-{key:08}"),
            idempotency_key: idempotency_key.clone(),
            quantity: 1,
            try_number: 0,
            intended_us: 500_000,
            sent_us: 500_000 + seq / 10,
            completed_us: 510_000 + seq,
            outcome: Outcome::Rejected,
            status: Some(409),
            code: Some(SOLD_OUT.into()),
            order_id: None,
        };
        if key < cap {
            let order_id = format!("00000000-0000-4000-8000-{key:012}");
            orders.push(LedgerOrder {
                order_id: order_id.clone(),
                buyer_id: base.buyer.clone(),
                quantity: 1,
                idempotency_key,
                decided_by: "redis".to_owned(),
                created_at: format!(
                    "2026-11-26T10:00:{:02}.{:06}Z",
                    key / 1_000_000 % 60,
                    key % 1_000_000
                ),
            });
            history.push(Attempt {
                outcome: Outcome::Ok,
                status: Some(201),
                code: None,
                order_id: Some(order_id),
                ..base
            });
        } else if key % 100 == 0 && seq + 1 < attempts {
            history.push(Attempt {
                outcome: Outcome::Unknown,
                status: None,
                code: Some("timeout".into()),
                ..base.clone()
            });
            history.push(Attempt {
                seq: seq + 1,
                try_number: 1,
                ..base
            });
        } else {
            history.push(base);
        }
        key += 1;
    }
    let units = orders.len() as i64;
    let ledger = Ledger {
        orders,
        inventory: InventoryView {
            cap: Some(cap),
            redis_counter: Some(units),
            quantity_sold: Some(units),
            units_in_orders: units,
            units_in_live_holds: None,
        },
    };
    (history, ledger)
}

/// Rewrites the run as a keyless target records it: buyer `buyer-b` sent keys `2b` and `2b+1`
/// (now only the harness's labels), and the orders carry no key.
fn as_keyless(history: &mut [Attempt], ledger: &mut Ledger) {
    let buyer_of = |key: &str| {
        let i: u64 = key.trim_start_matches("k-").parse().expect("k-<n>");
        format!("buyer-{:08}", i / 2)
    };
    for attempt in history {
        attempt.buyer = buyer_of(&attempt.idempotency_key);
    }
    for order in &mut ledger.orders {
        order.buyer_id = buyer_of(&order.idempotency_key);
        order.idempotency_key.clear();
    }
}

/// Peak resident set size of this process, from /proc/self/status (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
