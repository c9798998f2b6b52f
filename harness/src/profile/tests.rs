//! Reading profiles: the built-in one, and each kind of bad file refused with its key and line.

use super::*;

fn no_vars(_: &str) -> Option<String> {
    None
}

/// A small valid profile of a service shaped unlike ours; tests break one line of it.
const SHOP: &str = r#"name = "shop"

[setup]
kind = "sql"
database_url = "${SHOP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shop}"
statements = ["INSERT INTO drops (stock) VALUES ({cap}) RETURNING id AS sale_id"]

[setup.open]
statements = ["UPDATE drops SET is_open = true WHERE id = {sale_id}"]

[buy]
url = "{base_url}/api/drops/{sale_id}/checkout"
body = { customer = "{buyer_id}", units = "{quantity}" }
order_id = "/purchase/ref"

[[buy.answer]]
status = [200]
pointer = "/result"
equals = ["confirmed"]
outcome = "ok"

[[buy.answer]]
status = [200]
pointer = "/result"
equals = ["sold_out"]
outcome = "sold_out"

[ground_truth]
kind = "sql"
database_url = "${SHOP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shop}"
orders = "SELECT ref AS order_id, customer AS buyer_id, units AS quantity FROM purchases WHERE drop_id = {sale_id}"

[rules]
per_buyer_orders = 1
"#;

fn parse(text: &str) -> Result<Profile, ProfileError> {
    Profile::parse(text, "targets/shop.toml", &no_vars)
}

fn refused(text: &str) -> String {
    parse(text).expect_err("the profile is refused").to_string()
}

#[test]
fn the_built_in_openapi_profile_reads_and_sends_keys() {
    let profile = Profile::openapi("t0ken");
    assert_eq!(profile.name, "openapi");
    assert!(profile.keys_sent());
    assert!(matches!(profile.setup, Setup::Http { open: Some(_), .. }));
    assert!(profile.counters.is_some());
    assert_eq!(
        profile.rules,
        Rules {
            unlimited_sales: true,
            ..Rules::default()
        }
    );
    let Setup::Http { call, .. } = &profile.setup else {
        unreachable!()
    };
    let auth = &call.headers[0].1;
    assert_eq!(auth.render(&Values::new()), "Bearer t0ken");
}

#[test]
fn a_service_without_keys_and_with_sql_everywhere_reads() {
    let profile = parse(SHOP).unwrap();
    assert!(!profile.keys_sent(), "no {{idempotency_key}} anywhere");
    assert_eq!(profile.rules.per_buyer_orders, Some(1));
    let Setup::Sql { call, open } = &profile.setup else {
        panic!("sql set-up")
    };
    assert_eq!(
        call.database_url.render(&Values::new()),
        "postgres://postgres@127.0.0.1:5432/shop"
    );
    assert!(
        matches!(open, Some(Call::Sql(_))),
        "open inherits the database"
    );
}

#[test]
fn an_unknown_placeholder_is_refused_with_its_key_and_line() {
    let err = refused(&SHOP.replace("units = \"{quantity}\"", "units = \"{qty}\""));
    assert!(
        err.contains("targets/shop.toml")
            && err.contains("buy.body.units")
            && err.contains("line 13")
            && err.contains("{qty}"),
        "{err}"
    );
    // A placeholder of the wrong part: a buy knows no cap.
    let err = refused(&SHOP.replace("/checkout\"", "/checkout?max={cap}\""));
    assert!(err.contains("buy.url") && err.contains("{cap}"), "{err}");
}

#[test]
fn a_missing_variable_a_bad_pointer_and_an_unknown_key_are_refused() {
    let err = refused(&SHOP.replace(
        "${SHOP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shop}",
        "${SHOP_DB}",
    ));
    assert!(err.contains("SHOP_DB") && err.contains("line 5"), "{err}");
    let err = refused(&SHOP.replace("\"/purchase/ref\"", "\"purchase.ref\""));
    assert!(
        err.contains("buy.order_id") && err.contains("JSON pointer"),
        "{err}"
    );
    let err = refused(&SHOP.replace(
        "order_id = \"/purchase/ref\"",
        "order_id = \"/purchase/ref\"\norder_ref = 1",
    ));
    assert!(
        err.contains("order_ref") && err.contains("line 15"),
        "{err}"
    );
}

#[test]
fn answers_must_be_able_to_say_ok_and_each_rule_must_be_whole() {
    let no_ok = SHOP.replace(
        "equals = [\"confirmed\"]\noutcome = \"ok\"",
        "equals = [\"confirmed\"]\noutcome = \"rejected\"",
    );
    assert!(refused(&no_ok).contains("outcome = \"ok\""));
    let bad_outcome = SHOP.replace("outcome = \"sold_out\"", "outcome = \"gone\"");
    let err = refused(&bad_outcome);
    assert!(
        err.contains("buy.answer[1]") && err.contains("gone"),
        "{err}"
    );
    let no_equals = SHOP.replace("equals = [\"sold_out\"]\n", "");
    assert!(refused(&no_equals).contains("pointer without equals"));
    let bad_status = SHOP.replacen("status = [200]", "status = [\"2XX\"]", 1);
    assert!(refused(&bad_status).contains("status"));
}

