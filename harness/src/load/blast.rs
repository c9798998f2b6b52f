//! `flashsale blast`: the harness's raw request rate against one URL, every attempt recorded.
//!
//! What wrk and oha measure, done the harness's way: `connections` keep-alive HTTP/1.1
//! connections, each a closed loop (the next request leaves when the previous answer is read)
//! for the duration, and every attempt kept as a 12-byte [`Shot`] (when it left, how long it
//! took, what came back), so the rate is the rate of *recorded* attempts, not of a counter. The
//! latencies go into an HdrHistogram (3 significant digits) once the run is over, off the hot
//! path. Failures are data: a non-2xx/3xx answer, a refused connection or a timeout is counted
//! by kind, and a broken connection is reopened.
//!
//! For speed it works the way wrk does ([`super::wire`]): each connection is one task that sends
//! the same request bytes, built once, and reads each answer into a reused buffer parsed in place;
//! a request's timeout is checked by one timer per connection, not a timer per request. Each
//! thread busy-polls its sockets for a short window after an answer instead of sleeping at once
//! ([`BusyPoll`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hyper::{Method, Uri};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::wire;
use crate::latency::{LatencyStats, new_histogram, record};

/// Longest run `blast` accepts: attempt offsets are held as 32-bit microseconds (71 minutes).
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most connections `blast` opens; more is a typo, not a benchmark.
pub const MAX_CONNECTIONS: u32 = 10_000;
/// `--busy-poll`'s default (see [`BusyPoll`]): a few times the gap between two answers of a
/// thread at tens of thousands of requests per second. Measured on two cores against the
/// server's `/health` (3 s runs, six alternations): 30, 100, 300 and 1,000 µs all cut the context
/// switches from ~0.8 to 0.02–0.3 per request, and 100 µs needed the least CPU per request.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(100);

/// What to blast, validated (see [`BlastOptions::new`]).
#[derive(Debug, Clone)]
pub struct BlastOptions {
    /// The URL as given, for the report.
    pub url: String,
    pub addr: SocketAddr,
    pub method: Method,
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    pub connections: u32,
    /// OS threads the connections are shared out over (wrk's `-t`).
    pub threads: u32,
    pub duration: Duration,
    /// Per-request limit; a request that takes longer is recorded as a `timeout` and its
    /// connection reopened.
    pub timeout: Duration,
    /// How long a thread keeps polling after its last answer before it sleeps ([`BusyPoll`]);
    /// zero turns busy-polling off. [`DEFAULT_BUSY_POLL`] unless changed after [`Self::new`].
    pub busy_poll: Duration,
    /// What every attempt sends, built once ([`wire::request_bytes`]).
    request: Arc<[u8]>,
}

/// A `blast` argument that cannot work, with what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum BlastError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "cannot connect to {url} ({addr}): {source}. Is the server running, and is the URL right?"
    )]
    Connect {
        url: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl BlastOptions {
    /// Checks the arguments and resolves the URL's host (the first address it resolves to).
    pub async fn new(
        url: &str,
        method: &str,
        headers: &[String],
        connections: u32,
        threads: u32,
        duration: Duration,
        timeout: Duration,
    ) -> Result<Self, BlastError> {
        let invalid = |problem: String| BlastError::Invalid(problem);
        let parsed = url::Url::parse(url).map_err(|err| {
            invalid(format!(
                "{url} is not a URL ({err}): give the full URL, e.g. http://127.0.0.1:8080/health"
            ))
        })?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid(format!(
                    "{url}: blast speaks plain HTTP/1.1 only (no TLS); use an http:// URL"
                )));
            }
            other => {
                return Err(invalid(format!(
                    "{url}: the scheme {other}:// is not HTTP; use an http:// URL"
                )));
            }
        }
        let host = parsed.host_str().ok_or_else(|| {
            invalid(format!(
                "{url} has no host; use e.g. http://127.0.0.1:8080/health"
            ))
        })?;
        let port = parsed.port().unwrap_or(80);
        let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host_for_lookup, port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| invalid(format!("{url}: cannot resolve the host {host}")))?;
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let host = hyper::header::HeaderValue::from_str(&authority)
            .map_err(|_| invalid(format!("{url}: the host is not a valid Host header")))?;
        let mut target = parsed.path().to_owned();
        if let Some(query) = parsed.query() {
            target.push('?');
            target.push_str(query);
        }
        let _: Uri = target
            .parse()
            .map_err(|err| invalid(format!("{url}: the path is not a request target: {err}")))?;
        let method: Method = method.to_ascii_uppercase().parse().map_err(|_| {
            invalid(format!(
                "--method {method} is not an HTTP method; use e.g. GET, HEAD or POST"
            ))
        })?;
        let headers: Vec<_> = headers
            .iter()
            .map(|header| parse_header(header).map_err(invalid))
            .collect::<Result<_, _>>()?;
        if connections == 0 || connections > MAX_CONNECTIONS {
            return Err(invalid(format!(
                "--connections {connections}: give between 1 and {MAX_CONNECTIONS}"
            )));
        }
        if threads == 0 {
            return Err(invalid(
                "--threads 0: give at least 1 (default: one per core)".to_owned(),
            ));
        }
        if duration.is_zero() || duration > MAX_DURATION {
            return Err(invalid(format!(
                "--duration {}: give a duration above zero and at most 1h, e.g. 10s",
                humantime::format_duration(duration)
            )));
        }
        if timeout.is_zero() {
            return Err(invalid(
                "--timeout 0s: give a per-request timeout above zero, e.g. 5s".to_owned(),
            ));
        }
        let request = wire::request_bytes(method.as_str(), &target, &host, &headers).into();
        Ok(BlastOptions {
            request,
            busy_poll: DEFAULT_BUSY_POLL,
            url: url.to_owned(),
            addr,
            method,
            headers,
            connections,
            threads,
            duration,
            timeout,
        })
    }
}

