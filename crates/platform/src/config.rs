//! Reading typed settings from the environment, once, at start-up.
//!
//! Every service builds its own `Settings` from these helpers so that an invalid value stops the
//! process with a message naming the variable, instead of surfacing later as a confusing error.

use std::fmt::Display;
use std::str::FromStr;

/// A setting that is present but cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable's name, so the operator knows what to fix.
    pub name: String,
    /// The offending value as found.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Reads `name`, falling back to `default` when unset or empty.
pub fn var_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    parse_or(name, std::env::var(name).ok(), default)
}

/// Reads a string setting with a default.
pub fn string_or(name: &str, default: &str) -> String {
    parse_or(name, std::env::var(name).ok(), default.to_owned()).unwrap_or_else(|_| default.into())
}

/// Settings of an event-driven service (orders, payments): HTTP, its database, its topics.
///
/// Both services read the same variables with the same meaning (README, Configuration), so the
/// parsing lives here once; only the defaults differ per service.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Interface to listen on (`HTTP_HOST`).
    pub http_host: String,
    /// Port to listen on (`HTTP_PORT`).
    pub http_port: u16,
    /// The service's own database (`DATABASE_URL`).
    pub database_url: String,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Payment requests: orders publishes, payments consumes (`PAYMENT_REQUESTS_TOPIC`).
    pub requests_topic: String,
    /// Payment results: payments publishes, orders consumes (`PAYMENT_RESULTS_TOPIC`).
    pub results_topic: String,
    /// Consumer group shared by the instances of this service (`<SERVICE>_CONSUMER_GROUP`).
    pub consumer_group: String,
    /// The group that reads payment requests (`PAYMENTS_CONSUMER_GROUP`): orders declares its
    /// queues too, so a request published before payments ever ran waits for it (RabbitMQ).
    pub payments_group: String,
    /// The group that reads payment results (`ORDERS_CONSUMER_GROUP`), for the same reason.
    pub orders_group: String,
    /// Orders only: an order still NEW this long after its payment was requested is requested
    /// again (`ORDER_SWEEP_AFTER_S`, seconds, default 120).
    pub order_sweep_after: std::time::Duration,
    /// How long an `Idempotency-Key` is remembered (`IDEMPOTENCY_KEY_TTL_S`, seconds, default
    /// 86400): a retry within it replays the first answer, after it the key is new again.
    pub idempotency_key_ttl: std::time::Duration,
    /// Orders only: open `GET /orders/stream` responses allowed per instance
    /// (`ORDER_STREAMS_MAX`, default 1000); past it a client gets a 503.
    pub order_streams_max: usize,
    /// Published outbox rows are deleted after this (`OUTBOX_RETENTION_S`, default 7 days).
    pub outbox_retention: std::time::Duration,
    /// Inbox rows are deleted after this (`INBOX_RETENTION_S`, default 14 days); never less
    /// than [`Self::broker_retention`], or a redelivered message could pass the inbox twice.
    pub inbox_retention: std::time::Duration,
    /// How long the broker may still redeliver a message (`BROKER_RETENTION_S`, default 7 days:
    /// Kafka's default `retention.ms`).
    pub broker_retention: std::time::Duration,
    /// Who may call (`AUTH`, default `jwt`, with `AUTH_INTERNAL_SECRET`): only requests carrying
    /// the gateway's signed identity, or anyone with `AUTH=off`.
    pub auth: crate::auth::ServiceAuth,
}

