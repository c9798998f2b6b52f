//! The load generator watching itself: did it keep its schedule, and did it have the CPU to?
//!
//! A latency figure is only the server's if the generator sent on time. Two things can make it
//! late, and they mean different things:
//!
//! - **schedule lag**: the buyer's timer fired late (from the intended send to the moment the
//!   buyer task ran). That is the generator itself falling behind — a starved runtime or a
//!   saturated CPU — and it makes the run *generator-bound*: its latencies are not the server's.
//! - **connection wait**: the buyer ran on time but waited for one of the scenario's
//!   connections. That is back-pressure from a slow server through a bounded pool; the
//!   coordinated-omission-corrected latency (from the intended send) counts it, as a shopper would
//!   have waited it. It is reported, not flagged.
//!
//! Every attempt sent more than [`LATE_SEND_US`] after its intended time is counted as a late
//! send, whatever the cause; none is dropped or rescheduled.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::Attempt;
use crate::latency::{SpreadStats, new_histogram};

/// An attempt sent later than this after its intended time is a late send (10 ms: well above
/// timer and scheduling jitter, well below any latency a shopper notices).
pub const LATE_SEND_US: u64 = 10_000;

/// Schedule lag p99 above which the generator is taken to have fallen behind its schedule.
pub const LAG_P99_LIMIT_US: u64 = 10_000;

/// Schedule lag max above which the generator is taken to have fallen behind (one long stall of
/// the generator hides a latency spike as surely as a steady lag).
pub const LAG_MAX_LIMIT_US: u64 = 100_000;

/// Share of all cores above which the process's CPU counts as saturated.
pub const CPU_SATURATED: f64 = 0.9;

/// `/proc/<pid>/stat` counts CPU time in clock ticks of `USER_HZ`, which the Linux ABI fixes at
/// 100 per second on every architecture it exposes to user space (what `sysconf(_SC_CLK_TCK)`
/// returns); reading it from `/proc` keeps the harness free of `libc` and `unsafe`.
const TICKS_PER_SECOND: f64 = 100.0;

/// When one buyer's first try was meant to go, when its task actually ran, and when the request
/// left (µs since the run's clock origin). Retries are not sampled: they are meant to be late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSample {
    pub intended_us: u64,
    pub woke_us: u64,
    pub sent_us: u64,
}

impl ScheduleSample {
    /// How late the generator itself was.
    pub fn lag_us(&self) -> u64 {
        self.woke_us.saturating_sub(self.intended_us)
    }

    /// How long the buyer waited for a connection.
    pub fn connection_wait_us(&self) -> u64 {
        self.sent_us.saturating_sub(self.woke_us)
    }
}

/// The process's CPU time (user + system) at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuClock {
    cpu: Duration,
    at: std::time::Instant,
}

impl CpuClock {
    /// Reads `/proc/self/stat`; `None` where there is no such file (not Linux).
    pub fn now() -> Option<CpuClock> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        Some(CpuClock {
            cpu: parse_proc_stat_cpu(&text)?,
            at: std::time::Instant::now(),
        })
    }

    /// CPU used between `self` and `later`, set against the wall time × the cores available.
    pub fn usage_until(&self, later: &CpuClock) -> CpuUsage {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let wall = later.at.saturating_duration_since(self.at);
        let cpu = later.cpu.saturating_sub(self.cpu);
        let capacity = wall.as_secs_f64() * f64::from(cores);
        CpuUsage {
            cores,
            wall_ms: wall.as_millis() as u64,
            cpu_ms: cpu.as_millis() as u64,
            busy_fraction: if capacity > 0.0 {
                (cpu.as_secs_f64() / capacity).min(1.0)
            } else {
                0.0
            },
        }
    }
}

/// utime + stime of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
/// may itself hold spaces or parentheses, so fields are counted from the last `)`.
fn parse_proc_stat_cpu(text: &str) -> Option<Duration> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / TICKS_PER_SECOND,
    ))
}

/// The harness process's CPU over the load phase (doors open to the last answer). With the
/// in-process reference server this includes the server's CPU: the two share the machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    pub cores: u32,
    pub wall_ms: u64,
    pub cpu_ms: u64,
    /// `cpu / (wall × cores)`, 0 to 1.
    pub busy_fraction: f64,
}

/// What the load phase measured about the generator, beside the attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneratorStats {
    pub schedule: Vec<ScheduleSample>,
    pub cpu: Option<CpuUsage>,
}

/// Attempts sent more than [`LATE_SEND_US`] after their intended time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LateSends {
    pub threshold_us: u64,
    pub count: u64,
    /// Of all attempts.
    pub fraction: f64,
}

/// `summary.json`'s `generator`: the verdict and what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// True when the generator fell behind its schedule or saturated its CPU: the run's
    /// latencies then describe the harness at least as much as the server.
    pub bound: bool,
    /// Why, in words; empty when not bound.
    pub reasons: Vec<String>,
    /// From intended send to the buyer task running (first tries).
    pub schedule_lag_us: SpreadStats,
    /// From the buyer task running to the request leaving (first tries).
    pub connection_wait_us: SpreadStats,
    pub late_sends: LateSends,
    /// `null` where `/proc/self/stat` could not be read.
    pub cpu: Option<CpuUsage>,
}

