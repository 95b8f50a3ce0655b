//! The faults: what can be injected, when (a seeded schedule over the order stream), and how.
//!
//! Faults run one after another. Fault `i` fires once the stream has taken the `i`-th
//! threshold's order ticket (thresholds are seeded random points in 5–92 % of the stream); the
//! stream may not run past threshold `i + 1` before fault `i + 1` fired, so every fault lands
//! in the middle of traffic however fast or slow the system is.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bus::connect::BrokerKind;
use bus::kafka::{KafkaBus, KafkaSettings};
use bus::rabbitmq::{RabbitBus, RabbitSettings};
use bus::{Message, MessageBus};
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::watch;

use crate::cluster::{BROKER_CLUSTER_NODES, Cluster, Exit, Link, Role};
use crate::rng::Rng;
use crate::workload::Counters;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FaultKind {
    /// kill -9 of one of the two orders instances, then a restart.
    KillOrders,
    /// kill -9 of one of the two payments instances, then a restart.
    KillPayments,
    /// kill -9 of the gateway, then a restart.
    KillGateway,
    /// SIGSTOP of one process for 1–4 s, then SIGCONT.
    Pause,
    /// `dev/stack.sh restart-broker` (data kept).
    BrokerRestart,
    /// `pg_ctl restart -m fast` of the stack's PostgreSQL cluster.
    PostgresRestart,
    /// Copies of already published outbox rows (same message ids) in shuffled order.
    Redeliver,
    /// Latency between a proxied instance and PostgreSQL.
    DatabaseDelay,
    /// The proxied instance's PostgreSQL connections cut and refused for 1–4 s.
    DatabasePartition,
    /// Latency between a proxied instance and RabbitMQ.
    BrokerDelay,
    /// The proxied instance's RabbitMQ connection cut and refused for 1–4 s.
    BrokerPartition,
    /// kill -9 of one node of the stack's three-node broker cluster, down 2–6 s, then started
    /// again: the cluster must carry on on two (Kafka replication 3 with min ISR 2, RabbitMQ
    /// quorum queues) and lose nothing acknowledged.
    KillBrokerNode,
    /// One node of the stack's three-node broker cluster cut off from the other two and from
    /// every client (nftables), for 2–6 s once the others noticed, then healed.
    PartitionBrokerNode,
    /// kill -9 of the PostgreSQL primary of the stack's Patroni cluster (its Patroni and every
    /// PostgreSQL process): the synchronous standby is promoted, the services follow it, and the
    /// old primary rejoins as a standby.
    KillPgPrimary,
}

impl FaultKind {
    /// The name in the summary and the report.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::KillOrders => "kill -9 orders",
            FaultKind::KillPayments => "kill -9 payments",
            FaultKind::KillGateway => "kill -9 gateway",
            FaultKind::Pause => "SIGSTOP/SIGCONT",
            FaultKind::BrokerRestart => "broker restart",
            FaultKind::PostgresRestart => "postgres restart",
            FaultKind::Redeliver => "duplicate + reordered delivery",
            FaultKind::DatabaseDelay => "db latency",
            FaultKind::DatabasePartition => "db partition",
            FaultKind::BrokerDelay => "broker latency",
            FaultKind::BrokerPartition => "broker partition",
            FaultKind::KillBrokerNode => "kill -9 one broker of three",
            FaultKind::PartitionBrokerNode => "partition one broker of three",
            FaultKind::KillPgPrimary => "kill -9 postgres primary",
        }
    }

    /// A node-level fault of the replicated infrastructure: `--ha-weight` repeats it per round.
    pub fn is_node_fault(self) -> bool {
        matches!(
            self,
            FaultKind::KillBrokerNode | FaultKind::PartitionBrokerNode | FaultKind::KillPgPrimary
        )
    }
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What.
    pub kind: FaultKind,
    /// On which process or proxy.
    pub target: String,
    /// Seconds since the stream started.
    pub at_s: f64,
    /// Order tickets taken when it fired.
    pub at_order: u64,
    /// How long injecting and recovering took.
    pub took_s: f64,
    /// False if the fault could not be injected (the note says why).
    pub injected: bool,
    /// Details (pause length, messages re-published, time to healthy, errors).
    pub note: String,
    /// A primary kill: from the kill until another node was the primary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted_s: Option<f64>,
    /// A primary kill: from the kill until a write committed again (on a two-node cluster in
    /// strict synchronous mode this includes the old primary's rejoin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_back_s: Option<f64>,
}

