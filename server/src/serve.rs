//! The accept loop: a limit on open connections, each connection's header-read and idle
//! deadlines, and a graceful shutdown. (The body deadline is where bodies are read, `http/body.rs`.)
//!
//! Without these, hostile or idle sockets starve real buyers: slowloris clients and idle
//! keep-alive connections were held forever, and past the open-file limit `accept` failed so
//! every new client hung, `/health` included (issue 13).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::http::{AppState, Route};
use crate::settings::{REFUSAL_SLOTS, Settings};

/// The connection settings, copied out of [`Settings`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl From<&Settings> for Limits {
    fn from(settings: &Settings) -> Self {
        Self {
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
            max_connections: settings.connection_limit(),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets every connection finish its
/// request in flight and returns once all are closed.
///
/// At the limit, a new connection is still accepted (up to [`REFUSAL_SLOTS`] of them at once),
/// served by [`crate::http::refusal_router`] — `/health` answers, everything else gets
/// `503 too_many_connections` — and closed after that one answer. Accepting instead of leaving
/// clients in the kernel's backlog makes the refusal quick and readable (a client in the
/// backlog waits, then times out without knowing why), keeps `/health` usable for a probe, and
/// keeps the file count below the limit, so `accept` never fails for lack of files. Past the
/// refusal slots too, a connection is closed at once.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let refusal_app = crate::http::refusal_router();
    // Every connection holds a receiver: `closed()` on the sender resolves once all are gone.
    let (stop, stopping) = watch::channel(false);
    // Connection tasks live in a set, so that if this future is dropped instead of shut down (a
    // crash, as a test kills one replica), its connections go with it instead of serving on.
    let mut connections = tokio::task::JoinSet::new();
    let mut at_limit = false;
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // Per-connection failures (reset before accept) and resource exhaustion
                    // alike: pause briefly rather than spin, then go on accepting.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                if at_limit {
                    at_limit = false;
                    tracing::info!("below the connection limit again; serving new connections");
                }
                let conn = serve_connection(
                    stream,
                    app.clone(),
                    Some(state.clone()),
                    true,
                    limits,
                    stopping.clone(),
                );
                connections.spawn(hold(permit, conn));
            }
            Err(_) => {
                if !at_limit {
                    at_limit = true;
                    tracing::warn!(
                        limit = limits.max_connections,
                        "connection limit reached; new connections are answered 503 \
                         too_many_connections until some close (raise --max-connections and the \
                         open-file limit if this is real demand)"
                    );
                }
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    let conn = serve_connection(
                        stream,
                        refusal_app.clone(),
                        None,
                        false,
                        limits,
                        stopping.clone(),
                    );
                    connections.spawn(hold(permit, conn));
                }
                // Otherwise `stream` is dropped here: closed at once.
            }
        }
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(true);
    stop.closed().await;
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn hold(permit: OwnedSemaphorePermit, conn: impl Future<Output = ()>) {
    conn.await;
    drop(permit);
}

/// Serves one connection with hyper's HTTP/1 server: its header-read timer, keep-alive when
/// `keep_alive`, and an idle watchdog hyper does not have. With `state`, buys are answered
/// without the router ([`crate::http::direct_buy`]); a refused connection has none.
async fn serve_connection(
    stream: TcpStream,
    app: Router,
    state: Option<AppState>,
    keep_alive: bool,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let app = app.clone();
            let busy = activity.begin_request();
            let route = match &state {
                Some(state) => crate::http::direct_buy(state, request),
                None => Route::ToRouter(request),
            };
            async move {
                let response = match route {
                    Route::Answered(answer) => answer.await,
                    Route::ToRouter(request) => match app.oneshot(request.map(Body::new)).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                };
                drop(busy);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(keep_alive);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let idle_at = activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    // Header timeouts, resets, malformed requests: the client's doing, not ours.
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(idle_at), if !closing => {
                if activity.is_idle(limits.idle_timeout) {
                    // Nothing in flight and nothing on the wire: dropping the connection closes
                    // it and loses nothing.
                    return;
                }
            }
            _ = stopping.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// What the idle watchdog needs to know about a connection: requests in flight, and when a byte
/// last moved either way.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    fn begin_request(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }
}

/// A request in flight; its end counts as activity.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting every read and write in its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
