//! `GET /metrics`: the Prometheus exposition counts each buy by outcome and deciding path, times
//! it, records the ledger's batches, and reads the breaker and the pool when scraped.

use flashsale_server::InventoryStrategy;
use reqwest::StatusCode;

use crate::helpers::spawn_app;

/// The value of the series `name` whose labels include `labels`, summed over the others.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

pub async fn scrape(app: &crate::helpers::TestApp) -> String {
    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn buys_are_counted_by_outcome_and_path_and_the_gauges_are_read_at_scrape() {
    let app = spawn_app(InventoryStrategy::Redis).await;
    let sale = app.live_sale(Some(2)).await;
    let before = scrape(&app).await;
    assert_eq!(sample(&before, "flashsale_buy_requests_total", &[]), 0.0);

    // alice, her retry (replayed while units remain), bob; then carol's is the first sold-out
    // answer, decided by a claim (later ones would come from the sold-out memory).
    for (key, buyer) in [("k1", "alice"), ("k1", "alice"), ("k2", "bob")] {
        assert_eq!(
            app.buy(sale, key, buyer, 1).await.status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(
        app.buy(sale, "k3", "carol", 1).await.status(),
        StatusCode::CONFLICT
    );
    let bad = app.buy_raw(sale, Some("k4"), "{".into()).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let text = scrape(&app).await;
    let buys = |labels: &[(&str, &str)]| sample(&text, "flashsale_buy_requests_total", labels);
    assert_eq!(buys(&[("outcome", "created")]), 2.0, "{text}");
    assert_eq!(
        buys(&[("outcome", "created"), ("path", "redis")]),
        2.0,
        "{text}"
    );
    assert_eq!(buys(&[("outcome", "replayed")]), 1.0, "{text}");
    assert_eq!(
        buys(&[("outcome", "sold_out"), ("path", "claim")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        buys(&[("outcome", "malformed_json"), ("path", "none")]),
        1.0,
        "{text}"
    );
    assert_eq!(buys(&[]), 5.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "flashsale_buy_duration_seconds_count",
            &[("outcome", "created")]
        ),
        2.0
    );
    // Each created order was written by a ledger batch; lookups ran for the keys.
    assert!(
        sample(&text, "flashsale_ledger_batch_size_count", &[]) >= 2.0,
        "{text}"
    );
    assert!(sample(&text, "flashsale_ledger_batch_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(
        sample(
            &text,
            "flashsale_redis_breaker_state",
            &[("state", "closed")]
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "flashsale_redis_breaker_state", &[("state", "open")]),
        0.0
    );
    assert!(sample(&text, "flashsale_db_pool_max_connections", &[]) >= 1.0);
    assert!(
        sample(&text, "flashsale_db_pool_connections", &[]) >= 1.0,
        "{text}"
    );
    app.finish().await;
}
