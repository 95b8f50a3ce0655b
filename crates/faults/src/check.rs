//! Quiescence, then every invariant of SPEC §3, from both databases and what the client saw.
//!
//! Each check is written so that it cannot fire on a legitimate outcome: a request whose answer
//! was lost is looked up in the tables (by its unique description or top-up amount) instead of
//! being assumed either way, and the creation-order check runs only for users whose outcome is
//! fully determined (every request of theirs answered, orders sent one after another, every
//! top-up before the first order).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::workload::{Outcome, UserKind, UserRecord};

/// One broken invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// Which invariant (stable name, grouped in the summary).
    pub kind: &'static str,
    /// The evidence: ids, amounts, statuses.
    pub detail: String,
}

/// What the wait for quiescence saw.
#[derive(Debug, Clone, Serialize)]
pub struct Quiescence {
    /// True if the system went quiet before the timeout.
    pub reached: bool,
    /// Seconds from the start of the wait until it was first quiet.
    pub seconds: f64,
    /// The last observation.
    pub last: String,
}

/// Counts that describe the outcome (not violations).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Orders rows.
    pub orders: usize,
    /// FINISHED orders.
    pub finished: usize,
    /// FAILED orders by reason.
    pub failed: BTreeMap<String, usize>,
    /// Orders whose POST answer was lost but which exist.
    pub unknown_orders_applied: usize,
    /// Orders whose POST answer was lost and which do not exist.
    pub unknown_orders_absent: usize,
    /// Top-up rows.
    pub topups: usize,
    /// Top-ups answered 200.
    pub topups_acked: usize,
    /// Top-ups whose answer was lost but which were applied.
    pub unknown_topups_applied: usize,
    /// Top-ups whose answer was lost and which were not applied.
    pub unknown_topups_absent: usize,
    /// Users the creation-order check covered.
    pub users_order_checked: usize,
    /// Orders re-requested by the orders sweeper (`payment_requested_at` moved), if known.
    pub sweeper_rerequested: Option<i64>,
}

/// The quiet-state fingerprint: counts that change while anything is still moving.
async fn fingerprint(orders: &PgPool, payments: &PgPool) -> Result<(bool, String), sqlx::Error> {
    let (new, finished, failed, pending_o): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'NEW'), count(*) FILTER (WHERE status = 'FINISHED'), \
         count(*) FILTER (WHERE status = 'FAILED'), \
         (SELECT count(*) FROM outbox WHERE published_at IS NULL) FROM orders",
    )
    .fetch_one(orders)
    .await?;
    let (txs, balances, pending_p, inbox): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM transactions), \
         (SELECT coalesce(sum(balance_minor), 0)::bigint FROM accounts), \
         (SELECT count(*) FROM outbox WHERE published_at IS NULL), (SELECT count(*) FROM inbox)",
    )
    .fetch_one(payments)
    .await?;
    let quiet = new == 0 && pending_o == 0 && pending_p == 0;
    Ok((
        quiet,
        format!(
            "orders NEW {new} FINISHED {finished} FAILED {failed}, outbox pending orders {pending_o} \
             payments {pending_p}, transactions {txs}, inbox {inbox}, sum(balances) {balances}"
        ),
    ))
}

