//! A mail server on loopback that stores every message it accepts, for wishlist-alert runs. The
//! SMTP dialogue (commands, states, replies) is the `mailin` crate's; the socket loop is here, on
//! tokio, so the sink stops with the run. While "refusing" it answers each DATA command with 451
//! (a temporary failure: a correct sender retries later) and stores nothing. (Refused at DATA, not
//! after the message: mailin keeps a session whose end-of-data reply was an error in its data
//! state, so the client's next command would be read as message text and never answered.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One accepted message, with what identifies the alert in it.
#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    pub sale_id: Option<String>,
    pub user_id: Option<String>,
    pub message_id: Option<String>,
    pub recipients: Vec<String>,
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Shared {
    received: Mutex<Vec<ReceivedEmail>>,
    refusing: AtomicBool,
    refused: AtomicU64,
}

/// The running sink.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let for_task = shared.clone();
        let task = tokio::spawn(async move {
            let builder = SessionBuilder::new("flashsale-sink");
            while let Ok((stream, _)) = listener.accept().await {
                let handler = Collector {
                    shared: for_task.clone(),
                    data: Vec::new(),
                    recipients: Vec::new(),
                };
                tokio::spawn(serve(stream, builder.clone(), handler));
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `smtp://127.0.0.1:<port>`, for the server's `--smtp-url`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Messages answered 451 while refusing.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    pub fn received_count(&self) -> usize {
        self.shared.received.lock().expect("sink store").len()
    }

    pub fn received(&self) -> Vec<ReceivedEmail> {
        self.shared.received.lock().expect("sink store").clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, builder: SessionBuilder, handler: Collector) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    // One small reply per command: without this, Nagle's algorithm holds a reply back until the
    // client's delayed ACK of the previous one (tens of milliseconds per message).
    let _ = stream.set_nodelay(true);
    let mut session = builder.build(peer.ip(), handler);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if let Ok(greeting) = session.greeting().buffer() {
        if write.write_all(&greeting).await.is_err() {
            return;
        }
    }
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => {}
            Action::Reply | Action::Close | Action::UpgradeTls => {
                let Ok(bytes) = response.buffer() else { return };
                if write.write_all(&bytes).await.is_err() || response.action != Action::Reply {
                    return;
                }
            }
        }
    }
}

struct Collector {
    shared: Arc<Shared>,
    data: Vec<u8>,
    recipients: Vec<String>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        if self.shared.refusing.load(Ordering::SeqCst) {
            self.shared.refused.fetch_add(1, Ordering::SeqCst);
            return Response::custom(451, "4.3.0 the sink is refusing mail for a while".into());
        }
        self.data.clear();
        self.recipients = to.to_vec();
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let headers = parse_headers(&self.data);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let email = ReceivedEmail {
            sale_id: header("X-Flashsale-Sale"),
            user_id: header("X-Flashsale-User"),
            message_id: header("Message-ID"),
            recipients: std::mem::take(&mut self.recipients),
            at: Instant::now(),
        };
        self.shared.received.lock().expect("sink store").push(email);
        mailin::response::OK
    }
}

/// The header section of a message (up to the first empty line), folded lines unfolded.
pub fn parse_headers(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_up_to_the_body_and_unfolded() {
        let message = b"From: a@b\r\nX-Flashsale-User: u-1\r\nSubject: a long\r\n  subject\r\n\r\nX-Flashsale-Sale: not a header\r\n";
        let headers = parse_headers(message);
        assert_eq!(
            headers,
            vec![
                ("From".to_owned(), "a@b".to_owned()),
                ("X-Flashsale-User".to_owned(), "u-1".to_owned()),
                ("Subject".to_owned(), "a long subject".to_owned()),
            ]
        );
    }
}
