//! The gateway is ready only when it can reach both services behind it (SPEC §2).
//!
//! Each upstream is probed through its own `/health/ready`, so "ready" means the service can
//! reach its database and broker too, not merely that its port is open.

use platform::health::HealthProbe;
use poem::http::StatusCode;

use crate::proxy::Upstream;

/// Asks one upstream's `/health/ready` and accepts only a 200.
pub struct UpstreamProbe {
    upstream: Upstream,
    client: reqwest::Client,
}

impl UpstreamProbe {
    /// A probe for `upstream` that uses the gateway's shared client (and its connection pool).
    pub fn new(upstream: Upstream, client: reqwest::Client) -> Self {
        UpstreamProbe { upstream, client }
    }
}

#[async_trait::async_trait]
impl HealthProbe for UpstreamProbe {
    fn name(&self) -> &str {
        self.upstream.name
    }

    async fn check(&self) -> Result<(), String> {
        let url = self.upstream.base.join("/health/ready");
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| platform::error::error_chain(&e))?;
        let status = resp.status();
        // Reading the small body to its end lets the connection go back to the pool.
        let _ = resp.bytes().await;
        match status {
            StatusCode::OK => Ok(()),
            other => Err(format!("/health/ready answered {other}")),
        }
    }
}
