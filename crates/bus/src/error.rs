//! Errors of the bus crate; each keeps its cause for the one log line that reports it.

/// What can go wrong talking to the broker or the outbox/inbox tables.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker refused or did not answer.
    #[error("broker error: {0}")]
    Broker(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The broker did not confirm in time.
    #[error("broker did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Reading or writing the outbox/inbox failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A settings value is unusable.
    #[error("bus configuration: {0}")]
    Config(String),
}

impl From<rdkafka::error::KafkaError> for BusError {
    fn from(err: rdkafka::error::KafkaError) -> Self {
        BusError::Broker(Box::new(err))
    }
}

impl From<lapin::Error> for BusError {
    fn from(err: lapin::Error) -> Self {
        BusError::Broker(Box::new(err))
    }
}
