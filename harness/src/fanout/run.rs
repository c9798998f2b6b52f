//! One wishlist-fanout run: the reference server in-process with its alerts pointed at the
//! harness's SMTP sink and Web Push receiver; N subscribers wishlist the sale's product; the sale
//! is scheduled `starts_in` ahead and left to the activation job; faults fire when the endpoints
//! have received a given number of alerts; the run ends when the server reports every alert
//! settled (or at the deadline). Then INV-8 is judged on what arrived, and the time from the sale's
//! start to each arrival is written per channel as an HdrHistogram.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use flashsale_mutants::InventoryStrategy;
use flashsale_server::notify::NotifySettings;
use flashsale_server::{AdminToken, Settings};
use hdrhistogram::Histogram;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use uuid::Uuid;
use web_push_native::p256::{EncodedPoint, SecretKey};

use super::push_receiver::{PushReceiver, Subscriber};
use super::scenario::{FanoutFault, FanoutScenario};
use super::smtp_sink::SmtpSink;
use crate::checker::inv8_alerts::{self, AlertEvidence, Expected, Observed, Record};
use crate::checker::{InvariantResult, Verdict};
use crate::report::hgrm;
use crate::target::{Dependencies, with_database};

/// What a fan-out run needs besides its scenario.
#[derive(Debug)]
pub struct FanoutOptions {
    pub scenario: FanoutScenario,
    pub strategy: InventoryStrategy,
    pub deps: Dependencies,
    pub seed: Option<u64>,
    pub out_dir: Option<PathBuf>,
    pub results_root: PathBuf,
    pub keep_database: bool,
}

/// Per channel: how many arrived and how long after the sale's start.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelFigures {
    pub expected: u64,
    pub arrived: u64,
    /// Distinct users among the arrivals.
    pub distinct_users: u64,
    pub first_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// "How long until the last subscriber hears".
    pub last_ms: Option<f64>,
    /// Arrivals per second between the first and the last.
    pub per_second: Option<f64>,
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedFault {
    pub fault: String,
    /// Milliseconds after the sale's start.
    pub at_ms: f64,
    pub deliveries_before: u64,
    /// For a restart: how long the server was away (stop, pause, start).
    pub took_ms: Option<f64>,
}

/// `summary.json` of a fan-out run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutSummary {
    pub scenario: String,
    pub kind: &'static str,
    pub seed: u64,
    pub inventory: String,
    pub subscribers: u32,
    pub channels: Vec<String>,
    pub sale_id: String,
    pub starts_at: String,
    /// Server's `activated_at` − `starts_at` (negative: live before its window opened, which is
    /// the intent: the claim path checks the window itself).
    pub activation_vs_start_ms: Option<f64>,
    pub registration_ms: f64,
    pub finished: bool,
    pub settled_after_ms: Option<f64>,
    pub email: Option<ChannelFigures>,
    pub push: Option<ChannelFigures>,
    /// What the server recorded, per channel and state.
    pub server_counts: Value,
    pub smtp_refused_while_refusing: u64,
    pub push_gone_answers: u64,
    pub push_rejected: Vec<String>,
    pub faults_applied: Vec<AppliedFault>,
    pub faults_not_applied: Vec<String>,
    pub invariants: std::collections::BTreeMap<String, InvariantResult>,
}

/// A finished fan-out run.
#[derive(Debug)]
pub struct FanoutOutcome {
    pub summary: FanoutSummary,
    pub out_dir: PathBuf,
}

impl FanoutOutcome {
    pub fn verdict(&self) -> Verdict {
        self.summary.invariants[inv8_alerts::ID].verdict
    }
}

/// The server of one run, restartable on its database: in-process, or — when the scenario kills
/// it — the `flashsale-server` binary as a child process, so the kill is a real SIGKILL.
enum RunningServer {
    InProcess {
        base_url: String,
        stop: oneshot::Sender<()>,
        served: tokio::task::JoinHandle<std::io::Result<()>>,
    },
    Process {
        base_url: String,
        child: tokio::process::Child,
    },
}

/// How a run's server is started.
#[derive(Debug, Clone)]
enum ServerKind {
    InProcess(InventoryStrategy),
    /// The binary, on this loopback port (the same across restarts), with this admin token.
    Process {
        binary: PathBuf,
        port: u16,
        admin_token: String,
    },
}

