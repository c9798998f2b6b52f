//! Typed scenario files: what sale to set up, how many buyers to fire at it and how.
//!
//! A scenario is a TOML file (see `scenarios/*.toml`). Parsing happens in two steps so that a
//! person fixing a file sees as much as possible at once: first the TOML is read into types that
//! reject unknown keys and wrong types (the toml crate's message names the key and its line),
//! then every semantic rule is checked and *all* the problems found are reported together.
//!
//! The same types serialize back into the file's shape, so a run can echo the scenario it ran
//! into its `summary.json` and two runs can be compared.
//!
//! This file holds the file model and its loading; beside it: `values.rs` (caps, quantities,
//! defaults), `arrival.rs` (the `[arrival]` models), `faults.rs` (the fault vocabulary and where the
//! server's Redis and PostgreSQL come from) and `validation.rs` (every semantic rule). When each
//! buyer sends is the load group's business (`load/schedule.rs`).

mod arrival;
mod faults;
mod journeys;
mod validation;
mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::arrival::Arrival;
pub use self::faults::{FaultKind, FaultSpec, PostgresSpec, RedisMode, RedisSpec};
pub use self::journeys::{JourneyEnd, JourneySpec, OutcomeMix, ThinkSpec};
use self::validation::problems;
pub use self::values::{Cap, QuantitySpec};
use self::values::{default_connections, default_retry_backoff, default_timeout, default_window};
use crate::thresholds::Thresholds;

/// A validated scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Becomes a directory name under `results/`, hence the restricted character set.
    pub name: String,
    /// `None` lets the CLI pick (and record) a seed, so a run is always reproducible.
    pub seed: Option<u64>,
    pub sale: SaleSpec,
    pub buyers: BuyerSpec,
    pub arrival: Arrival,
    pub requests: RequestSpec,
    pub redis: RedisSpec,
    pub postgres: PostgresSpec,
    pub faults: Vec<FaultSpec>,
    /// Pass/fail limits on latency, rates, throughput and sell-out time (see
    /// [`crate::thresholds`]); absent from the echo when there are none.
    #[serde(default, skip_serializing_if = "Thresholds::is_empty")]
    pub thresholds: Thresholds,
    /// How the checker judges what the contract leaves to a deadline (`[checks]`).
    #[serde(default, skip_serializing_if = "ChecksSpec::is_default")]
    pub checks: ChecksSpec,
    /// Buyers who reserve (a cart hold) before they buy (`[journeys]`); `None`: every buyer buys
    /// at once, as before holds existed, and INV-7 is not in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journeys: Option<JourneySpec>,
}

/// INV-6's default deadline: how long after the last answer the sold-count figures must agree.
pub const DEFAULT_CONVERGENCE_WITHIN: Duration = Duration::from_secs(3);

/// `[checks]`: the deadlines the checker holds a target to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksSpec {
    /// INV-6: after the last answer (and after the last fault healed), the inventory view's
    /// `quantity_sold`, units in orders and counter must agree within this long. A server whose
    /// sync runs every 5 s needs at least `"5s"` plus one poll. Default 3 s.
    #[serde(with = "humantime_serde", default = "default_convergence_within")]
    pub convergence_within: Duration,
}

fn default_convergence_within() -> Duration {
    DEFAULT_CONVERGENCE_WITHIN
}

impl Default for ChecksSpec {
    fn default() -> Self {
        ChecksSpec {
            convergence_within: DEFAULT_CONVERGENCE_WITHIN,
        }
    }
}

impl ChecksSpec {
    fn is_default(&self) -> bool {
        *self == ChecksSpec::default()
    }
}

/// The sale the harness creates through the admin API before the buyers arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleSpec {
    pub cap: Cap,
    /// Long enough by default that a run never races the end of the window by accident.
    #[serde(with = "humantime_serde", default = "default_window")]
    pub window: Duration,
    /// `None` leaves the server's own default in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_buyer_limit: Option<u32>,
    /// The sale opens this long after doors open instead of before the first buyer (and `window`
    /// is then its length from that instant): buyers can arrive before it opens and after it
    /// closes, the edges `flashsale verify`'s window-edges check aims at (HAZ-13). `None`: the
    /// sale opens at creation, before doors open.
    #[serde(
        with = "humantime_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub opens_after: Option<Duration>,
    pub products: Vec<ProductSpec>,
}

