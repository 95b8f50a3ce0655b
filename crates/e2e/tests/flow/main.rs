//! End-to-end scenarios through the gateway of the running stack (`. .stack/env` first).
//!
//! Each test invents its own users (random UUIDs), so the tests run in parallel with each other
//! and again and again against the same stack. Waiting is always on a condition with a deadline
//! ([`e2e::SETTLE_DEADLINE`]), never a bare sleep.
//!
//! One test binary: `settlement` walks orders from placement to FINISHED / FAILED,
//! `invalid_requests` sends the table in `validation` and checks that nothing was written,
//! `hostile` sends the hostile corpus of `validation::hostile` and oversized and trickled bodies
//! through both edges, `gateway` covers what the gateway serves itself, `idempotency` retries
//! every POST with its key through both edges, `stream` follows orders over SSE through both,
//! `trace` finds one trace id in every service's logs, `auth` checks tokens, ownership, scopes
//! and rate limits (skipped with `AUTH=off`); `helpers` holds what they share.

// Tests may unwrap (house style: `unwrap()` only in tests).
#![allow(clippy::unwrap_used)]

mod auth;
mod gateway;
mod helpers;
mod hostile;
mod idempotency;
mod invalid_requests;
mod settlement;
mod stream;
mod trace;
mod validation;