async fn start_server(settings: &Settings, kind: &ServerKind) -> Result<RunningServer, String> {
    match kind {
        ServerKind::InProcess(strategy) => {
            let server = flashsale_mutants::build(settings.clone(), *strategy)
                .await
                .map_err(|e| format!("the reference server did not start: {e}"))?;
            let base_url = format!("http://{}", server.local_addr());
            let (stop, stopped) = oneshot::channel::<()>();
            let served = tokio::spawn(server.run_until(async {
                let _ = stopped.await;
            }));
            Ok(RunningServer::InProcess {
                base_url,
                stop,
                served,
            })
        }
        ServerKind::Process {
            binary,
            port,
            admin_token,
        } => start_process(binary, *port, admin_token, settings).await,
    }
}

async fn start_process(
    binary: &std::path::Path,
    port: u16,
    admin_token: &str,
    settings: &Settings,
) -> Result<RunningServer, String> {
    let notify = &settings.notify;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(["--database-url", &settings.database_url])
        .args(["--redis-url", &settings.redis_url])
        .arg("--notify-rate")
        .arg(notify.sends_per_second.to_string())
        .arg("--notify-concurrency")
        .arg(notify.concurrency.to_string())
        .arg("--notify-send-timeout")
        .arg(humantime::format_duration(notify.send_timeout).to_string())
        .arg("--notify-claim-lapse")
        .arg(humantime::format_duration(notify.claim_lapse).to_string())
        .env("FLASHSALE_ADMIN_TOKEN", admin_token)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = &notify.smtp_url {
        command.args(["--smtp-url", url]);
    }
    if let Some(key) = &notify.vapid_private_key {
        command.env("FLASHSALE_VAPID_PRIVATE_KEY", key);
    }
    let mut child = command.spawn().map_err(|e| {
        format!(
            "cannot start {} ({e}): build it with `cargo build -p flashsale-server`, or set \
             FLASHSALE_SERVER_BIN",
            binary.display()
        )
    })?;
    let base_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("flashsale-server exited at start-up ({status})"));
        }
        let healthy = client
            .get(format!("{base_url}/health"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            return Ok(RunningServer::Process { base_url, child });
        }
        if Instant::now() >= deadline {
            let _ = child.start_kill();
            return Err("flashsale-server did not answer /health within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl RunningServer {
    fn base_url(&self) -> &str {
        match self {
            RunningServer::InProcess { base_url, .. } | RunningServer::Process { base_url, .. } => {
                base_url
            }
        }
    }

    /// Stops it as a deploy does: in-process, the shutdown signal; a process, SIGTERM (which the
    /// server handles gracefully, alert sends included), then SIGKILL after 30 s.
    async fn stop(self) {
        match self {
            RunningServer::InProcess { stop, served, .. } => {
                let _ = stop.send(());
                let _ = served.await;
            }
            RunningServer::Process { mut child, .. } => {
                if let Some(pid) = child.id() {
                    let _ = tokio::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status()
                        .await;
                }
                if tokio::time::timeout(Duration::from_secs(30), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// SIGKILL: nothing is finished or recorded. Only a process can be killed so.
    async fn kill(self) {
        match self {
            RunningServer::Process { mut child, .. } => {
                let _ = child.kill().await;
            }
            in_process => in_process.stop().await,
        }
    }
}

/// The `flashsale-server` binary: `FLASHSALE_SERVER_BIN`, else beside this executable (or one
/// directory up, for test binaries under `target/*/deps/`).
fn server_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("FLASHSALE_SERVER_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [
        dir.join("flashsale-server"),
        dir.parent()?.join("flashsale-server"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A fresh VAPID key pair: (private, public), base64url.
fn vapid_keys(rng: &mut impl Rng) -> (String, String) {
    let secret = loop {
        let bytes: [u8; 32] = rng.random();
        if let Ok(secret) = SecretKey::from_slice(&bytes) {
            break secret;
        }
    };
    let public = EncodedPoint::from(secret.public_key());
    (
        Base64UrlUnpadded::encode_string(&secret.to_bytes()),
        Base64UrlUnpadded::encode_string(public.as_bytes()),
    )
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed milliseconds from `start` to `at`.
fn since(start: Instant, at: Instant) -> f64 {
    if at >= start {
        millis(at - start)
    } else {
        -millis(start - at)
    }
}

pub async fn run(options: FanoutOptions) -> Result<FanoutOutcome, String> {
    let FanoutOptions {
        scenario,
        strategy,
        deps,
        seed,
        out_dir,
        results_root,
        keep_database,
    } = options;
    let seed = seed
        .or(scenario.seed)
        .unwrap_or_else(|| rand::random::<u64>() >> 11);
    let out_dir = out_dir.unwrap_or_else(|| {
        crate::report::default_out_dir(&results_root, &scenario.name, OffsetDateTime::now_utc())
    });
    std::fs::create_dir_all(&out_dir).map_err(|e| {
        format!(
            "cannot create the output directory {}: {e} (pass a writable --out)",
            out_dir.display()
        )
    })?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let spec = &scenario.fanout;
    let n = spec.subscribers as usize;
    let user_ids: Vec<String> = (0..n).map(|i| format!("fan-{i:06}")).collect();

    let sink = if scenario.uses("email") {
        Some(
            SmtpSink::start()
                .await
                .map_err(|e| format!("the SMTP sink could not start on loopback: {e}"))?,
        )
    } else {
        None
    };
    let (vapid_private, vapid_public) = vapid_keys(&mut rng);
    let gone: HashSet<usize> = if scenario.uses("push") {
        sample(&mut rng, n, spec.gone_subscriptions as usize)
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    let subscribers = if scenario.uses("push") {
        Subscriber::generate(&user_ids, rng.random())
    } else {
        Vec::new()
    };
    let subscription_keys: Vec<(String, String)> = subscribers.iter().map(|s| s.keys()).collect();
    let receiver = if scenario.uses("push") {
        Some(
            PushReceiver::start(subscribers, &vapid_public, gone.clone())
                .await
                .map_err(|e| format!("the push receiver could not start on loopback: {e}"))?,
        )
    } else {
        None
    };

    let database_name = format!("flashsale_fanout_{}", Uuid::new_v4().simple());
    let admin_token = format!("harness-{}", Uuid::new_v4().simple());
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        database_url: with_database(&deps.database_url, &database_name),
        redis_url: deps.redis_url.clone(),
        admin_token: AdminToken::new(admin_token.clone()),
        notify: NotifySettings {
            smtp_url: sink.as_ref().map(SmtpSink::url),
            vapid_private_key: scenario.uses("push").then(|| vapid_private.clone()),
            sends_per_second: spec.sends_per_second,
            concurrency: spec.concurrency,
            // Short, so a killed server's unrecorded sends are declared in doubt within the run.
            send_timeout: Duration::from_secs(2),
            claim_lapse: Duration::from_secs(3),
            ..NotifySettings::default()
        },
        ..Settings::default()
    };
    let kills = scenario
        .faults
        .iter()
        .any(|f| matches!(f, FanoutFault::KillServer { .. }));
    let kind = if kills {
        if strategy.is_broken() {
            return Err(format!(
                "a kill-server fault runs the flashsale-server binary, which holds no deliberately \
                 broken strategy: drop --inventory {strategy}, or use restart-server"
            ));
        }
        let binary = server_binary().ok_or(
            "a kill-server fault runs the flashsale-server binary, and none was found beside \
             flashsale: build it (`cargo build -p flashsale-server`, or --release for a release \
             flashsale) or set FLASHSALE_SERVER_BIN",
        )?;
        ServerKind::Process {
            binary,
            port: free_port()?,
            admin_token: admin_token.clone(),
        }
    } else {
        ServerKind::InProcess(strategy)
    };
    let mut server = Some(start_server(&settings, &kind).await?);
    let result = drive(
        &scenario,
        strategy,
        &settings,
        &mut server,
        &kind,
        &admin_token,
        &user_ids,
        &subscription_keys,
        sink.as_ref(),
        receiver.as_ref(),
        seed,
        &out_dir,
    )
    .await;
    if let Some(server) = server.take() {
        server.stop().await;
    }
    if !keep_database {
        drop_database(&deps.database_url, &database_name).await;
    }
    let summary = result?;
    let text = serde_json::to_string_pretty(&summary).expect("the summary serialises");
    std::fs::write(out_dir.join("summary.json"), text)
        .map_err(|e| format!("cannot write summary.json in {}: {e}", out_dir.display()))?;
    Ok(FanoutOutcome { summary, out_dir })
}

async fn drop_database(url: &str, name: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(&with_database(url, "postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    scenario: &FanoutScenario,
    strategy: InventoryStrategy,
    settings: &Settings,
    server: &mut Option<RunningServer>,
    kind: &ServerKind,
    admin_token: &str,
    user_ids: &[String],
    subscription_keys: &[(String, String)],
    sink: Option<&SmtpSink>,
    receiver: Option<&PushReceiver>,
    seed: u64,
    out_dir: &std::path::Path,
) -> Result<FanoutSummary, String> {
    let spec = &scenario.fanout;
    let client = reqwest::Client::new();
    let base = |server: &Option<RunningServer>| {
        server
            .as_ref()
            .map(|s| s.base_url().to_owned())
            .unwrap_or_default()
    };
    let product = "wishlisted-item";
    let url = base(server);
    let put = client
        .put(format!("{url}/admin/products/{product}"))
        .bearer_auth(admin_token)
        .json(&json!({"name": "The wishlisted item", "list_price_cents": 10_000}))
        .send()
        .await
        .map_err(|e| format!("the catalog could not be set up: {e}"))?;
    if !put.status().is_success() {
        return Err(format!("the catalog could not be set up: {}", put.status()));
    }

    // Wishlists, over a bounded number of connections.
    let registration = std::time::Instant::now();
    let permits = Arc::new(Semaphore::new(spec.registration_connections as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, user) in user_ids.iter().enumerate() {
        let mut body = json!({"user_id": user, "product_ids": [product]});
        if scenario.uses("email") {
            body["email"] = json!(format!("{user}@fanout.test"));
        }
        if let Some(receiver) = receiver {
            let (p256dh, auth) = &subscription_keys[i];
            body["push_subscription"] = json!({
                "endpoint": receiver.endpoint(i),
                "keys": {"p256dh": p256dh, "auth": auth},
            });
        }
        let client = client.clone();
        let url = format!("{url}/wishlist");
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let response = client.post(url).json(&body).send().await;
            match response {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!(
                    "a wishlist was refused: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Err(format!("a wishlist could not be sent: {e}")),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("a registration task failed: {e}"))??;
    }
    let registration_ms = millis(registration.elapsed());

    // The sale, scheduled ahead and left to the activation job.
    let now = OffsetDateTime::now_utc();
    let starts_at = now + spec.starts_in;
    let start_instant = Instant::now() + spec.starts_in;
    let rfc3339 = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("formats")
    };
    let created = client
        .post(format!("{url}/admin/sales"))
        .bearer_auth(admin_token)
        .json(&json!({
            "name": format!("{} drop", scenario.name),
            "starts_at": rfc3339(starts_at),
            "ends_at": rfc3339(starts_at + Duration::from_secs(3600)),
            "cap": 100,
            "products": [{"product_id": product, "sale_price_cents": 5_000}],
            "activate_on_schedule": true,
        }))
        .send()
        .await
        .map_err(|e| format!("the sale could not be created: {e}"))?;
    if created.status() != reqwest::StatusCode::CREATED {
        return Err(format!(
            "the sale could not be created: {} {}",
            created.status(),
            created.text().await.unwrap_or_default()
        ));
    }
    let sale: Value = created
        .json()
        .await
        .map_err(|e| format!("the sale's answer is not JSON: {e}"))?;
    let sale_id = sale["id"].as_str().unwrap_or_default().to_owned();

    // Watch the endpoints, fire the faults, poll the server's record until every alert settled.
    let arrivals = || {
        (sink.map_or(0, SmtpSink::received_count)
            + receiver.map_or(0, |r| r.received_count() + r.gone_hits().len())) as u64
    };
    let deadline = start_instant + spec.within;
    let mut pending_faults: Vec<&FanoutFault> = scenario.faults.iter().collect();
    pending_faults.sort_by_key(|f| f.after_deliveries());
    let mut applied = Vec::new();
    let mut refusing_until: Option<Instant> = None;
    let mut last_poll = Instant::now();
    let mut finished = false;
    let mut settled_after_ms = None;
    let mut record = Value::Null;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if let (Some(until), Some(sink)) = (refusing_until, sink) {
            if now >= until {
                sink.set_refusing(false);
                refusing_until = None;
            }
        }
        let seen = arrivals();
        while let Some(fault) = pending_faults.first().copied() {
            if seen < fault.after_deliveries() {
                break;
            }
            pending_faults.remove(0);
            let at_ms = since(start_instant, Instant::now());
            let took_ms = match fault {
                FanoutFault::RestartServer { down_for, .. }
                | FanoutFault::KillServer { down_for, .. } => {
                    let began = Instant::now();
                    if let Some(running) = server.take() {
                        if matches!(fault, FanoutFault::KillServer { .. }) {
                            running.kill().await;
                        } else {
                            running.stop().await;
                        }
                    }
                    tokio::time::sleep(*down_for).await;
                    *server = Some(start_server(settings, kind).await?);
                    Some(millis(began.elapsed()))
                }
                FanoutFault::SmtpRefuse { refuse_for, .. } => {
                    if let Some(sink) = sink {
                        sink.set_refusing(true);
                        refusing_until = Some(Instant::now() + *refuse_for);
                    }
                    None
                }
            };
            applied.push(AppliedFault {
                fault: fault.describe(),
                at_ms,
                deliveries_before: seen,
                took_ms,
            });
        }
        // The record is read at most twice a second, and only once the sale has started (it is
        // one row per alert).
        if now >= start_instant && now.duration_since(last_poll) >= Duration::from_millis(500) {
            last_poll = now;
            if let Ok(current) = read_record(&client, &base(server), admin_token, &sale_id).await {
                let done = current["finished"].as_bool().unwrap_or(false)
                    && current["deliveries"]
                        .as_array()
                        .is_some_and(|d| !d.is_empty())
                    && refusing_until.is_none();
                record = current;
                if done {
                    finished = true;
                    settled_after_ms = Some(since(start_instant, Instant::now()));
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(sink) = sink {
        sink.set_refusing(false);
    }
    // Anything still on the wire lands before the evidence is read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Ok(current) = read_record(&client, &base(server), admin_token, &sale_id).await {
        if finished || record.is_null() {
            record = current;
        }
    }

    // The evidence.
    let mut expected = Vec::new();
    for user in user_ids {
        if scenario.uses("email") {
            expected.push(Expected {
                user_id: user.clone(),
                channel: "email",
            });
        }
        if scenario.uses("push") {
            expected.push(Expected {
                user_id: user.clone(),
                channel: "push",
            });
        }
    }
    let emails = sink.map(SmtpSink::received).unwrap_or_default();
    let pushes = receiver.map(PushReceiver::received).unwrap_or_default();
    let mut observed: Vec<Observed> = emails
        .iter()
        .map(|e| Observed {
            user_id: e.user_id.clone(),
            sale_id: e.sale_id.clone(),
            channel: "email",
        })
        .collect();
    observed.extend(pushes.iter().map(|p| {
        Observed {
            // The subscription the message reached decides whose it is; the payload must agree.
            user_id: match (&p.user_id, user_ids.get(p.subscriber)) {
                (Some(named), Some(owner)) if named == owner => Some(owner.clone()),
                (named, _) => named
                    .clone()
                    .map(|n| format!("{n} (sent to another's subscription)")),
            },
            sale_id: p.sale_id.clone(),
            channel: "push",
        }
    }));
    let records: Vec<Record> = record["deliveries"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| Record {
                    user_id: r["user_id"].as_str().unwrap_or_default().to_owned(),
                    channel: r["channel"].as_str().unwrap_or_default().to_owned(),
                    state: r["state"].as_str().unwrap_or_default().to_owned(),
                    detail: r["detail"].as_str().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    let rejected = receiver.map(PushReceiver::rejected).unwrap_or_default();
    let verdict = inv8_alerts::check(&AlertEvidence {
        sale_id: &sale_id,
        expected: &expected,
        observed: &observed,
        records: &records,
        rejected: &rejected,
        finished,
    });

    let figures = |times: Vec<Instant>, users: HashSet<String>, expected: u64| {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, 24 * 3600 * 1_000_000, 3).expect("valid bounds");
        let mut offsets: Vec<f64> = times.iter().map(|t| since(start_instant, *t)).collect();
        offsets.sort_by(f64::total_cmp);
        for ms in &offsets {
            let _ = histogram.record(((ms * 1000.0).max(1.0)) as u64);
        }
        let pick = |q: f64| {
            (!histogram.is_empty()).then(|| histogram.value_at_quantile(q) as f64 / 1000.0)
        };
        let first = offsets.first().copied();
        let last = offsets.last().copied();
        let per_second = match (first, last) {
            (Some(a), Some(b)) if b > a && offsets.len() > 1 => {
                Some((offsets.len() - 1) as f64 / ((b - a) / 1000.0))
            }
            _ => None,
        };
        (
            ChannelFigures {
                expected,
                arrived: offsets.len() as u64,
                distinct_users: users.len() as u64,
                first_ms: first,
                p50_ms: pick(0.5),
                p90_ms: pick(0.9),
                p99_ms: pick(0.99),
                last_ms: last,
                per_second,
            },
            histogram,
        )
    };
    let mut email_figures = None;
    let mut push_figures = None;
    if scenario.uses("email") {
        let (f, h) = figures(
            emails.iter().map(|e| e.at).collect(),
            emails.iter().filter_map(|e| e.user_id.clone()).collect(),
            u64::from(spec.subscribers),
        );
        write_histogram(out_dir, "email", &h)
            .map_err(|e| format!("cannot write email-alerts.hgrm: {e}"))?;
        email_figures = Some(f);
    }
    if scenario.uses("push") {
        let (f, h) = figures(
            pushes.iter().map(|p| p.at).collect(),
            pushes.iter().filter_map(|p| p.user_id.clone()).collect(),
            u64::from(spec.subscribers - spec.gone_subscriptions),
        );
        write_histogram(out_dir, "push", &h)
            .map_err(|e| format!("cannot write push-alerts.hgrm: {e}"))?;
        push_figures = Some(f);
    }
    let activation_vs_start_ms = record["activated_at"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map(|activated| (activated - starts_at).as_seconds_f64() * 1000.0);
    let mut invariants = std::collections::BTreeMap::new();
    invariants.insert(inv8_alerts::ID.to_owned(), verdict);
    Ok(FanoutSummary {
        scenario: scenario.name.clone(),
        kind: super::scenario::KIND,
        seed,
        inventory: strategy.name().to_owned(),
        subscribers: spec.subscribers,
        channels: spec.channels.clone(),
        sale_id,
        starts_at: rfc3339(starts_at),
        activation_vs_start_ms,
        registration_ms,
        finished,
        settled_after_ms,
        email: email_figures,
        push: push_figures,
        server_counts: record["counts"].clone(),
        smtp_refused_while_refusing: sink.map_or(0, SmtpSink::refused),
        push_gone_answers: receiver.map_or(0, |r| r.gone_hits().len() as u64),
        push_rejected: rejected,
        faults_applied: applied,
        faults_not_applied: pending_faults.iter().map(|f| f.describe()).collect(),
        invariants,
    })
}

async fn read_record(
    client: &reqwest::Client,
    base_url: &str,
    admin_token: &str,
    sale_id: &str,
) -> Result<Value, String> {
    let response = client
        .get(format!("{base_url}/admin/sales/{sale_id}/alerts"))
        .bearer_auth(admin_token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the alert record answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

/// Writes `<channel>-alerts.hgrm`: time from the sale's start to each arrival.
pub fn write_histogram(
    out_dir: &std::path::Path,
    channel: &str,
    histogram: &Histogram<u64>,
) -> std::io::Result<()> {
    let mut file = std::fs::File::create(out_dir.join(format!("{channel}-alerts.hgrm")))?;
    hgrm::write_percentile_distribution(
        histogram,
        &mut file,
        hgrm::TICKS_PER_HALF_DISTANCE,
        hgrm::OUTPUT_SCALING_RATIO,
    )
}
