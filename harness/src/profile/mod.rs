//! Target profiles: a TOML file that adapts the harness to a flash-sale service whose API is not
//! ours — how a sale comes to exist, how a buy is sent and its answer read, where the ground
//! truth is, which rules the service states, and how to start it for fault runs.
//!
//! The harness talks to every server through a profile; a server implementing
//! `server/openapi.json` uses `targets/openapi.toml`, built in here. Reading a profile checks
//! everything that can be checked without the service: every key and type (the toml crate names
//! the key and its line), every placeholder against the ones its key may use, every JSON pointer's
//! syntax, every `${VAR}`. What needs the service (the set-up's pointer, the ground truth's
//! pointers and columns) is checked by the run before any load, in `target::driver`.
//! `docs/profiles.md` is the reference of the format.

pub mod answers;
pub mod template;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub use self::answers::{AnswerRule, Answers, Meaning, StatusMatch};
pub use self::template::{JsonTemplate, Origin, Template, Values, VarLookup, check_pointer};

/// The profile for servers that implement `server/openapi.json` (the reference server's contract).
pub const OPENAPI_PROFILE: &str = include_str!("../../../targets/openapi.toml");
/// The name `--profile` shows for the built-in contract profile.
pub const OPENAPI_PROFILE_NAME: &str = "targets/openapi.toml";

/// Placeholders each part of a profile may use (docs/profiles.md explains each).
pub mod placeholders {
    pub const SETUP: &[&str] = &[
        "base_url",
        "run_id",
        "sale_name",
        "cap",
        "per_buyer_limit",
        "starts_at",
        "ends_at",
        "product_id",
        "price_cents",
        "products",
        "database_url",
    ];
    pub const PRODUCT: &[&str] = &["product_id", "price_cents"];
    pub const OPEN: &[&str] = &[
        "base_url",
        "run_id",
        "sale_id",
        "cap",
        "starts_at",
        "ends_at",
        "database_url",
    ];
    pub const BUY: &[&str] = &[
        "base_url",
        "sale_id",
        "buyer_id",
        "quantity",
        "idempotency_key",
        "product_id",
    ];
    pub const TRUTH: &[&str] = &["base_url", "run_id", "sale_id", "cap", "database_url"];
    pub const HOLDS: &[&str] = &["base_url", "sale_id", "hold_id"];
    pub const DATABASE: &[&str] = &["database_url"];
    pub const REDIS: &[&str] = &["redis_url"];
    pub const SERVICE: &[&str] = &[
        "service_port",
        "database_url",
        "redis_url",
        "base_url",
        "run_id",
    ];
    pub const COUNTER_KEY: &[&str] = &["sale_id", "run_id"];
    pub const SERVICE_URL: &[&str] = &["service_port"];
}

/// Why a profile cannot be used. All of them are exit status 2, before any load.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read the profile {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("profile {path}: {message}")]
    Toml { path: String, message: String },
    #[error("{key} (line {line}): {problem}")]
    Invalid {
        key: String,
        line: usize,
        problem: String,
    },
    #[error("profile {path}: {error}")]
    In {
        path: String,
        error: Box<ProfileError>,
    },
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The file it was read from (or the built-in's name), for the console and summaries; never
    /// its content, which may hold secrets.
    pub source: String,
    pub name: String,
    pub setup: Setup,
    pub buy: Buy,
    pub ground_truth: GroundTruth,
    pub counters: Option<Counters>,
    pub rules: Rules,
    pub service: Option<Service>,
    /// Where the contract's cart-hold routes are (`[holds]`); `None`: the service has no holds,
    /// buyer journeys buy at once and INV-7 is not checked.
    pub holds: Option<Holds>,
}

/// The cart-hold routes of a service that implements them as `server/openapi.json` does
/// (request and answer shapes are the contract's; the profile says where they are).
#[derive(Debug, Clone)]
pub struct Holds {
    /// `POST`: reserve (`Idempotency-Key`, `{buyer_id, quantity, product_id?, ttl_ms}`).
    pub reserve: Template,
    /// `POST`: check a hold out (`{hold_id}` in the URL).
    pub checkout: Template,
    /// `POST`: release a hold.
    pub release: Template,
    /// `GET`: the sale's holds, `{"holds": [...]}`, oldest first.
    pub export: Template,
    /// Headers of the export (the admin token).
    pub export_headers: Vec<(String, Template)>,
}

/// An HTTP call: method, URL, headers, JSON body.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub origin: Origin,
    pub method: reqwest::Method,
    pub url: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Option<JsonTemplate>,
}

/// SQL statements run in one transaction against a database.
#[derive(Debug, Clone)]
pub struct SqlCall {
    pub origin: Origin,
    pub database_url: Template,
    pub statements: Vec<Template>,
}

/// A call the set-up makes: HTTP or SQL.
#[derive(Debug, Clone)]
pub enum Call {
    Http(HttpCall),
    Sql(SqlCall),
}

