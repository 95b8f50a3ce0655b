//! The relay publishes only commits the synchronous standby confirmed: a commit waiting for its
//! standby stays invisible to other sessions (the writer is still in progress in PostgreSQL's
//! snapshots until the wait ends), so a failover can never take back an event the broker already
//! has, such as an order paid for by payments and unknown to orders. What this relies on
//! (PostgreSQL's order of commit steps, and nothing cancelling the wait, which would make the
//! commit visible locally) is checked here: a private PostgreSQL (`initdb` in a temporary
//! directory with the machine's binaries, `PG_BIN`) whose synchronous standby never connects
//! holds every commit in that wait, as a primary does the moment its standby dies.
//!
//! Its own test binary: it starts a server of its own and publishes to the stack's Kafka.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bus::kafka::{KafkaBus, KafkaSettings};
use bus::outbox::{OutboxRelay, RelaySettings};
use bus::{MessageBus, TopicSpec};
use sqlx::PgPool;

#[tokio::test]
async fn a_commit_the_standby_has_not_confirmed_is_not_published() {
    let server = PrivateServer::start();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&server.url())
        .await
        .unwrap();
    sqlx::migrate!("../../migrations/payments")
        .run(&pool)
        .await
        .unwrap();
    let bus: Arc<dyn MessageBus> = Arc::new(
        KafkaBus::new(KafkaSettings {
            brokers: testkit::kafka_brokers(),
            partitions: 1,
            replication: 1,
            min_insync_replicas: None,
            client_id: "relay-sync-standby-test".into(),
        })
        .unwrap(),
    );
    let topic = testkit::unique_topic("sync-standby");
    let group = testkit::unique_topic("g");
    bus.declare(&[TopicSpec::new(&topic, [&group])])
        .await
        .unwrap();
    let mut sub = bus.subscribe(&topic, &group).await.unwrap();

    // From now on every commit waits for a standby named "nobody".
    set_standby(&pool, Some("nobody")).await;
    let writer = tokio::spawn({
        let (pool, topic) = (pool.clone(), topic.clone());
        async move {
            let mut tx = pool.begin().await.unwrap();
            bus::outbox::enqueue(&mut tx, &topic, "user-1", "Test", &serde_json::json!({}))
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    });
    testkit::eventually("the writer waiting for its standby", WAIT, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        )
        .fetch_one(&pool)
        .await
        .ok()?;
        (waiting == 1).then_some(())
    })
    .await;
    assert!(
        !writer.is_finished(),
        "the writer's commit is still waiting"
    );

    let relay = OutboxRelay::new(
        pool.clone(),
        bus.clone(),
        RelaySettings {
            lease: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let round = tokio::time::timeout(Duration::from_secs(10), relay.relay_once()).await;
    assert!(
        matches!(round, Ok(Ok(0))),
        "a round finds nothing to publish while the standby has not confirmed: {round:?}"
    );
    let early = tokio::time::timeout(Duration::from_secs(3), sub.next()).await;
    assert!(
        early.is_err(),
        "nothing published before the standby confirmed: {early:?}"
    );

    // The standby requirement lifted, the writer's commit returns and the row goes out.
    set_standby(&pool, None).await;
    tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    let delivery = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(delivery.key.as_deref(), Some("user-1"));
}

/// Bound on waiting for one message or one condition.
const WAIT: Duration = Duration::from_secs(30);

/// `synchronous_standby_names` of the whole server, applied at once.
async fn set_standby(pool: &PgPool, name: Option<&str>) {
    let statement = match name {
        Some(name) => format!("ALTER SYSTEM SET synchronous_standby_names = '{name}'"),
        None => "ALTER SYSTEM RESET synchronous_standby_names".to_owned(),
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(pool)
        .await
        .unwrap();
    // Every backend applies the reload between two commands: ask until the answer has it.
    let want = name.unwrap_or("");
    testkit::eventually("the setting applied", WAIT, || async {
        let now: String = sqlx::query_scalar("SELECT current_setting('synchronous_standby_names')")
            .fetch_one(pool)
            .await
            .ok()?;
        (now == want).then_some(())
    })
    .await;
}

/// A PostgreSQL server of this test alone, on a free port, stopped (immediately) on drop.
struct PrivateServer {
    dir: PathBuf,
    port: u16,
}

impl PrivateServer {
    fn start() -> PrivateServer {
        let bin = PathBuf::from(
            std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("relay-sync-standby-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = PrivateServer { dir, port };
        if is_root() {
            // PostgreSQL refuses to run as root: the directory becomes the postgres user's.
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&server.dir));
        }
        let data = server.dir.join("data");
        run(as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            server.dir.display()
        );
        run(as_postgres(&bin.join("pg_ctl"))
            .args(["-w", "-D"])
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(server.dir.join("log"))
            .arg("start"));
        server
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let _ = as_postgres(&Path::new(&bin).join("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// `program` run as the postgres user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
