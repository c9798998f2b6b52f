//! `flashsale blast`: the raw request rate against one URL.

use super::BlastArgs;
use super::exit;
use crate::load::blast;

/// `flashsale blast`: validates the arguments, blasts, prints (and writes) the summary.
pub async fn blast(args: BlastArgs) -> i32 {
    let mut options = match blast::BlastOptions::new(
        &args.url,
        &args.method,
        &args.headers,
        args.connections,
        args.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
        args.duration,
        args.timeout,
    )
    .await
    {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    options.busy_poll = args.busy_poll;
    let run = match blast::blast(&options).await {
        Ok(run) => run,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::SETUP;
        }
    };
    let summary = blast::BlastSummary::of(&options, &run);
    if let Some(dir) = &args.out
        && let Err(err) = blast::write(dir, &summary, &run)
    {
        eprintln!("error: cannot write into {}: {err}", dir.display());
        return exit::SETUP;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).expect("a summary serializes")
        );
    } else {
        print!("{}", summary.text());
    }
    exit::HELD
}
