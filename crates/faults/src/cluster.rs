//! The harness's own system: two orders and two payments instances and a gateway, spawned from
//! the built binaries on free loopback ports, on a fresh pair of databases and fresh topics and
//! consumer groups, so nothing of the stack's own services is read, consumed or counted.
//!
//! Invariant: whatever happens, [`Cluster::teardown`] (or `kill_on_drop` if the harness itself
//! dies) leaves no process of ours running, and teardown drops the databases and the broker
//! topology it created.

use platform::auth::AuthMode;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bus::TopicSpec;
use bus::connect::BrokerKind;
use bus::consumer::dlq_spec;
use sqlx::{Connection, PgPool};
use tokio::process::{Child, Command};

use crate::toxi::{Toxiproxy, spawn_logged};

/// Where the harness finds its infrastructure and binaries.
#[derive(Debug, Clone)]
pub struct Config {
    /// The repository root (`dev/stack.sh`, `.stack/`).
    pub root: PathBuf,
    /// The directory holding the `orders`, `payments` and `gateway` binaries.
    pub bin_dir: PathBuf,
    /// The broker the services run on.
    pub broker: BrokerKind,
    /// An admin URL of the PostgreSQL server (databases are created and dropped through it).
    pub admin_url: String,
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// `RUST_LOG` of the spawned services.
    pub service_log: String,
    /// How the spawned services authenticate ([`AuthEnv::from_env`]).
    pub auth: AuthEnv,
    /// `RABBITMQ_QUEUE_TYPE` of the stack (quorum on its three-node cluster): every process of
    /// a topology must declare its queues alike.
    pub rabbitmq_queue_type: Option<String>,
}

/// The authentication settings the harness's own processes run with: the stack's, so a round
/// exercises the same code path the stack does (tokens verified at the gateway, signed identity
/// checked by the services).
#[derive(Clone)]
pub struct AuthEnv {
    /// Whether `AUTH=jwt` (the workload must then send tokens).
    pub jwt: bool,
    /// The variables passed to every process.
    vars: Vec<(String, String)>,
}

impl std::fmt::Debug for AuthEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The internal secret is in `vars`: never printed.
        f.debug_struct("AuthEnv")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

/// The variables of `AUTH=jwt` inherited from the harness's environment when set.
const INHERITED_AUTH: [&str; 7] = [
    "AUTH",
    "AUTH_JWKS",
    "AUTH_ISSUER",
    "AUTH_AUDIENCE",
    "AUTH_INTERNAL_SECRET",
    "AUTH_LEEWAY_S",
    "AUTH_JWKS_REFRESH_S",
];

impl AuthEnv {
    /// From the harness's environment (`. .stack/env`): `AUTH=jwt` passes on the stack's JWKS,
    /// issuer, audience and internal secret; `AUTH` unset or `off` passes `AUTH=off` explicitly,
    /// because the services default to `jwt` and would refuse to start without its settings
    /// (the processes are spawned with a cleared environment).
    pub fn from_env() -> anyhow::Result<AuthEnv> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let jwt = match var("AUTH") {
            None => false,
            Some(raw) => {
                let mode: AuthMode = raw.parse().map_err(|e| anyhow::anyhow!("AUTH {e}"))?;
                mode == AuthMode::Jwt
            }
        };
        if !jwt {
            return Ok(AuthEnv {
                jwt,
                vars: vec![("AUTH".into(), "off".into())],
            });
        }
        if var("AUTH_JWKS").is_none() {
            bail!("AUTH=jwt needs AUTH_JWKS (the stack's .stack/env exports it)");
        }
        let mut vars: Vec<(String, String)> = INHERITED_AUTH
            .iter()
            .filter_map(|name| Some(((*name).to_owned(), var(name)?)))
            .collect();
        if var("AUTH_INTERNAL_SECRET").is_none() {
            // Only this run's processes share it: any fresh secret of the required length does.
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            vars.push(("AUTH_INTERNAL_SECRET".into(), secret));
        }
        Ok(AuthEnv { jwt, vars })
    }
}

