//! `server/openapi.json` is the contract other servers implement and the harness relies on; these
//! tests keep it and the reference server in step.

use flashsale_server::InventoryStrategy;
use flashsale_server::error::ErrorCode;
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, spawn_app};

fn contract() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("server/openapi.json exists");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

#[test]
fn the_documented_error_codes_are_exactly_the_servers() {
    let doc = contract();
    let mut documented: Vec<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let mut served: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let doc = contract();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 8);
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let url = app.url(
                &path
                    .replace("{sale_id}", &uuid::Uuid::new_v4().to_string())
                    .replace("{product_id}", "contract-product"),
            );
            let request = match method.as_str() {
                "get" => app.client.get(url),
                "post" => app
                    .client
                    .post(url)
                    .header("idempotency-key", "contract")
                    .body("{}"),
                "put" => app.client.put(url).body("{}"),
                other => panic!("unexpected method {other}"),
            };
            let response = request.bearer_auth(ADMIN_TOKEN).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "not_found" && code != "method_not_allowed",
                "{method} {path} is documented but not routed ({status} {body})"
            );
        }
    }
    app.finish().await;
}