/// What a primary kill measured, beyond its note.
#[derive(Debug, Default)]
struct Failover {
    promoted_s: Option<f64>,
    writes_back_s: Option<f64>,
}

/// Runs the schedule against a cluster.
pub struct Injector {
    /// Draws targets and durations.
    rng: Rng,
    /// (order ticket threshold, kind), in firing order.
    pub schedule: Vec<(u64, FaultKind)>,
    /// Opens the gate for the stream.
    allowed: watch::Sender<u64>,
    /// The stream's counters.
    counters: Arc<Counters>,
    /// Publishes the re-deliveries.
    bus: Arc<dyn MessageBus>,
    /// When the stream started.
    start: Instant,
    /// What happened, in order.
    pub records: Vec<FaultRecord>,
    /// Processes that ended on their own (each restarted).
    pub exits: Vec<Exit>,
}

/// The kinds this run can inject, given its broker, proxies and PostgreSQL.
pub fn available(cluster: &Cluster) -> Vec<FaultKind> {
    let mut kinds = vec![
        FaultKind::KillOrders,
        FaultKind::KillPayments,
        FaultKind::KillGateway,
        FaultKind::Pause,
        FaultKind::BrokerRestart,
        FaultKind::Redeliver,
    ];
    if pg_data(&cluster.config.root).exists() {
        kinds.push(FaultKind::PostgresRestart);
    }
    if cluster.proxies.iter().any(|p| p.link == Link::Database) {
        kinds.extend([FaultKind::DatabaseDelay, FaultKind::DatabasePartition]);
    }
    if cluster.proxies.iter().any(|p| p.link == Link::Broker) {
        kinds.extend([FaultKind::BrokerDelay, FaultKind::BrokerPartition]);
    }
    if cluster.config.stack_broker_cluster() {
        kinds.extend([FaultKind::KillBrokerNode, FaultKind::PartitionBrokerNode]);
    }
    if cluster.config.stack_pg_cluster() {
        kinds.push(FaultKind::KillPgPrimary);
    }
    kinds
}

/// The stack's private PostgreSQL cluster (dev/lib/postgres.sh).
fn pg_data(root: &Path) -> std::path::PathBuf {
    root.join(".stack/pg/data")
}

/// `faults` faults over a stream of `orders` orders: every available kind once per round, a
/// node fault `node_weight` times (shuffled), at sorted random tickets in 5–92 % of the stream.
pub fn schedule(
    rng: &mut Rng,
    kinds: &[FaultKind],
    node_weight: usize,
    faults: usize,
    orders: u64,
) -> Vec<(u64, FaultKind)> {
    let mut picks = Vec::with_capacity(faults);
    while picks.len() < faults && !kinds.is_empty() {
        let mut round: Vec<FaultKind> = kinds
            .iter()
            .flat_map(|k| {
                let n = if k.is_node_fault() {
                    node_weight.max(1)
                } else {
                    1
                };
                std::iter::repeat_n(*k, n)
            })
            .collect();
        rng.shuffle(&mut round);
        picks.extend(round);
    }
    picks.truncate(faults);
    let (lo, hi) = (orders * 5 / 100, orders * 92 / 100);
    let mut at: Vec<u64> = (0..picks.len()).map(|_| rng.range(lo, hi)).collect();
    at.sort_unstable();
    at.into_iter().zip(picks).collect()
}

/// The bus the re-deliveries go out on, built like the services build theirs.
pub fn bus_for(cluster: &Cluster) -> anyhow::Result<Arc<dyn MessageBus>> {
    let c = &cluster.config;
    let (replication, min_insync_replicas) = c.kafka_replication();
    Ok(match c.broker {
        BrokerKind::Kafka => Arc::new(KafkaBus::new(KafkaSettings {
            brokers: c.kafka_brokers.clone(),
            partitions: 3,
            replication,
            min_insync_replicas,
            client_id: "faults-redeliver".into(),
        })?),
        BrokerKind::RabbitMq => {
            let mut settings = RabbitSettings::from_env("faults-redeliver")?;
            settings.url = c.amqp_url.clone();
            Arc::new(RabbitBus::new(settings))
        }
    })
}

