//! The admin side of `server/openapi.json` spoken directly: set-up and ground truth for the
//! conformance checks and the property tests (runs go through the openapi profile instead).

use std::time::Duration;

use serde_json::{Value, json};

use super::{CreatedSale, TargetError};
use crate::ground_truth::{InventoryView, Ledger, LedgerOrder};
use crate::scenario::{Cap, Scenario};

/// The admin side of the contract: set-up and ground truth.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    async fn call(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, TargetError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| TargetError::Unreachable {
                url: self.base_url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(TargetError::Refused {
                what: what.to_owned(),
                status: status.as_u16(),
                body,
            });
        }
        serde_json::from_str(&body).map_err(|err| TargetError::Contract {
            what: what.to_owned(),
            problem: format!("not JSON: {err}"),
        })
    }

    /// Creates the scenario's sale, open from a second ago for the scenario's window, and
    /// activates it. Returns the sale id.
    pub async fn create_live_sale(&self, scenario: &Scenario) -> Result<String, TargetError> {
        Ok(self.create_scenario_sale(scenario).await?.id)
    }

    /// Creates and activates the scenario's sale: open from a second ago for the scenario's
    /// window, or, with `sale.opens_after`, from that long after the coming doors open (counted
    /// from now, so a little earlier than the doors the run then opens) for `window`.
    pub async fn create_scenario_sale(
        &self,
        scenario: &Scenario,
    ) -> Result<CreatedSale, TargetError> {
        let now = time::OffsetDateTime::now_utc();
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .expect("a UTC time formats")
        };
        let window = time::Duration::try_from(scenario.sale.window).unwrap_or(time::Duration::DAY);
        let cap = match scenario.sale.cap {
            Cap::Limited(cap) => json!(cap),
            Cap::Unlimited => Value::Null,
        };
        let products: Vec<Value> = scenario
            .sale
            .products
            .iter()
            .map(|p| json!({"product_id": p.id, "sale_price_cents": p.price_cents}))
            .collect();
        let starts_at = match scenario.sale.opens_after {
            Some(after) => {
                now + time::Duration::try_from(scenario.arrival.open_after() + after)
                    .unwrap_or(time::Duration::ZERO)
            }
            None => now - time::Duration::seconds(1),
        };
        let ends_at = match scenario.sale.opens_after {
            Some(_) => starts_at + window,
            None => now + window,
        };
        let mut body = json!({
            "name": scenario.name,
            "starts_at": rfc3339(starts_at),
            "ends_at": rfc3339(ends_at),
            "cap": cap,
            "products": products,
        });
        if let Some(limit) = scenario.sale.per_buyer_limit {
            body["per_buyer_limit"] = json!(limit);
        }
        let id = self.create_sale(&body).await?;
        self.activate(&id).await?;
        Ok(CreatedSale {
            id,
            starts_at,
            ends_at,
        })
    }

    /// Creates a sale from a `NewSale` body (see `server/openapi.json`) without activating it.
    /// Returns the sale id.
    pub async fn create_sale(&self, new_sale: &Value) -> Result<String, TargetError> {
        let url = format!("{}/admin/sales", self.base_url);
        let sale = self
            .call("creating the sale", self.http.post(url).json(new_sale))
            .await?;
        sale["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| TargetError::Contract {
                what: "creating the sale".into(),
                problem: "no `id` in the answer".into(),
            })
    }

    /// Activates a sale; returns the `Sale` the server answered with.
    pub async fn activate(&self, sale_id: &str) -> Result<Value, TargetError> {
        let url = format!("{}/admin/sales/{sale_id}/activate", self.base_url);
        self.call("activating the sale", self.http.post(url).json(&json!({})))
            .await
    }

    /// The inventory view alone (sampled during runs, polled until it settles after them).
    pub async fn inventory(&self, sale_id: &str) -> Result<InventoryView, TargetError> {
        let what = "reading the inventory view";
        let url = format!("{}/admin/sales/{sale_id}/inventory", self.base_url);
        let request = self.http.get(url).timeout(Duration::from_secs(2));
        let view = self.call(what, request).await?;
        serde_json::from_value(view).map_err(|err| TargetError::Contract {
            what: what.into(),
            problem: err.to_string(),
        })
    }

    /// The ground truth: the sale's order ledger and inventory view.
    pub async fn ledger(&self, sale_id: &str) -> Result<Ledger, TargetError> {
        let what = "exporting the order ledger";
        let url = format!("{}/admin/sales/{sale_id}/orders", self.base_url);
        let export = self.call(what, self.http.get(url)).await?;
        let orders: Vec<LedgerOrder> =
            serde_json::from_value(export["orders"].clone()).map_err(|err| {
                TargetError::Contract {
                    what: what.into(),
                    problem: err.to_string(),
                }
            })?;
        let what = "reading the inventory view";
        let url = format!("{}/admin/sales/{sale_id}/inventory", self.base_url);
        let view = self.call(what, self.http.get(url)).await?;
        let inventory: InventoryView =
            serde_json::from_value(view).map_err(|err| TargetError::Contract {
                what: what.into(),
                problem: err.to_string(),
            })?;
        Ok(Ledger { orders, inventory })
    }
}
