//! Infrastructure from testcontainers, for machines with a Docker engine and no local stack.
//!
//! [`crate::required_env`] asks here when `TEST_DATABASE_URL`, `KAFKA_BROKERS` or `AMQP_URL` is
//! unset and a Docker engine is reachable (`DOCKER_HOST` or `/var/run/docker.sock`). Each
//! container is started once per test process, on first use, and lives until the process exits
//! (testcontainers' reaper removes it then). The local stack stays the default: this is compiled
//! only with feature `testcontainers`.

use std::sync::OnceLock;

use testcontainers_modules::kafka::apache::{KAFKA_PORT, Kafka};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::rabbitmq::RabbitMq;
use testcontainers_modules::testcontainers::runners::SyncRunner;
use testcontainers_modules::testcontainers::{Container, Image};

/// Whether a Docker engine can be asked for containers.
pub fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists()
}

/// The URL a container provides for the variable `name`, starting it if needed; `None` for
/// variables no container provides, or without a Docker engine.
pub fn url_for(name: &str) -> Option<String> {
    if !docker_available() {
        return None;
    }
    static POSTGRES: OnceLock<String> = OnceLock::new();
    static KAFKA: OnceLock<String> = OnceLock::new();
    static RABBITMQ: OnceLock<String> = OnceLock::new();
    let url = match name {
        "TEST_DATABASE_URL" => POSTGRES.get_or_init(|| {
            let port = keep(start(Postgres::default()), 5432);
            format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres")
        }),
        "KAFKA_BROKERS" => KAFKA.get_or_init(|| {
            let port = keep(start(Kafka::default()), KAFKA_PORT.as_u16());
            format!("127.0.0.1:{port}")
        }),
        "AMQP_URL" => RABBITMQ.get_or_init(|| {
            let port = keep(start(RabbitMq::default()), 5672);
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
        }),
        _ => return None,
    };
    Some(url.clone())
}

/// Starts `image` on a thread of its own: the blocking runner brings its own runtime, which
/// cannot start inside the test's.
fn start<I: Image + Send + 'static>(image: I) -> Container<I> {
    std::thread::spawn(move || image.start().expect("start a test container"))
        .join()
        .expect("the container start-up thread")
}

/// Keeps `container` for the rest of the process and returns its host port for `port`.
fn keep<I: Image + 'static>(container: Container<I>, port: u16) -> u16 {
    let host_port = container
        .get_host_port_ipv4(port)
        .expect("the container's mapped port");
    Box::leak(Box::new(container));
    host_port
}
