//! `example-shop`: the example flash-sale service as a process.

use std::process::ExitCode;

use clap::Parser;
use flashsale_example_shop::{Cli, StartError};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Clap answers bad flags itself, with exit status 2.
    let config = match Cli::parse().into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("example-shop: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match flashsale_example_shop::bind(config.listen) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "example-shop: cannot listen on {}: {err}. Pick another address with --listen / \
                 SHOP_LISTEN",
                config.listen
            );
            return ExitCode::from(2);
        }
    };
    match flashsale_example_shop::serve(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("example-shop: {err:#}");
            if err.is::<StartError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Ctrl-C, or SIGTERM from whatever started the shop (a test harness, a service manager): both
/// stop it gracefully, purchases in flight finishing first.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
