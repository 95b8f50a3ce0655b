//! A fatal error of the idempotent producer, injected with librdkafka's own test hook
//! (`rd_kafka_test_fatal_error`), against the real broker the stack started (`KAFKA_BROKERS`):
//! `/health`'s ping reports it, and publishing works again afterwards instead of failing forever.

// The only unsafe code of the workspace: the FFI call that injects the fault.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bus::kafka::{KafkaBus, KafkaSettings};
use bus::{Message, MessageBus, TopicSpec};
use rdkafka::producer::Producer;
use rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
use testkit::{eventually, kafka_brokers, unique_topic};
use uuid::Uuid;

fn message() -> Message {
    Message {
        id: Uuid::now_v7(),
        key: "k".into(),
        kind: "Test".into(),
        payload: b"{}".to_vec(),
        headers: Vec::new(),
    }
}

#[tokio::test]
async fn a_fatal_producer_error_is_reported_and_recovered_from() {
    let bus = KafkaBus::new(KafkaSettings {
        brokers: kafka_brokers(),
        partitions: 1,
        replication: 1,
        min_insync_replicas: None,
        client_id: "fatal-test".into(),
    })
    .unwrap();
    let topic = unique_topic("fatal");
    bus.declare(&[TopicSpec::new(&topic, Vec::<String>::new())])
        .await
        .unwrap();
    bus.publish(&topic, &message()).await.unwrap();

    let reason = c"injected by the test";
    let injected = unsafe {
        rdkafka_sys::rd_kafka_test_fatal_error(
            bus.producer().client().native_ptr(),
            RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
            reason.as_ptr(),
        )
    };
    assert_eq!(
        injected,
        rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );

    let health = bus.ping().await;
    assert!(
        health
            .as_ref()
            .is_err_and(|e| format!("{e:?}").contains("fatal")),
        "/health must report the fatal producer: {health:?}"
    );
    eventually(
        "a publish accepted again",
        Duration::from_secs(30),
        || async { bus.publish(&topic, &message()).await.ok() },
    )
    .await;
    bus.ping().await.expect("healthy again");
}

/// A producer whose publishes keep timing out is replaced by a fresh one (which bootstraps
/// again), instead of timing out every publish until librdkafka's own re-bootstrap timer fires.
/// The "broker" here accepts connections and never answers, so every delivery times out.
#[tokio::test]
async fn a_producer_whose_publishes_keep_timing_out_is_replaced() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bus = KafkaBus::new(KafkaSettings {
        brokers: silent.local_addr().unwrap().to_string(),
        partitions: 1,
        replication: 1,
        min_insync_replicas: None,
        client_id: "stall-test".into(),
    })
    .unwrap();
    let first = bus.producer().client().native_ptr() as usize;
    let topic = unique_topic("stall");
    let messages: Vec<Message> = (0..3).map(|_| message()).collect();
    let publishes: Vec<_> = messages.iter().map(|m| bus.publish(&topic, m)).collect();
    for result in futures::future::join_all(publishes).await {
        assert!(result.is_err(), "nothing answers, every publish times out");
    }
    assert_ne!(
        bus.producer().client().native_ptr() as usize,
        first,
        "the producer must have been replaced after three timeouts in a row"
    );
    drop(silent);
}
