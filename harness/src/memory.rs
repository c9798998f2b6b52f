//! Resident memory during a run: the harness's own process (which holds the in-process
//! reference server when there is one) and the service the harness started from a profile,
//! sampled once a second. A soak reads the growth after warm-up: memory that keeps climbing once
//! every pool, cache and histogram has reached its working size is a leak.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::target::service::StartedService;

/// How often resident memory is read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The share of a run counted as warm-up: growth is measured from its end.
const WARM_UP_SHARE: f64 = 0.2;

/// One reading, in bytes; `None` when the process could not be read (the service was down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Milliseconds since the run's clock origin.
    pub at_ms: u64,
    pub harness_bytes: Option<u64>,
    pub service_bytes: Option<u64>,
}

/// `VmRSS` of a process (`None`: this one), from `/proc`; `None` where there is no `/proc`.
pub fn resident_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples until `end` turns true.
pub async fn sample(
    origin: Instant,
    service: Option<Arc<StartedService>>,
    mut end: watch::Receiver<bool>,
) -> Vec<MemorySample> {
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = end.changed() => return samples,
        }
        let service_bytes = match &service {
            Some(service) => service
                .pid()
                .await
                .and_then(|pid| resident_bytes(Some(pid))),
            None => None,
        };
        samples.push(MemorySample {
            at_ms: origin.elapsed().as_millis() as u64,
            harness_bytes: resident_bytes(None),
            service_bytes,
        });
    }
}

/// What one process's memory did over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    pub start_mb: f64,
    /// At the end of warm-up (the first fifth of the run).
    pub after_warm_up_mb: f64,
    pub end_mb: f64,
    pub peak_mb: f64,
    /// (end − after warm-up) / after warm-up, in percent.
    pub growth_after_warm_up_pct: f64,
}

/// Which of `count` readings ends warm-up: growth is measured from it.
pub fn warm_up_index(count: usize) -> usize {
    ((count as f64 * WARM_UP_SHARE) as usize).min(count.saturating_sub(1))
}

impl Growth {
    fn of(readings: &[u64]) -> Option<Growth> {
        let (&first, &last) = (readings.first()?, readings.last()?);
        let warm = readings[warm_up_index(readings.len())];
        let mb = |b: u64| b as f64 / 1_048_576.0;
        Some(Growth {
            start_mb: mb(first),
            after_warm_up_mb: mb(warm),
            end_mb: mb(last),
            peak_mb: mb(readings.iter().copied().max().unwrap_or(last)),
            growth_after_warm_up_pct: if warm == 0 {
                0.0
            } else {
                (last as f64 - warm as f64) / warm as f64 * 100.0
            },
        })
    }
}

/// The memory part of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// The harness's process, with the in-process reference server when there is one.
    pub harness: Option<Growth>,
    /// A service the harness started from a profile.
    pub service: Option<Growth>,
    pub samples: Vec<MemorySample>,
}

impl MemoryReport {
    pub fn of(samples: &[MemorySample]) -> Option<MemoryReport> {
        if samples.is_empty() {
            return None;
        }
        let harness: Vec<u64> = samples.iter().filter_map(|s| s.harness_bytes).collect();
        let service: Vec<u64> = samples.iter().filter_map(|s| s.service_bytes).collect();
        Some(MemoryReport {
            harness: Growth::of(&harness),
            service: Growth::of(&service),
            samples: samples.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory() {
        let bytes = resident_bytes(None).expect("Linux has /proc/self/status");
        assert!(bytes > 1_000_000, "{bytes}");
    }

    #[test]
    fn growth_is_measured_from_the_end_of_warm_up() {
        let mb = 1_048_576;
        // 10 readings: warm-up ends at the third (index 2), 100 MB; the run ends at 130 MB.
        let readings: Vec<u64> = [40, 80, 100, 100, 105, 110, 115, 120, 125, 130]
            .iter()
            .map(|m| m * mb)
            .collect();
        let growth = Growth::of(&readings).unwrap();
        assert_eq!(
            (
                growth.start_mb,
                growth.after_warm_up_mb,
                growth.end_mb,
                growth.peak_mb
            ),
            (40.0, 100.0, 130.0, 130.0)
        );
        assert!((growth.growth_after_warm_up_pct - 30.0).abs() < 1e-9);
        assert!(Growth::of(&[]).is_none());
    }
}
