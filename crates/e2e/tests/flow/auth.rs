//! Authentication and authorization through the public edges of a stack started with
//! `AUTH=jwt`: every kind of bad token is a 401 at the gateway and through nginx, a user cannot
//! read or write another user's money or orders (and cannot even learn an order exists), money
//! enters an account only with the operator scope, the internal identity headers cannot be
//! forged from outside, the per-subject rate limit answers 429 and recovers, and the seed
//! walk-through works with real tokens.
//!
//! With `AUTH=off` every scenario says it was skipped and passes: there is nothing to check.

use std::time::Duration;

use devauth::Signer;
use e2e::api::{self, Gateway, Reply, TOPUP_SCOPE};
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::whole;

/// The operator the scenarios act as when they add money: not a user (its subject is no UUID),
/// so only its scope lets it act on accounts.
const OPERATOR: &str = "e2e-operator";

/// The stack's signer; `None` (after saying so) when the stack runs with `AUTH=off`.
fn signer_or_skip(scenario: &str) -> Option<&'static Signer> {
    let signer = api::signer();
    if signer.is_none() {
        println!("{scenario}: skipped, the stack runs with AUTH=off");
    }
    signer
}

/// A client acting as the operator (scope `payments:topup`) on every request.
fn operator(edge: &Gateway) -> Gateway {
    edge.with_token(api::token(OPERATOR, &[TOPUP_SCOPE]))
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `Ok` when `reply` is `status` with the envelope's `code`, else what it was instead.
fn expect(reply: &Reply, status: StatusCode, code: &str) -> Result<(), String> {
    match reply.try_error() {
        Ok(error) if reply.status == status && error.code == code => Ok(()),
        _ => Err(format!(
            "expected {status} {code}, got {} {}",
            reply.status, reply.text
        )),
    }
}

/// Panics with every problem at once, if there is any.
fn assert_none(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every kind of bad credential — none, not a JWT, `alg: none`, expired, not yet valid, another
/// audience or issuer, an unknown `kid`, HS256 signed with the public key as the HMAC secret, a
/// payload swapped under a valid signature — is refused at both edges with the 401 envelope
/// and a `Bearer` challenge, and the order it tried to place does not exist.
#[tokio::test]
async fn every_bad_token_is_a_401_with_a_bearer_challenge_at_both_edges() {
    let Some(signer) = signer_or_skip("every_bad_token_is_a_401") else {
        return;
    };
    let user = Uuid::new_v4();
    let sub = user.to_string();
    let now = unix_now();
    let claims = |patch: Value| {
        let mut claims = signer.claims(&sub, &[], Duration::from_secs(600));
        for (name, value) in patch.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    };
    let signed = |patch: Value| signer.sign_raw(signer.header(), &claims(patch));
    // The classic key confusion: HS256 with the published key as the secret.
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some(signer.kid().to_owned());
    let public = devauth::public_jwk_json(signer).to_string();
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims(json!({})),
        &EncodingKey::from_secret(public.as_bytes()).unwrap(),
    )
    .unwrap();
    // A good signature over another payload: an operator's claims under the user's signature.
    let valid = signer.token(&sub, &[]);
    let [head, _, signature]: [&str; 3] = valid.split('.').collect::<Vec<_>>().try_into().unwrap();
    let other = signer.token(&sub, &[TOPUP_SCOPE]);
    let tampered = format!("{head}.{}.{signature}", other.split('.').nth(1).unwrap());
    let bearer = |token: String| Some(format!("Bearer {token}"));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", bearer("not-a-token".into())),
        ("not a bearer", Some("Basic dXNlcjpwYXNz".into())),
        ("alg none", bearer(devauth::unsecured(&claims(json!({}))))),
        (
            "expired",
            bearer(signed(
                json!({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
            )),
        ),
        ("not yet valid", bearer(signed(json!({"nbf": now + 3600})))),
        (
            "wrong audience",
            bearer(signed(json!({"aud": "another-api"}))),
        ),
        (
            "wrong issuer",
            bearer(signed(json!({"iss": "another-issuer"}))),
        ),
        (
            "unknown kid",
            bearer(signer.with_kid("no-such-key").token(&sub, &[])),
        ),
        ("HS256 with the public JWK as secret", bearer(hs256)),
        ("tampered payload", bearer(tampered)),
    ];

    let mut problems = Vec::new();
    let order = json!({"user_id": user, "amount": 1, "description": "never authenticated"});
    for edge in [Gateway::from_env(), Gateway::frontend_from_env()] {
        for (what, authorization) in &cases {
            let reply = edge
                .with_authorization(authorization.clone())
                .post_json("/orders", &order)
                .await;
            let challenge = reply.header("www-authenticate");
            if let Err(problem) = expect(&reply, StatusCode::UNAUTHORIZED, "UNAUTHORIZED") {
                problems.push(format!("{what} via {}: {problem}", edge.base()));
            } else if !challenge.starts_with("Bearer") {
                problems.push(format!(
                    "{what} via {}: WWW-Authenticate {challenge:?}",
                    edge.base()
                ));
            }
        }
    }
    let placed = Gateway::from_env().orders_of(user).await;
    if !placed.is_empty() {
        problems.push(format!("a refused request placed orders: {placed:?}"));
    }
    assert_none(&problems);
}

/// User A's own valid token gets nothing of user B's: B's account, history, orders, order
/// list and stream are 403; B's order is a 404 exactly like an unknown id (its existence does
/// not leak); opening B's existing account is a 403, not the 409 that would say it exists; and
/// B's balance and history are what they were.
#[tokio::test]
async fn a_user_cannot_touch_another_users_account_or_orders() {
    if signer_or_skip("a_user_cannot_touch_another_users_account_or_orders").is_none() {
        return;
    }
    let api = Gateway::from_env();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(b, json!(100)).await;
    // Too dear to be paid: B's money stays 100 whatever settles.
    let b_order = api.create_order(b, json!(1000), "B's order").await;
    assert_eq!(api.wait_settled(b_order).await.status, "FAILED");
    let history = format!("/accounts/{b}/transactions");
    let b_history = api.get(&history).await.json();
    let as_a = api.as_user(a);

    let mut problems = Vec::new();
    let forbidden = [
        ("GET B's account", as_a.get(&format!("/accounts/{b}")).await),
        ("GET B's history", as_a.get(&history).await),
        (
            "POST an order for B",
            as_a.post_json(
                "/orders",
                &json!({"user_id": b, "amount": 1, "description": "A pays for B?"}),
            )
            .await,
        ),
        (
            "GET B's orders",
            as_a.get(&format!("/orders?user_id={b}")).await,
        ),
        (
            "POST B's (existing) account",
            as_a.post_json("/accounts", &json!({"user_id": b, "balance": 0}))
                .await,
        ),
    ];
    for (what, reply) in &forbidden {
        if let Err(problem) = expect(reply, StatusCode::FORBIDDEN, "FORBIDDEN") {
            problems.push(format!("{what}: {problem}"));
        }
    }
    match as_a.order_stream(b, None).await {
        Ok(_) => problems.push("B's order stream opened for A".into()),
        Err(refused) if refused.status != StatusCode::FORBIDDEN => problems.push(format!(
            "B's order stream: expected 403, got {} {}",
            refused.status, refused.body
        )),
        Err(_) => {}
    }
    let hidden = as_a.get(&format!("/orders/{b_order}")).await;
    let unknown = as_a.get(&format!("/orders/{}", Uuid::new_v4())).await;
    for (what, reply) in [("B's order", &hidden), ("an unknown order", &unknown)] {
        if let Err(problem) = expect(reply, StatusCode::NOT_FOUND, "NOT_FOUND") {
            problems.push(format!("GET {what}: {problem}"));
        }
    }

    let b_orders = api.orders_of(b).await;
    if b_orders.len() != 1 {
        problems.push(format!(
            "B has {} orders, not 1: {b_orders:?}",
            b_orders.len()
        ));
    }
    let balance = api.balance_cents(b).await;
    if balance != whole(100) {
        problems.push(format!("B's balance moved to {balance} cents"));
    }
    let after = api.get(&history).await.json();
    if after != b_history {
        problems.push(format!("B's history changed: {b_history} -> {after}"));
    }
    assert_none(&problems);
}

/// A top-up needs the operator scope: the user's own token is a 403 that adds nothing, the
/// operator's adds the amount. A user may open its own account only empty: with a balance it
/// is a 403 and no account exists afterwards; with 0 it is a 201.
#[tokio::test]
async fn money_enters_an_account_only_with_the_operator_scope() {
    if signer_or_skip("money_enters_an_account_only_with_the_operator_scope").is_none() {
        return;
    }
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    let as_user = api.as_user(user);
    operator(&api).create_account(user, json!(50)).await;
    let top_up = json!({"user_id": user, "amount": 25});

    let refused = as_user.post_json("/accounts/topup", &top_up).await;
    expect(&refused, StatusCode::FORBIDDEN, "FORBIDDEN").unwrap();
    assert_eq!(
        as_user.balance_cents(user).await,
        whole(50),
        "nothing added"
    );
    let topped = operator(&api).top_up(user, json!(25)).await;
    assert_eq!(topped.balance_cents(), whole(75));
    assert_eq!(as_user.balance_cents(user).await, whole(75));

    let newcomer = Uuid::new_v4();
    let as_newcomer = api.as_user(newcomer);
    let rich = as_newcomer
        .post_json("/accounts", &json!({"user_id": newcomer, "balance": 10}))
        .await;
    expect(&rich, StatusCode::FORBIDDEN, "FORBIDDEN").unwrap();
    assert_eq!(
        as_newcomer.account(newcomer).await,
        None,
        "a refused opening wrote an account"
    );
    let empty = as_newcomer
        .post_json("/accounts", &json!({"user_id": newcomer, "balance": 0}))
        .await;
    let account: api::Account = empty.data(StatusCode::CREATED);
    assert_eq!((account.user_id, account.balance_cents()), (newcomer, 0));
}

/// The gateway's internal identity headers sent by a client are dropped: with A's token they
/// do not make A into B or an operator (403), without a token they are still a 401. And the
/// services refuse whoever calls them directly — a bearer token or forged headers are no
/// gateway signature — with a 401.
#[tokio::test]
async fn forged_internal_identity_headers_are_ignored_or_refused() {
    if signer_or_skip("forged_internal_identity_headers_are_ignored_or_refused").is_none() {
        return;
    }
    let api = Gateway::from_env();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(a, json!(0)).await;
    api.create_account(b, json!(100)).await;
    let forge = |edge: Gateway, who: Uuid| {
        edge.with_header("x-auth-subject", &who.to_string())
            .with_header("x-auth-scopes", TOPUP_SCOPE)
            .with_header("x-auth-signature", &"ab".repeat(32))
            .with_header("x-auth-issued", &unix_now().to_string())
    };

    let mut problems = Vec::new();
    let as_a_forging_b = forge(api.as_user(a), b);
    let read = as_a_forging_b.get(&format!("/accounts/{b}")).await;
    if let Err(problem) = expect(&read, StatusCode::FORBIDDEN, "FORBIDDEN") {
        problems.push(format!("A's token claiming to be B: {problem}"));
    }
    let credit = as_a_forging_b
        .post_json("/accounts/topup", &json!({"user_id": b, "amount": 5}))
        .await;
    if let Err(problem) = expect(&credit, StatusCode::FORBIDDEN, "FORBIDDEN") {
        problems.push(format!("A's token claiming the operator scope: {problem}"));
    }
    let anonymous = forge(api.with_token(None), b)
        .get(&format!("/accounts/{b}"))
        .await;
    if let Err(problem) = expect(&anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED") {
        problems.push(format!("no token, forged headers: {problem}"));
    } else if !anonymous.header("www-authenticate").starts_with("Bearer") {
        problems.push(format!(
            "no token: WWW-Authenticate {:?}",
            anonymous.header("www-authenticate")
        ));
    }

    for (service, path) in [
        ("ORDERS_URL", format!("/orders?user_id={a}")),
        ("PAYMENTS_URL", format!("/accounts/{a}")),
    ] {
        let url = testkit::required_env(service);
        let direct = Gateway::new(url.split(',').next().unwrap().trim_end_matches('/'));
        for (what, client) in [
            ("A's token", direct.as_user(a)),
            ("A's token and forged headers", forge(direct.as_user(a), a)),
            ("forged headers only", forge(direct.with_token(None), a)),
        ] {
            let reply = client.get(&path).await;
            if let Err(problem) = expect(&reply, StatusCode::UNAUTHORIZED, "UNAUTHORIZED") {
                problems.push(format!("{service}{path} directly with {what}: {problem}"));
            }
        }
    }
    let balance = api.balance_cents(b).await;
    if balance != whole(100) {
        problems.push(format!("B's balance moved to {balance} cents"));
    }
    assert_none(&problems);
}

/// Requests of one subject beyond its burst are answered 429 TOO_MANY_REQUESTS with a
/// `Retry-After` of at least a second, and after waiting that long the same subject is served
/// again. Kept short on the shared gateway: a fresh subject, 16 requests at a time, stopping at
/// the first 429.
#[tokio::test]
async fn the_per_subject_rate_limit_answers_429_then_recovers() {
    if signer_or_skip("the_per_subject_rate_limit_answers_429_then_recovers").is_none() {
        return;
    }
    // The stack's gateway limit: the default 50:100 unless the environment says otherwise.
    let limit = std::env::var("RATE_LIMIT_PER_SUBJECT").unwrap_or_default();
    if limit.trim().eq_ignore_ascii_case("off") {
        println!("the_per_subject_rate_limit: skipped, RATE_LIMIT_PER_SUBJECT=off");
        return;
    }
    let burst: usize = limit
        .split_once(':')
        .and_then(|(_, burst)| burst.trim().parse().ok())
        .unwrap_or(100);
    let bound = 4 * burst;
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    api.create_account(user, json!(0)).await;
    let as_user = api.as_user(user);
    let path = format!("/accounts/{user}");

    let (mut sent, mut served) = (0, 0);
    let mut limited: Vec<Reply> = Vec::new();
    while limited.is_empty() && sent < bound {
        let batch = join_all((0..16).map(|_| as_user.get(&path))).await;
        sent += batch.len();
        for reply in batch {
            match reply.status {
                StatusCode::TOO_MANY_REQUESTS => limited.push(reply),
                StatusCode::OK => served += 1,
                other => panic!("GET {path}: unexpected {other} {}", reply.text),
            }
        }
    }
    assert!(
        !limited.is_empty(),
        "no 429 within {sent} requests of one subject ({served} served)"
    );
    let mut wait = 0;
    for reply in &limited {
        expect(reply, StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS").unwrap();
        let retry_after: u64 = reply
            .header("retry-after")
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After {:?}", reply.header("retry-after")));
        assert!(retry_after >= 1, "Retry-After {retry_after}");
        wait = wait.max(retry_after);
    }
    println!("first 429 after {served} served of {sent} sent; Retry-After {wait} s");

    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = as_user.get(&path).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "after Retry-After: {}",
        again.text
    );
}

/// The seed walk-through with real tokens: the operator opens the account with 500 and tops it
/// up with 300, the user orders for 200 ("книга"), the order is FINISHED, the balance 600, and
/// the user's history shows the debit, the top-up and the opening, newest first.
#[tokio::test]
async fn the_seed_walk_through_works_with_tokens() {
    if signer_or_skip("the_seed_walk_through_works_with_tokens").is_none() {
        return;
    }
    let api = Gateway::from_env();
    let user = Uuid::new_v4();
    let (operator, as_user) = (operator(&api), api.as_user(user));

    let opened = operator.create_account(user, json!(500)).await;
    assert_eq!(opened.balance_cents(), whole(500));
    let topped = operator.top_up(user, json!(300)).await;
    assert_eq!(topped.balance_cents(), whole(800));
    let order_id = as_user.create_order(user, json!(200), "книга").await;
    let order = as_user.wait_settled(order_id).await;

    assert_eq!(order.status, "FINISHED", "{order:?}");
    assert_eq!(as_user.balance_cents(user).await, whole(600));
    let history: Vec<Value> = as_user
        .get(&format!("/accounts/{user}/transactions"))
        .await
        .data(StatusCode::OK);
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["DEBIT", "TOP_UP", "OPENING"], "{history:?}");
    assert_eq!(history[0]["order_id"], order_id.to_string());
    let after: Vec<i64> = history
        .iter()
        .map(|e| e2e::money::cents(e["balance_after"].as_number().unwrap()))
        .collect();
    assert_eq!(after, [whole(600), whole(800), whole(500)]);
}
