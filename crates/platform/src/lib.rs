//! # platform — what every service shares
//!
//! Layout:
//! - [`config`]: typed settings from environment variables; a bad value stops start-up with a
//!   message that names the variable.
//!
//! The wire contract (money, ids, events) is the `contract` crate.
//! - [`auth`]: who calls — the gateway's signed identity headers, the `Caller` every operation
//!   takes (the bearer security scheme of the document) and its rules.
//! - [`error`]: the one JSON error envelope of SPEC §2 and the `ApiError` handlers return.
//! - [`http`]: middleware that puts every framework error into the envelope, the body limit,
//!   serving with graceful shutdown, and a spec-only wrapper for merging OpenAPI documents.
//! - [`conn`]: below HTTP — the connection cap and the header-read and request deadlines.
//! - [`metrics`]: `GET /metrics`, each process's own Prometheus registry.
//! - [`health`]: the `/health` operation, backed by probes each service supplies.
//! - `idempotency` (feature `db`): `Idempotency-Key` on the POSTs, stored with the effect.
//! - [`trace`]: W3C `traceparent` — one trace id on every log line about one order, across
//!   HTTP, the outbox and the broker.
//! - `db` (feature `db`), [`telemetry`], [`shutdown`]: connection pool, JSON logs, one stop
//!   signal.

pub mod auth;
pub mod body;
pub mod config;
pub mod conn;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod health;
pub mod http;
#[cfg(feature = "db")]
pub mod idempotency;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
pub mod trace;

pub use error::ApiError;
