//! Following the primary of a replicated PostgreSQL cluster with one sqlx pool.
//!
//! sqlx connects a pool to one server, so the multi-host URL is served here: start-up picks
//! the first host that accepts writes; a watcher checks that server twice a second on a
//! connection of its own and, once it is gone or read-only (a failover demoted it), finds the
//! new primary and points the pool's future connections at it
//! ([`sqlx::Pool::set_connect_options`]). Connections opened before the switch are dropped when
//! next acquired instead of being reused, and every new connection is checked to accept writes,
//! so a write never runs on a standby: in the moment between a failover and the switch,
//! requests fail as unavailable (503 with `Retry-After`) and their clients retry.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::url::{DbUrl, label};

/// How often the watcher asks the current server whether it still accepts writes.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// Bound on one probe (connect or query), so a partitioned host costs at most this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// True when the session cannot write: a standby in recovery, or a read-only default.
const READ_ONLY_SQL: &str =
    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'";

/// The hosts of one URL and when the pool last moved to another of them.
#[derive(Debug)]
pub struct Failover {
    url: DbUrl,
    switched_at: Mutex<Option<Instant>>,
}

impl Failover {
    /// Serves `url` (any form [`DbUrl`] reads).
    pub fn new(url: DbUrl) -> Arc<Failover> {
        Arc::new(Failover {
            url,
            switched_at: Mutex::new(None),
        })
    }

    /// `options` with the checks a writable session needs: each new connection must accept
    /// writes, and a connection opened before the last switch is closed instead of reused.
    pub fn guard(self: &Arc<Self>, options: PgPoolOptions) -> PgPoolOptions {
        let options = if self.url.read_write() {
            options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    if read_only(conn).await? {
                        return Err(unavailable(
                            "connected to a read-only server (a standby); the primary moved",
                        ));
                    }
                    Ok(())
                })
            })
        } else {
            options
        };
        let me = Arc::clone(self);
        options.before_acquire(move |_conn, meta| {
            let stale = me.opened_before_switch(meta.age);
            Box::pin(async move { Ok(!stale) })
        })
    }

    /// The index of the first host that answers and, when the URL wants one, accepts writes.
    pub async fn find(&self) -> Result<usize, sqlx::Error> {
        let mut last = None;
        for (i, host) in self.url.hosts().iter().enumerate() {
            match probe(host).await {
                Ok(false) => return Ok(i),
                Ok(true) if !self.url.read_write() => return Ok(i),
                Ok(true) => last = Some(format!("{} is read-only", label(host))),
                Err(e) => last = Some(format!("{}: {e}", label(host))),
            }
        }
        Err(unavailable(&format!(
            "no {}server among {} host(s) ({})",
            if self.url.read_write() {
                "writable "
            } else {
                ""
            },
            self.url.hosts().len(),
            last.unwrap_or_default()
        )))
    }

    /// The option set of host `index`.
    pub fn host(&self, index: usize) -> PgConnectOptions {
        self.url.hosts()[index].clone()
    }

    /// Follows the primary until the pool is closed (a task per pool, only for a host list).
    pub async fn watch(self: Arc<Self>, pool: PgPool, mut current: usize) {
        let mut probe_conn: Option<PgConnection> = None;
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported = false;
        while !pool.is_closed() {
            tick.tick().await;
            if self.still_serving(&mut probe_conn, current).await {
                continue;
            }
            probe_conn = None;
            match self.find().await {
                Ok(next) if next != current => {
                    tracing::warn!(
                        from = %label(&self.url.hosts()[current]),
                        to = %label(&self.url.hosts()[next]),
                        "database primary moved: new connections go to the new one"
                    );
                    pool.set_connect_options(self.host(next));
                    *self.switched_at.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now());
                    current = next;
                    reported = false;
                }
                Ok(_) => reported = false,
                Err(e) => {
                    if !reported {
                        tracing::warn!(error = %e, "database primary lost; looking for the new one");
                        reported = true;
                    }
                }
            }
        }
    }

    /// Whether host `current` still answers (and accepts writes when that is wanted), on the
    /// watcher's own connection.
    async fn still_serving(&self, conn: &mut Option<PgConnection>, current: usize) -> bool {
        if conn.is_none() {
            let host = &self.url.hosts()[current];
            match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect_with(host)).await {
                Ok(Ok(c)) => *conn = Some(c),
                _ => return false,
            }
        }
        let Some(c) = conn.as_mut() else {
            return false;
        };
        match tokio::time::timeout(PROBE_TIMEOUT, read_only(c)).await {
            Ok(Ok(ro)) => !(ro && self.url.read_write()),
            _ => false,
        }
    }

    /// Whether a connection of age `age` was opened before the pool last switched hosts.
    fn opened_before_switch(&self, age: Duration) -> bool {
        let switched = *self.switched_at.lock().unwrap_or_else(|p| p.into_inner());
        switched.is_some_and(|at| age > at.elapsed())
    }
}

/// Whether the session on `conn` cannot write.
async fn read_only(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(READ_ONLY_SQL).fetch_one(conn).await
}

/// Connects to `host` on a connection of its own and asks whether it is read-only.
async fn probe(host: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let attempt = async {
        let mut conn = PgConnection::connect_with(host).await?;
        let ro = read_only(&mut conn).await;
        let _ = conn.close().await;
        ro
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| unavailable("no answer in time"))?
}

/// An error the service answers with 503 (see `ApiError`'s mapping of I/O errors).
fn unavailable(text: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        text.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_opened_before_a_switch_are_stale() {
        let failover = Failover::new(DbUrl::parse("postgres://a:1,b:2/db").unwrap());
        assert!(!failover.opened_before_switch(Duration::from_secs(3600)));
        *failover.switched_at.lock().unwrap() = Some(Instant::now() - Duration::from_secs(10));
        assert!(failover.opened_before_switch(Duration::from_secs(11)));
        assert!(!failover.opened_before_switch(Duration::from_secs(9)));
    }
}
