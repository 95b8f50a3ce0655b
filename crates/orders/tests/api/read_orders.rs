//! GET /orders?user_id= and GET /orders/{order_id}: what they show, and how they refuse.

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::{assert_error, body_json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

/// The ids of `GET path`'s list, in the order answered.
async fn listed_ids(app: &TestApp, path: &str) -> Vec<Uuid> {
    let resp = app.get(path).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    let body = body_json(resp).await;
    assert_eq!(body.as_object().unwrap().len(), 1, "only `data`: {body}");
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is a list: {body}"))
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Three orders of one user and one of another: the user's list holds only theirs, newest
/// first, each a full order; `limit` and `offset` page through it; an unknown user has an empty
/// list.
#[tokio::test]
async fn orders_of_a_user_are_listed_newest_first_and_paged() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let first = app.create_order(user, json!(1), "first").await;
    let second = app.create_order(user, json!(2), "second").await;
    let other_user = app.create_order(Uuid::new_v4(), json!(3), "other").await;
    let third = app.create_order(user, json!(4.5), "third").await;
    let base = format!("/orders?user_id={user}");

    // Act
    let resp = app.get(&base).await;

    // Assert: only this user's, newest first, full orders.
    assert_eq!(resp.status(), StatusCode::OK);
    let all = body_json(resp).await["data"].take();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["order_id"], third.to_string());
    assert_eq!(all[0]["description"], "third");
    assert_eq!(all[0]["amount"].to_string(), "4.5");
    assert_eq!(all[0]["status"], "NEW");
    assert_eq!(all[0]["failure_reason"], Value::Null);
    assert_eq!(all[0]["user_id"], user.to_string());
    assert_eq!(all[0].as_object().unwrap().len(), 8, "{}", all[0]);
    assert_eq!(all[1]["order_id"], second.to_string());
    assert_eq!(all[2]["order_id"], first.to_string());
    assert!(!all.iter().any(|o| o["order_id"] == other_user.to_string()));

    // Assert: paging.
    assert_eq!(
        listed_ids(&app, &format!("{base}&limit=2")).await,
        [third, second]
    );
    assert_eq!(
        listed_ids(&app, &format!("{base}&limit=2&offset=2")).await,
        [first]
    );
    assert_eq!(
        listed_ids(&app, &format!("{base}&offset=1")).await,
        [second, first]
    );
    assert!(
        listed_ids(&app, &format!("{base}&offset=3"))
            .await
            .is_empty()
    );
    assert_eq!(
        listed_ids(&app, &format!("{base}&limit=500&offset=0")).await,
        [third, second, first]
    );
    assert_eq!(listed_ids(&app, &format!("{base}&limit=1")).await, [third]);

    // Assert: an unknown user has nothing, which is not an error.
    let resp = app
        .get(&format!("/orders?user_id={}", Uuid::new_v4()))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body_json(resp).await, json!({"data": []}));

    app.stop().await;
}

/// Every bad query value of GET /orders is a 400 in the envelope whose message names the
/// parameter: limit 0 and 501, a negative or non-numeric offset, a missing or malformed user id.
#[tokio::test]
async fn list_refuses_bad_query_values_naming_the_parameter() {
    // Arrange
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_order(user, json!(1), "present").await;
    let cases = [
        (format!("/orders?user_id={user}&limit=0"), "limit"),
        (format!("/orders?user_id={user}&limit=501"), "limit"),
        (format!("/orders?user_id={user}&limit=-1"), "limit"),
        (format!("/orders?user_id={user}&limit=ten"), "limit"),
        (format!("/orders?user_id={user}&offset=-1"), "offset"),
        (format!("/orders?user_id={user}&offset=x"), "offset"),
        ("/orders".to_owned(), "user_id"),
        ("/orders?limit=10".to_owned(), "user_id"),
        ("/orders?user_id=not-a-uuid".to_owned(), "user_id"),
        ("/orders?user_id=".to_owned(), "user_id"),
    ];

    for (path, parameter) in cases {
        // Act
        let resp = app.get(&path).await;

        // Assert
        let message = assert_error(resp, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
        assert!(
            message.contains(parameter),
            "GET {path}: message {message:?} names `{parameter}`"
        );
    }

    app.stop().await;
}

/// GET /orders/{id}: an id that is not a UUID is a 400 naming `order_id`; a well-formed id of
/// no order is a 404 in the envelope.
#[tokio::test]
async fn get_order_refuses_malformed_and_unknown_ids() {
    // Arrange
    let app = spawn_app().await;
    let unknown = Uuid::new_v4();

    // Act
    let malformed = app.get("/orders/not-a-uuid").await;
    let missing = app.get(&format!("/orders/{unknown}")).await;

    // Assert
    let message = assert_error(malformed, StatusCode::BAD_REQUEST, "BAD_REQUEST").await;
    assert!(message.contains("order_id"), "{message:?} names order_id");
    let message = assert_error(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert!(message.contains(&unknown.to_string()), "{message:?}");

    app.stop().await;
}