/// Nodes of the stack's three-node broker clusters (`KAFKA_NODES=3` / `RABBITMQ_NODES=3`).
pub const BROKER_CLUSTER_NODES: u64 = 3;

/// The entries of a comma-separated list (`KAFKA_BROKERS`, `AMQP_URL`).
fn list_len(list: &str) -> usize {
    list.split(',').filter(|a| !a.trim().is_empty()).count()
}

impl Config {
    /// The last value of `key` in `.stack/state` (the layout `dev/stack.sh` started).
    fn stack_state(&self, key: &str) -> Option<String> {
        let state = std::fs::read_to_string(self.root.join(".stack/state")).unwrap_or_default();
        let prefix = format!("{key}=");
        state
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .next_back()
            .map(str::to_owned)
    }

    /// The admin URL lists several PostgreSQL hosts (libpq's multi-host form): the services
    /// follow the primary themselves, so no single-upstream proxy may stand in between.
    pub fn db_replicated(&self) -> bool {
        platform::db::url::DbUrl::parse(&self.admin_url).is_ok_and(|u| u.hosts().len() > 1)
    }

    /// The database is the stack's own Patroni cluster (`PG_NODES` ≥ 2 in `.stack/state`),
    /// whose nodes `dev/stack.sh kill-pg-node` / `start-pg-node` can kill and start.
    pub fn stack_pg_cluster(&self) -> bool {
        self.db_replicated()
            && self
                .stack_state("PG_NODES")
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n >= 2)
    }

    /// The node number of the stack's Patroni cluster listening on `port` (node k on `PG_PORT`
    /// + 10(k-1), as dev/lib/patroni.sh lays them out), for `kill-pg-node` / `start-pg-node`.
    pub fn pg_node_of_port(&self, port: i32) -> Option<u32> {
        let nodes: i32 = self.stack_state("PG_NODES")?.parse().ok()?;
        let base: i32 = self.stack_state("PG_PORT")?.parse().ok()?;
        let offset = port - base;
        let k = offset / 10 + 1;
        (offset >= 0 && offset % 10 == 0 && k <= nodes).then(|| k.unsigned_abs())
    }

    /// A RabbitMQ run on several nodes: `AMQP_URL` lists more than one.
    pub fn rabbit_replicated(&self) -> bool {
        self.broker == BrokerKind::RabbitMq && list_len(&self.amqp_url) > 1
    }

    /// The broker is the stack's own three-node cluster of this run's kind, whose nodes
    /// `dev/stack.sh kill-broker-node` / `partition-broker-node` act on.
    pub fn stack_broker_cluster(&self) -> bool {
        let three = Some(BROKER_CLUSTER_NODES.to_string());
        match self.broker {
            BrokerKind::Kafka => self.stack_kafka_cluster(),
            BrokerKind::RabbitMq => {
                list_len(&self.amqp_url) == BROKER_CLUSTER_NODES as usize
                    && self.stack_state("RABBITMQ_NODES") == three
            }
        }
    }

    /// A Kafka run on a cluster of at least three brokers: `KAFKA_BROKERS` lists three addresses
    /// or more. The run's topics are then created as the stack's cluster creates them
    /// (replication factor 3, `min.insync.replicas` 2), so one broker may die without losing an
    /// acknowledged message.
    pub fn kafka_replicated(&self) -> bool {
        self.broker == BrokerKind::Kafka
            && list_len(&self.kafka_brokers) >= BROKER_CLUSTER_NODES as usize
    }

    /// The brokers are the stack's own three-node cluster (`.stack/state` says `KAFKA_NODES=3`),
    /// whose nodes `dev/stack.sh kill-broker-node` / `start-broker-node` can kill and start: only
    /// then is "kill one broker of three" injected (an external cluster is not ours to kill).
    pub fn stack_kafka_cluster(&self) -> bool {
        self.kafka_replicated()
            && self.stack_state("KAFKA_NODES") == Some(BROKER_CLUSTER_NODES.to_string())
    }

    /// Replication factor and `min.insync.replicas` of the run's Kafka topics.
    pub fn kafka_replication(&self) -> (i32, Option<i32>) {
        if self.kafka_replicated() {
            (BROKER_CLUSTER_NODES as i32, Some(2))
        } else {
            (1, None)
        }
    }
}

