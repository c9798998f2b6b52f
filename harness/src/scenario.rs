//! Typed scenario files: what sale to set up, how many buyers to fire at it and how.
//!
//! A scenario is a TOML file (see `scenarios/*.toml`). Parsing happens in two steps so that a
//! person fixing a file sees as much as possible at once: first the TOML is read into types that
//! reject unknown keys and wrong types (the toml crate's message names the key and its line),
//! then every semantic rule is checked and *all* the problems found are reported together.
//!
//! The same types serialize back into the file's shape, so a run can echo the scenario it ran
//! into its `summary.json` and two runs can be compared.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
}

/// How many units the sale may sell in total.
///
/// Serialized as a bare number or the string `"unlimited"`, matching how people write it in the
/// file rather than exposing an enum tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Limited(u64),
    Unlimited,
}

impl Cap {
    /// The cap in the form the checker and the ledger use (`None` = unlimited).
    pub fn as_option(self) -> Option<u64> {
        match self {
            Cap::Limited(n) => Some(n),
            Cap::Unlimited => None,
        }
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cap::Limited(n) => write!(f, "{n}"),
            Cap::Unlimited => f.write_str("unlimited"),
        }
    }
}

const UNLIMITED: &str = "unlimited";

impl Serialize for Cap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cap::Limited(n) => serializer.serialize_u64(*n),
            Cap::Unlimited => serializer.serialize_str(UNLIMITED),
        }
    }
}

impl<'de> Deserialize<'de> for Cap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CapVisitor;

        impl Visitor<'_> for CapVisitor {
            type Value = Cap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of units >= 0 or the string \"unlimited\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cap, E> {
                Ok(Cap::Limited(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cap, E> {
                u64::try_from(v)
                    .map(Cap::Limited)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cap, E> {
                if v == UNLIMITED {
                    Ok(Cap::Unlimited)
                } else {
                    Err(E::invalid_value(Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_any(CapVisitor)
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
    /// Fraction (0 to 1) of buyers who send an earlier buyer's idempotency key with their own
    /// body: a key reused for a different request, which must never become a second order
    /// (HAZ-12). Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused_keys: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Units each buyer requests: a fixed number, or drawn uniformly from `min..=max` with the run's
/// seeded generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum QuantitySpec {
    Fixed(u32),
    Range { min: u32, max: u32 },
}

impl QuantitySpec {
    /// The largest quantity a buyer can ask for, e.g. to size a sale or check a per-buyer limit.
    pub fn max(&self) -> u32 {
        match *self {
            QuantitySpec::Fixed(n) => n,
            QuantitySpec::Range { max, .. } => max,
        }
    }
}

/// The `{ min, max }` form of a quantity, on its own so that unknown keys inside it are rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuantityRange {
    min: u32,
    max: u32,
}

impl<'de> Deserialize<'de> for QuantitySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Hand-written rather than `#[serde(untagged)]`: untagged enums only ever say "did not
        // match any variant", which tells a person nothing about what to write instead.
        struct QuantityVisitor;

        impl<'de> Visitor<'de> for QuantityVisitor {
            type Value = QuantitySpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of units >= 1 or a table { min = 1, max = 3 }")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<QuantitySpec, E> {
                u32::try_from(v)
                    .map(QuantitySpec::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<QuantitySpec, E> {
                u32::try_from(v)
                    .map(QuantitySpec::Fixed)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QuantitySpec, A::Error> {
                let range = QuantityRange::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(QuantitySpec::Range {
                    min: range.min,
                    max: range.max,
                })
            }
        }

        deserializer.deserialize_any(QuantityVisitor)
    }
}

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

/// Where the in-process server's Redis comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RedisMode {
    /// The machine's Redis (`REDIS_URL`): fast, but the harness cannot kill or pause it.
    #[default]
    Shared,
    /// A Redis container started through testcontainers for this run, which Redis faults need.
    Container,
}

/// `[redis]`: how the in-process server reaches Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisSpec {
    #[serde(default)]
    pub mode: RedisMode,
    /// Route the server's Redis traffic through the harness's fault proxy (link faults need it).
    #[serde(default)]
    pub proxy: bool,
    /// The server's Redis claim timeout (default: the server's own, 250ms).
    #[serde(with = "humantime_serde", default)]
    pub timeout: Option<Duration>,
}

/// `[postgres]`: how the in-process server reaches PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// Route the server's PostgreSQL traffic through the fault proxy (`pg-down` needs it).
    #[serde(default)]
    pub proxy: bool,
}

/// The faults of SPEC.md's NEM list the harness can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// NEM-kill: SIGKILL the Redis container; `duration` later it starts again, empty.
    Kill,
    /// NEM-stop: graceful stop, started again after `duration` (empty: nothing is persisted).
    Stop,
    /// NEM-pause: the Redis process is frozen; sockets stay open, commands hang.
    Pause,
    /// NEM-rollback: the sale's counter set back by `rollback_by` units (a lagging replica).
    Rollback,
    /// NEM-flush-scripts: `SCRIPT FLUSH`.
    FlushScripts,
    /// NEM-latency on the server↔Redis link.
    Latency,
    /// NEM-blackhole, both directions.
    Blackhole,
    /// NEM-blackhole of replies only: the command runs, its answer never comes back (HAZ-14).
    BlackholeReplies,
    /// NEM-reset: connections reset.
    Reset,
    /// NEM-pg-down: PostgreSQL unreachable.
    PgDown,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Pause => "pause",
            FaultKind::Rollback => "rollback",
            FaultKind::FlushScripts => "flush-scripts",
            FaultKind::Latency => "latency",
            FaultKind::Blackhole => "blackhole",
            FaultKind::BlackholeReplies => "blackhole-replies",
            FaultKind::Reset => "reset",
            FaultKind::PgDown => "pg-down",
        }
    }

    fn needs_container(self) -> bool {
        matches!(self, FaultKind::Kill | FaultKind::Stop | FaultKind::Pause)
    }

    fn needs_redis_proxy(self) -> bool {
        matches!(
            self,
            FaultKind::Latency
                | FaultKind::Blackhole
                | FaultKind::BlackholeReplies
                | FaultKind::Reset
        )
    }

    /// Faults that are an instant, not a window.
    fn is_instant(self) -> bool {
        matches!(self, FaultKind::Rollback | FaultKind::FlushScripts)
    }
}

