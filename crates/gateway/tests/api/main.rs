//! The gateway over real TCP, in front of tiny fake upstreams.
//!
//! The fakes stand in for orders and payments only to observe what the proxy forwards (they echo
//! the request back as JSON); the real services are covered by the end-to-end tests. Every server
//! is bound before it is spawned, so requests queue on the socket and no test has to wait for a
//! server to come up.
//!
//! One test binary: `helpers` starts the fakes and the gateway; the other modules hold the tests
//! by topic.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![allow(clippy::unwrap_used)]

mod auth;
mod balance;
mod errors;
mod health;
mod helpers;
mod proxy;
mod shutdown;
mod swagger;
