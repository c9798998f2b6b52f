//! In-process TCP fault proxy.
//!
//! [`FaultProxy`] listens on `127.0.0.1:0` and forwards every accepted connection to an upstream
//! address (Redis, PostgreSQL, ...). The harness puts it between the server under test and its
//! dependency and switches the [`LinkFault`] at run time to inject network faults:
//!
//! | fault (docs/faults.md) | how |
//! | --- | --- |
//! | NEM-latency | [`LinkFault::Latency`] |
//! | NEM-blackhole (both directions) | [`LinkFault::Blackhole`] |
//! | NEM-blackhole (replies only) | [`LinkFault::BlackholeReplies`] |
//! | NEM-reset | [`LinkFault::Reset`] (set it, then set [`LinkFault::None`] again) |
//! | NEM-pg-down | [`LinkFault::Reset`] held for the whole window |
//!
//! Design:
//! - The current fault lives in a `tokio::sync::watch` channel. Every connection task selects on
//!   its byte pumps *and* on fault changes, so [`FaultProxy::set_fault`] acts immediately on
//!   existing connections, even on one whose pumps are blocked in `read`.
//! - Each direction of a connection is a reader and a writer joined by a bounded queue of
//!   timestamped chunks. The reader stamps every chunk with `read time + latency` and the writer
//!   sleeps until that instant. Latency therefore delays every chunk without dividing throughput by
//!   the latency, and order within a direction is preserved. When the queue is full (64 chunks)
//!   the reader stops reading, so a slow peer gets TCP backpressure rather than unbounded memory.
//! - Drop faults are decided per chunk: when the chunk is read and again when it is due to be
//!   written. Bytes dropped during a blackhole stay dropped; bytes read after the fault is lifted
//!   flow normally.
//! - A half-close (FIN) is always forwarded, even during a blackhole, so a client that gives up
//!   and closes does not leave an upstream connection (and a proxy task) behind forever.
//! - A reset is never missed: every `set_fault(LinkFault::Reset)` bumps a generation counter, and
//!   a connection is reset if the generation moved since it was accepted, so setting `Reset` and
//!   then `None` straight away still resets every connection that existed at the time.
//! - Resets use `SO_LINGER 0` then close, so the peer sees `ECONNRESET` rather than a clean EOF.
//!   Both sides of a connection are reset.
//! - An I/O error on either side of a connection aborts (RSTs) both sides.
//! - If the upstream cannot be reached, the client connection is closed at once.
//! - Dropping the [`FaultProxy`] stops the accept loop (the listening socket is closed) and closes
//!   every proxied connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Size of the buffer for one read.
const CHUNK_SIZE: usize = 16 * 1024;
/// How many chunks may be in flight (read, waiting for their due time) per direction.
const QUEUE_CHUNKS: usize = 64;
/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The fault applied to the link between clients and the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Forward everything.
    None,
    /// Delay every chunk in both directions by this much (each direction delays independently;
    /// order within a direction is preserved).
    Latency(Duration),
    /// Drop all bytes in both directions; connections stay open; new connections are accepted
    /// but see nothing.
    Blackhole,
    /// Forward client->upstream, drop upstream->client (the command runs, the reply is lost).
    BlackholeReplies,
    /// Every existing connection is reset (RST: SO_LINGER 0 then close) and new ones are reset at
    /// accept, for as long as this is set.
    Reset,
}

impl LinkFault {
    /// Whether a chunk travelling in `direction` is dropped under this fault.
    fn drops(self, direction: Direction) -> bool {
        match self {
            LinkFault::None | LinkFault::Latency(_) => false,
            LinkFault::Blackhole | LinkFault::Reset => true,
            LinkFault::BlackholeReplies => direction == Direction::ToClient,
        }
    }