/// `Name: value`, the way curl, wrk and oha take `-H`.
fn parse_header(
    header: &str,
) -> Result<(hyper::header::HeaderName, hyper::header::HeaderValue), String> {
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| format!("--header {header:?} has no colon; write it as \"Name: value\""))?;
    let name = name.trim().parse().map_err(|_| {
        format!(
            "--header {header:?}: {:?} is not a header name",
            name.trim()
        )
    })?;
    let value = value
        .trim()
        .parse()
        .map_err(|_| format!("--header {header:?}: the value is not a valid header value"))?;
    Ok((name, value))
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ShotOutcome {
    /// A response arrived (any status; see [`Shot::status`]).
    Answered,
    /// The connection could not be opened.
    Connect,
    /// The connection broke while sending or reading.
    Transport,
    /// No answer within `--timeout`.
    Timeout,
}

/// One recorded attempt, 12 bytes: a million of them cost 12 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shot {
    /// When the request left (µs since the blast started).
    pub start_us: u32,
    /// Until its answer was read (or it failed), µs.
    pub latency_us: u32,
    /// HTTP status; 0 when no answer arrived.
    pub status: u16,
    pub outcome: ShotOutcome,
}

impl Shot {
    /// A transport failure, a timeout, or an answer other than 2xx/3xx (wrk's "Non-2xx or 3xx
    /// responses", oha's error and status distributions).
    pub fn is_error(&self) -> bool {
        self.outcome != ShotOutcome::Answered || !(200..400).contains(&self.status)
    }

    /// The kind an error is counted under: `http_<status>` or the failure kind.
    pub fn error_kind(&self) -> Option<String> {
        if !self.is_error() {
            return None;
        }
        Some(match self.outcome {
            ShotOutcome::Answered => format!("http_{}", self.status),
            ShotOutcome::Connect => "connect".to_owned(),
            ShotOutcome::Transport => "transport".to_owned(),
            ShotOutcome::Timeout => "timeout".to_owned(),
        })
    }
}

/// Every attempt of a blast, ordered by start.
#[derive(Debug)]
pub struct BlastRun {
    pub shots: Vec<Shot>,
    /// From the start to the last answer (requests still in flight at the deadline are waited
    /// for and counted, so every attempt that left is recorded).
    pub elapsed: Duration,
}

/// The figures of a blast, as printed and written to `blast.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlastSummary {
    pub url: String,
    pub method: String,
    pub connections: u32,
    pub duration_s: f64,
    pub elapsed_s: f64,
    /// Every attempt recorded.
    pub requests: u64,
    pub requests_per_s: f64,
    pub ok: u64,
    pub errors: u64,
    /// Errors by kind: `http_<status>`, `connect`, `transport`, `timeout`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of every attempt (answered or not), from the HdrHistogram.
    pub latency: LatencyStats,
    pub latency_mean_us: f64,
}

