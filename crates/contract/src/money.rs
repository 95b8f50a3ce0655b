//! Exact money: an amount held as integer minor units (cents), never a float.
//!
//! Invariant: `0 <= minor <= MAX_MINOR`. A [`Money`] is only created by parsing (from the JSON
//! number's own text, so `0.1` is exactly ten cents) or by checked arithmetic, so every value in
//! the system is non-negative, has at most two decimals and is at most 1,000,000,000,000.

use std::fmt;
use std::str::FromStr;

use poem_openapi::registry::MetaSchema;
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Minor units per major unit: two decimal places.
const SCALE: i64 = 100;
/// The largest amount accepted anywhere (SPEC §2), in major units.
pub const MAX_MAJOR: i64 = 1_000_000_000_000;
/// The largest amount in minor units.
pub const MAX_MINOR: i64 = MAX_MAJOR * SCALE;

/// Why a value is not money; the message is written to be shown after a field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not a decimal number at all (`"abc"`, `NaN`, `1e`).
    #[error("must be a number")]
    NotANumber,
    /// More than two digits after the point once trailing zeros are dropped.
    #[error("must have at most 2 decimal places")]
    TooPrecise,
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Above [`MAX_MAJOR`].
    #[error("must be at most 1000000000000")]
    TooLarge,
}

/// A non-negative amount of money with at most two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

impl Money {
    /// Zero, the default opening balance.
    pub const ZERO: Money = Money(0);

    /// Builds money from minor units read back from storage, re-checking the invariant.
    pub fn from_minor(minor: i64) -> Result<Self, MoneyError> {
        if minor < 0 {
            Err(MoneyError::Negative)
        } else if minor > MAX_MINOR {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Money(minor))
        }
    }

    /// The amount in minor units, as stored in `BIGINT` columns.
    pub fn minor(self) -> i64 {
        self.0
    }

    /// True for zero, which is a valid balance but not a valid payment.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Adds, failing instead of leaving the valid range.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        Money::from_minor(self.0 + other.0)
    }

    /// Subtracts, failing instead of going negative.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        Money::from_minor(self.0 - other.0)
    }

    /// Parses the text of a decimal number: `500`, `199.99`, `-0`, `1.50`, `2e2`, `1.5E+1`.
    ///
    /// The text is scaled exactly; trailing zeros beyond two decimals are tolerated (`1.500`)
    /// because they do not change the value.
    pub fn parse_decimal(text: &str) -> Result<Money, MoneyError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => {
                let exp: i32 = unsigned[at + 1..]
                    .parse()
                    .map_err(|_| MoneyError::NotANumber)?;
                (&unsigned[..at], exp)
            }
            None => (unsigned, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return Err(MoneyError::NotANumber);
        }
        // value = digits * 10^(exponent - frac_len); we need it as minor units (10^-2).
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let mut shift = i64::from(exponent) - frac_part.len() as i64 + 2;
        let mut digits = digits.to_owned();
        while shift < 0 {
            match digits.pop() {
                Some('0') => shift += 1,
                Some(_) => return Err(MoneyError::TooPrecise),
                None => {
                    shift = 0;
                }
            }
        }
        if digits.is_empty() {
            return Ok(Money::ZERO);
        }
        if negative {
            return Err(MoneyError::Negative);
        }
        // MAX_MINOR has 15 digits; anything longer is out of range and would overflow.
        if digits.len() as i64 + shift > 15 {
            return Err(MoneyError::TooLarge);
        }
        let mut minor: i64 = digits.parse().map_err(|_| MoneyError::NotANumber)?;
        for _ in 0..shift {
            minor *= 10;
        }
        Money::from_minor(minor)
    }
}

impl fmt::Display for Money {
    /// `500`, `199.9`, `199.99`: the shortest exact decimal, as SPEC §2 shows numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = (self.0 / SCALE, self.0 % SCALE);
        match minor {
            0 => write!(f, "{major}"),
            m if m % 10 == 0 => write!(f, "{major}.{}", m / 10),
            m => write!(f, "{major}.{m:02}"),
        }
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_decimal(s.trim())
    }
}

impl TryFrom<&serde_json::Number> for Money {
    type Error = MoneyError;

    /// Uses the number's original text (serde_json's `arbitrary_precision`), never an `f64`.
    fn try_from(n: &serde_json::Number) -> Result<Self, Self::Error> {
        Money::parse_decimal(&n.to_string())
    }
}

impl Money {
    /// The JSON number for this amount, built from its exact text.
    pub fn to_json_number(self) -> serde_json::Number {
        serde_json::Number::from_str(&self.to_string()).unwrap_or_else(|_| self.0.into())
    }
}

/// On the bus, money travels as a JSON number too, so events read like the API.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_number().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(deserializer)?;
        Money::try_from(&n).map_err(serde::de::Error::custom)
    }
}

crate::scalar_type!(
    Money,
    "Money",
    MetaSchema {
        description: Some(
            "Exact amount: a JSON number with at most 2 decimal places, 0..=1000000000000.",
        ),
        minimum: Some(0.0),
        maximum: Some(MAX_MAJOR as f64),
        multiple_of: Some(0.01),
        example: Some(Value::from(199.99)),
        ..MetaSchema::new("number")
    }
);

impl ParseFromJSON for Money {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Number(n)) => Money::try_from(&n).map_err(ParseError::custom),
            Some(Value::Null) | None => Err(ParseError::expected_input()),
            Some(other) => Err(ParseError::custom(format!(
                "must be a JSON number, got {}",
                json_kind(&other)
            ))),
        }
    }
}

