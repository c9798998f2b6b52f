//! Sending one judged request and reading its answer; the ledger snapshots that prove a refusal
//! changed nothing.

use std::fmt;

use serde_json::Value;

use crate::ground_truth::Ledger;

/// What the server answered to one request, or why it did not.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// `None` when no answer arrived.
    pub status: Option<u16>,
    pub json: Option<Value>,
    pub body: String,
    /// The `Idempotent-Replayed` header.
    pub replayed: Option<String>,
    pub error: Option<String>,
}

impl Answer {
    /// The stable error code, when the body has the contract's `Error` shape
    /// (`{"error": {"code", "message"}}`, both strings).
    pub fn code(&self) -> Option<&str> {
        let error = self.json.as_ref()?.get("error")?;
        error.get("message")?.as_str()?;
        error.get("code")?.as_str()
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(status) = self.status else {
            return write!(
                f,
                "no answer ({})",
                self.error.as_deref().unwrap_or("unknown")
            );
        };
        match (self.code(), &self.json) {
            (Some(code), _) => write!(f, "{status} {code}"),
            (None, Some(json)) if json.get("order_id").is_some() => {
                write!(f, "{status} with order {}", json["order_id"])
            }
            (None, _) if (200..300).contains(&status) => write!(f, "{status}"),
            _ => write!(
                f,
                "{status} without an error code: {}",
                truncate(&self.body, 160)
            ),
        }
    }
}

/// Sends one request; a failure to get an answer is part of the answer.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Answer {
    match request.send().await {
        Err(err) => Answer {
            status: None,
            json: None,
            body: String::new(),
            replayed: None,
            error: Some(err.to_string()),
        },
        Ok(response) => {
            let status = response.status().as_u16();
            let replayed = response
                .headers()
                .get("idempotent-replayed")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.text().await.unwrap_or_default();
            Answer {
                status: Some(status),
                json: serde_json::from_str(&body).ok(),
                body,
                replayed,
                error: None,
            }
        }
    }
}

/// A documented refusal: status and error code.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected {
    pub status: u16,
    pub code: &'static str,
}

impl Expected {
    pub const fn new(status: u16, code: &'static str) -> Self {
        Self { status, code }
    }

    pub fn matches(&self, answer: &Answer) -> bool {
        answer.status == Some(self.status) && answer.code() == Some(self.code)
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.code)
    }
}

/// Every created sale's ground truth at one moment: role, ledger (orders and inventory view),
/// and the `state` of its public view.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub sales: Vec<(&'static str, Ledger, Option<String>)>,
}

impl Snapshot {
    /// What changed between `self` and `later`, or `None`. A counter that disagreed with
    /// `units_in_orders` before may move: that is the server converging (`quantity_sold` is
    /// synced asynchronously, the contract says; a cache counter may be reconciled), not the
    /// request's doing.
    pub fn changes_to(&self, later: &Snapshot) -> Option<String> {
        let mut changes = Vec::new();
        for ((role, before, state_before), (_, after, state_after)) in
            self.sales.iter().zip(&later.sales)
        {
            if before.orders != after.orders {
                let new: Vec<&str> = after
                    .orders
                    .iter()
                    .filter(|o| !before.orders.contains(o))
                    .map(|o| o.order_id.as_str())
                    .collect();
                changes.push(format!(
                    "sale `{role}`: {} orders before, {} after (new: {})",
                    before.orders.len(),
                    after.orders.len(),
                    if new.is_empty() {
                        "none, but orders differ".to_owned()
                    } else {
                        new.join(", ")
                    }
                ));
            }
            let (b, a) = (&before.inventory, &after.inventory);
            let units = b.units_in_orders;
            let settled_sold = b.quantity_sold.is_none_or(|sold| sold == units);
            let settled_counter = b.redis_counter.is_none_or(|c| c == units);
            if b.cap != a.cap
                || b.units_in_orders != a.units_in_orders
                || (settled_sold && b.quantity_sold != a.quantity_sold)
                || (settled_counter && b.redis_counter != a.redis_counter)
            {
                changes.push(format!(
                    "sale `{role}`: inventory view {} -> {}",
                    inventory_text(b),
                    inventory_text(a)
                ));
            }
            if state_before != state_after {
                changes.push(format!(
                    "sale `{role}`: state {} -> {}",
                    state_before.as_deref().unwrap_or("unknown"),
                    state_after.as_deref().unwrap_or("unknown")
                ));
            }
        }
        (!changes.is_empty()).then(|| changes.join("; "))
    }
}

fn inventory_text(view: &crate::ground_truth::InventoryView) -> String {
    format!(
        "(cap {:?}, counter {:?}, quantity_sold {:?}, units_in_orders {})",
        view.cap, view.redis_counter, view.quantity_sold, view.units_in_orders
    )
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}
