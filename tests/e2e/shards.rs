//! Sharded generators (issue 17, second part): `--workers N` runs N `flashsale run --shard K/N`
//! processes against the in-process reference server and merges them with the code of
//! `flashsale merge`. Three shards give the same attempt count and verdict as one process; a
//! broken strategy is caught through the merged histories; a shard that never reports makes the
//! merge refuse (exit 2), never a verdict on part of the buyers.
//!
//! The shard processes are the `flashsale` binary beside this test's (`cargo test --workspace`
//! builds it; `FLASHSALE_BIN` overrides).

use std::path::{Path, PathBuf};

use flashsale_e2e::{load_scenario, run_in_process, scenarios_dir};
use flashsale_harness::cli::exit;
use flashsale_harness::run::{RunResult, TargetChoice};
use flashsale_harness::shard::workers::{WorkersOptions, flashsale_binary, run_workers};
use flashsale_harness::target::Dependencies;
use flashsale_mutants::InventoryStrategy;

async fn run_sharded(
    file: &str,
    strategy: InventoryStrategy,
    workers: u32,
    out: &Path,
) -> RunResult {
    run_workers(WorkersOptions {
        scenario_path: scenarios_dir().join(file),
        scenario: load_scenario(file),
        target: TargetChoice::InProcess {
            strategy,
            deps: Dependencies::from_env(),
            keep_database: false,
            replicas: 1,
        },
        profile_path: None,
        admin_token: None,
        workers,
        seed: None,
        out_dir: Some(out.to_owned()),
        results_root: out.to_owned(),
    })
    .await
    .expect("the sharded run sets up and every shard reports")
}

#[tokio::test]
async fn three_local_shards_give_the_attempt_count_and_verdict_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let single = run_in_process(
        load_scenario("last-ten-units.toml"),
        InventoryStrategy::Redis,
        &tmp.path().join("single"),
    )
    .await;
    let merged = run_sharded(
        "last-ten-units.toml",
        InventoryStrategy::Redis,
        3,
        &tmp.path().join("merged"),
    )
    .await;
    assert_eq!(merged.history.len(), single.history.len());
    assert_eq!(merged.history.len(), 1_000);
    assert_eq!(merged.exit_status(), single.exit_status());
    assert_eq!(merged.exit_status(), exit::HELD, "{:#?}", merged.check);
    assert!(merged.check.all_held(), "{:#?}", merged.check);
    assert_eq!(merged.summary.units_persisted, 10);

    // One summary for the whole campaign, with each shard's share.
    let shards = merged
        .summary
        .shards
        .as_ref()
        .expect("a merged run reports its shards");
    assert_eq!(shards.count, 3);
    let buyers: Vec<u64> = shards.shards.iter().map(|s| s.buyers).collect();
    assert_eq!(buyers, [334, 333, 333], "buyer i goes to shard i mod 3");
    assert_eq!(shards.shards.iter().map(|s| s.ok).sum::<u64>(), 10);
    // The server's own counts over the whole campaign (scraped before the shards started).
    let metrics = merged
        .summary
        .server_metrics
        .as_ref()
        .expect("--workers scrapes the server before and after");
    assert_eq!(
        metrics.buys["created"].values().sum::<u64>(),
        10,
        "{metrics:?}"
    );
    assert_eq!(
        metrics.buys["sold_out"].values().sum::<u64>(),
        990,
        "{metrics:?}"
    );
    let on_disk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(merged.out_dir.join("summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["shards"]["count"], 3);
    let html = std::fs::read_to_string(merged.out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("id=\"shards\""),
        "the report shows the generators"
    );
    assert!(
        html.contains("Merged from 3 shards"),
        "and their doors-open spread"
    );
    assert_eq!(
        on_disk["outcomes"]["attempts"], 1_000,
        "{}",
        on_disk["outcomes"]
    );
    // Every idempotency key of the plan was sent, each by one shard.
    let keys: std::collections::HashSet<&str> = merged
        .history
        .iter()
        .map(|a| a.idempotency_key.as_str())
        .collect();
    assert_eq!(keys.len(), 1_000);
}

#[tokio::test]
async fn broken_naive_is_caught_through_merged_histories_and_a_missing_shard_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("campaign");
    let merged = run_sharded(
        "last-ten-units.toml",
        InventoryStrategy::BrokenNaive,
        2,
        &out,
    )
    .await;
    assert_eq!(merged.exit_status(), exit::VIOLATED, "{:#?}", merged.check);
    assert!(
        merged.summary.all_invariants_held.eq(&false) && !merged.check.none_violated(),
        "{:#?}",
        merged.check
    );
    assert!(
        merged.summary.invariants["INV-1"]
            .summary
            .contains("above the cap"),
        "{}",
        merged.summary.invariants["INV-1"].summary
    );

    // The same shard directories with one shard's record gone: `flashsale merge` refuses.
    let dirs: Vec<PathBuf> = (0..2).map(|k| out.join(format!("shard-{k}"))).collect();
    std::fs::remove_file(dirs[1].join("shard.json")).unwrap();
    let exe = flashsale_binary().expect("the flashsale binary is built beside the tests");
    let output = std::process::Command::new(exe)
        .arg("merge")
        .args(&dirs)
        .arg("--out")
        .arg(tmp.path().join("partial"))
        .env("FLASHSALE_ADMIN_TOKEN", "unused")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(exit::SETUP), "{stderr}");
    assert!(stderr.contains("never reported"), "{stderr}");
    assert!(
        !tmp.path().join("partial/summary.json").exists(),
        "no partial verdict written"
    );
}

