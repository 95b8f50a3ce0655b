//! # orders — creating orders and learning how their payment ended
//!
//! Layout (a request flows top to bottom):
//! - [`config`]: typed settings from the environment.
//! - [`startup`]: wires the pool, migrations, bus, relay, consumer and HTTP server to one stop
//!   signal; `run` takes a bound listener so tests use port 0.
//! - [`api`]: HTTP operations and their DTOs (the OpenAPI document comes from here). Thin: DTOs
//!   are converted into domain values at the edge, then the store is called.
//! - [`domain`]: `Order`, `OrderStatus`, `FailureReason`, `Description` — values that cannot be
//!   invalid.
//! - [`store`]: all SQL. Creating an order writes the order and its "payment requested" event in
//!   one transaction; applying a result is a conditional update (`WHERE status = 'NEW'`).
//! - [`feed`]: the live order feed (one LISTEN per instance, fanned out to the order streams).
//! - [`workers`]: the payment-result handler the consumer loop drives.

pub mod api;
pub mod config;
pub mod domain;
pub mod feed;
pub mod startup;
pub mod store;
pub mod workers;

/// Migrations of the `orders` database, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/orders");