impl BlastSummary {
    pub fn of(options: &BlastOptions, run: &BlastRun) -> Self {
        let mut histogram = new_histogram();
        let mut errors_by_kind = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        let mut errors = 0;
        for shot in &run.shots {
            record(&mut histogram, u64::from(shot.latency_us));
            if shot.outcome == ShotOutcome::Answered {
                *statuses.entry(shot.status).or_default() += 1;
            }
            if let Some(kind) = shot.error_kind() {
                errors += 1;
                *errors_by_kind.entry(kind).or_default() += 1;
            }
        }
        let requests = run.shots.len() as u64;
        let elapsed_s = run.elapsed.as_secs_f64();
        BlastSummary {
            url: options.url.clone(),
            method: options.method.to_string(),
            connections: options.connections,
            duration_s: options.duration.as_secs_f64(),
            elapsed_s,
            requests,
            requests_per_s: if elapsed_s > 0.0 {
                requests as f64 / elapsed_s
            } else {
                0.0
            },
            ok: requests - errors,
            errors,
            errors_by_kind,
            statuses,
            latency: LatencyStats::of(&histogram),
            latency_mean_us: histogram.mean(),
        }
    }

    /// The summary the way wrk and oha print theirs.
    pub fn text(&self) -> String {
        let ms = |us: u64| format!("{:.3} ms", us as f64 / 1000.0);
        let mut out = format!(
            "blast {} {}: {} connections, {:.2} s\n  requests     {} ({} ok, {} errors)\n  \
             requests/s   {:.0}\n  latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  \
             mean {:.3} ms\n",
            self.method,
            self.url,
            self.connections,
            self.elapsed_s,
            self.requests,
            self.ok,
            self.errors,
            self.requests_per_s,
            ms(self.latency.p50_us),
            ms(self.latency.p90_us),
            ms(self.latency.p99_us),
            ms(self.latency.p99_9_us),
            ms(self.latency.max_us),
            self.latency_mean_us / 1000.0,
        );
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect();
        out.push_str(&format!("  statuses     {}\n", statuses.join(", ")));
        if !self.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            out.push_str(&format!("  errors       {}\n", kinds.join(", ")));
        }
        out
    }
}

/// Opens every connection, then runs them all for the duration. Fails only when the first
/// connection cannot be opened (nothing is listening); later failures are recorded.
///
/// Like wrk's threads, the connections are shared out over `threads` OS threads, each with its
/// own single-threaded runtime: a connection's requests, its socket and its records stay on one
/// thread, with no work stealing and no cross-thread wake-up per request.
pub async fn blast(options: &BlastOptions) -> Result<BlastRun, BlastError> {
    let first = TcpStream::connect(options.addr)
        .await
        .map_err(|source| BlastError::Connect {
            url: options.url.clone(),
            addr: options.addr,
            source,
        })?;
    drop(first);
    let options = options.clone();
    let run = tokio::task::spawn_blocking(move || blast_on_threads(&options))
        .await
        .expect("the blast threads do not panic");
    Ok(run)
}

fn blast_on_threads(options: &BlastOptions) -> BlastRun {
    let threads = options.threads.clamp(1, options.connections) as usize;
    let ready = std::sync::Barrier::new(threads);
    let start = std::sync::OnceLock::new();
    // Room for ~150k requests/s in all, so the vectors rarely grow during the run.
    let expected = (options.duration.as_secs_f64() * 150_000.0 / f64::from(options.connections))
        .clamp(1024.0, 4.0e6) as usize;
    let (parts, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let (ready, start) = (&ready, &start);
                let connections = (thread..options.connections as usize)
                    .step_by(threads)
                    .count();
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a single-threaded runtime builds");
                    runtime.block_on(async {
                        let mut streams = Vec::with_capacity(connections);
                        for _ in 0..connections {
                            let stream = TcpStream::connect(options.addr).await.ok();
                            if let Some(stream) = &stream {
                                stream.set_nodelay(true).ok();
                            }
                            streams.push(stream);
                        }
                        // Every thread has its connections open before the clock starts.
                        ready.wait();
                        let started =
                            Instant::from_std(*start.get_or_init(std::time::Instant::now));
                        let deadline = started + options.duration;
                        let busy = Arc::new(BusyPoll::default());
                        if !options.busy_poll.is_zero() {
                            tokio::spawn(busy_poll(
                                busy.clone(),
                                options.busy_poll,
                                started,
                                deadline,
                            ));
                        }
                        let tasks: Vec<_> = streams
                            .into_iter()
                            .map(|stream| {
                                let options = options.clone();
                                let busy = busy.clone();
                                tokio::spawn(async move {
                                    let mut shots = Vec::with_capacity(expected);
                                    connection_loop(
                                        &options, &busy, stream, started, deadline, &mut shots,
                                    )
                                    .await;
                                    shots
                                })
                            })
                            .collect();
                        let mut shots = Vec::new();
                        for task in tasks {
                            shots.push(task.await.expect("a blast connection does not panic"));
                        }
                        shots
                    })
                })
            })
            .collect();
        let parts: Vec<Vec<Shot>> = handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a blast thread does not panic"))
            .collect();
        let elapsed = start.get().map_or(Duration::ZERO, |start| start.elapsed());
        (parts, elapsed)
    });
    let mut shots = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        shots.extend_from_slice(&part);
    }
    shots.sort_unstable_by_key(|s| s.start_us);
    BlastRun { shots, elapsed }
}

