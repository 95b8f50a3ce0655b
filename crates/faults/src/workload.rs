//! The stream of accounts, top-ups and orders through the gateway, and what the client saw.
//!
//! Every request is sent once (never retried), and each carries something that finds its row
//! again: an order's description is unique, a top-up's amount is unique per user. So the checks
//! can tell, from the tables, whether a request whose answer was lost was applied, and never
//! have to guess.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::rng::Rng;

/// How a user behaves, which decides what the checks can expect of their orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    /// Account, top-ups, then orders one after another: the outcome of each order is fixed by
    /// the balance and the creation order (the greedy check).
    Sequential,
    /// Orders and top-ups in concurrent bursts: only money and per-order rules apply.
    Concurrent,
    /// Never opens an account: every order must fail ACCOUNT_NOT_FOUND, a top-up 404.
    NoAccount,
}

/// One request of a user's script.
#[derive(Debug, Clone)]
pub enum Step {
    /// `POST /accounts/topup` of this many cents (unique per user).
    TopUp(i64),
    /// `POST /orders` of this many cents with this (unique) description.
    Order {
        /// Cents.
        amount: i64,
        /// Unique across the run.
        description: String,
    },
}

/// What one user will do.
#[derive(Debug, Clone)]
pub struct UserPlan {
    /// The user.
    pub user: Uuid,
    /// Behaviour.
    pub kind: UserKind,
    /// Opening balance in cents (`None`: no account is opened).
    pub opening: Option<i64>,
    /// Batches of steps; the steps of one batch are sent concurrently, batches one after
    /// another.
    pub batches: Vec<Vec<Step>>,
}

/// The client's view of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    /// 2xx: the system said it was done.
    Ok,
    /// 4xx: the system said it was not done.
    Refused(u16),
    /// 5xx, timeout, connection error: it may or may not have been done.
    Unknown(String),
}

/// An order as sent.
#[derive(Debug, Clone)]
pub struct SentOrder {
    /// Cents.
    pub amount: i64,
    /// Unique description (finds the row).
    pub description: String,
    /// What the client saw.
    pub outcome: Outcome,
    /// The id the 201 answered with.
    pub order_id: Option<Uuid>,
}

/// Everything one user sent, in sending order.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// The user.
    pub user: Uuid,
    /// Behaviour.
    pub kind: UserKind,
    /// The opening balance asked for, and how `POST /accounts` ended (`None`: not sent).
    pub account: Option<(i64, Outcome)>,
    /// Top-ups: amount in cents and how each ended.
    pub topups: Vec<(i64, Outcome)>,
    /// Orders in sending order (for sequential users: one answered before the next was sent).
    pub orders: Vec<SentOrder>,
    /// True if every top-up was answered before the first order was sent.
    pub topups_first: bool,
}

/// Counters the progress line and the summary read while the stream runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Order tickets taken (attempts, including those waiting at the gate).
    pub tickets: AtomicU64,
    /// Orders answered 201.
    pub orders_ok: AtomicU64,
    /// Orders with an unknown outcome.
    pub orders_unknown: AtomicU64,
    /// Top-ups answered 200.
    pub topups_ok: AtomicU64,
    /// Top-ups with an unknown outcome.
    pub topups_unknown: AtomicU64,
    /// 5xx answers whose body is not the SPEC error envelope (a violation: SPEC §2).
    pub bare_server_errors: AtomicU64,
    /// 503 answers without `Retry-After` (a violation: a client must learn when to retry).
    pub unavailable_without_retry_after: AtomicU64,
}

