//! The `[arrival]` table: when buyers arrive, as a file says it (the send times themselves are
//! computed in `load/schedule.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::values::default_open_after;

/// When buyers arrive. Tagged by `model`; the open models (`burst`, `constant-rate`, `ramp`) fix
/// every buyer's intended send time in advance, independent of how fast the server answers,
/// while the closed model lets each of a fixed number of buyers wait for its answer first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", try_from = "ArrivalTable")]
pub enum Arrival {
    /// "Doors open": every buyer's intended send time is the same instant, `open_after` the
    /// set-up, which is the hardest case for an inventory counter.
    Burst {
        #[serde(with = "humantime_serde", default = "default_open_after")]
        open_after: Duration,
    },
    /// An open model: buyer `i` is intended to send at `open_after + i / rate`, fixed in advance
    /// and independent of how fast the server answers, so demand keeps coming while faults hit.
    ConstantRate {
        #[serde(with = "humantime_serde", default = "default_open_after")]
        open_after: Duration,
        /// Buyers per second.
        rate: f64,
    },
    /// An open model whose rate grows (or falls) linearly from `from_rate` to `to_rate` over
    /// `over`, then stays at `to_rate` until every buyer has arrived: how demand builds up when
    /// a sale is announced, and how to find the rate at which latency breaks.
    Ramp {
        #[serde(with = "humantime_serde", default = "default_open_after")]
        open_after: Duration,
        /// Buyers per second at doors open (may be 0).
        from_rate: f64,
        /// Buyers per second once `over` has passed.
        to_rate: f64,
        #[serde(with = "humantime_serde")]
        over: Duration,
    },
    /// A closed model: `concurrency` buyers at a time, each sending, waiting for its answer,
    /// thinking for `think_time`, then taking the next buyer of the list, until the list is
    /// exhausted. The offered load then depends on the server's speed, which is why the open
    /// models are the ones to read latency from; this one answers "how many shoppers can the
    /// server keep busy".
    Closed {
        #[serde(with = "humantime_serde", default = "default_open_after")]
        open_after: Duration,
        concurrency: u32,
        #[serde(with = "humantime_serde", default)]
        think_time: Duration,
    },
}

impl Arrival {
    pub fn open_after(&self) -> Duration {
        match self {
            Arrival::Burst { open_after }
            | Arrival::ConstantRate { open_after, .. }
            | Arrival::Ramp { open_after, .. }
            | Arrival::Closed { open_after, .. } => *open_after,
        }
    }

    /// The model's name as written in the file.
    pub fn model(&self) -> &'static str {
        match self {
            Arrival::Burst { .. } => "burst",
            Arrival::ConstantRate { .. } => "constant-rate",
            Arrival::Ramp { .. } => "ramp",
            Arrival::Closed { .. } => "closed",
        }
    }
}

/// The `[arrival]` table as written. Read through a plain struct rather than the tagged enum
/// because serde buffers internally tagged content, and the toml crate then points an unknown key
/// at the table header instead of at the key's own line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArrivalTable {
    model: ArrivalModel,
    #[serde(with = "humantime_serde", default = "default_open_after")]
    open_after: Duration,
    rate: Option<f64>,
    from_rate: Option<f64>,
    to_rate: Option<f64>,
    #[serde(with = "humantime_serde", default)]
    over: Option<Duration>,
    concurrency: Option<u32>,
    #[serde(with = "humantime_serde", default)]
    think_time: Option<Duration>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum ArrivalModel {
    Burst,
    ConstantRate,
    Ramp,
    Closed,
}

impl ArrivalModel {
    fn name(self) -> &'static str {
        match self {
            ArrivalModel::Burst => "burst",
            ArrivalModel::ConstantRate => "constant-rate",
            ArrivalModel::Ramp => "ramp",
            ArrivalModel::Closed => "closed",
        }
    }
}

/// A rate of buyers per second: finite and positive, or also 0 where `zero_ok`.
fn rate(key: &str, value: Option<f64>, model: ArrivalModel, zero_ok: bool) -> Result<f64, String> {
    let example = if key == "rate" { "200" } else { "50" };
    match value {
        None => Err(format!(
            "model = \"{}\" needs arrival.{key}, buyers per second (e.g. {key} = {example})",
            model.name()
        )),
        Some(r) if r.is_finite() && (r > 0.0 || (zero_ok && r == 0.0)) => Ok(r),
        Some(r) => Err(format!(
            "arrival.{key} must be a {} number of buyers per second (got {r})",
            if zero_ok { "non-negative" } else { "positive" }
        )),
    }
}