/// How the sale of a run comes to exist.
#[derive(Debug, Clone)]
pub enum Setup {
    /// An HTTP call creates it; `sale_id` points at its id in the answer.
    Http {
        call: HttpCall,
        /// The shape of one product in `{products}`.
        product: Option<JsonTemplate>,
        sale_id: String,
        open: Option<Call>,
    },
    /// SQL statements create it; one of them returns a `sale_id` column.
    Sql { call: SqlCall, open: Option<Call> },
    /// A sale that already exists, with its cap stated (`None`: unlimited).
    Existing { sale_id: String, cap: Option<u64> },
}

/// How a buy is sent and its answer read.
#[derive(Debug, Clone)]
pub struct Buy {
    pub call: HttpCall,
    pub answers: Answers,
    /// Whether `{idempotency_key}` appears anywhere in the request: without it the service
    /// takes no keys, and INV-4 cannot be judged.
    pub keys_sent: bool,
}

/// Where each field of an order is in one element of an HTTP export.
#[derive(Debug, Clone)]
pub struct OrderFields {
    pub order_id: String,
    pub buyer_id: String,
    pub quantity: String,
    pub idempotency_key: Option<String>,
    /// Which path decided the order (informational, shown in reports).
    pub decided_by: Option<String>,
    /// When the order was committed (RFC 3339), for INV-1's order of events.
    pub created_at: Option<String>,
}

/// Where the sale's orders are read after the run.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per profile
pub enum GroundTruth {
    Http {
        call: HttpCall,
        /// Pointer to the array of orders in each page.
        orders: String,
        /// Pointer to the next page's URL (absolute, or relative to the first); absent, null or
        /// empty ends the paging.
        next: Option<String>,
        fields: OrderFields,
    },
    /// A query returning columns `order_id`, `buyer_id`, `quantity` and optionally
    /// `idempotency_key`, `decided_by`, `created_at`.
    Sql {
        origin: Origin,
        database_url: Template,
        query: Template,
    },
}

/// The service's own figures of units sold, for INV-6.
#[derive(Debug, Clone)]
pub struct Counters {
    pub source: Option<CounterSource>,
    pub redis: Option<RedisCounter>,
}

/// Where `quantity_sold` (and the service's own `units_in_orders`, and a counter) are read.
#[derive(Debug, Clone)]
pub enum CounterSource {
    Http {
        call: HttpCall,
        quantity_sold: Option<String>,
        counter: Option<String>,
        units_in_orders: Option<String>,
        /// Units in live cart holds (INV-7); optional.
        units_in_live_holds: Option<String>,
    },
    /// A query returning one row with any of `quantity_sold`, `counter`, `units_in_orders`.
    Sql {
        origin: Origin,
        database_url: Template,
        query: Template,
    },
}

/// A counter the harness reads from the service's Redis.
#[derive(Debug, Clone)]
pub struct RedisCounter {
    pub origin: Origin,
    pub url: Template,
    pub key: Template,
    /// The key holds units remaining (counts down) rather than units sold.
    pub counts_remaining: bool,
}

/// Rules the service states and the checker then judges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub per_buyer_units: Option<u64>,
    pub per_buyer_orders: Option<u64>,
    /// False when the service has no unlimited sales: scenarios with `cap = "unlimited"` are refused.
    pub unlimited_sales: bool,
}

