//! flashsale harness: fires concurrent buyers at a flash-sale server, records every attempt,
//! checks the invariants of docs/invariants.md against the server's exported ledger, and writes reports.
//!
//! The modules, lowest layer first (each uses only those above it in this list):
//!
//! - [`history`]: one record per buy attempt, the shared outcome vocabulary;
//! - [`latency`]: latency histograms and statistics by outcome class;
//! - [`thresholds`]: a scenario's pass/fail limits and their judgement;
//! - [`scenario`]: the typed scenario file;
//! - [`ground_truth`]: the orders and inventory view read back from the target;
//! - [`load`]: the schedule, the buyer driver, the generator's self-check, progress, `blast`;
//! - [`target`]: the server under test (in-process or by URL) and its admin API;
//! - [`faults`]: the Redis container, the fault proxy, the fault timeline;
//! - [`checker`]: the invariants, one file each, judged on a history and the ground truth;
//! - [`report`]: the run directory (summary, histograms, interval logs, report.html);
//! - [`compare`]: two runs' summaries side by side;
//! - [`conformance`]: the contract's refusals, public view and sale lifecycle, judged over HTTP;
//! - [`run`]: one scenario end to end; [`repeat`]: a series of runs (`run --repeat N`) and its
//!   aggregate; [`explore`]: generated scenarios and shrinking;
//! - [`shard`]: one scenario fired by several generators (`--shard`, `--workers`) and their
//!   merge into one run (`flashsale merge`);
//! - [`verify`]: the battery of checks, the budget, the verdict (`flashsale verify`);
//! - [`cli`]: the `flashsale` command line on top.

pub mod checker;
pub mod cli;
pub mod compare;
pub mod conformance;
pub mod explore;
pub mod fanout;
pub mod faults;
pub mod ground_truth;
pub mod history;
pub mod latency;
pub mod load;
pub mod memory;
pub mod profile;
pub mod repeat;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod target;
pub mod thresholds;
pub mod verify;
