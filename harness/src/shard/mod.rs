//! Sharded runs: one scenario fired by several load generators against one sale, judged once.
//!
//! A generator runs out of cores, sockets (about 28,000 ephemeral ports per destination) and
//! bandwidth long before a million shoppers arrive, so a big drop is fired by N generators, each
//! a *shard*: `flashsale run SCENARIO --shard K/N --sale-file F --doors-open-at T --out DIR`.
//! They share one plan (the scenario's buyers drawn from one seed, keys from one nonce, all in the
//! sale file), shard K fires the buyers whose position in the plan is K modulo N, each at the
//! instant it would have had in a single run, and opens its doors at the agreed instant T after
//! measuring its clock against the target's ([`clock`]). A shard records; it gives no verdict.
//! `flashsale merge DIR...` ([`merge`]) refuses an incomplete set, adds the histories and the
//! HdrHistograms (they add exactly), reads the ledger once and runs the checker once on the
//! union: the same summary, report and exit status as one run. `flashsale run --workers N`
//! ([`workers`]) is the same path on one machine: N shard processes, then the merge.
//!
//! Files: the sale file (`sale.json`, [`SaleFile`]) is written once, by `flashsale prepare` or
//! shard 0, and read by every shard; each shard's directory holds `history.jsonl`,
//! `schedule.jsonl`, its interval logs, `samples.jsonl` (shard 0 reads the inventory during the
//! load) and, written last, `shard.json` ([`ShardRecord`]): no `shard.json`, no report.

pub mod clock;
pub mod merge;
pub mod shard_run;
pub mod workers;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::load::health::CpuUsage;
use crate::scenario::{Arrival, Scenario};

/// The record a shard leaves last in its directory.
pub const SHARD_RECORD: &str = "shard.json";
/// Format tags: a file of another tool or version is refused by name, not misread.
const SALE_FORMAT: &str = "flashsale-sale/1";
const SHARD_FORMAT: &str = "flashsale-shard/1";

/// `--shard K/N`: this generator is shard K (from 0) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    /// Whether the buyer at `arrival_index` of the plan is this shard's: a deterministic
    /// partition, so N shards fire every buyer of the plan exactly once.
    pub fn owns(self, arrival_index: u32) -> bool {
        arrival_index % self.count == self.index
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "--shard {text:?} is not K/N: give this generator's index from 0 and the number \
                 of generators, e.g. --shard 0/4 … --shard 3/4"
            )
        };
        let (k, n) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = k.trim().parse().map_err(|_| usage())?;
        let count: u32 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "--shard {text}: the number of generators must be 1 to {MAX_SHARDS}"
            ));
        }
        if index >= count {
            return Err(format!(
                "--shard {text}: the index counts from 0, so it must be below {count} (the last \
                 of {count} generators is {}/{count})",
                count - 1
            ));
        }
        Ok(ShardSpec { index, count })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// More generators than this is a typo, not a plan (a thousand 2-core generators drive ~45
/// million buyers a second).
pub const MAX_SHARDS: u32 = 1000;