    /// The delay added to a chunk read under this fault.
    fn latency(self) -> Duration {
        match self {
            LinkFault::Latency(latency) => latency,
            _ => Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToUpstream,
    ToClient,
}

/// The value in the fault watch channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FaultState {
    fault: LinkFault,
    /// Incremented on every `set_fault(LinkFault::Reset)`, so a short Reset pulse is not missed
    /// by a connection task that only looks after it has been cleared.
    resets: u64,
}

/// State shared by the handle, the accept loop and the connection tasks.
#[derive(Debug)]
struct Shared {
    fault: watch::Sender<FaultState>,
    upstream: watch::Sender<SocketAddr>,
    connections_total: AtomicU64,
    connections_open: AtomicU64,
}

/// Decrements `connections_open` when a connection task ends, however it ends.
struct OpenGuard(Arc<Shared>);

impl OpenGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.connections_open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(shared)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TCP proxy on `127.0.0.1` that forwards to an upstream and injects [`LinkFault`]s.
///
/// Dropping it stops the accept loop and closes all proxied connections. It must be started
/// inside a Tokio runtime; it may be dropped anywhere.
pub struct FaultProxy {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("local_addr", &self.local_addr)
            .field("upstream", &*self.shared.upstream.borrow())
            .field("fault", &self.fault())
            .field("connections_total", &self.connections_total())
            .field("connections_open", &self.connections_open())
            .finish()
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0, forwards to `upstream` (e.g. "127.0.0.1:6379").
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        Self::start_on(
            upstream,
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)),
        )
        .await
    }

    /// Starts a proxy listening on `listen` (a fixed local port a service is configured with).
    pub async fn start_on(upstream: SocketAddr, listen: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            fault: watch::Sender::new(FaultState {
                fault: LinkFault::None,
                resets: 0,
            }),
            upstream: watch::Sender::new(upstream),
            connections_total: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        debug!(%local_addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            shared,
            local_addr,
            shutdown,
            accept_task,
        })
    }

    /// The address clients should connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets the fault. Takes effect immediately, for existing connections too.
    pub fn set_fault(&self, fault: LinkFault) {
        let mut previous = fault;
        self.shared.fault.send_modify(|state| {
            previous = state.fault;
            state.fault = fault;
            if fault == LinkFault::Reset {
                state.resets += 1;
            }
        });
        if previous != fault {
            debug!(local_addr = %self.local_addr, ?previous, ?fault, "fault proxy: fault changed");
        }
    }

    /// The fault currently applied.
    pub fn fault(&self) -> LinkFault {
        self.shared.fault.borrow().fault
    }

    /// Connections accepted since start (including those reset at accept).
    pub fn connections_total(&self) -> u64 {
        self.shared.connections_total.load(Ordering::SeqCst)
    }

    /// Connections currently being proxied (accepted and not yet closed).
    pub fn connections_open(&self) -> u64 {
        self.shared.connections_open.load(Ordering::SeqCst)
    }

    /// Future connections go to `upstream` (e.g. Redis restarted on a new port). Existing
    /// connections keep their upstream.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.upstream.send_replace(upstream);
        debug!(local_addr = %self.local_addr, %upstream, "fault proxy: upstream changed");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Connection tasks watch this flag; the accept task owns the listener, so aborting it
        // closes the listening socket.
        self.shutdown.send_replace(true);
        self.accept_task.abort();
        debug!(local_addr = %self.local_addr, "fault proxy stopped");
    }
}

/// Resolves once the proxy is shutting down (flag set, or the handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// Resolves with `true` once a reset is due for a connection accepted at reset generation
/// `accepted_at` (Reset is set, or was set at any point since), or `false` if the proxy is gone.
async fn reset_requested(fault: &mut watch::Receiver<FaultState>, accepted_at: u64) -> bool {
    fault
        .wait_for(|state| state.fault == LinkFault::Reset || state.resets != accepted_at)
        .await
        .is_ok()
}

/// Resets a connection: SO_LINGER 0 then close sends an RST instead of a FIN.
fn reset(stream: TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        debug!(%error, "fault proxy: set_zero_linger failed; closing normally");
    }
    drop(stream);
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (client, peer) = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "fault proxy: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let id = shared.connections_total.fetch_add(1, Ordering::SeqCst) + 1;
        let state = *shared.fault.borrow();
        if state.fault == LinkFault::Reset {
            debug!(id, %peer, "fault proxy: resetting new connection");
            reset(client);
            continue;
        }
        let guard = OpenGuard::new(Arc::clone(&shared));
        let upstream = *shared.upstream.borrow();
        let fault = shared.fault.subscribe();
        tokio::spawn(handle_connection(
            client,
            upstream,
            (fault, state.resets),
            shutdown.clone(),
            guard,
            id,
        ));
    }
}

/// How a proxied connection ended.
enum Outcome {
    /// Both directions reached EOF.
    Closed,
    /// The proxy was dropped.
    Shutdown,
    /// `LinkFault::Reset` was set.
    Reset,
    /// I/O error on one side.
    Error(io::Error),
}

