//! # gateway — the one public entry point of the system
//!
//! The gateway owns no data: it routes `/orders*` to the orders service and `/accounts*` to
//! payments, reports itself ready only when both answer, and serves one Swagger UI for the whole
//! public API. Everything it answers itself uses the SPEC §2 envelope.
//!
//! # Layout
//! - [`config`]: typed settings from the environment (`ORDERS_URL`, `PAYMENTS_URL`,
//!   `UPSTREAM_TIMEOUT_MS`, `HTTP_HOST`, `HTTP_PORT`, `AUTH*`, `RATE_LIMIT_*`); a bad value
//!   stops start-up.
//! - [`startup`]: builds the application and runs it on a listener the caller bound, until the
//!   caller's stop signal — so tests run the real thing on port 0.
//! - [`auth`]: bearer tokens checked against the provider's JWKS, the signed identity the
//!   services trust, and the rate limits per subject and per address.
//! - [`ratelimit`]: the token buckets.
//! - [`proxy`]: the streaming reverse proxy and the mapping of upstream failures to 502/503.
//! - [`headers`]: which headers cross the gateway (hop-by-hop out, `x-forwarded-*` in).
//! - [`request_id`]: the `x-request-id` every request and response carries.
//! - [`health`]: one probe per upstream behind platform's `/health`.
//! - [`openapi`]: the merged OpenAPI document (from the services' handler types) and Swagger UI.
//!
//! Shared plumbing — body limit, error envelope, serving with graceful shutdown, health endpoint,
//! JSON logs — comes from the `platform` crate.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod headers;
pub mod health;
pub mod openapi;
pub mod proxy;
pub mod ratelimit;
pub mod request_id;
pub mod startup;
