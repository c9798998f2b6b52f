//! `[journeys]`: buyers who reserve before they buy (cart holds, issue 15).
//!
//! A share of the buyers reserves units first (`POST /sales/{id}/holds` with a time to live),
//! thinks for a time drawn between `think.min` and `think.max`, then checks the hold out, releases
//! it, or abandons it (lets it expire), in the proportions of `then`. The other buyers buy as
//! before. Which buyer does what is drawn from the run's seed (`load::buyers::plan_buyers`).
//!
//! ```toml
//! [journeys]
//! reserve_first = 1.0                          # share of buyers who reserve first
//! reserve_within = "1500ms"                    # optional: only buyers sent this early reserve
//! hold_ttl = "2s"                              # the hold's time to live (100ms..=1h)
//! think = { min = "100ms", max = "1s" }        # drawn uniformly per buyer
//! then = { checkout = 0.6, release = 0.1, abandon = 0.3 }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The contract's bounds on a hold's time to live (`ttl_ms` 100..=3,600,000).
pub const HOLD_TTL_MIN: Duration = Duration::from_millis(100);
pub const HOLD_TTL_MAX: Duration = Duration::from_secs(3600);

/// Buyer journeys through a cart hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneySpec {
    /// Fraction (0 to 1, above 0) of buyers who reserve before they buy.
    pub reserve_first: f64,
    /// Only buyers whose send time is this soon after doors open reserve (an open arrival
    /// model); those after it buy at once, so demand goes on past the holds' expiry and the
    /// units they give back must sell. `None`: buyers reserve all through the run.
    #[serde(
        with = "humantime_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reserve_within: Option<Duration>,
    /// The time to live each hold asks for (sent as `ttl_ms`).
    #[serde(with = "humantime_serde")]
    pub hold_ttl: Duration,
    /// How long a buyer thinks between the hold's answer and what they do next.
    pub think: ThinkSpec,
    /// What buyers do once they have thought: shares that add up to 1.
    pub then: OutcomeMix,
}

/// A think time drawn uniformly between `min` and `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkSpec {
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

/// The shares of checkout, release and abandon (let the hold expire).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeMix {
    #[serde(default)]
    pub checkout: f64,
    #[serde(default)]
    pub release: f64,
    #[serde(default)]
    pub abandon: f64,
}

/// What a buyer with a journey does after thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyEnd {
    Checkout,
    Release,
    Abandon,
}

impl OutcomeMix {
    /// The end drawn from `x` in `[0, 1)`.
    pub fn pick(&self, x: f64) -> JourneyEnd {
        let total = self.checkout + self.release + self.abandon;
        let x = x * total;
        if x < self.checkout {
            JourneyEnd::Checkout
        } else if x < self.checkout + self.release {
            JourneyEnd::Release
        } else {
            JourneyEnd::Abandon
        }
    }
}