/// A blast thread's busy-poll window.
///
/// Without it, a thread whose connections all wait for the server sleeps in `epoll_wait`, and
/// each answer then has to wake it. On loopback that wake-up is paid inside the server's `write`,
/// so it is charged to the server being measured. Measured on two cores against `/health`
/// (3 s runs, alternating): ~0.8 context switches per request without the window, 0.02–0.06
/// with it, and the server's CPU per request fell by a fifth (27.7 → 22.0 µs, 19.3 → 17.7 µs in
/// two series). With it, one task per thread keeps the thread awake for the window after the
/// thread's last answer: it yields in a loop, and every yield makes tokio poll the sockets
/// without blocking before it runs whatever became ready. Past the window it sleeps until the
/// next answer. Linux's `SO_BUSY_POLL` is the kernel's form of the same idea; wrk has none.
///
/// The threads' runtimes are single-threaded, so the fields are only ever touched by one thread;
/// they are atomics because tokio's `spawn` wants `Send` tasks.
#[derive(Debug, Default)]
struct BusyPoll {
    /// When the thread's last answer was read, µs since the blast started.
    last_answer_us: AtomicU64,
    /// Set while the poller sleeps, so only then does an answer ring the bell.
    sleeping: AtomicBool,
    bell: tokio::sync::Notify,
}

impl BusyPoll {
    fn answered(&self, started: Instant, now: Instant) {
        let since = now.saturating_duration_since(started).as_micros();
        self.last_answer_us
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
        if self.sleeping.load(Ordering::Relaxed) {
            self.bell.notify_one();
        }
    }
}

/// Keeps its thread polling until `window` has passed since the thread's last answer, then
/// sleeps until the next answer (see [`BusyPoll`]); ends at the deadline.
async fn busy_poll(busy: Arc<BusyPoll>, window: Duration, started: Instant, deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let last = started + Duration::from_micros(busy.last_answer_us.load(Ordering::Relaxed));
        if now.saturating_duration_since(last) < window {
            tokio::task::yield_now().await;
            continue;
        }
        busy.sleeping.store(true, Ordering::Relaxed);
        tokio::select! {
            () = busy.bell.notified() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
        busy.sleeping.store(false, Ordering::Relaxed);
    }
}

/// One connection's closed loop until the deadline, reconnecting after a failure or when the
/// server ends the connection. An attempt on a connection the server had closed while it was
/// idle fails and is recorded as `transport` (as wrk counts it), then the loop reconnects.
async fn connection_loop(
    options: &BlastOptions,
    busy: &BusyPoll,
    mut stream: Option<TcpStream>,
    started: Instant,
    deadline: Instant,
    shots: &mut Vec<Shot>,
) {
    let head_request = options.method == Method::HEAD;
    // One timer per connection instead of one per request: it is set for the first request's
    // limit, and when it fires before the current request's limit it is moved to that limit, so
    // it fires about once per `timeout` while requests are quick.
    let mut watchdog = pin!(tokio::time::sleep_until(started + options.timeout));
    let mut now = Instant::now();
    while now < deadline {
        let stream = match stream.take() {
            Some(stream) => stream,
            None => {
                let at = now;
                let connected =
                    tokio::time::timeout(options.timeout, TcpStream::connect(options.addr)).await;
                now = Instant::now();
                match connected {
                    Ok(Ok(stream)) => {
                        stream.set_nodelay(true).ok();
                        stream
                    }
                    failed => {
                        let outcome = match failed {
                            Err(_) => ShotOutcome::Timeout,
                            Ok(_) => ShotOutcome::Connect,
                        };
                        shots.push(shot(started, at, now, 0, outcome));
                        // A refused connection answers at once; do not spin on it.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        now = Instant::now();
                        continue;
                    }
                }
            }
        };
        let mut connection = wire::Connection::new(stream);
        while now < deadline {
            let at = now;
            let due = at + options.timeout;
            let answer = {
                let mut exchange = pin!(connection.exchange(&options.request, head_request));
                loop {
                    tokio::select! {
                        biased;
                        answer = &mut exchange => break Some(answer),
                        () = watchdog.as_mut() => {
                            if Instant::now() >= due {
                                break None;
                            }
                            watchdog.as_mut().reset(due);
                        }
                    }
                }
            };
            now = Instant::now();
            match answer {
                Some(Ok(answer)) => {
                    busy.answered(started, now);
                    shots.push(shot(started, at, now, answer.status, ShotOutcome::Answered));
                    if !answer.keep_alive {
                        break;
                    }
                }
                Some(Err(_)) => {
                    shots.push(shot(started, at, now, 0, ShotOutcome::Transport));
                    break;
                }
                None => {
                    shots.push(shot(started, at, now, 0, ShotOutcome::Timeout));
                    break;
                }
            }
        }
    }
}

