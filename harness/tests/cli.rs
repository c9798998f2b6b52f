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

#[test]
fn a_threshold_that_cannot_be_met_exits_3_naming_it_and_the_measured_value() {
    let file = scenario(
        "seed = 1\n[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
         [buyers]\ncount = 50\nquantity = 1\n[thresholds]\n\"ok.p99\" = \"< 1us\"\n\
         \"unknown.rate\" = \"< 0.5\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .arg("run")
        .arg(file.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("all invariants held"), "{stdout}");
    assert!(
        stdout.contains("threshold ok.p99 < 1us FAILED: measured "),
        "{stdout}"
    );
    assert!(
        stdout.contains("threshold unknown.rate < 0.5 passed"),
        "{stdout}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["all_thresholds_passed"], false);
    assert!(summary["thresholds"][0]["measured"].as_f64().unwrap() > 0.001);
}

#[test]
fn an_unknown_threshold_metric_exits_2_naming_it() {
    let file = scenario(
        "[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
         [buyers]\ncount = 5\nquantity = 1\n[thresholds]\n\"ok.p95\" = \"< 1s\"\n",
    );
    let output = flashsale().arg("run").arg(file.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"ok.p95\""), "{stderr}");
}

/// Two copies of a real run's summary, the second with its ok p99 doubled.
fn two_runs() -> (tempfile::TempDir, tempfile::TempDir) {
    let fixture = include_str!("data/summary.json");
    let (baseline, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(baseline.path().join("summary.json"), fixture).unwrap();
    let mut slower: serde_json::Value = serde_json::from_str(fixture).unwrap();
    let p99 = slower["latency"]["from_intended"]["ok"]["p99_us"]
        .as_u64()
        .unwrap();
    slower["latency"]["from_intended"]["ok"]["p99_us"] = (p99 * 2).into();
    std::fs::write(
        run.path().join("summary.json"),
        serde_json::to_string(&slower).unwrap(),
    )
    .unwrap();
    (baseline, run)
}

#[test]
fn compare_prints_the_table_and_exits_3_on_a_regression_beyond_the_limit() {
    let (baseline, run) = two_runs();
    let output = flashsale()
        .arg("compare")
        .arg(baseline.path())
        .arg(run.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("metric "), "{stdout}");
    let p99 = stdout
        .lines()
        .find(|l| l.starts_with("ok p99 "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(p99.ends_with("+100.0%"), "{p99}");
    assert!(stdout.contains("throughput all"), "{stdout}");

    let limited = flashsale()
        .arg("compare")
        .arg(baseline.path())
        .arg(run.path())
        .args(["--max-regression-pct", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&limited.stdout);
    assert_eq!(limited.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("REGRESSION: ok p99 worse by 100.0% (limit 10%)"),
        "{stdout}"
    );

    let missing = flashsale()
        .arg("compare")
        .arg(baseline.path())
        .arg(baseline.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));
}

#[test]
fn steady_shoppers_writes_the_report_interval_logs_and_a_schema_valid_summary() {
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .args(["run", "scenarios/steady-shoppers.toml", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    for id in flashsale_harness::report::CHART_IDS {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("class=\"fault\""), "the pause is shaded");
    for class in ["all", "ok"] {
        let log =
            std::fs::read_to_string(out.path().join(format!("latency-{class}.hlog"))).unwrap();
        assert!(
            log.lines().filter(|l| l.starts_with("Tag=")).count() >= 5,
            "{log}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../summary.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&summary)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(summary["faults"][0]["kind"], "pause");
    assert_eq!(summary["all_thresholds_passed"], true);
}

#[test]
fn run_repeat_runs_the_scenario_n_times_and_writes_the_aggregate() {
    let file = scenario(
        "[sale]\ncap = 3\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
         [buyers]\ncount = 8\nquantity = 1\nconnections = 8\n[arrival]\nmodel = \"burst\"\n\
         open_after = \"50ms\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .arg("run")
        .arg(file.path())
        .args(["--repeat", "2", "--seed", "40", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("run 1/2 seed 40: all invariants held"),
        "{stdout}"
    );
    assert!(
        stdout.contains("run 2/2 seed 41: all invariants held"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 of 2 runs completed: 0 violated an invariant"),
        "{stdout}"
    );
    for k in [1, 2] {
        assert!(out.path().join(format!("run-{k}/summary.json")).exists());
    }
    let aggregate: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("repeat.json")).unwrap())
            .unwrap();
    assert_eq!(aggregate["runs_completed"], 2);
    assert_eq!(aggregate["runs_violated"], 0);
    assert!(aggregate["first_failing_run_dir"].is_null());
    assert_eq!(aggregate["runs"][1]["seed"], 41);

    // A broken strategy on the last units: the series exits 1 and names the failing run.
    let output = flashsale()
        .arg("run")
        .arg(file.path())
        .args(["--repeat", "2", "--inventory", "broken-naive", "--out"])
        .arg(out.path().join("broken"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.contains("VIOLATED") {
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("first failing run: "), "{stdout}");
    } else {
        // The race did not fire in two runs of eight buyers: still a clean, honest exit.
        assert_eq!(output.status.code(), Some(0), "{stdout}");
    }
}

#[test]
fn verify_on_the_reference_server_holds_lists_every_check_and_writes_a_schema_valid_report() {
    // Every check but `volume`, whose 5,000 claims take ~30 s on the debug build alone; its
    // arithmetic is unit-tested and README.md shows a full run.
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .args([
            "verify",
            "--inventory",
            "redis",
            "--budget",
            "12s",
            "--seed",
            "11",
        ])
        .args([
            "--checks",
            "contract,boundary,last-unit,same-key-at-once,same-buyer-at-once,holds,\
             retries-after-unknown,window-edges,unlimited-and-cap-0,generated",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for check in [
        "contract",
        "boundary",
        "last-unit",
        "same-key-at-once",
        "same-buyer-at-once",
        "holds",
        "retries-after-unknown",
        "volume",
        "window-edges",
        "unlimited-and-cap-0",
        "generated",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(check)),
            "{check} missing from the table:\n{stdout}"
        );
    }
    assert!(stdout.contains("verdict: all held"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("verify.json")).unwrap())
            .unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../verify.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(report["verdict"], "held");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 11);
    assert!(
        checks
            .iter()
            .all(|c| (c["name"] == "volume") == c.get("skipped").is_some()),
        "{checks:#?}"
    );
    assert!(
        checks
            .iter()
            .filter(|c| c["name"] != "volume" && c["name"] != "generated")
            .all(|c| c["runs"].as_u64() >= Some(1)),
        "{checks:#?}"
    );
    let first_run = &report["runs"][0]["dir"];
    assert!(
        std::path::Path::new(first_run.as_str().unwrap())
            .join("summary.json")
            .exists(),
        "{first_run}"
    );
}

#[test]
fn verify_refuses_an_unknown_check_with_exit_2_listing_the_known_ones() {
    let output = flashsale()
        .args(["verify", "--checks", "boundary,bondary"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bondary") && stderr.contains("same-key-at-once"),
        "{stderr}"
    );
}

#[test]
fn hostile_scenario_values_exit_2_before_any_load_and_never_panic() {
    let base =
        "[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n[buyers]\nquantity = 1\n";
    for (extra, named) in [
        (
            "count = 5\n[arrival]\nmodel = \"burst\"\nopen_after = \"10000y\"\n",
            "arrival.open_after",
        ),
        ("count = 100000000\n", "attempts"),
    ] {
        let file = scenario(&format!("{base}{extra}"));
        let output = flashsale().arg("run").arg(file.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
    let file = scenario(&format!(
        "{}count = 5\n",
        base.replace("[sale]\ncap = 5", "[sale]\ncap = 5\nwindow = \"10000y\"")
    ));
    let output = flashsale().arg("run").arg(file.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("sale.window"));
}

#[test]
fn an_unwritable_out_dir_exits_2_before_the_load() {
    let started = std::time::Instant::now();
    let output = flashsale()
        .args([
            "run",
            "scenarios/big-drop.toml",
            "--out",
            "/proc/flashsale-cannot-write-here",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/proc/flashsale-cannot-write-here"));
    // big-drop's load alone takes seconds; refused before it, the command ends at once.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_run_in_which_every_request_was_refused_for_its_input_exits_3() {
    let file = scenario(
        "name = \"nothing\"\n[sale]\ncap = 5\n[[sale.products]]\nid = \"p\"\nprice_cents = 1\n\
         [buyers]\ncount = 20\nquantity = 100000\n",
    );
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .arg("run")
        .arg(file.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("NOTHING TESTED") && stdout.contains("quantity_above_limit 20"),
        "{stdout}"
    );
    assert!(!stdout.contains("all invariants held"), "{stdout}");
}

#[test]
fn sharded_run_mistakes_exit_2_naming_the_fix() {
    let run = |extra: &[&str]| {
        let output = flashsale()
            .args(["run", "scenarios/last-ten-units.toml"])
            .args(extra)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let at = [
        "--sale-file",
        "sale.json",
        "--doors-open-at",
        "2026-12-03T10:00:00Z",
    ];
    let (code, stderr) = run(&[&["--shard", "2/2"][..], &at].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("1/2"), "{stderr}");
    let (code, stderr) = run(&[
        "--shard",
        "0/2",
        "--sale-file",
        "s.json",
        "--doors-open-at",
        "tomorrow",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("RFC 3339"), "{stderr}");
    let (code, stderr) = run(&["--shard", "0/2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--sale-file"), "{stderr}");
    // A shard needs a server the shards share.
    let (code, stderr) = run(&[&["--shard", "0/2"][..], &at].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--target") && stderr.contains("--workers"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--workers", "2", "--repeat", "2"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--repeat"), "{stderr}");

    let output = flashsale()
        .args([
            "run",
            "scenarios/redis-dies-mid-sale.toml",
            "--workers",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("faults"), "{stderr}");

    let output = flashsale()
        .args(["merge", "no/such/shard-0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no/such/shard-0"), "{stderr}");
}

/// The arguments of the Kubernetes recipe's containers (deploy/kubernetes/), as the kubelet
/// would pass them once the placeholders are filled in.
fn recipe_args(file: &str, fill: &[(&str, &str)]) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/");
    let text = std::fs::read_to_string(format!("{path}{file}")).unwrap();
    let after = text.split("command: [\"flashsale\"]").nth(1).unwrap();
    let block = after.split("args:").nth(1).unwrap();
    block
        .lines()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| {
            let mut arg = l.trim_start()[2..].trim().to_owned();
            for (placeholder, value) in fill {
                arg = arg.replace(placeholder, value);
            }
            arg
        })
        .collect()
}

/// The recipe calls the binary as it is: clap accepts the shard's and the merge's arguments
/// (an error here is the run's own, exit 2 with its message, never a usage error), a shard that
/// cannot reach its target records itself as failed, and the merge refuses the campaign naming
/// that shard.
#[test]
fn the_kubernetes_recipe_args_parse_and_a_failed_shard_stops_the_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    // As the recipe picks it: a few minutes ahead (an instant far off is refused).
    let doors = (time::OffsetDateTime::now_utc() + time::Duration::minutes(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let fill = [
        ("/etc/flashsale/scenario.toml", "scenarios/big-drop.toml"),
        ("${TARGET_URL}", "http://127.0.0.1:1"),
        ("${CAMPAIGN}", "campaign"),
        ("${DOORS_OPEN_AT}", doors.as_str()),
        ("$(JOB_COMPLETION_INDEX)", "0"),
        ("/results", results),
    ];
    let shard = recipe_args("shards-job.yaml", &fill);
    assert!(
        shard.iter().any(|a| a.starts_with("--shard=0/")),
        "{shard:?}"
    );
    let output = flashsale()
        .args(&shard)
        .env("FLASHSALE_ADMIN_TOKEN", "t")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("Usage:"), "{stderr}");
    assert!(stderr.contains("shard 0/4"), "{stderr}");
    let record = std::fs::read_to_string(tmp.path().join("campaign/shard-0/shard.json")).unwrap();
    assert!(record.contains("\"failed\""), "{record}");

    let merge = recipe_args("merge-job.yaml", &fill);
    let output = flashsale()
        .args(&merge)
        .env("FLASHSALE_ADMIN_TOKEN", "t")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("Usage:"), "{stderr}");
    assert!(stderr.contains("shard 0/4 failed"), "{stderr}");
}

/// The first acceptance line of issue 17 at a tenth of the size: `--workers 2` gives one summary
/// for every attempt of the plan, valid against the schema, with each shard's share.
#[test]
fn workers_write_one_schema_valid_summary_for_the_whole_plan() {
    let out = tempfile::tempdir().unwrap();
    let output = flashsale()
        .args([
            "run",
            "scenarios/last-ten-units.toml",
            "--workers",
            "2",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("merged from 2 shards"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../summary.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&summary)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(summary["outcomes"]["attempts"], 1_000);
    assert_eq!(summary["shards"]["count"], 2);
    for k in 0..2 {
        assert!(out.path().join(format!("shard-{k}/shard.json")).is_file());
    }
}
