//! The gateway's settings, read once from the environment at start-up.
//!
//! Invariant: a [`Settings`] value only holds usable upstream URLs and a non-zero timeout, so a
//! typo in `ORDERS_URL` stops the process with a message naming the variable instead of turning
//! every request into a 502 later.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use platform::auth::{AuthMode, InternalSecret};
use platform::config::{ConfigError, string_or, var_or};

use crate::auth::{AuthSettings, JwtSettings, RateLimits};
use crate::ratelimit::Limit;

/// Everything the gateway needs to start (contract: environment variables).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interface to listen on (`HTTP_HOST`, default `0.0.0.0`) — all interfaces in containers.
    pub host: String,
    /// Port to listen on (`HTTP_PORT`, default 8080), the public entry point of the system.
    pub port: u16,
    /// Where `/orders*` goes (`ORDERS_URL`, default `http://127.0.0.1:8081`; a comma-separated
    /// list of instances is balanced round robin).
    pub orders_url: UpstreamUrls,
    /// Where `/accounts*` goes (`PAYMENTS_URL`, default `http://127.0.0.1:8082`; a list is
    /// balanced like `ORDERS_URL`).
    pub payments_url: UpstreamUrls,
    /// Longest an upstream exchange may take (`UPSTREAM_TIMEOUT_MS`, default 10000) before the
    /// client gets a 502 instead of hanging with it.
    pub upstream_timeout: Duration,
    /// `AUTH` (default `jwt`) and, with it, how tokens are checked: `AUTH_JWKS`, `AUTH_ISSUER`,
    /// `AUTH_AUDIENCE` (all required), `AUTH_LEEWAY_S` (30), `AUTH_JWKS_REFRESH_S` (300),
    /// `AUTH_INTERNAL_SECRET` (required, ≥ 32 bytes, shared with the services).
    pub auth: AuthSettings,
    /// `RATE_LIMIT_PER_SUBJECT` (default `50:100`) and `RATE_LIMIT_PER_IP` (default `20:40`):
    /// `RPS:BURST` token buckets, or `off`.
    pub rate_limits: RateLimits,
}

impl Settings {
    /// Reads the settings from the environment; an invalid value names its variable.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let timeout_ms: u64 = var_or("UPSTREAM_TIMEOUT_MS", 10_000)?;
        if timeout_ms == 0 {
            return Err(ConfigError {
                name: "UPSTREAM_TIMEOUT_MS".into(),
                value: "0".into(),
                reason: "must be at least 1 millisecond".into(),
            });
        }
        Ok(Settings {
            host: string_or("HTTP_HOST", "0.0.0.0"),
            port: var_or("HTTP_PORT", 8080)?,
            orders_url: var_or(
                "ORDERS_URL",
                UpstreamUrls::one(UpstreamUrl::parse_default("http://127.0.0.1:8081")),
            )?,
            payments_url: var_or(
                "PAYMENTS_URL",
                UpstreamUrls::one(UpstreamUrl::parse_default("http://127.0.0.1:8082")),
            )?,
            upstream_timeout: Duration::from_millis(timeout_ms),
            auth: auth_from_env()?,
            rate_limits: RateLimits {
                per_subject: var_or("RATE_LIMIT_PER_SUBJECT", DEFAULT_PER_SUBJECT)?,
                per_ip: var_or("RATE_LIMIT_PER_IP", DEFAULT_PER_IP)?,
            },
        })
    }
}

/// 50 requests per second per user, bursts of 100: far above a person, a bound for a script.
const DEFAULT_PER_SUBJECT: Limit = Limit(Some(crate::ratelimit::Rate {
    per_second: 50.0,
    burst: 100,
}));

/// 20 per second per address without a valid token: enough for health-checking proxies and
/// sign-in retries, a brake on guessing tokens.
const DEFAULT_PER_IP: Limit = Limit(Some(crate::ratelimit::Rate {
    per_second: 20.0,
    burst: 40,
}));

fn required(name: &str) -> Result<String, ConfigError> {
    let value = string_or(name, "");
    if value.trim().is_empty() {
        return Err(ConfigError {
            name: name.into(),
            value,
            reason: "is required with AUTH=jwt".into(),
        });
    }
    Ok(value.trim().to_owned())
}

