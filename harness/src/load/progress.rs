//! The live progress line on stderr during a run: elapsed time, sent, ok, sold out, unknown, the
//! current answer rate and the units left.
//!
//! indicatif draws it only when stderr is a terminal, so CI logs, pipes and the test suite see
//! nothing of it; the final summary on stdout is unchanged either way.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::buyers::LoadProbe;
use crate::scenario::Scenario;

/// How often the line is redrawn; the rate is taken over the same span.
const TICK: Duration = Duration::from_millis(250);

/// A running progress line; [`Progress::finish`] clears it.
pub struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts drawing from `doors_open` until [`Progress::finish`].
    pub fn start(scenario: &Scenario, probe: Arc<LoadProbe>, doors_open: Instant) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .expect("the template is valid"),
        );
        let cap = scenario.sale.cap.as_option();
        let buyers = scenario.buyers.count;
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(doors_open, TICK);
            let mut last_completed = 0;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = &mut stopped => break,
                }
                let completed = probe.completed.load(Ordering::Relaxed);
                let rate = (completed - last_completed) as f64 / TICK.as_secs_f64();
                last_completed = completed;
                bar.set_message(line(&probe, buyers, rate, cap));
                bar.tick();
            }
            bar.finish_and_clear();
        });
        Progress { stop, task }
    }

    /// Stops and clears the line.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn line(probe: &LoadProbe, buyers: u32, rate: f64, cap: Option<u64>) -> String {
    let remaining = match cap {
        Some(cap) => cap
            .saturating_sub(probe.acked_units.load(Ordering::Relaxed))
            .to_string(),
        None => "unlimited".to_owned(),
    };
    format!(
        "sent {}/{buyers}  ok {}  sold out {}  unknown {}  {rate:.0} answers/s  units left {remaining}",
        probe.sent.load(Ordering::Relaxed),
        probe.ok.load(Ordering::Relaxed),
        probe.sold_out.load(Ordering::Relaxed),
        probe.unknown.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counts_rate_and_units_left() {
        let probe = LoadProbe::default();
        probe.sent.store(120, Ordering::Relaxed);
        probe.ok.store(7, Ordering::Relaxed);
        probe.acked_units.store(9, Ordering::Relaxed);
        probe.sold_out.store(100, Ordering::Relaxed);
        probe.unknown.store(3, Ordering::Relaxed);
        assert_eq!(
            line(&probe, 1000, 412.4, Some(10)),
            "sent 120/1000  ok 7  sold out 100  unknown 3  412 answers/s  units left 1"
        );
        assert!(line(&probe, 1000, 0.0, None).ends_with("units left unlimited"));
    }
}