/// Which service a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The orders service.
    Orders,
    /// The payments service.
    Payments,
    /// The gateway.
    Gateway,
}

impl Role {
    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Role::Orders => "orders",
            Role::Payments => "payments",
            Role::Gateway => "gateway",
        }
    }
}

/// The names this run owns alone: databases, topics, consumer groups.
#[derive(Debug, Clone)]
pub struct Names {
    /// Short id of the run, part of every name.
    pub run_id: String,
    /// The orders database.
    pub orders_db: String,
    /// The payments database.
    pub payments_db: String,
    /// `PAYMENT_REQUESTS_TOPIC`.
    pub requests_topic: String,
    /// `PAYMENT_RESULTS_TOPIC`.
    pub results_topic: String,
    /// `ORDERS_CONSUMER_GROUP`.
    pub orders_group: String,
    /// `PAYMENTS_CONSUMER_GROUP`.
    pub payments_group: String,
}

impl Names {
    /// Fresh names for run `run_id`.
    pub fn new(run_id: &str) -> Self {
        Names {
            run_id: run_id.to_owned(),
            orders_db: format!("faults_{run_id}_orders"),
            payments_db: format!("faults_{run_id}_payments"),
            requests_topic: format!("faults.{run_id}.payment.requests"),
            results_topic: format!("faults.{run_id}.payment.results"),
            orders_group: format!("faults-{run_id}-orders"),
            payments_group: format!("faults-{run_id}-payments"),
        }
    }

    /// The topics and groups as the services declare them (runtime::payment_topology).
    pub fn topology(&self) -> Vec<TopicSpec> {
        vec![
            TopicSpec::new(&self.requests_topic, [&self.payments_group]),
            TopicSpec::new(&self.results_topic, [&self.orders_group]),
            dlq_spec(&self.requests_topic),
            dlq_spec(&self.results_topic),
        ]
    }
}

/// What a toxiproxy proxy stands between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The instance and PostgreSQL.
    Database,
    /// The instance and RabbitMQ.
    Broker,
}

/// One proxy in front of one instance's dependency.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// toxiproxy's name for it.
    pub name: String,
    /// The process whose connection it carries (`orders-1`, ...).
    pub instance: String,
    /// Which of its connections.
    pub link: Link,
}

/// One process of the harness's system.
pub struct Process {
    /// `orders-1`, `payments-2`, `gateway`.
    pub name: String,
    /// Which service.
    pub role: Role,
    /// Its HTTP port (kept across restarts, so the gateway's upstream stays valid).
    pub port: u16,
    /// Its environment.
    env: Vec<(String, String)>,
    /// Its log (appended to across restarts).
    log: PathBuf,
    /// The running process, if any.
    child: Option<Child>,
    /// SIGSTOPped and not yet continued.
    pub paused: bool,
}

impl Process {
    /// The pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// A process that ended without being told to.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Which one.
    pub name: String,
    /// How it ended.
    pub status: String,
    /// The end of its log.
    pub log_tail: String,
}

/// The whole system of one run.
pub struct Cluster {
    /// Infrastructure and binaries.
    pub config: Config,
    /// The run's own names.
    pub names: Names,
    /// Logs and scratch files of this run.
    pub run_dir: PathBuf,
    /// orders-1, orders-2, payments-1, payments-2, gateway.
    pub processes: Vec<Process>,
    /// toxiproxy, when it could be installed.
    toxiproxy: Option<Toxiproxy>,
    /// The proxies in use (instance 1 of orders and of payments).
    pub proxies: Vec<Proxy>,
    /// Why there are no proxies, if there are none.
    pub no_proxy_reason: Option<String>,
    /// The databases created so far (dropped by teardown).
    created_dbs: Vec<String>,
    /// Read-only-ish pools on the two databases (direct, not through a proxy).
    pub orders_pool: Option<PgPool>,
    /// See `orders_pool`.
    pub payments_pool: Option<PgPool>,
}

