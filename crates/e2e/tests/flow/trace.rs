//! One trace per order (W3C `traceparent`): the trace id a client sends, or the one the gateway
//! creates, is on every log line about the order in all three services of the running stack
//! (their JSON logs in `.stack/logs/`, every instance's).

use std::path::PathBuf;
use std::time::Duration;

use e2e::api::Gateway;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// The messages that must carry an order's trace id, by the service that logs them.
const EXPECTED: [(&str, &str); 4] = [
    ("gateway", "proxied request"),
    ("orders", "order created"),
    ("payments", "payment settled"),
    ("orders", "order settled"),
];

/// Places an order with a client's `traceparent` and one without: the first keeps the client's
/// trace id, the second gets a new one (named in `traceresponse`); either id is on the gateway's
/// line for the POST, orders' "order created" and "order settled" and payments' "payment
/// settled" lines, and on no line of the other order.
#[tokio::test]
async fn one_trace_id_follows_an_order_through_every_service() {
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    api.create_account(user, json!(100)).await;
    let client_trace = Uuid::new_v4().simple().to_string();
    let sent = format!(
        "00-{client_trace}-{}-01",
        &Uuid::new_v4().simple().to_string()[..16]
    );
    let body = json!({"user_id": user, "amount": 10, "description": "traced"});

    let with = api.post_traced("/orders", Some(&sent), &body).await;
    let without = api.post_traced("/orders", None, &body).await;

    assert_eq!(with.status, StatusCode::CREATED, "{}", with.text);
    assert_eq!(without.status, StatusCode::CREATED, "{}", without.text);
    assert_eq!(trace_id_of(&with.traceresponse), client_trace);
    let created_trace = trace_id_of(&without.traceresponse);
    assert_ne!(created_trace, client_trace);
    for (reply, trace) in [(&with, &client_trace), (&without, &created_trace)] {
        let order_id: Uuid = reply.json()["data"]["order_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(api.wait_settled(order_id).await.status, "FINISHED");
        let lines = testkit::eventually(
            &format!("every service's log lines of order {order_id} with trace {trace}"),
            Duration::from_secs(10),
            || async { complete(lines_with(trace), &order_id) },
        )
        .await;
        for line in &lines {
            assert_eq!(line["span"]["trace_id"], trace.as_str(), "{line}");
        }
    }
}

/// The trace id of a `traceparent`-shaped value.
fn trace_id_of(value: &str) -> String {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {value:?}");
    parts[1].to_owned()
}

/// Every JSON log line of the stack's services mentioning `trace`, with the service it came
/// from under `"service"`.
fn lines_with(trace: &str) -> Vec<Value> {
    let logs: PathBuf = testkit::repository_root().join(".stack/logs");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(service) = ["gateway", "orders", "payments"]
            .into_iter()
            .find(|s| name.starts_with(s) && name.ends_with(".log") && !name.contains("migrate"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains(trace)) {
            if let Ok(mut value) = serde_json::from_str::<Value>(line) {
                value["service"] = json!(service);
                found.push(value);
            }
        }
    }
    found
}

/// `lines` when they hold each [`EXPECTED`] message from its service, the order's own ones
/// naming `order_id`.
fn complete(lines: Vec<Value>, order_id: &Uuid) -> Option<Vec<Value>> {
    let all = EXPECTED.iter().all(|(service, message)| {
        lines.iter().any(|l| {
            l["service"] == *service
                && l["message"] == *message
                && (*service == "gateway" || l["order_id"] == order_id.to_string())
        })
    });
    all.then_some(lines)
}
