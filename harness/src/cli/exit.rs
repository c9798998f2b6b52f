//! Exit statuses of the `flashsale` commands, and the one a finished run maps to.

use crate::run::RunResult;
use crate::verify::Verdict;

/// No invariant was violated (some may be not checked: the console and `summary.json` say which).
pub const HELD: i32 = 0;
/// An invariant was violated.
pub const VIOLATED: i32 = 1;
/// Bad input or a set-up problem; nothing was checked.
pub const SETUP: i32 = 2;
/// Every invariant held but a threshold of the scenario failed (or, for `compare`, a
/// regression exceeded its limit).
pub const THRESHOLD_FAILED: i32 = 3;

// An exit status is the command line's business, not the run's: the method is defined here, with
// the statuses, so that `run` does not depend on the command line above it.
impl RunResult {
    /// An invariant violation wins over a failed threshold: a wrong answer matters more than a
    /// slow one.
    /// A run that tested nothing (every request refused for its input) is status 3, like a
    /// failed threshold: nothing was violated, and nothing passed either.
    pub fn exit_status(&self) -> i32 {
        exit_status(
            self.check.none_violated(),
            self.summary.all_thresholds_passed && self.tested_nothing().is_none(),
        )
    }
}

impl Verdict {
    /// `flashsale verify`'s status: the same meanings as `run`'s, over all its runs.
    pub fn exit_status(self) -> i32 {
        match self {
            Verdict::Held => HELD,
            Verdict::Violated => VIOLATED,
            Verdict::ThresholdFailed => THRESHOLD_FAILED,
        }
    }
}

/// `none_violated`: no invariant was violated; a "not checked" is not a violation, so it keeps
/// status 0 (it is printed, and recorded in `summary.json`, as not checked).
pub(crate) fn exit_status(none_violated: bool, thresholds_passed: bool) -> i32 {
    match (none_violated, thresholds_passed) {
        (false, _) => VIOLATED,
        (true, false) => THRESHOLD_FAILED,
        (true, true) => HELD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violated_invariant_wins_over_a_failed_threshold() {
        assert_eq!(exit_status(true, true), HELD);
        assert_eq!(exit_status(true, false), THRESHOLD_FAILED);
        assert_eq!(exit_status(false, false), VIOLATED);
        assert_eq!(exit_status(false, true), VIOLATED);
    }
}