/// A free loopback port (bound, then released: the service binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `url` with its host and port replaced by `127.0.0.1:port`.
fn via_port(url: &str, port: u16) -> anyhow::Result<String> {
    let mut u = reqwest::Url::parse(url).with_context(|| format!("parse {url}"))?;
    u.set_host(Some("127.0.0.1"))?;
    u.set_port(Some(port))
        .map_err(|()| anyhow::anyhow!("{url}: cannot set a port"))?;
    Ok(u.to_string())
}

/// `host:port` of `url`, with `default_port` when it names none.
fn host_port(url: &str, default_port: u16) -> anyhow::Result<String> {
    let u = reqwest::Url::parse(url).with_context(|| format!("parse {url}"))?;
    let host = u.host_str().context("URL without a host")?;
    Ok(format!("{host}:{}", u.port().unwrap_or(default_port)))
}

impl Cluster {
    /// Creates the databases, migrates them, starts toxiproxy (when available) and the five
    /// processes, and returns once every `/health` answers 200. On error, what was made so far
    /// is handed back for teardown.
    pub async fn start(
        config: Config,
        names: Names,
    ) -> Result<Cluster, (Box<Cluster>, anyhow::Error)> {
        let run_dir = config.root.join(".stack/faults").join(&names.run_id);
        let mut cluster = Cluster {
            config,
            names,
            run_dir,
            processes: Vec::new(),
            toxiproxy: None,
            proxies: Vec::new(),
            no_proxy_reason: None,
            created_dbs: Vec::new(),
            orders_pool: None,
            payments_pool: None,
        };
        match cluster.bring_up().await {
            Ok(()) => Ok(cluster),
            Err(e) => Err((Box::new(cluster), e)),
        }
    }

