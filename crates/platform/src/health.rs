//! `GET /health`: 200 only when the process can reach everything it needs (SPEC §2); and the
//! two checks orchestrators distinguish: `GET /health/live` (the process is up and serving: a
//! failure means restart it) and `GET /health/ready` (the same probes as `/health`: a failure
//! means send it no traffic for now, a restart would not help).
//!
//! Each service passes the probes that matter to it (database, broker, consumer joined; the
//! gateway its upstreams), so readiness means "can do real work", not merely "is running".

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

/// How long one round of probes answers every `/health` call: a flood of health checks costs
/// the database and broker at most a few rounds a second, not one round per request.
const CACHE_FOR: std::time::Duration = std::time::Duration::from_millis(250);

/// Failed probes of one round: (name, why).
type Failures = Vec<(String, String)>;

/// The health operation, parameterised by the probes of one process.
pub struct HealthApi {
    probes: Vec<Arc<dyn HealthProbe>>,
    /// The last round and when it ended; callers arriving during a round wait for it.
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, Failures)>>,
}

impl HealthApi {
    /// A health endpoint over `probes`, checked at most once per [`CACHE_FOR`].
    pub fn new(probes: Vec<Arc<dyn HealthProbe>>) -> Self {
        HealthApi {
            probes,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The failures of a round at most [`CACHE_FOR`] old, running one if needed.
    async fn failures(&self) -> Failures {
        let mut last = self.last.lock().await;
        if let Some((at, failures)) = last.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return failures.clone();
        }
        let checks = self.probes.iter().map(|p| async move {
            match tokio::time::timeout(PROBE_TIMEOUT, p.check()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some((p.name().to_owned(), e)),
                Err(_) => Some((p.name().to_owned(), "timed out".to_owned())),
            }
        });
        let failures: Failures = futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect();
        *last = Some((tokio::time::Instant::now(), failures.clone()));
        failures
    }
}

/// Answers of `/health/live`.
#[derive(Debug, ApiResponse)]
pub enum LiveResponse {
    /// The process is up and its HTTP server answers.
    #[oai(status = 200)]
    Ok(Json<HealthData>),
}

fn ok() -> Json<HealthData> {
    Json(HealthData {
        data: HealthStatus {
            status: "ok".into(),
        },
    })
}

#[OpenApi]
impl HealthApi {
    /// Readiness: 200 only when the database and broker (gateway: its upstreams) answer.
    #[oai(path = "/health", method = "get", tag = "HealthTag::Health")]
    async fn health(&self) -> HealthResponse {
        self.readiness().await
    }

    /// Liveness: 200 whenever the process can answer at all; its dependencies do not count (a
    /// database outage must not get every instance restarted).
    #[oai(path = "/health/live", method = "get", tag = "HealthTag::Health")]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Ok(ok())
    }

    /// Readiness, as orchestrators ask for it: the same answer as `/health` (database, broker
    /// and a joined consumer; gateway: its upstreams).
    #[oai(path = "/health/ready", method = "get", tag = "HealthTag::Health")]
    async fn ready(&self) -> HealthResponse {
        self.readiness().await
    }
}

impl HealthApi {
    async fn readiness(&self) -> HealthResponse {
        let failures = self.failures().await;
        if failures.is_empty() {
            return HealthResponse::Ok(ok());
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

    /// Counts its checks.
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl HealthProbe for Counting {
        fn name(&self) -> &str {
            "broker"
        }
        async fn check(&self) -> Result<(), String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(())
        }
    }

    /// A flood of health checks does not become a flood of broker metadata requests.
    #[tokio::test]
    async fn a_flood_of_health_checks_probes_once_per_round() {
        let probe = Arc::new(Counting(std::sync::atomic::AtomicUsize::new(0)));
        let api = Arc::new(HealthApi::new(vec![probe.clone()]));
        let calls = (0..50).map(|_| {
            let api = api.clone();
            async move { api.failures().await }
        });
        let all = futures::future::join_all(calls).await;
        assert!(all.iter().all(Vec::is_empty));
        assert_eq!(probe.0.load(std::sync::atomic::Ordering::SeqCst), 1);
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
    async fn live_ignores_dependencies_and_ready_does_not() {
        let client = client(vec![Arc::new(Fixed("database", false))]);
        let live = client.get("/health/live").send().await;
        live.assert_status_is_ok();
        live.assert_json(serde_json::json!({"data": {"status": "ok"}}))
            .await;
        let ready = client.get("/health/ready").send().await;
        ready.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
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
