//! `GET /sales/{id}`: the public view agrees with the ledger and with the sale's terms, says
//! `live` truthfully, and an unknown or malformed id is `sale_not_found`.
//!
//! `PublicSale` promises the `Sale` fields and `live`; it promises no sold or remaining figures,
//! so none are compared (a server may expose more).

use serde_json::{Value, json};
use uuid::Uuid;

use super::probe::{self, Answer, Expected};
use super::{Judged, MAIN_CAP, PRODUCT, Run, Sales};

const SALE_NOT_FOUND: Expected = Expected::new(404, "sale_not_found");

impl Run {
    async fn public(&self, sale: &str) -> Answer {
        probe::send(self.http.get(self.url(&format!("/sales/{sale}")))).await
    }
}

pub(super) async fn cases(run: &mut Run, sales: &Sales) {
    agrees_with_ledger(run, sales).await;
    for (name, sale, what, state) in [
        (
            "public/not-activated",
            &sales.scheduled,
            "a sale never activated",
            "scheduled",
        ),
        (
            "public/window-not-started",
            &sales.future,
            "an active sale whose window starts in an hour",
            "active",
        ),
        (
            "public/expired",
            &sales.expiring,
            "a sale expired through the admin route",
            "expired",
        ),
    ] {
        let expected = format!("200, state `{state}`, live false");
        let sale = match sale {
            Ok(sale) => sale.clone(),
            Err(reason) => {
                run.not_checked(
                    name,
                    format!("GET /sales/{{sale}}: {what}"),
                    expected,
                    reason,
                );
                continue;
            }
        };
        let request = format!("GET /sales/{sale}: {what}");
        if name == "public/expired" && !run.held("admin/expire") {
            run.not_checked(
                name,
                request,
                expected,
                "the sale could not be expired (see admin/expire)",
            );
            continue;
        }
        let answer = run.public(&sale).await;
        let got_state = answer
            .json
            .as_ref()
            .and_then(|j| j["state"].as_str())
            .map(str::to_owned);
        let got_live = answer.json.as_ref().and_then(|j| j["live"].as_bool());
        let got = format!(
            "{}, state {}, live {}",
            status_text(&answer),
            got_state.as_deref().unwrap_or("absent"),
            got_live.map_or("absent".to_owned(), |l| l.to_string())
        );
        let held = answer.status == Some(200)
            && got_state.as_deref() == Some(state)
            && got_live == Some(false);
        run.judged(
            name,
            request,
            expected,
            if held {
                Judged::Held(got)
            } else {
                Judged::Violated(got)
            },
        );
    }
    for (name, id, what) in [
        (
            "public/unknown-sale",
            Uuid::new_v4().to_string(),
            "a sale id no sale has",
        ),
        (
            "public/malformed-sale-id",
            "not-a-uuid".to_owned(),
            "a sale id that is not a UUID",
        ),
    ] {
        let send = run.http.get(run.url(&format!("/sales/{id}")));
        run.refusal(
            name,
            format!("GET /sales/{id}: {what}"),
            SALE_NOT_FOUND,
            send,
        )
        .await;
    }
}

fn status_text(answer: &Answer) -> String {
    match answer.status {
        Some(status) => status.to_string(),
        None => answer.to_string(),
    }
}

/// A few buys on `main`, then its public view against the ledger export and the terms it was
/// created with.
async fn agrees_with_ledger(run: &mut Run, sales: &Sales) {
    let name = "public/agrees-with-ledger";
    let expected = format!(
        "200; id, cap {MAIN_CAP} (as in the inventory view), no per-buyer limit, the one product, state `active`, live true; every acknowledged order in the export"
    );
    let main = match &sales.main {
        Ok(main) => main.clone(),
        Err(reason) => return run.not_checked(name, "GET /sales/{main}".into(), expected, reason),
    };
    let request = format!("GET /sales/{main} after buys of 1 and 2 units");
    let mut acknowledged = Vec::new();
    for quantity in [1, 2] {
        let body = json!({"buyer_id": format!("conformance-{}", Uuid::new_v4().simple()), "quantity": quantity});
        let key = format!("conformance-{}", Uuid::new_v4());
        let answer = probe::send(run.buy(&main, Some(&key), body.to_string())).await;
        match answer.json.as_ref().and_then(|j| j["order_id"].as_str()) {
            Some(order) if answer.status == Some(201) => acknowledged.push(order.to_owned()),
            _ => {
                let reason = format!(
                    "a buy of {quantity} on the live `main` sale was answered {answer}, not 201"
                );
                return run.not_checked(name, request, expected, &reason);
            }
        }
    }
    let ledger = match run.admin.ledger(&main).await {
        Ok(ledger) => ledger,
        Err(err) => {
            return run.not_checked(
                name,
                request,
                expected,
                &format!("the ledger could not be read: {err}"),
            );
        }
    };
    let answer = run.public(&main).await;
    let mut problems = Vec::new();
    if answer.status != Some(200) {
        problems.push(format!("answered {answer}"));
    }
    let view = answer.json.clone().unwrap_or(Value::Null);
    let mut differs = |what: &str, got: &Value, want: Value| {
        if *got != want {
            problems.push(format!("{what} {got}, expected {want}"));
        }
    };
    differs("id", &view["id"], json!(main));
    differs("cap", &view["cap"], json!(ledger.inventory.cap));
    differs("cap", &view["cap"], json!(MAIN_CAP));
    differs("per_buyer_limit", &view["per_buyer_limit"], Value::Null);
    differs("state", &view["state"], json!("active"));
    differs("live", &view["live"], json!(true));
    differs(
        "products",
        &view["products"],
        json!([{"product_id": PRODUCT, "sale_price_cents": 1500}]),
    );
    let exported: Vec<&str> = ledger.orders.iter().map(|o| o.order_id.as_str()).collect();
    for order in &acknowledged {
        if !exported.contains(&order.as_str()) {
            problems.push(format!("acknowledged order {order} is not in the export"));
        }
    }
    if ledger.persisted_units() > MAIN_CAP {
        problems.push(format!(
            "the export holds {} units, above the cap",
            ledger.persisted_units()
        ));
    }
    let outcome = if problems.is_empty() {
        Judged::Held(format!(
            "200, agreeing; the export holds {} orders, {} units",
            ledger.orders.len(),
            ledger.persisted_units()
        ))
    } else {
        Judged::Violated(problems.join("; "))
    };
    run.judged(name, request, expected, outcome);
}
