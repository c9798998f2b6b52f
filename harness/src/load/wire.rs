//! One HTTP/1.1 request at a time on a kept-alive connection, with nothing allocated per request:
//! `blast`'s hot loop.
//!
//! The request's bytes are built once ([`request_bytes`]). Each answer is read into one buffer
//! that the connection reuses; its head is parsed in place by httparse (the parser hyper itself
//! uses), and its body is framed the way RFC 9112 §6.3 says (no body for `HEAD`, 1xx, 204 and 304;
//! otherwise chunked, `Content-Length`, or until the server closes) and skipped, never stored.
//!
//! Why not hyper's client connection, which `blast` used before: per request it builds a
//! `Request` with its own header map, hands it to the connection future over a channel, and
//! builds a `Response` with another header map and a body channel. During a blast of `/health`
//! on two cores the harness then spent about as much CPU as the server it measured, which is what
//! held `blast` at oha's rate (G1 in docs/performance.md). wrk works the way this module does.

use hyper::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest response head accepted (status line and headers); a bigger one is refused as
/// malformed rather than buffered without end.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields a response head may have (hyper's limit is 100 too).
const MAX_HEADERS: usize = 100;
/// The buffer a connection starts with: room for any ordinary answer in one read.
const INITIAL_BUFFER: usize = 8 * 1024;

/// The bytes of a request without a body: request line, `Host`, the caller's headers (a `Host`
/// among them replaces ours, as with curl), and `Content-Length: 0` for methods whose requests
/// normally carry a body (POST, PUT, PATCH) unless the caller gave a length.
pub fn request_bytes(
    method: &str,
    target: &str,
    host: &HeaderValue,
    headers: &[(HeaderName, HeaderValue)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let given = |name: &HeaderName| headers.iter().any(|(n, _)| n == name);
    if !given(&hyper::header::HOST) {
        push_header(&mut out, hyper::header::HOST.as_str(), host);
    }
    for (name, value) in headers {
        push_header(&mut out, name.as_str(), value);
    }
    if matches!(method, "POST" | "PUT" | "PATCH") && !given(&hyper::header::CONTENT_LENGTH) {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &HeaderValue) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What came back: the status, and whether the connection may carry another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub keep_alive: bool,
}

/// Why no complete answer was read. The connection is unusable afterwards.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the connection closed before the answer was complete")]
    Closed,
    #[error("the answer is not HTTP/1.x: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A parsed response head, owned, so the buffer can be refilled while the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a head at the start of `bytes`: `Ok(None)` when more bytes are needed.
fn parse_head(bytes: &[u8], head_request: bool) -> Result<Option<Head>, WireError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(WireError::Malformed(err.to_string())),
    };
    let status = response.code.unwrap_or(0);
    // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 closes it unless told so.
    let mut keep_alive = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for field in response.headers.iter() {
        let value = std::str::from_utf8(field.value).unwrap_or("");
        if field.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides: chunked, or the body runs until the connection closes.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            let parsed: u64 = value.trim().parse().map_err(|_| {
                WireError::Malformed(format!("Content-Length {value:?} is not a length"))
            })?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err(WireError::Malformed(
                    "two different Content-Length values".to_owned(),
                ));
            }
            length = Some(parsed);
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(length)) => Framing::Length(length),
        }
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some(Head {
        len,
        status,
        framing,
        keep_alive,
    }))
}

