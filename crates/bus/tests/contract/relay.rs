//! The outbox relay and the inbox against real PostgreSQL and the broker under test: rows are
//! published once, in `seq` order per key, whatever the number of relays and their faults.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bus::outbox::{OutboxRelay, RelaySettings};
use bus::{
    BusError, Consumer, Delivery, HandleError, Handler, Joined, Message, MessageBus, Subscription,
    TopicSpec,
};
use testkit::{TestDb, eventually};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{Broker, WAIT, declared, receive_ids};

/// The outbox table shape is the one the services migrate; use the payments schema, which has
/// both the outbox and the inbox.
async fn database() -> (TestDb, sqlx::PgPool) {
    let db = TestDb::create().await;
    let pool = db.pool().await;
    sqlx::migrate!("../../migrations/payments")
        .run(&pool)
        .await
        .unwrap();
    (db, pool)
}

async fn enqueue_n(pool: &sqlx::PgPool, topic: &str, n: usize) -> Vec<Uuid> {
    let mut tx = pool.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = bus::outbox::enqueue(
            &mut tx,
            topic,
            "user-1",
            "Test",
            &serde_json::json!({ "i": i }),
        )
        .await
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    ids
}

async fn pending(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Rows are published in insertion order with their row id as message id, marked published,
/// and a second round publishes nothing.
pub async fn relay_publishes_pending_rows_once_in_order(broker: Broker) {
    let (db, pool) = database().await;
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "outbox").await;
    let ids = enqueue_n(&pool, &topic, 25).await;

    let relay = OutboxRelay::new(
        pool.clone(),
        bus.clone(),
        RelaySettings {
            batch_size: 10,
            ..Default::default()
        },
    );
    let mut total = 0;
    loop {
        let n = relay.relay_once().await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 25);
    assert_eq!(pending(&pool).await, 0);

    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    assert_eq!(
        receive_ids(&mut sub, 25).await,
        ids,
        "same ids, same order (one key)"
    );
    sub.close().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// The running relay wakes when the writer wakes it: a row committed while it idles is
/// published well before the (here: one minute) polling interval.
pub async fn running_relay_wakes_when_woken(broker: Broker) {
    let (db, pool) = database().await;
    let bus = broker.bus();
    let (topic, _) = declared(bus.as_ref(), "wakeup").await;
    let stop = CancellationToken::new();
    let wakeup = bus::outbox::Wakeup::default();
    let relay = OutboxRelay::new(
        pool.clone(),
        bus.clone(),
        RelaySettings {
            poll_interval: Duration::from_secs(60),
            ..Default::default()
        },
    )
    .with_wakeup(wakeup.clone());
    enqueue_n(&pool, &topic, 1).await;
    let task = tokio::spawn(relay.run(stop.clone()));
    // Its first round publishes that row; then it waits for a minute or a wake-up.
    eventually("the first round", WAIT, || async {
        (pending(&pool).await == 0).then_some(())
    })
    .await;

    enqueue_n(&pool, &topic, 1).await;
    wakeup.wake();
    eventually(
        "row published on the wake-up",
        Duration::from_secs(20),
        || async { (pending(&pool).await == 0).then_some(()) },
    )
    .await;
    stop.cancel();
    task.await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// Two relays over one table (two service instances) publish every row exactly once between
/// them: a key is owned by one relay at a time.
pub async fn concurrent_relays_never_publish_a_row_twice(broker: Broker) {
    let (db, pool) = database().await;
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "tworelays").await;
    let ids = enqueue_n(&pool, &topic, 200).await;

    let settings = RelaySettings {
        batch_size: 20,
        ..Default::default()
    };
    let a = OutboxRelay::new(pool.clone(), bus.clone(), settings.clone());
    let b = OutboxRelay::new(pool.clone(), bus.clone(), settings);
    let drain = |r: OutboxRelay| async move {
        let mut n = 0;
        loop {
            match r.relay_once().await.unwrap() {
                0 => return n,
                k => n += k,
            }
        }
    };
    let (na, nb) = tokio::join!(drain(a), drain(b));
    assert_eq!(na + nb, 200);

    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    let got = receive_ids(&mut sub, 200).await;
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), 200, "no duplicates");
    assert_eq!(unique, ids.iter().collect::<HashSet<_>>());
    sub.close().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// What [`Faulty`] does to a publish before (or instead of) passing it to the real broker.
