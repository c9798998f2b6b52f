//! `flashsale`: the harness's command line. Parses, sets up logging, calls the library.

use std::process::ExitCode;

use clap::Parser;
use flashsale_harness::cli::{Command, Opts};

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
    let status = match opts.command {
        Command::Run(args) => flashsale_harness::cli_run(args).await,
        Command::Explore(args) => flashsale_harness::cli_explore(args).await,
        Command::Compare(args) => flashsale_harness::cli_compare(args),
        Command::Blast(args) => flashsale_harness::cli_blast(args).await,
    };
    ExitCode::from(status as u8)
}