    async fn bring_up(&mut self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.run_dir)
            .with_context(|| format!("create {:?}", self.run_dir))?;
        for role in [Role::Orders, Role::Payments, Role::Gateway] {
            let bin = self.config.bin_dir.join(role.binary());
            if !bin.exists() {
                bail!(
                    "{bin:?} not found: build it first (cargo build -p orders -p payments -p gateway)"
                );
            }
        }
        let mut admin = platform::db::connect_one(&self.config.admin_url)
            .await
            .context("connect to the admin database URL")?;
        for db in [self.names.orders_db.clone(), self.names.payments_db.clone()] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
                .execute(&mut admin)
                .await
                .with_context(|| format!("create database {db}"))?;
            self.created_dbs.push(db);
        }
        admin.close().await?;
        let orders_url =
            platform::db::url::with_database(&self.config.admin_url, &self.names.orders_db)?;
        let payments_url =
            platform::db::url::with_database(&self.config.admin_url, &self.names.payments_db)?;
        // Migrate once, before two instances would race to.
        self.migrate(Role::Orders, &orders_url).await?;
        self.migrate(Role::Payments, &payments_url).await?;
        self.orders_pool = Some(pool(&orders_url).await?);
        self.payments_pool = Some(pool(&payments_url).await?);

        self.start_toxiproxy().await;
        for (role, url) in [(Role::Orders, &orders_url), (Role::Payments, &payments_url)] {
            for index in 1..=2 {
                let name = format!("{}-{index}", role.binary());
                // A proxy has one upstream: a replicated database or broker is followed across
                // its nodes by the services themselves and faulted by node instead.
                let proxied = index == 1 && self.toxiproxy.is_some();
                let database_url = if proxied && !self.config.db_replicated() {
                    self.proxy(&name, Link::Database, url, 5432).await?
                } else {
                    url.clone()
                };
                let amqp_url = if proxied
                    && self.config.broker == BrokerKind::RabbitMq
                    && !self.config.rabbit_replicated()
                {
                    self.proxy(&name, Link::Broker, &self.config.amqp_url.clone(), 5672)
                        .await?
                } else {
                    self.config.amqp_url.clone()
                };
                let env = self.service_env(role, &database_url, &amqp_url);
                self.add_process(name, role, env)?;
            }
        }
        let mut gateway_env = vec![
            (
                "ORDERS_URL".into(),
                format!("http://127.0.0.1:{}", self.processes[0].port),
            ),
            (
                "PAYMENTS_URL".into(),
                format!("http://127.0.0.1:{}", self.processes[2].port),
            ),
            // The harness measures invariants, not limits: its lanes, all from one address, must
            // never be answered 429, which would turn orders the schedule counts on into
            // refusals that no fault caused.
            ("RATE_LIMIT_PER_SUBJECT".into(), "off".into()),
            ("RATE_LIMIT_PER_IP".into(), "off".into()),
        ];
        gateway_env.extend(self.config.auth.vars.iter().cloned());
        self.add_process("gateway".into(), Role::Gateway, gateway_env)?;
        for i in 0..self.processes.len() {
            self.spawn(i)?;
        }
        for i in 0..self.processes.len() {
            self.wait_healthy(i, Duration::from_secs(90)).await?;
        }
        Ok(())
    }

    /// `<service> migrate` on `url`, as dev/stack.sh does before starting a service.
    async fn migrate(&self, role: Role, url: &str) -> anyhow::Result<()> {
        let log = self.run_dir.join(format!("{}-migrate.log", role.binary()));
        let out = std::fs::File::create(&log)?;
        let status = Command::new(self.config.bin_dir.join(role.binary()))
            .arg("migrate")
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .await?;
        if !status.success() {
            bail!("{} migrate failed ({status}); see {log:?}", role.binary());
        }
        Ok(())
    }

    /// Starts toxiproxy, or records why the network faults are unavailable.
    async fn start_toxiproxy(&mut self) {
        let bin = match crate::toxi::binary(&self.config.root).await {
            Ok(bin) => bin,
            Err(reason) => {
                eprintln!("faults: no toxiproxy ({reason}): network faults left out");
                self.no_proxy_reason = Some(reason);
                return;
            }
        };
        let started = match free_port() {
            Ok(port) => Toxiproxy::start(&bin, port, &self.run_dir.join("toxiproxy.log")).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(t) => self.toxiproxy = Some(t),
            Err(e) => {
                eprintln!("faults: toxiproxy did not start ({e:#}): network faults left out");
                self.no_proxy_reason = Some(format!("{e:#}"));
            }
        }
    }

    /// A proxy for `instance`'s `link` to the server of `url`; returns `url` through it.
    async fn proxy(
        &mut self,
        instance: &str,
        link: Link,
        url: &str,
        default_port: u16,
    ) -> anyhow::Result<String> {
        let toxiproxy = self.toxiproxy.as_ref().context("no toxiproxy")?;
        let name = format!(
            "{instance}-{}",
            if link == Link::Database { "db" } else { "amqp" }
        );
        let listen = free_port()?;
        toxiproxy
            .create(&name, listen, &host_port(url, default_port)?)
            .await?;
        self.proxies.push(Proxy {
            name,
            instance: instance.to_owned(),
            link,
        });
        via_port(url, listen)
    }

    /// The environment of an orders or payments instance.
    fn service_env(&self, role: Role, database_url: &str, amqp_url: &str) -> Vec<(String, String)> {
        let broker = self.config.broker.name();
        // A partitioned connection is noticed within seconds instead of the default minute.
        let amqp = amqp_url
            .split(',')
            .map(|url| {
                let url = url.trim();
                if url.contains("heartbeat=") {
                    url.to_owned()
                } else if url.contains('?') {
                    format!("{url}&heartbeat=5")
                } else {
                    format!("{url}?heartbeat=5")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let n = &self.names;
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url),
            ("DATABASE_MAX_CONNECTIONS", "10"),
            ("BROKER", broker),
            ("KAFKA_BROKERS", &self.config.kafka_brokers),
            ("AMQP_URL", &amqp),
            ("PAYMENT_REQUESTS_TOPIC", &n.requests_topic),
            ("PAYMENT_RESULTS_TOPIC", &n.results_topic),
            ("ORDERS_CONSUMER_GROUP", &n.orders_group),
            ("PAYMENTS_CONSUMER_GROUP", &n.payments_group),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let (replication, Some(min_insync)) = self.config.kafka_replication() {
            env.push(("KAFKA_REPLICATION".into(), replication.to_string()));
            env.push(("KAFKA_MIN_INSYNC_REPLICAS".into(), min_insync.to_string()));
        }
        if let Some(queue_type) = &self.config.rabbitmq_queue_type {
            env.push(("RABBITMQ_QUEUE_TYPE".into(), queue_type.clone()));
        }
        env.extend(self.config.auth.vars.iter().cloned());
        if role == Role::Orders {
            // The sweeper re-requests payment for orders NEW this long; shorter than the
            // default so a lost request shows up within the quiescence timeout.
            env.push(("ORDER_SWEEP_AFTER_S".into(), "30".into()));
        }
        env
    }

    fn add_process(
        &mut self,
        name: String,
        role: Role,
        mut env: Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let port = free_port()?;
        env.extend([
            ("HTTP_HOST".into(), "127.0.0.1".into()),
            ("HTTP_PORT".into(), port.to_string()),
            ("RUST_LOG".into(), self.config.service_log.clone()),
            ("RUST_LIB_BACKTRACE".into(), "0".into()),
        ]);
        let log = self.run_dir.join(format!("{name}.log"));
        self.processes.push(Process {
            name,
            role,
            port,
            env,
            log,
            child: None,
            paused: false,
        });
        Ok(())
    }

    /// Starts process `i` (its own process group: a Ctrl-C at the terminal reaches only the
    /// harness, which then stops everything in order).
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let bin = self.config.bin_dir.join(self.processes[i].role.binary());
        let p = &mut self.processes[i];
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)?;
        let mut command = Command::new(&bin);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(p.env.iter().cloned());
        let child = spawn_logged(command, out).with_context(|| format!("start {bin:?}"))?;
        p.child = Some(child);
        p.paused = false;
        Ok(())
    }

    /// Polls process `i`'s `/health` until 200; an error if it exits or the time runs out.
    pub async fn wait_healthy(&mut self, i: usize, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let url = format!("http://127.0.0.1:{}/health", self.processes[i].port);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        loop {
            if let Some(exit) = self.exited(i) {
                bail!(
                    "{} exited while starting ({}):\n{}",
                    exit.name,
                    exit.status,
                    exit.log_tail
                );
            }
            if let Ok(resp) = http.get(&url).send().await
                && resp.status().is_success()
            {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                bail!(
                    "{} not healthy within {within:?}:\n{}",
                    self.processes[i].name,
                    tail(&self.processes[i].log)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Process `i`, if it has ended on its own since the last look.
    fn exited(&mut self, i: usize) -> Option<Exit> {
        let p = &mut self.processes[i];
        let status = p.child.as_mut()?.try_wait().ok()??;
        p.child = None;
        Some(Exit {
            name: p.name.clone(),
            status: status.to_string(),
            log_tail: tail(&p.log),
        })
    }

    /// Every process that ended on its own; each is started again (a supervisor would).
    pub async fn reap_and_restart(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        for i in 0..self.processes.len() {
            if let Some(exit) = self.exited(i) {
                exits.push(exit);
            }
            if self.processes[i].child.is_none()
                && let Err(e) = self.spawn(i)
            {
                eprintln!("faults: cannot restart {}: {e:#}", self.processes[i].name);
            }
        }
        exits
    }

    /// kill -9 of process `i`, reaped.
    pub async fn kill9(&mut self, i: usize) {
        if let Some(child) = self.processes[i].child.as_mut() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.processes[i].child = None;
        self.processes[i].paused = false;
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to process `i`.
    pub async fn signal(&mut self, i: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self.processes[i].pid().context("not running")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await?;
        if !status.success() {
            bail!("kill -{signal} {pid}: {status}");
        }
        self.processes[i].paused = signal == "STOP";
        Ok(())
    }

    /// The indexes of the processes running `role`.
    pub fn of_role(&self, role: Role) -> Vec<usize> {
        (0..self.processes.len())
            .filter(|&i| self.processes[i].role == role)
            .collect()
    }

    /// The gateway's base URL.
    pub fn gateway_url(&self) -> String {
        let i = self.of_role(Role::Gateway)[0];
        format!("http://127.0.0.1:{}", self.processes[i].port)
    }

    /// The running toxiproxy (network faults), if any.
    pub fn toxiproxy(&self) -> Option<&Toxiproxy> {
        self.toxiproxy.as_ref()
    }

    /// Stops everything: SIGCONT to paused processes, SIGTERM (gateway first), SIGKILL after
    /// 20 s; toxiproxy; the databases (FORCE); the broker topology. Errors are reported, not
    /// raised: cleanup goes on.
    pub async fn teardown(mut self, keep_logs: bool) {
        for i in (0..self.processes.len()).rev() {
            if self.processes[i].paused {
                let _ = self.signal(i, "CONT").await;
            }
            if self.processes[i].child.is_some() {
                let _ = self.signal(i, "TERM").await;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for p in self.processes.iter_mut().rev() {
            if let Some(child) = p.child.as_mut()
                && tokio::time::timeout_at(deadline, child.wait())
                    .await
                    .is_err()
            {
                eprintln!("faults: {} ignored SIGTERM for 20 s: killed", p.name);
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            p.child = None;
        }
        if let Some(t) = self.toxiproxy.take() {
            t.stop().await;
        }
        for pool in [self.orders_pool.take(), self.payments_pool.take()]
            .into_iter()
            .flatten()
        {
            pool.close().await;
        }
        if let Err(e) = self.drop_databases().await {
            eprintln!("faults: dropping the databases failed: {e:#}");
        }
        if let Err(e) = self.delete_topology().await {
            eprintln!("faults: deleting the broker topology failed: {e:#}");
        }
        if !keep_logs {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }

    async fn drop_databases(&mut self) -> anyhow::Result<()> {
        if self.created_dbs.is_empty() {
            return Ok(());
        }
        let mut admin = platform::db::connect_one(&self.config.admin_url).await?;
        for db in std::mem::take(&mut self.created_dbs) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .with_context(|| format!("drop database {db}"))?;
        }
        admin.close().await?;
        Ok(())
    }

    /// Deletes this run's topics and groups (Kafka) or exchanges and queues (RabbitMQ).
    async fn delete_topology(&self) -> anyhow::Result<()> {
        let topology = self.names.topology();
        match self.config.broker {
            BrokerKind::Kafka => {
                use rdkafka::admin::{AdminClient, AdminOptions};
                use rdkafka::client::DefaultClientContext;
                let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &self.config.kafka_brokers)
                    .create()?;
                let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                let topics: Vec<&str> = topology.iter().map(|t| t.topic.as_str()).collect();
                admin.delete_topics(&topics, &opts).await?;
                let groups = [
                    self.names.orders_group.as_str(),
                    self.names.payments_group.as_str(),
                ];
                admin.delete_groups(&groups, &opts).await?;
            }
            BrokerKind::RabbitMq => {
                use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
                let mut settings = bus::rabbitmq::RabbitSettings::from_env("faults-teardown")?;
                settings.url = self.config.amqp_url.clone();
                let connection = bus::rabbitmq::connect(&settings).await?;
                let queues = settings.queues;
                for spec in &topology {
                    for group in &spec.groups {
                        for q in 0..queues {
                            let channel = connection.create_channel().await?;
                            let name = format!("{}/{group}/{q}", spec.topic);
                            let _ = channel
                                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                                .await;
                        }
                        let channel = connection.create_channel().await?;
                        let name = format!("{}/{group}", spec.topic);
                        let _ = channel
                            .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                            .await;
                    }
                    let channel = connection.create_channel().await?;
                    let _ = channel
                        .exchange_delete(
                            spec.topic.as_str().into(),
                            ExchangeDeleteOptions::default(),
                        )
                        .await;
                }
                // Closing may race the channels the deletes closed; the deletes are what count.
                let _ = connection.close(200, "faults: done".into()).await;
            }
        }
        Ok(())
    }
}

/// A small pool on `url`, following the primary of a replicated database as the services do.
async fn pool(url: &str) -> anyhow::Result<PgPool> {
    platform::db::connect(url, 4)
        .await
        .with_context(|| format!("connect to {url}"))
}

/// The last lines of `log`, for a report.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}