impl Injector {
    /// An injector for `schedule`; `allowed` gates the stream.
    pub fn new(
        rng: Rng,
        schedule: Vec<(u64, FaultKind)>,
        allowed: watch::Sender<u64>,
        counters: Arc<Counters>,
        bus: Arc<dyn MessageBus>,
        start: Instant,
    ) -> Self {
        Injector {
            rng,
            schedule,
            allowed,
            counters,
            bus,
            start,
            records: Vec::new(),
            exits: Vec::new(),
        }
    }

    /// Fires every fault of the schedule, then opens the gate for good. `stream_done` tells it
    /// the stream ended early (deadline): the remaining faults then fire at once.
    pub async fn run(&mut self, cluster: &mut Cluster, stream_done: &AtomicBool) {
        let schedule = self.schedule.clone();
        let _ = self
            .allowed
            .send(schedule.first().map_or(u64::MAX, |(t, _)| *t));
        for (i, (threshold, kind)) in schedule.iter().enumerate() {
            while self.counters.tickets.load(Ordering::SeqCst) < *threshold
                && !stream_done.load(Ordering::SeqCst)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.reap(cluster).await;
            }
            let next = schedule.get(i + 1).map_or(u64::MAX, |(t, _)| *t);
            let _ = self.allowed.send(next);
            let record = self.inject(*kind, cluster).await;
            eprintln!(
                "faults: [{:>3}/{}] t={:>6.1}s order {:>6}: {} on {} ({:.1}s) {}",
                i + 1,
                schedule.len(),
                record.at_s,
                record.at_order,
                kind.label(),
                record.target,
                record.took_s,
                record.note
            );
            self.records.push(record);
            self.reap(cluster).await;
            let gap = self.rng.range(100, 600);
            tokio::time::sleep(Duration::from_millis(gap)).await;
        }
        let _ = self.allowed.send(u64::MAX);
    }

    /// Restarts processes that ended on their own and keeps the evidence.
    pub async fn reap(&mut self, cluster: &mut Cluster) {
        for exit in cluster.reap_and_restart().await {
            eprintln!(
                "faults: {} EXITED on its own ({}); restarted",
                exit.name, exit.status
            );
            self.exits.push(exit);
        }
    }

    async fn inject(&mut self, kind: FaultKind, cluster: &mut Cluster) -> FaultRecord {
        let at_s = self.start.elapsed().as_secs_f64();
        let at_order = self.counters.tickets.load(Ordering::SeqCst);
        let began = Instant::now();
        let mut failover = Failover::default();
        let (target, result) = match kind {
            FaultKind::KillOrders => self.kill(cluster, Role::Orders).await,
            FaultKind::KillPayments => self.kill(cluster, Role::Payments).await,
            FaultKind::KillGateway => self.kill(cluster, Role::Gateway).await,
            FaultKind::Pause => self.pause(cluster).await,
            FaultKind::BrokerRestart => (
                cluster.config.broker.name().to_owned(),
                restart_broker(cluster).await,
            ),
            FaultKind::PostgresRestart => ("postgres".into(), restart_postgres(cluster).await),
            FaultKind::KillBrokerNode => self.kill_broker_node(cluster).await,
            FaultKind::PartitionBrokerNode => self.partition_broker_node(cluster).await,
            FaultKind::KillPgPrimary => {
                let (target, result) = self.kill_pg_primary(cluster).await;
                let result = result.map(|(note, measured)| {
                    failover = measured;
                    note
                });
                (target, result)
            }
            FaultKind::Redeliver => ("both outboxes".into(), self.redeliver(cluster).await),
            FaultKind::DatabaseDelay | FaultKind::BrokerDelay => {
                let link = link_of(kind);
                self.network(cluster, link, true).await
            }
            FaultKind::DatabasePartition | FaultKind::BrokerPartition => {
                let link = link_of(kind);
                self.network(cluster, link, false).await
            }
        };
        let (injected, note) = match result {
            Ok(note) => (true, note),
            Err(e) => (false, format!("NOT INJECTED: {e:#}")),
        };
        FaultRecord {
            kind,
            target,
            at_s,
            at_order,
            took_s: began.elapsed().as_secs_f64(),
            injected,
            note,
            promoted_s: failover.promoted_s,
            writes_back_s: failover.writes_back_s,
        }
    }

    /// kill -9 of one process of `role`, a pause, a restart, and the time until healthy.
    async fn kill(
        &mut self,
        cluster: &mut Cluster,
        role: Role,
    ) -> (String, anyhow::Result<String>) {
        let candidates = cluster.of_role(role);
        let i = candidates[self.rng.index(candidates.len())];
        let name = cluster.processes[i].name.clone();
        cluster.kill9(i).await;
        let down = self.rng.range(200, 1500);
        tokio::time::sleep(Duration::from_millis(down)).await;
        let result = match cluster.spawn(i) {
            Ok(()) => cluster
                .wait_healthy(i, Duration::from_secs(90))
                .await
                .map(|t| {
                    format!(
                        "down {down} ms, healthy {:.1} s after restart",
                        t.as_secs_f64()
                    )
                }),
            Err(e) => Err(e),
        };
        (name, result)
    }

    /// kill -9 of a random node of the stack's broker cluster (`dev/stack.sh
    /// kill-broker-node`), 2–6 s down while orders flow, then `start-broker-node` (data kept;
    /// returns once ready and, for RabbitMQ, back in the cluster).
    async fn kill_broker_node(&mut self, cluster: &Cluster) -> (String, anyhow::Result<String>) {
        let broker = cluster.config.broker.name();
        let node = self.rng.range(1, BROKER_CLUSTER_NODES).to_string();
        let down = self.rng.range(2000, 6000);
        let result = async {
            stack_sh(cluster, &["kill-broker-node", &node], broker).await?;
            tokio::time::sleep(Duration::from_millis(down)).await;
            let began = Instant::now();
            stack_sh(cluster, &["start-broker-node", &node], broker).await?;
            anyhow::Ok(format!(
                "down {down} ms, ready {:.1} s after restart",
                began.elapsed().as_secs_f64()
            ))
        }
        .await;
        (format!("{broker}-{node}"), result)
    }

    /// A random node of the stack's broker cluster cut off (`partition-broker-node`, which
    /// returns once the other nodes noticed), 2–6 s more, then healed (`heal-broker-node`
    /// returns once the cluster is whole). A failed cut is healed all the same.
    async fn partition_broker_node(
        &mut self,
        cluster: &Cluster,
    ) -> (String, anyhow::Result<String>) {
        let broker = cluster.config.broker.name();
        let node = self.rng.range(1, BROKER_CLUSTER_NODES).to_string();
        let hold = self.rng.range(2000, 6000);
        let began = Instant::now();
        let cut = stack_sh(cluster, &["partition-broker-node", &node], broker).await;
        let noticed = began.elapsed().as_secs_f64();
        if cut.is_ok() {
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        let healing = Instant::now();
        let healed = stack_sh(cluster, &["heal-broker-node", &node], broker).await;
        let result = cut.and(healed).map(|()| {
            format!(
                "noticed {noticed:.1} s after the cut, held {hold} ms more, whole {:.1} s after the heal",
                healing.elapsed().as_secs_f64()
            )
        });
        (format!("{broker}-{node}"), result)
    }

    /// kill -9 of the Patroni cluster's primary (`kill-pg-node`), a write probe through the
    /// multi-host URL meanwhile; once another node is the primary and 0–2 s later, the old one
    /// started again (`start-pg-node` returns once it streams as the synchronous standby).
    async fn kill_pg_primary(
        &mut self,
        cluster: &Cluster,
    ) -> (String, anyhow::Result<(String, Failover)>) {
        let admin = cluster.config.admin_url.clone();
        let old_port = match connect_writable(&admin).await {
            Ok((_, port)) => port,
            Err(e) => return ("postgres primary".into(), Err(e)),
        };
        let Some(old) = cluster.config.pg_node_of_port(old_port) else {
            return (
                format!("127.0.0.1:{old_port}"),
                Err(anyhow::anyhow!(
                    "the primary is not a node of the stack's cluster"
                )),
            );
        };
        let old = old.to_string();
        let wait = self.rng.range(0, 2000);
        let result = async {
            stack_sh(cluster, &["kill-pg-node", &old], cluster.config.broker.name()).await?;
            let killed = Instant::now();
            // What a client sees: the first connection to another writable server (the
            // promotion), then the first commit there (on a two-node cluster in strict mode that
            // needs the old primary back as its standby). Every attempt is bounded: a strict
            // primary without its standby blocks commits.
            let (promoted_tx, promoted_rx) = tokio::sync::oneshot::channel();
            let probe = tokio::spawn(async move {
                let mut promoted_tx = Some(promoted_tx);
                loop {
                    let attempt = tokio::time::timeout(Duration::from_secs(3), async {
                        let (mut conn, port) = connect_writable(&admin).await?;
                        if port != old_port
                            && let Some(tx) = promoted_tx.take()
                        {
                            let _ = tx.send((port, killed.elapsed()));
                        }
                        // Catalog WAL, so the commit waits for the synchronous standby (a
                        // transaction that wrote no WAL, `SELECT txid_current()`, would not).
                        sqlx::raw_sql("CREATE TEMP TABLE write_probe (x int)")
                            .execute(&mut conn)
                            .await?;
                        anyhow::Ok(port)
                    })
                    .await;
                    if matches!(attempt, Ok(Ok(port)) if port != old_port) {
                        return killed.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            let Ok(Ok((new_port, promoted))) =
                tokio::time::timeout(PROMOTION_DEADLINE, promoted_rx).await
            else {
                probe.abort();
                bail!("no other server accepted writes within {PROMOTION_DEADLINE:?}");
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let restarted = Instant::now();
            stack_sh(cluster, &["start-pg-node", &old], cluster.config.broker.name()).await?;
            let rejoined = restarted.elapsed();
            let writes = tokio::time::timeout(PROMOTION_DEADLINE, probe)
                .await
                .context("no write committed after the rejoin")??;
            anyhow::Ok((
                format!(
                    "127.0.0.1:{new_port} primary {:.1} s after the kill, writes back after {:.1} s, node {old} restarted {wait} ms later and rejoined in {:.1} s",
                    promoted.as_secs_f64(),
                    writes.as_secs_f64(),
                    rejoined.as_secs_f64()
                ),
                Failover {
                    promoted_s: Some(promoted.as_secs_f64()),
                    writes_back_s: Some(writes.as_secs_f64()),
                },
            ))
        }
        .await;
        (format!("postgres-{old}"), result)
    }

    /// SIGSTOP of a random process, SIGCONT 1–4 s later.
    async fn pause(&mut self, cluster: &mut Cluster) -> (String, anyhow::Result<String>) {
        let i = self.rng.index(cluster.processes.len());
        let name = cluster.processes[i].name.clone();
        let ms = self.rng.range(1000, 4000);
        let result = async {
            cluster.signal(i, "STOP").await?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            cluster.signal(i, "CONT").await?;
            anyhow::Ok(format!("stopped {ms} ms"))
        }
        .await;
        (name, result)
    }

    /// Latency (`delay`) or a partition on one proxied instance's `link`.
    async fn network(
        &mut self,
        cluster: &mut Cluster,
        link: Link,
        delay: bool,
    ) -> (String, anyhow::Result<String>) {
        let proxies: Vec<_> = cluster
            .proxies
            .iter()
            .filter(|p| p.link == link)
            .cloned()
            .collect();
        let Some(toxiproxy) = cluster.toxiproxy() else {
            return ("-".into(), Err(anyhow::anyhow!("no toxiproxy")));
        };
        if proxies.is_empty() {
            return ("-".into(), Err(anyhow::anyhow!("no proxy for {link:?}")));
        }
        let proxy = proxies[self.rng.index(proxies.len())].clone();
        let target = format!("{} ({})", proxy.instance, proxy.name);
        let result = if delay {
            let latency = self.rng.range(100, 600);
            let hold = self.rng.range(2000, 4000);
            async {
                toxiproxy
                    .add_latency(&proxy.name, latency, latency / 4)
                    .await?;
                tokio::time::sleep(Duration::from_millis(hold)).await;
                toxiproxy.remove_latency(&proxy.name).await?;
                anyhow::Ok(format!("+{latency} ms for {hold} ms"))
            }
            .await
        } else {
            let hold = self.rng.range(1000, 4000);
            async {
                toxiproxy.set_enabled(&proxy.name, false).await?;
                tokio::time::sleep(Duration::from_millis(hold)).await;
                toxiproxy.set_enabled(&proxy.name, true).await?;
                anyhow::Ok(format!("cut for {hold} ms"))
            }
            .await
        };
        (target, result)
    }

    /// Publishes copies of 20–200 already published outbox rows of each database, with their
    /// original message ids, in shuffled order.
    async fn redeliver(&mut self, cluster: &Cluster) -> anyhow::Result<String> {
        let limit = self.rng.range(20, 200) as i64;
        let mut rows: Vec<(uuid::Uuid, String, String, String, String)> = Vec::new();
        for pool in [&cluster.orders_pool, &cluster.payments_pool]
            .into_iter()
            .flatten()
        {
            let some: Vec<(uuid::Uuid, String, String, String, String)> = sqlx::query_as(
                "SELECT id, topic, message_key, message_type, payload::text FROM outbox \
                 WHERE published_at IS NOT NULL ORDER BY random() LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
            .context("read published outbox rows")?;
            rows.extend(some);
        }
        self.rng.shuffle(&mut rows);
        let (mut sent, mut failed) = (0, 0);
        for (id, topic, key, kind, payload) in rows {
            let message = Message {
                id,
                key,
                kind,
                payload: payload.into_bytes(),
                headers: Vec::new(),
            };
            match tokio::time::timeout(Duration::from_secs(15), self.bus.publish(&topic, &message))
                .await
            {
                Ok(Ok(())) => sent += 1,
                _ => failed += 1,
            }
        }
        if sent == 0 && failed > 0 {
            bail!("all {failed} publishes failed");
        }
        Ok(format!("{sent} copies re-published ({failed} failed)"))
    }
}

fn link_of(kind: FaultKind) -> Link {
    match kind {
        FaultKind::BrokerDelay | FaultKind::BrokerPartition => Link::Broker,
        _ => Link::Database,
    }
}

/// Longest a primary kill may take to promote a standby, and then to take writes again.
const PROMOTION_DEADLINE: Duration = Duration::from_secs(120);

/// `dev/stack.sh restart-broker` with this run's broker.
async fn restart_broker(cluster: &Cluster) -> anyhow::Result<String> {
    let broker = cluster.config.broker.name();
    stack_sh(cluster, &["restart-broker"], broker).await?;
    Ok(format!("{broker} restarted"))
}

/// `dev/stack.sh ARGS...` with `BROKER=broker`, logged to `<run dir>/<first arg>.log`.
async fn stack_sh(cluster: &Cluster, args: &[&str], broker: &str) -> anyhow::Result<()> {
    let log = cluster.run_dir.join(format!("{}.log", args[0]));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let status = Command::new(cluster.config.root.join("dev/stack.sh"))
        .args(args)
        .current_dir(&cluster.config.root)
        .env("BROKER", broker)
        .env("STACK_NO_INSTALL", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // Its own process group: the broker it starts must not share the harness's fate.
        .process_group(0)
        .status()
        .await?;
    if !status.success() {
        bail!("dev/stack.sh {}: {status}; see {log:?}", args.join(" "));
    }
    Ok(())
}

/// A connection to `url`'s first writable host, and the port that server listens on.
async fn connect_writable(url: &str) -> anyhow::Result<(sqlx::PgConnection, i32)> {
    let mut conn = platform::db::connect_one(url).await?;
    let port = sqlx::query_scalar("SELECT inet_server_port()")
        .fetch_one(&mut conn)
        .await?;
    Ok((conn, port))
}

/// `pg_ctl restart -m fast` of the stack's cluster, as the postgres user when we are root.
async fn restart_postgres(cluster: &Cluster) -> anyhow::Result<String> {
    let root = &cluster.config.root;
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let pg_ctl = format!("{bin}/pg_ctl");
    let data = pg_data(root);
    let log = root.join(".stack/logs/postgres.log");
    let args = [
        "-D",
        &data.to_string_lossy(),
        "-m",
        "fast",
        "-w",
        "-t",
        "60",
        "-l",
        &log.to_string_lossy(),
        "restart",
    ]
    .map(str::to_owned);
    let as_root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0;
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", &pg_ctl]);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let output = cmd
        .args(args)
        .stdin(Stdio::null())
        // The new postmaster must not share the harness's process group either.
        .process_group(0)
        .output()
        .await?;
    if !output.status.success() {
        bail!(
            "pg_ctl restart: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok("restarted (-m fast)".into())
}
