//! Contract conformance: the bad inputs `server/openapi.json` names are refused with the
//! documented status and error code and change nothing; the public sale view agrees with the
//! ledger; `expire` stops sales and is idempotent; `activate` is idempotent.
//!
//! It needs only a base URL and the admin token, so it judges any server that implements the
//! contract. It creates its own sales through [`AdminClient`] and reads the ground truth (order
//! export, inventory view) only through the admin routes. Every request whose answer is judged
//! is sent raw (see `probe.rs`), since most of them are wrong on purpose.
//!
//! The cases, one file per group: `buy.rs` (bad bodies, quantities, keys, sales that cannot be
//! bought from), `admin.rs` (the sale lifecycle, the admin token, unknown ids), `public_view.rs`
//! (`GET /sales/{id}`). docs/contract.md lists them.

mod admin;
mod buy;
mod probe;
mod public_view;

use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::target::AdminClient;
use probe::{Answer, Expected, Snapshot};

/// The verdict on every conformance case, in the order they ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConformanceReport {
    pub cases: Vec<ConformanceCase>,
}

impl ConformanceReport {
    pub fn violations(&self) -> Vec<&ConformanceCase> {
        self.with(|v| matches!(v, ConformanceVerdict::Violated))
    }

    pub fn not_checked(&self) -> Vec<&ConformanceCase> {
        self.with(|v| matches!(v, ConformanceVerdict::NotChecked { .. }))
    }

    pub fn held(&self) -> Vec<&ConformanceCase> {
        self.with(|v| matches!(v, ConformanceVerdict::Held))
    }

    /// True only when every case ran and held.
    pub fn all_held(&self) -> bool {
        !self.cases.is_empty() && self.held().len() == self.cases.len()
    }

    /// One line: "51 cases: 50 held, 1 violated, 0 not checked".
    pub fn summary(&self) -> String {
        format!(
            "{} cases: {} held, {} violated, {} not checked",
            self.cases.len(),
            self.held().len(),
            self.violations().len(),
            self.not_checked().len()
        )
    }

    fn with(&self, keep: impl Fn(&ConformanceVerdict) -> bool) -> Vec<&ConformanceCase> {
        self.cases.iter().filter(|c| keep(&c.verdict)).collect()
    }
}

/// One request (or short exchange) and what the contract says its answer must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConformanceCase {
    /// Stable name, `group/what` (e.g. `buy/quantity-zero`).
    pub name: String,
    /// Method, path and what is wrong with the request.
    pub request: String,
    /// The documented answer: status and error code, or what a success must show.
    pub expected: String,
    /// What the server answered (and, when it did, how the ledger changed).
    pub got: String,
    #[serde(flatten)]
    pub verdict: ConformanceVerdict,
    /// For a request that must change nothing: whether every order export, inventory view and
    /// sale state the check reads was identical before and after. `None` when not compared.
    pub ledger_unchanged: Option<bool>,
}

