//! Settings of the payments service, read once from the environment at start-up.

use platform::config::{ConfigError, string_or, var_or};

/// Everything the payments process needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interface to listen on (`HTTP_HOST`).
    pub http_host: String,
    /// Port to listen on (`HTTP_PORT`, default 8082).
    pub http_port: u16,
    /// The `payments` database (`DATABASE_URL`).
    pub database_url: String,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Where payment requests come from (`PAYMENT_REQUESTS_TOPIC`).
    pub requests_topic: String,
    /// Where payment results go (`PAYMENT_RESULTS_TOPIC`).
    pub results_topic: String,
    /// Consumer group of the request consumer (`PAYMENTS_CONSUMER_GROUP`); instances share it.
    pub consumer_group: String,
}

impl Settings {
    /// Reads the environment; documented defaults match the local stack.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Settings {
            http_host: string_or("HTTP_HOST", "0.0.0.0"),
            http_port: var_or("HTTP_PORT", 8082)?,
            database_url: string_or(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/payments",
            ),
            database_max_connections: var_or("DATABASE_MAX_CONNECTIONS", 20)?,
            requests_topic: string_or("PAYMENT_REQUESTS_TOPIC", "payment.requests"),
            results_topic: string_or("PAYMENT_RESULTS_TOPIC", "payment.results"),
            consumer_group: string_or("PAYMENTS_CONSUMER_GROUP", "payments"),
        })
    }
}
