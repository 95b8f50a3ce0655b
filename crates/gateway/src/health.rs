//! The gateway is ready only when it can reach both services behind it (SPEC §2): at least one
//! ready instance of each.
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

    /// Ready when at least one instance is; each instance's answer also tells the balancer
    /// whether to send it requests first.
    async fn check(&self) -> Result<(), String> {
        let checks = self
            .upstream
            .bases()
            .iter()
            .map(|base| self.instance(base.join("/health/ready")));
        let results = futures::future::join_all(checks).await;
        let mut problems = Vec::new();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Ok(()) => self.upstream.mark_answered(i),
                Err(problem) => {
                    self.upstream.mark_refused(i);
                    problems.push(problem);
                }
            }
        }
        if problems.len() < self.upstream.bases().len() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl UpstreamProbe {
    async fn instance(&self, url: String) -> Result<(), String> {
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