impl ServiceSettings {
    /// Reads the environment of service `name` (`orders`, `payments`): defaults are port
    /// `default_port`, database `name` on the local server, consumer group `name`.
    pub fn from_env(name: &str, default_port: u16) -> Result<Self, ConfigError> {
        let group_var = format!("{}_CONSUMER_GROUP", name.to_ascii_uppercase());
        Ok(ServiceSettings {
            http_host: string_or("HTTP_HOST", "0.0.0.0"),
            http_port: var_or("HTTP_PORT", default_port)?,
            database_url: database_url_from_env(name),
            database_max_connections: var_or("DATABASE_MAX_CONNECTIONS", 20)?,
            requests_topic: string_or("PAYMENT_REQUESTS_TOPIC", contract::events::REQUESTS_TOPIC),
            results_topic: string_or("PAYMENT_RESULTS_TOPIC", contract::events::RESULTS_TOPIC),
            consumer_group: string_or(&group_var, name),
            payments_group: string_or("PAYMENTS_CONSUMER_GROUP", "payments"),
            orders_group: string_or("ORDERS_CONSUMER_GROUP", "orders"),
            order_sweep_after: std::time::Duration::from_secs(
                var_or::<u64>("ORDER_SWEEP_AFTER_S", 120)?.max(1),
            ),
            idempotency_key_ttl: std::time::Duration::from_secs(
                var_or::<u64>("IDEMPOTENCY_KEY_TTL_S", 86_400)?.max(1),
            ),
            order_streams_max: var_or("ORDER_STREAMS_MAX", 1000)?,
            outbox_retention: secs_or("OUTBOX_RETENTION_S", 7 * DAY)?,
            inbox_retention: inbox_retention(
                std::env::var("INBOX_RETENTION_S").ok(),
                secs_or("BROKER_RETENTION_S", 7 * DAY)?,
            )?,
            broker_retention: secs_or("BROKER_RETENTION_S", 7 * DAY)?,
            auth: crate::auth::ServiceAuth::from_env()?,
        })
    }
}

/// `DATABASE_URL` of service `name` (default: database `name` on the local server), read alone:
/// `<service> migrate` needs nothing else, so a migration job carries no secrets and no
/// authentication settings.
pub fn database_url_from_env(name: &str) -> String {
    string_or(
        "DATABASE_URL",
        &format!("postgres://postgres@127.0.0.1:5432/{name}"),
    )
}

const DAY: u64 = 86_400;

/// A duration in whole seconds (at least 1) with a default.
fn secs_or(name: &str, default: u64) -> Result<std::time::Duration, ConfigError> {
    Ok(std::time::Duration::from_secs(
        var_or(name, default)?.max(1),
    ))
}

/// `INBOX_RETENTION_S` (default 14 days), refused below the broker's retention.
fn inbox_retention(
    raw: Option<String>,
    broker: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    let age = std::time::Duration::from_secs(
        parse_or("INBOX_RETENTION_S", raw.clone(), 14 * DAY)?.max(1),
    );
    if age < broker {
        return Err(ConfigError {
            name: "INBOX_RETENTION_S".into(),
            value: raw.unwrap_or_default(),
            reason: format!(
                "must be at least BROKER_RETENTION_S ({} s): the broker may redeliver a message \
                 that old",
                broker.as_secs()
            ),
        });
    }
    Ok(age)
}

/// The pure half of [`var_or`], separate so it is testable without touching the environment.
fn parse_or<T>(name: &str, raw: Option<String>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw {
        Some(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|e: T::Err| ConfigError {
                name: name.to_owned(),
                value,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_blank_takes_the_default() {
        assert_eq!(parse_or("PORT", None, 8080u16).unwrap(), 8080);
        assert_eq!(parse_or("PORT", Some("  ".into()), 8080u16).unwrap(), 8080);
    }

    #[test]
    fn value_is_trimmed_and_parsed() {
        assert_eq!(parse_or("PORT", Some(" 9000 ".into()), 1u16).unwrap(), 9000);
    }

    #[test]
    fn an_inbox_kept_shorter_than_the_broker_keeps_messages_is_refused() {
        let week = std::time::Duration::from_secs(7 * DAY);
        assert_eq!(inbox_retention(None, week).unwrap().as_secs(), 14 * DAY);
        let err = inbox_retention(Some("3600".into()), week).unwrap_err();
        assert!(err.to_string().contains("BROKER_RETENTION_S"), "{err}");
        assert!(inbox_retention(Some((7 * DAY).to_string()), week).is_ok());
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let err = parse_or::<u16>("HTTP_PORT", Some("eighty".into()), 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("HTTP_PORT") && text.contains("eighty"),
            "{text}"
        );
    }
}
