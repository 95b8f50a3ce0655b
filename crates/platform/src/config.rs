//! Reading typed settings from the environment, once, at start-up.
//!
//! Every service builds its own `Settings` from these helpers so that an invalid value stops the
//! process with a message naming the variable, instead of surfacing later as a confusing error.

use std::fmt::Display;
use std::str::FromStr;

/// A setting that is present but cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable's name, so the operator knows what to fix.
    pub name: String,
    /// The offending value as found.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Reads `name`, falling back to `default` when unset or empty.
pub fn var_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    parse_or(name, std::env::var(name).ok(), default)
}

/// Reads a string setting with a default.
pub fn string_or(name: &str, default: &str) -> String {
    parse_or(name, std::env::var(name).ok(), default.to_owned()).unwrap_or_else(|_| default.into())
}

/// The pure half of [`var_or`], separate so it is testable without touching the environment.
fn parse_or<T>(name: &str, raw: Option<String>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw {
        Some(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|e: T::Err| ConfigError {
                name: name.to_owned(),
                value,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_blank_takes_the_default() {
        assert_eq!(parse_or("PORT", None, 8080u16).unwrap(), 8080);
        assert_eq!(parse_or("PORT", Some("  ".into()), 8080u16).unwrap(), 8080);
    }

    #[test]
    fn value_is_trimmed_and_parsed() {
        assert_eq!(parse_or("PORT", Some(" 9000 ".into()), 1u16).unwrap(), 9000);
    }

    #[test]
    fn invalid_value_names_the_variable() {
        let err = parse_or::<u16>("HTTP_PORT", Some("eighty".into()), 1).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("HTTP_PORT") && text.contains("eighty"),
            "{text}"
        );
    }
}
