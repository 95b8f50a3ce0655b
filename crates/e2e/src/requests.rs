//! Raw access to the payment-requests topic, to replay what the orders relay published.
//!
//! Redelivery is what the inbox and the unique transaction per order exist for (SPEC §3.3); the
//! scenarios produce it on purpose by publishing a copy of a real request, through the same
//! bus the services use (`BROKER`, `KAFKA_BROKERS` / `AMQP_URL`, as the stack exports them).

use std::sync::Arc;
use std::time::Duration;

use bus::message::{HEADER_MESSAGE_ID, HEADER_MESSAGE_TYPE};
use bus::{Delivery, Message, MessageBus, Subscription};
use serde_json::Value;
use uuid::Uuid;

/// The payment-requests topic of the running stack, watched from the moment this is created.
pub struct PaymentRequests {
    /// The bus the services run on.
    bus: Arc<dyn MessageBus>,
    /// `PAYMENT_REQUESTS_TOPIC`, default `payment.requests` as in the services.
    topic: String,
    /// A consumer group of its own, so no service's progress is touched. Joined before the
    /// scenario acts: RabbitMQ gives a group only what is published after it exists.
    watching: Box<dyn Subscription>,
}

impl PaymentRequests {
    /// Joins a fresh group on `PAYMENT_REQUESTS_TOPIC` on the stack's broker.
    pub async fn watch() -> Self {
        let topic = std::env::var("PAYMENT_REQUESTS_TOPIC")
            .unwrap_or_else(|_| contract::events::REQUESTS_TOPIC.to_owned());
        let bus = bus::connect::from_env("e2e").expect("the broker named by BROKER");
        let group = format!("e2e-find-{}", Uuid::new_v4().simple());
        let watching = bus
            .subscribe(&topic, &group)
            .await
            .expect("subscribe to the payment-requests topic");
        PaymentRequests {
            bus,
            topic,
            watching,
        }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads what was published since [`Self::watch`] until the request whose payload names
    /// `order_id`; panics after `deadline`.
    pub async fn find(&mut self, order_id: Uuid, deadline: Duration) -> Delivery {
        let until = tokio::time::Instant::now() + deadline;
        let wanted = order_id.to_string();
        loop {
            let delivery = tokio::time::timeout_at(until, self.watching.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no message for order {order_id} on {} within {deadline:?}",
                        self.topic
                    )
                })
                .expect("consume the payment-requests topic");
            self.watching
                .ack(&delivery)
                .await
                .expect("acknowledge in the e2e group");
            let payload: Option<Value> = serde_json::from_slice(&delivery.payload).ok();
            let names_order = payload
                .as_ref()
                .and_then(|p| p.get("order_id"))
                .and_then(Value::as_str)
                == Some(wanted.as_str());
            if names_order {
                return delivery;
            }
        }
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
