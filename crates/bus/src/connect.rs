//! Choosing and checking the broker from the environment (`BROKER`).

use std::sync::Arc;

use crate::kafka::{KafkaBus, KafkaSettings};
use crate::rabbitmq::{RabbitBus, RabbitSettings};
use crate::{BusError, MessageBus, TopicSpec};

/// Which broker implementation backs the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Apache Kafka (the default).
    Kafka,
    /// RabbitMQ (no plugin needed).
    RabbitMq,
}

impl BrokerKind {
    /// The name `BROKER` takes (what [`str::parse`] reads back).
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::RabbitMq => "rabbitmq",
        }
    }
}

impl std::str::FromStr for BrokerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "kafka" => Ok(BrokerKind::Kafka),
            "rabbitmq" => Ok(BrokerKind::RabbitMq),
            other => Err(format!(
                "unknown broker {other:?}; supported: kafka, rabbitmq"
            )),
        }
    }
}

/// Builds the bus selected by `BROKER` (default `kafka`) with its own settings from the env.
pub fn from_env(client_id: &str) -> Result<Arc<dyn MessageBus>, BusError> {
    let kind: BrokerKind = platform::config::var_or("BROKER", BrokerKind::Kafka)
        .map_err(|e| BusError::Config(e.to_string()))?;
    match kind {
        BrokerKind::Kafka => {
            let settings =
                KafkaSettings::from_env(client_id).map_err(|e| BusError::Config(e.to_string()))?;
            Ok(Arc::new(KafkaBus::new(settings)?))
        }
        BrokerKind::RabbitMq => {
            let settings =
                RabbitSettings::from_env(client_id).map_err(|e| BusError::Config(e.to_string()))?;
            Ok(Arc::new(RabbitBus::new(settings)))
        }
    }
}

/// Declares `topology`, retrying while the broker is still starting (up to a minute). The caller
/// races this against its stop signal: a broker that never comes up must not make SIGTERM wait.
pub async fn declare_with_retry(
    bus: &dyn MessageBus,
    topology: &[TopicSpec],
) -> Result<(), BusError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match bus.declare(topology).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "broker not ready, retrying the topology declaration");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