impl TryFrom<ArrivalTable> for Arrival {
    type Error = String;

    fn try_from(table: ArrivalTable) -> Result<Self, String> {
        let model = table.model;
        // Keys of another model are refused rather than ignored: a `rate` left in a ramp would
        // otherwise silently do nothing.
        let keys = [
            ("rate", table.rate.is_some(), ArrivalModel::ConstantRate),
            ("from_rate", table.from_rate.is_some(), ArrivalModel::Ramp),
            ("to_rate", table.to_rate.is_some(), ArrivalModel::Ramp),
            ("over", table.over.is_some(), ArrivalModel::Ramp),
            (
                "concurrency",
                table.concurrency.is_some(),
                ArrivalModel::Closed,
            ),
            (
                "think_time",
                table.think_time.is_some(),
                ArrivalModel::Closed,
            ),
        ];
        if let Some((key, _, owner)) = keys
            .iter()
            .find(|(_, given, owner)| *given && *owner != model)
        {
            let why = if model == ArrivalModel::Burst {
                "; a burst releases every buyer at once"
            } else {
                ""
            };
            return Err(format!(
                "arrival.{key} applies to model = \"{}\", not \"{}\"{why}",
                owner.name(),
                model.name()
            ));
        }
        let open_after = table.open_after;
        match model {
            ArrivalModel::Burst => Ok(Arrival::Burst { open_after }),
            ArrivalModel::ConstantRate => Ok(Arrival::ConstantRate {
                open_after,
                rate: rate("rate", table.rate, model, false)?,
            }),
            ArrivalModel::Ramp => {
                let from_rate = rate("from_rate", table.from_rate, model, true)?;
                let to_rate = rate("to_rate", table.to_rate, model, false)?;
                match table.over {
                    Some(over) if !over.is_zero() => Ok(Arrival::Ramp {
                        open_after,
                        from_rate,
                        to_rate,
                        over,
                    }),
                    _ => Err(
                        "model = \"ramp\" needs arrival.over, how long the ramp lasts (e.g. over = \"10s\")"
                            .to_owned(),
                    ),
                }
            }
            ArrivalModel::Closed => match table.concurrency {
                Some(concurrency) if concurrency > 0 => Ok(Arrival::Closed {
                    open_after,
                    concurrency,
                    think_time: table.think_time.unwrap_or_default(),
                }),
                _ => Err(
                    "model = \"closed\" needs arrival.concurrency >= 1, the buyers active at once (e.g. concurrency = 50)"
                        .to_owned(),
                ),
            },
        }
    }
}

impl Default for Arrival {
    fn default() -> Self {
        Arrival::Burst {
            open_after: default_open_after(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::fixtures::*;

    #[test]
    fn arrival_keys_of_another_model_or_missing_ones_are_named() {
        let err = |table: &str| parse_message(&format!("{MINIMAL}[arrival]\n{table}"));
        let rate_in_ramp = err("model = \"ramp\"\nrate = 5\nto_rate = 1\nover = \"1s\"\n");
        assert!(
            rate_in_ramp
                .contains("arrival.rate applies to model = \"constant-rate\", not \"ramp\""),
            "{rate_in_ramp}"
        );
        let burst = err("model = \"burst\"\nrate = 5\n");
        assert!(
            burst.contains("a burst releases every buyer at once"),
            "{burst}"
        );
        assert!(err("model = \"ramp\"\nfrom_rate = 1\nto_rate = 5\n").contains("arrival.over"));
        assert!(
            err("model = \"ramp\"\nfrom_rate = -1\nto_rate = 5\nover = \"1s\"\n")
                .contains("non-negative")
        );
        assert!(err("model = \"closed\"\n").contains("arrival.concurrency"));
        assert!(err("model = \"closed\"\nconcurrency = 0\n").contains(">= 1"));
        assert!(
            err("model = \"constant-rate\"\nthink_time = \"1s\"\nrate = 1\n")
                .contains("think_time")
        );
    }
}
