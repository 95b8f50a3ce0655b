//! `dlq list` and `dlq replay` against the stack's real brokers (`KAFKA_BROKERS`, `AMQP_URL`):
//! what an operator does after fixing the cause of dead letters.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use bus::consumer::{dlq_spec, dlq_topic};
use bus::message::{HEADER_DLQ_ERROR, HEADER_DLQ_SOURCE};
use bus::{Message, MessageBus, TopicSpec};
use testkit::unique_topic;
use uuid::Uuid;

/// Runs the tool against `broker` and returns its standard output; it must succeed.
fn dlq(broker: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dlq"));
    cmd.args(args).env("BROKER", broker);
    match broker {
        "kafka" => cmd.env("KAFKA_BROKERS", testkit::kafka_brokers()),
        _ => cmd.env("AMQP_URL", testkit::amqp_url()),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dlq {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A dead letter as the consumer loop writes it.
fn letter(topic: &str, body: &str) -> Message {
    Message {
        id: Uuid::now_v7(),
        key: "user-1".into(),
        kind: "PaymentRequested.v1".into(),
        payload: body.as_bytes().to_vec(),
        headers: vec![
            (
                HEADER_DLQ_ERROR.into(),
                "poison message: undecodable".into(),
            ),
            (HEADER_DLQ_SOURCE.into(), topic.into()),
        ],
    }
}

/// Two dead letters: `list` shows both and keeps them; `replay --id` sends the chosen one back
/// to its source topic with its message id and without the dead-letter headers, and keeps the
/// other; a plain `replay` then empties the dead-letter topic.
async fn list_and_replay(broker: &str, bus: std::sync::Arc<dyn MessageBus>) {
    let topic = unique_topic("dlq-tool");
    let group = unique_topic("readers");
    bus.declare(&[TopicSpec::new(&topic, [&group]), dlq_spec(&topic)])
        .await
        .unwrap();
    let (first, second) = (letter(&topic, "one"), letter(&topic, "two"));
    for m in [&first, &second] {
        bus.publish(&dlq_topic(&topic), m).await.unwrap();
    }

    let listed = dlq(broker, &["list", &topic]);
    assert!(listed.contains(&first.id.to_string()), "{listed}");
    assert!(listed.contains("undecodable"), "{listed}");
    assert!(listed.contains("2 dead letter(s)"), "{listed}");
    assert!(
        dlq(broker, &["list", &topic]).contains("2 dead letter(s)"),
        "list keeps them"
    );

    let replayed = dlq(broker, &["replay", &topic, "--id", &second.id.to_string()]);
    assert!(replayed.contains("1 replayed, 1 kept"), "{replayed}");
    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .unwrap()
        .unwrap();
    sub.ack(&back).await.unwrap();
    sub.close().await.unwrap();
    assert_eq!(back.message_id(), Ok(second.id));
    assert_eq!(back.payload, b"two");
    assert_eq!(back.header(HEADER_DLQ_ERROR), None);
    assert_eq!(back.header("message-type"), Some("PaymentRequested.v1"));

    let rest = dlq(broker, &["replay", &topic]);
    assert!(rest.contains("1 replayed, 0 kept"), "{rest}");
    assert!(dlq(broker, &["list", &topic]).contains("0 dead letter(s)"));
}

#[tokio::test]
async fn kafka_list_and_replay() {
    let bus = bus::kafka::KafkaBus::new(bus::kafka::KafkaSettings {
        brokers: testkit::kafka_brokers(),
        partitions: 3,
        replication: 1,
        min_insync_replicas: None,
        client_id: "dlq-test".into(),
    })
    .unwrap();
    list_and_replay("kafka", std::sync::Arc::new(bus)).await;
}

#[tokio::test]
async fn rabbitmq_list_and_replay() {
    let bus = bus::rabbitmq::RabbitBus::new(bus::rabbitmq::RabbitSettings {
        url: testkit::amqp_url(),
        queues: 3,
        prefetch: 32,
        client_id: "dlq-test".into(),
        queue_type: Default::default(),
    });
    list_and_replay("rabbitmq", std::sync::Arc::new(bus)).await;
}
