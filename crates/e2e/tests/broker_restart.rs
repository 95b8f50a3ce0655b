//! The broker the stack runs on (`BROKER`) restarted in the middle of a stream of orders
//! (`dev/stack.sh restart-broker`, data kept): orders keep being accepted meanwhile (they wait in
//! the outbox, and orders' `/metrics` shows `outbox_pending_rows` going up, then back to 0),
//! orders' and payments' `/health` say 503 while the broker is away and 200 again after, and
//! every order is settled, none lost, none debited twice, each user's paid in
//! placement order.
//!
//! Its own test binary, so that no other scenario runs while the broker is away.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use e2e::api::Gateway;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Settling after the broker is back includes reconnecting and rejoining the groups.
const AFTER_RESTART: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_broker_restart_mid_stream_loses_and_doubles_nothing() {
    let api = Gateway::from_env();
    // Each user has 100 and orders 30 at a time: the first three are paid, the rest refused.
    let users: Vec<Uuid> = (0..30).map(|_| Uuid::new_v4()).collect();
    for user in &users {
        api.create_account(*user, json!(100)).await;
    }

    let stop = CancellationToken::new();
    let placing = tokio::spawn({
        let (stop, users) = (stop.clone(), users.clone());
        async move {
            let api = Gateway::from_env();
            let mut placed: Vec<(Uuid, Uuid)> = Vec::new();
            let mut round = 0;
            while !stop.is_cancelled() || round < 2 {
                for user in &users {
                    placed.push((*user, api.create_order(*user, json!(30), "stream").await));
                }
                round += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            placed
        }
    });

    tokio::time::sleep(Duration::from_secs(1)).await;
    let health = tokio::spawn(watch_health(stop.clone()));
    let backlog = tokio::spawn(watch_outbox(stop.clone()));
    testkit::restart_stack_broker(None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let placed = placing.await.unwrap();
    let most_pending = backlog.await.unwrap();
    assert!(
        most_pending >= 10.0,
        "outbox_pending_rows of orders went up while the broker was away: at most {most_pending}"
    );
    for (service, seen) in health.await.unwrap() {
        assert!(
            seen.contains(&503),
            "{service} /health never said 503 while the broker was away: {seen:?}"
        );
    }

    for service in ["ORDERS_URL", "PAYMENTS_URL"] {
        let url = format!("{}/health", testkit::required_env(service));
        testkit::eventually(&format!("{service} healthy again"), AFTER_RESTART, || {
            let url = url.clone();
            async move {
                reqwest::get(&url)
                    .await
                    .ok()?
                    .status()
                    .is_success()
                    .then_some(())
            }
        })
        .await;
    }
    let settled = testkit::eventually("every order settled", AFTER_RESTART, || {
        let api = &api;
        let users = &users;
        async move {
            let mut all = Vec::new();
            for user in users {
                let mut orders = api.orders_of(*user).await;
                if !orders.iter().all(e2e::api::Order::is_settled) {
                    return None;
                }
                orders.reverse(); // oldest first
                all.push((*user, orders));
            }
            Some(all)
        }
    })
    .await;

    testkit::eventually("the outbox drained", AFTER_RESTART, || async {
        (pending_rows().await? == 0.0).then_some(())
    })
    .await;

    let total: usize = settled.iter().map(|(_, o)| o.len()).sum();
    assert_eq!(total, placed.len(), "every placed order exists");
    for (user, orders) in &settled {
        let statuses: Vec<&str> = orders.iter().map(|o| o.status.as_str()).collect();
        let paid = statuses.iter().filter(|s| **s == "FINISHED").count();
        assert_eq!(paid, 3.min(orders.len()), "{user}: {statuses:?}");
        assert!(
            statuses[..paid].iter().all(|s| *s == "FINISHED"),
            "{user} paid in placement order: {statuses:?}"
        );
        assert_eq!(
            api.balance_cents(*user).await,
            10_000 - 3_000 * paid as i64,
            "{user} debited exactly once per paid order"
        );
    }
}

/// Polls orders' and payments' own `/health` until `stop`; returns the statuses each answered.
async fn watch_health(stop: CancellationToken) -> Vec<(&'static str, Vec<u16>)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let services = ["ORDERS_URL", "PAYMENTS_URL"];
    let mut seen: Vec<(&'static str, Vec<u16>)> =
        services.iter().map(|s| (*s, Vec::new())).collect();
    while !stop.is_cancelled() {
        for (service, statuses) in &mut seen {
            let url = format!("{}/health", testkit::required_env(service));
            if let Ok(resp) = client.get(&url).send().await {
                let status = resp.status().as_u16();
                if statuses.last() != Some(&status) {
                    statuses.push(status);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// `outbox_pending_rows` on orders' `/metrics`, if it answered.
async fn pending_rows() -> Option<f64> {
    let url = format!("{}/metrics", testkit::required_env("ORDERS_URL"));
    let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("outbox_pending_rows "))
        .and_then(|v| v.trim().parse().ok())
}

/// The largest `outbox_pending_rows` orders reported until `stop`.
async fn watch_outbox(stop: CancellationToken) -> f64 {
    let mut most = 0.0_f64;
    while !stop.is_cancelled() {
        if let Some(pending) = pending_rows().await {
            most = most.max(pending);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    most
}
