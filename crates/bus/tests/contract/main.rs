//! The `MessageBus` contract, one suite instantiated once per broker (`kafka::…`,
//! `rabbitmq::…`), against the real Kafka and RabbitMQ the stack started (`KAFKA_BROKERS`,
//! `AMQP_URL`) and PostgreSQL for the relay and inbox (`TEST_DATABASE_URL`). Every test uses its
//! own topic and consumer group.

#![allow(clippy::unwrap_used)]

mod delivery;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use bus::kafka::{KafkaBus, KafkaSettings};
use bus::rabbitmq::{RabbitBus, RabbitSettings};
use bus::{Delivery, Message, MessageBus, Subscription, TopicSpec};
use testkit::unique_topic;
use uuid::Uuid;

/// Bound on waiting for one message or one condition.
pub const WAIT: Duration = Duration::from_secs(30);

/// The broker a scenario runs against.
#[derive(Debug, Clone, Copy)]
pub enum Broker {
    /// `bus::kafka`.
    Kafka,
    /// `bus::rabbitmq`.
    RabbitMq,
}

impl Broker {
    /// A bus on the stack's broker.
    pub fn bus(self) -> Arc<dyn MessageBus> {
        self.bus_at(match self {
            Broker::Kafka => testkit::kafka_brokers(),
            Broker::RabbitMq => testkit::amqp_url(),
        })
    }

    /// A bus on a broker address nothing listens on.
    pub fn dead_bus(self) -> Arc<dyn MessageBus> {
        self.bus_at(match self {
            Broker::Kafka => "127.0.0.1:1".into(),
            Broker::RabbitMq => "amqp://guest:guest@127.0.0.1:1/%2f".into(),
        })
    }

    fn bus_at(self, address: String) -> Arc<dyn MessageBus> {
        match self {
            Broker::Kafka => Arc::new(
                KafkaBus::new(KafkaSettings {
                    brokers: address,
                    partitions: 3,
                    replication: 1,
                    min_insync_replicas: None,
                    client_id: "bus-contract-test".into(),
                })
                .expect("kafka client"),
            ),
            Broker::RabbitMq => Arc::new(RabbitBus::new(RabbitSettings {
                url: address,
                queues: 3,
                // Larger than most scenarios' message count: redelivery order must not depend
                // on the broker handing over one message at a time.
                prefetch: 32,
                client_id: "bus-contract-test".into(),
                queue_type: Default::default(),
            })),
        }
    }
}

/// A message with a trace header beside the ones the bus adds.
pub fn message(key: &str, body: &str) -> Message {
    Message {
        id: Uuid::now_v7(),
        key: key.into(),
        kind: "Test".into(),
        payload: body.as_bytes().to_vec(),
        headers: vec![("traceparent".into(), "00-abc-def-01".into())],
    }
}

/// A fresh topic declared with one reading group; returns both names.
pub async fn declared(bus: &dyn MessageBus, prefix: &str) -> (String, String) {
    let topic = unique_topic(prefix);
    let group = unique_topic("g");
    bus.declare(&[TopicSpec::new(&topic, [&group])])
        .await
        .expect("declare topic");
    (topic, group)
}

/// The next delivery, failing the test after [`WAIT`].
pub async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message within the deadline")
        .expect("receive")
}

/// Receives and acknowledges `n` messages, returning their ids in arrival order.
pub async fn receive_ids(sub: &mut Box<dyn Subscription>, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let d = next(sub).await;
        ids.push(d.message_id().unwrap());
        sub.ack(&d).await.unwrap();
    }
    ids
}

/// Instantiates every scenario once per broker: `kafka::<name>` and `rabbitmq::<name>`.
macro_rules! per_broker {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod kafka {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::$module::$name(crate::Broker::Kafka).await
                }
            )*
        }
        mod rabbitmq {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::$module::$name(crate::Broker::RabbitMq).await
                }
            )*
        }
    };
}

per_broker!(
    delivery::publish_and_consume_carry_key_body_and_headers,
    delivery::messages_of_one_key_arrive_in_publish_order,
    delivery::a_nacked_message_comes_back_before_everything_behind_it,
    delivery::unacknowledged_messages_are_redelivered_after_restart,
    delivery::a_killed_member_s_unacked_messages_go_to_the_next_member_in_order,
    delivery::a_publish_before_any_consumer_ran_waits_for_the_group,
    delivery::consumer_dead_letters_poison_and_retries_transient_failures,
    delivery::a_message_failing_every_attempt_is_dead_lettered_after_the_bound,
    delivery::the_consumer_waits_out_a_broker_that_refuses_it,
    delivery::ping_tells_a_live_broker_from_a_dead_one,
    delivery::backlog_counts_what_the_group_has_not_finished,
    relay::relay_publishes_pending_rows_once_in_order,
    relay::running_relay_wakes_when_woken,
    relay::a_relay_stops_mid_backlog_when_asked,
    relay::concurrent_relays_never_publish_a_row_twice,
    relay::a_second_relay_never_overtakes_a_slow_one_on_the_same_key,
    relay::a_failed_publish_is_not_overtaken_by_the_rest_of_its_key,
    relay::a_frozen_relay_loses_its_keys_after_the_lease,
    relay::per_key_order_holds_across_two_relays_and_two_consumers,
    relay::a_batch_undoes_only_its_failed_messages_and_keeps_order,
    relay::a_clean_batch_is_applied_at_once,
    relay::a_permanent_database_error_dead_letters_at_once,
);

/// RabbitMQ drops what reaches an exchange with no queue; the bus must say so instead of
/// confirming (Kafka keeps a topic's messages for later groups, so it has no such case).
#[tokio::test]
async fn rabbitmq_refuses_a_publish_no_queue_would_hold() {
    let bus = Broker::RabbitMq.bus();
    let topic = unique_topic("unread");
    bus.declare(&[TopicSpec::new(&topic, Vec::<String>::new())])
        .await
        .unwrap();
    let err = bus.publish(&topic, &message("k", "lost?")).await;
    assert!(err.is_err(), "an unroutable publish was confirmed");
}
