//! One buyer's request as the target's profile shapes it (`[buy]`), and its answer read by the
//! profile's rules. Rendered once per buyer before the first try, so retries and copies resend
//! the same bytes and the hot path does no templating.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::buyers::Buyer;
use crate::profile::{Answers, Buy, JsonTemplate, Template, Values, answers::Classified};

/// The `[buy]` section bound to one sale at one base URL.
#[derive(Debug, Clone)]
pub struct BuyTemplate {
    method: reqwest::Method,
    url: Template,
    headers: Vec<(HeaderName, Template)>,
    body: Option<JsonTemplate>,
    answers: Answers,
    /// `base_url` and `sale_id`.
    fixed: Values,
    /// The product of a buyer who names none (a sale of one product).
    default_product: Option<String>,
    /// With server replicas: each buyer's `base_url` is one of these ([`replica_of`]).
    replica_urls: Vec<String>,
}

/// Which of `replicas` servers a buyer goes to: a hash of the buyer id (FNV-1a), so a buyer keeps
/// one replica for all its tries and the split is the same in the load and in the summary.
pub fn replica_of(buyer_id: &str, replicas: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in buyer_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % replicas.max(1) as u64) as usize
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct PreparedBuy {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<String>,
}

impl BuyTemplate {
    pub fn new(buy: &Buy, base_url: &str, sale_id: &str, default_product: Option<String>) -> Self {
        let mut fixed = Values::new();
        fixed.insert("base_url", Value::from(base_url.trim_end_matches('/')));
        fixed.insert("sale_id", Value::from(sale_id));
        BuyTemplate {
            method: buy.call.method.clone(),
            url: buy.call.url.clone(),
            headers: buy
                .call
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((HeaderName::from_bytes(name.as_bytes()).ok()?, value.clone()))
                })
                .collect(),
            body: buy.call.body.clone(),
            answers: buy.answers.clone(),
            fixed,
            default_product,
            replica_urls: Vec::new(),
        }
    }

    /// Spreads the buyers across `urls` (several server replicas); one URL changes nothing.
    pub fn with_replicas(mut self, urls: Vec<String>) -> Self {
        if urls.len() > 1 {
            self.replica_urls = urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect();
        }
        self
    }

    /// The request of `buyer`.
    pub fn prepare(&self, buyer: &Buyer) -> PreparedBuy {
        let mut values = self.fixed.clone();
        if !self.replica_urls.is_empty() {
            let replica = replica_of(&buyer.buyer_id, self.replica_urls.len());
            values.insert("base_url", Value::from(self.replica_urls[replica].clone()));
        }
        values.insert("buyer_id", Value::from(buyer.buyer_id.clone()));
        values.insert("quantity", Value::from(buyer.quantity));
        values.insert(
            "idempotency_key",
            Value::from(buyer.idempotency_key.clone()),
        );
        if let Some(product) = buyer.product_id.as_ref().or(self.default_product.as_ref()) {
            values.insert("product_id", Value::from(product.clone()));
        }
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        for (name, value) in &self.headers {
            // Values come from the harness's own ids and the profile's text; one that is not a
            // valid header value is sent empty rather than dropped, so the service sees the field.
            let value = HeaderValue::from_str(&value.render(&values))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            headers.insert(name.clone(), value);
        }
        let body = self
            .body
            .as_ref()
            .and_then(|b| b.render(&values))
            .map(|b| b.to_string());
        if body.is_some() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        PreparedBuy {
            method: self.method.clone(),
            url: self.url.render(&values),
            headers,
            body,
        }
    }

    /// What an answer means, by the profile's rules.
    pub fn classify(&self, status: u16, body: &[u8]) -> Classified {
        self.answers.classify(status, body)
    }
}
