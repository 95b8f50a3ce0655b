//! `spawn_app()` and the steps only the payments tests take over HTTP and SQL.
//!
//! Running the service (in-process, exactly as `main` wires it: `payments::startup::run`, on
//! its own database, topics and consumer group), HTTP, the bus and the shared checks come from
//! [`servicetest`]; [`TestApp`] derefs to its
//! [`ServiceUnderTest`](servicetest::ServiceUnderTest) and adds opening accounts, reading
//! balances and auditing money. Waiting is always on a condition with a deadline.

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::{Service, body_json, number_text};
use uuid::Uuid;

servicetest::service_app! {
    /// A running payments service: the generic
    /// [`ServiceUnderTest`](servicetest::ServiceUnderTest) (through `Deref`), started by
    /// `payments::startup::run` as `main` does, plus the payments steps below and in
    /// [`messaging`](crate::messaging).
    pub struct TestApp = Service::new("payments", payments::startup::run);
}

/// Starts the payments service (see `TestApp::spawn`): fresh database, fresh topics, healthy.
pub async fn spawn_app() -> TestApp {
    TestApp::spawn().await
}

impl TestApp {
    /// Opens an account that must be accepted, with this opening balance (a JSON number).
    pub async fn create_account(&self, user_id: Uuid, balance: Value) {
        let resp = self
            .post_json(
                "/accounts",
                &json!({"user_id": user_id, "balance": balance}),
            )
            .await;
        let status = resp.status();
        let body = body_json(resp).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "POST /accounts answered {body}"
        );
    }

    /// The balance `GET /accounts/{id}` shows, as the exact text of the JSON number.
    pub async fn balance(&self, user_id: Uuid) -> String {
        let resp = self.get(&format!("/accounts/{user_id}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        number_text(&body_json(resp).await["data"]["balance"])
    }

    /// SPEC §3 invariant, audited in SQL: sum(balances) = sum(opening balances) + sum(top-ups)
    /// − sum(FINISHED transactions).
    pub async fn assert_money_conserved(&self) {
        let (balances, opening, topups, debits): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT \
               (SELECT coalesce(sum(balance_minor), 0) FROM accounts)::bigint, \
               (SELECT coalesce(sum(opening_minor), 0) FROM accounts)::bigint, \
               (SELECT coalesce(sum(amount_minor), 0) FROM topups)::bigint, \
               (SELECT coalesce(sum(amount_minor), 0) FROM transactions \
                 WHERE outcome = 'FINISHED')::bigint",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(
            balances,
            opening + topups - debits,
            "money is conserved: balances {balances} = opening {opening} + top-ups {topups} \
             - debits {debits}"
        );
    }
}
