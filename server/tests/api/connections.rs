//! Hostile and idle connections cannot starve real buyers: slowloris heads, withheld bodies and
//! idle keep-alive connections are closed within their timeouts, and at the connection limit new
//! connections are refused at once (with `/health` still answering) while connected buyers keep
//! buying. Timeouts here are short (300 ms) and the bounds on them generous (5×), so a loaded
//! machine only makes the tests slower, never wrong.

use std::time::{Duration, Instant};

use flashsale_server::InventoryStrategy;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app_with};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(60);
/// How late a close or an answer may come, in multiples of its timeout, on a loaded machine.
const SLACK: u32 = 5;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body) from `stream`: its status and body.
async fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).to_string();
                return (status, body);
            }
        }
        let n = stream.read(&mut buf).await.expect("an answer");
        assert!(n > 0, "closed before a whole answer: {raw:?}");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Sends `request` on a connection and reads its answer.
async fn exchange(stream: &mut TcpStream, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    read_answer(stream).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

fn buy_request(sale: Uuid, key: &str, buyer: &str) -> String {
    let body = json!({"buyer_id": buyer, "quantity": 1}).to_string();
    format!(
        "POST /sales/{sale}/orders HTTP/1.1\r\nHost: test\r\nIdempotency-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn code(body: &str) -> String {
    let value: Value = serde_json::from_str(body).expect("a JSON error");
    value["error"]["code"].as_str().unwrap().to_owned()
}

/// Waits until the server closes `stream` (EOF or reset), discarding anything it sends; the
/// time it took.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_within_the_header_timeout_while_a_buyer_buys() {
    let app = spawn_app_with(InventoryStrategy::Redis, |s| {
        s.header_read_timeout = SHORT;
        s.idle_timeout = LONG;
    })
    .await;
    let sale = app.live_sale(Some(10)).await;
    let target = addr(&app);
    let head =
        b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let attackers: Vec<_> = (0..500)
        .map(|_| {
            let target = target.clone();
            tokio::spawn(async move {
                let stream = TcpStream::connect(&target).await.expect("connects");
                let (mut read, mut write) = stream.into_split();
                let started = Instant::now();
                // One header byte at a time, faster than the timeout: each byte alone would
                // keep a per-read timeout from ever firing.
                let trickle = tokio::spawn(async move {
                    for byte in head.iter() {
                        if write.write_all(&[*byte]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
                let mut buf = [0u8; 1024];
                let closed = tokio::time::timeout(LONG, async {
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => return started.elapsed(),
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                trickle.abort();
                closed.expect("the server closes a slowloris connection")
            })
        })
        .collect();
    // Meanwhile a real buyer buys.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let response = app.buy(sale, "real-buyer", "b1", 1).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut slowest = Duration::ZERO;
    for attacker in attackers {
        slowest = slowest.max(attacker.await.unwrap());
    }
    assert!(
        slowest < SHORT * SLACK,
        "the slowest slowloris connection was closed after {slowest:?}"
    );
    assert_eq!(app.units_in_database(sale).await, 1);
    app.finish().await;
}

#[tokio::test]
async fn a_withheld_body_is_answered_408_and_closed_within_the_body_timeout() {
    let app = spawn_app_with(InventoryStrategy::Redis, |s| {
        s.body_read_timeout = SHORT;
    })
    .await;
    let sale = app.live_sale(Some(10)).await;
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /sales/{sale}/orders HTTP/1.1\r\nHost: test\r\nIdempotency-Key: withheld\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"buyer_id\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (status, body) = tokio::time::timeout(SHORT * SLACK, read_answer(&mut stream))
        .await
        .expect("an answer within the body timeout");
    assert_eq!((status, code(&body).as_str()), (408, "body_timeout"));
    assert!(started.elapsed() >= SHORT - Duration::from_millis(50));
    assert!(
        closed_within(&mut stream, SHORT * SLACK).await.is_some(),
        "the connection is closed after a 408"
    );
    // The admin route reads its body the same way.
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /admin/sales HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        crate::helpers::ADMIN_TOKEN
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = tokio::time::timeout(SHORT * SLACK, read_answer(&mut stream))
        .await
        .expect("an answer within the body timeout");
    assert_eq!((status, code(&body).as_str()), (408, "body_timeout"));
    assert_eq!(app.orders_in_database().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_body_that_arrives_in_parts_within_the_body_timeout_is_read_whole() {
    // The body is read without a timer while it is all there at once (`http::body::read`);
    // this one is not, so the read waits, under the deadline, for its second part.
    let app = spawn_app_with(InventoryStrategy::Redis, |s| {
        s.body_read_timeout = SHORT * SLACK;
    })
    .await;
    let sale = app.live_sale(Some(10)).await;
    let body = r#"{"buyer_id":"parts","quantity":2}"#;
    let (first, second) = body.split_at(12);
    let mut stream = TcpStream::connect(addr(&app)).await.unwrap();
    let head = format!(
        "POST /sales/{sale}/orders HTTP/1.1\r\nHost: test\r\nIdempotency-Key: parts\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(SHORT / 3).await;
    stream.write_all(second.as_bytes()).await.unwrap();
    let (status, answer) = tokio::time::timeout(SHORT * SLACK, read_answer(&mut stream))
        .await
        .expect("an answer within the body timeout");
    assert_eq!(status, 201, "{answer}");
    let order: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (order["buyer_id"].as_str(), order["quantity"].as_i64()),
        (Some("parts"), Some(2))
    );
    assert_eq!(app.units_in_database(sale).await, 2);
    app.finish().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let app = spawn_app_with(InventoryStrategy::Redis, |s| {
        s.idle_timeout = SHORT;
        s.header_read_timeout = LONG;
    })
    .await;
    // A kept-alive connection after one answer, and one that never sent a byte.
    let mut kept_alive = TcpStream::connect(addr(&app)).await.unwrap();
    assert_eq!(exchange(&mut kept_alive, &get("/health")).await.0, 200);
    let answered = Instant::now();
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    let connected = Instant::now();
    assert!(
        closed_within(&mut kept_alive, SHORT * SLACK)
            .await
            .is_some()
    );
    assert!(answered.elapsed() >= SHORT - Duration::from_millis(50));
    assert!(closed_within(&mut silent, SHORT * SLACK).await.is_some());
    assert!(connected.elapsed() >= SHORT - Duration::from_millis(50));
    // A connection in use is not idle: two requests further apart than nothing, both answered.
    let mut busy = TcpStream::connect(addr(&app)).await.unwrap();
    for _ in 0..3 {
        assert_eq!(exchange(&mut busy, &get("/health")).await.0, 200);
        tokio::time::sleep(SHORT / 3).await;
    }
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_new_connections_are_refused_at_once_and_served_again_after() {
    const LIMIT: usize = 20;
    let app = spawn_app_with(InventoryStrategy::Redis, |s| {
        s.max_connections = Some(LIMIT);
        s.header_read_timeout = LONG;
        s.idle_timeout = LONG;
    })
    .await;
    let sale = app.live_sale(Some(10)).await;
    let target = addr(&app);
    // A buyer connected before the flood.
    let mut buyer = TcpStream::connect(&target).await.unwrap();
    assert_eq!(exchange(&mut buyer, &get("/health")).await.0, 200);
    // The flood: enough silent connections to take every slot.
    let mut hostile = Vec::new();
    for _ in 0..LIMIT {
        hostile.push(TcpStream::connect(&target).await.unwrap());
    }
    // Let the server accept them all before the newcomer queues behind them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut newcomer = TcpStream::connect(&target).await.unwrap();
    let (status, body) = tokio::time::timeout(
        Duration::from_secs(5),
        exchange(&mut newcomer, &get(&format!("/sales/{sale}"))),
    )
    .await
    .expect("a refusal, not a hang");
    assert_eq!(
        (status, code(&body).as_str()),
        (503, "too_many_connections")
    );
    assert!(
        closed_within(&mut newcomer, Duration::from_secs(5))
            .await
            .is_some()
    );
    // `/health` still answers on a new connection.
    let mut probe = TcpStream::connect(&target).await.unwrap();
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(5),
        exchange(&mut probe, &get("/health")),
    )
    .await
    .expect("health answers at the limit");
    assert_eq!(status, 200);
    // The buyer already connected keeps buying.
    let (status, body) = exchange(&mut buyer, &buy_request(sale, "connected", "b1")).await;
    assert_eq!(status, 201, "{body}");
    // Once the hostile connections go, new clients are served again.
    drop(hostile);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = reqwest::Client::new()
            .post(app.url(&format!("/sales/{sale}/orders")))
            .header("idempotency-key", format!("after-{attempt}"))
            .json(&json!({"buyer_id": format!("late-{attempt}"), "quantity": 1}))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the flood: {}",
            response.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.finish().await;
}
