//! Counting a server process's claims, so that a mutant failing "1 claim in N" fails on the same
//! claims in every run of a scenario (claim N, 2N, …) and a counterexample replays.

use std::sync::atomic::{AtomicU64, Ordering};

/// How often the 1-in-N mutants fail: often enough that a run of a few thousand claims meets the
/// bug several times, rarely enough that the shipped 10-to-400-buyer scenarios never do.
pub const EVERY: u64 = 500;

/// Numbers the claims of one server process from 1 and says which are the `n`-th, `2n`-th, ….
#[derive(Debug)]
pub struct EveryNth {
    n: u64,
    claims: AtomicU64,
}

impl EveryNth {
    pub fn new(n: u64) -> Self {
        assert!(n >= 1, "a claim count needs a period of at least 1");
        Self {
            n,
            claims: AtomicU64::new(0),
        }
    }

    /// Counts one claim; `true` when it is a multiple of `n`.
    pub fn next_fires(&self) -> bool {
        let number = self.claims.fetch_add(1, Ordering::Relaxed) + 1;
        number % self.n == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_every_nth_claim_only() {
        let every = EveryNth::new(3);
        let fired: Vec<bool> = (0..7).map(|_| every.next_fires()).collect();
        assert_eq!(fired, [false, false, true, false, false, true, false]);
    }
}
