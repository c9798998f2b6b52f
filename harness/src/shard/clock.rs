//! A shard's clock against the target's: the offset that turns the agreed doors-open instant
//! into this machine's time, measured from the HTTP `Date` header.
//!
//! `Date` has one-second resolution, so one answer says little. But the second it names changes
//! at the server's second boundary: polling a few milliseconds apart until it changes brackets
//! that boundary between the send of the last answer with the old second and the arrival of the
//! first with the new one. The offset is the boundary minus the local instant at the middle of
//! that bracket, and half the bracket is its uncertainty (a few ms on a LAN; RTT-bound far
//! away). Generators on NTP-synced machines agree to a few ms anyway; the measurement shows it,
//! and shows it when they do not.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// How far apart the probes go: the bracket, and so the uncertainty, is at most this plus one
/// round trip.
const PROBE_EVERY: Duration = Duration::from_millis(4);
/// A second boundary is always crossed within this, unless the target sends no `Date`.
const GIVE_UP_AFTER: Duration = Duration::from_millis(2_500);

/// The reference clock minus this generator's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockOffset {
    /// `null`: not measured (see `reference`).
    pub offset_us: Option<i64>,
    pub uncertainty_us: Option<u64>,
    /// What it was measured against, or why it was not.
    pub reference: String,
}

impl ClockOffset {
    /// Generators that share one machine's clock (`--workers`): nothing to measure.
    pub fn same_machine() -> ClockOffset {
        ClockOffset {
            offset_us: Some(0),
            uncertainty_us: Some(0),
            reference: "this machine's clock (shards on one machine)".to_owned(),
        }
    }

    /// This generator's clock instant for a reference-clock instant.
    pub fn to_local(&self, reference: OffsetDateTime) -> OffsetDateTime {
        reference - time::Duration::microseconds(self.offset_us.unwrap_or(0))
    }

    /// The reference-clock instant for this generator's clock instant.
    pub fn to_reference(&self, local: OffsetDateTime) -> OffsetDateTime {
        local + time::Duration::microseconds(self.offset_us.unwrap_or(0))
    }
}

/// Measures the offset of `url`'s server clock (its `Date` header). Never fails: a target that
/// sends no `Date`, or cannot be reached, gives an offset of `null` with the reason.
pub async fn measure(client: &reqwest::Client, url: &str) -> ClockOffset {
    let not_measured = |why: String| ClockOffset {
        offset_us: None,
        uncertainty_us: None,
        reference: why,
    };
    let started = std::time::Instant::now();
    // (local send, local arrival, server second) of the previous answer.
    let mut previous: Option<(OffsetDateTime, OffsetDateTime, i64)> = None;
    while started.elapsed() < GIVE_UP_AFTER {
        let sent = OffsetDateTime::now_utc();
        let answer = client.get(url).send().await;
        let arrived = OffsetDateTime::now_utc();
        let response = match answer {
            Ok(response) => response,
            Err(e) => return not_measured(format!("not measured: {url} did not answer ({e})")),
        };
        let Some(second) = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(|t| OffsetDateTime::from(t).unix_timestamp())
        else {
            return not_measured(format!("not measured: {url} sends no Date header"));
        };
        if let Some((previous_sent, _, previous_second)) = previous
            && second > previous_second
        {
            // The server's clock read `second`.000000 somewhere between the previous probe's
            // send and this probe's arrival.
            let boundary = OffsetDateTime::from_unix_timestamp(second)
                .expect("a Date header's second is a valid timestamp");
            let half: time::Duration = (arrived - previous_sent) / 2;
            let middle: OffsetDateTime = previous_sent + half;
            return ClockOffset {
                offset_us: Some((boundary - middle).whole_microseconds() as i64),
                uncertainty_us: Some(half.whole_microseconds().unsigned_abs() as u64),
                reference: format!("Date header of {url}"),
            };
        }
        previous = Some((sent, arrived, second));
        tokio::time::sleep(PROBE_EVERY).await;
    }
    not_measured(format!(
        "not measured: the Date header of {url} did not change second within {} s",
        GIVE_UP_AFTER.as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_between_the_two_clocks() {
        let offset = ClockOffset {
            offset_us: Some(1_500),
            uncertainty_us: Some(3_000),
            reference: "test".into(),
        };
        let reference = time::macros::datetime!(2026-12-03 02:00:00 UTC);
        let local = offset.to_local(reference);
        assert_eq!(reference - local, time::Duration::microseconds(1_500));
        assert_eq!(offset.to_reference(local), reference);
    }

    /// A server whose clock runs 5 s ahead: the measured offset is 5 s within the stated
    /// uncertainty (the bracket contains the true boundary by construction, so this holds on a
    /// loaded machine too; only the uncertainty grows).
    #[tokio::test]
    async fn measures_a_server_clock_running_five_seconds_ahead() {
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                let ahead = std::time::SystemTime::now() + Duration::from_secs(5);
                (
                    [(reqwest::header::DATE, httpdate::fmt_http_date(ahead))],
                    "ok",
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let offset = measure(&reqwest::Client::new(), &format!("http://{addr}/")).await;
        let measured = offset.offset_us.expect("measured");
        let bound = offset.uncertainty_us.unwrap() as i64 + 1_000;
        assert!(
            (measured - 5_000_000).abs() <= bound,
            "{measured} µs, ±{bound} µs: {offset:?}"
        );
        assert!(offset.reference.contains("Date header"), "{offset:?}");
    }
}
