//! A TCP proxy to put between the shop and Redis or PostgreSQL, which can slow the link down
//! (every chunk held back), cut every connection through it, or refuse connections for a
//! while, as a flaky network would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct LinkProxy {
    pub addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    accepting: JoinHandle<()>,
}

impl LinkProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("bound");
        let delay_ms = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0);
        let accepting = tokio::spawn({
            let (delay_ms, down, cuts) = (delay_ms.clone(), down.clone(), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if down.load(Ordering::Relaxed) {
                        // Closed at once: the peer sees its connection refused by the far end.
                        continue;
                    }
                    let (delay_ms, mut cut) = (delay_ms.clone(), cuts.subscribe());
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        // Dropping both halves of both sockets closes the link.
                        tokio::select! {
                            _ = pump(client_read, server_write, &delay_ms) => {}
                            _ = pump(server_read, client_write, &delay_ms) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            }
        });
        Self {
            addr,
            delay_ms,
            down,
            cuts,
            accepting,
        }
    }

    /// Every chunk, either way, waits this long before it is passed on.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// While down, every connection open is cut and new ones are closed at once.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
        if down {
            self.cut();
        }
    }

    /// Closes every connection open through the proxy; new ones are accepted.
    pub fn cut(&self) {
        self.cuts.send_modify(|cuts| *cuts += 1);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    delay_ms: &AtomicU64,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let delay = delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
