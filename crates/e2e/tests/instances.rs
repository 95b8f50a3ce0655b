//! Two instances of orders and two of payments in the running stack (`dev/stack.sh scale`, on
//! whichever broker it runs, `BROKER`), the gateway balancing across them: both orders relays
//! drain one outbox, both payments consumers share one group, and one instance of each stops
//! mid-stream (the first payments instance killed with SIGKILL — on RabbitMQ the active consumer
//! of every queue, so the standby must take over — and the second orders instance stopped with
//! SIGTERM) — yet no order is lost or debited twice and every user's orders are paid in the
//! order they were placed.
//!
//! Its own test binary: it restarts the gateway and makes the groups rebalance, which the
//! parallel scenarios of `flow` should not have to wait through. It scales the stack back to
//! one instance of each at the end.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use e2e::api::{CreatedOrder, Gateway, Reply};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// Users placed before one instance of each service stops.
const BEFORE_STOP: usize = 100;
/// Users in all.
const USERS: usize = 300;

/// Each user has 100 and places two orders of 100, the second right after the first was
/// accepted: the first must be paid and the second refused, for every user, with one debit
/// each. A lost order stays NEW (the wait fails); an order debited twice or a second order
/// overtaking the first changes that pair of outcomes or the final balance of 0.
#[tokio::test]
async fn two_instances_of_each_service_lose_nothing_when_one_stops() {
    testkit::scale_stack(2, 2).await;
    let api = Gateway::from_env();
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::new_v4()).collect();
    let started = AtomicUsize::new(0);

    let placed: Vec<(Uuid, Uuid, Uuid)> = futures::stream::iter(users.iter().copied())
        .map(|user| {
            let (api, started) = (&api, &started);
            async move {
                if started.fetch_add(1, Ordering::SeqCst) == BEFORE_STOP {
                    signal("KILL", testkit::stack_pid("payments")).await;
                    signal("TERM", testkit::stack_pid("orders-2")).await;
                }
                let account = json!({"user_id": user, "balance": 100});
                persist(api, "/accounts", &account).await;
                let first = place(api, user, "first").await;
                let second = place(api, user, "second").await;
                (user, first, second)
            }
        })
        .buffer_unordered(25)
        .collect()
        .await;

    let mut wrong = Vec::new();
    for (user, first, second) in &placed {
        let (a, b) = (
            api.wait_settled(*first).await,
            api.wait_settled(*second).await,
        );
        let outcome = (
            a.status.as_str(),
            b.status.as_str(),
            b.failure_reason.as_deref(),
        );
        if outcome != ("FINISHED", "FAILED", Some("INSUFFICIENT_FUNDS")) {
            wrong.push((*user, a.status, b.status, b.failure_reason));
        }
        assert_eq!(api.balance_cents(*user).await, 0, "user {user} paid once");
    }
    // orders-2 took requests before it stopped; payments-2 applied payments (after the kill at
    // the latest, when it alone was left).
    for (instance, message) in [
        ("orders-2", "order created"),
        ("payments-2", "payment settled"),
    ] {
        assert!(
            logged(instance, message) > 0,
            "{instance} took part (no {message:?} line in its log)"
        );
    }
    testkit::scale_stack(1, 1).await;
    assert!(
        wrong.is_empty(),
        "{} of {} users' orders settled wrongly or out of order: {wrong:?}",
        wrong.len(),
        placed.len()
    );
}

/// POSTs `body` with an Idempotency-Key until it is answered 2xx: a 502/503 or a broken
/// connection while an instance stops is retried with the same key, as a client would.
async fn persist(api: &Gateway, path: &str, body: &Value) -> Reply {
    let key = Uuid::new_v4().to_string();
    testkit::eventually(
        &format!("POST {path} {body} to be accepted"),
        Duration::from_secs(60),
        || async {
            let reply = api.try_post_keyed(path, &key, body).await.ok()?;
            if reply.status.is_success() {
                return Some(reply);
            }
            assert!(
                matches!(
                    reply.status,
                    StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                ),
                "POST {path}: {} {}",
                reply.status,
                reply.text
            );
            None
        },
    )
    .await
}

/// Places an order of 100 for `user`; its id.
async fn place(api: &Gateway, user: Uuid, description: &str) -> Uuid {
    let body = json!({"user_id": user, "amount": 100, "description": description});
    let created: CreatedOrder = persist(api, "/orders", &body)
        .await
        .data(StatusCode::CREATED);
    created.order_id
}

/// Sends `signal` to `pid` (the instance stops; a dead one is no error).
async fn signal(signal: &str, pid: u32) {
    tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .await
        .unwrap();
}

/// How many lines of instance `name`'s log say `message`.
fn logged(name: &str, message: &str) -> usize {
    let path = testkit::repository_root().join(format!(".stack/logs/{name}.log"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let needle = format!("\"message\":\"{message}\"");
    text.lines().filter(|l| l.contains(&needle)).count()
}