impl fmt::Display for ConformanceCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match &self.verdict {
            ConformanceVerdict::Held => "held".to_owned(),
            ConformanceVerdict::Violated => "VIOLATED".to_owned(),
            ConformanceVerdict::NotChecked { reason } => format!("not checked ({reason})"),
        };
        write!(
            f,
            "{}: {verdict}; {}; expected {}; got {}",
            self.name, self.request, self.expected, self.got
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ConformanceVerdict {
    Held,
    Violated,
    /// A precondition failed (a sale could not be created, a first order was not made, the
    /// ledger could not be read), so the case says nothing either way.
    NotChecked {
        reason: String,
    },
}

/// Runs every case against the server at `base_url`. Never fails: whatever goes wrong is a
/// case's verdict.
pub async fn check(base_url: &str, admin_token: &str) -> ConformanceReport {
    let mut run = Run::new(base_url, admin_token);
    let mut sales = run.create_sales().await;
    buy::bad_bodies(&mut run, &sales).await;
    buy::keys(&mut run, &sales).await;
    buy::unbuyable_sales(&mut run, &sales).await;
    admin::activate_twice(&mut run, &mut sales).await;
    buy::limited_sale(&mut run, &sales).await;
    admin::expire_stops_sales(&mut run, &sales).await;
    public_view::cases(&mut run, &sales).await;
    admin::tokens(&mut run, &sales).await;
    admin::unknown_ids(&mut run).await;
    run.report
}

/// The sales the check creates, each for its own cases; `Err` says why one could not be made.
pub(crate) struct Sales {
    /// Live, cap [`MAIN_CAP`], no per-buyer limit, one product.
    main: Result<String, String>,
    /// Created but never activated; its window is open.
    scheduled: Result<String, String>,
    /// Activated, its window starts in an hour.
    future: Result<String, String>,
    /// Live; expired by the lifecycle cases.
    expiring: Result<String, String>,
    /// Window open, per-buyer limit [`PER_BUYER_LIMIT`]; activated (twice) by the lifecycle cases.
    limited: Result<String, String>,
}

pub(crate) const MAIN_CAP: u64 = 10;
pub(crate) const PER_BUYER_LIMIT: u64 = 2;
pub(crate) const PRODUCT: &str = "conformance-tee";

/// The state of one conformance run: the clients and the cases so far.
pub(crate) struct Run {
    base_url: String,
    admin_token: String,
    admin: AdminClient,
    http: reqwest::Client,
    /// Every sale created so far, by role: the ledger snapshots cover all of them.
    world: Vec<(&'static str, String)>,
    /// The key and body of an order on the `main` sale, for reusing on another sale.
    used_key: Option<(String, String)>,
    report: ConformanceReport,
}

impl Run {
    fn new(base_url: &str, admin_token: &str) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self {
            admin: AdminClient::new(&base_url, admin_token),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
            base_url,
            admin_token: admin_token.to_owned(),
            world: Vec::new(),
            used_key: None,
            report: ConformanceReport::default(),
        }
    }

    /// A `NewSale` body opening `starts_in` seconds from now for an hour.
    fn new_sale(name: &str, starts_in: i64, cap: u64, per_buyer_limit: Option<u64>) -> Value {
        let now = time::OffsetDateTime::now_utc();
        let rfc3339 = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .expect("a UTC time formats")
        };
        let starts = now + time::Duration::seconds(starts_in);
        let mut body = json!({
            "name": format!("conformance: {name}"),
            "starts_at": rfc3339(starts),
            "ends_at": rfc3339(starts + time::Duration::HOUR),
            "cap": cap,
            "products": [{"product_id": PRODUCT, "sale_price_cents": 1500}],
        });
        if let Some(limit) = per_buyer_limit {
            body["per_buyer_limit"] = json!(limit);
        }
        body
    }

    async fn create_sales(&mut self) -> Sales {
        Sales {
            main: self.sale("main", -1, None, true).await,
            scheduled: self.sale("scheduled", -1, None, false).await,
            future: self.sale("future", 3600, None, true).await,
            expiring: self.sale("expiring", -1, None, true).await,
            limited: self.sale("limited", -1, Some(PER_BUYER_LIMIT), false).await,
        }
    }

    async fn sale(
        &mut self,
        role: &'static str,
        starts_in: i64,
        per_buyer_limit: Option<u64>,
        activate: bool,
    ) -> Result<String, String> {
        let body = Self::new_sale(role, starts_in, MAIN_CAP, per_buyer_limit);
        let id = self
            .admin
            .create_sale(&body)
            .await
            .map_err(|err| format!("the `{role}` sale could not be created: {err}"))?;
        self.world.push((role, id.clone()));
        if activate {
            self.admin
                .activate(&id)
                .await
                .map_err(|err| format!("the `{role}` sale could not be activated: {err}"))?;
        }
        Ok(id)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn push(&mut self, case: ConformanceCase) {
        self.report.cases.push(case);
    }

    /// Records a case that could not run.
    fn not_checked(&mut self, name: &str, request: String, expected: String, reason: &str) {
        self.push(ConformanceCase {
            name: name.to_owned(),
            request,
            expected,
            got: "not sent".to_owned(),
            verdict: ConformanceVerdict::NotChecked {
                reason: reason.to_owned(),
            },
            ledger_unchanged: None,
        });
    }

    /// A request that must be refused with `expected` and change nothing: the ledger of every
    /// sale is read before and after it.
    async fn refusal(
        &mut self,
        name: &str,
        request: String,
        expected: Expected,
        send: reqwest::RequestBuilder,
    ) -> Answer {
        let before = self.snapshot().await;
        let answer = probe::send(send).await;
        let after = self.snapshot().await;
        let mut got = answer.to_string();
        let refused_as_documented = expected.matches(&answer);
        let (ledger_unchanged, unreadable) = match (&before, &after) {
            (Ok(before), Ok(after)) => match before.changes_to(after) {
                None => (Some(true), None),
                Some(change) => {
                    got.push_str(&format!("; and it changed the ledger: {change}"));
                    (Some(false), None)
                }
            },
            (Err(err), _) => (
                None,
                Some(format!("the ledger could not be read before: {err}")),
            ),
            (_, Err(err)) => (
                None,
                Some(format!("the ledger could not be read after: {err}")),
            ),
        };
        let verdict = match (refused_as_documented, ledger_unchanged, unreadable) {
            (false, _, _) | (_, Some(false), _) => ConformanceVerdict::Violated,
            (true, Some(true), _) => ConformanceVerdict::Held,
            (true, _, reason) => ConformanceVerdict::NotChecked {
                reason: reason.unwrap_or_default(),
            },
        };
        self.push(ConformanceCase {
            name: name.to_owned(),
            request,
            expected: expected.to_string(),
            got,
            verdict,
            ledger_unchanged,
        });
        answer
    }

    /// Every created sale's order export, inventory view and public state.
    async fn snapshot(&self) -> Result<Snapshot, String> {
        let mut snapshot = Snapshot::default();
        for (role, id) in &self.world {
            let ledger = self
                .admin
                .ledger(id)
                .await
                .map_err(|err| format!("sale `{role}`: {err}"))?;
            let public = probe::send(self.http.get(self.url(&format!("/sales/{id}")))).await;
            let state = public
                .json
                .as_ref()
                .and_then(|v| v["state"].as_str())
                .map(str::to_owned);
            snapshot.sales.push((role, ledger, state));
        }
        Ok(snapshot)
    }

    /// Whether the case `name` ran and held.
    fn held(&self, name: &str) -> bool {
        self.report
            .cases
            .iter()
            .any(|c| c.name == name && c.verdict == ConformanceVerdict::Held)
    }

    /// A judged exchange that is not a plain refusal.
    fn judged(&mut self, name: &str, request: String, expected: String, outcome: Judged) {
        let (got, verdict) = match outcome {
            Judged::Held(got) => (got, ConformanceVerdict::Held),
            Judged::Violated(got) => (got, ConformanceVerdict::Violated),
        };
        self.push(ConformanceCase {
            name: name.to_owned(),
            request,
            expected,
            got,
            verdict,
            ledger_unchanged: None,
        });
    }
}

/// The verdict of a case judged by its own rule, with what the server answered.
pub(crate) enum Judged {
    Held(String),
    Violated(String),
}
