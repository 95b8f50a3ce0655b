//! Retention of the messaging tables: published outbox rows and inbox rows are deleted once
//! older than their configured age, in small batches, so the tables stop growing.
//!
//! Invariants: an unpublished outbox row is never deleted (it is still to be sent); an inbox
//! row is kept at least as long as the broker may still redeliver its message (the settings
//! refuse an inbox age below the broker's retention). Instances share the work: rows are taken
//! with `SKIP LOCKED`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use platform::db::delete_in_batches;
use sqlx::PgPool;
use uuid::Uuid;

/// Rows one delete statement removes at most: short transactions, short locks.
const BATCH: i64 = 1_000;

/// What a service keeps and for how long.
#[derive(Debug, Clone)]
pub struct Retention {
    pool: PgPool,
    /// Published outbox rows older than this go.
    pub outbox: Duration,
    /// Inbox rows older than this go; `None` when the service has no inbox.
    pub inbox: Option<Duration>,
}

/// How many rows one round deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Published outbox rows.
    pub outbox: u64,
    /// Inbox rows.
    pub inbox: u64,
}

impl Retention {
    /// Retention of `pool`'s outbox (and inbox, when `inbox` is set).
    pub fn new(pool: PgPool, outbox: Duration, inbox: Option<Duration>) -> Self {
        Retention {
            pool,
            outbox,
            inbox,
        }
    }

    /// Deletes everything past its age, batch after batch.
    pub async fn run_once(&self) -> Result<Deleted, sqlx::Error> {
        // Outbox ids are UUIDv7, ordered by creation time: the primary key finds old rows
        // without another index on the hot insert path.
        let cutoff = v7_floor(
            SystemTime::now()
                .checked_sub(self.outbox)
                .unwrap_or(UNIX_EPOCH),
        );
        let outbox = delete_in_batches(BATCH, || {
            sqlx::query(
                "DELETE FROM outbox WHERE id IN ( \
                     SELECT id FROM outbox WHERE id < $1 AND published_at IS NOT NULL \
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(cutoff)
            .bind(BATCH)
            .execute(&self.pool)
        })
        .await?;
        let inbox = match self.inbox {
            None => 0,
            Some(age) => {
                delete_in_batches(BATCH, || {
                    sqlx::query(
                        "DELETE FROM inbox WHERE message_id IN ( \
                             SELECT message_id FROM inbox \
                             WHERE received_at < now() - make_interval(secs => $1) \
                             ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    )
                    .bind(age.as_secs_f64())
                    .bind(BATCH)
                    .execute(&self.pool)
                })
                .await?
            }
        };
        Ok(Deleted { outbox, inbox })
    }
}

/// The smallest UUIDv7 of the millisecond `at`: every v7 id made before `at` is below it.
pub fn v7_floor(at: SystemTime) -> Uuid {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_below_every_later_id_and_above_every_earlier_one() {
        let now = SystemTime::now();
        let floor = v7_floor(now);
        assert_eq!(floor.get_version_num(), 7);
        std::thread::sleep(Duration::from_millis(2));
        assert!(Uuid::now_v7() > floor);
        assert!(v7_floor(now - Duration::from_millis(1)) < floor);
        let earlier = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            now.duration_since(UNIX_EPOCH).unwrap().as_secs() - 1,
            0,
        ));
        assert!(earlier < floor);
    }
}
