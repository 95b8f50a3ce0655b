//! Talking to the service over the bus, as orders would: publishing payment requests (also
//! malformed ones, and records without the headers `bus::Message` always adds) and reading the
//! results and dead letters it produces. Subscribing, publishing and taking the next delivery come from
//! [`servicetest::messaging`].

use bus::Subscription;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use servicetest::{WAIT, next_delivery};
use testkit::kafka_brokers;
use uuid::Uuid;

use crate::helpers::TestApp;

impl TestApp {
    /// Publishes a `PaymentRequested` as orders would (on the requests topic, keyed by the user)
    /// under message id `id`.
    pub async fn request_payment_with_id(
        &self,
        id: Uuid,
        order_id: Uuid,
        user_id: Uuid,
        amount: Value,
    ) {
        let payload = json!({"order_id": order_id, "user_id": user_id, "amount": amount});
        self.publish_with_id(
            &self.topics.requests,
            id,
            &user_id.to_string(),
            "PaymentRequested",
            payload.to_string().as_bytes(),
        )
        .await;
    }

    /// [`Self::request_payment_with_id`] under a fresh message id; returns the id.
    pub async fn request_payment(&self, order_id: Uuid, user_id: Uuid, amount: Value) -> Uuid {
        let id = Uuid::now_v7();
        self.request_payment_with_id(id, order_id, user_id, amount)
            .await;
        id
    }

    /// Publishes a raw Kafka record with only the given headers — e.g. without `message-id`,
    /// which `bus::Message` always adds.
    pub async fn publish_raw_record(
        &self,
        topic: &str,
        key: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", kafka_brokers())
            .create()
            .expect("kafka producer");
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        let record = FutureRecord::to(topic)
            .key(key.as_bytes())
            .payload(payload)
            .headers(headers);
        producer
            .send(record, Timeout::After(WAIT))
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged publish");
    }
}

/// The next `PaymentResult` on `sub`: checks the envelope every result must have (key = user,
/// the current `message-type`, a UUID `message-id`, exactly three fields — a REJECTED one may
/// add its `reason`) and returns the body.
pub async fn next_result(sub: &mut Box<dyn Subscription>) -> Value {
    let delivery = next_delivery(sub).await;
    let result: Value = serde_json::from_slice(&delivery.payload).unwrap();
    assert_eq!(delivery.header("message-type"), Some("PaymentResult.v1"));
    assert!(delivery.message_id().is_ok(), "{:?}", delivery.headers);
    assert_eq!(
        delivery.key.as_deref(),
        result["user_id"].as_str(),
        "keyed by user"
    );
    let fields = result.as_object().unwrap().len();
    let reasoned = result["outcome"] == "REJECTED" && result["reason"].is_string();
    assert_eq!(fields, if reasoned { 4 } else { 3 }, "{result}");
    result
}
