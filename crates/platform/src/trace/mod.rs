//! One trace per order: W3C Trace Context (`traceparent`) taken from a request or created, held
//! for the work it causes, stored with the outbox row, carried as a message header and
//! continued by the consumer — so every log line about one order, in every service, carries the
//! same `trace_id` (the JSON logs show it under `span`). Spans are exported to an OTLP endpoint
//! only when one is configured ([`otlp`]); `TRACING=off` turns all of it off.
//!
//! Invariant: a [`TraceContext`] only holds what the W3C grammar allows (lowercase hex, ids not
//! all zero), so whatever is logged or passed on is a valid header; anything else a client sent
//! is replaced by a new trace rather than propagated.

pub mod otlp;

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;

use tracing::Instrument;

/// The header's name (W3C Trace Context §3.2), on HTTP requests and on bus messages alike.
pub const TRACEPARENT: &str = "traceparent";

/// The response header naming the trace the request became part of (Trace Context Level 2
/// `traceresponse`), so a client can grep every service's logs for it.
pub const TRACERESPONSE: &str = "traceresponse";

/// Bit 0 of the trace flags: the caller records this trace.
const SAMPLED: u8 = 0x01;

/// A position in a trace: the trace it belongs to, the span (operation) that is the parent of
/// whatever runs under it, and that span's own parent (for export).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_id: Option<[u8; 8]>,
    flags: u8,
}

impl TraceContext {
    /// Parses a `traceparent` value; `None` for anything the W3C grammar refuses. A version
    /// above `00` is read by its `00` prefix, as the specification asks of a version-00 reader.
    pub fn parse(value: &str) -> Option<TraceContext> {
        let value = value.trim();
        let version = value.get(0..2)?;
        let ok_length = if version == "00" {
            value.len() == 55
        } else {
            value.len() == 55 || (value.len() > 55 && value.as_bytes()[55] == b'-')
        };
        if !ok_length || version == "ff" || hex::<1>(version).is_none() {
            return None;
        }
        let bytes = value.as_bytes();
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id = hex::<16>(value.get(3..35)?)?;
        let span_id = hex::<8>(value.get(36..52)?)?;
        let [flags] = hex::<1>(value.get(53..55)?)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            parent_id: None,
            flags,
        })
    }

    /// A new trace, recorded (sampled): where a request arrives without a usable context.
    pub fn root() -> TraceContext {
        let random = uuid::Uuid::new_v4().into_bytes();
        TraceContext {
            trace_id: random,
            span_id: span_id(),
            parent_id: None,
            flags: SAMPLED,
        }
    }

    /// The context of `header` when it is valid, else a new trace.
    pub fn continue_or_root(header: Option<&str>) -> TraceContext {
        header
            .and_then(TraceContext::parse)
            .map_or_else(TraceContext::root, |parent| parent.child())
    }

    /// A new span of the same trace whose parent is this one.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: span_id(),
            parent_id: Some(self.span_id),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits: what log lines carry.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// This span's id as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        to_hex(&self.span_id)
    }

    /// The parent span's id, when this span continues another.
    pub fn parent_id(&self) -> Option<String> {
        self.parent_id.as_ref().map(|p| to_hex(p))
    }
}

/// What a traced operation is to an exporter (OpenTelemetry's span kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Serves an HTTP request.
    Server,
    /// Processes a consumed message.
    Consumer,
}

/// One traced operation: its context, and how it is named and described when exported.
#[derive(Debug, Clone)]
pub struct Span {
    /// Where it sits in its trace.
    pub context: TraceContext,
    /// E.g. `POST /orders`, `process payment.requests`.
    pub name: String,
    /// Server or consumer.
    pub kind: SpanKind,
    /// OpenTelemetry semantic-convention attributes (`http.route`, …).
    pub attributes: Vec<(&'static str, String)>,
}

impl Span {
    /// The span of work that `traceparent` (a request's or message's header) asked for: a child
    /// of it when valid, else the root of a new trace.
    pub fn incoming(name: impl Into<String>, kind: SpanKind, traceparent: Option<&str>) -> Span {
        Span {
            context: TraceContext::continue_or_root(traceparent),
            name: name.into(),
            kind,
            attributes: Vec::new(),
        }
    }

    /// The same span with one more attribute.
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Span {
        self.attributes.push((key, value.into()));
        self
    }

    /// What an event written by this span's work carries as its `traceparent` (nothing with
    /// tracing off).
    pub fn traceparent(&self) -> Option<String> {
        enabled().then(|| self.context.to_string())
    }
}

/// The `traceparent` form, version `00`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            to_hex(&self.trace_id),
            to_hex(&self.span_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

tokio::task_local! {
    /// The context of the work the current task does (a request, one consumed message).
    static CURRENT: TraceContext;
}

/// Whether trace contexts are kept and propagated (`TRACING`, default on), read once.
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        !matches!(
            std::env::var("TRACING").as_deref().map(str::trim),
            Ok("off" | "false" | "0")
        )
    })
}

/// The context the current task runs under, if any: what the outbox stores with a new row.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// Runs `work` as `span`: [`current`] returns its context, every log line inside carries its
/// `trace_id`, and it is exported when an OTLP endpoint is configured. With tracing off, just
/// runs `work`.
pub async fn scope<F: Future>(span: Span, work: F) -> F::Output {
    if !enabled() {
        return work.await;
    }
    let context = span.context;
    let log_span = tracing::info_span!("trace", trace_id = %context.trace_id());
    let started = otlp::exporting().then(std::time::SystemTime::now);
    let output = CURRENT.scope(context, work.instrument(log_span)).await;
    if let Some(started) = started {
        otlp::record(span, started, std::time::SystemTime::now());
    }
    output
}

/// For work done for many messages at once (a set-based batch): runs `log` — the lines about
/// one of them — under `span`'s trace, and exports `span` as lasting from `started` until now.
pub fn report(span: Span, started: std::time::SystemTime, log: impl FnOnce()) {
    if !enabled() {
        return log();
    }
    tracing::info_span!("trace", trace_id = %span.context.trace_id()).in_scope(log);
    if otlp::exporting() {
        otlp::record(span, started, std::time::SystemTime::now());
    }
}

/// A fresh non-zero span id.
fn span_id() -> [u8; 8] {
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&random[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// Exactly `N` bytes from `2 × N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_s_example_round_trips() {
        let c = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(c.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.to_string(), EXAMPLE);
    }

    #[test]
    fn what_the_grammar_refuses_is_not_propagated() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_version_00_prefix() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let c = TraceContext::parse(later).unwrap();
        assert_eq!(c.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_child_keeps_the_trace_and_gets_its_own_span() {
        let parent = TraceContext::parse(EXAMPLE).unwrap();
        let child = TraceContext::continue_or_root(Some(EXAMPLE));
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_eq!(child.parent_id(), Some(parent.span_id()));
        assert_ne!(child, parent);
        let reparsed = TraceContext::parse(&child.to_string()).unwrap();
        assert_eq!(reparsed.to_string(), child.to_string());
    }

    #[test]
    fn an_unusable_header_starts_a_new_trace() {
        let a = TraceContext::continue_or_root(Some("garbage"));
        let b = TraceContext::continue_or_root(None);
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(TraceContext::parse(&a.to_string()), Some(a));
    }

    #[tokio::test]
    async fn the_scope_is_what_current_returns() {
        assert_eq!(current(), None);
        let span = Span::incoming("work", SpanKind::Server, None);
        let c = span.context;
        assert_eq!(scope(span, async { current() }).await, Some(c));
    }
}
