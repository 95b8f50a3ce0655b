//! Authorization in orders with `AUTH=jwt`, called as the gateway calls it: a user creates,
//! lists, streams and reads only its own orders; another user's order is indistinguishable from
//! an unknown one (404); a refused create writes neither an order nor an outbox row.

use reqwest::{Method, StatusCode};
use serde_json::json;
use servicetest::auth::user;
use servicetest::{assert_error, body_json};
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_user_sees_and_creates_only_its_own_orders() {
    let mut app = spawn_app().await;
    app.secure().await;
    let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (me_id, other_id) = (user(me, &[]), user(other, &[]));
    let order = |owner: Uuid| json!({"user_id": owner, "amount": 5, "description": "book"});

    let resp = app
        .as_caller(Some(&me_id), Method::POST, "/orders", Some(&order(other)))
        .await;
    assert_error(resp, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.count("outbox").await, 0);

    let resp = app
        .as_caller(
            Some(&other_id),
            Method::POST,
            "/orders",
            Some(&order(other)),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let theirs = body_json(resp).await["data"]["order_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Someone else's order reads exactly like one that does not exist.
    let unknown = Uuid::new_v4();
    let probe = assert_error(
        app.as_caller(
            Some(&me_id),
            Method::GET,
            &format!("/orders/{theirs}"),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    let missing = assert_error(
        app.as_caller(
            Some(&me_id),
            Method::GET,
            &format!("/orders/{unknown}"),
            None,
        )
        .await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        probe.replace(&theirs, "ID"),
        missing.replace(&unknown.to_string(), "ID")
    );
    let owner = app
        .as_caller(
            Some(&other_id),
            Method::GET,
            &format!("/orders/{theirs}"),
            None,
        )
        .await;
    assert_eq!(owner.status(), StatusCode::OK);

    for path in [
        format!("/orders?user_id={other}"),
        format!("/orders/stream?user_id={other}"),
    ] {
        let resp = app.as_caller(Some(&me_id), Method::GET, &path, None).await;
        assert_error(resp, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    let mine = app
        .as_caller(
            Some(&me_id),
            Method::GET,
            &format!("/orders?user_id={me}"),
            None,
        )
        .await;
    assert_eq!(body_json(mine).await["data"], json!([]));

    let unsigned = app
        .as_caller(None, Method::GET, &format!("/orders?user_id={me}"), None)
        .await;
    assert_error(unsigned, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    app.stop().await;
}