enum Fault {
    /// Every publish waits this long first (a slow network).
    Delay(Duration),
    /// The first publish of this message id fails; later ones go through.
    FailOnce(std::sync::Mutex<Option<Uuid>>),
    /// Publishes never return (a frozen process, a half-open connection).
    Hang,
}

/// The real broker behind a fault, so a relay can be slowed, failed or frozen at will.
struct Faulty {
    inner: Arc<dyn MessageBus>,
    fault: Fault,
    /// Signalled on every publish attempt, so a test knows the relay is mid-batch.
    publishing: Arc<Notify>,
}

impl Faulty {
    fn new(inner: Arc<dyn MessageBus>, fault: Fault) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            fault,
            publishing: Arc::new(Notify::new()),
        })
    }
}

#[async_trait]
impl MessageBus for Faulty {
    async fn declare(&self, topology: &[TopicSpec]) -> Result<(), BusError> {
        self.inner.declare(topology).await
    }

    async fn publish(&self, topic: &str, message: &Message) -> Result<(), BusError> {
        self.publishing.notify_one();
        match &self.fault {
            Fault::Delay(d) => tokio::time::sleep(*d).await,
            Fault::FailOnce(id) => {
                let mut id = id.lock().unwrap();
                if *id == Some(message.id) {
                    *id = None;
                    return Err(BusError::Broker("injected publish failure".into()));
                }
            }
            Fault::Hang => std::future::pending::<()>().await,
        }
        self.inner.publish(topic, message).await
    }

    async fn subscribe_signalled(
        &self,
        topic: &str,
        group: &str,
        joined: Joined,
    ) -> Result<Box<dyn Subscription>, BusError> {
        self.inner.subscribe_signalled(topic, group, joined).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.inner.ping().await
    }

    async fn backlog(&self, topic: &str, group: &str) -> Result<Vec<bus::Backlog>, BusError> {
        self.inner.backlog(topic, group).await
    }
}

/// Runs `relay` until nothing is pending, tolerating failed rounds (their rows are retried).
async fn drain_retrying(relay: &OutboxRelay, pool: &sqlx::PgPool) {
    eventually("outbox drained", WAIT, || async {
        let _ = relay.relay_once().await;
        (pending(pool).await == 0).then_some(())
    })
    .await;
}

/// Arrange a topic and its outbox; returns what the tests below share.
async fn ordered_fixture(broker: Broker, n: usize) -> Fixture {
    let (db, pool) = database().await;
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "keyorder").await;
    let ids = enqueue_n(&pool, &topic, n).await;
    Fixture {
        db,
        pool,
        bus,
        topic,
        group,
        ids,
    }
}

/// A database with `n` pending rows of one key, and a declared topic with one group.
struct Fixture {
    db: TestDb,
    pool: sqlx::PgPool,
    bus: Arc<dyn MessageBus>,
    topic: String,
    group: String,
    ids: Vec<Uuid>,
}

fn small_batches() -> RelaySettings {
    RelaySettings {
        batch_size: 5,
        ..Default::default()
    }
}

/// A relay asked to stop while it works through a backlog stops after the batch in hand instead
/// of draining the whole table first (a deploy must not wait for the backlog); what is left stays
/// pending for the next instance.
pub async fn a_relay_stops_mid_backlog_when_asked(broker: Broker) {
    let Fixture { db, pool, bus, .. } = ordered_fixture(broker, 200).await;
    let slow = Faulty::new(bus, Fault::Delay(Duration::from_millis(20)));
    let relay = OutboxRelay::new(pool.clone(), slow.clone(), small_batches());
    let stop = CancellationToken::new();
    let running = tokio::spawn(relay.run(stop.clone()));
    slow.publishing.notified().await;
    stop.cancel();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the relay stops")
        .unwrap();
    let left = pending(&pool).await;
    assert!(
        left > 0,
        "the relay drained the whole backlog of 200 rows after being asked to stop"
    );
    assert!(left < 200, "the relay published nothing at all");
    db.drop_db().await;
}

