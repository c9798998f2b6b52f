//! PostgreSQL unreachable for 600 ms in the middle of a sale (every connection cut, new ones
//! refused): the correct variant answers 503 or waits, and a buyer who retries with the same key
//! gets the purchase if it was made. Nothing is lost, nothing made twice, the stock sold exactly.

use std::collections::HashMap;
use std::time::Duration;

use flashsale_example_shop::Variant;

use crate::helpers::{Buy, NewDrop, TestShop, buy, count, postgres_addr};
use crate::proxy::LinkProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_mid_sale_loses_no_purchase_and_makes_none_twice() {
    let proxy = LinkProxy::start(postgres_addr()).await;
    let shop = TestShop::start_via(Variant::Correct, proxy.addr).await;
    let drop = shop
        .create_drop(NewDrop {
            stock: 20,
            ..NewDrop::default()
        })
        .await;
    let wave = |name: &str, buyers: usize| -> Vec<Buy> {
        (0..buyers)
            .map(|i| {
                buy(
                    drop,
                    format!("{name}-c{i}"),
                    1,
                    Some(format!("{name}-k{i}")),
                )
            })
            .collect()
    };

    let before = shop.burst(wave("before", 10)).await;
    assert_eq!(count(&before, "confirmed"), 10, "{before:?}");

    // Buyers keep coming, one every 50 ms, from the moment PostgreSQL goes away (purchases in
    // flight are cut) until well after it is back.
    proxy.set_down(true);
    let buyers: Vec<_> = wave("during", 20)
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let (client, base) = (shop.client.clone(), shop.base.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
                let answer = send_once(&client, &base, &request).await;
                (request, answer)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    proxy.set_down(false);
    let mut during = Vec::new();
    for buyer in buyers {
        during.push(buyer.await.expect("buyer"));
    }

    // Every buyer who was not given an outcome tries again, with the same key.
    let mut outcomes: HashMap<String, String> = HashMap::new();
    let mut unavailable = 0;
    for (request, (status, body)) in during {
        let key = request.key.clone().expect("keyed");
        let body = if status == 200 {
            body
        } else {
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["problem"]["type"], "unavailable");
            unavailable += 1;
            let retry = shop.send(&request).await;
            assert_eq!(retry.status, 200, "{retry:?}");
            retry.body
        };
        let outcome = match body["result"].as_str() {
            Some("confirmed") => body["purchase"]["ref"].as_str().unwrap().to_owned(),
            other => other.unwrap_or_default().to_owned(),
        };
        outcomes.insert(key, outcome);
    }
    eprintln!("PostgreSQL down for 600 ms: {unavailable} of 20 buyers were answered 503 first");

    let ledger = shop.purchases(drop).await;
    assert_eq!(ledger.len(), 20, "the stock is sold exactly");
    assert_eq!(shop.sold(drop).await, 20);
    for purchase in ledger.iter().filter(|p| p.customer.starts_with("during")) {
        let key = purchase.request_key.as_deref().expect("keyed");
        assert_eq!(
            outcomes.get(key),
            Some(&purchase.reference),
            "purchase {} was made, so its buyer must be told",
            purchase.reference
        );
    }
    let confirmed = outcomes.values().filter(|o| o.starts_with("P-")).count();
    assert_eq!(confirmed, 10, "{outcomes:?}");
    assert_eq!(
        shop.settled_left(drop, 0, Duration::from_secs(3)).await,
        Some(0)
    );
    shop.finish().await;
}

/// One attempt, whatever comes back (the fixture's `send` expects the shop to answer).
async fn send_once(
    client: &reqwest::Client,
    base: &str,
    request: &Buy,
) -> (u16, serde_json::Value) {
    let response = client
        .post(format!("{base}/api/v2/drops/{}/checkout", request.drop))
        .header("X-Request-Key", request.key.as_deref().unwrap_or_default())
        .json(&request.body)
        .send()
        .await
        .expect("the shop answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}
