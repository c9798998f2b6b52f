//! `flashsale compare`: two runs' figures side by side, and the regression limit.

use super::CompareArgs;
use super::exit;
use crate::compare;

/// `flashsale compare`: prints the table, returns the exit status.
pub fn compare(args: CompareArgs) -> i32 {
    let read = |path: &std::path::Path| {
        compare::read_summary(path).map_err(|err| eprintln!("error: {err}"))
    };
    let (Ok(baseline), Ok(run)) = (read(&args.baseline), read(&args.run)) else {
        return exit::SETUP;
    };
    let comparison = compare::compare(&baseline, &run);
    print!("{}", comparison.table());
    let Some(limit) = args.max_regression_pct else {
        return exit::HELD;
    };
    let regressions = comparison.regressions(limit);
    if regressions.is_empty() {
        println!("no figure regressed by more than {limit}%");
        return exit::HELD;
    }
    for row in regressions {
        println!(
            "REGRESSION: {} worse by {:.1}% (limit {limit}%)",
            row.metric,
            row.regression_pct().unwrap_or_default()
        );
    }
    exit::THRESHOLD_FAILED
}