/// Two relays (two instances) over one table while the first is slow: the second must not
/// publish the key's later rows before the first one's, so the key's rows arrive in `seq` order.
pub async fn a_second_relay_never_overtakes_a_slow_one_on_the_same_key(broker: Broker) {
    let Fixture {
        db,
        pool,
        bus,
        topic,
        group,
        ids,
    } = ordered_fixture(broker, 10).await;
    let slow = Faulty::new(bus.clone(), Fault::Delay(Duration::from_millis(300)));
    let a = OutboxRelay::new(pool.clone(), slow.clone(), small_batches());
    let b = OutboxRelay::new(pool.clone(), bus.clone(), small_batches());

    let first = tokio::spawn(async move { a.relay_once().await.unwrap() });
    slow.publishing.notified().await;
    let overtaking = b.relay_once().await.unwrap();
    first.await.unwrap();
    drain_retrying(&b, &pool).await;

    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    assert_eq!(
        receive_ids(&mut sub, 10).await,
        ids,
        "one key, publish order"
    );
    assert_eq!(overtaking, 0, "the key was owned by the slow relay");
    sub.close().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// A publish that fails in the middle of a key's rows stops that key for the round: the rows
/// after it are not published ahead of it, and the retry publishes all of them in order.
pub async fn a_failed_publish_is_not_overtaken_by_the_rest_of_its_key(broker: Broker) {
    let Fixture {
        db,
        pool,
        bus,
        topic,
        group,
        ids,
    } = ordered_fixture(broker, 3).await;
    let failing = Faulty::new(
        bus.clone(),
        Fault::FailOnce(std::sync::Mutex::new(Some(ids[0]))),
    );
    let relay = OutboxRelay::new(pool.clone(), failing, RelaySettings::default());
    drain_retrying(&relay, &pool).await;

    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    assert_eq!(
        receive_ids(&mut sub, 3).await,
        ids,
        "failed row first, then the rest"
    );
    sub.close().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// A relay that freezes mid-batch (publish never returns) holds its keys only for the lease:
/// the database ends its session, and another relay publishes the key's rows, in order.
pub async fn a_frozen_relay_loses_its_keys_after_the_lease(broker: Broker) {
    let Fixture {
        db,
        pool,
        bus,
        topic,
        group,
        ids,
    } = ordered_fixture(broker, 8).await;
    let frozen = Faulty::new(bus.clone(), Fault::Hang);
    let a = OutboxRelay::new(
        pool.clone(),
        frozen.clone(),
        RelaySettings {
            lease: Duration::from_secs(1),
            ..small_batches()
        },
    );
    let b = OutboxRelay::new(pool.clone(), bus.clone(), small_batches());

    let stuck = tokio::spawn(async move { a.relay_once().await });
    frozen.publishing.notified().await;
    drain_retrying(&b, &pool).await;

    let mut sub = bus.subscribe(&topic, &group).await.unwrap();
    assert_eq!(
        receive_ids(&mut sub, 8).await,
        ids,
        "taken over in publish order"
    );
    stuck.abort();
    sub.close().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// The inbox lets a message id through once; a duplicate is refused, and a rolled-back first
/// attempt does not count as processed.
#[tokio::test]
async fn inbox_admits_each_message_once() {
    let (db, pool) = database().await;
    let id = Uuid::now_v7();

    let mut tx = pool.begin().await.unwrap();
    assert!(bus::inbox::admit(&mut tx, id).await.unwrap(), "first time");
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert!(
        bus::inbox::admit(&mut tx, id).await.unwrap(),
        "rollback did not record it"
    );
    tx.commit().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert!(
        !bus::inbox::admit(&mut tx, id).await.unwrap(),
        "duplicate skipped"
    );
    tx.rollback().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}

/// Records, per key, the payload numbers in the order they were handled (duplicates included).
#[derive(Default)]
struct PerKey(Mutex<HashMap<String, Vec<u64>>>);

#[async_trait]
impl Handler for PerKey {
    async fn handle(&self, d: &Delivery) -> Result<(), HandleError> {
        let n = d
            .decode::<serde_json::Value>()
            .map_err(HandleError::Poison)?["i"]
            .as_u64()
            .ok_or_else(|| HandleError::Poison("no i".into()))?;
        let key = d.key.clone().unwrap_or_default();
        self.0.lock().unwrap().entry(key).or_default().push(n);
        Ok(())
    }
}

/// Two service instances end to end: two relays over one outbox (one of them slow) and two
/// consumers in one group. Each key's rows are handled in `seq` order (a redelivered
/// duplicate may repeat one, never jump ahead of it), and every row is handled.
pub async fn per_key_order_holds_across_two_relays_and_two_consumers(broker: Broker) {
    let (db, pool) = database().await;
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "instances").await;
    let (users, per_user) = (20, 10);
    for i in 0..per_user {
        let mut tx = pool.begin().await.unwrap();
        for u in 0..users {
            let payload = serde_json::json!({ "i": i });
            bus::outbox::enqueue(&mut tx, &topic, &format!("user-{u}"), "Test", &payload)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    let handled = Arc::new(PerKey::default());
    let stop = CancellationToken::new();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let c = Consumer::new(broker.bus(), topic.clone(), group.clone(), handled.clone());
            tokio::spawn(c.run(stop.clone()))
        })
        .collect();
    let slow = Faulty::new(bus.clone(), Fault::Delay(Duration::from_millis(5)));
    let relays = [
        OutboxRelay::new(pool.clone(), slow, small_batches()),
        OutboxRelay::new(pool.clone(), bus.clone(), small_batches()),
    ];
    let relaying: Vec<_> = relays
        .into_iter()
        .map(|r| tokio::spawn(r.run(stop.clone())))
        .collect();

    let seen = eventually("every row handled", WAIT * 2, || async {
        let seen = handled.0.lock().unwrap().clone();
        let all = seen.len() == users && seen.values().all(|v| distinct(v).len() == per_user);
        all.then_some(seen)
    })
    .await;
    stop.cancel();
    for t in relaying {
        t.await.unwrap();
    }
    for c in consumers {
        c.await.unwrap().unwrap();
    }
    let expected: Vec<u64> = (0..per_user as u64).collect();
    for (key, order) in &seen {
        assert_eq!(
            distinct(order),
            expected,
            "first handling order of {key}: {order:?}"
        );
    }
    pool.close().await;
    db.drop_db().await;
}

/// First occurrences, in order: what a key's effects look like once duplicates are skipped.
fn distinct(handled: &[u64]) -> Vec<u64> {
    let mut seen = HashSet::new();
    handled
        .iter()
        .copied()
        .filter(|n| seen.insert(*n))
        .collect()
}

/// Applies `{"i": n}` by inserting n into `applied`; `"poison"` inserts and then refuses for
/// good, `"flaky"` inserts and then fails once: both inserts must be undone.
#[derive(Default)]
struct Recorder {
    flaked: std::sync::atomic::AtomicBool,
    /// Messages applied one by one, and batches applied at once.
    one_by_one: AtomicUsize,
    at_once: AtomicUsize,
}

/// Numbers inserted into table `applied` with one statement, in order.
const INSERT_APPLIED: &str = "INSERT INTO applied (n) \
     SELECT n FROM unnest($1::int8[]) WITH ORDINALITY AS v(n, i) ORDER BY i";
/// Numbers inserted into table `checked` with one statement, in order.
const INSERT_CHECKED: &str = "INSERT INTO checked (n) \
     SELECT n FROM unnest($1::int8[]) WITH ORDINALITY AS v(n, i) ORDER BY i";

/// The set-based form of the test handlers: `batch`'s bodies, if each is a number, inserted
/// with one of the `INSERT_*` statements; `Ok(false)` (one by one) when one is not.
async fn insert_numbers(
    tx: &mut sqlx::PgConnection,
    statement: &'static str,
    batch: &[&Delivery],
) -> Result<bool, HandleError> {
    let values: Option<Vec<i64>> = batch
        .iter()
        .map(|d| String::from_utf8_lossy(&d.payload).parse().ok())
        .collect();
    let Some(values) = values else {
        return Ok(false);
    };
    sqlx::query(statement).bind(values).execute(tx).await?;
    Ok(true)
}

#[async_trait]
impl bus::Apply for Recorder {
    /// Numbers only: a batch holding "poison" or "flaky" goes one by one.
    async fn apply_batch(
        &self,
        tx: &mut sqlx::PgConnection,
        batch: &[&Delivery],
    ) -> Result<bool, HandleError> {
        let done = insert_numbers(tx, INSERT_APPLIED, batch).await?;
        if done {
            self.at_once.fetch_add(1, Ordering::SeqCst);
        }
        Ok(done)
    }

    async fn apply(&self, tx: &mut sqlx::PgConnection, d: &Delivery) -> Result<(), HandleError> {
        self.one_by_one.fetch_add(1, Ordering::SeqCst);
        let body = String::from_utf8_lossy(&d.payload).into_owned();
        let n: i64 = match body.as_str() {
            "poison" | "flaky" => -1,
            other => other
                .parse()
                .map_err(|_| HandleError::Poison(other.into()))?,
        };
        sqlx::query("INSERT INTO applied (n) VALUES ($1)")
            .bind(n)
            .execute(&mut *tx)
            .await?;
        match body.as_str() {
            "poison" => Err(HandleError::Poison("poison".into())),
            "flaky" if !self.flaked.swap(true, std::sync::atomic::Ordering::SeqCst) => {
                Err(HandleError::Retry("flaky".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Runs a batching consumer (batches of up to 64, 200 ms linger) of `topic` through `handler`
/// until table `applied` holds `n` rows; returns them in insertion order.
async fn consume_until_applied(
    bus: &Arc<dyn MessageBus>,
    topic: String,
    group: String,
    handler: Arc<bus::Transactional<Recorder>>,
    pool: &sqlx::PgPool,
    n: usize,
) -> Vec<i64> {
    let stop = CancellationToken::new();
    let consumer =
        Consumer::new(bus.clone(), topic, group, handler).with_batches(bus::BatchSettings {
            max: 64,
            linger: Duration::from_millis(200),
        });
    let task = tokio::spawn(consumer.run(stop.clone()));
    let applied: Vec<i64> = eventually("all applied", WAIT, || async {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM applied ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
        (rows.len() >= n).then_some(rows)
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    applied
}

/// The batching consumer over one transaction per batch: a poisoned message is undone alone
/// (its batch-mates stand), a transient failure keeps what came before it and everything from
/// it on comes again in order, and a message delivered twice is applied once.
pub async fn a_batch_undoes_only_its_failed_messages_and_keeps_order(broker: Broker) {
    let (db, pool) = database().await;
    sqlx::query("CREATE TABLE applied (seq bigserial, n bigint)")
        .execute(&pool)
        .await
        .unwrap();
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "batch").await;
    let dlq = bus::consumer::dlq_topic(&topic);
    let mut sent = Vec::new();
    for body in ["0", "1", "poison", "2", "flaky", "3", "4"] {
        sent.push(crate::message("k", body));
    }
    let duplicate = sent[1].clone();
    sent.push(duplicate);
    sent.push(crate::message("k", "5"));
    bus.declare(&[TopicSpec::new(&dlq, ["dlq-readers"])])
        .await
        .unwrap();
    for m in &sent {
        bus.publish(&topic, m).await.unwrap();
    }

    let handler = Arc::new(bus::Transactional::new(pool.clone(), Recorder::default()).with_inbox());
    let applied = consume_until_applied(&bus, topic, group, handler, &pool, 7).await;
    assert_eq!(
        applied,
        [0, 1, 2, -1, 3, 4, 5],
        "poison undone, flaky retried in place, duplicate once"
    );
    pool.close().await;
    db.drop_db().await;
}

/// A batch of numbers published before the consumer starts, one of them twice: applied at once
/// (never one by one), in order, the duplicate skipped by the inbox.
pub async fn a_clean_batch_is_applied_at_once(broker: Broker) {
    let (db, pool) = database().await;
    sqlx::query("CREATE TABLE applied (seq bigserial, n bigint)")
        .execute(&pool)
        .await
        .unwrap();
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "at-once").await;
    let mut sent: Vec<_> = (0..10)
        .map(|n| crate::message("k", &n.to_string()))
        .collect();
    // Before 6: once 9 is applied, the duplicate was handled (one key, in order).
    sent.insert(6, sent[3].clone());
    for m in &sent {
        bus.publish(&topic, m).await.unwrap();
    }

    let handler = Arc::new(bus::Transactional::new(pool.clone(), Recorder::default()).with_inbox());
    let applied = consume_until_applied(&bus, topic, group, handler.clone(), &pool, 10).await;
    assert_eq!(
        applied,
        (0..10).collect::<Vec<i64>>(),
        "in order, duplicate once"
    );
    assert_eq!(handler.inner().one_by_one.load(Ordering::SeqCst), 0);
    assert!(handler.inner().at_once.load(Ordering::SeqCst) >= 1);
    pool.close().await;
    db.drop_db().await;
}

/// Inserts the body, a number, into a table that refuses negatives; counts its calls. Batches
/// go at once, so a negative fails the batch's statement and sends it one by one.
struct Checked {
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl bus::Apply for Checked {
    async fn apply_batch(
        &self,
        tx: &mut sqlx::PgConnection,
        batch: &[&Delivery],
    ) -> Result<bool, HandleError> {
        insert_numbers(tx, INSERT_CHECKED, batch).await
    }

    async fn apply(&self, tx: &mut sqlx::PgConnection, d: &Delivery) -> Result<(), HandleError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let n: i64 = String::from_utf8_lossy(&d.payload)
            .parse()
            .map_err(|_| HandleError::Poison("not a number".into()))?;
        sqlx::query("INSERT INTO checked (n) VALUES ($1)")
            .bind(n)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// A database error no retry can fix (SQLSTATE class 23, a CHECK violation) dead-letters its
/// message at the first attempt, and the consumer applies what follows on the same key — also
/// when the batch's set-based statement failed on it first.
pub async fn a_permanent_database_error_dead_letters_at_once(broker: Broker) {
    let (db, pool) = database().await;
    sqlx::query("CREATE TABLE checked (n bigint CHECK (n >= 0))")
        .execute(&pool)
        .await
        .unwrap();
    let bus = broker.bus();
    let (topic, group) = declared(bus.as_ref(), "permanent").await;
    let dlq = bus::consumer::dlq_topic(&topic);
    let dlq_group = testkit::unique_topic("dlq-readers");
    bus.declare(&[TopicSpec::new(&dlq, [&dlq_group])])
        .await
        .unwrap();
    let bad = crate::message("k", "-7");
    bus.publish(&topic, &bad).await.unwrap();
    bus.publish(&topic, &crate::message("k", "8"))
        .await
        .unwrap();

    let handler = Arc::new(bus::Transactional::new(
        pool.clone(),
        Checked {
            calls: std::sync::atomic::AtomicUsize::new(0),
        },
    ));
    let stop = CancellationToken::new();
    let consumer = Consumer::new(bus.clone(), topic, group, handler.clone());
    let task = tokio::spawn(consumer.run(stop.clone()));
    let applied: Vec<i64> = eventually("the good message applied", WAIT, || async {
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM checked")
            .fetch_all(&pool)
            .await
            .unwrap();
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(applied, [8]);

    let mut dlq_sub = bus.subscribe(&dlq, &dlq_group).await.unwrap();
    let dead = tokio::time::timeout(WAIT, dlq_sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.message_id(), Ok(bad.id));
    assert!(
        dead.header(bus::message::HEADER_DLQ_ERROR)
            .is_some_and(|e| e.contains("permanent database error")),
        "{:?}",
        dead.headers
    );
    dlq_sub.close().await.unwrap();
    pool.close().await;
    db.drop_db().await;
}