#[test]
fn kinds_and_their_keys_are_checked() {
    let err = refused(&SHOP.replacen("kind = \"sql\"", "kind = \"graphql\"", 1));
    assert!(
        err.contains("setup.kind") && err.contains("graphql"),
        "{err}"
    );
    let err = refused(&SHOP.replacen(
        "kind = \"sql\"",
        "kind = \"existing\"\nsale_id = \"7\"\ncap = 10",
        1,
    ));
    assert!(err.contains("setup.database_url does not belong"), "{err}");
    let existing = SHOP
        .replacen(
            "kind = \"sql\"\ndatabase_url = \"${SHOP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shop}\"\nstatements = [\"INSERT INTO drops (stock) VALUES ({cap}) RETURNING id AS sale_id\"]\n\n[setup.open]\nstatements = [\"UPDATE drops SET is_open = true WHERE id = {sale_id}\"]",
            "kind = \"existing\"\nsale_id = \"${SALE:-42}\"\ncap = 10",
            1,
        );
    let profile = parse(&existing).unwrap();
    assert!(matches!(
        profile.setup,
        Setup::Existing { ref sale_id, cap: Some(10) } if sale_id == "42"
    ));
    let err = refused(&SHOP.replace("kind = \"sql\"\ndatabase_url = \"${SHOP_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/shop}\"\norders", "kind = \"sql\"\norders"));
    assert!(
        err.contains("ground_truth.database_url is missing"),
        "{err}"
    );
}

#[test]
fn a_service_section_checks_its_placeholders() {
    let with_service = format!(
        "{SHOP}\n[service]\nstart = [\"shop\", \"--listen\", \"127.0.0.1:{{service_port}}\", \"--db\", \"{{database_url}}\"]\ndatabase_url = \"postgres://postgres@127.0.0.1:5432/postgres\"\nfresh_database = true\nready = \"{{base_url}}/healthz\"\n"
    );
    let profile = parse(&with_service).unwrap();
    let service = profile.service.unwrap();
    assert!(service.fresh_database);
    let mut values = Values::new();
    values.insert("service_port", serde_json::json!(18090));
    assert_eq!(service.base_url.render(&values), "http://127.0.0.1:18090");
    let err = refused(&with_service.replace("{service_port}\", \"--db\"", "{port}\", \"--db\""));
    assert!(
        err.contains("service.start") && err.contains("{port}"),
        "{err}"
    );
}

#[test]
fn the_shipped_example_shop_profile_reads() {
    let text = include_str!("../../../targets/example-shop.toml");
    let profile = Profile::parse(text, "targets/example-shop.toml", &no_vars).unwrap();
    assert!(profile.keys_sent());
    assert!(matches!(profile.setup, Setup::Sql { open: Some(_), .. }));
    assert!(matches!(profile.ground_truth, GroundTruth::Sql { .. }));
    let service = profile.service.expect("a [service] section");
    assert!(service.fresh_database && service.counter_counts_remaining);
}

#[test]
fn the_reference_server_profile_is_the_openapi_contract_plus_a_service() {
    let text = include_str!("../../../targets/reference-server.toml");
    let profile = Profile::parse(text, "targets/reference-server.toml", &no_vars).unwrap();
    assert!(profile.service.is_some());
    // Everything from [setup] up to [service] is the openapi profile's, the token default aside.
    let contract = |t: &str| {
        let start = t.find("[setup]").unwrap();
        let end = t.find("\n# The server binary").unwrap_or(t.len());
        t[start..end]
            .replace(
                "${FLASHSALE_ADMIN_TOKEN:-harness-started-reference}",
                "${FLASHSALE_ADMIN_TOKEN}",
            )
            .trim_end()
            .to_owned()
    };
    assert_eq!(contract(text), contract(OPENAPI_PROFILE));
}

#[test]
fn the_openapi_profile_has_the_hold_routes_and_a_profile_may_have_none() {
    let profile = Profile::openapi("t");
    let holds = profile.holds.expect("targets/openapi.toml has [holds]");
    let mut values = Values::new();
    values.insert("base_url", serde_json::Value::from("http://h"));
    values.insert("sale_id", serde_json::Value::from("s"));
    values.insert("hold_id", serde_json::Value::from("h1"));
    assert_eq!(
        holds.checkout.render(&values),
        "http://h/sales/s/holds/h1/checkout"
    );
    assert_eq!(holds.export_headers[0].0, "Authorization");
    assert!(
        Profile::parse(SHOP, "shop.toml", &no_vars)
            .unwrap()
            .holds
            .is_none()
    );

    let holds = "\n[holds]\nreserve = \"/holds\"\ncheckout = \"{base_url}/c/{hold_id}\"\n\
                 release = \"{base_url}/r/{hold_id}\"\nexport = \"{base_url}/e/{buyer_id}\"\n";
    let err = Profile::parse(&format!("{SHOP}{holds}"), "shop.toml", &no_vars)
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds.reserve"), "{err}");
    let fixed = holds.replace("\"/holds\"", "\"{base_url}/holds\"");
    let err = Profile::parse(&format!("{SHOP}{fixed}"), "shop.toml", &no_vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("holds.export") && err.contains("buyer_id"),
        "{err}"
    );
}