/// Waits until no order is NEW and both outboxes are drained, and the counts then stay the
/// same for 2 s (copies still in flight are consumed before the checks read anything).
pub async fn wait_quiet(orders: &PgPool, payments: &PgPool, timeout: Duration) -> Quiescence {
    let start = Instant::now();
    let mut first_quiet: Option<(Instant, String)> = None;
    let mut last = String::new();
    while start.elapsed() < timeout {
        match fingerprint(orders, payments).await {
            Ok((true, fp)) => match &first_quiet {
                Some((at, seen)) if *seen == fp && at.elapsed() >= Duration::from_secs(2) => {
                    return Quiescence {
                        reached: true,
                        seconds: (*at - start).as_secs_f64(),
                        last: fp,
                    };
                }
                Some((_, seen)) if *seen == fp => {}
                _ => first_quiet = Some((Instant::now(), fp.clone())),
            },
            Ok((false, fp)) => {
                first_quiet = None;
                last = fp;
            }
            Err(e) => last = format!("database unreachable: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Quiescence {
        reached: false,
        seconds: start.elapsed().as_secs_f64(),
        last,
    }
}

/// An orders row.
#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: Uuid,
    user_id: Uuid,
    amount_minor: i64,
    description: String,
    status: String,
    failure_reason: Option<String>,
}

/// A transactions row.
#[derive(sqlx::FromRow)]
struct TxRow {
    order_id: Uuid,
    user_id: Uuid,
    amount_minor: Option<i64>,
    outcome: String,
}

/// An accounts row.
#[derive(sqlx::FromRow)]
struct AccountRow {
    user_id: Uuid,
    balance_minor: i64,
    opening_minor: i64,
}

/// Collects violations, keeping the first few details of each kind.
#[derive(Default)]
pub struct Findings {
    /// Every violation (the report keeps at most 50 per kind).
    pub all: Vec<Violation>,
}

impl Findings {
    /// Records one violation.
    pub fn add(&mut self, kind: &'static str, detail: String) {
        self.all.push(Violation { kind, detail });
    }
}

/// The outcome payments records for each FAILED reason of orders.
fn expected_outcome(reason: &str) -> Option<&'static str> {
    match reason {
        "INSUFFICIENT_FUNDS" => Some("INSUFFICIENT_FUNDS"),
        "ACCOUNT_NOT_FOUND" => Some("ACCOUNT_NOT_FOUND"),
        "PAYMENT_REJECTED" => Some("REJECTED"),
        _ => None,
    }
}

