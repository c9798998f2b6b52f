//! Deliberately broken claim strategies ("mutants") the harness must catch, kept out of the
//! server crate so that no build of `flashsale-server` contains them.
//!
//! Each mutant implements the server's seam, [`flashsale_server::ClaimStrategy`], and is plugged
//! in through [`flashsale_server::build_with`]; some wrap the correct
//! [`flashsale_server::Inventory`] (handed over in [`StrategyParts::correct`]) and perturb one
//! answer, others decide claims themselves in a sale without slots. To add one: a module
//! implementing `ClaimStrategy` (or a rule for one of the shared models below), a variant of
//! [`InventoryStrategy`] with its name, and a line in `InventoryStrategy::make`; the server does
//! not change. Each module's header says which invariant it breaks, and when.
//!
//! - [`broken_naive`]: read the count, compare, write (HAZ-1; INV-1 under concurrency).
//! - [`broken_seed`]: the seed document taken literally (HAZ-2, HAZ-4; INV-1 under Redis faults).
//! - [`oversell_at_boundary`]: a multi-unit order meeting remaining = quantity − 1 is granted
//!   (INV-1).
//! - [`ack_without_order`]: every 500th claim answered 201 with an order never stored (INV-2).
//! - [`order_answered_sold_out`]: every 500th claim stored but answered sold out (INV-3).
//! - [`racy_idempotency`]: two requests with one key at once both make an order (INV-4).
//! - [`racy_buyer_limit`]: one buyer's orders sent together all pass a per-buyer limit (INV-9).
//! - [`checkout_after_expiry`], [`expiry_returns_twice`], [`holds_not_counted`]: cart holds
//!   checked out after they expired, given back twice, or not counted as taken (INV-7).
//! - [`alerts_recorded_at_end`]: correct claims; wishlist alerts recorded only at the end of the
//!   fan-out, so a restart mid-fan-out sends them twice (INV-8).
//! - [`unit_without_order`]: every 500th claim consumes its units, writes no order, answers 503
//!   (HAZ-5 unhandled; INV-5).
//! - [`seed_model`]: what the first two share: orders without slots, one query per key lookup.
//! - [`serial_model`]: what the boundary, idempotency, buyer-limit and stranding mutants share: claims
//!   serialized per sale in process, orders without slots, one rule to break.
//! - [`wrapped`] and [`claim_count`]: what the 1-in-500 wrappers share: the correct inventory,
//!   the N-th claim's answer replaced.

/// The cart-hold methods of a [`ClaimStrategy`] whose holds are the correct inventory's
/// (`self.correct`), for the mutants that break no hold rule: written once, used inside their
/// `impl ClaimStrategy` blocks.
macro_rules! holds_of_the_correct_inventory {
    () => {
        fn reserve<'a>(
            &'a self,
            sale: &'a flashsale_server::sales::Sale,
            req: &'a flashsale_server::ledger::holds::HoldRequest,
        ) -> futures::future::BoxFuture<
            'a,
            Result<
                flashsale_server::ledger::holds::Hold,
                flashsale_server::ledger::holds::HoldError,
            >,
        > {
            flashsale_server::ClaimStrategy::reserve(&self.correct, sale, req)
        }

        fn checkout<'a>(
            &'a self,
            sale_id: uuid::Uuid,
            hold_id: uuid::Uuid,
            buyer_id: &'a str,
            quantity: Option<i32>,
            idempotency_key: &'a str,
        ) -> futures::future::BoxFuture<
            'a,
            Result<
                flashsale_server::ledger::holds::CheckedOut,
                flashsale_server::ledger::holds::HoldError,
            >,
        > {
            flashsale_server::ClaimStrategy::checkout(
                &self.correct,
                sale_id,
                hold_id,
                buyer_id,
                quantity,
                idempotency_key,
            )
        }

        fn release<'a>(
            &'a self,
            sale_id: uuid::Uuid,
            hold_id: uuid::Uuid,
            buyer_id: &'a str,
        ) -> futures::future::BoxFuture<
            'a,
            Result<
                flashsale_server::ledger::holds::Hold,
                flashsale_server::ledger::holds::HoldError,
            >,
        > {
            flashsale_server::ClaimStrategy::release(&self.correct, sale_id, hold_id, buyer_id)
        }
    };
}

pub mod ack_without_order;
pub mod alerts_recorded_at_end;
pub mod broken_naive;
pub mod broken_seed;
pub mod checkout_after_expiry;
pub mod claim_count;
pub mod expiry_returns_twice;
pub mod holds_not_counted;
pub mod order_answered_sold_out;
pub mod oversell_at_boundary;
pub mod racy_buyer_limit;
pub mod racy_idempotency;
pub mod seed_model;
pub mod serial_holds;
pub mod serial_model;
pub mod unit_without_order;
pub mod wrapped;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use flashsale_server::sales::LedgerKind;
use flashsale_server::{ClaimStrategy, Server, Settings, StartError, StrategyParts};