/// The plan every shard shares: the sale, and what draws the buyers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleFile {
    pub format: String,
    /// The scenario the sale was made for; a shard given another refuses to start.
    pub scenario: Scenario,
    pub sale_id: String,
    pub cap: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// The seed every shard draws the plan's quantities with.
    pub seed: u64,
    /// Carried by every idempotency key of the plan, so two campaigns never share a key.
    pub run_nonce: String,
    /// The server(s) the sale was created on.
    pub target: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl SaleFile {
    pub fn new(
        scenario: &Scenario,
        sale: &crate::target::driver::PreparedSale,
        seed: u64,
        target: Vec<String>,
    ) -> SaleFile {
        SaleFile {
            format: SALE_FORMAT.to_owned(),
            scenario: scenario.clone(),
            sale_id: sale.sale.id.clone(),
            cap: sale.cap,
            starts_at: sale.sale.starts_at,
            ends_at: sale.sale.ends_at,
            seed,
            run_nonce: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            target,
            created_at: OffsetDateTime::now_utc(),
        }
    }

    /// Creates the campaign's sale through `driver` and the plan that goes with it; the seed is
    /// `seed`, else the scenario's, else a drawn one (recorded in the file either way).
    pub async fn create(
        scenario: &Scenario,
        driver: &crate::target::driver::Driver,
        seed: Option<u64>,
    ) -> Result<SaleFile, crate::target::TargetError> {
        let prepared = driver.create_sale(scenario).await?;
        let seed = seed
            .or(scenario.seed)
            .unwrap_or_else(|| rand::random::<u64>() >> 11);
        Ok(SaleFile::new(scenario, &prepared, seed, driver.buy_urls()))
    }

    pub fn read(path: &Path) -> Result<SaleFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the sale file {}: {e}", path.display()))?;
        let file: SaleFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a sale file written by `flashsale prepare` or shard 0 ({e})",
                path.display()
            )
        })?;
        if file.format != SALE_FORMAT {
            return Err(format!(
                "{} is a sale file of format {:?}; this flashsale reads {SALE_FORMAT:?}",
                path.display(),
                file.format
            ));
        }
        Ok(file)
    }

    /// Writes the file unless one is already there, atomically: a shard waiting for it never
    /// reads half a file, and of two writers racing (shard 0 retried) the first wins. Returns the
    /// file that is there afterwards.
    pub fn write_once(&self, path: &Path) -> Result<SaleFile, String> {
        let fail =
            |e: std::io::Error| format!("cannot write the sale file {}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = path.with_extension(format!("tmp-{}", self.run_nonce));
        let text = serde_json::to_string_pretty(self).map_err(|e| fail(e.into()))?;
        std::fs::write(&tmp, text).map_err(fail)?;
        // A hard link fails if the name exists: the no-overwrite rename.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(self.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SaleFile::read(path),
            Err(e) => Err(fail(e)),
        }
    }

    /// Refuses a sale that is over by the doors-open instant: the file is an earlier campaign's
    /// (its shards would fire into a finished sale, or replay its keys).
    pub fn check_current(&self, doors_open_at: OffsetDateTime, path: &Path) -> Result<(), String> {
        if self.ends_at <= doors_open_at {
            return Err(format!(
                "the sale in {} (sale {}, created {}) ends before the doors-open instant: it is an \
                 earlier campaign's; prepare a new sale file (or remove it and let shard 0 \
                 create one)",
                path.display(),
                self.sale_id,
                self.created_at
            ));
        }
        Ok(())
    }

    /// Refuses a sale made for another scenario: the shards would fire different plans.
    pub fn check_scenario(&self, scenario: &Scenario, path: &Path) -> Result<(), String> {
        let same = serde_json::to_value(scenario).ok() == serde_json::to_value(&self.scenario).ok();
        if same {
            Ok(())
        } else {
            Err(format!(
                "the sale file {} was prepared for scenario {:?} as it was then, and this shard \
                 was given {:?} with different contents: give every shard the same scenario file \
                 (or prepare a new sale)",
                path.display(),
                self.scenario.name,
                scenario.name
            ))
        }
    }
}

/// Whether a shard finished its load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardStatus {
    /// Every buyer of the shard was fired and answered (or given up on); its files are whole.
    Complete,
    /// It stopped before or during its load; `error` says why.
    Failed,
}

/// `shard.json`: what a shard did, written after everything else in its directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub format: String,
    pub shard: ShardSpec,
    pub status: ShardStatus,
    pub error: Option<String>,
    pub scenario_name: String,
    /// The sale file it followed, and its contents (`null` if it failed before having one): the
    /// merge checks every shard followed the same plan, and takes the sale's window from it.
    pub sale_file: PathBuf,
    pub sale: Option<SaleFile>,
    /// The servers it sent buys to.
    pub target: Vec<String>,
    /// The agreed doors-open instant (reference clock).
    #[serde(with = "time::serde::rfc3339")]
    pub doors_open_at: OffsetDateTime,
    /// This generator's clock at µs 0 of its history.
    #[serde(with = "time::serde::rfc3339")]
    pub clock_origin_at: OffsetDateTime,
    pub clock: clock::ClockOffset,
    /// When it released its first buyer minus the agreed instant, reference clock (µs).
    pub doors_open_drift_us: i64,
    pub buyers: u64,
    /// Lines of its `history.jsonl`: the merge refuses a file that lost some.
    pub attempts: u64,
    pub cpu: Option<CpuUsage>,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
}

