//! Raw access to the payment-requests topic, to replay what the orders relay published.
//!
//! Redelivery is what the inbox and the unique transaction per order exist for (SPEC §3.3); the
//! scenarios produce it on purpose by publishing a copy of a real request, through the same
//! [`bus::kafka::KafkaBus`] the services use.

use std::time::Duration;

use bus::MessageBus;
use bus::kafka::{KafkaBus, KafkaSettings};
use bus::message::{HEADER_MESSAGE_ID, HEADER_MESSAGE_TYPE};
use bus::{Delivery, Message};
use serde_json::Value;
use uuid::Uuid;

/// The payment-requests topic of the running stack.
pub struct PaymentRequests {
    /// A producer (and consumer factory) on `KAFKA_BROKERS`.
    bus: KafkaBus,
    /// `PAYMENT_REQUESTS_TOPIC`, default `payment.requests` as in the services.
    topic: String,
}

impl PaymentRequests {
    /// Connects to `KAFKA_BROKERS` (required) and `PAYMENT_REQUESTS_TOPIC`.
    pub fn from_env() -> Self {
        let topic = std::env::var("PAYMENT_REQUESTS_TOPIC")
            .unwrap_or_else(|_| "payment.requests".to_owned());
        let bus = KafkaBus::new(KafkaSettings {
            brokers: testkit::kafka_brokers(),
            // Only used when creating topics, which these tests never do.
            partitions: 3,
            replication: 1,
            client_id: "e2e".to_owned(),
        })
        .expect("create the Kafka producer");
        PaymentRequests { bus, topic }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads the topic from the beginning, in a fresh consumer group (so no service's progress
    /// is touched), until the request whose payload names `order_id`; panics after `deadline`.
    pub async fn find(&self, order_id: Uuid, deadline: Duration) -> Delivery {
        let group = format!("e2e-find-{}", Uuid::new_v4().simple());
        let mut subscription = self
            .bus
            .subscribe(&self.topic, &group)
            .await
            .expect("subscribe to the payment-requests topic");
        let until = tokio::time::Instant::now() + deadline;
        let wanted = order_id.to_string();
        let found = loop {
            let delivery = tokio::time::timeout_at(until, subscription.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no message for order {order_id} on {} within {deadline:?}",
                        self.topic
                    )
                })
                .expect("consume the payment-requests topic");
            let payload: Option<Value> = serde_json::from_slice(&delivery.payload).ok();
            let names_order = payload
                .as_ref()
                .and_then(|p| p.get("order_id"))
                .and_then(Value::as_str)
                == Some(wanted.as_str());
            if names_order {
                break delivery;
            }
        };
        subscription
            .close()
            .await
            .expect("leave the e2e consumer group");
        found
    }

    /// Publishes `original` again: same key, payload and headers, except `message-id`, which is
    /// `message_id` (pass the original's id for an exact duplicate).
    pub async fn republish(&self, original: &Delivery, message_id: Uuid) {
        let key = original
            .key
            .clone()
            .expect("payment requests are keyed (by user id)");
        let kind = original
            .header(HEADER_MESSAGE_TYPE)
            .expect("payment requests carry a message-type header")
            .to_owned();
        let headers = original
            .headers
            .iter()
            .filter(|(k, _)| k != HEADER_MESSAGE_ID && k != HEADER_MESSAGE_TYPE)
            .cloned()
            .collect();
        let message = Message {
            id: message_id,
            key,
            kind,
            payload: original.payload.clone(),
            headers,
        };
        if message_id
            == original
                .message_id()
                .expect("the original has a message id")
        {
            assert_eq!(
                message.wire_headers(),
                original.headers,
                "a duplicate must carry exactly the original's headers"
            );
        }
        self.bus
            .publish(&self.topic, &message)
            .await
            .expect("republish the payment request");
    }
}