/// Reads both databases and checks every invariant against them and the client's records.
pub async fn check(
    orders_pool: &PgPool,
    payments_pool: &PgPool,
    records: &[UserRecord],
    findings: &mut Findings,
) -> anyhow::Result<Tally> {
    let orders: Vec<OrderRow> = sqlx::query_as(
        "SELECT order_id, user_id, amount_minor, description, status, failure_reason FROM orders",
    )
    .fetch_all(orders_pool)
    .await?;
    let txs: Vec<TxRow> =
        sqlx::query_as("SELECT order_id, user_id, amount_minor, outcome FROM transactions")
            .fetch_all(payments_pool)
            .await?;
    let accounts: Vec<AccountRow> =
        sqlx::query_as("SELECT user_id, balance_minor, opening_minor FROM accounts")
            .fetch_all(payments_pool)
            .await?;
    let topups: Vec<(Uuid, i64)> = sqlx::query_as("SELECT user_id, amount_minor FROM topups")
        .fetch_all(payments_pool)
        .await?;
    let sweeper_rerequested: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE payment_requested_at > created_at + interval '1 second'",
    )
    .fetch_one(orders_pool)
    .await
    .ok();

    let mut tally = Tally {
        orders: orders.len(),
        topups: topups.len(),
        sweeper_rerequested,
        ..Tally::default()
    };
    let f = findings;

    // --- per order, across both databases --------------------------------------------------
    let mut txs_by_order: HashMap<Uuid, Vec<&TxRow>> = HashMap::new();
    for t in &txs {
        txs_by_order.entry(t.order_id).or_default().push(t);
    }
    let orders_by_id: HashMap<Uuid, &OrderRow> = orders.iter().map(|o| (o.order_id, o)).collect();
    for (order_id, ts) in &txs_by_order {
        let debits = ts.iter().filter(|t| t.outcome == "FINISHED").count();
        if debits > 1 {
            f.add(
                "double_debit",
                format!("order {order_id}: {debits} FINISHED transactions"),
            );
        }
        if !orders_by_id.contains_key(order_id) {
            f.add(
                "orphan_transaction",
                format!("transaction for unknown order {order_id}"),
            );
        }
    }
    for o in &orders {
        let ts = txs_by_order
            .get(&o.order_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let debits: Vec<&&TxRow> = ts.iter().filter(|t| t.outcome == "FINISHED").collect();
        match o.status.as_str() {
            "NEW" => f.add(
                "order_left_new",
                format!("order {} of user {} still NEW", o.order_id, o.user_id),
            ),
            "FINISHED" => {
                tally.finished += 1;
                match debits.as_slice() {
                    [t] if t.amount_minor == Some(o.amount_minor) && t.user_id == o.user_id => {}
                    [t] => f.add(
                        "debit_mismatch",
                        format!(
                            "order {} (user {}, {} cents) FINISHED, debit user {} amount {:?}",
                            o.order_id, o.user_id, o.amount_minor, t.user_id, t.amount_minor
                        ),
                    ),
                    _ => f.add(
                        "finished_without_one_debit",
                        format!("order {} FINISHED with {} debits", o.order_id, debits.len()),
                    ),
                }
            }
            "FAILED" => {
                let reason = o.failure_reason.clone().unwrap_or_default();
                *tally.failed.entry(reason.clone()).or_default() += 1;
                if !debits.is_empty() {
                    f.add(
                        "failed_but_debited",
                        format!(
                            "order {} FAILED {reason} yet debited {:?}",
                            o.order_id, debits[0].amount_minor
                        ),
                    );
                }
                // Payments is the only source of these two reasons: it must have recorded them.
                let recorded = ts.first().map(|t| t.outcome.as_str());
                let expected = expected_outcome(&reason);
                let agrees = match (recorded, expected) {
                    (Some(r), Some(e)) => r == e,
                    (None, Some("REJECTED")) => true,
                    _ => false,
                };
                if !agrees {
                    f.add(
                        "failure_reason_mismatch",
                        format!(
                            "order {} FAILED {reason}, payments recorded {recorded:?}",
                            o.order_id
                        ),
                    );
                }
            }
            other => f.add(
                "unknown_status",
                format!("order {} status {other}", o.order_id),
            ),
        }
    }

    // --- money --------------------------------------------------------------------------------
    let mut topup_sum: HashMap<Uuid, i64> = HashMap::new();
    let mut topup_count: HashMap<(Uuid, i64), usize> = HashMap::new();
    for (user, amount) in &topups {
        *topup_sum.entry(*user).or_default() += amount;
        *topup_count.entry((*user, *amount)).or_default() += 1;
    }
    let mut debit_sum: HashMap<Uuid, i64> = HashMap::new();
    for t in txs.iter().filter(|t| t.outcome == "FINISHED") {
        *debit_sum.entry(t.user_id).or_default() += t.amount_minor.unwrap_or(0);
    }
    let accounts_by_user: HashMap<Uuid, &AccountRow> =
        accounts.iter().map(|a| (a.user_id, a)).collect();
    for a in &accounts {
        let expected = a.opening_minor + topup_sum.get(&a.user_id).copied().unwrap_or(0)
            - debit_sum.get(&a.user_id).copied().unwrap_or(0);
        if a.balance_minor != expected {
            f.add(
                "money_not_conserved_account",
                format!(
                    "user {}: balance {} != opening {} + top-ups {} - debits {}",
                    a.user_id,
                    a.balance_minor,
                    a.opening_minor,
                    topup_sum.get(&a.user_id).copied().unwrap_or(0),
                    debit_sum.get(&a.user_id).copied().unwrap_or(0)
                ),
            );
        }
    }
    for (user, debits) in &debit_sum {
        if !accounts_by_user.contains_key(user) {
            f.add(
                "debit_without_account",
                format!("user {user} debited {debits} without an account"),
            );
        }
    }
    let total_balance: i64 = accounts.iter().map(|a| a.balance_minor).sum();
    let total_expected: i64 = accounts.iter().map(|a| a.opening_minor).sum::<i64>()
        + topups.iter().map(|(_, a)| a).sum::<i64>()
        - debit_sum.values().sum::<i64>();
    if total_balance != total_expected {
        f.add(
            "money_not_conserved_total",
            format!(
                "sum(balances) {total_balance} != openings + top-ups - debits = {total_expected}"
            ),
        );
    }

    // --- what the client saw against the tables -----------------------------------------------
    let mut by_description: HashMap<&str, Vec<&OrderRow>> = HashMap::new();
    for o in &orders {
        by_description
            .entry(o.description.as_str())
            .or_default()
            .push(o);
    }
    let mut sent_descriptions: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut users_sent: HashMap<Uuid, &UserRecord> = HashMap::new();
    for rec in records {
        users_sent.insert(rec.user, rec);
        check_account(rec, &accounts_by_user, f);
        check_topups(rec, &topup_count, &mut tally, f);
        for sent in &rec.orders {
            sent_descriptions.insert(sent.description.as_str());
            let rows = by_description
                .get(sent.description.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if rows.len() > 1 {
                f.add(
                    "order_duplicated",
                    format!("{} rows for one POST ({})", rows.len(), sent.description),
                );
            }
            match (&sent.outcome, rows.first()) {
                (Outcome::Ok, None) => f.add(
                    "acknowledged_order_lost",
                    format!(
                        "POST /orders answered 201 ({:?}) but no row: {}",
                        sent.order_id, sent.description
                    ),
                ),
                (Outcome::Ok, Some(row)) if sent.order_id != Some(row.order_id) => f.add(
                    "order_id_mismatch",
                    format!("201 said {:?}, the row is {}", sent.order_id, row.order_id),
                ),
                (Outcome::Refused(s), Some(row)) => f.add(
                    "refused_order_created",
                    format!(
                        "POST /orders answered {s} but order {} exists",
                        row.order_id
                    ),
                ),
                (Outcome::Unknown(_), Some(_)) => tally.unknown_orders_applied += 1,
                (Outcome::Unknown(_), None) => tally.unknown_orders_absent += 1,
                _ => {}
            }
            if let Some(row) = rows.first()
                && row.failure_reason.as_deref() == Some("ACCOUNT_NOT_FOUND")
                && matches!(rec.account, Some((_, Outcome::Ok)))
            {
                // The account was acknowledged before the user's first order was sent.
                f.add(
                    "account_not_found_despite_account",
                    format!(
                        "order {} of user {} FAILED ACCOUNT_NOT_FOUND",
                        row.order_id, rec.user
                    ),
                );
            }
            if let Some(row) = rows.first()
                && (row.user_id != rec.user || row.amount_minor != sent.amount)
            {
                f.add(
                    "order_altered",
                    format!(
                        "order {}: user {} amount {}, sent user {} amount {}",
                        row.order_id, row.user_id, row.amount_minor, rec.user, sent.amount
                    ),
                );
            }
        }
        if let Some(checked) =
            check_creation_order(rec, &by_description, &accounts_by_user, &topup_count, f)
        {
            tally.users_order_checked += usize::from(checked);
        }
    }
    for o in orders
        .iter()
        .filter(|o| !sent_descriptions.contains(o.description.as_str()))
        .take(20)
    {
        f.add(
            "phantom_order",
            format!("order {} ({}) was never sent", o.order_id, o.description),
        );
    }
    for a in accounts
        .iter()
        .filter(|a| !users_sent.contains_key(&a.user_id))
        .take(20)
    {
        f.add(
            "phantom_account",
            format!("account {} the harness never opened", a.user_id),
        );
    }
    Ok(tally)
}

/// The account row against `POST /accounts`.
fn check_account(rec: &UserRecord, accounts: &HashMap<Uuid, &AccountRow>, f: &mut Findings) {
    let row = accounts.get(&rec.user);
    match (&rec.account, row) {
        (None, Some(_)) => f.add(
            "phantom_account",
            format!("user {} never opened an account", rec.user),
        ),
        (Some((_, Outcome::Ok)), None) => {
            f.add(
                "acknowledged_account_lost",
                format!("user {}: 201 but no account", rec.user),
            );
        }
        (Some((_, Outcome::Refused(s))), Some(_)) => {
            f.add(
                "refused_account_created",
                format!("user {}: {s} but the account exists", rec.user),
            );
        }
        (Some((opening, _)), Some(row)) if row.opening_minor != *opening => f.add(
            "account_altered",
            format!(
                "user {}: opened with {opening}, row says {}",
                rec.user, row.opening_minor
            ),
        ),
        _ => {}
    }
}

/// Each top-up's row (its amount is unique per user) against its answer.
fn check_topups(
    rec: &UserRecord,
    counts: &HashMap<(Uuid, i64), usize>,
    tally: &mut Tally,
    f: &mut Findings,
) {
    for (amount, outcome) in &rec.topups {
        let n = counts.get(&(rec.user, *amount)).copied().unwrap_or(0);
        if n > 1 {
            f.add(
                "topup_applied_twice",
                format!("user {} top-up {amount}: {n} rows", rec.user),
            );
        }
        match outcome {
            Outcome::Ok => {
                tally.topups_acked += 1;
                if n == 0 {
                    f.add(
                        "acknowledged_topup_lost",
                        format!("user {} top-up {amount}: 200 but no row", rec.user),
                    );
                }
            }
            Outcome::Refused(s) if n > 0 => {
                f.add(
                    "refused_topup_applied",
                    format!("user {} top-up {amount}: {s} but applied", rec.user),
                );
            }
            Outcome::Refused(_) => {}
            Outcome::Unknown(_) if n > 0 => tally.unknown_topups_applied += 1,
            Outcome::Unknown(_) => tally.unknown_topups_absent += 1,
        }
    }
    let sent: std::collections::HashSet<i64> = rec.topups.iter().map(|(a, _)| *a).collect();
    for ((user, amount), _) in counts.iter().filter(|((u, _), _)| *u == rec.user) {
        if !sent.contains(amount) {
            f.add(
                "phantom_topup",
                format!("user {user}: top-up {amount} never sent"),
            );
        }
    }
}

/// Creation order where balances decide it: for a sequential user whose every request was
/// answered and whose top-ups all came first, each order in turn is paid exactly when the
/// balance left covers it (a dead-lettered order, FAILED PAYMENT_REJECTED, is skipped: SPEC
/// allows it and it moves no money). No-account users: every order fails ACCOUNT_NOT_FOUND.
/// Returns whether the user was checked.
fn check_creation_order(
    rec: &UserRecord,
    by_description: &HashMap<&str, Vec<&OrderRow>>,
    accounts: &HashMap<Uuid, &AccountRow>,
    topups: &HashMap<(Uuid, i64), usize>,
    f: &mut Findings,
) -> Option<bool> {
    let answered = |o: &Outcome| !matches!(o, Outcome::Unknown(_));
    if rec.kind == UserKind::Concurrent
        || !rec.topups_first
        || !rec.orders.iter().all(|o| answered(&o.outcome))
        || !rec.topups.iter().all(|(_, o)| answered(o))
        || rec.account.as_ref().is_some_and(|(_, o)| *o != Outcome::Ok)
    {
        return Some(false);
    }
    let rows: Vec<&OrderRow> = rec
        .orders
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| by_description.get(o.description.as_str())?.first().copied())
        .collect();
    if rec.kind == UserKind::NoAccount {
        for r in rows {
            let reason = r.failure_reason.as_deref().unwrap_or("");
            if r.status != "FAILED"
                || !(reason == "ACCOUNT_NOT_FOUND" || reason == "PAYMENT_REJECTED")
            {
                f.add(
                    "no_account_order_outcome",
                    format!(
                        "user {} (no account): order {} {} {reason}",
                        rec.user, r.order_id, r.status
                    ),
                );
            }
        }
        return Some(true);
    }
    let account = accounts.get(&rec.user)?;
    let mut balance = account.opening_minor
        + rec
            .topups
            .iter()
            .filter(|(a, _)| topups.contains_key(&(rec.user, *a)))
            .map(|(a, _)| a)
            .sum::<i64>();
    let mut trail = Vec::new();
    for r in rows {
        let reason = r.failure_reason.as_deref().unwrap_or("");
        trail.push(format!(
            "{}:{}{}",
            r.amount_minor,
            r.status,
            if reason.is_empty() {
                String::new()
            } else {
                format!("/{reason}")
            }
        ));
        if reason == "PAYMENT_REJECTED" {
            continue;
        }
        let expected = if balance >= r.amount_minor {
            "FINISHED"
        } else {
            "FAILED"
        };
        let ok = match expected {
            "FINISHED" => r.status == "FINISHED",
            _ => r.status == "FAILED" && reason == "INSUFFICIENT_FUNDS",
        };
        if !ok {
            f.add(
                "creation_order_violated",
                format!(
                    "user {}: order {} of {} with {balance} left should be {expected}; in order: {}",
                    rec.user,
                    r.order_id,
                    r.amount_minor,
                    trail.join(" ")
                ),
            );
            return Some(true);
        }
        if expected == "FINISHED" {
            balance -= r.amount_minor;
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SentOrder;

    fn row(user: Uuid, n: usize, amount: i64, status: &str, reason: Option<&str>) -> OrderRow {
        OrderRow {
            order_id: Uuid::new_v4(),
            user_id: user,
            amount_minor: amount,
            description: format!("d{n}"),
            status: status.into(),
            failure_reason: reason.map(Into::into),
        }
    }

    /// A sequential user with 1000 opening and orders of 600, 600, 300 in that order.
    fn kinds_found(statuses: [(&str, Option<&str>); 3]) -> Vec<&'static str> {
        let user = Uuid::new_v4();
        let amounts = [600, 600, 300];
        let rows: Vec<OrderRow> = statuses
            .iter()
            .enumerate()
            .map(|(n, (s, r))| row(user, n, amounts[n], s, *r))
            .collect();
        let rec = UserRecord {
            user,
            kind: UserKind::Sequential,
            account: Some((1000, Outcome::Ok)),
            topups: Vec::new(),
            orders: (0..3)
                .map(|n| SentOrder {
                    amount: amounts[n],
                    description: format!("d{n}"),
                    outcome: Outcome::Ok,
                    order_id: Some(rows[n].order_id),
                })
                .collect(),
            topups_first: true,
        };
        let account = AccountRow {
            user_id: user,
            balance_minor: 0,
            opening_minor: 1000,
        };
        let by_description: HashMap<&str, Vec<&OrderRow>> = rows
            .iter()
            .map(|r| (r.description.as_str(), vec![r]))
            .collect();
        let accounts = HashMap::from([(user, &account)]);
        let mut f = Findings::default();
        check_creation_order(&rec, &by_description, &accounts, &HashMap::new(), &mut f);
        f.all.into_iter().map(|v| v.kind).collect()
    }

    #[test]
    fn the_greedy_outcome_of_creation_order_passes() {
        let fail = ("FAILED", Some("INSUFFICIENT_FUNDS"));
        assert!(kinds_found([("FINISHED", None), fail, ("FINISHED", None)]).is_empty());
        // A dead-lettered order is skipped: the next one may take its money.
        let rejected = ("FAILED", Some("PAYMENT_REJECTED"));
        assert!(kinds_found([rejected, ("FINISHED", None), ("FINISHED", None)]).is_empty());
    }

    #[test]
    fn a_later_order_paid_before_an_earlier_one_is_a_violation() {
        let fail = ("FAILED", Some("INSUFFICIENT_FUNDS"));
        assert_eq!(
            kinds_found([fail, ("FINISHED", None), ("FINISHED", None)]),
            ["creation_order_violated"]
        );
    }
}
