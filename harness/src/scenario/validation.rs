//! Every semantic rule of a scenario, checked after parsing so that all the problems of a file
//! are reported together, in file order.

use std::collections::HashSet;

use std::time::Duration;

use super::{Arrival, FaultKind, QuantitySpec, RedisMode, Scenario};

/// Every semantic problem of a parsed scenario, in file order.
pub(super) fn problems(s: &Scenario, name_was_given: bool) -> Vec<String> {
    let mut out = Vec::new();

    if let Some(problem) = name_problem(&s.name) {
        if name_was_given {
            out.push(format!("name {problem}"));
        } else {
            out.push(format!(
                "name {problem}; it defaults to the file name, so set `name = \"...\"` in the file or rename the file"
            ));
        }
    }

    if s.sale.window.is_zero() {
        out.push("sale.window must be longer than zero (e.g. \"10m\")".to_owned());
    }
    if s.sale.per_buyer_limit == Some(0) {
        out.push(
            "sale.per_buyer_limit must be at least 1 (got 0); remove it to keep the server's default"
                .to_owned(),
        );
    }
    if s.sale.products.is_empty() {
        out.push(
            "sale.products must list at least one product (add a [[sale.products]] table with id and price_cents)"
                .to_owned(),
        );
    }
    let mut seen = HashSet::new();
    for (i, product) in s.sale.products.iter().enumerate() {
        if product.id.trim().is_empty() {
            out.push(format!("sale.products[{i}].id must not be empty"));
        } else if !seen.insert(product.id.as_str()) {
            out.push(format!(
                "sale.products[{i}].id \"{}\" is listed more than once; product ids must be unique",
                product.id
            ));
        }
        if product.price_cents < 0 {
            out.push(format!(
                "sale.products[{i}].price_cents must be >= 0 (got {})",
                product.price_cents
            ));
        }
    }

    match &s.buyers.quantity {
        QuantitySpec::Fixed(0) => {
            out.push("buyers.quantity must be at least 1 (got 0)".to_owned());
        }
        QuantitySpec::Fixed(_) => {}
        QuantitySpec::Sequence { sequence } => {
            if sequence.is_empty() {
                out.push(
                    "buyers.quantity.sequence must list at least one quantity (e.g. [1, 1, 3])"
                        .to_owned(),
                );
            }
            if sequence.contains(&0) {
                out.push("buyers.quantity.sequence: every quantity must be at least 1".to_owned());
            }
        }
        &QuantitySpec::Range { min, max } => {
            if min == 0 {
                out.push("buyers.quantity.min must be at least 1 (got 0)".to_owned());
            }
            if min > max {
                out.push(format!(
                    "buyers.quantity.min ({min}) is greater than max ({max}); swap them"
                ));
            }
        }
    }
    if !(0.0..=1.0).contains(&s.buyers.reused_keys) {
        out.push(format!(
            "buyers.reused_keys is a fraction of buyers, between 0 and 1 (got {})",
            s.buyers.reused_keys
        ));
    }
    if s.buyers.connections == 0 {
        out.push("buyers.connections must be at least 1 (got 0)".to_owned());
    }
    if s.buyers.copies == 0 {
        out.push("buyers.copies must be at least 1 (got 0); 1 sends each request once".to_owned());
    }
    if let Some(distinct) = s.buyers.distinct {
        if distinct == 0 || distinct > s.buyers.count {
            out.push(format!(
                "buyers.distinct must be between 1 and buyers.count ({}) (got {distinct}); remove \
                 it to give every request a buyer of its own",
                s.buyers.count
            ));
        }
    }
    if let Some(opens_after) = s.sale.opens_after {
        if s.redis.mode == RedisMode::Container || !s.faults.is_empty() {
            out.push(
                "sale.opens_after cannot be combined with faults: fault times count from doors \
                 open, when the sale is not yet open"
                    .to_owned(),
            );
        }
        if opens_after > std::time::Duration::from_secs(3600) {
            out.push(format!(
                "sale.opens_after is at most 1h (got {})",
                humantime::format_duration(opens_after)
            ));
        }
    }

    if s.requests.timeout.is_zero() {
        out.push("requests.timeout must be longer than zero (e.g. \"5s\")".to_owned());
    }

    for (i, fault) in s.faults.iter().enumerate() {
        let kind = fault.kind.as_str();
        let at = format!("faults[{i}] ({kind})");
        match (fault.at, fault.when_remaining_below) {
            (None, None) => out.push(format!(
                "{at} needs a trigger: `at = \"2s\"` (after doors open) or `when_remaining_below = 5`"
            )),
            (Some(_), Some(_)) => out.push(format!(
                "{at} has both `at` and `when_remaining_below`; keep one"
            )),
            _ => {}
        }
        if fault.kind.needs_container() && s.redis.mode != RedisMode::Container {
            out.push(format!(
                "{at} acts on a Redis container: add [redis] mode = \"container\""
            ));
        }
        if fault.kind.needs_redis_proxy() && !s.redis.proxy {
            out.push(format!(
                "{at} acts on the server's link to Redis: add [redis] proxy = true"
            ));
        }
        if fault.kind == FaultKind::PgDown && !s.postgres.proxy {
            out.push(format!(
                "{at} acts on the server's link to PostgreSQL: add [postgres] proxy = true"
            ));
        }
        if fault.kind == FaultKind::PgDown && fault.duration.is_none() {
            out.push(format!(
                "{at} needs a duration: without PostgreSQL nothing can be sold or checked"
            ));
        }
        if fault.kind.is_instant() && fault.duration.is_some() {
            out.push(format!("{at} happens at an instant; remove `duration`"));
        }
        if (fault.kind == FaultKind::Latency) != fault.latency.is_some() {
            out.push(format!(
                "{at}: `latency` is required for kind = \"latency\" and only allowed there"
            ));
        }
        if (fault.kind == FaultKind::Rollback) != fault.rollback_by.is_some() {
            out.push(format!(
                "{at}: `rollback_by` is required for kind = \"rollback\" and only allowed there"
            ));
        }
    }
    if s.postgres.proxy && s.faults.iter().all(|f| f.kind != FaultKind::PgDown) {
        out.push("[postgres] proxy = true is only useful with a pg-down fault".to_owned());
    }
    for (key, value, limit) in durations(s) {
        if value > limit {
            out.push(format!(
                "{key} = \"{}\" is longer than the {} a run allows; a flash-sale run lasts \
                 seconds to hours",
                humantime::format_duration(value),
                humantime::format_duration(limit)
            ));
        }
    }
    let attempts = u64::from(s.buyers.count)
        * u64::from(s.buyers.copies.max(1))
        * (u64::from(s.requests.retries) + 1);
    if attempts > MAX_ATTEMPTS_PER_RUN {
        out.push(format!(
            "buyers.count × buyers.copies × (requests.retries + 1) = {attempts} attempts at most, \
             about {:.1} GiB of memory at ~{BYTES_PER_ATTEMPT} bytes each (history, checker index, \
             one task per buyer); a run holds at most {MAX_ATTEMPTS_PER_RUN} (4 GiB): split the \
             load over several runs",
            (attempts * BYTES_PER_ATTEMPT) as f64 / f64::from(1u32 << 30)
        ));
    }

    if let Some(journeys) = &s.journeys {
        super::journeys::problems(
            journeys,
            matches!(s.arrival, Arrival::Closed { .. }),
            &mut out,
        );
    }
    out
}

