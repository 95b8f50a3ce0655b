//! # servicetest — one harness for the orders and payments integration tests
//!
//! Both services start the same way (`<service>::startup::run(settings, bus, listener,
//! shutdown)` with a [`platform::config::ServiceSettings`]), so what their tests need to run,
//! drive and observe them is written once here; each service's `tests/api/helpers.rs` keeps
//! only its own steps (placing an order, opening an account) on top.
//!
//! Layout:
//! - [`app`]: [`Service`] (which service: its name and `run` function) and [`ServiceUnderTest`],
//!   the service running in-process on port 0 with a fresh database, its own topics and its own
//!   consumer group; start, health wait, stop signal, restart, clean stop, and a `Drop` that
//!   still drops the database when a test failed first.
//! - [`http`]: requests to the API and the checks every answer gets ([`body_json`],
//!   [`assert_error`], [`number_text`]).
//! - [`idempotency`]: the `Idempotency-Key` checks of every keyed POST, counting effects in
//!   the database.
//! - [`messaging`]: the bus side — subscribe as an observer, publish as the other service would,
//!   take the [`next_delivery`] with a deadline.
//! - [`refusals`]: the validation-matrix runner: one [`Refusal`] per bad request, [`check`]
//!   reports everything wrong with its answer so a test can list every broken case at once.
//! - [`lifecycle`]: the broker-unreachable scenario both services must pass the same way.
//! - [`service_app!`]: declares a service's own test app type, a newtype that derefs to
//!   [`ServiceUnderTest`], so each service's tests can add their own steps as methods.
//!
//! Invariants the harness keeps: tests never share a database, a topic or a consumer group, so
//! they may run in parallel; every wait has a deadline ([`WAIT`]), never a bare sleep; and these
//! tests run against the real PostgreSQL and Kafka (`TEST_DATABASE_URL`, `KAFKA_BROKERS`),
//! never a mock.
//!
//! It is a crate of its own rather than part of `testkit` because it depends on `bus`, and `bus`
//! dev-depends on `testkit`.

pub mod app;
pub mod auth;
pub mod http;
pub mod idempotency;
pub mod lifecycle;
pub mod messaging;
pub mod refusals;
mod service_app;

use std::time::Duration;

pub use app::{Service, ServiceUnderTest, Topics};
pub use http::{assert_error, body_json, number_text};
pub use lifecycle::unreachable_broker_answers_503_and_stops;
pub use messaging::next_delivery;
pub use refusals::{Refusal, bad_field, check, refused};

/// Upper bound for anything a test waits for (a message, a status change, start-up, shutdown),
/// so a hang fails the test instead of blocking the run.
pub const WAIT: Duration = Duration::from_secs(30);
