//! `flashsale`: the harness's command line. Parses, sets up logging, calls the library.

use std::process::ExitCode;

use clap::Parser;
use flashsale_harness::cli::{self, Opts};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let opts = Opts::parse();
    let status = cli::dispatch(opts.command).await;
    ExitCode::from(status as u8)
}