/// Builds `users` users' scripts totalling `orders` orders, from `rng`.
pub fn plan(rng: &mut Rng, users: usize, orders: usize, run_id: &str) -> Vec<UserPlan> {
    let users = users.max(1);
    let kinds: Vec<UserKind> = (0..users)
        .map(|_| {
            let r = rng.unit();
            if r < 0.10 {
                UserKind::NoAccount
            } else if r < 0.35 {
                UserKind::Concurrent
            } else {
                UserKind::Sequential
            }
        })
        .collect();
    let mut amounts: Vec<Vec<i64>> = vec![Vec::new(); users];
    for _ in 0..orders {
        amounts[rng.index(users)].push(rng.range(100, 5_000) as i64);
    }
    let mut serial = 0u64;
    let mut plans = Vec::with_capacity(users);
    for (u, (kind, amounts)) in kinds.into_iter().zip(amounts).enumerate() {
        let total: i64 = amounts.iter().sum();
        let order_steps: Vec<Step> = amounts
            .into_iter()
            .map(|amount| {
                serial += 1;
                Step::Order {
                    amount,
                    description: format!("faults-{run_id}-{u}-{serial}"),
                }
            })
            .collect();
        let mut used = HashSet::new();
        // A user's top-up amounts are unique: the amount finds the row again.
        let mut topup = |cents: i64| {
            let mut cents = cents.max(1);
            while !used.insert(cents) {
                cents += 1;
            }
            Step::TopUp(cents)
        };
        let (opening, batches) = match kind {
            UserKind::Sequential => {
                // Half the users cannot pay for everything: the order of debits matters there.
                let pct = if rng.chance(0.5) {
                    rng.range(20, 70)
                } else {
                    rng.range(105, 150)
                } as i64;
                let budget = total * pct / 100;
                let n_topups = rng.range(0, 2) as i64;
                let opening = budget / (n_topups + 1);
                let mut batches: Vec<Vec<Step>> =
                    (0..n_topups).map(|_| vec![topup(opening)]).collect();
                batches.extend(order_steps.into_iter().map(|s| vec![s]));
                (Some(opening), batches)
            }
            UserKind::Concurrent => {
                let budget = total * rng.range(50, 100) as i64 / 100;
                let opening = budget / 2;
                let n_topups = rng.range(1, 4) as i64;
                let mut steps = order_steps;
                for _ in 0..n_topups {
                    steps.push(topup((budget - opening) / n_topups));
                }
                rng.shuffle(&mut steps);
                let mut batches = Vec::new();
                let mut rest = steps.as_slice();
                while !rest.is_empty() {
                    let take = (rng.range(1, 4) as usize).min(rest.len());
                    batches.push(rest[..take].to_vec());
                    rest = &rest[take..];
                }
                (Some(opening), batches)
            }
            UserKind::NoAccount => {
                let mut batches = Vec::new();
                if rng.chance(0.5) {
                    batches.push(vec![topup(rng.range(100, 5_000) as i64)]);
                }
                batches.extend(order_steps.into_iter().map(|s| vec![s]));
                (None, batches)
            }
        };
        plans.push(UserPlan {
            user: Uuid::new_v4(),
            kind,
            opening,
            batches,
        });
    }
    rng.shuffle(&mut plans);
    plans
}

/// One user's bearer tokens (`Authorization` values), minted before the stream starts.
#[derive(Debug, Clone)]
pub struct UserTokens {
    /// No scope: the user's own orders.
    pub user: String,
    /// With `payments:topup`, the user as its own operator: opening with a balance, top-ups.
    pub operator: String,
}

/// Every planned user's tokens, valid for `ttl` (the whole stream and its quiescence): minted
/// once, so signing costs nothing while faults are being measured.
pub fn mint(
    signer: &devauth::Signer,
    plans: &[UserPlan],
    ttl: Duration,
) -> HashMap<Uuid, UserTokens> {
    plans
        .iter()
        .map(|plan| {
            let sub = plan.user.to_string();
            let tokens = UserTokens {
                user: format!("Bearer {}", signer.token_for(&sub, &[], ttl)),
                operator: format!(
                    "Bearer {}",
                    signer.token_for(&sub, &[platform::auth::TOPUP_SCOPE], ttl)
                ),
            };
            (plan.user, tokens)
        })
        .collect()
}