/// Writes `blast.json` (the summary) and `attempts.csv` (one line per attempt) into `dir`.
pub fn write(dir: &std::path::Path, summary: &BlastSummary, run: &BlastRun) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(summary).expect("a summary serializes");
    std::fs::write(dir.join("blast.json"), json)?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("attempts.csv"))?);
    writeln!(csv, "start_us,latency_us,status,outcome")?;
    for shot in &run.shots {
        let outcome = match shot.outcome {
            ShotOutcome::Answered => "answered",
            ShotOutcome::Connect => "connect",
            ShotOutcome::Transport => "transport",
            ShotOutcome::Timeout => "timeout",
        };
        writeln!(
            csv,
            "{},{},{},{outcome}",
            shot.start_us, shot.latency_us, shot.status
        )?;
    }
    csv.flush()
}

fn shot(started: Instant, at: Instant, end: Instant, status: u16, outcome: ShotOutcome) -> Shot {
    let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    Shot {
        start_us: micros(at.saturating_duration_since(started)),
        latency_us: micros(end.saturating_duration_since(at)),
        status,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn options(url: &str) -> Result<BlastOptions, BlastError> {
        BlastOptions::new(
            url,
            "get",
            &["X-Test: 1".to_owned()],
            32,
            2,
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .await
    }

    #[tokio::test]
    async fn a_loopback_url_is_taken_apart_for_the_request() {
        let o = options("http://127.0.0.1:18080/health?x=1").await.unwrap();
        assert_eq!(o.addr, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(o.method, Method::GET);
        assert_eq!(
            &*o.request,
            b"GET /health?x=1 HTTP/1.1\r\nhost: 127.0.0.1:18080\r\nx-test: 1\r\n\r\n"
        );
        let o = options("http://localhost/").await.unwrap();
        assert_eq!(o.addr.port(), 80);
        assert!(
            o.request
                .starts_with(b"GET / HTTP/1.1\r\nhost: localhost\r\n")
        );
    }

    #[tokio::test]
    async fn bad_arguments_name_the_problem_and_the_fix() {
        let err = |r: Result<BlastOptions, BlastError>| r.unwrap_err().to_string();
        assert!(err(options("https://127.0.0.1/").await).contains("http://"));
        assert!(err(options("127.0.0.1:8080/health").await).contains("http://"));
        assert!(err(options("not a url").await).contains("full URL"));
        async fn with(
            connections: u32,
            duration: Duration,
            method: &str,
            header: &str,
        ) -> Result<BlastOptions, BlastError> {
            let headers = [header.to_owned()];
            let timeout = Duration::from_secs(1);
            let url = "http://127.0.0.1:1/";
            BlastOptions::new(url, method, &headers, connections, 1, duration, timeout).await
        }
        let ten = Duration::from_secs(10);
        assert!(err(with(0, ten, "GET", "A: b").await).contains("between 1 and"));
        assert!(err(with(1, Duration::ZERO, "GET", "A: b").await).contains("above zero"));
        assert!(err(with(1, ten * 400, "GET", "A: b").await).contains("at most 1h"));
        assert!(err(with(1, ten, "G T", "A: b").await).contains("not an HTTP method"));
        assert!(err(with(1, ten, "GET", "no colon").await).contains("\"Name: value\""));
    }

    #[test]
    fn a_shot_is_small_and_errors_are_classified() {
        assert_eq!(std::mem::size_of::<Shot>(), 12);
        let answered = |status| Shot {
            start_us: 0,
            latency_us: 1,
            status,
            outcome: ShotOutcome::Answered,
        };
        assert_eq!(answered(200).error_kind(), None);
        assert_eq!(answered(304).error_kind(), None);
        assert_eq!(answered(500).error_kind().as_deref(), Some("http_500"));
        assert_eq!(answered(404).error_kind().as_deref(), Some("http_404"));
        let timeout = Shot {
            outcome: ShotOutcome::Timeout,
            ..answered(0)
        };
        assert_eq!(timeout.error_kind().as_deref(), Some("timeout"));
    }
}
