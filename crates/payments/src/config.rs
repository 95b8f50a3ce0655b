//! Settings of the payments service, read once from the environment at start-up.

use platform::config::{ConfigError, ServiceSettings};

/// Everything the payments process needs to start (the variables shared with orders).
pub type Settings = ServiceSettings;

/// Reads the environment with payments' defaults: port 8082, database `payments`, group
/// `payments`.
pub fn from_env() -> Result<Settings, ConfigError> {
    ServiceSettings::from_env("payments", 8082)
}
