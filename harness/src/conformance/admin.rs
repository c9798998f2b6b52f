//! The admin side: `activate` is idempotent, `expire` stops sales and is idempotent, an expired
//! sale cannot be reactivated, every admin route refuses a wrong or missing token, and an
//! unknown sale id is `sale_not_found` on each.

use serde_json::Value;
use uuid::Uuid;

use super::probe::{self, Answer, Expected};
use super::{Judged, Run, Sales};

const UNAUTHORIZED: Expected = Expected::new(401, "unauthorized");
const SALE_NOT_FOUND: Expected = Expected::new(404, "sale_not_found");
const SALE_NOT_LIVE: Expected = Expected::new(409, "sale_not_live");
const INVALID_TRANSITION: Expected = Expected::new(409, "invalid_state_transition");

impl Run {
    fn transition(&self, sale: &str, to: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(&format!("/admin/sales/{sale}/{to}")))
            .bearer_auth(&self.admin_token)
    }
}

/// A `Sale` answer in `state`, with status 200.
fn sale_in_state(answer: &Answer, state: &str) -> bool {
    answer.status == Some(200)
        && answer.json.as_ref().and_then(|j| j["state"].as_str()) == Some(state)
}

fn state_text(answer: &Answer) -> String {
    match answer.json.as_ref().and_then(|j| j["state"].as_str()) {
        Some(state) => format!("{answer}, state {state}"),
        None => answer.to_string(),
    }
}

/// The fields the contract's `Sale` documents, for comparing two answers about one sale.
fn terms(answer: &Answer) -> Option<Value> {
    let sale = answer.json.as_ref()?;
    let fields = [
        "id",
        "name",
        "starts_at",
        "ends_at",
        "state",
        "cap",
        "per_buyer_limit",
        "products",
    ];
    Some(
        fields
            .iter()
            .map(|f| sale.get(*f).cloned().unwrap_or(Value::Null))
            .collect(),
    )
}

/// Activates the `limited` sale twice: 200 and `active` both times, the same sale both times.
/// If the first activation fails, the cases that need `limited` live are not checked.
pub(super) async fn activate_twice(run: &mut Run, sales: &mut Sales) {
    let expected = "200, the sale in state `active`";
    let Ok(limited) = sales.limited.clone() else {
        let reason = sales.limited.clone().unwrap_err();
        run.not_checked(
            "admin/activate",
            "POST /admin/sales/{sale}/activate".into(),
            expected.into(),
            &reason,
        );
        run.not_checked(
            "admin/activate-again",
            "POST /admin/sales/{sale}/activate".into(),
            expected.into(),
            &reason,
        );
        return;
    };
    let first = probe::send(run.transition(&limited, "activate")).await;
    let request = format!("POST /admin/sales/{limited}/activate on a scheduled sale");
    let got = state_text(&first);
    let held = sale_in_state(&first, "active");
    run.judged(
        "admin/activate",
        request,
        expected.into(),
        if held {
            Judged::Held(got)
        } else {
            Judged::Violated(got)
        },
    );
    if !held {
        sales.limited = Err(format!(
            "activating the `limited` sale was answered {}",
            state_text(&first)
        ));
        run.not_checked(
            "admin/activate-again",
            format!("POST /admin/sales/{limited}/activate a second time"),
            expected.into(),
            "the first activation did not succeed",
        );
        return;
    }
    let second = probe::send(run.transition(&limited, "activate")).await;
    let same = terms(&first) == terms(&second);
    let mut got = state_text(&second);
    if !same {
        got.push_str(&format!(
            "; the sale differs from the first answer: {}",
            probe::truncate(&second.body, 200)
        ));
    }
    let held = sale_in_state(&second, "active") && same;
    run.judged(
        "admin/activate-again",
        format!("POST /admin/sales/{limited}/activate a second time"),
        "200, the same sale in state `active` as the first answer".into(),
        if held {
            Judged::Held(got)
        } else {
            Judged::Violated(got)
        },
    );
}