/// One product of the sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductSpec {
    pub id: String,
    /// Signed so that a negative price in a file is reported as a problem rather than as a
    /// type error that hides every other problem in the file.
    pub price_cents: i64,
}

/// Who buys, how much each asks for, and how many may be in flight at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyerSpec {
    pub count: u32,
    pub quantity: QuantitySpec,
    /// Bounds the harness's open sockets; the burst still has one intended instant for everyone,
    /// and any queueing for a permit shows up in the coordinated-omission-corrected latency.
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Fraction (0 to 1) of requests that reuse an earlier request's idempotency key, sent as
    /// that request's buyer with their own body: a key reused for a different request, which
    /// must never become a second order (HAZ-12). Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_keys: f64,
    /// Each buyer's request is sent this many times at the same instant, same key and same body,
    /// each copy recorded as its own attempt: a non-atomic idempotency check makes two orders
    /// (HAZ-12). Default 1.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub copies: u32,
    /// How many distinct buyer ids send the `count` requests: request `i` is sent by buyer
    /// `i % distinct`, each request with its own idempotency key, so one buyer has several
    /// requests in flight at once (what a per-buyer limit must withstand, INV-9). `None`: one
    /// buyer per request (see [`BuyerSpec::distinct_buyers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u32>,
}

impl BuyerSpec {
    /// The number of distinct buyer ids: `distinct`, or `count` when it is not set.
    pub fn distinct_buyers(&self) -> u32 {
        self.distinct.unwrap_or(self.count)
    }
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn one() -> u32 {
    1
}

fn is_one(x: &u32) -> bool {
    *x == 1
}

/// Per-attempt client behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// Retries reuse the idempotency key, which is what lets the checker prove a retried buy
    /// never becomes a second order (HAZ-8).
    #[serde(default)]
    pub retries: u32,
    #[serde(with = "humantime_serde", default = "default_retry_backoff")]
    pub retry_backoff: Duration,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            timeout: default_timeout(),
            retries: 0,
            retry_backoff: default_retry_backoff(),
        }
    }
}

/// The file as written: like [`Scenario`], but the name is optional because it defaults to the
/// file stem, which only the caller knows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: Option<String>,
    seed: Option<u64>,
    sale: SaleSpec,
    buyers: BuyerSpec,
    #[serde(default)]
    arrival: Arrival,
    #[serde(default)]
    requests: RequestSpec,
    #[serde(default)]
    redis: RedisSpec,
    #[serde(default)]
    postgres: PostgresSpec,
    #[serde(default)]
    faults: Vec<FaultSpec>,
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    checks: ChecksSpec,
    journeys: Option<JourneySpec>,
}

/// Why a scenario could not be loaded. Each message names the file, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(
        "cannot read scenario file {}: {source} (check the path; scenario files live in scenarios/*.toml)",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "scenario {source_name} is not a valid scenario file: {message}\nfix the key or value marked above (unknown keys are rejected to catch typos)"
    )]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("scenario {source_name} has {} problem(s); fix each of them:\n{}", problems.len(), bullet_list(problems))]
    Invalid {
        source_name: String,
        problems: Vec<String>,
    },
}

