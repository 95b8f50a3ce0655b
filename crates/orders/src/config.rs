//! Settings of the orders service, read once from the environment at start-up.

use platform::config::{ConfigError, string_or, var_or};

/// Everything the orders process needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interface to listen on (`HTTP_HOST`).
    pub http_host: String,
    /// Port to listen on (`HTTP_PORT`, default 8081).
    pub http_port: u16,
    /// The `orders` database (`DATABASE_URL`).
    pub database_url: String,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Where payment requests go (`PAYMENT_REQUESTS_TOPIC`).
    pub requests_topic: String,
    /// Where payment results come from (`PAYMENT_RESULTS_TOPIC`).
    pub results_topic: String,
    /// Consumer group of the result consumer (`ORDERS_CONSUMER_GROUP`); instances share it.
    pub consumer_group: String,
}

impl Settings {
    /// Reads the environment; documented defaults match the local stack.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Settings {
            http_host: string_or("HTTP_HOST", "0.0.0.0"),
            http_port: var_or("HTTP_PORT", 8081)?,
            database_url: string_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders"),
            database_max_connections: var_or("DATABASE_MAX_CONNECTIONS", 20)?,
            requests_topic: string_or("PAYMENT_REQUESTS_TOPIC", "payment.requests"),
            results_topic: string_or("PAYMENT_RESULTS_TOPIC", "payment.results"),
            consumer_group: string_or("ORDERS_CONSUMER_GROUP", "orders"),
        })
    }
}
