//! `GET /metrics`: each process's own Prometheus registry (prometheus-client, no global
//! recorder: instances in one test process never mix their series).
//!
//! The families are declared here once for every process; the parts that record into them get
//! a cheap clone of the handles they need ([`HttpMetrics`], [`RelayMetrics`],
//! [`ConsumerMetrics`], [`Metrics::business`]). Values that are state rather than events (outbox
//! backlog, pool connections) are gauges a [`Refresh`] sets right before each scrape, so they
//! are exact at scrape time instead of drifting.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the HTTP series: the route template (never the raw path: ids would make a series
/// per order), the method and the status class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `POST`, …
    pub method: String,
    /// `/orders/{order_id}`; `unmatched` for a path no route knows.
    pub route: String,
    /// `2xx` … `5xx`.
    pub status: &'static str,
}

/// `2xx` for 200 and so on.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// Labels of a route's latency: method and route template.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route template.
    pub route: String,
}

/// What happened to a consumed message.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Applied (or skipped as a duplicate) and acknowledged.
    ok,
    /// Already in the inbox: skipped, acknowledged.
    duplicate,
    /// Failed transiently; will be redelivered.
    retried,
    /// Sent to the dead-letter topic.
    dead_lettered,
}

/// Labels of the consumer's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The consumed topic.
    pub topic: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Labels of the business events: what happened and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `order_created`, `order_settled`, `payment`, `top_up`, `account_opened`.
    pub event: &'static str,
    /// `FINISHED`, `INSUFFICIENT_FUNDS`, …; `ok` when there is nothing to tell apart.
    pub outcome: &'static str,
}

/// Labels of the gateway's access decisions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccessLabels {
    /// Authentication: `ok`, `missing`, `expired`, `invalid`, …; rate limits: `subject` or `ip`.
    pub outcome: &'static str,
}

fn latency_buckets() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn batch_buckets() -> Histogram {
    // 1 … 512 rows.
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

/// Handles for the HTTP middleware ([`crate::http::finish`]).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    /// One answered request.
    pub fn observe(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        self.requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status_class(status),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

impl Default for HttpMetrics {
    /// Handles registered nowhere (a server built without a registry).
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_buckets),
        }
    }
}

/// Handles for the outbox relay.
#[derive(Clone)]
pub struct RelayMetrics {
    /// Rows the broker acknowledged.
    pub published: Counter,
    /// Publishes that failed (the row stays pending and is retried).
    pub errors: Counter,
    /// Rows per relay round that found any.
    pub batch: Histogram,
}

impl Default for RelayMetrics {
    /// Handles registered nowhere (a relay run without a registry, e.g. in a bench).
    fn default() -> Self {
        RelayMetrics {
            published: Counter::default(),
            errors: Counter::default(),
            batch: batch_buckets(),
        }
    }
}

/// Handles for the consumer loop.
#[derive(Clone)]
pub struct ConsumerMetrics {
    /// Messages by outcome.
    pub handled: Family<OutcomeLabels, Counter>,
    /// Time to apply one batch (one transaction).
    pub batch_seconds: Histogram,
}

impl Default for ConsumerMetrics {
    /// Handles registered nowhere (a consumer run without a registry).
    fn default() -> Self {
        ConsumerMetrics {
            handled: Family::default(),
            batch_seconds: latency_buckets(),
        }
    }
}

impl ConsumerMetrics {
    /// Counts one message of `topic` as `outcome`.
    pub fn count(&self, topic: &str, outcome: Outcome) {
        self.handled
            .get_or_create(&OutcomeLabels {
                topic: topic.to_owned(),
                outcome,
            })
            .inc();
    }
}

/// Labels of the consumer lag: the topic and one partition (Kafka) or queue (RabbitMQ) of it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// The consumed topic.
    pub topic: String,
    /// Partition number, or queue index of the group.
    pub partition: String,
}

/// Gauges set right before a scrape.
#[derive(Clone, Default)]
pub struct StateGauges {
    /// Messages the service's consumer group has not finished, per partition (queue).
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Outbox rows not yet acknowledged by the broker.
    pub outbox_pending: Gauge,
    /// Age of the oldest of them, seconds (0 when none).
    pub outbox_oldest_age: Gauge<f64, AtomicU64>,
    /// Database connections in use.
    pub db_in_use: Gauge,
    /// Database connections open and idle.
    pub db_idle: Gauge,
    /// The pool's bound.
    pub db_max: Gauge,
}

/// Sets the [`StateGauges`] before a scrape (the runtime reads the outbox and the pool).
#[async_trait::async_trait]
pub trait Refresh: Send + Sync {
    /// Updates the gauges; an error leaves them as they were and is logged.
    async fn refresh(&self, gauges: &StateGauges) -> Result<(), String>;
}

/// One process's registry and the handles into it.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests and latency.
    pub http: HttpMetrics,
    /// The outbox relay.
    pub relay: RelayMetrics,
    /// The consumer.
    pub consumer: ConsumerMetrics,
    /// Business events.
    pub business: Family<EventLabels, Counter>,
    /// Gateway: bearer tokens checked, by outcome ([`Metrics::auth`]).
    auth_decisions: Family<AccessLabels, Counter>,
    /// Gateway: requests refused with 429, by what was limited ([`Metrics::rate_limited`]).
    refused_by_limit: Family<AccessLabels, Counter>,
    /// Scrape-time state.
    pub state: StateGauges,
    refresh: Vec<Arc<dyn Refresh>>,
}

