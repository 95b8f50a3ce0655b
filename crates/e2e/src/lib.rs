//! # e2e — the whole system, exercised from outside, against the running stack
//!
//! Nothing here starts a service: the stack (`bash dev/stack.sh up`, or the compose stack) must
//! be running, and its addresses come from the environment it writes (`. .stack/env`). A missing
//! variable fails loudly instead of silently aiming at a default port.
//!
//! Layout:
//! - [`api`]: a small client of the public HTTP API *through the gateway* (`GATEWAY_URL`), with
//!   typed views of the SPEC §2 bodies that reject any field the contract does not list, the
//!   error-envelope check, and [`api::Gateway::wait_settled`], which waits for an order to leave
//!   `NEW` with a deadline instead of sleeping. Against a stack with `AUTH=jwt` it signs a bearer
//!   token for the user each request is about (devauth's signer, from the same `.stack/env`), so
//!   the scenarios run unchanged in both modes.
//! - [`money`]: exact comparison of JSON money values (integer cents, never `f64`).
//! - [`requests`]: raw access to the payment-requests topic (`KAFKA_BROKERS`,
//!   `PAYMENT_REQUESTS_TOPIC`), to find the message an order produced and deliver it again.
//!
//! The scenarios live in `tests/flow/` (one test binary: `main.rs` plus a module per topic);
//! `examples/latency.rs` measures settlement latency.
//! Every scenario uses fresh random user ids, so tests run in parallel and repeatedly against the
//! same long-lived stack.

pub mod api;
pub mod money;
pub mod requests;

use std::time::Duration;

/// How long an order may take to leave `NEW` before a test gives up (SPEC §3: every order
/// eventually leaves `NEW` once the system is up).
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
