//! # testkit — what every integration test needs, against real services
//!
//! - [`TestDb`]: a fresh PostgreSQL database per test, created on the server named by
//!   `TEST_DATABASE_URL` and dropped by [`TestDb::drop_db`].
//! - [`kafka_brokers`], [`amqp_url`]: the real brokers the stack started (`KAFKA_BROKERS`,
//!   `AMQP_URL`).
//! - [`eventually`]: wait on a condition with a deadline instead of sleeping.
//! - [`sse`]: a Server-Sent Events client (the order stream).
//! - [`restart_stack_broker`]: the broker fault, on the local stack's own broker.
//!
//! Missing environment variables fail the test with the command that provides them: these
//! tests never fall back to a mock. With feature `testcontainers` and a Docker engine, the
//! infrastructure URLs come from containers instead (module `containers`).

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

#[cfg(feature = "testcontainers")]
pub mod containers;
pub mod sse;

/// Reads a required variable, failing with a hint at the command that sets it. With feature
/// `testcontainers` and a Docker engine, an unset infrastructure URL is a container's instead.
pub fn required_env(name: &str) -> String {
    if let Ok(value) = std::env::var(name) {
        return value;
    }
    #[cfg(feature = "testcontainers")]
    if let Some(url) = containers::url_for(name) {
        return url;
    }
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test` (it starts PostgreSQL, Kafka and RabbitMQ and exports it)")
    })
}

/// The Kafka bootstrap servers of the running stack.
pub fn kafka_brokers() -> String {
    required_env("KAFKA_BROKERS")
}

/// The RabbitMQ URL of the running stack.
pub fn amqp_url() -> String {
    required_env("AMQP_URL")
}

/// A database that exists only for one test.
pub struct TestDb {
    /// Its connection URL.
    pub url: String,
    /// Its name, for dropping it.
    name: String,
    /// The server's admin URL.
    admin_url: String,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub async fn create() -> TestDb {
        let admin_url = required_env("TEST_DATABASE_URL");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = replace_database(&admin_url, &name);
        TestDb {
            url,
            name,
            admin_url,
        }
    }

    /// A small pool on this database.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(5)
            .connect(&self.url)
            .await
            .expect("connect to test database")
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_db(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("drop test database");
    }
}

/// `postgres://u@h:p/old?x` → `postgres://u@h:p/new?x`.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix_end = base.rfind('/').expect("database URL has a path");
    let mut out = format!("{}/{db}", &base[..prefix_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Polls `check` until it yields `Some`, or panics after `deadline` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A unique topic name, so tests never see each other's messages.
pub fn unique_topic(prefix: &str) -> String {
    format!("test.{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// The root of the repository, where `dev/stack.sh` and the local stack's `.stack/` live.
pub fn repository_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Restarts the local stack's broker, data kept (`dev/stack.sh restart-broker`), and returns
/// once it accepts connections again: `broker` names it (`kafka`, `rabbitmq`), `None` leaves
/// `BROKER` as the caller's environment has it. Panics if the script fails (it refuses a broker
/// the stack did not start). Callers run in a test binary of their own: nothing else may be
/// using the broker meanwhile.
pub async fn restart_stack_broker(broker: Option<&str>) {
    let root = repository_root();
    let mut command = tokio::process::Command::new(root.join("dev/stack.sh"));
    command.arg("restart-broker").current_dir(&root);
    if let Some(broker) = broker {
        command.env("BROKER", broker);
    }
    let status = command.status().await.expect("run dev/stack.sh");
    assert!(status.success(), "dev/stack.sh restart-broker: {status}");
}

/// Runs `dev/stack.sh scale` with `orders` and `payments` instances (`BROKER` as the caller's
/// environment has it) and returns once every instance and the gateway answer `/health` 200.
/// Callers run in a test binary of their own: the gateway restarts meanwhile.
pub async fn scale_stack(orders: u8, payments: u8) {
    let root = repository_root();
    let status = tokio::process::Command::new(root.join("dev/stack.sh"))
        .arg("scale")
        .env("ORDERS_INSTANCES", orders.to_string())
        .env("PAYMENTS_INSTANCES", payments.to_string())
        .current_dir(&root)
        .status()
        .await
        .expect("run dev/stack.sh");
    assert!(status.success(), "dev/stack.sh scale: {status}");
}

/// The process id of the stack's instance `name` (`orders`, `payments-2`, …) from its pid file.
pub fn stack_pid(name: &str) -> u32 {
    let path = repository_root().join(format!(".stack/pids/{name}.pid"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_name_is_replaced_keeping_the_query() {
        assert_eq!(
            replace_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://h/postgres", "y"),
            "postgres://h/y"
        );
    }
}
