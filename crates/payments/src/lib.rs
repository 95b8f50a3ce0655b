//! # payments — accounts, and debiting them at most once per order
//!
//! Layout (a request flows top to bottom):
//! - [`config`]: typed settings from the environment.
//! - [`startup`]: wires the pool, migrations, bus, relay, consumer and HTTP server to one stop
//!   signal; `run` takes a bound listener so tests use port 0.
//! - [`api`]: account operations (create, top up, balance) and their DTOs; the OpenAPI document
//!   comes from here.
//! - [`domain`]: the payment decision as a pure function, and account values.
//! - [`store`]: all SQL. A payment is one transaction: inbox row, `transactions` row (unique per
//!   order), conditional debit, and the result in the outbox.
//! - [`workers`]: the payment-request handler the consumer loop drives.

pub mod api;
pub mod config;
pub mod domain;
pub mod startup;
pub mod store;
pub mod workers;

/// Migrations of the `payments` database, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/payments");
