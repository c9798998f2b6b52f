//! What this process knows about one drop's gate that Redis does not say: the purchases in
//! flight, the units they hold, and whether Redis may have been left *below* the truth.
//!
//! The gate's `left` plus the units that in-flight purchases took from it and have neither sold
//! nor given back is never below PostgreSQL's `stock - sold`: taking moves units from `left` to
//! a hold, a sale removes them from the hold and from PostgreSQL together, a give-back moves them
//! back, a reseed or reconcile writes PostgreSQL's figure (which only falls afterwards). So a
//! sold-out answer from the gate is true when `left + held < units`, even while other buyers'
//! units are about to be given back (a duplicate key, a customer over the limit).
//!
//! Two things break that bound, and this module remembers when they happened (a *doubt*): a
//! gate call that failed after it may have reached Redis (its decrement can land late, after
//! the purchase was settled), and a give-back that failed. While a drop is in doubt, the gate's
//! sold-out answers are checked against PostgreSQL. The reconcile task clears a doubt once it
//! has written PostgreSQL's figure from a reading taken [`DOUBT_QUIET`] after the doubt arose,
//! by which time a late write from before has landed or been lost with its connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long after a doubtful call a reconcile must read PostgreSQL for its write to clear the
/// doubt: longer than a gate call's timeout plus a slow link's delay.
pub const DOUBT_QUIET: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Accounts {
    in_flight: AtomicUsize,
    /// Units ever reserved for a gate call; a hold is reserved *before* its call is sent.
    reserved: AtomicI64,
    /// Units ever settled (sold, given back, or not taken); a hold is settled *after* its sale
    /// committed or its units went back. `reserved - settled` is at least what purchases hold.
    settled: AtomicI64,
    doubt_since: Mutex<Option<Instant>>,
}

impl Accounts {
    /// Marks a purchase in flight until the guard is dropped; the reconcile task leaves a drop
    /// with purchases in flight alone.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight { accounts: self }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Reserves `units` for a gate call about to be sent.
    pub fn reserve(&self, units: i64) -> Hold<'_> {
        self.reserved.fetch_add(units, Ordering::SeqCst);
        Hold {
            accounts: self,
            units,
            settled: false,
        }
    }

    /// Read before a gate call: settlements counted so far.
    pub fn settled_so_far(&self) -> i64 {
        self.settled.load(Ordering::SeqCst)
    }

    /// Read after a gate call: an upper bound on the units other purchases held when Redis ran
    /// the call, given the `settled_before` read before it and this call's own `units`
    /// (reserved but, the gate having refused, not taken). Reservations are counted before a
    /// call is sent and settlements after it is done, so reading reservations late and
    /// settlements early can only overcount.
    pub fn held_by_others(&self, settled_before: i64, units: i64) -> i64 {
        self.reserved.load(Ordering::SeqCst) - units - settled_before
    }

    /// Redis may now hold less than the truth for this drop.
    pub fn doubt(&self) {
        *self.doubt_lock() = Some(Instant::now());
    }

    pub fn is_doubtful(&self) -> bool {
        self.doubt_lock().is_some()
    }

    /// The reconcile task wrote PostgreSQL's figure as read at `read_at`: a doubt that arose at
    /// least [`DOUBT_QUIET`] before that reading is resolved.
    pub fn clear_doubt(&self, read_at: Instant) {
        let mut doubt = self.doubt_lock();
        if doubt.is_some_and(|since| since + DOUBT_QUIET <= read_at) {
            *doubt = None;
        }
    }

    fn doubt_lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.doubt_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A purchase in flight for the reconcile task's sake.
#[derive(Debug)]
pub struct InFlight<'a> {
    accounts: &'a Accounts,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.accounts.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Units reserved for one purchase's gate call, until they are settled.
#[derive(Debug)]
pub struct Hold<'a> {
    accounts: &'a Accounts,
    units: i64,
    settled: bool,
}

impl Hold<'_> {
    pub fn units(&self) -> i64 {
        self.units
    }

    /// The units were sold, given back, or never taken.
    pub fn settle(mut self) {
        self.settled = true;
        self.accounts
            .settled
            .fetch_add(self.units, Ordering::SeqCst);
    }
}

/// A hold dropped without being settled (a panic on the way): its units may be stranded in
/// Redis, which is exactly a doubt.
impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.accounts
                .settled
                .fetch_add(self.units, Ordering::SeqCst);
            self.accounts.doubt();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_held_by_others_count_until_settled() {
        let accounts = Accounts::default();
        let other = accounts.reserve(3);
        let before = accounts.settled_so_far();
        let mine = accounts.reserve(1);
        assert_eq!(accounts.held_by_others(before, 1), 3);
        mine.settle();
        // Settled after `before` was read: still counted, which only errs towards asking
        // PostgreSQL.
        assert_eq!(accounts.held_by_others(before, 1), 3);
        other.settle();
        let after = accounts.settled_so_far();
        let again = accounts.reserve(2);
        assert_eq!(accounts.held_by_others(after, 2), 0);
        again.settle();
    }

    #[test]
    fn a_dropped_hold_is_a_doubt() {
        let accounts = Accounts::default();
        assert!(!accounts.is_doubtful());
        drop(accounts.reserve(2));
        assert!(accounts.is_doubtful());
        assert_eq!(accounts.held_by_others(accounts.settled_so_far(), 0), 0);
    }

    #[test]
    fn a_doubt_clears_only_from_a_reading_taken_after_the_quiet_time() {
        let accounts = Accounts::default();
        accounts.doubt();
        accounts.clear_doubt(Instant::now());
        assert!(accounts.is_doubtful());
        accounts.clear_doubt(Instant::now() + DOUBT_QUIET);
        assert!(!accounts.is_doubtful());
    }

    #[test]
    fn in_flight_counts_guards() {
        let accounts = Accounts::default();
        let first = accounts.enter();
        let second = accounts.enter();
        assert_eq!(accounts.in_flight(), 2);
        drop(first);
        drop(second);
        assert_eq!(accounts.in_flight(), 0);
    }
}