fn auth_from_env() -> Result<AuthSettings, ConfigError> {
    if var_or("AUTH", AuthMode::Jwt)? == AuthMode::Off {
        return Ok(AuthSettings::Off);
    }
    Ok(AuthSettings::Jwt(JwtSettings {
        jwks: {
            let raw = required("AUTH_JWKS")?;
            raw.parse().map_err(|reason| ConfigError {
                name: "AUTH_JWKS".into(),
                value: raw,
                reason,
            })?
        },
        issuer: required("AUTH_ISSUER")?,
        audience: required("AUTH_AUDIENCE")?,
        leeway_s: var_or("AUTH_LEEWAY_S", 30)?,
        refresh: Duration::from_secs(var_or::<u64>("AUTH_JWKS_REFRESH_S", 300)?.max(1)),
        secret: InternalSecret::from_env()?,
    }))
}

/// The base URL of an upstream service: `http(s)://host[:port][/prefix]`, no query or fragment.
///
/// Kept as a string without a trailing slash so that appending the client's path and query is a
/// plain concatenation that cannot re-encode or drop anything the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(String);

impl UpstreamUrl {
    /// The URL for `path_and_query` (which starts with `/`) on this upstream.
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.0, path_and_query)
    }

    /// For compile-time defaults that are known to be valid; falls back to the raw text.
    fn parse_default(raw: &str) -> UpstreamUrl {
        raw.parse()
            .unwrap_or_else(|_| UpstreamUrl(raw.trim_end_matches('/').to_owned()))
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let url = reqwest::Url::parse(raw).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "scheme must be http or https, not {}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("a host is required".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not carry a query or fragment".into());
        }
        Ok(UpstreamUrl(url.as_str().trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The instances of one upstream service: at least one, each a valid [`UpstreamUrl`], none twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrls(Vec<UpstreamUrl>);

impl UpstreamUrls {
    /// A single instance.
    pub fn one(url: UpstreamUrl) -> Self {
        UpstreamUrls(vec![url])
    }

    /// The instances, in the order configured.
    pub fn instances(&self) -> &[UpstreamUrl] {
        &self.0
    }
}

/// `url[,url...]`; blanks around commas are ignored.
impl FromStr for UpstreamUrls {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let mut urls: Vec<UpstreamUrl> = Vec::new();
        for (i, part) in raw.split(',').map(str::trim).enumerate() {
            let url: UpstreamUrl = part
                .parse()
                .map_err(|e| format!("instance {} ({part:?}): {e}", i + 1))?;
            if urls.contains(&url) {
                return Err(format!("instance {url} is listed twice"));
            }
            urls.push(url);
        }
        Ok(UpstreamUrls(urls))
    }
}

impl fmt::Display for UpstreamUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, url) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{url}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slash_is_dropped_so_join_is_concatenation() {
        let url: UpstreamUrl = "http://orders:8081/".parse().unwrap();
        assert_eq!(
            url.join("/orders?user_id=1"),
            "http://orders:8081/orders?user_id=1"
        );
    }

    #[test]
    fn path_prefix_is_kept() {
        let url: UpstreamUrl = "http://edge/internal".parse().unwrap();
        assert_eq!(url.join("/orders"), "http://edge/internal/orders");
    }

    #[test]
    fn non_http_or_hostless_urls_are_rejected() {
        assert!("ftp://orders".parse::<UpstreamUrl>().is_err());
        assert!("orders:8081".parse::<UpstreamUrl>().is_err());
        assert!("http://orders?x=1".parse::<UpstreamUrl>().is_err());
        assert!("not a url".parse::<UpstreamUrl>().is_err());
    }

    #[test]
    fn a_list_names_every_instance_once() {
        let urls: UpstreamUrls = "http://a:1, http://b:2/".parse().unwrap();
        assert_eq!(urls.to_string(), "http://a:1,http://b:2");
        assert_eq!(urls.instances().len(), 2);
        assert!("http://a:1,".parse::<UpstreamUrls>().is_err());
        assert!("http://a:1,http://a:1/".parse::<UpstreamUrls>().is_err());
        assert!("".parse::<UpstreamUrls>().is_err());
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(
            UpstreamUrl::parse_default("http://127.0.0.1:8081").to_string(),
            "http://127.0.0.1:8081"
        );
    }
}