/// `cents` as the text of a JSON number with two decimals.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The stream: `lanes` workers each running one user's script at a time.
pub struct Driver {
    /// The gateway's base URL.
    pub gateway: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Orders to place at most.
    pub max_orders: u64,
    /// No new order after this.
    pub deadline: Instant,
    /// Shared progress counters.
    pub counters: Arc<Counters>,
    /// Order tickets below this value may be placed (the fault schedule's gate).
    pub allowed: watch::Receiver<u64>,
    /// Each user's tokens with `AUTH=jwt` ([`mint`]); `None`: no `Authorization` header.
    pub tokens: Option<HashMap<Uuid, UserTokens>>,
    /// Set once a 401 or 403 was reported, so a credentials problem is said once, not per request.
    pub auth_refusal_seen: AtomicBool,
}

impl Driver {
    /// Runs every plan over `lanes` concurrent lanes; returns what each user sent.
    pub async fn run(self: Arc<Self>, plans: Vec<UserPlan>, lanes: usize) -> Vec<UserRecord> {
        let queue = Arc::new(Mutex::new(VecDeque::from(plans)));
        let workers: Vec<_> = (0..lanes.max(1))
            .map(|_| {
                let (me, queue) = (self.clone(), queue.clone());
                tokio::spawn(async move {
                    let mut records = Vec::new();
                    loop {
                        let next = queue.lock().await.pop_front();
                        let Some(plan) = next else { break };
                        records.push(me.run_user(plan).await);
                    }
                    records
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in futures::future::join_all(workers).await {
            match w {
                Ok(records) => all.extend(records),
                Err(e) => eprintln!("faults: a driver lane failed: {e}"),
            }
        }
        all
    }

    async fn run_user(&self, plan: UserPlan) -> UserRecord {
        let mut rec = UserRecord {
            user: plan.user,
            kind: plan.kind,
            account: None,
            topups: Vec::new(),
            orders: Vec::new(),
            topups_first: true,
        };
        if let Some(opening) = plan.opening {
            let body = format!(
                r#"{{"user_id":"{}","balance":{}}}"#,
                plan.user,
                money(opening)
            );
            let (outcome, _) = self.post("/accounts", &plan.user, body).await;
            self.backoff(&outcome).await;
            rec.account = Some((opening, outcome));
        }
        for batch in plan.batches {
            let n_orders = batch
                .iter()
                .filter(|s| matches!(s, Step::Order { .. }))
                .count() as u64;
            if n_orders > 0 {
                if Instant::now() > self.deadline {
                    break;
                }
                let first = self.counters.tickets.fetch_add(n_orders, Ordering::SeqCst);
                if first + n_orders > self.max_orders {
                    break;
                }
                let last = first + n_orders - 1;
                let mut allowed = self.allowed.clone();
                let _ = allowed.wait_for(|a| *a > last).await;
            }
            let sends = batch.iter().map(|step| self.send(&plan.user, step));
            let results = futures::future::join_all(sends).await;
            let mut unknown = false;
            for (step, (outcome, order_id)) in batch.into_iter().zip(results) {
                unknown |= matches!(outcome, Outcome::Unknown(_));
                match step {
                    Step::TopUp(cents) => {
                        if !rec.orders.is_empty() {
                            rec.topups_first = false;
                        }
                        rec.topups.push((cents, outcome));
                    }
                    Step::Order {
                        amount,
                        description,
                    } => rec.orders.push(SentOrder {
                        amount,
                        description,
                        outcome,
                        order_id,
                    }),
                }
            }
            if unknown {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        rec
    }

    /// Sends one step; for an order, the id the 201 carried.
    async fn send(&self, user: &Uuid, step: &Step) -> (Outcome, Option<Uuid>) {
        match step {
            Step::TopUp(cents) => {
                let body = format!(r#"{{"user_id":"{user}","amount":{}}}"#, money(*cents));
                let (outcome, _) = self.post("/accounts/topup", user, body).await;
                let counter = match outcome {
                    Outcome::Ok => Some(&self.counters.topups_ok),
                    Outcome::Unknown(_) => Some(&self.counters.topups_unknown),
                    Outcome::Refused(_) => None,
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                (outcome, None)
            }
            Step::Order {
                amount,
                description,
            } => {
                let body = format!(
                    r#"{{"user_id":"{user}","amount":{},"description":"{description}"}}"#,
                    money(*amount)
                );
                let (outcome, data) = self.post("/orders", user, body).await;
                let id = data
                    .as_ref()
                    .and_then(|d| d.pointer("/data/order_id"))
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse().ok());
                let counter = match outcome {
                    Outcome::Ok => Some(&self.counters.orders_ok),
                    Outcome::Unknown(_) => Some(&self.counters.orders_unknown),
                    Outcome::Refused(_) => None,
                };
                if let Some(c) = counter {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                (outcome, id)
            }
        }
    }

    /// POSTs `body` to `path` on the gateway as `user` (with the operator scope for what adds
    /// money: `/accounts`, `/accounts/topup`).
    async fn post(
        &self,
        path: &str,
        user: &Uuid,
        body: String,
    ) -> (Outcome, Option<serde_json::Value>) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.gateway))
            .header("content-type", "application/json");
        if let Some(tokens) = self.tokens.as_ref().and_then(|t| t.get(user)) {
            let token = if path.starts_with("/accounts") {
                &tokens.operator
            } else {
                &tokens.user
            };
            request = request.header("authorization", token);
        }
        let resp = match request.body(body).send().await {
            Ok(resp) => resp,
            Err(e) => return (Outcome::Unknown(transport_error(&e)), None),
        };
        let status = resp.status();
        let retry_after = resp.headers().contains_key(reqwest::header::RETRY_AFTER);
        if matches!(status.as_u16(), 401 | 403)
            && !self.auth_refusal_seen.swap(true, Ordering::Relaxed)
        {
            // Every later request of the run is likely refused the same way: a misconfigured
            // run, not a fault the checks should have to explain.
            eprintln!(
                "faults: POST {path} answered {status}: the workload's credentials are refused \
                 (AUTH and AUTH_SIGNING_KEY must match the JWKS the gateway was given)"
            );
        }
        let json = resp.json::<serde_json::Value>().await.ok();
        if status.is_server_error() {
            let enveloped = json.as_ref().is_some_and(|j| {
                j["error"]["code"].is_string() && j["error"]["message"].is_string()
            });
            if !enveloped {
                self.counters
                    .bare_server_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
            if status.as_u16() == 503 && !retry_after {
                self.counters
                    .unavailable_without_retry_after
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if status.is_success() {
            (Outcome::Ok, json)
        } else if status.is_client_error() {
            (Outcome::Refused(status.as_u16()), json)
        } else {
            (Outcome::Unknown(format!("HTTP {}", status.as_u16())), json)
        }
    }

    /// A pause after an unknown outcome, so a lane does not burn its script against a process
    /// that is down.
    async fn backoff(&self, outcome: &Outcome) {
        if matches!(outcome, Outcome::Unknown(_)) {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A short name for a transport failure (the report groups by it).
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_hold_exactly_the_orders_asked_for_with_unique_keys() {
        let plans = plan(&mut Rng::new(3), 50, 400, "t");
        let mut descriptions = HashSet::new();
        let mut orders = 0;
        for p in &plans {
            let mut amounts = HashSet::new();
            for step in p.batches.iter().flatten() {
                match step {
                    Step::Order { description, .. } => {
                        orders += 1;
                        assert!(descriptions.insert(description.clone()));
                    }
                    Step::TopUp(cents) => assert!(amounts.insert(*cents), "top-up amounts unique"),
                }
            }
            assert_eq!(p.opening.is_none(), p.kind == UserKind::NoAccount);
        }
        assert_eq!(orders, 400);
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(12_345), "123.45");
        assert_eq!(money(5), "0.05");
    }
}