/// How to start and stop the service, for fault runs (`[service]`).
#[derive(Debug, Clone)]
pub struct Service {
    pub origin: Origin,
    pub start: Vec<Template>,
    pub env: Vec<(String, Template)>,
    pub base_url: Template,
    pub ready: Template,
    pub ready_within: Duration,
    /// The service's PostgreSQL: its URL, and whether each run gets a fresh database there.
    pub database_url: Option<Template>,
    pub fresh_database: bool,
    pub redis_url: Option<Template>,
    /// The key of the service's own Redis counter, for NEM-rollback.
    pub counter_key: Option<Template>,
    pub counter_counts_remaining: bool,
    /// Fixed local ports the fault proxies listen on (0: any free port, passed as placeholders).
    pub redis_proxy_port: u16,
    pub postgres_proxy_port: u16,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    setup: Spanned<RawSetup>,
    buy: Spanned<RawBuy>,
    ground_truth: Spanned<RawGroundTruth>,
    #[serde(default)]
    rules: RawRules,
    service: Option<Spanned<RawService>>,
    holds: Option<Spanned<RawHolds>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHolds {
    reserve: Spanned<String>,
    checkout: Spanned<String>,
    release: Spanned<String>,
    export: Spanned<String>,
    #[serde(default)]
    export_headers: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetup {
    kind: Spanned<String>,
    method: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Option<Spanned<toml::Value>>,
    product: Option<Spanned<toml::Value>>,
    sale_id: Option<Spanned<String>>,
    database_url: Option<Spanned<String>>,
    statements: Option<Spanned<Vec<String>>>,
    cap: Option<Spanned<toml::Value>>,
    open: Option<Spanned<RawCall>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    method: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Option<Spanned<toml::Value>>,
    database_url: Option<Spanned<String>>,
    statements: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuy {
    method: Option<Spanned<String>>,
    url: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Option<Spanned<toml::Value>>,
    order_id: Spanned<String>,
    code: Option<Spanned<String>>,
    #[serde(default)]
    answer: Vec<Spanned<RawAnswer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    status: Option<toml::Value>,
    pointer: Option<String>,
    equals: Option<toml::Value>,
    outcome: String,
    code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroundTruth {
    kind: Spanned<String>,
    method: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    orders: Spanned<String>,
    next: Option<Spanned<String>>,
    fields: Option<Spanned<RawFields>>,
    database_url: Option<Spanned<String>>,
    counters: Option<Spanned<RawCounters>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    order_id: String,
    buyer_id: String,
    quantity: String,
    idempotency_key: Option<String>,
    decided_by: Option<String>,
    created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounters {
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    quantity_sold: Option<String>,
    counter: Option<String>,
    units_in_orders: Option<String>,
    units_in_live_holds: Option<String>,
    query: Option<Spanned<String>>,
    database_url: Option<Spanned<String>>,
    redis_url: Option<Spanned<String>>,
    redis_key: Option<Spanned<String>>,
    redis_counts: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    per_buyer_units: Option<u64>,
    per_buyer_orders: Option<u64>,
    unlimited_sales: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    start: Spanned<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    base_url: Option<Spanned<String>>,
    ready: Option<Spanned<String>>,
    #[serde(default, with = "humantime_serde::option")]
    ready_within: Option<Duration>,
    database_url: Option<Spanned<String>>,
    #[serde(default)]
    fresh_database: bool,
    redis_url: Option<Spanned<String>>,
    counter_key: Option<Spanned<String>>,
    counter_counts: Option<Spanned<String>>,
    #[serde(default)]
    redis_proxy_port: u16,
    #[serde(default)]
    postgres_proxy_port: u16,
}

impl Profile {
    /// Reads and checks a profile file; `vars` resolves `${VAR}`.
    pub fn load(path: &Path, vars: VarLookup) -> Result<Profile, ProfileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: shown.clone(),
            source,
        })?;
        Profile::parse(&text, &shown, vars)
    }

    /// The built-in profile of `server/openapi.json`; `admin_token` fills `${FLASHSALE_ADMIN_TOKEN}`.
    pub fn openapi(admin_token: &str) -> Profile {
        let token = admin_token.to_owned();
        let vars = move |name: &str| (name == "FLASHSALE_ADMIN_TOKEN").then(|| token.clone());
        Profile::parse(OPENAPI_PROFILE, OPENAPI_PROFILE_NAME, &vars)
            .expect("the built-in openapi profile is valid (tested)")
    }

    /// Parses a profile's text; `source` names it in messages.
    pub fn parse(text: &str, source: &str, vars: VarLookup) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Toml {
            path: source.to_owned(),
            message: e.to_string(),
        })?;
        let reader = Reader { text, vars };
        reader
            .profile(raw, source)
            .map_err(|error| ProfileError::In {
                path: source.to_owned(),
                error: Box::new(error),
            })
    }

    /// Whether the service takes idempotency keys.
    pub fn keys_sent(&self) -> bool {
        self.buy.keys_sent
    }

    /// Whether the set-up passes a scenario's `per_buyer_limit` to the service (the placeholder
    /// appears in it), or the profile states a per-buyer limit of its own: otherwise a scenario
    /// with a limit would judge INV-9 against a sale that has none.
    pub fn sets_per_buyer_limit(&self) -> bool {
        const NAME: &str = "per_buyer_limit";
        let http = |call: &HttpCall| {
            call.url.placeholders().any(|p| p == NAME)
                || call
                    .headers
                    .iter()
                    .any(|(_, h)| h.placeholders().any(|p| p == NAME))
                || call
                    .body
                    .as_ref()
                    .is_some_and(|b| b.placeholders().contains(&NAME))
        };
        let sql = |call: &SqlCall| {
            call.statements
                .iter()
                .any(|s| s.placeholders().any(|p| p == NAME))
        };
        let in_setup = match &self.setup {
            Setup::Http { call, .. } => http(call),
            Setup::Sql { call, .. } => sql(call),
            Setup::Existing { .. } => false,
        };
        in_setup || self.rules.per_buyer_units.is_some()
    }
}

/// Turns the file as written into a checked profile, with line numbers for every message.
struct Reader<'a> {
    text: &'a str,
    vars: VarLookup<'a>,
}