/// Every strategy the harness can run the in-process reference server with: the server's own
/// correct ones and the mutants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryStrategy {
    /// Redis + Lua on the hot path, PostgreSQL fallback (the server's default).
    Redis,
    /// The PostgreSQL path only.
    Postgres,
    /// Read the count, compare, write (HAZ-1): oversells under concurrency.
    BrokenNaive,
    /// The seed document taken literally: a missing key reads as 0, and the fallback decides from
    /// the lagging `quantity_sold`. Oversells under Redis faults.
    BrokenSeed,
    /// A multi-unit order meeting exactly quantity − 1 remaining units is granted (INV-1).
    OversellAtBoundary,
    /// Every 500th claim is answered 201 with an order that is never stored (INV-2).
    AckWithoutOrder,
    /// Every 500th claim stores its order but is answered sold out (INV-3).
    OrderAnsweredSoldOut,
    /// Two requests with one key at the same time both make an order (INV-4).
    RacyIdempotency,
    /// One buyer's orders sent together all pass the per-buyer limit (INV-9).
    RacyBuyerLimit,
    /// A hold that expired is still checked out (INV-7).
    CheckoutAfterExpiry,
    /// An expired hold's units are given back twice (INV-7).
    ExpiryReturnsTwice,
    /// Live holds are not counted in what is available (INV-7).
    HoldsNotCounted,
    /// Every 500th claim consumes its units without an order and answers 503 (INV-5).
    UnitWithoutOrder,
    /// Correct claims; wishlist alerts recorded only when the fan-out has nothing left to send,
    /// so a restart mid-fan-out sends them again (INV-8).
    AlertsRecordedAtEnd,
}

impl InventoryStrategy {
    pub fn name(self) -> &'static str {
        match self {
            InventoryStrategy::Redis => "redis",
            InventoryStrategy::Postgres => "postgres",
            InventoryStrategy::BrokenNaive => broken_naive::NAME,
            InventoryStrategy::BrokenSeed => broken_seed::NAME,
            InventoryStrategy::OversellAtBoundary => oversell_at_boundary::NAME,
            InventoryStrategy::AckWithoutOrder => ack_without_order::NAME,
            InventoryStrategy::OrderAnsweredSoldOut => order_answered_sold_out::NAME,
            InventoryStrategy::RacyIdempotency => racy_idempotency::NAME,
            InventoryStrategy::RacyBuyerLimit => racy_buyer_limit::NAME,
            InventoryStrategy::CheckoutAfterExpiry => checkout_after_expiry::NAME,
            InventoryStrategy::ExpiryReturnsTwice => expiry_returns_twice::NAME,
            InventoryStrategy::HoldsNotCounted => holds_not_counted::NAME,
            InventoryStrategy::UnitWithoutOrder => unit_without_order::NAME,
            InventoryStrategy::AlertsRecordedAtEnd => alerts_recorded_at_end::NAME,
        }
    }

    /// Every strategy the harness can select, by name.
    pub fn all() -> Vec<InventoryStrategy> {
        vec![
            InventoryStrategy::Redis,
            InventoryStrategy::Postgres,
            InventoryStrategy::BrokenNaive,
            InventoryStrategy::BrokenSeed,
            InventoryStrategy::OversellAtBoundary,
            InventoryStrategy::AckWithoutOrder,
            InventoryStrategy::OrderAnsweredSoldOut,
            InventoryStrategy::RacyIdempotency,
            InventoryStrategy::RacyBuyerLimit,
            InventoryStrategy::UnitWithoutOrder,
            InventoryStrategy::CheckoutAfterExpiry,
            InventoryStrategy::ExpiryReturnsTwice,
            InventoryStrategy::HoldsNotCounted,
            InventoryStrategy::AlertsRecordedAtEnd,
        ]
    }

    pub fn is_broken(self) -> bool {
        self.correct().is_none()
    }

    /// The server's own strategy of this name; `None` for a mutant.
    pub fn correct(self) -> Option<flashsale_server::InventoryStrategy> {
        match self {
            InventoryStrategy::Redis => Some(flashsale_server::InventoryStrategy::Redis),
            InventoryStrategy::Postgres => Some(flashsale_server::InventoryStrategy::Postgres),
            _ => None,
        }
    }

    /// The ledger kind of the sales this strategy creates: the mutants that decide claims
    /// themselves write orders without slots, since the slot ledger would refuse what their flaw
    /// makes; the wrappers of the correct inventory keep its slots.
    pub fn ledger(self) -> LedgerKind {
        match self {
            InventoryStrategy::Redis
            | InventoryStrategy::Postgres
            | InventoryStrategy::AckWithoutOrder
            | InventoryStrategy::OrderAnsweredSoldOut
            | InventoryStrategy::AlertsRecordedAtEnd => LedgerKind::Slots,
            InventoryStrategy::BrokenNaive | InventoryStrategy::BrokenSeed => seed_model::LEDGER,
            InventoryStrategy::OversellAtBoundary
            | InventoryStrategy::RacyIdempotency
            | InventoryStrategy::RacyBuyerLimit
            | InventoryStrategy::UnitWithoutOrder
            | InventoryStrategy::CheckoutAfterExpiry
            | InventoryStrategy::ExpiryReturnsTwice
            | InventoryStrategy::HoldsNotCounted => serial_model::LEDGER,
        }
    }

    /// The claim strategy itself, from the server's connected dependencies.
    fn make(self, parts: StrategyParts) -> Arc<dyn ClaimStrategy> {
        match self {
            InventoryStrategy::Redis
            | InventoryStrategy::Postgres
            | InventoryStrategy::AlertsRecordedAtEnd => Arc::new(parts.correct),
            InventoryStrategy::BrokenNaive => Arc::new(broken_naive::strategy(parts)),
            InventoryStrategy::BrokenSeed => Arc::new(broken_seed::strategy(parts)),
            InventoryStrategy::OversellAtBoundary => serial(oversell_at_boundary::strategy(parts)),
            InventoryStrategy::AckWithoutOrder => Arc::new(ack_without_order::strategy(parts)),
            InventoryStrategy::OrderAnsweredSoldOut => {
                Arc::new(order_answered_sold_out::strategy(parts))
            }
            InventoryStrategy::RacyIdempotency => serial(racy_idempotency::strategy(parts)),
            InventoryStrategy::RacyBuyerLimit => serial(racy_buyer_limit::strategy(parts)),
            InventoryStrategy::CheckoutAfterExpiry => {
                serial(checkout_after_expiry::strategy(parts))
            }
            InventoryStrategy::ExpiryReturnsTwice => serial(expiry_returns_twice::strategy(parts)),
            InventoryStrategy::HoldsNotCounted => serial(holds_not_counted::strategy(parts)),
            InventoryStrategy::UnitWithoutOrder => serial(unit_without_order::strategy(parts)),
        }
    }
}

