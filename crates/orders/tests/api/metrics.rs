//! `GET /metrics`: the series an operator watches, with real values after one order's life.

use serde_json::json;
use servicetest::WAIT;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_orders_life_shows_in_the_metrics() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let order = app.create_order(user, json!(5), "measured").await;
    app.publish_result(order, user, "FINISHED").await;
    app.wait_for_order_status(order, "FINISHED").await;
    assert_eq!(app.get("/nowhere").await.status(), 404);

    let results = app.topics.results.clone();
    let expected = [
        r#"http_requests_total{method="POST",route="/orders",status="2xx"} 1"#.to_owned(),
        r#"http_requests_total{method="GET",route="unmatched",status="4xx"} 1"#.to_owned(),
        r#"business_events_total{event="order_created",outcome="NEW"} 1"#.to_owned(),
        r#"business_events_total{event="order_settled",outcome="FINISHED"} 1"#.to_owned(),
        format!(r#"consumer_messages_total{{topic="{results}",outcome="ok"}} 1"#),
        format!(r#"consumer_lag_messages{{topic="{results}",partition="0"}} 0"#),
        "outbox_published_total 1".to_owned(),
        "outbox_pending_rows 0".to_owned(),
        "db_pool_connections_max 5".to_owned(),
        "http_request_duration_seconds_bucket".to_owned(),
        "consumer_batch_duration_seconds_bucket".to_owned(),
        "outbox_relay_batch_rows_bucket".to_owned(),
    ];
    let text = testkit::eventually("every series with its value", WAIT, || async {
        let resp = app.get("/metrics").await;
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.contains("openmetrics-text"), "{content_type}");
        let text = resp.text().await.unwrap();
        expected
            .iter()
            .all(|e| text.contains(e.as_str()))
            .then_some(text)
    })
    .await;
    assert!(
        text.contains("outbox_oldest_pending_age_seconds 0"),
        "{text}"
    );
    app.stop().await;
}
