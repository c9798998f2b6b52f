//! Buyer journeys through a cart hold (issue 15): reserve, think, then check out, release or
//! abandon (let the hold expire).
//!
//! The requests and answers are the contract's (`server/openapi.json`): the profile's `[holds]`
//! says where the routes are ([`HoldRoutes`]). Every operation is recorded as a
//! [`HoldAttempt`]; a checkout is a purchase too, so it is also recorded as an [`Attempt`] in the
//! history (its key is the order's), where INV-2..INV-5 judge the order it makes. A reserve or a
//! checkout that ends `unknown` is retried with the same key, like a buy; a buyer whose reserve
//! was refused or stayed unknown goes home.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::buyers::{Buyer, Shooter};
use super::health::ScheduleSample;
use crate::history::{Attempt, Code, HoldAttempt, HoldOp, Outcome, micros_since};
use crate::profile::{Holds, Values};
use crate::scenario::JourneyEnd;

/// What a buyer with a journey does, drawn with the buyers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Journey {
    pub ttl: Duration,
    pub think: Duration,
    pub end: JourneyEnd,
}

/// The profile's `[holds]` bound to one sale at one base URL.
#[derive(Debug, Clone)]
pub struct HoldRoutes {
    holds: Holds,
    fixed: Values,
    default_product: Option<String>,
}

impl HoldRoutes {
    pub fn new(
        holds: &Holds,
        base_url: &str,
        sale_id: &str,
        default_product: Option<String>,
    ) -> Self {
        let mut fixed = Values::new();
        fixed.insert("base_url", Value::from(base_url.trim_end_matches('/')));
        fixed.insert("sale_id", Value::from(sale_id));
        HoldRoutes {
            holds: holds.clone(),
            fixed,
            default_product,
        }
    }

    fn url(&self, template: &crate::profile::Template, hold_id: Option<&str>) -> String {
        let mut values = self.fixed.clone();
        if let Some(id) = hold_id {
            values.insert("hold_id", Value::from(id));
        }
        template.render(&values)
    }
}

/// An answer as the journey reads it.
struct Answer {
    outcome: Outcome,
    status: Option<u16>,
    code: Option<Code>,
    body: Value,
}