/// A connection and its read buffer; the bytes not yet consumed are `buf[start..end]`.
pub struct Connection<S> {
    stream: S,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Connection {
            stream,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
        }
    }

    /// Sends `request` (from [`request_bytes`]) and reads its whole answer.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head_request: bool,
    ) -> Result<Answer, WireError> {
        // Nothing may arrive unasked; whatever did is not this request's answer.
        self.start = 0;
        self.end = 0;
        self.stream.write_all(request).await?;
        let head = loop {
            if self.start < self.end {
                if let Some(head) = parse_head(&self.buf[self.start..self.end], head_request)? {
                    self.start += head.len;
                    // An interim answer (100 Continue, 103 Early Hints) precedes the real one.
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    break head;
                }
                if self.end - self.start >= MAX_HEAD_BYTES {
                    return Err(WireError::Malformed(format!(
                        "the response head is longer than {MAX_HEAD_BYTES} bytes"
                    )));
                }
            }
            self.fill_or_closed().await?;
        };
        match head.framing {
            Framing::None => {}
            Framing::Length(length) => self.skip(length).await?,
            Framing::Chunked => self.skip_chunks().await?,
            Framing::UntilClose => loop {
                // Discard what is buffered, so a long body does not grow the buffer.
                self.start = self.end;
                if self.fill().await? == 0 {
                    break;
                }
            },
        }
        Ok(Answer {
            status: head.status,
            keep_alive: head.keep_alive && head.status != 101,
        })
    }

    /// Reads more bytes after `end`, making room first (compacting, then growing); 0 at the end
    /// of the stream.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let read = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += read;
        Ok(read)
    }

    async fn fill_or_closed(&mut self) -> Result<(), WireError> {
        match self.fill().await? {
            0 => Err(WireError::Closed),
            _ => Ok(()),
        }
    }

    /// Consumes `count` bytes of body, reading as needed.
    async fn skip(&mut self, mut count: u64) -> Result<(), WireError> {
        loop {
            let here = ((self.end - self.start) as u64).min(count);
            self.start += here as usize;
            count -= here;
            if count == 0 {
                return Ok(());
            }
            self.fill_or_closed().await?;
        }
    }

    /// Consumes a chunked body: chunks until the last (size 0), then the trailer section.
    async fn skip_chunks(&mut self) -> Result<(), WireError> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.start += len;
                        break size;
                    }
                    Ok(httparse::Status::Partial) => self.fill_or_closed().await?,
                    Err(_) => {
                        return Err(WireError::Malformed("a bad chunk size line".to_owned()));
                    }
                }
            };
            if size == 0 {
                break;
            }
            self.skip(size).await?;
            while self.end - self.start < 2 {
                self.fill_or_closed().await?;
            }
            if &self.buf[self.start..self.start + 2] != b"\r\n" {
                return Err(WireError::Malformed(
                    "a chunk does not end with CRLF".to_owned(),
                ));
            }
            self.start += 2;
        }
        // Trailer fields, one per line, until an empty line.
        loop {
            match self.buf[self.start..self.end]
                .windows(2)
                .position(|pair| pair == b"\r\n")
            {
                Some(0) => {
                    self.start += 2;
                    return Ok(());
                }
                Some(line) => self.start += line + 2,
                None => self.fill_or_closed().await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    fn header(name: &str, value: &str) -> (HeaderName, HeaderValue) {
        (name.parse().unwrap(), value.parse().unwrap())
    }

    #[test]
    fn a_request_is_built_once_with_host_and_the_callers_headers() {
        let host = HeaderValue::from_static("127.0.0.1:8080");
        let get = request_bytes("GET", "/health?x=1", &host, &[header("x-test", "1")]);
        assert_eq!(
            String::from_utf8(get).unwrap(),
            "GET /health?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-test: 1\r\n\r\n"
        );
        let post = request_bytes("POST", "/", &host, &[header("Host", "shop.test")]);
        assert_eq!(
            String::from_utf8(post).unwrap(),
            "POST / HTTP/1.1\r\nhost: shop.test\r\ncontent-length: 0\r\n\r\n",
            "the caller's Host replaces ours, and a POST says it has no body"
        );
    }

    /// Sends `request` over an in-memory pipe whose other end answers with `reply`, written in
    /// pieces of `piece` bytes (so every parse state meets a partial read), then closes if asked.
    async fn exchange_with(
        reply: &'static [u8],
        piece: usize,
        close: bool,
        head_request: bool,
    ) -> (Result<Answer, WireError>, Vec<u8>) {
        let (client, mut server) = duplex(64);
        let serve = tokio::spawn(async move {
            let mut seen = vec![0; 256];
            let n = server.read(&mut seen).await.unwrap();
            for part in reply.chunks(piece) {
                server.write_all(part).await.unwrap();
                tokio::task::yield_now().await;
            }
            if !close {
                // Keep the connection open until the client has read its answer.
                let mut rest = [0u8; 1];
                let _ = server.read(&mut rest).await;
            }
            seen.truncate(n);
            seen
        });
        let mut connection = Connection::new(client);
        let answer = connection
            .exchange(b"GET / HTTP/1.1\r\n\r\n", head_request)
            .await;
        drop(connection);
        (answer, serve.await.unwrap())
    }

    async fn answer(reply: &'static [u8]) -> Answer {
        for piece in [1, 3, 7, 64, 4096] {
            let (got, seen) = exchange_with(reply, piece, false, false).await;
            assert_eq!(seen, b"GET / HTTP/1.1\r\n\r\n");
            let closed = exchange_with(reply, piece, true, false).await.0;
            let got = got.unwrap_or_else(|e| panic!("pieces of {piece}: {e}"));
            assert_eq!(got, closed.unwrap(), "pieces of {piece}");
        }
        exchange_with(reply, 4096, false, false).await.0.unwrap()
    }

    #[tokio::test]
    async fn bodies_are_framed_by_length_or_chunks_in_any_number_of_reads() {
        let by_length = answer(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        assert_eq!(
            by_length,
            Answer {
                status: 200,
                keep_alive: true
            }
        );
        let chunked = answer(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
        .await;
        assert_eq!(
            chunked,
            Answer {
                status: 503,
                keep_alive: true
            }
        );
        let interim_first =
            answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").await;
        assert_eq!(interim_first.status, 204);
    }

    #[tokio::test]
    async fn the_server_says_when_the_connection_ends() {
        let (told, _) = exchange_with(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            4096,
            false,
            false,
        )
        .await;
        assert!(!told.unwrap().keep_alive);
        let (old, _) = exchange_with(
            b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
            4096,
            false,
            false,
        )
        .await;
        assert!(!old.unwrap().keep_alive, "HTTP/1.0 closes unless told so");
        // No length and no chunks: the body runs until the server closes.
        let (until_close, _) =
            exchange_with(b"HTTP/1.1 200 OK\r\n\r\nall of this", 3, true, false).await;
        assert_eq!(
            until_close.unwrap(),
            Answer {
                status: 200,
                keep_alive: false
            }
        );
        // A HEAD answer announces a length it does not send.
        let (head, _) = exchange_with(
            b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n",
            4096,
            false,
            true,
        )
        .await;
        assert!(head.unwrap().keep_alive);
    }

    #[tokio::test]
    async fn cut_or_garbled_answers_are_errors_not_answers() {
        let cut = exchange_with(
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nhal",
            4096,
            true,
            false,
        );
        assert!(matches!(cut.await.0, Err(WireError::Closed)));
        let no_head = exchange_with(b"HTTP/1.1 200 O", 4096, true, false);
        assert!(matches!(no_head.await.0, Err(WireError::Closed)));
        let garbled = exchange_with(b"SMTP ready\r\n\r\n", 4096, false, false);
        assert!(matches!(garbled.await.0, Err(WireError::Malformed(_))));
        let bad_length = exchange_with(
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            4096,
            false,
            false,
        );
        assert!(matches!(bad_length.await.0, Err(WireError::Malformed(_))));
        let bad_chunk = exchange_with(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            4096,
            false,
            false,
        );
        assert!(matches!(bad_chunk.await.0, Err(WireError::Malformed(_))));
    }

    #[tokio::test]
    async fn a_head_longer_than_the_limit_is_refused_and_a_long_body_is_skipped() {
        static LONG_HEAD: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut head = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
            head.resize(MAX_HEAD_BYTES + 10, b'a');
            head
        });
        let (client, mut server) = duplex(1 << 20);
        tokio::spawn(async move {
            let mut seen = [0u8; 64];
            let _ = server.read(&mut seen).await;
            let _ = server.write_all(&LONG_HEAD).await;
            let mut rest = [0u8; 1];
            let _ = server.read(&mut rest).await;
        });
        let mut connection = Connection::new(client);
        let refused = connection.exchange(b"GET / HTTP/1.1\r\n\r\n", false).await;
        assert!(matches!(refused, Err(WireError::Malformed(m)) if m.contains("longer than")));

        const SECOND: &[u8] = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
        static LONG_BODY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut reply = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n".to_vec();
            reply.resize(reply.len() + 100_000, b'b');
            reply
        });
        let (client, mut server) = duplex(4096);
        tokio::spawn(async move {
            let mut seen = [0u8; 64];
            let _ = server.read(&mut seen).await;
            let _ = server.write_all(&LONG_BODY).await;
            let _ = server.read(&mut seen).await;
            let _ = server.write_all(SECOND).await;
            let _ = server.read(&mut seen).await;
        });
        let mut connection = Connection::new(client);
        let first = connection.exchange(b"GET / HTTP/1.1\r\n\r\n", false).await;
        assert_eq!(first.unwrap().status, 200);
        let second = connection.exchange(b"GET / HTTP/1.1\r\n\r\n", false).await;
        assert_eq!(
            second.unwrap().status,
            201,
            "the next answer starts after the body"
        );
    }
}