/// On the live `expiring` sale: one buy, expire, expire again, a buy (refused, no order), an
/// activation (refused, still expired).
pub(super) async fn expire_stops_sales(run: &mut Run, sales: &Sales) {
    let names = [
        "admin/expire",
        "admin/expire-again",
        "buy/sale-expired",
        "admin/activate-expired",
    ];
    let Ok(sale) = sales.expiring.clone() else {
        let reason = sales.expiring.clone().unwrap_err();
        for name in names {
            run.not_checked(
                name,
                "on the `expiring` sale".into(),
                "see docs/contract.md".into(),
                &reason,
            );
        }
        return;
    };
    // It was live: the buy after `expire` is refused because of `expire`, not because it never
    // sold.
    let body = serde_json::json!({"buyer_id": format!("conformance-{}", Uuid::new_v4().simple()), "quantity": 1}).to_string();
    let first = probe::send(run.buy(
        &sale,
        Some(&format!("conformance-{}", Uuid::new_v4())),
        body,
    ))
    .await;
    if first.status != Some(201) {
        let reason = format!("a buy on the live `expiring` sale was answered {first}, not 201");
        for name in names {
            run.not_checked(
                name,
                format!("on sale {sale}"),
                "see docs/contract.md".into(),
                &reason,
            );
        }
        return;
    }
    let expected = "200, the sale in state `expired`";
    let expired = probe::send(run.transition(&sale, "expire")).await;
    let got = state_text(&expired);
    let held = sale_in_state(&expired, "expired");
    run.judged(
        "admin/expire",
        format!("POST /admin/sales/{sale}/expire on a live sale"),
        expected.into(),
        if held {
            Judged::Held(got)
        } else {
            Judged::Violated(got)
        },
    );
    let again = probe::send(run.transition(&sale, "expire")).await;
    let got = state_text(&again);
    let held = sale_in_state(&again, "expired");
    run.judged(
        "admin/expire-again",
        format!("POST /admin/sales/{sale}/expire on the sale it just expired"),
        format!("{expected} (expire is idempotent)"),
        if held {
            Judged::Held(got)
        } else {
            Judged::Violated(got)
        },
    );
    let key = format!("conformance-{}", Uuid::new_v4());
    let body = serde_json::json!({"buyer_id": format!("conformance-{}", Uuid::new_v4().simple()), "quantity": 1}).to_string();
    let send = run.buy(&sale, Some(&key), body);
    run.refusal(
        "buy/sale-expired",
        format!("POST /sales/{sale}/orders on a sale expired through the admin route; valid body, fresh key"),
        SALE_NOT_LIVE,
        send,
    )
    .await;
    let send = run.transition(&sale, "activate");
    run.refusal(
        "admin/activate-expired",
        format!("POST /admin/sales/{sale}/activate on an expired sale"),
        INVALID_TRANSITION,
        send,
    )
    .await;
}

/// Every admin route with a wrong token and with none: 401 `unauthorized`, nothing changed (a
/// refused activation leaves the sale scheduled, a refused expiry leaves it live).
pub(super) async fn tokens(run: &mut Run, sales: &Sales) {
    use reqwest::Method;
    let new_sale = Run::new_sale("must not be created", -1, 1, None);
    // Route name, method, the sale it acts on (`None`: none), the body it takes.
    let routes = [
        ("create-sale", Method::POST, None, Some(new_sale)),
        ("activate", Method::POST, Some(&sales.scheduled), None),
        ("expire", Method::POST, Some(&sales.main), None),
        ("orders", Method::GET, Some(&sales.main), None),
        ("inventory", Method::GET, Some(&sales.main), None),
    ];
    for (route, method, sale, body) in routes {
        let path = match sale {
            None => Ok("/admin/sales".to_owned()),
            Some(Ok(id)) => Ok(format!("/admin/sales/{id}/{route}")),
            Some(Err(reason)) => Err(reason.clone()),
        };
        for (how, token) in [
            ("wrong", Some("conformance-wrong-token")),
            ("missing", None),
        ] {
            let name = format!("token/{how}-on-{route}");
            let path = match &path {
                Ok(path) => path.clone(),
                Err(reason) => {
                    let request =
                        format!("{method} /admin/sales/{{sale}}/{route} with {how} admin token");
                    run.not_checked(&name, request, UNAUTHORIZED.to_string(), reason);
                    continue;
                }
            };
            let request = format!("{method} {path} with {how} admin token");
            let mut send = run.http.request(method.clone(), run.url(&path));
            if let Some(token) = token {
                send = send.bearer_auth(token);
            }
            if let Some(body) = &body {
                send = send.json(body);
            }
            run.refusal(&name, request, UNAUTHORIZED, send).await;
        }
    }
}

/// Each admin route that names a sale, with an id no sale has: 404 `sale_not_found`.
pub(super) async fn unknown_ids(run: &mut Run) {
    let unknown = Uuid::new_v4();
    for (route, method) in [
        ("activate", reqwest::Method::POST),
        ("expire", reqwest::Method::POST),
        ("orders", reqwest::Method::GET),
        ("inventory", reqwest::Method::GET),
    ] {
        let path = format!("/admin/sales/{unknown}/{route}");
        let send = run
            .http
            .request(method.clone(), run.url(&path))
            .bearer_auth(&run.admin_token);
        run.refusal(
            &format!("admin/unknown-sale-on-{route}"),
            format!("{method} {path}: a sale id no sale has"),
            SALE_NOT_FOUND,
            send,
        )
        .await;
    }
}