/// A serialized mutant, served so that a dropped request never leaves its book half updated
/// (see [`serial_model::Detached`]).
fn serial(model: serial_model::SerialModel) -> Arc<dyn ClaimStrategy> {
    Arc::new(serial_model::Detached::new(model))
}

impl fmt::Display for InventoryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InventoryStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        flashsale_server::inventory::strategy_named(s, &InventoryStrategy::all(), |k| k.name())
    }
}

/// Builds the reference server (see [`flashsale_server::build`]) running `strategy`, whatever
/// `settings.inventory` says. Mutants run over Redis (the faults they are caught by are Redis
/// faults) and announce themselves with a warning.
pub async fn build(
    mut settings: Settings,
    strategy: InventoryStrategy,
) -> Result<Server, StartError> {
    settings.inventory = strategy
        .correct()
        .unwrap_or(flashsale_server::InventoryStrategy::Redis);
    if strategy.is_broken() {
        tracing::warn!(
            strategy = strategy.name(),
            "DELIBERATELY BROKEN inventory strategy: this server breaks an invariant; for harness tests only"
        );
    }
    let server = flashsale_server::build_with(settings, move |parts| strategy.make(parts)).await?;
    Ok(match strategy {
        InventoryStrategy::AlertsRecordedAtEnd => server
            .with_delivery_journal(|pool| Arc::new(alerts_recorded_at_end::RecordAtEnd::new(pool))),
        _ => server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_round_trip_by_name_and_unknown_names_are_explained() {
        for strategy in InventoryStrategy::all() {
            assert_eq!(strategy.name().parse::<InventoryStrategy>(), Ok(strategy));
        }
        let err = "fast".parse::<InventoryStrategy>().unwrap_err();
        assert!(err.contains("redis") && err.contains("postgres"), "{err}");
    }

    #[test]
    fn only_broken_strategies_create_unguarded_sales() {
        assert_eq!(InventoryStrategy::Redis.ledger(), LedgerKind::Slots);
        assert_eq!(InventoryStrategy::Postgres.ledger(), LedgerKind::Slots);
        for strategy in InventoryStrategy::all() {
            if strategy.ledger() == LedgerKind::Unguarded {
                assert!(strategy.is_broken(), "{strategy}");
            }
        }
    }

    #[test]
    fn every_mutant_is_listed_with_a_distinct_name() {
        let all = InventoryStrategy::all();
        let mut names: Vec<&str> = all.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(all.iter().filter(|s| s.is_broken()).count(), 12);
    }
}
