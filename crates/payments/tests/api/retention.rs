//! Retention of the messaging tables: old published outbox rows and old inbox rows go, an
//! unpublished row and anything younger than its age stay.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bus::retention::{Deleted, Retention};
use uuid::Uuid;

use crate::helpers::spawn_app;

const DAY: u64 = 86_400;

/// A UUIDv7 made `days` ago, as the outbox would have made it then.
fn id_from(days: u64) -> Uuid {
    let at = SystemTime::now() - Duration::from_secs(days * DAY);
    let secs = at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, 0))
}

#[tokio::test]
async fn old_published_and_old_inbox_rows_are_deleted_and_nothing_else() {
    let mut app = spawn_app().await;
    // Its relay would publish the pending row: the service is stopped while the rows are made
    // and pruned (the database stays).
    app.stop_service().await;
    let outbox = [
        ("old published", id_from(10), true),
        ("old pending", id_from(10), false),
        ("young published", id_from(1), true),
    ];
    for (what, id, published) in outbox {
        sqlx::query(
            "INSERT INTO outbox (id, topic, message_key, message_type, payload, published_at) \
             VALUES ($1, 'retention-test', $2, 'PaymentResult', '{}', \
                     CASE WHEN $3 THEN now() END)",
        )
        .bind(id)
        .bind(what)
        .bind(published)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let (old, young) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, days) in [(old, 15), (young, 13)] {
        sqlx::query(
            "INSERT INTO inbox (message_id, received_at) \
             VALUES ($1, now() - make_interval(days => $2))",
        )
        .bind(id)
        .bind(days)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let retention = Retention::new(
        app.pool.clone(),
        Duration::from_secs(7 * DAY),
        Some(Duration::from_secs(14 * DAY)),
    );
    let deleted = retention.run_once().await.unwrap();

    assert_eq!(
        deleted,
        Deleted {
            outbox: 1,
            inbox: 1
        }
    );
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT message_key FROM outbox WHERE topic = 'retention-test' ORDER BY message_key",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, ["old pending", "young published"]);
    let inbox: Vec<Uuid> = sqlx::query_scalar("SELECT message_id FROM inbox")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(inbox, [young]);
    assert_eq!(retention.run_once().await.unwrap(), Deleted::default());
    app.restart().await;
    app.stop().await;
}
