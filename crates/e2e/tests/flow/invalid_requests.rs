//! Every request of the validation table is refused with its status and the SPEC error
//! envelope, writes nothing, and its message names the offending field.

use e2e::api::Gateway;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::whole;
use crate::validation;

/// Every request of the validation matrix (`validation::cases`: bad UUIDs, bad amounts,
/// missing fields, wrong types, malformed JSON, wrong media type, oversized body, unknown
/// routes, wrong methods) is refused with its status and the `{"error": {"code", "message"}}`
/// envelope — and nothing is written: the ghost user still has no orders and no account, the
/// holder's balance is still 100.
#[tokio::test]
async fn invalid_requests_are_refused_with_the_envelope_and_write_nothing() {
    let api = Gateway::from_env();
    let (ghost, holder) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(holder, json!(100)).await;
    let cases = validation::cases(ghost, holder);
    assert_refused(&api, std::slice::from_ref(&api), &cases, ghost, holder).await;
}

/// Sends every case through each of `edges` (a fresh client per case) and asserts its status and
/// envelope, then that nothing was written for `ghost` and the holder's 100 did not move (read
/// through `api`).
pub async fn assert_refused(
    api: &Gateway,
    edges: &[Gateway],
    cases: &[validation::Case],
    ghost: Uuid,
    holder: Uuid,
) {
    // Act
    let mut problems = Vec::new();
    for edge in edges {
        for case in cases {
            // A client per case: whether a refusal spoils a kept-alive connection is
            // `oversized_body_does_not_break_the_next_request`'s question, not this table's.
            let reply = edge
                .fresh()
                .try_send(
                    case.method.clone(),
                    &case.path,
                    case.content_type,
                    case.body.clone(),
                )
                .await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(problem) => {
                    problems.push(format!("{}: {problem}", case.what));
                    continue;
                }
            };
            let code = reply.try_error().map(|e| e.code);
            if reply.status != case.status || code.as_deref() != Ok(case.code) {
                problems.push(format!(
                    "{} via {}: expected {} {}, got {} {}",
                    case.what,
                    edge.base(),
                    case.status,
                    case.code,
                    reply.status,
                    reply.text
                ));
            }
        }
    }

    // Assert
    let orders = api.orders_of(ghost).await;
    if !orders.is_empty() {
        problems.push(format!(
            "orders were written for the ghost user: {orders:?}"
        ));
    }
    if let Some(account) = api.account(ghost).await {
        problems.push(format!(
            "an account was written for the ghost user: {account:?}"
        ));
    }
    let balance = api.balance_cents(holder).await;
    if balance != whole(100) {
        problems.push(format!("the holder's balance moved to {balance} cents"));
    }
    assert!(
        problems.is_empty(),
        "{} of {} requests misbehaved:\n{}",
        problems.len(),
        cases.len() * edges.len(),
        problems.join("\n")
    );
}

/// SPEC §2: the error message "names the offending field". For every case of the matrix
/// where exactly one field is at fault, the message mentions that field by its API name
/// (`amount`, not the internal type name `Money`; `order_id`, not `param0`).
#[tokio::test]
async fn validation_messages_name_the_offending_field() {
    // Arrange
    let api = Gateway::from_env();
    let (ghost, holder) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(holder, json!(100)).await;
    let cases = validation::cases(ghost, holder);

    // Act
    let mut problems = Vec::new();
    for case in cases.iter().filter(|c| c.field.is_some()) {
        let field = case.field.unwrap();
        let reply = Gateway::from_env()
            .send(
                case.method.clone(),
                &case.path,
                case.content_type,
                case.body.clone(),
            )
            .await;
        match reply.try_error() {
            Ok(error) if error.message.contains(field) => {}
            Ok(error) => problems.push(format!(
                "{}: message does not name `{field}`: {:?}",
                case.what, error.message
            )),
            Err(problem) => problems.push(format!("{}: {problem}", case.what)),
        }
    }

    // Assert
    assert!(
        problems.is_empty(),
        "{} messages do not name their field:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
