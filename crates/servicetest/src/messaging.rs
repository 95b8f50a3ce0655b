//! The bus side of a test: publishing what the other service would publish, and observing what
//! the service under test publishes, through the same [`MessageBus`](bus::MessageBus) it uses.

use bus::{Delivery, Message, Subscription};
use testkit::unique_topic;
use uuid::Uuid;

use crate::{ServiceUnderTest, WAIT};

impl ServiceUnderTest {
    /// Joins a fresh consumer group on `topic` (reading from its beginning), so the observer
    /// never takes messages from the service's own group.
    pub async fn subscribe(&self, topic: &str) -> Box<dyn Subscription> {
        self.bus
            .subscribe(topic, &unique_topic("observer"))
            .await
            .expect("subscribe")
    }

    /// Publishes `payload` on `topic` with this message id, key and `message-type` header; a
    /// chosen id lets a test replay a message exactly as a redelivery would.
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
}

/// The next message on `sub` within the deadline, acknowledged, so a hang fails the test and the
/// observer's group moves on.
pub async fn next_delivery(sub: &mut Box<dyn Subscription>) -> Delivery {
    let delivery = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message within the deadline")
        .expect("receive");
    sub.ack(&delivery).await.expect("ack");
    delivery
}