/// What one attempt costs a run in memory, an estimate from `checker-million` (236 MB for a
/// million attempts in the checker) plus the buyer's task and its request while it waits.
const BYTES_PER_ATTEMPT: u64 = 1024;
/// The memory budget of one run (4 GiB) in attempts: a scenario that could make more is refused
/// before it starts, instead of growing until the machine swaps.
pub(crate) const MAX_ATTEMPTS_PER_RUN: u64 = 4 * 1024 * 1024 * 1024 / BYTES_PER_ATTEMPT;

/// Every duration of a scenario with the longest a run accepts: a sale window up to a year (a
/// time past year 9999 cannot be written in RFC 3339), everything else up to a day. Longer
/// values are typos ("10000y") that would overflow the clock arithmetic.
fn durations(s: &Scenario) -> Vec<(String, Duration, Duration)> {
    const DAY: Duration = Duration::from_secs(24 * 3600);
    const YEAR: Duration = Duration::from_secs(31_557_600); // 365.25 days
    let mut all = vec![
        ("sale.window".to_owned(), s.sale.window, YEAR),
        ("arrival.open_after".to_owned(), s.arrival.open_after(), DAY),
        ("requests.timeout".to_owned(), s.requests.timeout, DAY),
        (
            "requests.retry_backoff".to_owned(),
            s.requests.retry_backoff,
            DAY,
        ),
        (
            "checks.convergence_within".to_owned(),
            s.checks.convergence_within,
            DAY,
        ),
    ];
    if let Some(after) = s.sale.opens_after {
        all.push(("sale.opens_after".to_owned(), after, DAY));
    }
    if let Some(timeout) = s.redis.timeout {
        all.push(("redis.timeout".to_owned(), timeout, DAY));
    }
    match s.arrival {
        Arrival::Ramp { over, .. } => all.push(("arrival.over".to_owned(), over, DAY)),
        Arrival::Closed { think_time, .. } => {
            all.push(("arrival.think_time".to_owned(), think_time, DAY));
        }
        _ => {}
    }
    for (i, fault) in s.faults.iter().enumerate() {
        for (name, value) in [
            ("at", fault.at),
            ("duration", fault.duration),
            ("latency", fault.latency),
        ] {
            if let Some(value) = value {
                all.push((format!("faults[{i}].{name}"), value, DAY));
            }
        }
    }
    all
}

