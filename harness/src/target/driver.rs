//! Talks to a target through its profile: creates (or names) the run's sale, prepares the buy
//! requests, and reads the ground truth — orders and the service's own counters — over HTTP or
//! SQL.
//!
//! Everything a profile points at that can only be checked against the live service is checked
//! here before any load: the set-up's pointer to the new sale's id, the ground truth's array
//! pointer or SQL columns, the counters' pointers. Each failure names the profile key and its
//! line. Secrets rendered into headers and URLs stay in memory: messages show the templates'
//! keys, never rendered values.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{Column, Executor, PgPool, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::{CreatedSale, TargetError};
use crate::ground_truth::{InventoryView, Ledger, LedgerHold, LedgerOrder};
use crate::profile::template::pointed_text;
use crate::profile::{
    Call, CounterSource, GroundTruth, HttpCall, Origin, Profile, ProfileError, Setup, SqlCall,
    Values,
};
use crate::scenario::{Cap, Scenario};

/// The sale a run buys from: its id, window and the cap the checker holds it to.
#[derive(Debug, Clone)]
pub struct PreparedSale {
    pub sale: CreatedSale,
    /// The scenario's cap, or the cap a profile states for an existing sale.
    pub cap: Option<u64>,
}

/// A target as its profile describes it, at one base URL.
#[derive(Debug, Clone)]
pub struct Driver {
    profile: Arc<Profile>,
    /// `base_url`, `database_url`, `redis_url`: what every template may refer to.
    context: Values,
    http: reqwest::Client,
    pools: Arc<Mutex<HashMap<String, PgPool>>>,
    /// Where buys go when the target is several replicas (`--replicas`); empty: `base_url`.
    buy_urls: Vec<String>,
}

/// `decided_by` of an order whose service does not say which path decided it.
const NOT_REPORTED: &str = "not reported";

/// How many pages of an HTTP export are followed before the harness assumes the paging loops.
const MAX_PAGES: usize = 100_000;

impl Driver {
    /// `context` adds to `base_url` what a started service's templates may name
    /// (`database_url`, `redis_url`, and the run's `run_id`, drawn here when absent).
    pub fn new(profile: Arc<Profile>, base_url: &str, mut context: Values) -> Self {
        context
            .entry("run_id")
            .or_insert_with(|| Value::from(Uuid::new_v4().simple().to_string()));
        context.insert(
            "base_url",
            Value::from(base_url.trim_end_matches('/').to_owned()),
        );
        Driver {
            profile,
            context,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain HTTP client builds"),
            pools: Arc::default(),
            buy_urls: Vec::new(),
        }
    }

    /// Buys spread across these servers (replicas of one service); the sale is set up and the
    /// ledger read through `base_url`.
    pub fn with_buy_urls(mut self, urls: Vec<String>) -> Self {
        self.buy_urls = urls;
        self
    }

