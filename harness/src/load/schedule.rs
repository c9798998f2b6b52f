//! The schedule: when each buyer of an arrival model is meant to send. The scenario says which
//! model a file asks for; the arithmetic that turns it into send times belongs to the load
//! generator that keeps them, and to the report that measures goodput against them.

use std::time::Duration;

use crate::scenario::Arrival;

impl Arrival {
    /// When buyer `index` is meant to send, counted from doors open; `None` for the closed model,
    /// whose send times depend on the answers.
    pub fn offset_of(&self, index: u32) -> Option<Duration> {
        let i = f64::from(index);
        match *self {
            Arrival::Burst { .. } => Some(Duration::ZERO),
            Arrival::ConstantRate { rate, .. } => Some(Duration::from_secs_f64(i / rate)),
            Arrival::Ramp {
                from_rate,
                to_rate,
                over,
                ..
            } => {
                let over_s = over.as_secs_f64();
                // Buyers arrived by time t during the ramp: from·t + (to − from)·t² / (2·over).
                let during_ramp = (from_rate + to_rate) / 2.0 * over_s;
                let seconds = if i <= during_ramp {
                    let a = (to_rate - from_rate) / (2.0 * over_s);
                    // The positive root of a·t² + from·t − i = 0, in the form that stays exact
                    // when a is 0 (constant rate) or from is 0 (a ramp from nothing).
                    let root = (from_rate * from_rate + 4.0 * a * i).max(0.0).sqrt();
                    if i == 0.0 {
                        0.0
                    } else {
                        2.0 * i / (from_rate + root)
                    }
                } else {
                    over_s + (i - during_ramp) / to_rate
                };
                Some(Duration::from_secs_f64(seconds))
            }
            Arrival::Closed { .. } => None,
        }
    }

    /// Buyers per second the schedule offers on average, for goodput; `None` when the model
    /// has no rate of its own (a burst is one instant, a closed model follows the server).
    pub fn offered_rate(&self, buyers: u32) -> Option<f64> {
        match self {
            Arrival::ConstantRate { rate, .. } => Some(*rate),
            Arrival::Ramp { .. } => {
                let span = self.offset_of(buyers.saturating_sub(1))?.as_secs_f64();
                (span > 0.0).then(|| f64::from(buyers.saturating_sub(1)) / span)
            }
            Arrival::Burst { .. } | Arrival::Closed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use crate::scenario::fixtures::MINIMAL;

    fn arrival_of(table: &str) -> Arrival {
        Scenario::from_toml_str(&format!("{MINIMAL}[arrival]\n{table}"), "t")
            .unwrap()
            .arrival
    }

    #[test]
    fn a_ramp_spreads_buyers_along_a_rising_rate_then_holds_the_last_rate() {
        let ramp = arrival_of("model = \"ramp\"\nfrom_rate = 0\nto_rate = 100\nover = \"2s\"\n");
        assert_eq!(
            ramp,
            Arrival::Ramp {
                open_after: Duration::from_millis(200),
                from_rate: 0.0,
                to_rate: 100.0,
                over: Duration::from_secs(2),
            }
        );
        let at = |i| ramp.offset_of(i).unwrap().as_secs_f64();
        // 0 -> 100/s over 2 s brings 100 buyers; buyer i arrives at sqrt(i / 25) s.
        assert_eq!(at(0), 0.0);
        assert!((at(25) - 1.0).abs() < 1e-9, "{}", at(25));
        assert!((at(100) - 2.0).abs() < 1e-9, "{}", at(100));
        // Then 100 per second.
        assert!((at(150) - 2.5).abs() < 1e-9, "{}", at(150));
        assert!(
            (1..200).all(|i| at(i) > at(i - 1)),
            "send times only move forward"
        );

        let down = arrival_of("model = \"ramp\"\nfrom_rate = 200\nto_rate = 100\nover = \"1s\"\n");
        let at = |i| down.offset_of(i).unwrap().as_secs_f64();
        // 200 -> 100/s over 1 s brings 150 buyers; the first ones 5 ms apart.
        assert!((at(1) - 0.005).abs() < 1e-4, "{}", at(1));
        assert!((at(150) - 1.0).abs() < 1e-9, "{}", at(150));
        assert!((at(250) - 2.0).abs() < 1e-9, "{}", at(250));
        assert!((1..300).all(|i| at(i) > at(i - 1)));
        let json = serde_json::to_value(&down).unwrap();
        assert_eq!(json["over"], "1s");
        assert_eq!(serde_json::from_value::<Arrival>(json).unwrap(), down);
    }

    #[test]
    fn the_closed_model_has_no_send_times_fixed_in_advance() {
        let closed = arrival_of("model = \"closed\"\nconcurrency = 8\nthink_time = \"20ms\"\n");
        assert_eq!(
            closed,
            Arrival::Closed {
                open_after: Duration::from_millis(200),
                concurrency: 8,
                think_time: Duration::from_millis(20),
            }
        );
        assert_eq!(closed.offset_of(3), None);
        assert_eq!(closed.offered_rate(10), None);
        let constant = arrival_of("model = \"constant-rate\"\nrate = 50\n");
        assert_eq!(constant.offset_of(5), Some(Duration::from_millis(100)));
        assert_eq!(constant.offered_rate(10), Some(50.0));
    }
}
