//! The round's result: a summary table on stdout and the same as JSON (`--report`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::{Quiescence, Tally, Violation};
use crate::cluster::Exit;
use crate::inject::FaultRecord;
use crate::workload::{Outcome, UserKind, UserRecord};

/// Violation details kept per kind in the JSON (the count is always complete).
const DETAILS_PER_KIND: usize = 50;

/// What the client sent and saw, counted.
#[derive(Debug, Default, Serialize)]
pub struct Sent {
    /// Users by kind.
    pub users: BTreeMap<String, usize>,
    /// `POST /accounts` sent.
    pub accounts: usize,
    /// ... answered 201.
    pub accounts_acked: usize,
    /// ... answer lost.
    pub accounts_unknown: usize,
    /// `POST /orders` sent.
    pub orders: usize,
    /// ... answered 201.
    pub orders_acked: usize,
    /// ... answered 4xx.
    pub orders_refused: usize,
    /// ... answer lost (5xx, timeout, connection).
    pub orders_unknown: usize,
    /// `POST /accounts/topup` sent.
    pub topups: usize,
    /// ... answered 200.
    pub topups_acked: usize,
    /// ... answered 4xx (no account: expected).
    pub topups_refused: usize,
    /// ... answer lost.
    pub topups_unknown: usize,
    /// Unknown answers by cause (`HTTP 502`, `timeout`, ...).
    pub unknown_causes: BTreeMap<String, usize>,
}

impl Sent {
    /// Counts `records`.
    pub fn from(records: &[UserRecord]) -> Sent {
        let mut s = Sent::default();
        let cause = |o: &Outcome, s: &mut BTreeMap<String, usize>| {
            if let Outcome::Unknown(c) = o {
                *s.entry(c.clone()).or_default() += 1;
            }
        };
        for r in records {
            let kind = match r.kind {
                UserKind::Sequential => "sequential",
                UserKind::Concurrent => "concurrent",
                UserKind::NoAccount => "no_account",
            };
            *s.users.entry(kind.into()).or_default() += 1;
            if let Some((_, o)) = &r.account {
                s.accounts += 1;
                match o {
                    Outcome::Ok => s.accounts_acked += 1,
                    Outcome::Unknown(_) => s.accounts_unknown += 1,
                    Outcome::Refused(_) => {}
                }
                cause(o, &mut s.unknown_causes);
            }
            for o in &r.orders {
                s.orders += 1;
                match o.outcome {
                    Outcome::Ok => s.orders_acked += 1,
                    Outcome::Refused(_) => s.orders_refused += 1,
                    Outcome::Unknown(_) => s.orders_unknown += 1,
                }
                cause(&o.outcome, &mut s.unknown_causes);
            }
            for (_, o) in &r.topups {
                s.topups += 1;
                match o {
                    Outcome::Ok => s.topups_acked += 1,
                    Outcome::Refused(_) => s.topups_refused += 1,
                    Outcome::Unknown(_) => s.topups_unknown += 1,
                }
                cause(o, &mut s.unknown_causes);
            }
        }
        s
    }
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `kafka` or `rabbitmq`.
    pub broker: String,
    /// Reproduces the plan and the fault schedule.
    pub seed: u64,
    /// The run's id (database and topic names).
    pub run_id: String,
    /// Orders asked for.
    pub orders_requested: u64,
    /// Faults asked for.
    pub faults_requested: usize,
    /// Driver lanes.
    pub concurrency: usize,
    /// What was sent.
    pub sent: Sent,
    /// What the tables hold.
    pub tally: Tally,
    /// Every fault in order.
    pub faults: Vec<FaultRecord>,
    /// Injected faults by kind.
    pub faults_by_kind: BTreeMap<String, usize>,
    /// Faults that could not be injected.
    pub faults_not_injected: usize,
    /// PostgreSQL primary kills: seconds until another node was the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_s: Option<Spread>,
    /// PostgreSQL primary kills: seconds until a write committed again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_back_s: Option<Spread>,
    /// Processes that ended on their own.
    pub unexpected_exits: Vec<ExitReport>,
    /// Seconds from the first order to the last fault's end.
    pub faults_window_s: f64,
    /// Seconds the stream took.
    pub stream_s: f64,
    /// The wait for quiescence after the stream and the last fault.
    pub quiescence: Quiescence,
    /// Seconds from the end of the last fault until quiescence.
    pub quiet_after_last_fault_s: f64,
    /// Violations by kind (complete counts).
    pub violations_by_kind: BTreeMap<String, usize>,
    /// The first violations of each kind.
    pub violations: Vec<Violation>,
    /// Seconds the whole round took (start-up to checks).
    pub total_s: f64,
}

/// Median and maximum of a set of durations, with how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// How many.
    pub n: usize,
    /// The median (the lower middle one of an even count).
    pub p50: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            n: v.len(),
            p50: v[(v.len() - 1) / 2],
            max: v[v.len() - 1],
        })
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} s, max {:.1} s over {}",
            self.p50, self.max, self.n
        )
    }
}