impl Metrics {
    /// The registry of one process; `refresh` sets its state gauges before each scrape.
    pub fn new(refresh: Vec<Arc<dyn Refresh>>) -> Self {
        let http = HttpMetrics::default();
        let relay = RelayMetrics::default();
        let consumer = ConsumerMetrics::default();
        let business = Family::<EventLabels, Counter>::default();
        let state = StateGauges::default();
        let auth_decisions = Family::<AccessLabels, Counter>::default();
        let refused_by_limit = Family::<AccessLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "auth_decisions",
            "Bearer tokens checked at the gateway, by outcome (ok, missing, expired, invalid, ...)",
            auth_decisions.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429, by the limit spent (subject: per token subject; ip: per \
             client address without a valid token)",
            refused_by_limit.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status class",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the response head), by method and route",
            http.latency.clone(),
        );
        registry.register(
            "outbox_published",
            "Outbox rows the broker acknowledged",
            relay.published.clone(),
        );
        registry.register(
            "outbox_publish_errors",
            "Outbox publishes that failed (the row stays pending and is retried)",
            relay.errors.clone(),
        );
        registry.register(
            "outbox_relay_batch_rows",
            "Rows per relay round that found any",
            relay.batch.clone(),
        );
        registry.register(
            "outbox_pending_rows",
            "Outbox rows not yet acknowledged by the broker",
            state.outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest pending outbox row (0 when none)",
            state.outbox_oldest_age.clone(),
        );
        registry.register(
            "consumer_messages",
            "Consumed messages by topic and outcome (ok, duplicate, retried, dead_lettered)",
            consumer.handled.clone(),
        );
        registry.register(
            "consumer_lag_messages",
            "Messages the consumer group has not finished, per partition (Kafka: high watermark - \
             committed offset) or queue (RabbitMQ: ready messages)",
            state.consumer_lag.clone(),
        );
        registry.register(
            "consumer_batch_duration_seconds",
            "Time to apply one consumer batch in its transaction",
            consumer.batch_seconds.clone(),
        );
        registry.register(
            "business_events",
            "Orders created and settled, payments, top-ups and accounts opened, by outcome",
            business.clone(),
        );
        registry.register(
            "db_pool_connections_in_use",
            "Database connections in use",
            state.db_in_use.clone(),
        );
        registry.register(
            "db_pool_connections_idle",
            "Database connections open and idle",
            state.db_idle.clone(),
        );
        registry.register(
            "db_pool_connections_max",
            "The database pool's bound",
            state.db_max.clone(),
        );
        Metrics {
            registry,
            http,
            relay,
            consumer,
            business,
            auth_decisions,
            refused_by_limit,
            state,
            refresh,
        }
    }

    /// Counts one business event.
    pub fn event(&self, event: &'static str, outcome: &'static str) {
        self.business
            .get_or_create(&EventLabels { event, outcome })
            .inc();
    }

    /// Counts one authentication outcome at the gateway.
    pub fn auth(&self, outcome: &'static str) {
        self.auth_decisions
            .get_or_create(&AccessLabels { outcome })
            .inc();
    }

    /// Counts one request refused by the rate limit `by` (`subject`, `ip`).
    pub fn rate_limited(&self, by: &'static str) {
        self.refused_by_limit
            .get_or_create(&AccessLabels { outcome: by })
            .inc();
    }

    /// The exposition text, state gauges refreshed first.
    pub async fn render(&self) -> String {
        for r in &self.refresh {
            if let Err(e) = r.refresh(&self.state).await {
                tracing::warn!(error = %e, "metrics refresh failed");
            }
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        text
    }
}

/// The `/metrics` endpoint of a process.
pub fn endpoint(metrics: Arc<Metrics>) -> impl poem::Endpoint<Output = Response> {
    poem::endpoint::make(move |_req| {
        let metrics = metrics.clone();
        async move {
            let text = metrics.render().await;
            text.with_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                .into_response()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_family_is_exposed_with_its_labels() {
        let metrics = Metrics::new(Vec::new());
        metrics.http.observe(
            "GET",
            "/orders/{order_id}",
            StatusCode::NOT_FOUND,
            Duration::from_millis(3),
        );
        metrics
            .consumer
            .count("payment.requests", Outcome::duplicate);
        metrics.event("order_settled", "FINISHED");
        metrics.relay.published.inc_by(3);
        let text = metrics.render().await;
        for expected in [
            r#"http_requests_total{method="GET",route="/orders/{order_id}",status="4xx"} 1"#,
            r#"consumer_messages_total{topic="payment.requests",outcome="duplicate"} 1"#,
            r#"business_events_total{event="order_settled",outcome="FINISHED"} 1"#,
            "outbox_published_total 3",
            "outbox_pending_rows 0",
            "http_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
    }
}
