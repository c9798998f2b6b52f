//! Deliberately broken claim strategies ("mutants") the harness must catch, kept out of the
//! server crate so that no build of `flashsale-server` contains them.
//!
//! Each mutant implements the server's seam, [`flashsale_server::ClaimStrategy`], and is plugged
//! in through [`flashsale_server::build_with`]; most wrap the correct
//! [`flashsale_server::Inventory`] (handed over in [`StrategyParts::correct`]) and perturb one
//! answer. To add one: a module implementing `ClaimStrategy`, a variant of [`InventoryStrategy`]
//! with its name, and a line in `InventoryStrategy::make`; the server does not change.
//!
//! - [`broken_naive`]: read the count, compare, write (HAZ-1).
//! - [`broken_seed`]: the seed document taken literally (HAZ-2, HAZ-4).
//! - [`seed_model`]: what the two share: orders without slots, one query per key lookup.

pub mod broken_naive;
pub mod broken_seed;
pub mod seed_model;

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
}

impl InventoryStrategy {
    pub fn name(self) -> &'static str {
        match self {
            InventoryStrategy::Redis => "redis",
            InventoryStrategy::Postgres => "postgres",
            InventoryStrategy::BrokenNaive => broken_naive::NAME,
            InventoryStrategy::BrokenSeed => broken_seed::NAME,
        }
    }

    /// Every strategy the harness can select, by name.
    pub fn all() -> Vec<InventoryStrategy> {
        vec![
            InventoryStrategy::Redis,
            InventoryStrategy::Postgres,
            InventoryStrategy::BrokenNaive,
            InventoryStrategy::BrokenSeed,
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
            InventoryStrategy::BrokenNaive | InventoryStrategy::BrokenSeed => None,
        }
    }

    /// The ledger kind of the sales this strategy creates: the seed-model mutants write orders
    /// without slots, since the slot ledger would stop them from overselling.
    pub fn ledger(self) -> LedgerKind {
        match self {
            InventoryStrategy::Redis | InventoryStrategy::Postgres => LedgerKind::Slots,
            InventoryStrategy::BrokenNaive | InventoryStrategy::BrokenSeed => seed_model::LEDGER,
        }
    }

    /// The claim strategy itself, from the server's connected dependencies.
    fn make(self, parts: StrategyParts) -> Arc<dyn ClaimStrategy> {
        match self {
            InventoryStrategy::Redis | InventoryStrategy::Postgres => Arc::new(parts.correct),
            InventoryStrategy::BrokenNaive => Arc::new(broken_naive::strategy(parts)),
            InventoryStrategy::BrokenSeed => Arc::new(broken_seed::strategy(parts)),
        }
    }
}

impl fmt::Display for InventoryStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for InventoryStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = InventoryStrategy::all();
        all.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|k| k.name()).collect();
            format!(
                "unknown inventory strategy {s:?}; this build knows: {}",
                names.join(", ")
            )
        })
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
            "DELIBERATELY BROKEN inventory strategy: this server oversells; for harness tests only"
        );
    }
    flashsale_server::build_with(settings, move |parts| strategy.make(parts)).await
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
            assert_eq!(
                strategy.is_broken(),
                strategy.ledger() == LedgerKind::Unguarded
            );
        }
    }
}