/// The path across machines, through the binary: `flashsale prepare` creates the sale, two
/// `flashsale run --shard K/2 --target URL` processes (each measuring its clock against the
/// target's Date header) fire their halves from one doors-open instant, `flashsale merge` judges
/// the union. Here the "machines" share a clock, so the measured offsets are ~0 within their
/// stated uncertainty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_two_shard_processes_and_merge_give_one_verdict() {
    use flashsale_harness::target::{InProcessServer, ServerOverrides};
    use time::format_description::well_known::Rfc3339;
    let server = InProcessServer::start(
        &Dependencies::from_env(),
        InventoryStrategy::Redis,
        &ServerOverrides::default(),
        false,
    )
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let exe = flashsale_binary().expect("the flashsale binary is built beside the tests");
    let scenario = scenarios_dir().join("last-ten-units.toml");
    let sale_file = tmp.path().join("sale.json");
    let flashsale = || {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.env("FLASHSALE_ADMIN_TOKEN", &server.admin_token);
        cmd
    };
    let prepared = flashsale()
        .arg("prepare")
        .arg(&scenario)
        .args(["--target", &server.base_url])
        .arg("--sale-file")
        .arg(&sale_file)
        .output()
        .await
        .unwrap();
    assert!(prepared.status.success(), "{prepared:?}");
    // Clock measurement (up to ~1 s) and start-up fit in the lead.
    let doors = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let shards: Vec<_> = (0..2)
        .map(|k| {
            let mut shard = flashsale();
            shard
                .arg("run")
                .arg(&scenario)
                .args(["--target", &server.base_url])
                .args(["--shard", &format!("{k}/2")])
                .arg("--sale-file")
                .arg(&sale_file)
                .args(["--doors-open-at", &doors.format(&Rfc3339).unwrap()])
                .arg("--out")
                .arg(tmp.path().join(format!("shard-{k}")));
            // Spawned, so the two shards run at once.
            tokio::spawn(async move { shard.output().await })
        })
        .collect();
    for (k, shard) in shards.into_iter().enumerate() {
        let shard = shard.await.unwrap().unwrap();
        assert!(shard.status.success(), "shard {k}: {shard:?}");
        let stdout = String::from_utf8_lossy(&shard.stdout);
        assert!(stdout.contains("no verdict from one shard"), "{stdout}");
    }
    let merged = flashsale()
        .arg("merge")
        .arg(tmp.path().join("shard-0"))
        .arg(tmp.path().join("shard-1"))
        .arg("--out")
        .arg(tmp.path().join("merged"))
        .output()
        .await
        .unwrap();
    server.shutdown().await;
    let stdout = String::from_utf8_lossy(&merged.stdout);
    assert_eq!(merged.status.code(), Some(exit::HELD), "{merged:?}");
    assert!(stdout.contains("merged from 2 shards"), "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("merged/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["outcomes"]["attempts"], 1_000);
    assert_eq!(summary["outcomes"]["ok"], 10);
    assert_eq!(summary["all_invariants_held"], true);
    for shard in summary["shards"]["shards"].as_array().unwrap() {
        let offset = shard["clock_offset_us"].as_i64().expect("measured");
        let uncertainty = shard["clock_offset_uncertainty_us"].as_i64().unwrap();
        assert!(offset.abs() <= uncertainty + 1_000, "{shard}");
        assert!(
            shard["clock_reference"]
                .as_str()
                .unwrap()
                .contains("Date header"),
            "{shard}"
        );
    }
}
