//! The PostgreSQL connection pool every service uses.
//!
//! Start-up waits for the database (it may still be booting next to us) up to a deadline, then
//! fails with the cause instead of serving requests that can only answer 503. A `DATABASE_URL`
//! listing several hosts with `target_session_attrs=read-write` (libpq's form, see [`url`]) is
//! followed across failovers ([`failover`]).

pub mod failover;
pub mod url;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use self::failover::Failover;
use self::url::DbUrl;

/// How long start-up keeps retrying the first connection.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// Opens a pool of at most `max_connections`, retrying while the server is not reachable yet.
/// With a host list, the pool starts on the first writable host and follows the primary.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let parsed = DbUrl::parse(url)?;
    let plain = parsed.is_plain();
    let watch = parsed.hosts().len() > 1;
    let failover = Failover::new(parsed);
    let mut options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5));
    if !plain {
        options = failover.guard(options);
    }
    let started = tokio::time::Instant::now();
    loop {
        let attempt = async {
            let index = if plain { 0 } else { failover.find().await? };
            let pool = options.clone().connect_with(failover.host(index)).await?;
            Ok::<_, sqlx::Error>((pool, index))
        };
        match attempt.await {
            Ok((pool, index)) => {
                if watch {
                    tokio::spawn(std::sync::Arc::clone(&failover).watch(pool.clone(), index));
                }
                return Ok(pool);
            }
            Err(e) if started.elapsed() < CONNECT_DEADLINE && is_transient(&e) => {
                tracing::warn!(error = %e, "database not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One connection to the first writable host of `url` (a host list is tried in order): for
/// administration — creating databases — where a pool is too much.
pub async fn connect_one(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::Connection;
    let failover = Failover::new(DbUrl::parse(url)?);
    let index = failover.find().await?;
    sqlx::PgConnection::connect_with(&failover.host(index)).await
}

/// Errors worth retrying at start-up: the server is down or still starting.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03: the database system is starting up.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// True when `err` is a unique-constraint violation (SQLSTATE 23505), e.g. a duplicate account.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// Runs `round` — one `DELETE` of at most `batch` rows — until a round deletes fewer, and
/// returns the total: cleanup in short transactions holding short locks.
pub async fn delete_in_batches<F, Fut>(batch: i64, mut round: F) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<sqlx::postgres::PgQueryResult, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = round().await?.rows_affected();
        total += n;
        if n < u64::try_from(batch).unwrap_or(0) {
            return Ok(total);
        }
    }
}