/// Why `name` cannot be used as a directory name, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if name == "." || name == ".." {
        return Some(format!("\"{name}\" is not usable as a directory name"));
    }
    let bad: String = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .collect();
    if bad.is_empty() {
        None
    } else {
        Some(format!(
            "\"{name}\" may only use letters, digits, '.', '_' and '-' because it becomes a directory name (found {bad:?})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::Scenario;
    use crate::scenario::fixtures::*;

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let text = r#"
name = "bad name!"
[sale]
cap = 10
window = "0s"
per_buyer_limit = 0
products = []
[buyers]
count = 0
quantity = { min = 3, max = 1 }
connections = 0
[requests]
timeout = "0s"
"#;
        let problems = problems_of(text);
        let expected = [
            "name \"bad name!\" may only use",
            "sale.window must be longer than zero",
            "sale.per_buyer_limit must be at least 1 (got 0)",
            "sale.products must list at least one product",
            "buyers.quantity.min (3) is greater than max (1)",
            "buyers.connections must be at least 1 (got 0)",
            "requests.timeout must be longer than zero",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, want) in problems.iter().zip(expected) {
            assert!(
                problem.starts_with(want),
                "{problem:?} should start with {want:?}"
            );
        }
    }

    #[test]
    fn duplicate_product_ids_and_negative_prices_are_reported() {
        let text = MINIMAL.to_owned() + "[[sale.products]]\nid = \"mug\"\nprice_cents = -5\n";
        let problems = problems_of(&text);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains("\"mug\" is listed more than once"));
        assert!(problems[1].contains("sale.products[1].price_cents must be >= 0 (got -5)"));
    }

    #[test]
    fn durations_that_would_overflow_the_clock_are_refused_naming_the_key() {
        let problems = problems_of(&minimal_with(
            "cap = \"unlimited\"",
            "cap = 5\nwindow = \"10000y\"",
        ));
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("sale.window = "), "{problems:#?}");
        let problems = problems_of(&minimal_with(
            "quantity = 2",
            "quantity = 2\n[requests]\ntimeout = \"400d\"",
        ));
        assert!(problems[0].starts_with("requests.timeout"), "{problems:#?}");
    }

    #[test]
    fn a_scenario_past_the_memory_budget_is_refused_with_the_figure() {
        let problems = problems_of(&minimal_with("count = 5", "count = 100000000"));
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("100000000 attempts") && problems[0].contains("GiB"),
            "{problems:#?}"
        );
        assert!(
            Scenario::from_toml_str(&minimal_with("count = 5", "count = 1000000"), "t").is_ok()
        );
    }

    #[test]
    fn zero_quantities_are_reported() {
        let fixed = problems_of(&minimal_with("quantity = 2", "quantity = 0"));
        assert_eq!(fixed, ["buyers.quantity must be at least 1 (got 0)"]);
        let range = problems_of(&minimal_with(
            "quantity = 2",
            "quantity = { min = 0, max = 2 }",
        ));
        assert_eq!(range, ["buyers.quantity.min must be at least 1 (got 0)"]);
    }

    #[test]
    fn distinct_buyers_must_be_between_one_and_the_count() {
        for bad in [0, 6] {
            let problems = problems_of(&minimal_with(
                "count = 5",
                &format!("count = 5\ndistinct = {bad}"),
            ));
            assert_eq!(
                problems,
                [format!(
                    "buyers.distinct must be between 1 and buyers.count (5) (got {bad}); remove \
                     it to give every request a buyer of its own"
                )]
            );
        }
        for good in [1, 5] {
            let text = minimal_with("count = 5", &format!("count = 5\ndistinct = {good}"));
            assert_eq!(
                Scenario::from_toml_str(&text, "t").unwrap().buyers.distinct,
                Some(good)
            );
        }
    }

    #[test]
    fn names_that_are_not_directory_names_are_rejected() {
        for bad in ["", "..", "a/b", "sale 1", "ünïcode"] {
            let text = format!("name = {bad:?}\n{MINIMAL}");
            let problems = problems_of(&text);
            assert_eq!(problems.len(), 1, "{bad:?}: {problems:#?}");
            assert!(problems[0].starts_with("name "), "{problems:?}");
        }
        let ok = format!("name = \"v1.2_last-ten\"\n{MINIMAL}");
        assert_eq!(
            Scenario::from_toml_str(&ok, "x").unwrap().name,
            "v1.2_last-ten"
        );

        let from_stem = Scenario::from_toml_str(MINIMAL, "my scenario").unwrap_err();
        assert!(
            from_stem.to_string().contains("rename the file"),
            "{from_stem}"
        );
    }
}
