//! Latency primitives: histograms at the project's precision, split by outcome class, and the
//! statistics read from them. The load generator, the thresholds and the report all measure with
//! these, so they sit below all three.
//!
//! Every attempt is recorded twice: from its actual send (service latency, what the server
//! cost) and from its intended send (response latency, what the shopper waited, corrected for
//! coordinated omission). Both are kept because their difference is the load generator's own
//! queueing, which must not be mistaken for server latency.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::{Attempt, Outcome, SOLD_OUT};

/// Significant digits kept by every histogram: 0.1% relative error, the HdrHistogram default.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// The outcome classes latency is split by. Sold-out answers are apart from other rejections
/// because a fast "no" is the bulk of a flash sale's traffic and would otherwise hide how slow
/// the rare "yes" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LatencyClass {
    Ok,
    SoldOut,
    OtherRejection,
    Unknown,
    All,
}

impl LatencyClass {
    pub const ALL: [LatencyClass; 5] = [
        LatencyClass::Ok,
        LatencyClass::SoldOut,
        LatencyClass::OtherRejection,
        LatencyClass::Unknown,
        LatencyClass::All,
    ];

    /// The name used in `summary.json` keys and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyClass::Ok => "ok",
            LatencyClass::SoldOut => "sold_out",
            LatencyClass::OtherRejection => "other_rejection",
            LatencyClass::Unknown => "unknown",
            LatencyClass::All => "all",
        }
    }

    /// The class named `name` in `summary.json` and file names.
    pub fn from_name(name: &str) -> Option<LatencyClass> {
        LatencyClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The class of one attempt (never [`LatencyClass::All`], which every attempt also joins).
    pub fn of(attempt: &Attempt) -> LatencyClass {
        match attempt.outcome {
            Outcome::Ok => LatencyClass::Ok,
            Outcome::Rejected if attempt.code.as_deref() == Some(SOLD_OUT) => LatencyClass::SoldOut,
            Outcome::Rejected => LatencyClass::OtherRejection,
            Outcome::Unknown => LatencyClass::Unknown,
        }
    }
}

/// Percentiles of one class, in microseconds, at the histograms' 3-significant-digit precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
}

impl LatencyStats {
    pub fn of(h: &Histogram<u64>) -> Self {
        LatencyStats {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// How far the real send times fell behind the intended ones, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpreadStats {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Both latency families of a run, one histogram per class that has samples.
pub struct LatencyHistograms {
    pub from_send: BTreeMap<LatencyClass, Histogram<u64>>,
    pub from_intended: BTreeMap<LatencyClass, Histogram<u64>>,
    /// `sent_us - intended_us` of first tries: for a burst, how far apart the real sends were
    /// from the "doors open" instant. Retries are left out because they are meant to be late.
    pub send_spread: Histogram<u64>,
}

impl LatencyHistograms {
    pub fn record(history: &[Attempt]) -> Self {
        let mut from_send = BTreeMap::new();
        let mut from_intended = BTreeMap::new();
        let mut send_spread = new_histogram();
        for attempt in history {
            for class in [LatencyClass::of(attempt), LatencyClass::All] {
                record(
                    from_send.entry(class).or_insert_with(new_histogram),
                    attempt.service_latency_us(),
                );
                record(
                    from_intended.entry(class).or_insert_with(new_histogram),
                    attempt.response_latency_us(),
                );
            }
            if attempt.try_number == 0 {
                record(
                    &mut send_spread,
                    attempt.sent_us.saturating_sub(attempt.intended_us),
                );
            }
        }
        LatencyHistograms {
            from_send,
            from_intended,
            send_spread,
        }
    }

    pub fn stats(
        histograms: &BTreeMap<LatencyClass, Histogram<u64>>,
    ) -> BTreeMap<String, LatencyStats> {
        histograms
            .iter()
            .map(|(class, h)| (class.as_str().to_owned(), LatencyStats::of(h)))
            .collect()
    }

    pub fn spread(&self) -> SpreadStats {
        SpreadStats::of(&self.send_spread)
    }
}

impl SpreadStats {
    /// The stats of `h`; all zeros for an empty histogram, so the shape of the JSON never varies.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return SpreadStats {
                count: 0,
                p50_us: 0,
                p99_us: 0,
                max_us: 0,
            };
        }
        SpreadStats {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// An empty, auto-resizing histogram at the project's precision.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid histogram precision")
}

/// Records `value`, growing the histogram as needed. `saturating_record` alone would clamp to
/// the current (tiny, initially 2) upper bound instead of growing, so it is only the fallback
/// for a value beyond any bound the histogram can grow to, which only a corrupt clock produces.
pub fn record(h: &mut Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        h.saturating_record(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_split_sold_out_from_other_rejections() {
        let base = Attempt {
            seq: 0,
            buyer: "b".into(),
            idempotency_key: "k".into(),
            quantity: 1,
            try_number: 0,
            intended_us: 100,
            sent_us: 150,
            completed_us: 1_150,
            outcome: Outcome::Rejected,
            status: Some(409),
            code: Some(SOLD_OUT.into()),
            order_id: None,
        };
        let other = Attempt {
            code: Some("not_live".into()),
            try_number: 1,
            intended_us: 0,
            sent_us: 5_000,
            completed_us: 6_000,
            ..base.clone()
        };
        assert_eq!(LatencyClass::of(&base), LatencyClass::SoldOut);
        assert_eq!(LatencyClass::of(&other), LatencyClass::OtherRejection);

        let h = LatencyHistograms::record(&[base, other]);
        let keys: Vec<LatencyClass> = h.from_send.keys().copied().collect();
        assert_eq!(
            keys,
            [
                LatencyClass::SoldOut,
                LatencyClass::OtherRejection,
                LatencyClass::All
            ]
        );
        let sold_out = LatencyStats::of(&h.from_intended[&LatencyClass::SoldOut]);
        assert_eq!((sold_out.count, sold_out.max_us), (1, 1_050));
        let all_send = LatencyStats::of(&h.from_send[&LatencyClass::All]);
        assert_eq!((all_send.count, all_send.max_us), (2, 1_000));
        // Only the first try counts towards the send spread.
        assert_eq!(h.spread().count, 1);
        assert_eq!(h.spread().max_us, 50);
    }
}
