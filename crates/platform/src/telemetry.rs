//! One JSON object per log line on stdout (SPEC §1), filtered by `RUST_LOG` (default `info`).
//! A line written under a trace ([`crate::trace::scope`]) carries `"span":{"trace_id":…}`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber and reads the span exporter's settings; safe to call twice
/// (tests), the second call is a no-op.
pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init()
        .is_ok();
    if installed {
        tracing::info!(service, "logging initialised");
    }
    crate::trace::otlp::init(service);
}
