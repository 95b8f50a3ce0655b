//! Scenarios about the process around the API that both services must pass the same way.

use std::time::Duration;

use reqwest::StatusCode;

use crate::{ServiceUnderTest, body_json};

/// SPEC §2 and §5 with the broker unreachable: `/health` and `/health/ready` must answer 503
/// UNAVAILABLE (not hang) while `/health/live` answers 200 (restarting would not bring the
/// broker back), and the stop signal must end the process promptly and cleanly. The Act and Assert of
/// that test; `app` comes from a launch against a broker nobody serves. Both checks run before
/// the verdict, so a failure reports each.
pub async fn unreachable_broker_answers_503_and_stops(app: &mut ServiceUnderTest) {
    let mut problems = Vec::new();

    // Act
    let health = tokio::time::timeout(Duration::from_secs(5), app.get("/health")).await;
    let ready = tokio::time::timeout(Duration::from_secs(5), app.get("/health/ready")).await;
    let live = tokio::time::timeout(Duration::from_secs(5), app.get("/health/live")).await;
    let task = app.send_stop_signal();
    let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;

    // Assert
    match health {
        Err(_) => problems.push("GET /health did not answer within 5 s".to_owned()),
        Ok(resp) if resp.status() != StatusCode::SERVICE_UNAVAILABLE => {
            problems.push(format!("GET /health answered {}", resp.status()));
        }
        Ok(resp) => {
            let body = body_json(resp).await;
            if body["error"]["code"] != "UNAVAILABLE" {
                problems.push(format!("GET /health answered {body}"));
            }
        }
    }
    match ready {
        Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {}
        other => problems.push(format!(
            "GET /health/ready: {:?}",
            other.map(|r| r.status())
        )),
    }
    match live {
        Ok(resp) if resp.status() == StatusCode::OK => {}
        other => problems.push(format!("GET /health/live: {:?}", other.map(|r| r.status()))),
    }
    match stopped {
        Err(_) => problems.push("not stopped 10 s after the stop signal".to_owned()),
        Ok(Ok(Ok(()))) => {}
        Ok(other) => problems.push(format!("stopped with {other:?}")),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