/// Every problem of a `[journeys]` table, worded with the key to fix; `closed`: the arrival
/// model fixes no send time in advance.
pub(super) fn problems(j: &JourneySpec, closed: bool, out: &mut Vec<String>) {
    if j.reserve_within.is_some() && closed {
        out.push(
            "journeys.reserve_within needs an open arrival model (burst, constant-rate, ramp): \
             the closed model fixes no send time in advance"
                .to_owned(),
        );
    }
    if !(j.reserve_first > 0.0 && j.reserve_first <= 1.0) {
        out.push(format!(
            "journeys.reserve_first must be above 0 and at most 1 (got {}); remove [journeys] for \
             buyers who only buy",
            j.reserve_first
        ));
    }
    if j.hold_ttl < HOLD_TTL_MIN || j.hold_ttl > HOLD_TTL_MAX {
        out.push(format!(
            "journeys.hold_ttl must be between 100ms and 1h, the contract's ttl_ms range (got {})",
            humantime::format_duration(j.hold_ttl)
        ));
    }
    if j.think.min > j.think.max {
        out.push(format!(
            "journeys.think.min ({}) must not be above journeys.think.max ({})",
            humantime::format_duration(j.think.min),
            humantime::format_duration(j.think.max)
        ));
    }
    if j.think.max > Duration::from_secs(3600) {
        out.push(format!(
            "journeys.think.max must be at most 1h (got {})",
            humantime::format_duration(j.think.max)
        ));
    }
    let shares = [
        ("checkout", j.then.checkout),
        ("release", j.then.release),
        ("abandon", j.then.abandon),
    ];
    for (name, share) in shares {
        if !(0.0..=1.0).contains(&share) {
            out.push(format!(
                "journeys.then.{name} must be between 0 and 1 (got {share})"
            ));
        }
    }
    let sum: f64 = shares.iter().map(|(_, s)| s).sum();
    if (sum - 1.0).abs() > 1e-6 {
        out.push(format!(
            "journeys.then's shares (checkout {}, release {}, abandon {}) must add up to 1 (got {sum})",
            j.then.checkout, j.then.release, j.then.abandon
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scenario;
    use super::super::fixtures::{MINIMAL, problems_of};
    use super::*;

    const JOURNEYS: &str = "[journeys]\nreserve_first = 0.5\nhold_ttl = \"2s\"\n\
        think = { min = \"100ms\", max = \"1s\" }\n\
        then = { checkout = 0.6, release = 0.1, abandon = 0.3 }\n";

    #[test]
    fn journeys_parse_round_trip_and_are_absent_by_default() {
        let s = Scenario::from_toml_str(&format!("{MINIMAL}{JOURNEYS}"), "t").unwrap();
        let j = s.journeys.clone().unwrap();
        assert_eq!(j.reserve_first, 0.5);
        assert_eq!(j.hold_ttl, Duration::from_secs(2));
        assert_eq!(j.think.min, Duration::from_millis(100));
        assert_eq!(j.then.abandon, 0.3);
        let back = Scenario::from_toml_str(&toml::to_string(&s).unwrap(), "t").unwrap();
        assert_eq!(back, s);
        let plain = Scenario::from_toml_str(MINIMAL, "t").unwrap();
        assert_eq!(plain.journeys, None);
        assert!(
            serde_json::to_value(&plain)
                .unwrap()
                .get("journeys")
                .is_none()
        );
    }

    #[test]
    fn every_bad_value_is_named() {
        let bad = "[journeys]\nreserve_first = 0\nhold_ttl = \"50ms\"\nreserve_within = \"1s\"\n\
            think = { min = \"2s\", max = \"1s\" }\n\
            then = { checkout = 0.6, release = 0.6, abandon = -0.2 }\n";
        let problems = problems_of(&format!("{MINIMAL}{bad}"));
        for needle in [
            "journeys.reserve_first",
            "journeys.hold_ttl",
            "journeys.think.min",
            "journeys.then.abandon",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:?}"
            );
        }
        let sum = problems_of(&format!(
            "{MINIMAL}{}",
            JOURNEYS.replace("abandon = 0.3", "abandon = 0.1")
        ));
        assert!(sum.iter().any(|p| p.contains("add up to 1")), "{sum:?}");
    }

    #[test]
    fn reserve_within_needs_an_open_arrival_model() {
        let closed = format!(
            "{MINIMAL}[arrival]\nmodel = \"closed\"\nconcurrency = 2\n{}",
            JOURNEYS.replace("hold_ttl", "reserve_within = \"1s\"\nhold_ttl")
        );
        let problems = problems_of(&closed);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("journeys.reserve_within")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_mix_picks_by_share() {
        let mix = OutcomeMix {
            checkout: 0.6,
            release: 0.1,
            abandon: 0.3,
        };
        assert_eq!(mix.pick(0.0), JourneyEnd::Checkout);
        assert_eq!(mix.pick(0.65), JourneyEnd::Release);
        assert_eq!(mix.pick(0.71), JourneyEnd::Abandon);
        assert_eq!(mix.pick(0.999), JourneyEnd::Abandon);
    }
}
