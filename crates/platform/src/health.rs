//! `GET /health`: 200 only when the process can reach everything it needs (SPEC §2).
//!
//! Each service passes the probes that matter to it (database, broker; the gateway its
//! upstreams), so a readiness check means "can do real work", not merely "is running".

use std::sync::Arc;
use std::time::Duration;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::error::{ErrorCode, ErrorEnvelope};

/// How long one dependency may take to answer before it counts as down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One dependency that must be reachable for the process to report healthy.
#[async_trait::async_trait]
pub trait HealthProbe: Send + Sync {
    /// Short name shown in the 503 message, e.g. `database`.
    fn name(&self) -> &str;
    /// Succeeds when the dependency answered.
    async fn check(&self) -> Result<(), String>;
}

/// `{"status": "ok"}`.
#[derive(Debug, Object)]
pub struct HealthStatus {
    /// Always `ok` on a 200.
    pub status: String,
}

/// `{"data": {"status": "ok"}}`.
#[derive(Debug, Object)]
pub struct HealthData {
    /// The status object.
    pub data: HealthStatus,
}

/// Answers of `/health`.
#[derive(Debug, ApiResponse)]
pub enum HealthResponse {
    /// Every dependency answered.
    #[oai(status = 200)]
    Ok(Json<HealthData>),
    /// At least one dependency did not; the message names which.
    #[oai(status = 503)]
    Unavailable(Json<ErrorEnvelope>),
}

/// Tag for the health operation in the OpenAPI document.
#[derive(Tags)]
enum HealthTag {
    /// Readiness of the process and its dependencies.
    Health,
}

/// The health operation, parameterised by the probes of one process.
pub struct HealthApi {
    probes: Vec<Arc<dyn HealthProbe>>,
}

impl HealthApi {
    /// A health endpoint that checks `probes` on every call.
    pub fn new(probes: Vec<Arc<dyn HealthProbe>>) -> Self {
        HealthApi { probes }
    }
}

#[OpenApi]
impl HealthApi {
    /// Readiness: 200 only when the database and broker (gateway: its upstreams) answer.
    #[oai(path = "/health", method = "get", tag = "HealthTag::Health")]
    async fn health(&self) -> HealthResponse {
        let checks = self.probes.iter().map(|p| async move {
            match tokio::time::timeout(PROBE_TIMEOUT, p.check()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((p.name().to_owned(), e)),
                Err(_) => Some((p.name().to_owned(), "timed out".to_owned())),
            }
        });
        let failures: Vec<(String, String)> = futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        if failures.is_empty() {
            return HealthResponse::Ok(Json(HealthData {
                data: HealthStatus {
                    status: "ok".into(),
                },
            }));
        }
        tracing::warn!(failures = ?failures, "health check failed");
        let names: Vec<&str> = failures.iter().map(|(name, _)| name.as_str()).collect();
        HealthResponse::Unavailable(Json(ErrorEnvelope::new(
            ErrorCode::Unavailable,
            format!("unavailable: {}", names.join(", ")),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::test::TestClient;
    use poem_openapi::OpenApiService;

    struct Fixed(&'static str, bool);

    #[async_trait::async_trait]
    impl HealthProbe for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn check(&self) -> Result<(), String> {
            if self.1 {
                Ok(())
            } else {
                Err("refused".into())
            }
        }
    }

    fn client(probes: Vec<Arc<dyn HealthProbe>>) -> TestClient<impl poem::Endpoint> {
        TestClient::new(OpenApiService::new(HealthApi::new(probes), "t", "1"))
    }

    #[tokio::test]
    async fn healthy_when_every_probe_answers() {
        let resp = client(vec![Arc::new(Fixed("database", true))])
            .get("/health")
            .send()
            .await;
        resp.assert_status_is_ok();
        resp.assert_json(serde_json::json!({"data": {"status": "ok"}}))
            .await;
    }

    #[tokio::test]
    async fn unavailable_names_the_failing_dependency() {
        let probes: Vec<Arc<dyn HealthProbe>> = vec![
            Arc::new(Fixed("database", true)),
            Arc::new(Fixed("broker", false)),
        ];
        let resp = client(probes).get("/health").send().await;
        resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
        resp.assert_json(
            serde_json::json!({"error": {"code": "UNAVAILABLE", "message": "unavailable: broker"}}),
        )
        .await;
    }
}
