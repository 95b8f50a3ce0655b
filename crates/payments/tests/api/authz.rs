//! Authorization in payments with `AUTH=jwt`, called as the gateway calls it: who may open,
//! credit and read which account, that a refusal writes nothing, that every credit is audited in
//! the effect's transaction, and that a request without the gateway's signature is a 401.

use platform::auth::TOPUP_SCOPE;
use reqwest::{Method, StatusCode};
use serde_json::json;
use servicetest::auth::{signed, user};
use servicetest::{assert_error, body_json};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// A user may open only its own account, and only empty; an operator may open any with a
/// balance. Refusals are 403 and leave no account and no audit row behind.
#[tokio::test]
async fn accounts_are_opened_by_their_owner_or_an_operator() {
    let mut app = spawn_app().await;
    app.secure().await;
    let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
    let me_id = user(me, &[]);
    let post = |who, body| app.as_caller(Some(who), Method::POST, "/accounts", Some(body));

    let for_other = json!({"user_id": other});
    assert_error(
        post(&me_id, &for_other).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    let with_money = json!({"user_id": me, "balance": 100});
    let message = assert_error(
        post(&me_id, &with_money).await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    assert!(message.contains(TOPUP_SCOPE), "{message}");
    assert_eq!(app.count("accounts").await, 0);
    assert_eq!(app.count("audit_log").await, 0);

    let own = json!({"user_id": me});
    let resp = post(&me_id, &own).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let operator = platform::auth::Identity {
        subject: "ops-console".into(),
        scopes: vec![TOPUP_SCOPE.into()],
    };
    let opened = json!({"user_id": other, "balance": 250});
    let resp = post(&operator, &opened).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    let rows: Vec<(String, Uuid, Option<String>, String, i64, i64)> = sqlx::query_as(
        "SELECT action, user_id, subject, scopes, amount_minor, balance_after_minor \
         FROM audit_log ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            (
                "account_opened".into(),
                me,
                Some(me.to_string()),
                String::new(),
                0,
                0
            ),
            (
                "account_opened".into(),
                other,
                Some("ops-console".into()),
                TOPUP_SCOPE.into(),
                25_000,
                25_000
            ),
        ]
    );
    app.stop().await;
}

/// A top-up without the operator scope is a 403 and changes nothing; with it the balance grows
/// and the audit row names the operator, the request id and the trace.
#[tokio::test]
async fn only_operators_top_up_and_each_top_up_is_audited() {
    let mut app = spawn_app().await;
    app.secure().await;
    let me = Uuid::new_v4();
    let operator = user(Uuid::new_v4(), &[TOPUP_SCOPE]);
    let open = app
        .as_caller(
            Some(&operator),
            Method::POST,
            "/accounts",
            Some(&json!({"user_id": me, "balance": 10})),
        )
        .await;
    assert_eq!(open.status(), StatusCode::CREATED);
    let topup = json!({"user_id": me, "amount": 5});

    let resp = app
        .as_caller(
            Some(&user(me, &[])),
            Method::POST,
            "/accounts/topup",
            Some(&topup),
        )
        .await;
    assert_error(resp, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let balance = app
        .as_caller(
            Some(&user(me, &[])),
            Method::GET,
            &format!("/accounts/{me}"),
            None,
        )
        .await;
    assert_eq!(body_json(balance).await["data"]["balance"], json!(10));
    assert_eq!(app.count("topups").await, 0);

    let resp = app
        .client
        .post(format!("{}/accounts/topup", app.address))
        .headers({
            let mut h = signed(&operator, &Method::POST, "/accounts/topup");
            h.insert("x-request-id", "req-audit-1".parse().unwrap());
            h.insert(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            );
            h
        })
        .json(&topup)
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(resp).await["data"]["balance"], json!(15));
    let (subject, request_id, trace_id): (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT subject, request_id, trace_id FROM audit_log WHERE action = 'top_up'",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(subject, Some(operator.subject.clone()));
    assert_eq!(request_id.as_deref(), Some("req-audit-1"));
    assert_eq!(
        trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    app.assert_money_conserved().await;
    app.stop().await;
}

/// Another user's balance and history are 403; nothing answers without the gateway's
/// signature (a client calling the service directly, or forging the headers).
#[tokio::test]
async fn reads_are_the_owners_and_unsigned_calls_are_401() {
    let mut app = spawn_app().await;
    app.secure().await;
    let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
    let me_id = user(me, &[]);
    for path in [
        format!("/accounts/{other}"),
        format!("/accounts/{other}/transactions"),
    ] {
        let resp = app.as_caller(Some(&me_id), Method::GET, &path, None).await;
        assert_error(resp, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    let unsigned = app
        .as_caller(None, Method::GET, &format!("/accounts/{me}"), None)
        .await;
    assert!(unsigned.headers().contains_key("www-authenticate"));
    assert_error(unsigned, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    let forged = app
        .client
        .get(format!("{}/accounts/{me}", app.address))
        .header("x-auth-subject", me.to_string())
        .header("x-auth-scopes", TOPUP_SCOPE)
        .header("x-auth-issued", platform::auth::now_unix().to_string())
        .header("x-auth-signature", "ab".repeat(32))
        .send()
        .await
        .unwrap();
    assert_error(forged, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    app.stop().await;
}
