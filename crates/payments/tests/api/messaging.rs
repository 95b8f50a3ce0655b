//! Talking to the service over the bus, as orders would: publishing payment requests (also
//! malformed ones) and reading the results and dead letters it produces.

use bus::{Delivery, Message, Subscription};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::{Value, json};
use testkit::{kafka_brokers, unique_topic};
use uuid::Uuid;

use crate::helpers::{TestApp, WAIT};

impl TestApp {
    /// Joins a fresh consumer group on `topic` (reading from its beginning).
    pub async fn subscribe(&self, topic: &str) -> Box<dyn Subscription> {
        self.bus
            .subscribe(topic, &unique_topic("observer"))
            .await
            .expect("subscribe")
    }

    /// Publishes `payload` with this message id, key and `message-type`.
    pub async fn publish_with_id(
        &self,
        topic: &str,
        id: Uuid,
        key: &str,
        kind: &str,
        payload: &[u8],
    ) {
        let message = Message {
            id,
            key: key.into(),
            kind: kind.into(),
            payload: payload.to_vec(),
            headers: Vec::new(),
        };
        self.bus
            .publish(topic, &message)
            .await
            .expect("acknowledged publish");
    }

    /// Publishes `payload` with a fresh message id; returns the id.
    pub async fn publish(&self, topic: &str, key: &str, kind: &str, payload: &[u8]) -> Uuid {
        let id = Uuid::now_v7();
        self.publish_with_id(topic, id, key, kind, payload).await;
        id
    }

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

/// The next message on `sub` within the deadline, acknowledged.
pub async fn next_delivery(sub: &mut Box<dyn Subscription>) -> Delivery {
    let delivery = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message within the deadline")
        .expect("receive");
    sub.ack(&delivery).await.unwrap();
    delivery
}

/// The next `PaymentResult` on `sub`: checks the envelope every result must have (key = user,
/// `message-type`, a UUID `message-id`, exactly three fields) and returns the body.
pub async fn next_result(sub: &mut Box<dyn Subscription>) -> Value {
    let delivery = next_delivery(sub).await;
    let result: Value = serde_json::from_slice(&delivery.payload).unwrap();
    assert_eq!(delivery.header("message-type"), Some("PaymentResult"));
    assert!(delivery.message_id().is_ok(), "{:?}", delivery.headers);
    assert_eq!(
        delivery.key.as_deref(),
        result["user_id"].as_str(),
        "keyed by user"
    );
    assert_eq!(result.as_object().unwrap().len(), 3, "{result}");
    result
}
