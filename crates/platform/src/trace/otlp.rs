//! Span export over OTLP/HTTP with the JSON encoding (`POST <endpoint>/v1/traces`), only when an
//! endpoint is configured: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL), as the OpenTelemetry SDKs read them; the
//! service's name is `OTEL_SERVICE_NAME` or the one given to [`init`].
//!
//! Export never slows or fails the work it describes: finished spans go into a bounded queue
//! (full → the span is dropped and counted in the next warning), and one background task sends
//! them in batches every second.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Span, SpanKind};

/// Spans waiting for the exporter; past it new spans are dropped.
const QUEUE: usize = 8192;
/// Most spans per request to the collector.
const BATCH: usize = 512;
/// How often queued spans are sent.
const INTERVAL: Duration = Duration::from_secs(1);
/// Bound on one export request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom to export, from the environment.
struct Config {
    url: String,
    service: String,
}

static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
static QUEUE_TX: OnceLock<mpsc::Sender<Value>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Reads the exporter's configuration from the environment once; `service` names the process
/// when `OTEL_SERVICE_NAME` does not. Without an endpoint nothing is exported.
pub fn init(service: &str) {
    let url = match std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Ok(full) if !full.trim().is_empty() => Some(full.trim().to_owned()),
        _ => match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Ok(base) if !base.trim().is_empty() => {
                Some(format!("{}/v1/traces", base.trim().trim_end_matches('/')))
            }
            _ => None,
        },
    };
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| service.to_owned());
    configure(url, &service);
}

/// Exports to `url` (the full `/v1/traces` URL; `None`: no export) as `service`; the first call
/// of the process decides, later ones change nothing.
pub fn configure(url: Option<String>, service: &str) {
    CONFIG.get_or_init(|| {
        let url = url?;
        tracing::info!(url, service, "exporting spans over OTLP/HTTP");
        Some(Config {
            url,
            service: service.to_owned(),
        })
    });
}

/// Whether spans are exported (an endpoint was configured by [`init`]).
pub fn exporting() -> bool {
    matches!(CONFIG.get(), Some(Some(_)))
}

/// Queues one finished span; starts the sending task on first use.
pub(super) fn record(span: Span, start: SystemTime, end: SystemTime) {
    let Some(Some(config)) = CONFIG.get() else {
        return;
    };
    let tx = QUEUE_TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send_batches(rx, config.url.clone(), config.service.clone()));
        tx
    });
    if tx.try_send(encode(&span, start, end)).is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// One span in OTLP's JSON form (ids as lowercase hex, times as decimal strings).
fn encode(span: &Span, start: SystemTime, end: SystemTime) -> Value {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos().to_string())
            .unwrap_or_else(|_| "0".into())
    };
    let kind = match span.kind {
        SpanKind::Server => 2,
        SpanKind::Consumer => 5,
    };
    let attributes: Vec<Value> = span
        .attributes
        .iter()
        .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
        .collect();
    let mut out = json!({
        "traceId": span.context.trace_id(),
        "spanId": span.context.span_id(),
        "name": span.name,
        "kind": kind,
        "startTimeUnixNano": nanos(start),
        "endTimeUnixNano": nanos(end),
        "attributes": attributes,
    });
    if let Some(parent) = span.context.parent_id() {
        out["parentSpanId"] = json!(parent);
    }
    out
}

/// The request body for `spans` of `service`.
fn body(service: &str, spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "platform::trace"}, "spans": spans}],
    }]})
}

/// Sends what is queued every [`INTERVAL`] (at most [`BATCH`] per request) until every sender
/// is gone. A failed request loses its spans and is logged; the next batch tries again.
async fn send_batches(mut rx: mpsc::Receiver<Value>, url: String, service: String) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "OTLP exporter disabled: no HTTP client");
            return;
        }
    };
    let mut spans = Vec::with_capacity(BATCH);
    loop {
        let deadline = tokio::time::Instant::now() + INTERVAL;
        let mut open = true;
        while spans.len() < BATCH {
            let room = BATCH - spans.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut spans, room)).await {
                Ok(0) => {
                    open = false;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        flush(&client, &url, &service, &mut spans).await;
        if !open {
            return;
        }
    }
}

async fn flush(client: &reqwest::Client, url: &str, service: &str, spans: &mut Vec<Value>) {
    if spans.is_empty() {
        return;
    }
    let count = spans.len();
    let sent = client
        .post(url)
        .json(&body(service, std::mem::take(spans)))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    match sent {
        Ok(_) if dropped == 0 => {}
        Ok(_) => tracing::warn!(dropped, "OTLP exporter queue was full; spans dropped"),
        Err(e) => tracing::warn!(
            error = %crate::error::error_chain(&e),
            lost = count,
            dropped,
            "OTLP export failed; spans dropped"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TraceContext;

    #[test]
    fn a_span_is_encoded_as_otlp_json() {
        let parent =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let span = Span {
            context: parent.child(),
            name: "POST /orders".into(),
            kind: SpanKind::Server,
            attributes: vec![("http.route", "/orders".into())],
        };
        let start = UNIX_EPOCH + Duration::from_nanos(1_000);
        let v = encode(&span, start, start + Duration::from_nanos(500));
        assert_eq!(v["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(v["kind"], 2);
        assert_eq!(v["startTimeUnixNano"], "1000");
        assert_eq!(v["endTimeUnixNano"], "1500");
        assert_eq!(v["attributes"][0]["value"]["stringValue"], "/orders");
        let b = body("orders", vec![v]);
        assert_eq!(
            b["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "orders"
        );
    }
}
