//! Integration tests of the orders service, run against the real PostgreSQL
//! (`TEST_DATABASE_URL`) and Kafka (`KAFKA_BROKERS`) the stack started.
//!
//! Every test calls [`helpers::spawn_app`], which gives it a fresh database, its own topics and
//! consumer group, and the whole service (HTTP, outbox relay, result consumer) on port 0; it ends
//! with [`helpers::TestApp::stop`], which checks that the service shuts down cleanly.
//!
//! Helpers: [`servicetest`] (running the service, HTTP, the bus, the validation-matrix runner,
//! shared with the payments tests) and [`helpers`] (the orders steps on top).
//!
//! Topics:
//! - [`create_order`]: POST /orders, GET /orders/{id}, and the payment request the relay publishes.
//! - [`read_orders`]: GET /orders?user_id= (order, paging) and GET /orders/{id}, with their 4xx.
//! - [`validation`]: every way POST /orders can be refused, and that nothing is written then.
//! - [`payment_results`]: results consumed from the bus settle orders once; poison is
//!   dead-lettered.
//! - [`idempotency`]: Idempotency-Key on POST /orders (replay, conflict, bursts, expiry).
//! - [`stream`]: GET /orders/stream (live changes, resume, listener gap, bound, keep-alive).
//! - [`metrics`]: `GET /metrics` after one order's life.
//! - [`routing`]: health, unknown routes and wrong methods.
//! - [`lifecycle`]: restart without losing or repeating work; an unreachable broker.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![allow(clippy::unwrap_used)]

mod authz;
mod create_order;
mod helpers;
mod idempotency;
mod lifecycle;
mod metrics;
mod payment_results;
mod read_orders;
mod routing;
mod stream;
mod validation;
