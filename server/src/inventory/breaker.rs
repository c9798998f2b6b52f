//! A circuit breaker in front of Redis (HAZ-6): after a run of failures, claims skip Redis for a
//! while instead of each waiting out the Redis timeout, then one probe is let through to see
//! whether Redis is back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight; everyone else keeps using the fallback until it reports.
    HalfOpen,
}

/// What the breaker currently lets through; for the inventory view and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    failure_threshold: u32,
    open_for: Duration,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed {
                consecutive_failures: 0,
            }),
            failure_threshold: failure_threshold.max(1),
            open_for,
        }
    }

    /// Whether this call may use Redis. When the open period has passed, exactly one caller gets
    /// `true` (the probe) and the state becomes half-open.
    pub fn allow(&self) -> bool {
        let mut state = self.state.lock().expect("breaker state");
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                true
            }
            State::Open { .. } | State::HalfOpen => false,
        }
    }

    pub fn record_success(&self) {
        *self.state.lock().expect("breaker state") = State::Closed {
            consecutive_failures: 0,
        };
    }

    pub fn record_failure(&self) {
        let mut state = self.state.lock().expect("breaker state");
        let open = State::Open {
            until: Instant::now() + self.open_for,
        };
        *state = match *state {
            State::Closed {
                consecutive_failures,
            } if consecutive_failures + 1 < self.failure_threshold => State::Closed {
                consecutive_failures: consecutive_failures + 1,
            },
            _ => open,
        };
    }

    pub fn state(&self) -> BreakerState {
        match *self.state.lock().expect("breaker state") {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_lets_one_probe_through_after_the_pause() {
        let breaker = CircuitBreaker::new(3, Duration::from_millis(30));
        breaker.record_failure();
        breaker.record_failure();
        assert!(breaker.allow(), "two failures are below the threshold");
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.record_failure();
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe reopens"
        );
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow());
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow() && breaker.allow());
    }

    #[test]
    fn a_success_resets_the_failure_run() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record_failure();
        breaker.record_success();
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
