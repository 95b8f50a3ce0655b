//! Integration tests of the payments service, run against the real PostgreSQL
//! (`TEST_DATABASE_URL`) and Kafka (`KAFKA_BROKERS`) the stack started.
//!
//! Every test calls [`helpers::spawn_app`], which gives it a fresh database, its own topics and
//! consumer group, and the whole service (HTTP, request consumer, outbox relay) on port 0; it
//! ends with [`helpers::TestApp::stop`], which checks that the service shuts down cleanly.
//!
//! Helpers: [`servicetest`] (running the service, HTTP, the bus, the validation-matrix runner,
//! shared with the orders tests), [`helpers`] (accounts over HTTP, SQL checks) and
//! [`messaging`] (payment requests and results on the bus).
//!
//! Topics:
//! - [`accounts`]: opening, topping up and reading accounts over HTTP.
//! - [`validation`]: every way the accounts API refuses a request, and that nothing is written
//!   then; unknown routes and wrong methods.
//! - [`payment_requests`]: payment requests consumed from the bus debit at most once per order,
//!   results are published, poison is dead-lettered, and money is conserved.
//! - [`history`]: the account's movements, newest first, adding up to the balance.
//! - [`idempotency`]: Idempotency-Key on both POSTs (replay, conflict, bursts, expiry).
//! - [`retention`]: old published outbox rows and old inbox rows are deleted, nothing else.
//! - [`lifecycle`]: restart without losing or repeating work; an unreachable broker.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![allow(clippy::unwrap_used)]

mod accounts;
mod authz;
mod batch;
mod helpers;
mod history;
mod idempotency;
mod lifecycle;
mod messaging;
mod migrate_job;
mod payment_requests;
mod retention;
mod validation;