impl GeneratorReport {
    pub fn assess(stats: &GeneratorStats, history: &[Attempt]) -> GeneratorReport {
        let lag = histogram_of(stats.schedule.iter().map(ScheduleSample::lag_us));
        let wait = histogram_of(
            stats
                .schedule
                .iter()
                .map(ScheduleSample::connection_wait_us),
        );
        let schedule_lag_us = SpreadStats::of(&lag);
        let late = history
            .iter()
            .filter(|a| a.sent_us.saturating_sub(a.intended_us) > LATE_SEND_US)
            .count() as u64;
        let mut reasons = Vec::new();
        if schedule_lag_us.p99_us > LAG_P99_LIMIT_US || schedule_lag_us.max_us > LAG_MAX_LIMIT_US {
            reasons.push(format!(
                "fell behind its schedule: buyers started p99 {:.1} ms, max {:.1} ms after their \
                 intended send (limits {} ms, {} ms)",
                schedule_lag_us.p99_us as f64 / 1e3,
                schedule_lag_us.max_us as f64 / 1e3,
                LAG_P99_LIMIT_US / 1_000,
                LAG_MAX_LIMIT_US / 1_000
            ));
        }
        if let Some(cpu) = stats.cpu.filter(|c| c.busy_fraction > CPU_SATURATED) {
            reasons.push(format!(
                "CPU saturated: the harness process used {:.0}% of {} cores during the load \
                 (with the in-process server, that includes the server)",
                cpu.busy_fraction * 100.0,
                cpu.cores
            ));
        }
        GeneratorReport {
            bound: !reasons.is_empty(),
            reasons,
            schedule_lag_us,
            connection_wait_us: SpreadStats::of(&wait),
            late_sends: LateSends {
                threshold_us: LATE_SEND_US,
                count: late,
                fraction: if history.is_empty() {
                    0.0
                } else {
                    late as f64 / history.len() as f64
                },
            },
            cpu: stats.cpu,
        }
    }
}

fn histogram_of(values: impl Iterator<Item = u64>) -> Histogram<u64> {
    let mut h = new_histogram();
    for v in values {
        crate::latency::record(&mut h, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(intended_us: u64, sent_us: u64) -> Attempt {
        Attempt {
            seq: 0,
            buyer: "b".into(),
            idempotency_key: "k".into(),
            quantity: 1,
            try_number: 0,
            intended_us,
            sent_us,
            completed_us: sent_us + 1_000,
            outcome: crate::history::Outcome::Ok,
            status: Some(201),
            code: None,
            order_id: Some("o".into()),
        }
    }

    #[test]
    fn reads_utime_and_stime_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 \
                    9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(
            parse_proc_stat_cpu(line),
            Some(Duration::from_millis(3_250))
        );
        assert_eq!(parse_proc_stat_cpu("garbage"), None);
        assert!(CpuClock::now().is_some(), "this is Linux: /proc/self/stat");
    }

    #[test]
    fn connection_waits_are_late_sends_but_only_schedule_lag_makes_a_run_generator_bound() {
        // Every buyer ran on time but waited 50 ms for a connection: late, not generator-bound.
        let waited: Vec<ScheduleSample> = (0..100)
            .map(|i| ScheduleSample {
                intended_us: i * 1_000,
                woke_us: i * 1_000 + 200,
                sent_us: i * 1_000 + 50_000,
            })
            .collect();
        let history: Vec<Attempt> = waited
            .iter()
            .map(|s| attempt(s.intended_us, s.sent_us))
            .collect();
        let stats = GeneratorStats {
            schedule: waited.clone(),
            cpu: None,
        };
        let report = GeneratorReport::assess(&stats, &history);
        assert!(!report.bound, "{:?}", report.reasons);
        assert_eq!(report.late_sends.count, 100);
        assert_eq!(report.late_sends.fraction, 1.0);
        assert!(report.connection_wait_us.p99_us >= 49_000);

        // The same buyers woken 30 ms late: the generator fell behind.
        let lagging = GeneratorStats {
            schedule: waited
                .iter()
                .map(|s| ScheduleSample {
                    woke_us: s.intended_us + 30_000,
                    ..*s
                })
                .collect(),
            cpu: None,
        };
        let report = GeneratorReport::assess(&lagging, &history);
        assert!(report.bound);
        assert!(
            report.reasons[0].contains("fell behind"),
            "{:?}",
            report.reasons
        );
    }

    #[test]
    fn a_saturated_cpu_makes_a_run_generator_bound() {
        let stats = GeneratorStats {
            schedule: Vec::new(),
            cpu: Some(CpuUsage {
                cores: 2,
                wall_ms: 1_000,
                cpu_ms: 1_950,
                busy_fraction: 0.975,
            }),
        };
        let report = GeneratorReport::assess(&stats, &[attempt(0, 100)]);
        assert!(report.bound);
        assert!(
            report.reasons[0].contains("98% of 2 cores"),
            "{:?}",
            report.reasons
        );
        assert_eq!(report.late_sends.count, 0);
    }
}
