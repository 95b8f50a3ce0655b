//! `GET /accounts/{user_id}/transactions`: the opening balance, every top-up and every FINISHED
//! debit (with its order), newest first, each with the balance it left; a refused payment is not
//! there; the movements add up to the balance; pages and 404/400 as for the other lists.

use reqwest::StatusCode;
use serde_json::{Value, json};
use servicetest::{body_json, number_text};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};
use crate::messaging::next_result;

/// Minor units of a JSON amount (exact: parsed from the number's text).
fn minor(v: &Value) -> i64 {
    contract::Money::parse_decimal(&number_text(v))
        .unwrap()
        .minor()
}

#[tokio::test]
async fn history_lists_every_movement_newest_first_and_adds_up_to_the_balance() {
    // Arrange: opened with 100, topped up 50 twice, debited 120 and 20, one refused (999).
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    app.create_account(user, json!(100)).await;
    let mut results = app.subscribe(&app.topics.results).await;
    let top_up = json!({"user_id": user, "amount": 50});
    assert_eq!(
        app.post_json("/accounts/topup", &top_up).await.status(),
        StatusCode::OK
    );
    let (first, refused, second) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    app.request_payment(first, user, json!(120)).await;
    app.request_payment(refused, user, json!(999)).await;
    app.request_payment(second, user, json!(20)).await;
    for _ in 0..3 {
        next_result(&mut results).await;
    }
    assert_eq!(
        app.post_json("/accounts/topup", &top_up).await.status(),
        StatusCode::OK
    );

    // Act
    let resp = app.get(&format!("/accounts/{user}/transactions")).await;

    // Assert
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_json(resp).await;
    let entries = body["data"].as_array().unwrap();
    let seen: Vec<(String, Value, i64, i64)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["order_id"].clone(),
                minor(&e["amount"]),
                minor(&e["balance_after"]),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("TOP_UP".into(), Value::Null, 5_000, 6_000),
            ("DEBIT".into(), json!(second), 2_000, 1_000),
            ("DEBIT".into(), json!(first), 12_000, 3_000),
            ("TOP_UP".into(), Value::Null, 5_000, 15_000),
            ("OPENING".into(), Value::Null, 10_000, 10_000),
        ],
        "{body}"
    );
    let sum: i64 = seen
        .iter()
        .map(|(kind, _, amount, _)| if kind == "DEBIT" { -amount } else { *amount })
        .sum();
    let balance = app.balance(user).await;
    assert_eq!(balance, "60");
    assert_eq!(
        sum,
        contract::Money::parse_decimal(&balance).unwrap().minor(),
        "OPENING + TOP_UP − DEBIT = balance"
    );
    assert!(entries.iter().all(|e| e["created_at"].is_string()));

    // Pages: newest first, then the rest.
    let page = body_json(
        app.get(&format!("/accounts/{user}/transactions?limit=2&offset=3"))
            .await,
    )
    .await;
    let kinds: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["TOP_UP", "OPENING"]);

    results.close().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn history_of_an_unknown_account_is_404_and_bad_pages_are_400() {
    let app = spawn_app().await;
    let user = Uuid::new_v4();
    let resp = app.get(&format!("/accounts/{user}/transactions")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(resp).await["error"]["code"], "NOT_FOUND");

    app.create_account(user, json!(0)).await;
    for query in ["limit=0", "limit=501", "offset=-1", "limit=x"] {
        let resp = app
            .get(&format!("/accounts/{user}/transactions?{query}"))
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let resp = app.get("/accounts/not-a-uuid/transactions").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

/// The account's whole history is one chain — each entry's balance is the previous one plus or
/// minus its amount — starting at the opening and ending at the balance shown; returns how many
/// top-ups it holds. Used where movements ran concurrently.
pub async fn assert_history_is_one_chain(app: &TestApp, user: Uuid) -> usize {
    let body = body_json(
        app.get(&format!("/accounts/{user}/transactions?limit=500"))
            .await,
    )
    .await;
    let mut entries: Vec<&Value> = body["data"].as_array().unwrap().iter().collect();
    entries.reverse(); // oldest first
    assert_eq!(entries[0]["kind"], "OPENING", "{body}");
    let mut balance = minor(&entries[0]["balance_after"]);
    for e in &entries[1..] {
        let amount = minor(&e["amount"]);
        balance += if e["kind"] == "DEBIT" {
            -amount
        } else {
            amount
        };
        assert_eq!(minor(&e["balance_after"]), balance, "{body}");
    }
    let shown = app.balance(user).await;
    assert_eq!(
        balance,
        contract::Money::parse_decimal(&shown).unwrap().minor()
    );
    entries.iter().filter(|e| e["kind"] == "TOP_UP").count()
}