async fn handle_connection(
    mut client: TcpStream,
    upstream_addr: SocketAddr,
    (mut fault, accepted_at): (watch::Receiver<FaultState>, u64),
    mut shutdown: watch::Receiver<bool>,
    _guard: OpenGuard,
    id: u64,
) {
    // Connect upstream, unless the proxy stops or Reset is set meanwhile.
    let connected = tokio::select! {
        biased;
        () = stopped(&mut shutdown) => return,
        is_reset = reset_requested(&mut fault, accepted_at) => {
            if is_reset {
                debug!(id, "fault proxy: reset while connecting upstream");
                reset(client);
            }
            return;
        }
        connected = TcpStream::connect(upstream_addr) => connected,
    };
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(error) => {
            debug!(id, %upstream_addr, %error, "fault proxy: upstream connect failed; closing client");
            return;
        }
    };
    for stream in [&client, &upstream] {
        if let Err(error) = stream.set_nodelay(true) {
            debug!(id, %error, "fault proxy: set_nodelay failed");
        }
    }
    debug!(id, %upstream_addr, "fault proxy: connection open");

    let pump_fault = fault.clone();
    let outcome = tokio::select! {
        biased;
        () = stopped(&mut shutdown) => Outcome::Shutdown,
        is_reset = reset_requested(&mut fault, accepted_at) => {
            if is_reset { Outcome::Reset } else { Outcome::Shutdown }
        }
        pumped = pump_both(&mut client, &mut upstream, &pump_fault) => match pumped {
            Ok(()) => Outcome::Closed,
            Err(error) => Outcome::Error(error),
        },
    };
    match outcome {
        Outcome::Closed => debug!(id, "fault proxy: connection closed"),
        Outcome::Shutdown => debug!(id, "fault proxy: connection closed by shutdown"),
        Outcome::Reset => {
            debug!(id, "fault proxy: resetting connection");
            reset(client);
            reset(upstream);
        }
        Outcome::Error(error) => {
            debug!(id, %error, "fault proxy: I/O error; resetting both sides");
            reset(client);
            reset(upstream);
        }
    }
}

/// Pumps both directions until both have reached EOF, or either fails.
async fn pump_both(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    fault: &watch::Receiver<FaultState>,
) -> io::Result<()> {
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    tokio::try_join!(
        pump(
            &mut client_read,
            &mut upstream_write,
            Direction::ToUpstream,
            fault
        ),
        pump(
            &mut upstream_read,
            &mut client_write,
            Direction::ToClient,
            fault
        ),
    )?;
    Ok(())
}

