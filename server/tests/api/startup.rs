//! Start-up refusals of the binary: settings it cannot run with are exit status 2 with a message
//! naming the problem and the fix, before any connection is made; the development token is
//! warned about whenever it is used.

use std::process::{Command, Output};

fn server(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flashsale-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("FLASHSALE_") || name == "DATABASE_URL" || name == "REDIS_URL" {
            command.env_remove(name);
        }
    }
    // Nothing listens on port 1: a start that got past the checks fails fast, touching nothing.
    command
        .env("RUST_LOG", "info")
        .args(["--database-url", "postgres://postgres@127.0.0.1:1/none"])
        .args(["--redis-url", "redis://127.0.0.1:1/"])
        .args(args)
        .output()
        .expect("the binary runs")
}

fn refused(args: &[&str]) -> String {
    let output = server(args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn an_empty_admin_token_is_refused_with_exit_2() {
    let stderr = refused(&["--admin-token", "", "--listen", "127.0.0.1:0"]);
    assert!(stderr.contains("admin token is empty"), "{stderr}");
    assert!(stderr.contains("--admin-token"), "{stderr}");
}

#[test]
fn the_development_token_is_refused_off_loopback_with_exit_2() {
    let stderr = refused(&["--listen", "0.0.0.0:0"]);
    assert!(stderr.contains("development admin token"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    assert!(stderr.contains("FLASHSALE_ADMIN_TOKEN"), "{stderr}");
}

#[test]
fn the_development_token_on_loopback_starts_with_a_warning() {
    let output = server(&["--listen", "127.0.0.1:0"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // It got past the checks (and then failed on the unreachable database, as arranged).
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("WARN") && all.contains("development token"),
        "{all}"
    );
}

#[test]
fn settings_that_would_overflow_are_refused_with_exit_2() {
    let token = ["--admin-token", "s3cret", "--listen", "127.0.0.1:0"];
    let cases: [(&[&str], &str); 5] = [
        (
            &["--max-quantity-per-order", "4294967295"],
            "--max-quantity-per-order",
        ),
        (
            &["--max-quantity-per-order", "0"],
            "--max-quantity-per-order",
        ),
        (&["--db-pool-size", "0"], "--db-pool-size"),
        (&["--units-sync-interval", "0s"], "--units-sync-interval"),
        (
            &["--header-read-timeout", "1000000y"],
            "--header-read-timeout",
        ),
    ];
    for (args, named) in cases {
        let stderr = refused(&[&token[..], args].concat());
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
