//! # platform — what every service shares
//!
//! Layout:
//! - [`config`]: typed settings from environment variables; a bad value stops start-up with a
//!   message that names the variable.
//! - [`money`] and [`ids`]: domain newtypes that can only hold valid values (exact money in minor
//!   units, user and order ids), with their OpenAPI schemas.
//! - [`events`]: the messages orders and payments exchange over the bus (the wire contract).
//! - [`error`]: the one JSON error envelope of SPEC §2 and the `ApiError` handlers return.
//! - [`http`]: middleware that puts every framework error into the envelope, the body limit,
//!   serving with graceful shutdown, and a spec-only wrapper for merging OpenAPI documents.
//! - [`health`]: the `/health` operation, backed by probes each service supplies.
//! - [`db`], [`telemetry`], [`shutdown`]: connection pool, JSON logs, one stop signal.

pub mod body;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
pub mod ids;
pub mod money;
pub mod shutdown;
pub mod telemetry;

pub use error::ApiError;
pub use ids::{OrderId, UserId};
pub use money::Money;