/// Pumps one direction: a reader stamps chunks with their due time and queues them, a writer
/// writes each chunk once it is due. On EOF the queue is drained and the write side shut down.
async fn pump<R, W>(
    reader: &mut R,
    writer: &mut W,
    direction: Direction,
    fault: &watch::Receiver<FaultState>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let read_side = async move {
        let mut buf = vec![0u8; CHUNK_SIZE];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let current = fault.borrow().fault;
            if current.drops(direction) {
                continue;
            }
            let due = Instant::now() + current.latency();
            if tx.send((due, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
        // Closing the queue lets the writer drain it and then forward the EOF.
        drop(tx);
        Ok::<(), io::Error>(())
    };
    let write_side = async move {
        while let Some((due, chunk)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            // A blackhole set while the chunk was delayed drops it too.
            let current = fault.borrow().fault;
            if current.drops(direction) {
                continue;
            }
            writer.write_all(&chunk).await?;
        }
        // Forward the half-close. The peer may already be gone; that is not an error here.
        let _ = writer.shutdown().await;
        Ok::<(), io::Error>(())
    };
    tokio::try_join!(read_side, write_side)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Generous bound for anything that should happen "promptly".
    const PROMPT: Duration = Duration::from_secs(2);
    /// How long we listen to conclude that nothing arrives.
    const SILENCE: Duration = Duration::from_millis(300);

    /// An upstream that echoes what it receives and counts the bytes received.
    struct Upstream {
        addr: SocketAddr,
        received: Arc<AtomicUsize>,
        accepted: Arc<AtomicUsize>,
    }

    impl Upstream {
        async fn start(echo: bool) -> Upstream {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let received = Arc::new(AtomicUsize::new(0));
            let accepted = Arc::new(AtomicUsize::new(0));
            let (rx_count, acc_count) = (Arc::clone(&received), Arc::clone(&accepted));
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    acc_count.fetch_add(1, Ordering::SeqCst);
                    let rx_count = Arc::clone(&rx_count);
                    tokio::spawn(async move {
                        let mut buf = [0u8; 4096];
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    rx_count.fetch_add(n, Ordering::SeqCst);
                                    if echo && stream.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                    });
                }
            });
            Upstream {
                addr,
                received,
                accepted,
            }
        }

        fn received(&self) -> usize {
            self.received.load(Ordering::SeqCst)
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    async fn connect(proxy: &FaultProxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Reads exactly `len` bytes, failing the test if they don't arrive within `PROMPT`.
    async fn read_exact_prompt(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        tokio::time::timeout(PROMPT, stream.read_exact(&mut buf))
            .await
            .expect("timed out waiting for data")
            .expect("read failed");
        buf
    }

    /// Writes `msg` and asserts that the same bytes come back.
    async fn assert_echo(stream: &mut TcpStream, msg: &[u8]) {
        stream.write_all(msg).await.unwrap();
        assert_eq!(read_exact_prompt(stream, msg.len()).await, msg);
    }

    /// Asserts that nothing arrives for `SILENCE` (and the connection is not closed either).
    async fn assert_silence(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(SILENCE, stream.read(&mut buf)).await {
            Err(_elapsed) => {}
            Ok(Ok(0)) => panic!("connection closed, expected it to stay open and silent"),
            Ok(Ok(n)) => panic!("received {n} bytes, expected silence: {:?}", &buf[..n]),
            Ok(Err(error)) => panic!("read error {error}, expected silence"),
        }
    }

    /// Asserts that the connection is reset (ECONNRESET) within `PROMPT`.
    async fn assert_reset(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(PROMPT, stream.read(&mut buf)).await {
            Err(_elapsed) => panic!("connection was not reset within {PROMPT:?}"),
            Ok(Ok(n)) => panic!("read returned Ok({n}), expected a reset"),
            Ok(Err(error)) => assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{error}"),
        }
    }

    /// Asserts that the connection is closed (EOF or error) within `PROMPT`.
    async fn assert_closed(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(PROMPT, stream.read(&mut buf)).await {
            Err(_elapsed) => panic!("connection was not closed within {PROMPT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("received {n} bytes, expected the connection to be closed"),
        }
    }

    /// Polls `condition` until it holds, failing the test after `PROMPT`.
    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + PROMPT;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn none_forwards_and_counts() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        assert_eq!(proxy.fault(), LinkFault::None);
        assert_eq!(proxy.connections_total(), 0);

        let mut a = connect(&proxy).await;
        assert_echo(&mut a, b"hello").await;
        let mut b = connect(&proxy).await;
        assert_echo(&mut b, b"world").await;
        assert_echo(&mut a, b"again").await;
        assert_eq!(proxy.connections_total(), 2);
        assert_eq!(proxy.connections_open(), 2);
        assert_eq!(upstream.received(), 15);

        // A larger payload goes through intact and in order.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut read_half, mut write_half) = b.split();
        let (_, echoed) = tokio::join!(write_half.write_all(&big), async {
            let mut buf = vec![0u8; big.len()];
            tokio::time::timeout(PROMPT, read_half.read_exact(&mut buf))
                .await
                .expect("timed out")
                .expect("read failed");
            buf
        });
        assert!(echoed == big, "large payload corrupted");

        drop(a);
        drop(b);
        eventually("connections_open == 0", || proxy.connections_open() == 0).await;
        assert_eq!(proxy.connections_total(), 2);
        assert!(format!("{proxy:?}").contains("FaultProxy"));
    }

    #[tokio::test]
    async fn half_close_is_forwarded() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let mut client = connect(&proxy).await;
        client.write_all(b"bye").await.unwrap();
        client.shutdown().await.unwrap();
        // The echo upstream replies, sees EOF and closes; the proxy forwards both.
        assert_eq!(read_exact_prompt(&mut client, 3).await, b"bye");
        assert_closed(&mut client).await;
        eventually("connections_open == 0", || proxy.connections_open() == 0).await;
    }

    #[tokio::test]
    async fn latency_delays_both_directions() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let mut client = connect(&proxy).await;
        assert_echo(&mut client, b"warm-up").await;

        let latency = Duration::from_millis(200);
        proxy.set_fault(LinkFault::Latency(latency));
        assert_eq!(proxy.fault(), LinkFault::Latency(latency));
        let started = Instant::now();
        assert_echo(&mut client, b"slow").await;
        let elapsed = started.elapsed();
        // One delay on the way there, one on the way back.
        assert!(elapsed >= 2 * latency, "round trip took {elapsed:?}");
        assert!(
            elapsed < Duration::from_secs(2),
            "round trip took {elapsed:?}"
        );

        proxy.set_fault(LinkFault::None);
        let started = Instant::now();
        assert_echo(&mut client, b"fast").await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < latency,
            "round trip after clearing latency took {elapsed:?}"
        );
    }

    #[tokio::test]
    async fn latency_does_not_serialise_chunks() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let latency = Duration::from_millis(300);
        proxy.set_fault(LinkFault::Latency(latency));
        let mut client = connect(&proxy).await;

        // Eight chunks sent 50 ms apart. Each one's round trip should be ~2 * latency. A proxy
        // that serialises read/sleep/write leaves chunks waiting in the socket while it sleeps,
        // adding up to one more latency per direction (round trips of ~900 ms here).
        const CHUNKS: usize = 8;
        const CHUNK_LEN: usize = 100;
        let chunks: Vec<Vec<u8>> = (0..CHUNKS as u8)
            .map(|i| vec![b'a' + i; CHUNK_LEN])
            .collect();
        let (mut client_read, mut client_write) = client.split();
        let send = async {
            let mut sent_at = Vec::new();
            for chunk in &chunks {
                sent_at.push(Instant::now());
                client_write.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent_at
        };
        let receive = async {
            let mut received = Vec::new();
            let mut arrived_at = Vec::new();
            let mut buf = [0u8; 4096];
            while received.len() < CHUNKS * CHUNK_LEN {
                let n = tokio::time::timeout(Duration::from_secs(5), client_read.read(&mut buf))
                    .await
                    .expect("timed out")
                    .unwrap();
                assert!(n > 0, "unexpected EOF");
                received.extend_from_slice(&buf[..n]);
                while arrived_at.len() < received.len() / CHUNK_LEN {
                    arrived_at.push(Instant::now());
                }
            }
            (received, arrived_at)
        };
        let (sent_at, (received, arrived_at)) = tokio::join!(send, receive);
        assert_eq!(
            received,
            chunks.concat(),
            "order within a direction must be preserved"
        );
        let round_trips: Vec<Duration> = sent_at
            .iter()
            .zip(&arrived_at)
            .map(|(sent, arrived)| *arrived - *sent)
            .collect();
        for rtt in &round_trips {
            assert!(*rtt >= 2 * latency, "round trips {round_trips:?}");
            assert!(
                *rtt < 2 * latency + Duration::from_millis(200),
                "chunks were serialised: round trips {round_trips:?}"
            );
        }
    }

    #[tokio::test]
    async fn blackhole_drops_both_directions_and_recovers() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let mut client = connect(&proxy).await;
        assert_echo(&mut client, b"before").await;
        let received_before = upstream.received();

        proxy.set_fault(LinkFault::Blackhole);
        client.write_all(b"lost").await.unwrap();
        assert_silence(&mut client).await;
        assert_eq!(
            upstream.received(),
            received_before,
            "upstream got blackholed bytes"
        );
        assert_eq!(proxy.connections_open(), 1, "connection must stay open");

        // A new connection is accepted but sees nothing either.
        let mut late = connect(&proxy).await;
        late.write_all(b"late").await.unwrap();
        assert_silence(&mut late).await;
        assert_eq!(proxy.connections_total(), 2);

        proxy.set_fault(LinkFault::None);
        // Bytes dropped during the blackhole stay dropped: only "after" comes back.
        assert_echo(&mut client, b"after").await;
        assert_echo(&mut late, b"late2").await;
        assert_eq!(upstream.received(), received_before + 5 + 5);
    }

    #[tokio::test]
    async fn blackhole_replies_forwards_requests_only() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let mut client = connect(&proxy).await;
        assert_echo(&mut client, b"ping").await;
        assert_eq!(upstream.received(), 4);

        proxy.set_fault(LinkFault::BlackholeReplies);
        client.write_all(b"EVALSHA").await.unwrap();
        eventually("upstream received the request", || {
            upstream.received() == 4 + 7
        })
        .await;
        // The (echo) upstream answered, but the answer is lost.
        assert_silence(&mut client).await;

        proxy.set_fault(LinkFault::None);
        assert_echo(&mut client, b"pong").await;
    }

    #[tokio::test]
    async fn blackhole_replies_with_recording_upstream() {
        // An upstream that never answers: the client must still see nothing, and the upstream
        // must see everything.
        let upstream = Upstream::start(false).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        proxy.set_fault(LinkFault::BlackholeReplies);
        let mut client = connect(&proxy).await;
        client.write_all(&[7u8; 1000]).await.unwrap();
        eventually("upstream received 1000 bytes", || {
            upstream.received() == 1000
        })
        .await;
        assert_silence(&mut client).await;
    }

    #[tokio::test]
    async fn reset_existing_and_new_connections() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let mut existing = connect(&proxy).await;
        assert_echo(&mut existing, b"hi").await;

        // The proxy's pumps are blocked in read: the reset must still be prompt.
        let started = Instant::now();
        proxy.set_fault(LinkFault::Reset);
        assert_reset(&mut existing).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "reset took {:?}",
            started.elapsed()
        );
        eventually("connections_open == 0", || proxy.connections_open() == 0).await;

        // New connections are reset at accept, without reaching the upstream.
        let accepted_before = upstream.accepted();
        let mut new = connect(&proxy).await;
        assert_reset(&mut new).await;
        assert_eq!(proxy.connections_total(), 2);
        assert_eq!(upstream.accepted(), accepted_before);

        proxy.set_fault(LinkFault::None);
        let mut after = connect(&proxy).await;
        assert_echo(&mut after, b"back").await;
        assert_eq!(proxy.connections_total(), 3);
    }

    #[tokio::test]
    async fn reset_pulse_is_not_missed() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let mut existing = connect(&proxy).await;
        assert_echo(&mut existing, b"hi").await;

        // Set and clear without yielding: the connection task only sees `None`, yet must reset.
        proxy.set_fault(LinkFault::Reset);
        proxy.set_fault(LinkFault::None);
        assert_reset(&mut existing).await;

        let mut after = connect(&proxy).await;
        assert_echo(&mut after, b"back").await;
        assert_silence_then_open(&mut after).await;
    }

    /// Asserts that a healthy connection is not reset later by a stale reset generation.
    async fn assert_silence_then_open(stream: &mut TcpStream) {
        assert_silence(stream).await;
        assert_echo(stream, b"still").await;
    }

    #[tokio::test]
    async fn unreachable_upstream_closes_client() {
        let closed_port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let proxy = FaultProxy::start(closed_port).await.unwrap();
        let mut client = connect(&proxy).await;
        assert_closed(&mut client).await;
        eventually("connections_open == 0", || proxy.connections_open() == 0).await;
        assert_eq!(proxy.connections_total(), 1);
    }

    #[tokio::test]
    async fn set_upstream_affects_new_connections_only() {
        let first = Upstream::start(true).await;
        let second = Upstream::start(true).await;
        let proxy = FaultProxy::start(first.addr).await.unwrap();
        let mut old = connect(&proxy).await;
        assert_echo(&mut old, b"one").await;

        proxy.set_upstream(second.addr);
        let mut new = connect(&proxy).await;
        assert_echo(&mut new, b"two!").await;
        assert_eq!(second.received(), 4);
        assert_eq!(second.accepted(), 1);

        // The existing connection keeps its upstream.
        assert_echo(&mut old, b"three").await;
        assert_eq!(first.received(), 3 + 5);
        assert_eq!(first.accepted(), 1);
    }

    #[tokio::test]
    async fn drop_stops_listener_and_closes_connections() {
        let upstream = Upstream::start(true).await;
        let proxy = FaultProxy::start(upstream.addr).await.unwrap();
        let addr = proxy.local_addr();
        let mut existing = connect(&proxy).await;
        assert_echo(&mut existing, b"alive").await;

        drop(proxy);
        assert_closed(&mut existing).await;

        // A connect either fails outright or the connection is closed promptly.
        match tokio::time::timeout(PROMPT, TcpStream::connect(addr)).await {
            Err(_elapsed) => panic!("connect to a dropped proxy hung"),
            Ok(Err(_refused)) => {}
            Ok(Ok(mut stream)) => assert_closed(&mut stream).await,
        }
    }
}