/// One `[[faults]]` entry: what, when, for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Offset from doors open.
    #[serde(with = "humantime_serde", default)]
    pub at: Option<Duration>,
    /// Or: as soon as the units the harness has seen acknowledged leave fewer than this many.
    #[serde(default)]
    pub when_remaining_below: Option<u64>,
    /// How long until it heals; absent for `kill`/`stop`/`pause` and link faults means never.
    #[serde(with = "humantime_serde", default)]
    pub duration: Option<Duration>,
    /// For `latency`: added to each direction.
    #[serde(with = "humantime_serde", default)]
    pub latency: Option<Duration>,
    /// For `rollback`: how many units to set the counter back.
    #[serde(default)]
    pub rollback_by: Option<u64>,
}

impl FaultSpec {
    /// The fault in words, for the run's records.
    pub fn describe(&self) -> String {
        let mut text = self.kind.as_str().to_owned();
        match (self.at, self.when_remaining_below) {
            (Some(at), _) => text.push_str(&format!(" at {}", humantime::format_duration(at))),
            (None, Some(k)) => text.push_str(&format!(" when fewer than {k} units remain")),
            (None, None) => {}
        }
        if let Some(latency) = self.latency {
            text.push_str(&format!(", +{}", humantime::format_duration(latency)));
        }
        if let Some(by) = self.rollback_by {
            text.push_str(&format!(", back by {by} units"));
        }
        match self.duration {
            Some(d) => text.push_str(&format!(", for {}", humantime::format_duration(d))),
            None if !self.kind.is_instant() => text.push_str(", never healed"),
            None => {}
        }
        text
    }
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

fn default_window() -> Duration {
    Duration::from_secs(600)
}

fn default_connections() -> u32 {
    256
}

fn default_open_after() -> Duration {
    Duration::from_millis(200)
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_retry_backoff() -> Duration {
    Duration::from_millis(50)
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

/// Every semantic problem of a parsed scenario, in file order.
fn problems(s: &Scenario, name_was_given: bool) -> Vec<String> {
    let mut out = Vec::new();

    if let Some(problem) = name_problem(&s.name) {
        if name_was_given {
            out.push(format!("name {problem}"));
        } else {
            out.push(format!(
                "name {problem}; it defaults to the file name, so set `name = \"...\"` in the file or rename the file"
            ));
        }
    }

    if s.sale.window.is_zero() {
        out.push("sale.window must be longer than zero (e.g. \"10m\")".to_owned());
    }
    if s.sale.per_buyer_limit == Some(0) {
        out.push(
            "sale.per_buyer_limit must be at least 1 (got 0); remove it to keep the server's default"
                .to_owned(),
        );
    }
    if s.sale.products.is_empty() {
        out.push(
            "sale.products must list at least one product (add a [[sale.products]] table with id and price_cents)"
                .to_owned(),
        );
    }
    let mut seen = HashSet::new();
    for (i, product) in s.sale.products.iter().enumerate() {
        if product.id.trim().is_empty() {
            out.push(format!("sale.products[{i}].id must not be empty"));
        } else if !seen.insert(product.id.as_str()) {
            out.push(format!(
                "sale.products[{i}].id \"{}\" is listed more than once; product ids must be unique",
                product.id
            ));
        }
        if product.price_cents < 0 {
            out.push(format!(
                "sale.products[{i}].price_cents must be >= 0 (got {})",
                product.price_cents
            ));
        }
    }

    match s.buyers.quantity {
        QuantitySpec::Fixed(0) => {
            out.push("buyers.quantity must be at least 1 (got 0)".to_owned());
        }
        QuantitySpec::Fixed(_) => {}
        QuantitySpec::Range { min, max } => {
            if min == 0 {
                out.push("buyers.quantity.min must be at least 1 (got 0)".to_owned());
            }
            if min > max {
                out.push(format!(
                    "buyers.quantity.min ({min}) is greater than max ({max}); swap them"
                ));
            }
        }
    }
    if !(0.0..=1.0).contains(&s.buyers.reused_keys) {
        out.push(format!(
            "buyers.reused_keys is a fraction of buyers, between 0 and 1 (got {})",
            s.buyers.reused_keys
        ));
    }
    if s.buyers.connections == 0 {
        out.push("buyers.connections must be at least 1 (got 0)".to_owned());
    }

    if s.requests.timeout.is_zero() {
        out.push("requests.timeout must be longer than zero (e.g. \"5s\")".to_owned());
    }

    for (i, fault) in s.faults.iter().enumerate() {
        let kind = fault.kind.as_str();
        let at = format!("faults[{i}] ({kind})");
        match (fault.at, fault.when_remaining_below) {
            (None, None) => out.push(format!(
                "{at} needs a trigger: `at = \"2s\"` (after doors open) or `when_remaining_below = 5`"
            )),
            (Some(_), Some(_)) => out.push(format!(
                "{at} has both `at` and `when_remaining_below`; keep one"
            )),
            _ => {}
        }
        if fault.kind.needs_container() && s.redis.mode != RedisMode::Container {
            out.push(format!(
                "{at} acts on a Redis container: add [redis] mode = \"container\""
            ));
        }
        if fault.kind.needs_redis_proxy() && !s.redis.proxy {
            out.push(format!(
                "{at} acts on the server's link to Redis: add [redis] proxy = true"
            ));
        }
        if fault.kind == FaultKind::PgDown && !s.postgres.proxy {
            out.push(format!(
                "{at} acts on the server's link to PostgreSQL: add [postgres] proxy = true"
            ));
        }
        if fault.kind == FaultKind::PgDown && fault.duration.is_none() {
            out.push(format!(
                "{at} needs a duration: without PostgreSQL nothing can be sold or checked"
            ));
        }
        if fault.kind.is_instant() && fault.duration.is_some() {
            out.push(format!("{at} happens at an instant; remove `duration`"));
        }
        if (fault.kind == FaultKind::Latency) != fault.latency.is_some() {
            out.push(format!(
                "{at}: `latency` is required for kind = \"latency\" and only allowed there"
            ));
        }
        if (fault.kind == FaultKind::Rollback) != fault.rollback_by.is_some() {
            out.push(format!(
                "{at}: `rollback_by` is required for kind = \"rollback\" and only allowed there"
            ));
        }
    }
    if s.postgres.proxy && s.faults.iter().all(|f| f.kind != FaultKind::PgDown) {
        out.push("[postgres] proxy = true is only useful with a pg-down fault".to_owned());
    }

    out
}

/// Why `name` cannot be used as a directory name, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name == "." || name == ".." {
        return Some(format!("\"{name}\" is not usable as a directory name"));
    }
    let bad: String = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .collect();
    if bad.is_empty() {
        None
    } else {
        Some(format!(
            "\"{name}\" may only use letters, digits, '.', '_' and '-' because it becomes a directory name (found {bad:?})"
        ))
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
    fn every_semantic_problem_is_reported_at_once() {
        let text = r#"
name = "bad name!"
[sale]
cap = 10
window = "0s"
per_buyer_limit = 0
products = []
[buyers]
count = 0
quantity = { min = 3, max = 1 }
connections = 0
[requests]
timeout = "0s"
"#;
        let problems = problems_of(text);
        let expected = [
            "name \"bad name!\" may only use",
            "sale.window must be longer than zero",
            "sale.per_buyer_limit must be at least 1 (got 0)",
            "sale.products must list at least one product",
            "buyers.quantity.min (3) is greater than max (1)",
            "buyers.connections must be at least 1 (got 0)",
            "requests.timeout must be longer than zero",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, want) in problems.iter().zip(expected) {
            assert!(
                problem.starts_with(want),
                "{problem:?} should start with {want:?}"
            );
        }
    }

    #[test]
    fn duplicate_product_ids_and_negative_prices_are_reported() {
        let text = MINIMAL.to_owned() + "[[sale.products]]\nid = \"mug\"\nprice_cents = -5\n";
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("\"mug\" is listed more than once"));
        assert!(problems[1].contains("sale.products[1].price_cents must be >= 0 (got -5)"));
    }

    #[test]
    fn zero_quantities_are_reported() {
        let fixed = problems_of(&minimal_with("quantity = 2", "quantity = 0"));
        assert_eq!(fixed, ["buyers.quantity must be at least 1 (got 0)"]);
        let range = problems_of(&minimal_with(
            "quantity = 2",
            "quantity = { min = 0, max = 2 }",
        ));
        assert_eq!(range, ["buyers.quantity.min must be at least 1 (got 0)"]);
    }

    #[test]
    fn names_that_are_not_directory_names_are_rejected() {
        for bad in ["", "..", "a/b", "sale 1", "ünïcode"] {
            let text = format!("name = {bad:?}\n{MINIMAL}");
            let problems = problems_of(&text);
            assert_eq!(problems.len(), 1, "{bad:?}: {problems:#?}");
            assert!(problems[0].starts_with("name "), "{problems:?}");
        }
        let ok = format!("name = \"v1.2_last-ten\"\n{MINIMAL}");
        assert_eq!(
            Scenario::from_toml_str(&ok, "x").unwrap().name,
            "v1.2_last-ten"
        );

        let from_stem = Scenario::from_toml_str(MINIMAL, "my scenario").unwrap_err();
        assert!(
            from_stem.to_string().contains("rename the file"),
            "{from_stem}"
        );
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
    fn missing_required_tables_are_parse_errors() {
        let err = parse_message("[sale]\ncap = 1\nproducts = []\n");
        assert!(err.contains("buyers"), "{err}");
    }
}