impl ShardRecord {
    pub fn format() -> String {
        SHARD_FORMAT.to_owned()
    }

    pub fn is_current_format(&self) -> bool {
        self.format == SHARD_FORMAT
    }
}

/// The scenario one shard runs: its share of the connections (and of a closed model's
/// concurrency), so N shards together hold what the scenario asks of one generator. The
/// buyers' send times are not scaled: each keeps its instant from the whole plan.
pub fn shard_scenario(scenario: &Scenario, shard: ShardSpec) -> Scenario {
    let share = |n: u32| n.div_ceil(shard.count).max(1);
    let mut mine = scenario.clone();
    mine.buyers.connections = share(scenario.buyers.connections);
    if let Arrival::Closed { concurrency, .. } = &mut mine.arrival {
        *concurrency = share(*concurrency);
    }
    mine
}

/// Why a scenario cannot be sharded, if it cannot: faults act on infrastructure one process
/// starts and times from its own clock; journeys (cart holds) are judged against the hold log
/// of one generator. Both are refused rather than judged on half the evidence.
pub fn unshardable(scenario: &Scenario) -> Option<String> {
    if !scenario.faults.is_empty() {
        return Some(format!(
            "scenario {} injects faults, which one process times and applies; sharded runs \
             (--shard, --workers) take scenarios without [[faults]]",
            scenario.name
        ));
    }
    if scenario.sale.opens_after.is_some() {
        return Some(format!(
            "scenario {} opens its sale a set time after the load is set up (sale.opens_after), \
             which one process times; a sharded campaign's sale is created ahead of the agreed \
             instant, so sharded runs (--shard, --workers) take scenarios without it",
            scenario.name
        ));
    }
    if scenario.journeys.is_some() {
        return Some(format!(
            "scenario {} has [journeys] (cart holds), which are judged on one generator's hold \
             log; sharded runs (--shard, --workers) take scenarios without [journeys]",
            scenario.name
        ));
    }
    None
}

/// A time between `now` and `later`, as a std duration (zero when `later` has passed).
pub(crate) fn until(now: OffsetDateTime, later: OffsetDateTime) -> Duration {
    (later - now).try_into().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_spec_parses_k_of_n_and_names_the_mistake() {
        assert_eq!(
            "2/4".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 4 })
        );
        assert!("4/4".parse::<ShardSpec>().unwrap_err().contains("3/4"));
        assert!("1/0".parse::<ShardSpec>().unwrap_err().contains("1 to"));
        assert!("two".parse::<ShardSpec>().unwrap_err().contains("K/N"));
        assert!("-1/3".parse::<ShardSpec>().is_err());
    }

    #[test]
    fn an_earlier_campaigns_sale_file_is_refused() {
        let scenario = crate::scenario::Scenario::from_toml_str(
            "[sale]\ncap = 1\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n[buyers]\ncount = 1\nquantity = 1\n",
            "s",
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let sale = crate::target::driver::PreparedSale {
            sale: crate::target::CreatedSale {
                id: "s1".into(),
                starts_at: now - time::Duration::hours(30),
                ends_at: now - time::Duration::hours(6),
            },
            cap: Some(1),
        };
        let file = SaleFile::new(&scenario, &sale, 1, vec!["http://t".into()]);
        let path = Path::new("sale.json");
        let err = file
            .check_current(now + time::Duration::minutes(3), path)
            .unwrap_err();
        assert!(err.contains("earlier campaign"), "{err}");
        assert!(
            file.check_current(now - time::Duration::hours(7), path)
                .is_ok()
        );
        // Shards of a scenario whose sale opens a set time after set-up cannot be planned.
        let mut timed = scenario.clone();
        timed.sale.opens_after = Some(Duration::from_millis(300));
        assert!(unshardable(&timed).unwrap().contains("opens_after"));
    }

    #[test]
    fn the_shards_partition_the_plan() {
        let n = 3;
        for i in 0..100u32 {
            let owners = (0..n)
                .filter(|&k| ShardSpec { index: k, count: n }.owns(i))
                .count();
            assert_eq!(owners, 1, "buyer {i}");
        }
    }
}
