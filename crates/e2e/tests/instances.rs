//! Two instances of orders and two of payments at once, on whichever broker the stack runs
//! (`BROKER`): the stack's own processes plus a second instance of each started here, in
//! process, exactly as `main` starts one, on the same databases and consumer groups. Both
//! orders relays drain one outbox and both payments consumers share one group, yet every user's
//! orders are paid in the order they were placed.
//!
//! Its own test binary: the extra members make the groups rebalance, which the parallel
//! scenarios of `flow` should not have to wait through.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use e2e::api::Gateway;
use futures::StreamExt;
use platform::config::ServiceSettings;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A second instance of a service; stopped (SIGTERM-like) and awaited by [`Instance::stop`].
struct Instance {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    /// Starts `name` with the stack's settings (database `database_var`, default topics and
    /// groups) on a port-0 listener; returns once its `/health` answers 200 (consumer attached).
    async fn start<F, Fut>(name: &str, database_var: &str, run: F) -> Instance
    where
        F: FnOnce(
            ServiceSettings,
            std::sync::Arc<dyn bus::MessageBus>,
            tokio::net::TcpListener,
            CancellationToken,
        ) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let mut settings = ServiceSettings::from_env(name, 0).unwrap();
        settings.http_host = "127.0.0.1".into();
        settings.database_url = testkit::required_env(database_var);
        let bus = bus::connect::from_env(&format!("{name}-second")).unwrap();
        let listener = platform::http::bind("127.0.0.1", 0).await.unwrap();
        let health = format!("http://{}/health", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(settings, bus, listener, stop.clone()));
        testkit::eventually(
            &format!("the second {name} to be healthy"),
            Duration::from_secs(60),
            || {
                let health = health.clone();
                async move {
                    let resp = reqwest::get(&health).await.ok()?;
                    resp.status().is_success().then_some(())
                }
            },
        )
        .await;
        Instance { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Each user has 100 and places two orders of 100, the second right after the first was
/// accepted: the first must be paid and the second refused, for every user. One user whose
/// second order overtook the first (a relay or consumer reordering the key) shows up as the
/// first FAILED and the second FINISHED.
#[tokio::test]
async fn two_instances_of_each_service_keep_each_user_s_order() {
    let orders = Instance::start("orders", "DATABASE_URL_ORDERS", orders::startup::run).await;
    let payments =
        Instance::start("payments", "DATABASE_URL_PAYMENTS", payments::startup::run).await;
    let api = Gateway::from_env();
    let users: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();

    let placed: Vec<(Uuid, Uuid, Uuid)> = futures::stream::iter(users.iter().copied())
        .map(|user| {
            let api = &api;
            async move {
                api.create_account(user, json!(100)).await;
                let first = api.create_order(user, json!(100), "first").await;
                let second = api.create_order(user, json!(100), "second").await;
                (user, first, second)
            }
        })
        .buffer_unordered(25)
        .collect()
        .await;

    let mut overtaken = Vec::new();
    for (user, first, second) in &placed {
        let (a, b) = (
            api.wait_settled(*first).await,
            api.wait_settled(*second).await,
        );
        if (a.status.as_str(), b.status.as_str()) != ("FINISHED", "FAILED") {
            overtaken.push((*user, a.status, b.status));
        }
        assert_eq!(api.balance_cents(*user).await, 0, "user {user} paid once");
    }
    orders.stop().await;
    payments.stop().await;
    assert!(
        overtaken.is_empty(),
        "{} of {} users' orders settled out of order: {overtaken:?}",
        overtaken.len(),
        placed.len()
    );
}
