//! Identifiers as distinct types, so a user id can never be passed where an order id is meant.
//!
//! Both wrap a UUID of any version (SPEC §2); their OpenAPI schema is `string(uuid)`. Their
//! parse errors name the field (`order_id must be a UUID`), because poem-openapi reports path
//! parameters under internal names (`param0`) that mean nothing to a client.

use poem_openapi::registry::MetaSchema;
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the one form the schema's `format: uuid` means — 36 characters, hyphens
            /// at 8-4-4-4-12, hex digits in either case — with an error that names the field.
            /// The `uuid` crate also takes braces, `urn:uuid:` and no hyphens; a second
            /// spelling of one id would be a second key for caches, logs and idempotency.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let hyphenated = raw.len() == 36
                    && raw.bytes().enumerate().all(|(i, b)| match i {
                        8 | 13 | 18 | 23 => b == b'-',
                        _ => b.is_ascii_hexdigit(),
                    });
                hyphenated
                    .then(|| Uuid::try_parse(raw).ok())
                    .flatten()
                    .map($name)
                    .ok_or_else(|| {
                        let shown: String = raw.chars().take(40).collect();
                        let more = if shown.len() < raw.len() { "…" } else { "" };
                        format!("{} must be a UUID, got {:?}{more}", $field, shown)
                    })
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<str>::deserialize(deserializer)?;
                $name::parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        $crate::scalar_type!(
            $name,
            "string_uuid",
            MetaSchema::new_with_format("string", "uuid")
        );

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) => $name::parse(&s).map_err(ParseError::custom),
                    _ => Err(ParseError::custom(format!("{} must be a UUID string", $field))),
                }
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                $name::parse(value).map_err(ParseError::custom)
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.to_string()))
            }
        }
    };
}

uuid_id!(
    /// The owner of an account and of orders; the message key that keeps one user's payments in order.
    UserId,
    "user_id"
);

uuid_id!(
    /// One order; also the unique key of a payment transaction (debited at most once).
    OrderId,
    "order_id"
);

impl OrderId {
    /// A fresh, time-ordered id (UUIDv7) so that index inserts stay append-mostly.
    pub fn new() -> Self {
        OrderId(Uuid::now_v7())
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_uuid_version_parses() {
        assert!(UserId::parse("6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38").is_ok());
        assert!(UserId::parse("6F4B0A0B-5A82-4D3A-8E9D-2F04135FBB38").is_ok());
        assert!(OrderId::parse(&Uuid::now_v7().to_string()).is_ok());
    }

    #[test]
    fn only_the_hyphenated_form_parses() {
        let id = "6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb38";
        for other in [
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            id.replace('-', ""),
            format!(" {id}"),
            format!("{id}\u{0}"),
            "6f4b0a0b-5a82-4d3a-8e9d-2f04135fbb3g".to_owned(),
            "6f4b0a0b5-a82-4d3a-8e9d-2f04135fbb38".to_owned(),
        ] {
            assert!(UserId::parse(&other).is_err(), "{other:?}");
            assert!(
                serde_json::from_value::<UserId>(Value::from(other.clone())).is_err(),
                "{other:?}"
            );
        }
        assert!(UserId::parse(&"a".repeat(10_000)).unwrap_err().len() < 100);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            OrderId::parse("abc").unwrap_err(),
            "order_id must be a UUID, got \"abc\""
        );
        assert!(UserId::parse_from_parameter("x").is_err());
        let err = UserId::parse_from_json(Some(Value::from(5))).unwrap_err();
        assert!(err.into_message().contains("user_id"));
    }
}
