//! # contract — what orders and payments agree on, and nothing else
//!
//! The wire contract between the services and their clients, kept apart from any runtime so that
//! both services, the tests and the tools depend on exactly the same definitions:
//! - [`money`] and [`ids`]: domain newtypes that can only hold valid values (exact money in minor
//!   units, user and order ids), with their OpenAPI schemas;
//! - [`events`]: the messages orders and payments exchange over the bus, their `message-type`
//!   names, and the default names of the topics that carry them.

pub mod events;
pub mod ids;
pub mod money;

pub use ids::{OrderId, UserId};
pub use money::Money;