    /// Where buys go: the replicas, or `base_url` alone.
    pub fn buy_urls(&self) -> Vec<String> {
        if self.buy_urls.is_empty() {
            vec![self.base_url().to_owned()]
        } else {
            self.buy_urls.clone()
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn base_url(&self) -> &str {
        self.context["base_url"].as_str().unwrap_or_default()
    }

    /// The values every template of this target shares, plus `extra`.
    pub fn values(&self, extra: &[(&'static str, Value)]) -> Values {
        let mut values = self.context.clone();
        values.extend(extra.iter().cloned());
        values
    }

    /// Creates the scenario's sale (or names the existing one) and opens it. The window is the
    /// one [`crate::target::AdminClient::create_scenario_sale`] uses: open from a second ago, or
    /// from `sale.opens_after` after the coming doors open.
    pub async fn create_sale(&self, scenario: &Scenario) -> Result<PreparedSale, TargetError> {
        let now = OffsetDateTime::now_utc();
        let window = time::Duration::try_from(scenario.sale.window).unwrap_or(time::Duration::DAY);
        let starts_at = match scenario.sale.opens_after {
            Some(after) => {
                now + time::Duration::try_from(scenario.arrival.open_after() + after)
                    .unwrap_or(time::Duration::ZERO)
            }
            None => now - time::Duration::seconds(1),
        };
        // Scenario validation bounds every duration; checked all the same, because a time past
        // year 9999 panics in `time` rather than failing.
        let ends_at = match scenario.sale.opens_after {
            Some(_) => starts_at.checked_add(window),
            None => now.checked_add(window),
        }
        .ok_or_else(|| {
            TargetError::Setup(format!(
                "sale.window {} ends past what a timestamp can hold",
                humantime::format_duration(scenario.sale.window)
            ))
        })?;
        let cap = scenario.sale.cap.as_option();
        if let Setup::Existing { sale_id, cap } = &self.profile.setup {
            return Ok(PreparedSale {
                sale: CreatedSale {
                    id: sale_id.clone(),
                    starts_at: now - time::Duration::seconds(1),
                    ends_at,
                },
                cap: *cap,
            });
        }
        if scenario.sale.cap == Cap::Unlimited && !self.profile.rules.unlimited_sales {
            return Err(TargetError::Setup(format!(
                "scenario {} has an unlimited sale, and profile {} says the service has none \
                 ([rules] unlimited_sales = false); give the scenario a cap",
                scenario.name, self.profile.source
            )));
        }
        let rfc3339 = |t: OffsetDateTime| t.format(&Rfc3339).expect("a UTC time formats");
        let first = scenario.sale.products.first();
        let mut values = self.values(&[
            ("sale_name", Value::from(scenario.name.clone())),
            ("cap", cap.map(Value::from).unwrap_or(Value::Null)),
            (
                "per_buyer_limit",
                scenario
                    .sale
                    .per_buyer_limit
                    .map(Value::from)
                    .unwrap_or(Value::Null),
            ),
            ("starts_at", Value::from(rfc3339(starts_at))),
            ("ends_at", Value::from(rfc3339(ends_at))),
            (
                "product_id",
                first.map(|p| Value::from(p.id.clone())).unwrap_or_default(),
            ),
            (
                "price_cents",
                first
                    .map(|p| Value::from(p.price_cents))
                    .unwrap_or_default(),
            ),
        ]);
        let id = match &self.profile.setup {
            Setup::Http {
                call,
                product,
                sale_id,
                open,
            } => {
                let products: Vec<Value> = scenario
                    .sale
                    .products
                    .iter()
                    .filter_map(|p| {
                        let mut one = Values::new();
                        one.insert("product_id", Value::from(p.id.clone()));
                        one.insert("price_cents", Value::from(p.price_cents));
                        match product {
                            Some(template) => template.render(&one),
                            None => Some(json!({"product_id": p.id, "price_cents": p.price_cents})),
                        }
                    })
                    .collect();
                values.insert("products", Value::Array(products));
                let answer = self.call_http("creating the sale", call, &values).await?;
                let id = pointed_text(&answer, sale_id).ok_or_else(|| {
                    Origin::new("setup.sale_id", call.origin.line).error(format!(
                        "`{sale_id}` matches no string or number in the answer to the set-up call: {}",
                        excerpt(&answer)
                    ))
                })?;
                values.insert("sale_id", Value::from(id.clone()));
                self.open(open.as_ref(), &values).await?;
                id
            }
            Setup::Sql { call, open } => {
                let id = self.run_sql("creating the sale", call, &values).await?;
                let id = id.ok_or_else(|| {
                    call.origin.error(
                        "no statement returned a `sale_id` column: end the INSERT with \
                         RETURNING <id column> AS sale_id",
                    )
                })?;
                values.insert("sale_id", Value::from(id.clone()));
                self.open(open.as_ref(), &values).await?;
                id
            }
            Setup::Existing { .. } => unreachable!("handled above"),
        };
        Ok(PreparedSale {
            sale: CreatedSale {
                id,
                starts_at,
                ends_at,
            },
            cap,
        })
    }

    async fn open(&self, open: Option<&Call>, values: &Values) -> Result<(), TargetError> {
        match open {
            None => Ok(()),
            Some(Call::Http(call)) => self
                .call_http("opening the sale", call, values)
                .await
                .map(drop),
            Some(Call::Sql(call)) => self
                .run_sql("opening the sale", call, values)
                .await
                .map(drop),
        }
    }

    /// Sends an HTTP call; a non-2xx answer is an error naming the call, and the answer's body
    /// (as JSON, or `null` when it is not JSON) is returned.
    async fn call_http(
        &self,
        what: &str,
        call: &HttpCall,
        values: &Values,
    ) -> Result<Value, TargetError> {
        let url = call.url.render(values);
        self.call_url(what, call, &url, values).await
    }

    async fn call_url(
        &self,
        what: &str,
        call: &HttpCall,
        url: &str,
        values: &Values,
    ) -> Result<Value, TargetError> {
        let mut request = self.http.request(call.method.clone(), url);
        for (name, value) in &call.headers {
            request = request.header(name, value.render(values));
        }
        if let Some(body) = call.body.as_ref().and_then(|b| b.render(values)) {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|source| TargetError::Unreachable {
                url: self.base_url().to_owned(),
                source,
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(TargetError::Refused {
                what: format!("{what} ({}, line {})", call.origin.key, call.origin.line),
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn pool(&self, origin: &Origin, url: &str) -> Result<PgPool, TargetError> {
        if let Some(pool) = self.pools.lock().expect("pool map").get(url) {
            return Ok(pool.clone());
        }
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| {
                TargetError::Profile(origin.error(format!(
                    "cannot connect to the database ({}): {e}",
                    flashsale_server::redact(url)
                )))
            })?;
        self.pools
            .lock()
            .expect("pool map")
            .insert(url.to_owned(), pool.clone());
        Ok(pool)
    }

    /// Runs a SQL call's statements in one transaction; returns the `sale_id` column of the
    /// first row that has one.
    async fn run_sql(
        &self,
        what: &str,
        call: &SqlCall,
        values: &Values,
    ) -> Result<Option<String>, TargetError> {
        let pool = self
            .pool(&call.origin, &call.database_url.render(values))
            .await?;
        let mut tx = pool.begin().await.map_err(|e| sql_error(what, call, e))?;
        let mut sale_id = None;
        for statement in &call.statements {
            let sql = statement.render_sql(values);
            let rows = sqlx::query(&sql)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| sql_error(what, call, e))?;
            if sale_id.is_none() {
                sale_id = rows.first().and_then(|row| text_column(row, "sale_id"));
            }
        }
        tx.commit().await.map_err(|e| sql_error(what, call, e))?;
        Ok(sale_id)
    }

    /// Reads the sale's orders and checks, once, what the profile points at: run before the
    /// load with an empty sale, it proves the ground truth can be read.
    pub async fn orders(&self, sale_id: &str) -> Result<Vec<LedgerOrder>, TargetError> {
        let values = self.values(&[("sale_id", Value::from(sale_id.to_owned()))]);
        match &self.profile.ground_truth {
            GroundTruth::Http {
                call,
                orders,
                next,
                fields,
            } => {
                let first_url = call.url.render(&values);
                let mut url = first_url.clone();
                let mut found = Vec::new();
                for _ in 0..MAX_PAGES {
                    let page = self
                        .call_url("exporting the orders", call, &url, &values)
                        .await?;
                    let items =
                        page.pointer(orders)
                            .and_then(Value::as_array)
                            .ok_or_else(|| {
                                Origin::new("ground_truth.orders", call.origin.line).error(format!(
                                    "`{orders}` matches no array in the export: {}",
                                    excerpt(&page)
                                ))
                            })?;
                    for item in items {
                        found.push(order_from_json(item, fields, &call.origin)?);
                    }
                    let next_url = next
                        .as_ref()
                        .and_then(|p| pointed_text(&page, p))
                        .filter(|n| !n.is_empty());
                    match next_url {
                        Some(next_url) => url = join_url(&first_url, &next_url),
                        None => return Ok(found),
                    }
                }
                Err(TargetError::Contract {
                    what: "exporting the orders".into(),
                    problem: format!("more than {MAX_PAGES} pages: does `next` loop?"),
                })
            }
            GroundTruth::Sql {
                origin,
                database_url,
                query,
            } => {
                let pool = self.pool(origin, &database_url.render(&values)).await?;
                let sql = query.render_sql(&values);
                let names = column_names(&pool, &sql, origin).await?;
                for required in ["order_id", "buyer_id", "quantity"] {
                    if !names.iter().any(|n| n == required) {
                        return Err(TargetError::Profile(origin.error(format!(
                            "the query returns no column `{required}` (it returns {}); name one \
                             with AS {required}",
                            names.join(", ")
                        ))));
                    }
                }
                let optional = |name: &str, cast: &str| {
                    if names.iter().any(|n| n == name) {
                        format!("(q.{name})::{cast}")
                    } else {
                        "NULL".to_owned()
                    }
                };
                let wrapped = format!(
                    "SELECT (q.order_id)::text, (q.buyer_id)::text, (q.quantity)::bigint, {}, {}, {} \
                     FROM ({sql}) AS q",
                    optional("idempotency_key", "text"),
                    optional("decided_by", "text"),
                    optional("created_at", "timestamptz"),
                );
                let rows = sqlx::query(&wrapped).fetch_all(&pool).await.map_err(|e| {
                    TargetError::Profile(origin.error(format!("the query fails: {e}")))
                })?;
                rows.iter().map(|row| order_from_row(row, origin)).collect()
            }
        }
    }

    /// The sale's cart holds through the profile's `[holds] export`, oldest first; `Ok(None)`
    /// when the profile has no `[holds]` (INV-7 is then not checked).
    pub async fn holds(&self, sale_id: &str) -> Result<Option<Vec<LedgerHold>>, TargetError> {
        let Some(holds) = &self.profile.holds else {
            return Ok(None);
        };
        let values = self.values(&[("sale_id", Value::from(sale_id.to_owned()))]);
        let url = holds.export.render(&values);
        let mut request = self.http.get(&url);
        for (name, value) in &holds.export_headers {
            request = request.header(name, value.render(&values));
        }
        let response = request
            .send()
            .await
            .map_err(|source| TargetError::Unreachable {
                url: self.base_url().to_owned(),
                source,
            })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(TargetError::Refused {
                what: "reading the holds export (holds.export)".to_owned(),
                status: status.as_u16(),
                body: text.chars().take(500).collect(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Export {
            holds: Vec<LedgerHold>,
        }
        serde_json::from_str::<Export>(&text)
            .map(|export| Some(export.holds))
            .map_err(|e| {
                TargetError::Setup(format!(
                    "the holds export (holds.export) is not {{\"holds\": [Hold, ...]}}: {e}"
                ))
            })
    }

    /// The inventory view: units in orders (the service's own figure when its counters report
    /// one, else summed from the orders), and the counters the profile names.
    pub async fn view(
        &self,
        sale_id: &str,
        cap: Option<u64>,
    ) -> Result<InventoryView, TargetError> {
        self.view_with(sale_id, cap, None).await
    }

    /// [`Self::view`], summing `orders` when they were just read instead of reading them again.
    async fn view_with(
        &self,
        sale_id: &str,
        cap: Option<u64>,
        orders: Option<&[LedgerOrder]>,
    ) -> Result<InventoryView, TargetError> {
        let values = self.values(&[
            ("sale_id", Value::from(sale_id.to_owned())),
            ("cap", cap.map(Value::from).unwrap_or(Value::Null)),
        ]);
        let mut view = InventoryView {
            cap,
            redis_counter: None,
            quantity_sold: None,
            units_in_orders: 0,
            units_in_live_holds: None,
        };
        let mut units_reported = None;
        let counters = self.profile.counters.as_ref();
        if let Some(source) = counters.and_then(|c| c.source.as_ref()) {
            match source {
                CounterSource::Http {
                    call,
                    quantity_sold,
                    counter,
                    units_in_orders,
                    units_in_live_holds,
                } => {
                    let answer = self
                        .call_http("reading the counters", call, &values)
                        .await?;
                    let read =
                        |pointer: &Option<String>, key: &str| -> Result<Option<i64>, TargetError> {
                            let Some(pointer) = pointer else {
                                return Ok(None);
                            };
                            match answer.pointer(pointer) {
                                None => Err(TargetError::Profile(
                                    Origin::new(
                                        format!("ground_truth.counters.{key}"),
                                        call.origin.line,
                                    )
                                    .error(format!(
                                        "`{pointer}` matches nothing in {}",
                                        excerpt(&answer)
                                    )),
                                )),
                                Some(found) => Ok(as_i64(found)),
                            }
                        };
                    view.quantity_sold = read(quantity_sold, "quantity_sold")?;
                    view.redis_counter = read(counter, "counter")?;
                    units_reported = read(units_in_orders, "units_in_orders")?;
                    // Lenient: a server without holds (or an older one) reports none, which
                    // only leaves INV-7's samples unjudged.
                    view.units_in_live_holds = units_in_live_holds
                        .as_deref()
                        .and_then(|pointer| answer.pointer(pointer))
                        .and_then(as_i64);
                }
                CounterSource::Sql {
                    origin,
                    database_url,
                    query,
                } => {
                    let pool = self.pool(origin, &database_url.render(&values)).await?;
                    let sql = query.render_sql(&values);
                    let names = column_names(&pool, &sql, origin).await?;
                    let figures = ["quantity_sold", "counter", "units_in_orders"];
                    if !names.iter().any(|n| figures.contains(&n.as_str())) {
                        return Err(TargetError::Profile(origin.error(format!(
                            "the query returns none of quantity_sold, counter, units_in_orders \
                             (it returns {})",
                            names.join(", ")
                        ))));
                    }
                    // Cast in the database, so sum() (numeric) and int4 columns read alike.
                    let cast = |name: &str| {
                        if names.iter().any(|n| n == name) {
                            format!("(q.{name})::bigint")
                        } else {
                            "NULL::bigint".to_owned()
                        }
                    };
                    let wrapped = format!(
                        "SELECT {}, {}, {} FROM ({sql}) AS q LIMIT 1",
                        cast("quantity_sold"),
                        cast("counter"),
                        cast("units_in_orders")
                    );
                    let row = sqlx::query(&wrapped)
                        .fetch_optional(&pool)
                        .await
                        .map_err(|e| {
                            TargetError::Profile(origin.error(format!("the query fails: {e}")))
                        })?;
                    if let Some(row) = row {
                        view.quantity_sold = row.try_get::<Option<i64>, _>(0).ok().flatten();
                        view.redis_counter = row.try_get::<Option<i64>, _>(1).ok().flatten();
                        units_reported = row.try_get::<Option<i64>, _>(2).ok().flatten();
                    }
                }
            }
        }
        if let Some(redis) = counters.and_then(|c| c.redis.as_ref()) {
            let url = redis.url.render(&values);
            let key = redis.key.render(&values);
            let value = read_redis_counter(&url, &key).await.map_err(|e| {
                TargetError::Profile(redis.origin.error(format!("cannot read the counter: {e}")))
            })?;
            view.redis_counter = match (value, redis.counts_remaining, cap) {
                (Some(left), true, Some(cap)) => Some(cap as i64 - left),
                (Some(_), true, None) => None,
                (value, _, _) => value,
            };
        }
        let units_of = |orders: &[LedgerOrder]| orders.iter().map(|o| i64::from(o.quantity)).sum();
        view.units_in_orders = match (units_reported, orders) {
            (Some(units), _) => units,
            (None, Some(orders)) => units_of(orders),
            (None, None) => units_of(&self.orders(sale_id).await?),
        };
        Ok(view)
    }

    /// The ground truth after a run: orders and the inventory view.
    pub async fn ledger(&self, sale_id: &str, cap: Option<u64>) -> Result<Ledger, TargetError> {
        let orders = self.orders(sale_id).await?;
        let inventory = self.view_with(sale_id, cap, Some(&orders)).await?;
        Ok(Ledger { orders, inventory })
    }

    /// Whether the profile can report anything INV-6 compares beyond units in orders.
    pub fn has_counters(&self) -> bool {
        self.profile.counters.is_some()
    }
}

/// The columns a query returns, as PostgreSQL describes it (without running it).
async fn column_names(
    pool: &PgPool,
    sql: &str,
    origin: &Origin,
) -> Result<Vec<String>, TargetError> {
    let described = pool
        .describe(sql)
        .await
        .map_err(|e| TargetError::Profile(origin.error(format!("the query fails: {e}"))))?;
    Ok(described
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect())
}

fn sql_error(what: &str, call: &SqlCall, error: sqlx::Error) -> TargetError {
    TargetError::Profile(call.origin.error(format!("{what}: {error}")))
}

fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A column read as text, whatever its type (text, integers, UUID).
fn text_column(row: &PgRow, name: &str) -> Option<String> {
    row.try_get::<String, _>(name)
        .ok()
        .or_else(|| row.try_get::<i64, _>(name).ok().map(|v| v.to_string()))
        .or_else(|| row.try_get::<i32, _>(name).ok().map(|v| v.to_string()))
        .or_else(|| row.try_get::<Uuid, _>(name).ok().map(|v| v.to_string()))
}

fn order_from_json(
    item: &Value,
    fields: &crate::profile::OrderFields,
    origin: &Origin,
) -> Result<LedgerOrder, TargetError> {
    let field = |pointer: &str, key: &str| {
        pointed_text(item, pointer).ok_or_else(|| {
            TargetError::Profile(
                Origin::new(format!("ground_truth.fields.{key}"), origin.line).error(format!(
                    "`{pointer}` matches no string or number in an order of the export: {}",
                    excerpt(item)
                )),
            )
        })
    };
    let quantity = field(&fields.quantity, "quantity")?;
    let quantity = quantity.parse::<u32>().map_err(|_| {
        TargetError::Profile(
            Origin::new("ground_truth.fields.quantity", origin.line)
                .error(format!("`{quantity}` is not a whole number of units")),
        )
    })?;
    let optional = |pointer: &Option<String>| {
        pointer
            .as_ref()
            .and_then(|p| pointed_text(item, p))
            .unwrap_or_default()
    };
    Ok(LedgerOrder {
        order_id: field(&fields.order_id, "order_id")?,
        buyer_id: field(&fields.buyer_id, "buyer_id")?,
        quantity,
        idempotency_key: optional(&fields.idempotency_key),
        decided_by: Some(optional(&fields.decided_by))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| NOT_REPORTED.to_owned()),
        created_at: optional(&fields.created_at),
    })
}

fn order_from_row(row: &PgRow, origin: &Origin) -> Result<LedgerOrder, TargetError> {
    let bad = |what: &str| TargetError::Profile(origin.error(format!("an order has {what}")));
    let quantity: i64 = row
        .try_get::<Option<i64>, _>(2)
        .ok()
        .flatten()
        .ok_or_else(|| bad("no quantity"))?;
    let created_at: Option<OffsetDateTime> = row.try_get(5).ok().flatten();
    Ok(LedgerOrder {
        order_id: row
            .try_get::<Option<String>, _>(0)
            .ok()
            .flatten()
            .ok_or_else(|| bad("no order_id"))?,
        buyer_id: row
            .try_get::<Option<String>, _>(1)
            .ok()
            .flatten()
            .ok_or_else(|| bad("no buyer_id"))?,
        quantity: u32::try_from(quantity).map_err(|_| bad(&format!("quantity {quantity}")))?,
        idempotency_key: row
            .try_get::<Option<String>, _>(3)
            .ok()
            .flatten()
            .unwrap_or_default(),
        decided_by: row
            .try_get::<Option<String>, _>(4)
            .ok()
            .flatten()
            .unwrap_or_default(),
        created_at: created_at
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default(),
    })
}

/// A next-page link: absolute, or a path relative to the first page's URL.
fn join_url(first: &str, next: &str) -> String {
    match url::Url::parse(first).and_then(|base| base.join(next)) {
        Ok(joined) => joined.to_string(),
        Err(_) => next.to_owned(),
    }
}

async fn read_redis_counter(url: &str, key: &str) -> redis::RedisResult<Option<i64>> {
    let client = redis::Client::open(url)?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    redis::cmd("GET").arg(key).query_async(&mut conn).await
}

impl From<ProfileError> for TargetError {
    fn from(error: ProfileError) -> Self {
        TargetError::Profile(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_resolve_against_the_first_page() {
        assert_eq!(
            join_url("http://127.0.0.1:1/orders?page=1", "/orders?page=2"),
            "http://127.0.0.1:1/orders?page=2"
        );
        assert_eq!(
            join_url("http://127.0.0.1:1/a/orders", "http://127.0.0.1:1/b"),
            "http://127.0.0.1:1/b"
        );
    }
}