impl Reader<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn origin<T>(&self, key: &str, spanned: &Spanned<T>) -> Origin {
        Origin::new(key, self.line(spanned.span()))
    }

    fn template(
        &self,
        key: &str,
        value: &Spanned<String>,
        allowed: &[&str],
    ) -> Result<Template, ProfileError> {
        Template::parse(
            value.get_ref(),
            allowed,
            self.vars,
            &self.origin(key, value),
        )
    }

    fn json(
        &self,
        key: &str,
        value: &Spanned<toml::Value>,
        allowed: &[&str],
    ) -> Result<JsonTemplate, ProfileError> {
        JsonTemplate::parse(
            value.get_ref(),
            allowed,
            self.vars,
            &self.origin(key, value),
        )
    }

    fn pointer(&self, key: &str, value: &Spanned<String>) -> Result<String, ProfileError> {
        check_pointer(value.get_ref(), &self.origin(key, value))?;
        Ok(value.get_ref().clone())
    }

    fn profile(&self, raw: RawProfile, source: &str) -> Result<Profile, ProfileError> {
        let setup = self.setup(&raw.setup)?;
        let buy = self.buy(&raw.buy)?;
        let (ground_truth, counters) = self.ground_truth(&raw.ground_truth)?;
        let service = raw
            .service
            .as_ref()
            .map(|service| self.service(service))
            .transpose()?;
        let holds = raw
            .holds
            .as_ref()
            .map(|holds| self.holds(holds))
            .transpose()?;
        let rules = Rules {
            per_buyer_units: raw.rules.per_buyer_units,
            per_buyer_orders: raw.rules.per_buyer_orders,
            unlimited_sales: raw.rules.unlimited_sales.unwrap_or(true),
        };
        for (key, limit) in [
            ("rules.per_buyer_units", rules.per_buyer_units),
            ("rules.per_buyer_orders", rules.per_buyer_orders),
        ] {
            if limit == Some(0) {
                return Err(Origin::new(key, 1).error("a limit of 0 lets nobody buy; leave it out"));
            }
        }
        Ok(Profile {
            source: source.to_owned(),
            name: raw.name.unwrap_or_else(|| {
                Path::new(source)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| source.to_owned())
            }),
            setup,
            buy,
            ground_truth,
            counters,
            rules,
            service,
            holds,
        })
    }

    fn holds(&self, raw: &Spanned<RawHolds>) -> Result<Holds, ProfileError> {
        let r = raw.get_ref();
        let url = |key: &str, value: &Spanned<String>| {
            let template = self.template(&format!("holds.{key}"), value, placeholders::HOLDS)?;
            let text = value.get_ref();
            if !(text.starts_with("http") || text.starts_with("{base_url}")) {
                return Err(self.origin(&format!("holds.{key}"), value).error(
                    "a URL starts with http://, https:// or {base_url} (the --target URL)",
                ));
            }
            Ok(template)
        };
        let mut export_headers = Vec::with_capacity(r.export_headers.len());
        for (name, value) in &r.export_headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self
                    .origin("holds.export_headers", value)
                    .error(format!("`{name}` is not a valid header name")));
            }
            export_headers.push((
                name.clone(),
                self.template(
                    &format!("holds.export_headers.{name}"),
                    value,
                    placeholders::HOLDS,
                )?,
            ));
        }
        Ok(Holds {
            reserve: url("reserve", &r.reserve)?,
            checkout: url("checkout", &r.checkout)?,
            release: url("release", &r.release)?,
            export: url("export", &r.export)?,
            export_headers,
        })
    }

    fn method(
        &self,
        key: &str,
        method: Option<&Spanned<String>>,
        default: reqwest::Method,
    ) -> Result<reqwest::Method, ProfileError> {
        let Some(method) = method else {
            return Ok(default);
        };
        let text = method.get_ref().to_ascii_uppercase();
        match text.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => {
                Ok(reqwest::Method::from_bytes(text.as_bytes()).expect("a standard method"))
            }
            _ => Err(self.origin(key, method).error(format!(
                "method `{}` is not one of GET, POST, PUT, PATCH, DELETE",
                method.get_ref()
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn http_call(
        &self,
        key: &str,
        at: &Origin,
        method: Option<&Spanned<String>>,
        default_method: reqwest::Method,
        url: Option<&Spanned<String>>,
        headers: &BTreeMap<String, Spanned<String>>,
        body: Option<&Spanned<toml::Value>>,
        allowed: &[&str],
    ) -> Result<HttpCall, ProfileError> {
        let url = url.ok_or_else(|| at.error(format!("{key}.url is missing")))?;
        let url_template = self.template(&format!("{key}.url"), url, allowed)?;
        let rendered_shape = url.get_ref();
        if !(rendered_shape.starts_with("http://")
            || rendered_shape.starts_with("https://")
            || rendered_shape.starts_with("{base_url}")
            || rendered_shape.starts_with("${"))
        {
            return Err(self
                .origin(&format!("{key}.url"), url)
                .error("a URL starts with http://, https:// or {base_url} (the --target URL)"));
        }
        let mut header_templates = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(self
                    .origin(&format!("{key}.headers"), value)
                    .error(format!("`{name}` is not a valid header name")));
            }
            header_templates.push((
                name.clone(),
                self.template(&format!("{key}.headers.{name}"), value, allowed)?,
            ));
        }
        let body = body
            .map(|b| self.json(&format!("{key}.body"), b, allowed))
            .transpose()?;
        Ok(HttpCall {
            origin: Origin::new(key, at.line),
            method: self.method(&format!("{key}.method"), method, default_method)?,
            url: url_template,
            headers: header_templates,
            body,
        })
    }

    fn sql_call(
        &self,
        key: &str,
        at: &Origin,
        database_url: Option<&Spanned<String>>,
        inherited_database: Option<&Template>,
        statements: &Spanned<Vec<String>>,
        allowed: &[&str],
    ) -> Result<SqlCall, ProfileError> {
        let database_url = match (database_url, inherited_database) {
            (Some(url), _) => {
                self.template(&format!("{key}.database_url"), url, placeholders::DATABASE)?
            }
            (None, Some(inherited)) => inherited.clone(),
            (None, None) => {
                return Err(at.error(format!(
                    "{key}.database_url is missing: the SQL runs against the service's database, e.g. \
                     database_url = \"${{SHOP_DATABASE_URL}}\" or \"{{database_url}}\" with [service] database_url"
                )));
            }
        };
        let origin = self.origin(&format!("{key}.statements"), statements);
        if statements.get_ref().is_empty() {
            return Err(origin.error("no statements to run"));
        }
        let statements = statements
            .get_ref()
            .iter()
            .map(|s| Template::parse(s, allowed, self.vars, &origin))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SqlCall {
            origin,
            database_url,
            statements,
        })
    }

    fn setup(&self, raw: &Spanned<RawSetup>) -> Result<Setup, ProfileError> {
        let at = self.origin("setup", raw);
        let r = raw.get_ref();
        let kind_at = self.origin("setup.kind", &r.kind);
        let only = |allowed: &[&str]| -> Result<(), ProfileError> {
            let present = [
                ("method", r.method.is_some()),
                ("url", r.url.is_some()),
                ("headers", !r.headers.is_empty()),
                ("body", r.body.is_some()),
                ("product", r.product.is_some()),
                ("sale_id", r.sale_id.is_some()),
                ("database_url", r.database_url.is_some()),
                ("statements", r.statements.is_some()),
                ("cap", r.cap.is_some()),
                ("open", r.open.is_some()),
            ];
            match present
                .iter()
                .find(|(name, there)| *there && !allowed.contains(name))
            {
                Some((name, _)) => Err(kind_at.error(format!(
                    "setup.{name} does not belong to a set-up of kind \"{}\" (it takes {})",
                    r.kind.get_ref(),
                    allowed.join(", ")
                ))),
                None => Ok(()),
            }
        };
        match r.kind.get_ref().as_str() {
            "http" => {
                only(&[
                    "method", "url", "headers", "body", "product", "sale_id", "open",
                ])?;
                let call = self.http_call(
                    "setup",
                    &at,
                    r.method.as_ref(),
                    reqwest::Method::POST,
                    r.url.as_ref(),
                    &r.headers,
                    r.body.as_ref(),
                    placeholders::SETUP,
                )?;
                let sale_id = r.sale_id.as_ref().ok_or_else(|| {
                    at.error("setup.sale_id is missing: the JSON pointer to the new sale's id in the answer, e.g. \"/id\"")
                })?;
                Ok(Setup::Http {
                    call,
                    product: r
                        .product
                        .as_ref()
                        .map(|p| self.json("setup.product", p, placeholders::PRODUCT))
                        .transpose()?,
                    sale_id: self.pointer("setup.sale_id", sale_id)?,
                    open: self.open(r.open.as_ref(), None)?,
                })
            }
            "sql" => {
                only(&["database_url", "statements", "open"])?;
                let statements = r.statements.as_ref().ok_or_else(|| {
                    at.error("setup.statements is missing: the SQL that creates the sale, one statement returning a sale_id column")
                })?;
                let call = self.sql_call(
                    "setup",
                    &at,
                    r.database_url.as_ref(),
                    None,
                    statements,
                    placeholders::SETUP,
                )?;
                let open = self.open(r.open.as_ref(), Some(&call.database_url))?;
                Ok(Setup::Sql { call, open })
            }
            "existing" => {
                only(&["sale_id", "cap"])?;
                let sale_id = r.sale_id.as_ref().ok_or_else(|| {
                    at.error("setup.sale_id is missing: the id of the existing sale")
                })?;
                let sale_id = self
                    .template("setup.sale_id", sale_id, &[])?
                    .render(&Values::new());
                let cap = match r.cap.as_ref() {
                    None => {
                        return Err(at.error(
                            "setup.cap is missing: state the existing sale's cap (a number, or \"unlimited\")",
                        ));
                    }
                    Some(cap) => match cap.get_ref() {
                        toml::Value::Integer(n) if *n >= 0 => Some(*n as u64),
                        toml::Value::String(s) if s == "unlimited" => None,
                        _ => {
                            return Err(self
                                .origin("setup.cap", cap)
                                .error("the cap is a whole number ≥ 0 or \"unlimited\""));
                        }
                    },
                };
                Ok(Setup::Existing { sale_id, cap })
            }
            other => Err(kind_at.error(format!(
                "kind \"{other}\" is not one of \"http\" (a call creates the sale), \"sql\" (statements \
                 create it) or \"existing\" (a sale named by id)"
            ))),
        }
    }

    fn open(
        &self,
        raw: Option<&Spanned<RawCall>>,
        inherited_database: Option<&Template>,
    ) -> Result<Option<Call>, ProfileError> {
        let Some(raw) = raw else { return Ok(None) };
        let at = self.origin("setup.open", raw);
        let r = raw.get_ref();
        match (&r.url, &r.statements) {
            (Some(_), None) => Ok(Some(Call::Http(self.http_call(
                "setup.open",
                &at,
                r.method.as_ref(),
                reqwest::Method::POST,
                r.url.as_ref(),
                &r.headers,
                r.body.as_ref(),
                placeholders::OPEN,
            )?))),
            (None, Some(statements)) => Ok(Some(Call::Sql(self.sql_call(
                "setup.open",
                &at,
                r.database_url.as_ref(),
                inherited_database,
                statements,
                placeholders::OPEN,
            )?))),
            _ => Err(at.error(
                "setup.open is either an HTTP call (url, method, headers, body) or SQL (statements), \
                 exactly one of the two",
            )),
        }
    }

    fn buy(&self, raw: &Spanned<RawBuy>) -> Result<Buy, ProfileError> {
        let at = self.origin("buy", raw);
        let r = raw.get_ref();
        let call = self.http_call(
            "buy",
            &at,
            r.method.as_ref(),
            reqwest::Method::POST,
            Some(&r.url),
            &r.headers,
            r.body.as_ref(),
            placeholders::BUY,
        )?;
        let keys_sent = call.url.placeholders().any(|p| p == "idempotency_key")
            || call
                .headers
                .iter()
                .any(|(_, h)| h.placeholders().any(|p| p == "idempotency_key"))
            || call
                .body
                .as_ref()
                .is_some_and(|b| b.placeholders().contains(&"idempotency_key"));
        if r.answer.is_empty() {
            return Err(at.error(
                "no [[buy.answer]] rules: say which answers mean ok, sold_out, rejected (anything \
                 unmatched is unknown)",
            ));
        }
        let mut rules = Vec::with_capacity(r.answer.len());
        for (i, rule) in r.answer.iter().enumerate() {
            rules.push(self.answer_rule(i, rule)?);
        }
        if !rules.iter().any(|rule| rule.meaning == Meaning::Ok) {
            return Err(
                at.error("no [[buy.answer]] rule has outcome = \"ok\": no buy could ever succeed")
            );
        }
        Ok(Buy {
            call,
            answers: Answers {
                rules,
                order_id: self.pointer("buy.order_id", &r.order_id)?,
                code: r
                    .code
                    .as_ref()
                    .map(|c| self.pointer("buy.code", c))
                    .transpose()?,
            },
            keys_sent,
        })
    }

    fn answer_rule(
        &self,
        index: usize,
        raw: &Spanned<RawAnswer>,
    ) -> Result<AnswerRule, ProfileError> {
        let at = self.origin(&format!("buy.answer[{index}]"), raw);
        let r = raw.get_ref();
        let meaning = Meaning::parse(&r.outcome).ok_or_else(|| {
            at.error(format!(
                "outcome \"{}\" is not one of ok, sold_out, rejected, unknown",
                r.outcome
            ))
        })?;
        let statuses = match &r.status {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items.clone(),
            Some(one) => vec![one.clone()],
        };
        let status = statuses
            .iter()
            .map(|s| {
                StatusMatch::parse(s).ok_or_else(|| {
                    at.error(format!(
                        "status {s} is neither an HTTP status (100–599) nor a class like \"4xx\""
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let equals = match &r.equals {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items.iter().map(toml_to_json).collect(),
            Some(one) => vec![toml_to_json(one)],
        };
        match (&r.pointer, equals.is_empty()) {
            (Some(_), true) => {
                return Err(
                    at.error("pointer without equals: list the values that mean this outcome")
                );
            }
            (None, false) => {
                return Err(
                    at.error("equals without pointer: say where in the answer the value is")
                );
            }
            _ => {}
        }
        if let Some(pointer) = &r.pointer {
            check_pointer(pointer, &at)?;
        }
        if let Some(code) = &r.code {
            check_pointer(code, &at)?;
        }
        if status.is_empty() && r.pointer.is_none() {
            return Err(at.error(
                "a rule with neither status nor pointer matches every answer; give a status (e.g. \
                 [201] or \"4xx\") or a pointer with equals",
            ));
        }
        Ok(AnswerRule {
            status,
            pointer: r.pointer.clone(),
            equals,
            meaning,
            code: r.code.clone(),
        })
    }

    fn ground_truth(
        &self,
        raw: &Spanned<RawGroundTruth>,
    ) -> Result<(GroundTruth, Option<Counters>), ProfileError> {
        let at = self.origin("ground_truth", raw);
        let r = raw.get_ref();
        let truth = match r.kind.get_ref().as_str() {
            "http" => {
                let call = self.http_call(
                    "ground_truth",
                    &at,
                    r.method.as_ref(),
                    reqwest::Method::GET,
                    r.url.as_ref(),
                    &r.headers,
                    None,
                    placeholders::TRUTH,
                )?;
                let fields = r.fields.as_ref().ok_or_else(|| {
                    at.error(
                        "[ground_truth.fields] is missing: pointers to order_id, buyer_id, quantity \
                         (and idempotency_key) inside one order of the export",
                    )
                })?;
                let fields_at = self.origin("ground_truth.fields", fields);
                let f = fields.get_ref();
                for pointer in [&f.order_id, &f.buyer_id, &f.quantity]
                    .into_iter()
                    .chain(f.idempotency_key.as_ref())
                    .chain(f.decided_by.as_ref())
                    .chain(f.created_at.as_ref())
                {
                    check_pointer(pointer, &fields_at)?;
                }
                GroundTruth::Http {
                    call,
                    orders: self.pointer("ground_truth.orders", &r.orders)?,
                    next: r
                        .next
                        .as_ref()
                        .map(|n| self.pointer("ground_truth.next", n))
                        .transpose()?,
                    fields: OrderFields {
                        order_id: f.order_id.clone(),
                        buyer_id: f.buyer_id.clone(),
                        quantity: f.quantity.clone(),
                        idempotency_key: f.idempotency_key.clone(),
                        decided_by: f.decided_by.clone(),
                        created_at: f.created_at.clone(),
                    },
                }
            }
            "sql" => {
                if r.url.is_some() || r.fields.is_some() || r.next.is_some() {
                    return Err(self.origin("ground_truth.kind", &r.kind).error(
                        "a ground truth of kind \"sql\" takes database_url and orders (the query); \
                         url, fields and next belong to kind \"http\"",
                    ));
                }
                let database_url = r.database_url.as_ref().ok_or_else(|| {
                    at.error(
                        "ground_truth.database_url is missing: where the service keeps its orders",
                    )
                })?;
                GroundTruth::Sql {
                    origin: self.origin("ground_truth.orders", &r.orders),
                    database_url: self.template(
                        "ground_truth.database_url",
                        database_url,
                        placeholders::DATABASE,
                    )?,
                    query: self.template("ground_truth.orders", &r.orders, placeholders::TRUTH)?,
                }
            }
            other => {
                return Err(self.origin("ground_truth.kind", &r.kind).error(format!(
                    "kind \"{other}\" is not one of \"http\" (an export route) or \"sql\" (a query)"
                )));
            }
        };
        let default_database = match &truth {
            GroundTruth::Sql { database_url, .. } => Some(database_url.clone()),
            GroundTruth::Http { .. } => None,
        };
        let counters = r
            .counters
            .as_ref()
            .map(|c| self.counters(c, default_database.as_ref()))
            .transpose()?;
        Ok((truth, counters))
    }

    fn counters(
        &self,
        raw: &Spanned<RawCounters>,
        default_database: Option<&Template>,
    ) -> Result<Counters, ProfileError> {
        let at = self.origin("ground_truth.counters", raw);
        let r = raw.get_ref();
        let pointers = [&r.quantity_sold, &r.counter, &r.units_in_orders];
        for pointer in pointers
            .iter()
            .copied()
            .chain([&r.units_in_live_holds])
            .flatten()
        {
            check_pointer(pointer, &at)?;
        }
        let source = match (&r.url, &r.query) {
            (Some(_), Some(_)) => {
                return Err(at.error("counters come from url (HTTP) or query (SQL), not both"));
            }
            (Some(_), None) => {
                if pointers.iter().all(|p| p.is_none()) {
                    return Err(at.error(
                        "an HTTP counters source needs at least one of quantity_sold, counter, units_in_orders (pointers)",
                    ));
                }
                Some(CounterSource::Http {
                    call: self.http_call(
                        "ground_truth.counters",
                        &at,
                        None,
                        reqwest::Method::GET,
                        r.url.as_ref(),
                        &r.headers,
                        None,
                        placeholders::TRUTH,
                    )?,
                    quantity_sold: r.quantity_sold.clone(),
                    counter: r.counter.clone(),
                    units_in_orders: r.units_in_orders.clone(),
                    units_in_live_holds: r.units_in_live_holds.clone(),
                })
            }
            (None, Some(query)) => {
                let database_url = match (&r.database_url, default_database) {
                    (Some(url), _) => self.template(
                        "ground_truth.counters.database_url",
                        url,
                        placeholders::DATABASE,
                    )?,
                    (None, Some(inherited)) => inherited.clone(),
                    (None, None) => {
                        return Err(at.error("ground_truth.counters.database_url is missing"));
                    }
                };
                Some(CounterSource::Sql {
                    origin: self.origin("ground_truth.counters.query", query),
                    database_url,
                    query: self.template(
                        "ground_truth.counters.query",
                        query,
                        placeholders::TRUTH,
                    )?,
                })
            }
            (None, None) => None,
        };
        let redis = match (&r.redis_url, &r.redis_key) {
            (Some(url), Some(key)) => {
                let counts_remaining = match r.redis_counts.as_ref() {
                    None => false,
                    Some(counts) => match counts.get_ref().as_str() {
                        "sold" => false,
                        "remaining" => true,
                        other => {
                            return Err(self.origin("ground_truth.counters.redis_counts", counts).error(
                                format!("\"{other}\" is not \"sold\" (counts up) or \"remaining\" (counts down)"),
                            ));
                        }
                    },
                };
                Some(RedisCounter {
                    origin: self.origin("ground_truth.counters.redis_key", key),
                    url: self.template(
                        "ground_truth.counters.redis_url",
                        url,
                        placeholders::REDIS,
                    )?,
                    key: self.template(
                        "ground_truth.counters.redis_key",
                        key,
                        placeholders::TRUTH,
                    )?,
                    counts_remaining,
                })
            }
            (None, None) => None,
            _ => {
                return Err(at.error(
                    "redis_url and redis_key go together: where the counter is, and its key",
                ));
            }
        };
        if source.is_none() && redis.is_none() {
            return Err(at.error(
                "[ground_truth.counters] names no source: give url (HTTP) or query (SQL), and/or redis_url with redis_key",
            ));
        }
        Ok(Counters { source, redis })
    }

    fn service(&self, raw: &Spanned<RawService>) -> Result<Service, ProfileError> {
        let at = self.origin("service", raw);
        let r = raw.get_ref();
        let start_at = self.origin("service.start", &r.start);
        if r.start.get_ref().is_empty() {
            return Err(start_at.error(
                "the command that starts the service, as a list: [\"program\", \"arg\", …]",
            ));
        }
        let start = r
            .start
            .get_ref()
            .iter()
            .map(|arg| Template::parse(arg, placeholders::SERVICE, self.vars, &start_at))
            .collect::<Result<Vec<_>, _>>()?;
        let env = r
            .env
            .iter()
            .map(|(name, value)| {
                Ok((
                    name.clone(),
                    self.template(&format!("service.env.{name}"), value, placeholders::SERVICE)?,
                ))
            })
            .collect::<Result<Vec<_>, ProfileError>>()?;
        let base_url = match &r.base_url {
            Some(url) => self.template("service.base_url", url, placeholders::SERVICE_URL)?,
            None => Template::parse(
                "http://127.0.0.1:{service_port}",
                placeholders::SERVICE_URL,
                self.vars,
                &at,
            )?,
        };
        let ready = match &r.ready {
            Some(url) => self.template("service.ready", url, placeholders::SERVICE)?,
            None => Template::parse("{base_url}/health", placeholders::SERVICE, self.vars, &at)?,
        };
        if r.fresh_database && r.database_url.is_none() {
            return Err(at.error(
                "fresh_database needs database_url: the PostgreSQL server on which each run's database is created",
            ));
        }
        let counter_counts_remaining = match r.counter_counts.as_ref() {
            None => false,
            Some(counts) => match counts.get_ref().as_str() {
                "sold" => false,
                "remaining" => true,
                other => {
                    return Err(self.origin("service.counter_counts", counts).error(format!(
                        "\"{other}\" is not \"sold\" (counts up) or \"remaining\" (counts down)"
                    )));
                }
            },
        };
        Ok(Service {
            origin: at,
            start,
            env,
            base_url,
            ready,
            ready_within: r.ready_within.unwrap_or(Duration::from_secs(60)),
            database_url: r
                .database_url
                .as_ref()
                .map(|u| self.template("service.database_url", u, &[]))
                .transpose()?,
            fresh_database: r.fresh_database,
            redis_url: r
                .redis_url
                .as_ref()
                .map(|u| self.template("service.redis_url", u, &[]))
                .transpose()?,
            counter_key: r
                .counter_key
                .as_ref()
                .map(|k| self.template("service.counter_key", k, placeholders::COUNTER_KEY))
                .transpose()?,
            counter_counts_remaining,
            redis_proxy_port: r.redis_proxy_port,
            postgres_proxy_port: r.postgres_proxy_port,
        })
    }
}

fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::from(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::from(*b),
        toml::Value::Datetime(d) => serde_json::Value::from(d.to_string()),
        toml::Value::Array(items) => items.iter().map(toml_to_json).collect(),
        toml::Value::Table(table) => table
            .iter()
            .map(|(k, v)| (k.clone(), toml_to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests;