impl ToJSON for Money {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Number(self.to_json_number()))
    }
}

/// Names a JSON value's type for error messages without echoing the value.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An amount that must be strictly positive: a payment or a top-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositiveMoney(Money);

impl PositiveMoney {
    /// The underlying amount.
    pub fn get(self) -> Money {
        self.0
    }
}

impl TryFrom<Money> for PositiveMoney {
    type Error = &'static str;

    fn try_from(m: Money) -> Result<Self, Self::Error> {
        if m.is_zero() {
            Err("must be greater than 0")
        } else {
            Ok(PositiveMoney(m))
        }
    }
}

impl<'de> Deserialize<'de> for PositiveMoney {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let m = Money::deserialize(deserializer)?;
        PositiveMoney::try_from(m).map_err(serde::de::Error::custom)
    }
}

// Documented as `Money` with `exclusiveMinimum`, so a client (or a fuzzer) generating from the
// OpenAPI document never sends a 0 the API refuses.
crate::scalar_type!(
    PositiveMoney,
    "PositiveMoney",
    MetaSchema {
        description: Some(
            "Exact amount: a JSON number greater than 0 with at most 2 decimal places, at most 1000000000000.",
        ),
        minimum: Some(0.0),
        exclusive_minimum: Some(true),
        maximum: Some(MAX_MAJOR as f64),
        multiple_of: Some(0.01),
        example: Some(Value::from(199.99)),
        ..MetaSchema::new("number")
    }
);

impl ParseFromJSON for PositiveMoney {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let m = Money::parse_from_json(value).map_err(ParseError::propagate)?;
        PositiveMoney::try_from(m).map_err(ParseError::custom)
    }
}

impl ToJSON for PositiveMoney {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<i64, MoneyError> {
        Money::parse_decimal(s).map(Money::minor)
    }

    #[test]
    fn integers_and_two_decimals_are_exact() {
        assert_eq!(parse("500"), Ok(50_000));
        assert_eq!(parse("199.99"), Ok(19_999));
        assert_eq!(parse("0.1"), Ok(10));
        assert_eq!(parse("0.01"), Ok(1));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("-0"), Ok(0));
        assert_eq!(parse("1.50"), Ok(150));
    }

    #[test]
    fn trailing_zeros_beyond_two_decimals_do_not_change_the_value() {
        assert_eq!(parse("1.500"), Ok(150));
        assert_eq!(parse("1.0000000000000000001"), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn exponents_are_scaled_exactly() {
        assert_eq!(parse("2e2"), Ok(20_000));
        assert_eq!(parse("1.5E+1"), Ok(1_500));
        assert_eq!(parse("125e-2"), Ok(125));
        assert_eq!(parse("1e-3"), Err(MoneyError::TooPrecise));
        assert_eq!(parse("1e400"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn more_than_two_decimals_is_rejected() {
        assert_eq!(parse("1.234"), Err(MoneyError::TooPrecise));
        assert_eq!(parse("0.001"), Err(MoneyError::TooPrecise));
    }

    #[test]
    fn negative_and_garbage_are_rejected() {
        assert_eq!(parse("-5"), Err(MoneyError::Negative));
        assert_eq!(parse("-0.01"), Err(MoneyError::Negative));
        for bad in [
            "", ".", "abc", "NaN", "Infinity", "1e", "1.2.3", "--1", "1,5",
        ] {
            assert_eq!(parse(bad), Err(MoneyError::NotANumber), "{bad:?}");
        }
    }

    #[test]
    fn the_range_ends_at_one_trillion() {
        assert_eq!(parse("1000000000000"), Ok(MAX_MINOR));
        assert_eq!(parse("1000000000000.00"), Ok(MAX_MINOR));
        assert_eq!(parse("1000000000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(parse("99999999999999999999999"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn display_is_the_shortest_exact_decimal() {
        let show = |minor| Money::from_minor(minor).unwrap().to_string();
        assert_eq!(show(50_000), "500");
        assert_eq!(show(19_990), "199.9");
        assert_eq!(show(19_999), "199.99");
        assert_eq!(show(5), "0.05");
        assert_eq!(show(0), "0");
    }

    #[test]
    fn arithmetic_is_checked_and_exact() {
        let a = Money::parse_decimal("0.1").unwrap();
        let b = Money::parse_decimal("0.2").unwrap();
        assert_eq!(
            a.checked_add(b).unwrap(),
            Money::parse_decimal("0.3").unwrap()
        );
        assert_eq!(a.checked_sub(b), Err(MoneyError::Negative));
        let max = Money::from_minor(MAX_MINOR).unwrap();
        assert_eq!(
            max.checked_add(Money::from_minor(1).unwrap()),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn json_numbers_round_trip_without_floats() {
        let v: Value = serde_json::from_str("199.99").unwrap();
        let m = Money::parse_from_json(Some(v)).unwrap();
        assert_eq!(m.minor(), 19_999);
        assert_eq!(serde_json::to_string(&m).unwrap(), "199.99");
        let back: Money = serde_json::from_str("199.99").unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn json_strings_and_nulls_are_not_money() {
        assert!(Money::parse_from_json(Some(Value::String("10".into()))).is_err());
        assert!(Money::parse_from_json(Some(Value::Null)).is_err());
        assert!(Money::parse_from_json(None).is_err());
    }

    #[test]
    fn zero_is_not_a_positive_amount() {
        assert!(PositiveMoney::try_from(Money::ZERO).is_err());
        let one = Money::from_minor(1).unwrap();
        assert_eq!(PositiveMoney::try_from(one).unwrap().get(), one);
    }
}
