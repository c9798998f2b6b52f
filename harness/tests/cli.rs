//! The real `flashsale` binary: exit statuses and the messages that name a problem and its fix.

use std::process::Command;

fn flashsale() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flashsale"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd
}

fn scenario(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn a_bad_scenario_exits_2_naming_the_problem() {
    let file = scenario("[sale]\ncap = 10\ncolour = \"red\"\n");
    let output = flashsale().arg("run").arg(file.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("colour"), "{stderr}");

    let output = flashsale()
        .args(["run", "no/such/file.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no/such/file.toml"));
}

#[test]
fn an_unreachable_database_exits_2_saying_which_and_how_to_fix_it() {
    let output = flashsale()
        .args(["run", "scenarios/last-ten-units.toml"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_redis_exits_2_saying_which_and_how_to_fix_it() {
    let output = flashsale()
        .args(["run", "scenarios/last-ten-units.toml"])
        .env("REDIS_URL", "redis://127.0.0.1:1/")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Redis") && stderr.contains("REDIS_URL"),
        "{stderr}"
    );
}

#[test]
fn target_and_inventory_together_exit_2() {
    let output = flashsale()
        .args([
            "run",
            "scenarios/last-ten-units.toml",
            "--target",
            "http://127.0.0.1:9",
            "--inventory",
            "redis",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--inventory"));
}

#[test]
fn the_broken_naive_strategy_exits_1_naming_inv_1() {
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .args([
            "run",
            "scenarios/last-ten-units.toml",
            "--inventory",
            "broken-naive",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("INV-1") && stdout.contains("VIOLATED"),
        "{stdout}"
    );
    assert!(out.path().join("summary.json").exists());
}

#[test]
fn a_fault_scenario_without_docker_exits_2_and_says_how_to_get_it() {
    let output = flashsale()
        .args(["run", "scenarios/redis-restarts-empty.toml"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("docker-setup.sh"), "{stderr}");
}

#[test]
fn a_fault_scenario_against_a_target_url_exits_2() {
    let output = flashsale()
        .args([
            "run",
            "scenarios/redis-restarts-empty.toml",
            "--target",
            "http://127.0.0.1:9",
            "--admin-token",
            "t",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in-process"), "{stderr}");
}
