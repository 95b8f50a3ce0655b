//! # contract — what orders and payments agree on, and nothing else
//!
//! The wire contract between the services and their clients, kept apart from any runtime so that
//! both services, the tests and the tools depend on exactly the same definitions:
//! - [`money`] and [`ids`]: domain newtypes that can only hold valid values (exact money in minor
//!   units, user and order ids), with their OpenAPI schemas;
//! - [`events`]: the messages orders and payments exchange over the bus, their `message-type`
//!   names, and the default names of the topics that carry them.

/// Implements poem-openapi's `Type` for a scalar newtype `$ty` with the schema `$schema` (a
/// `MetaSchema`), so each parsed type states its own rule in the document; the newtype still
/// writes its own `ParseFromJSON` / `ToJSON`, which is where the parsing is.
#[macro_export]
macro_rules! scalar_type {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl ::poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> ::std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> ::poem_openapi::registry::MetaSchemaRef {
                ::poem_openapi::registry::MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }
    };
}

pub mod events;
pub mod ids;
pub mod money;
pub mod page;

pub use ids::{OrderId, UserId};
pub use money::Money;
