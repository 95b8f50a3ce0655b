//! Settings of the orders service, read once from the environment at start-up.

use platform::config::{ConfigError, ServiceSettings};

/// Everything the orders process needs to start (the variables shared with payments).
pub type Settings = ServiceSettings;

/// Reads the environment with orders' defaults: port 8081, database `orders`, group `orders`.
pub fn from_env() -> Result<Settings, ConfigError> {
    ServiceSettings::from_env("orders", 8081)
}