fn bullet_list(items: &[String]) -> String {
    items
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Scenario {
    /// Reads and validates a scenario file; the file stem is the default name.
    pub fn from_path(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let default_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse(&text, &default_name, &path.display().to_string())
    }

    /// Parses and validates scenario text; `default_name` is used when the text has no `name`
    /// and also identifies the scenario in error messages.
    pub fn from_toml_str(text: &str, default_name: &str) -> Result<Scenario, ScenarioError> {
        parse(text, default_name, &format!("`{default_name}`"))
    }
}

fn parse(text: &str, default_name: &str, source_name: &str) -> Result<Scenario, ScenarioError> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Parse {
        source_name: source_name.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let name_was_given = file.name.is_some();
    let scenario = Scenario {
        name: file.name.unwrap_or_else(|| default_name.to_owned()),
        seed: file.seed,
        sale: file.sale,
        buyers: file.buyers,
        arrival: file.arrival,
        requests: file.requests,
        redis: file.redis,
        postgres: file.postgres,
        faults: file.faults,
        thresholds: file.thresholds,
        checks: file.checks,
        journeys: file.journeys,
    };
    let problems = problems(&scenario, name_was_given);
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(ScenarioError::Invalid {
            source_name: source_name.to_owned(),
            problems,
        })
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Scenario texts and parse helpers shared by the tests of the scenario and of the schedule.
    use super::*;

    pub(crate) const FULL: &str = r#"
# 1,000 shoppers hit "buy" at the same instant on the last ten units.
name = "last-ten-units"
seed = 42

[sale]
cap = 10
window = "10m"
per_buyer_limit = 3

[[sale.products]]
id = "tee-black"
price_cents = 1500

[[sale.products]]
id = "tee-white"
price_cents = 1600

[buyers]
count = 1000
quantity = { min = 1, max = 3 }
connections = 128

[arrival]
model = "burst"
open_after = "250ms"

[requests]
timeout = "2s"
retries = 1
retry_backoff = "75ms"
"#;

    pub(crate) const MINIMAL: &str = r#"
[sale]
cap = "unlimited"
[[sale.products]]
id = "mug"
price_cents = 900
[buyers]
count = 5
quantity = 2
"#;

    pub(crate) fn parse_err(text: &str) -> ScenarioError {
        Scenario::from_toml_str(text, "t").expect_err("scenario should be rejected")
    }

    pub(crate) fn problems_of(text: &str) -> Vec<String> {
        match parse_err(text) {
            ScenarioError::Invalid { problems, .. } => problems,
            other => panic!("expected semantic problems, got: {other}"),
        }
    }

    pub(crate) fn parse_message(text: &str) -> String {
        match parse_err(text) {
            e @ ScenarioError::Parse { .. } => e.to_string(),
            other => panic!("expected a parse error, got: {other}"),
        }
    }

    /// `MINIMAL` with one line replaced, for single-problem tests.
    pub(crate) fn minimal_with(from: &str, to: &str) -> String {
        assert!(MINIMAL.contains(from), "fixture has no {from:?}");
        MINIMAL.replacen(from, to, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn full_file_parses_every_field() {
        let s = Scenario::from_toml_str(FULL, "ignored").unwrap();
        assert_eq!(s.name, "last-ten-units");
        assert_eq!(s.seed, Some(42));
        assert_eq!(s.sale.cap, Cap::Limited(10));
        assert_eq!(s.sale.window, Duration::from_secs(600));
        assert_eq!(s.sale.per_buyer_limit, Some(3));
        assert_eq!(
            s.sale.products,
            vec![
                ProductSpec {
                    id: "tee-black".into(),
                    price_cents: 1500
                },
                ProductSpec {
                    id: "tee-white".into(),
                    price_cents: 1600
                },
            ]
        );
        assert_eq!(s.buyers.count, 1000);
        assert_eq!(s.buyers.quantity, QuantitySpec::Range { min: 1, max: 3 });
        assert_eq!(s.buyers.quantity.max(), 3);
        assert_eq!(s.buyers.connections, 128);
        assert_eq!(
            s.arrival,
            Arrival::Burst {
                open_after: Duration::from_millis(250)
            }
        );
        assert_eq!(
            s.requests,
            RequestSpec {
                timeout: Duration::from_secs(2),
                retries: 1,
                retry_backoff: Duration::from_millis(75),
            }
        );
    }

    #[test]
    fn minimal_file_gets_defaults_and_name_from_caller() {
        let s = Scenario::from_toml_str(MINIMAL, "from-stem").unwrap();
        assert_eq!(s.name, "from-stem");
        assert_eq!(s.seed, None);
        assert_eq!(s.sale.cap, Cap::Unlimited);
        assert_eq!(s.sale.cap.as_option(), None);
        assert_eq!(s.sale.window, Duration::from_secs(600));
        assert_eq!(s.sale.per_buyer_limit, None);
        assert_eq!(s.buyers.quantity, QuantitySpec::Fixed(2));
        assert_eq!(s.buyers.quantity.max(), 2);
        assert_eq!(s.buyers.connections, 256);
        assert_eq!(
            s.arrival,
            Arrival::Burst {
                open_after: Duration::from_millis(200)
            }
        );
        assert_eq!(s.requests.timeout, Duration::from_secs(5));
        assert_eq!(s.requests.retries, 0);
        assert_eq!(s.requests.retry_backoff, Duration::from_millis(50));
    }

    #[test]
    fn from_path_uses_the_file_stem_and_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doors-open.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(Scenario::from_path(&path).unwrap().name, "doors-open");

        let missing = dir.path().join("nope.toml");
        let err = Scenario::from_path(&missing).unwrap_err();
        assert!(matches!(err, ScenarioError::Read { .. }));
        assert!(err.to_string().contains("nope.toml"), "{err}");
    }

    #[test]
    fn errors_from_a_file_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.toml");
        std::fs::write(
            &path,
            minimal_with("count = 5", "count = 5\nconnections = 0"),
        )
        .unwrap();
        let err = Scenario::from_path(&path).unwrap_err().to_string();
        assert!(err.contains("broken.toml"), "{err}");
        assert!(
            err.contains("buyers.connections must be at least 1 (got 0)"),
            "{err}"
        );
    }

    #[test]
    fn echoed_scenario_round_trips_through_json() {
        let s = Scenario::from_toml_str(FULL, "x").unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["sale"]["cap"], 10);
        assert_eq!(json["sale"]["window"], "10m");
        assert_eq!(json["buyers"]["quantity"]["max"], 3);
        assert_eq!(json["arrival"]["model"], "burst");
        assert_eq!(json["arrival"]["open_after"], "250ms");
        let back: Scenario = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);

        let unlimited = Scenario::from_toml_str(MINIMAL, "y").unwrap();
        let json = serde_json::to_value(&unlimited).unwrap();
        assert_eq!(json["sale"]["cap"], "unlimited");
        assert_eq!(json["buyers"]["quantity"], 2);
        assert_eq!(serde_json::from_value::<Scenario>(json).unwrap(), unlimited);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let top = parse_message(&format!("colour = \"red\"\n{MINIMAL}"));
        assert!(top.contains("colour") && top.contains("line 1"), "{top}");

        let nested = parse_message(&minimal_with("count = 5", "count = 5\nconections = 3"));
        assert!(nested.contains("conections"), "{nested}");
        assert!(nested.contains("line 9"), "{nested}");

        let in_product = parse_message(&minimal_with(
            "price_cents = 900",
            "price_cents = 900\nsku = 1",
        ));
        assert!(in_product.contains("sku"), "{in_product}");

        let in_range = parse_message(&minimal_with(
            "quantity = 2",
            "quantity = { min = 1, max = 2, mode = 3 }",
        ));
        assert!(in_range.contains("mode"), "{in_range}");

        let in_arrival = parse_message(&format!(
            "{MINIMAL}[arrival]\nmodel = \"burst\"\nopen_afterr = \"1s\"\n"
        ));
        assert!(in_arrival.contains("open_afterr"), "{in_arrival}");
        assert!(in_arrival.contains("line 12"), "{in_arrival}");

        let in_requests = parse_message(&format!("{MINIMAL}[requests]\nretry = 2\n"));
        assert!(in_requests.contains("retry"), "{in_requests}");
    }

    #[test]
    fn wrong_types_are_rejected_with_what_to_write() {
        let negative = parse_message(&minimal_with("cap = \"unlimited\"", "cap = -1"));
        assert!(
            negative.contains("-1") && negative.contains("\"unlimited\""),
            "{negative}"
        );

        let lots = parse_message(&minimal_with("cap = \"unlimited\"", "cap = \"lots\""));
        assert!(lots.contains("lots") && lots.contains(">= 0"), "{lots}");

        let fractional = parse_message(&minimal_with("quantity = 2", "quantity = 1.5"));
        assert!(
            fractional.contains("1.5") && fractional.contains("{ min"),
            "{fractional}"
        );

        let duration = parse_message(&format!("{MINIMAL}[requests]\ntimeout = 5\n"));
        assert!(duration.contains("timeout"), "{duration}");

        let model = parse_message(&format!("{MINIMAL}[arrival]\nmodel = \"poisson\"\n"));
        assert!(
            model.contains("poisson") && model.contains("burst") && model.contains("closed"),
            "{model}"
        );
    }

    #[test]
    fn thresholds_are_read_echoed_and_an_unknown_metric_is_named() {
        let s = Scenario::from_toml_str(
            &format!(
                "{MINIMAL}[thresholds]\n\"ok.p99\" = \"< 50ms\"\n\"unknown.rate\" = \"< 0.01\"\n"
            ),
            "t",
        )
        .unwrap();
        let names: Vec<&str> = s.thresholds.0.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ok.p99", "unknown.rate"]);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["thresholds"]["ok.p99"], "< 50ms");
        assert_eq!(serde_json::from_value::<Scenario>(json).unwrap(), s);
        assert!(
            serde_json::to_value(Scenario::from_toml_str(MINIMAL, "t").unwrap())
                .unwrap()
                .get("thresholds")
                .is_none()
        );

        let unknown = parse_message(&format!("{MINIMAL}[thresholds]\n\"ok.p95\" = \"< 1s\"\n"));
        assert!(
            unknown.contains("\"ok.p95\"") && unknown.contains("line 10"),
            "{unknown}"
        );
    }

    #[test]
    fn the_convergence_deadline_is_a_setting_with_a_default() {
        let default = Scenario::from_toml_str(MINIMAL, "t").unwrap();
        assert_eq!(
            default.checks.convergence_within,
            DEFAULT_CONVERGENCE_WITHIN
        );
        assert!(
            serde_json::to_value(&default)
                .unwrap()
                .get("checks")
                .is_none()
        );

        let s = Scenario::from_toml_str(
            &format!("{MINIMAL}[checks]\nconvergence_within = \"6s\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(s.checks.convergence_within, Duration::from_secs(6));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["checks"]["convergence_within"], "6s");
        assert_eq!(serde_json::from_value::<Scenario>(json).unwrap(), s);

        let typo = parse_message(&format!("{MINIMAL}[checks]\nconverge_within = \"6s\"\n"));
        assert!(typo.contains("converge_within"), "{typo}");
    }

    #[test]
    fn verify_options_parse_round_trip_and_are_validated() {
        let s = Scenario::from_toml_str(
            &minimal_with(
                "quantity = 2",
                "quantity = { sequence = [1, 1, 3] }\ncopies = 8",
            )
            .replace("cap = \"unlimited\"", "cap = 5\nopens_after = \"300ms\""),
            "t",
        )
        .unwrap();
        assert_eq!(
            s.buyers.quantity,
            QuantitySpec::Sequence {
                sequence: vec![1, 1, 3]
            }
        );
        assert_eq!(s.buyers.quantity.max(), 3);
        assert_eq!(s.buyers.copies, 8);
        assert_eq!(s.sale.opens_after, Some(Duration::from_millis(300)));
        let back = Scenario::from_toml_str(&toml::to_string(&s).unwrap(), "t").unwrap();
        assert_eq!(back, s);
        assert_eq!(
            Scenario::from_toml_str(MINIMAL, "t").unwrap().buyers.copies,
            1
        );

        let problems = problems_of(&minimal_with(
            "quantity = 2",
            "quantity = { sequence = [] }\ncopies = 0",
        ));
        assert!(
            problems.iter().any(|p| p.contains("sequence")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("copies")),
            "{problems:?}"
        );
        let mixed = parse_message(&minimal_with(
            "quantity = 2",
            "quantity = { min = 1, sequence = [1] }",
        ));
        assert!(mixed.contains("sequence"), "{mixed}");
    }

    #[test]
    fn distinct_buyers_default_to_one_per_request_and_round_trip() {
        let default = Scenario::from_toml_str(MINIMAL, "t").unwrap();
        assert_eq!(default.buyers.distinct, None);
        assert_eq!(default.buyers.distinct_buyers(), 5);
        assert!(
            serde_json::to_value(&default).unwrap()["buyers"]
                .get("distinct")
                .is_none()
        );

        let s = Scenario::from_toml_str(&minimal_with("count = 5", "count = 5\ndistinct = 2"), "t")
            .unwrap();
        assert_eq!(s.buyers.distinct, Some(2));
        assert_eq!(s.buyers.distinct_buyers(), 2);
        let back = Scenario::from_toml_str(&toml::to_string(&s).unwrap(), "t").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn missing_required_tables_are_parse_errors() {
        let err = parse_message("[sale]\ncap = 1\nproducts = []\n");
        assert!(err.contains("buyers"), "{err}");
    }
}
