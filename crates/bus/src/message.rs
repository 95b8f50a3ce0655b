//! The unit that travels over the bus, in both directions.

use serde::de::DeserializeOwned;
use uuid::Uuid;

/// Header carrying the message id; consumers deduplicate on it (the outbox row id).
pub const HEADER_MESSAGE_ID: &str = "message-id";
/// Header naming the payload's schema, so a consumer can reject what it does not understand.
pub const HEADER_MESSAGE_TYPE: &str = "message-type";
/// Header a dead-lettered message carries: why it was dead-lettered.
pub const HEADER_DLQ_ERROR: &str = "dlq-error";
/// Header a dead-lettered message carries: where it came from.
pub const HEADER_DLQ_SOURCE: &str = "dlq-source-topic";

/// An outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique id, stable across republishing, so redelivery is detectable downstream.
    pub id: Uuid,
    /// Partitioning key; messages with one key are delivered in order (the user id).
    pub key: String,
    /// Schema name (`message-type` header).
    pub kind: String,
    /// JSON body.
    pub payload: Vec<u8>,
    /// Further headers (`traceparent`); id and type are added by the bus.
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// All headers as sent, `message-id` and `message-type` first.
    pub fn wire_headers(&self) -> Vec<(String, String)> {
        let mut all = vec![
            (HEADER_MESSAGE_ID.to_owned(), self.id.to_string()),
            (HEADER_MESSAGE_TYPE.to_owned(), self.kind.clone()),
        ];
        all.extend(self.headers.iter().cloned());
        all
    }
}

/// What the broker needs to acknowledge or replay one delivery. Opaque to callers: they hand it
/// back through `ack`/`nack` and may log it, nothing more, so no caller depends on one broker.
#[derive(Clone, PartialEq, Eq)]
pub struct AckToken(pub(crate) TokenKind);

/// The broker-specific content of an [`AckToken`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// A Kafka record; `epoch` counts this member's assignments of the partition, so an
    /// acknowledgement from before a rebalance is recognised as stale.
    Kafka {
        partition: i32,
        offset: i64,
        epoch: u64,
    },
    /// A RabbitMQ delivery on the channel of one of the group's queues; `epoch` names that
    /// channel, so an acknowledgement for a channel since closed (its messages requeued) is
    /// recognised as stale.
    Rabbit { queue: usize, tag: u64, epoch: u64 },
    /// Built by tests of code that never acknowledges.
    #[cfg(test)]
    None,
}

impl AckToken {
    /// The unit of per-key order the delivery came through — a Kafka partition, a RabbitMQ
    /// queue of the group — so a caller can tell where a key lives without knowing the broker.
    pub fn partition(&self) -> u32 {
        match &self.0 {
            TokenKind::Kafka { partition, .. } => u32::try_from(*partition).unwrap_or(u32::MAX),
            TokenKind::Rabbit { queue, .. } => u32::try_from(*queue).unwrap_or(u32::MAX),
            #[cfg(test)]
            TokenKind::None => 0,
        }
    }
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            TokenKind::Kafka {
                partition, offset, ..
            } => write!(f, "kafka:{partition}@{offset}"),
            TokenKind::Rabbit { queue, tag, epoch } => write!(f, "rabbitmq:{queue}#{epoch}.{tag}"),
            #[cfg(test)]
            TokenKind::None => write!(f, "none"),
        }
    }
}

/// An incoming message, as received; nothing in it is trusted yet.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Topic it came from.
    pub topic: String,
    /// Key, if the producer set one.
    pub key: Option<String>,
    /// Raw body.
    pub payload: Vec<u8>,
    /// All headers; values that were not UTF-8 are dropped.
    pub headers: Vec<(String, String)>,
    /// Hands the delivery back to the broker that produced it (`ack`/`nack`).
    pub token: AckToken,
}

impl Delivery {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The message id, or why there is none usable.
    pub fn message_id(&self) -> Result<Uuid, String> {
        let raw = self
            .header(HEADER_MESSAGE_ID)
            .ok_or_else(|| format!("missing {HEADER_MESSAGE_ID} header"))?;
        raw.parse()
            .map_err(|e| format!("invalid {HEADER_MESSAGE_ID} header {raw:?}: {e}"))
    }

    /// The span to handle this delivery in: a child of the one its `traceparent` header names,
    /// or a new trace when it has none usable (a row written outside traced work).
    pub fn span(&self) -> platform::trace::Span {
        let mut span = platform::trace::Span::incoming(
            format!("process {}", self.topic),
            platform::trace::SpanKind::Consumer,
            self.header(platform::trace::TRACEPARENT),
        )
        .with("messaging.destination.name", self.topic.as_str());
        if let Some(id) = self.header(HEADER_MESSAGE_ID) {
            span = span.with("messaging.message.id", id);
        }
        span
    }

    /// Decodes the JSON body into the expected event type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_slice(&self.payload).map_err(|e| format!("undecodable payload: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(headers: &[(&str, &str)], payload: &str) -> Delivery {
        Delivery {
            topic: "t".into(),
            key: None,
            payload: payload.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            token: AckToken(TokenKind::None),
        }
    }

    #[test]
    fn message_id_must_be_a_uuid_header() {
        let id = Uuid::new_v4();
        assert_eq!(
            delivery(&[("message-id", &id.to_string())], "{}").message_id(),
            Ok(id)
        );
        assert!(
            delivery(&[], "{}")
                .message_id()
                .unwrap_err()
                .contains("missing")
        );
        assert!(delivery(&[("message-id", "x")], "{}").message_id().is_err());
    }

    #[test]
    fn undecodable_payload_is_an_error_not_a_panic() {
        let d = delivery(&[], "not json");
        assert!(d.decode::<serde_json::Value>().is_err());
    }

    #[test]
    fn wire_headers_lead_with_id_and_type() {
        let m = Message {
            id: Uuid::nil(),
            key: "k".into(),
            kind: "Kind".into(),
            payload: vec![],
            headers: vec![("traceparent".into(), "x".into())],
        };
        let names: Vec<_> = m.wire_headers().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["message-id", "message-type", "traceparent"]);
    }
}