/// A process exit, for JSON.
#[derive(Debug, Serialize)]
pub struct ExitReport {
    /// Which process.
    pub name: String,
    /// Exit status.
    pub status: String,
    /// End of its log.
    pub log_tail: String,
}

impl From<&Exit> for ExitReport {
    fn from(e: &Exit) -> Self {
        ExitReport {
            name: e.name.clone(),
            status: e.status.clone(),
            log_tail: e.log_tail.clone(),
        }
    }
}

/// Counts by kind and the first details of each.
pub fn group(violations: Vec<Violation>) -> (BTreeMap<String, usize>, Vec<Violation>) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = Vec::new();
    for v in violations {
        let n = counts.entry(v.kind.to_owned()).or_default();
        *n += 1;
        if *n <= DETAILS_PER_KIND {
            kept.push(v);
        }
    }
    (counts, kept)
}

/// Injected faults by kind.
pub fn faults_by_kind(faults: &[FaultRecord]) -> BTreeMap<String, usize> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.injected) {
        *by.entry(f.kind.label().to_owned()).or_default() += 1;
    }
    by
}

impl Report {
    /// True when nothing was violated.
    pub fn clean(&self) -> bool {
        self.violations_by_kind.is_empty()
    }

    /// The summary table.
    pub fn summary(&self) -> String {
        let s = &self.sent;
        let t = &self.tally;
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        line(format!(
            "fault round: broker {}, seed {}, run {}, {} lanes",
            self.broker, self.seed, self.run_id, self.concurrency
        ));
        line(format!("{:<26} {}", "item", "value"));
        line(format!("{:<26} {}", "users", fmt_map(&s.users)));
        line(format!(
            "{:<26} {} sent: {} acked, {} unknown",
            "accounts", s.accounts, s.accounts_acked, s.accounts_unknown
        ));
        line(format!(
            "{:<26} {} sent: {} acked, {} refused, {} unknown ({} applied)",
            "orders",
            s.orders,
            s.orders_acked,
            s.orders_refused,
            s.orders_unknown,
            t.unknown_orders_applied
        ));
        line(format!(
            "{:<26} {} rows: {} FINISHED, FAILED {}",
            "orders settled",
            t.orders,
            t.finished,
            fmt_map(&t.failed)
        ));
        line(format!(
            "{:<26} {} sent: {} acked, {} refused, {} unknown ({} applied); {} rows",
            "top-ups",
            s.topups,
            s.topups_acked,
            s.topups_refused,
            s.topups_unknown,
            t.unknown_topups_applied,
            t.topups
        ));
        line(format!(
            "{:<26} {}",
            "unknown answers by cause",
            fmt_map(&s.unknown_causes)
        ));
        line(format!(
            "{:<26} {} users",
            "creation order checked", t.users_order_checked
        ));
        if let Some(n) = t.sweeper_rerequested {
            line(format!("{:<26} {n}", "re-requested by sweeper"));
        }
        let injected: usize = self.faults_by_kind.values().sum();
        line(format!(
            "{:<26} {injected} injected of {} asked ({} not injected)",
            "faults", self.faults_requested, self.faults_not_injected
        ));
        for (kind, n) in &self.faults_by_kind {
            line(format!("  {kind:<24} {n}"));
        }
        if let Some(spread) = self.promotion_s {
            line(format!("{:<26} {spread}", "primary promoted after"));
        }
        if let Some(spread) = self.writes_back_s {
            line(format!("{:<26} {spread}", "writes back after"));
        }
        line(format!(
            "{:<26} {}",
            "unexpected process exits",
            self.unexpected_exits.len()
        ));
        line(format!(
            "{:<26} stream {:.1} s, faults window {:.1} s",
            "time", self.stream_s, self.faults_window_s
        ));
        line(format!(
            "{:<26} {} in {:.1} s",
            "quiescence",
            if self.quiescence.reached {
                "reached"
            } else {
                "NOT reached"
            },
            self.quiescence.seconds
        ));
        let total: usize = self.violations_by_kind.values().sum();
        line(format!("{:<26} {total}", "violations"));
        for (kind, n) in &self.violations_by_kind {
            line(format!("  {kind:<24} {n}"));
        }
        for v in self.violations.iter().take(10) {
            line(format!("  e.g. {}: {}", v.kind, v.detail));
        }
        line(format!("{:<26} {:.1} s", "round total", self.total_s));
        out
    }
}

fn fmt_map(m: &BTreeMap<String, usize>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn spread_takes_the_lower_middle_and_the_largest() {
        assert_eq!(Spread::of([]), None);
        assert_eq!(
            Spread::of([4.0, 1.0, 3.0, 2.0]),
            Some(Spread {
                n: 4,
                p50: 2.0,
                max: 4.0
            })
        );
        assert_eq!(
            Spread::of([9.5, 7.0, 8.0]),
            Some(Spread {
                n: 3,
                p50: 8.0,
                max: 9.5
            })
        );
    }
}
