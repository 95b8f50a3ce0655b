//! `spawn_app()` and the steps only the orders tests take.
//!
//! Running the service (in-process, exactly as `main` wires it: `orders::startup::run`, on its
//! own database, topics and consumer group), HTTP, the bus and the shared checks come from
//! [`servicetest`]; [`TestApp`] derefs to its
//! [`ServiceUnderTest`](servicetest::ServiceUnderTest) and adds placing, reading and settling
//! orders. Waiting is always on a condition with a deadline.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::{Service, WAIT, body_json};
use testkit::eventually;
use uuid::Uuid;

servicetest::service_app! {
    /// A running orders service: the generic
    /// [`ServiceUnderTest`](servicetest::ServiceUnderTest) (through `Deref`), started by
    /// `orders::startup::run` as `main` does, plus the orders steps below.
    pub struct TestApp = Service::new("orders", orders::startup::run);
}

/// Starts the orders service (see `TestApp::spawn`): fresh database, fresh topics, healthy.
pub async fn spawn_app() -> TestApp {
    TestApp::spawn().await
}

impl TestApp {
    /// Creates an order that must be accepted; returns its id.
    pub async fn create_order(&self, user_id: Uuid, amount: Value, description: &str) -> Uuid {
        let resp = self
            .post_json(
                "/orders",
                &json!({"user_id": user_id, "amount": amount, "description": description}),
            )
            .await;
        let status = resp.status();
        let body = body_json(resp).await;
        assert_eq!(status, StatusCode::CREATED, "POST /orders answered {body}");
        body["data"]["order_id"].as_str().unwrap().parse().unwrap()
    }

    /// `GET /orders/{id}`, which must answer 200; returns the order (`data`).
    pub async fn get_order(&self, order_id: Uuid) -> Value {
        let resp = self.get(&format!("/orders/{order_id}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        body_json(resp).await["data"].take()
    }

    /// Polls `GET /orders/{id}` until the order has `status`; returns the order.
    pub async fn wait_for_order_status(&self, order_id: Uuid, status: &str) -> Value {
        eventually(
            &format!("order {order_id} to be {status}"),
            WAIT,
            || async {
                let order = self.get_order(order_id).await;
                (order["status"] == status).then_some(order)
            },
        )
        .await
    }

    /// Publishes a `PaymentResult` as payments would: on the results topic, keyed by the user.
    pub async fn publish_result(&self, order_id: Uuid, user_id: Uuid, outcome: &str) -> Uuid {
        let payload = json!({"order_id": order_id, "user_id": user_id, "outcome": outcome});
        self.publish(
            &self.topics.results,
            &user_id.to_string(),
            "PaymentResult",
            payload.to_string().as_bytes(),
        )
        .await
    }
}

/// Parses an RFC 3339 timestamp the API returned, insisting on UTC.
pub fn utc(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"));
    assert!(
        text.ends_with('Z') || text.ends_with("+00:00"),
        "{text} is UTC"
    );
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is RFC 3339: {e}"))
        .with_timezone(&Utc)
}
