//! The RabbitMQ bus against the stack's real broker: with `RABBITMQ_QUEUE_TYPE=quorum` every
//! queue of the topology is a quorum queue (a classic declaration of the same queue is refused
//! as inequivalent), and an
//! `AMQP_URL` listing several nodes skips one that does not answer.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bus::rabbitmq::{QueueType, RabbitBus, RabbitSettings};
use bus::{Message, MessageBus, TopicSpec};
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use testkit::unique_topic;
use uuid::Uuid;

fn settings(url: String) -> RabbitSettings {
    RabbitSettings {
        url,
        queues: 2,
        prefetch: 8,
        client_id: "nodes-test".into(),
        queue_type: QueueType::Quorum,
    }
}

/// An AMQP URL on a local port nothing listens on.
fn dead_node() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

#[tokio::test]
async fn a_dead_node_in_the_url_list_is_skipped() {
    let topic = unique_topic("nodes");
    let bus = RabbitBus::new(settings(format!("{},{}", dead_node(), testkit::amqp_url())));
    bus.declare(&[TopicSpec::new(&topic, ["g"])]).await.unwrap();
    let mut sub = bus.subscribe(&topic, "g").await.unwrap();
    let message = Message {
        id: Uuid::now_v7(),
        key: "user-1".into(),
        kind: "Test".into(),
        payload: b"{}".to_vec(),
        headers: Vec::new(),
    };
    bus.publish(&topic, &message).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.message_id().unwrap(), message.id);
    sub.ack(&got).await.unwrap();
}

#[tokio::test]
async fn every_queue_of_the_topology_is_a_quorum_queue() {
    let topic = unique_topic("quorum");
    let bus = RabbitBus::new(settings(testkit::amqp_url()));
    bus.declare(&[TopicSpec::new(&topic, ["g"])]).await.unwrap();
    let url = testkit::amqp_url();
    let first = url.split(',').next().unwrap();
    let connection = Connection::connect(first, ConnectionProperties::default())
        .await
        .unwrap();
    for index in 0..2 {
        let channel = connection.create_channel().await.unwrap();
        let mut classic = FieldTable::default();
        classic.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("classic".into()),
        );
        classic.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        let queue = format!("{topic}/g/{index}");
        let err = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                classic,
            )
            .await
            .expect_err("a classic declaration of a quorum queue must be refused");
        assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
    }
}