impl Shooter {
    /// One buyer's journey; returns the checkout attempts (for the history) and the first
    /// request's schedule sample. Hold operations go to `self.hold_log`.
    pub(super) async fn journey(
        &self,
        buyer: &Buyer,
        journey: Journey,
        routes: &HoldRoutes,
        intended: Instant,
    ) -> (Vec<Attempt>, ScheduleSample) {
        let woke = Instant::now();
        let mut ops = Vec::new();
        let product = buyer
            .product_id
            .as_ref()
            .or(routes.default_product.as_ref());
        let mut body = json!({
            "buyer_id": buyer.buyer_id,
            "quantity": buyer.quantity,
            "ttl_ms": journey.ttl.as_millis() as u64,
        });
        if let Some(product) = product {
            body["product_id"] = Value::from(product.clone());
        }
        let hold_key = format!("{}-hold", buyer.idempotency_key);
        let url = routes.url(&routes.holds.reserve, None);
        let mut hold = None;
        let mut sample = None;
        let mut intended_at = intended;
        for try_number in 0..self.tries {
            let (sent_us, completed_us, answer) =
                self.send_hold(&url, Some(&hold_key), &body).await;
            sample.get_or_insert(ScheduleSample {
                intended_us: micros_since(self.origin, intended_at),
                woke_us: micros_since(self.origin, woke),
                sent_us,
            });
            let hold_id = text(&answer.body, "/hold_id");
            ops.push(HoldAttempt {
                kind: HoldOp::Reserve,
                buyer: buyer.buyer_id.clone(),
                idempotency_key: Some(hold_key.clone()),
                hold_id: hold_id.clone(),
                quantity: buyer.quantity,
                try_number,
                sent_us,
                completed_us,
                outcome: answer.outcome,
                status: answer.status,
                code: answer.code.clone(),
                expires_at: text(&answer.body, "/expires_at"),
                state: text(&answer.body, "/state"),
                order_id: None,
                attempt_seq: None,
            });
            match answer.outcome {
                Outcome::Ok => {
                    hold = hold_id;
                    break;
                }
                Outcome::Rejected => break,
                Outcome::Unknown => {
                    tokio::time::sleep(self.backoff).await;
                    intended_at = Instant::now();
                }
            }
        }
        let sample = sample.expect("a journey makes at least one try");
        let mut attempts = Vec::new();
        if let Some(hold_id) = hold {
            tokio::time::sleep(journey.think).await;
            match journey.end {
                JourneyEnd::Checkout => {
                    let url = routes.url(&routes.holds.checkout, Some(&hold_id));
                    let body = json!({ "buyer_id": buyer.buyer_id });
                    for try_number in 0..self.tries {
                        let intended_us = micros_since(self.origin, Instant::now());
                        let (sent_us, completed_us, answer) = self
                            .send_hold(&url, Some(&buyer.idempotency_key), &body)
                            .await;
                        let order_id = (answer.outcome == Outcome::Ok)
                            .then(|| text(&answer.body, "/order_id"))
                            .flatten();
                        // A 201 without an order id says nothing definite.
                        let outcome = match (answer.outcome, &order_id) {
                            (Outcome::Ok, None) => Outcome::Unknown,
                            (outcome, _) => outcome,
                        };
                        let attempt = Attempt {
                            seq: 0,
                            buyer: buyer.buyer_id.clone(),
                            idempotency_key: buyer.idempotency_key.clone(),
                            quantity: buyer.quantity,
                            try_number,
                            intended_us,
                            sent_us,
                            completed_us,
                            outcome,
                            status: answer.status,
                            code: answer.code.clone(),
                            order_id: order_id.clone(),
                        };
                        self.probe.record(&attempt);
                        attempts.push(attempt);
                        ops.push(HoldAttempt {
                            kind: HoldOp::Checkout,
                            buyer: buyer.buyer_id.clone(),
                            idempotency_key: Some(buyer.idempotency_key.clone()),
                            hold_id: Some(hold_id.clone()),
                            quantity: buyer.quantity,
                            try_number,
                            sent_us,
                            completed_us,
                            outcome,
                            status: answer.status,
                            code: answer.code,
                            expires_at: None,
                            state: None,
                            order_id,
                            attempt_seq: None,
                        });
                        if outcome != Outcome::Unknown {
                            break;
                        }
                        tokio::time::sleep(self.backoff).await;
                    }
                }
                JourneyEnd::Release => {
                    let url = routes.url(&routes.holds.release, Some(&hold_id));
                    let body = json!({ "buyer_id": buyer.buyer_id });
                    for try_number in 0..self.tries {
                        let (sent_us, completed_us, answer) =
                            self.send_hold(&url, None, &body).await;
                        let outcome = answer.outcome;
                        ops.push(HoldAttempt {
                            kind: HoldOp::Release,
                            buyer: buyer.buyer_id.clone(),
                            idempotency_key: None,
                            hold_id: Some(hold_id.clone()),
                            quantity: buyer.quantity,
                            try_number,
                            sent_us,
                            completed_us,
                            outcome,
                            status: answer.status,
                            code: answer.code,
                            expires_at: text(&answer.body, "/expires_at"),
                            state: text(&answer.body, "/state"),
                            order_id: None,
                            attempt_seq: None,
                        });
                        if outcome != Outcome::Unknown {
                            break;
                        }
                        tokio::time::sleep(self.backoff).await;
                    }
                }
                JourneyEnd::Abandon => {}
            }
        }
        self.hold_log.lock().expect("hold log lock").extend(ops);
        (attempts, sample)
    }

    /// One hold request: `(sent_us, completed_us, answer)`. A 2xx is `ok`, 408 and 5xx or no
    /// answer are `unknown`, any other 4xx is `rejected` with its `/error/code`.
    async fn send_hold(&self, url: &str, key: Option<&str>, body: &Value) -> (u64, u64, Answer) {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let sent = Instant::now();
        let mut request = self.client.post(url).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let answer = tokio::time::timeout(self.timeout, async {
            let response = request.send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        })
        .await;
        let completed = Instant::now();
        let unknown = |code: &str, status: Option<u16>| Answer {
            outcome: Outcome::Unknown,
            status,
            code: Some(Code::new(code)),
            body: Value::Null,
        };
        let answer = match answer {
            Err(_) => unknown("timeout", None),
            Ok(Err(err)) if err.is_connect() => unknown("connect", None),
            Ok(Err(_)) => unknown("transport", None),
            Ok(Ok((status, bytes))) => {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let code = text(&body, "/error/code").map(Code::from);
                if status.is_success() {
                    Answer {
                        outcome: Outcome::Ok,
                        status: Some(status.as_u16()),
                        code: None,
                        body,
                    }
                } else if status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT {
                    Answer {
                        outcome: Outcome::Rejected,
                        status: Some(status.as_u16()),
                        code: code
                            .or_else(|| Some(Code::from(format!("http_{}", status.as_u16())))),
                        body,
                    }
                } else {
                    Answer {
                        outcome: Outcome::Unknown,
                        status: Some(status.as_u16()),
                        code: code
                            .or_else(|| Some(Code::from(format!("http_{}", status.as_u16())))),
                        body,
                    }
                }
            }
        };
        (
            micros_since(self.origin, sent),
            micros_since(self.origin, completed),
            answer,
        )
    }
}

/// The string (or number) at `pointer`, if any.
fn text(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
