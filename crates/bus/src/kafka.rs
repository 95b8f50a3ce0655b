//! [`MessageBus`] on Apache Kafka via rdkafka.
//!
//! Producer: idempotent, `acks=all`, so an acknowledged publish is durable and retries never
//! duplicate or reorder within a partition. Consumer: auto-commit off; an offset is committed only
//! for a message the caller acknowledged, so a crash before that means redelivery, never loss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

use crate::message::{AckToken, Delivery, Message, TokenKind};
use crate::{Backlog, BusError, Joined, MessageBus, Subscription, TopicSpec};

/// How long a publish may wait for the broker before the relay retries it later.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a transient consumer error, so a persistent one does not spin.
const TRANSIENT_PAUSE: Duration = Duration::from_millis(200);
/// Bound on blocking metadata and commit calls.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on each call measuring consumer lag, so a scrape during an outage stays short.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);
/// Consecutive delivery timeouts (no delivery in between) after which the producer is replaced.
/// A broker restart costs a few; a producer that lost every broker from its metadata (it only
/// re-bootstraps on a timer) would otherwise time out every publish until that timer fires.
const REPLACE_AFTER_TIMEOUTS: u32 = 3;
/// How long a client may fail to obtain metadata before it re-bootstraps from
/// `bootstrap.servers` (librdkafka's default is 5 minutes). During a controlled shutdown the
/// broker can answer metadata without itself in the broker list; a client that then forgets its
/// only broker sits without any until it re-bootstraps.
const REBOOTSTRAP_AFTER: Duration = Duration::from_secs(10);

/// Connection settings; defaults match the local stack.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port,...` bootstrap list (`KAFKA_BROKERS`).
    pub brokers: String,
    /// Partitions for topics this process creates (`KAFKA_PARTITIONS`).
    pub partitions: i32,
    /// Replication factor for topics this process creates (`KAFKA_REPLICATION`).
    pub replication: i32,
    /// `min.insync.replicas` of the topics this process creates (`KAFKA_MIN_INSYNC_REPLICAS`;
    /// `None`: the broker's default). With `acks=all` it is what makes an acknowledged publish
    /// survive a broker: on a 3-replica topic, 2 means every acknowledged message is on at least
    /// two brokers, and a publish is refused (retried by the relay) rather than acknowledged by a
    /// lone leader that could die with it. Set it per topic so the guarantee does not depend on
    /// how the cluster's defaults were configured.
    pub min_insync_replicas: Option<i32>,
    /// Identifies this process in broker logs.
    pub client_id: String,
}

impl KafkaSettings {
    /// Reads `KAFKA_BROKERS`, `KAFKA_PARTITIONS`, `KAFKA_REPLICATION`,
    /// `KAFKA_MIN_INSYNC_REPLICAS` (unset, empty or 0: the broker's default).
    pub fn from_env(client_id: &str) -> Result<Self, platform::config::ConfigError> {
        let min_insync: i32 = platform::config::var_or("KAFKA_MIN_INSYNC_REPLICAS", 0)?;
        Ok(KafkaSettings {
            brokers: platform::config::string_or("KAFKA_BROKERS", "127.0.0.1:9092"),
            partitions: platform::config::var_or("KAFKA_PARTITIONS", 3)?,
            replication: platform::config::var_or("KAFKA_REPLICATION", 1)?,
            min_insync_replicas: (min_insync > 0).then_some(min_insync),
            client_id: client_id.to_owned(),
        })
    }
}

/// The Kafka bus: one producer shared by all publishers of the process.
///
/// An idempotent producer that hits a fatal error (e.g. an out-of-order sequence after a broker
/// lost acknowledged writes) refuses every later publish. The bus notices it on the next publish
/// or `/health` check, reports it there, and replaces the producer, so the relay's retry goes
/// out on a fresh one instead of failing forever behind a green `/health`. A producer whose
/// publishes keep timing out ([`REPLACE_AFTER_TIMEOUTS`] in a row) is replaced the same way: a
/// fresh one bootstraps again, whatever state the old one's metadata was left in.
pub struct KafkaBus {
    settings: KafkaSettings,
    producer: RwLock<FutureProducer>,
    /// Delivery timeouts since the last delivery (of any publisher of the process).
    timeouts_in_a_row: AtomicU32,
}

impl KafkaBus {
    /// Creates the producer; the broker is contacted lazily, so this does not wait for it.
    pub fn new(settings: KafkaSettings) -> Result<Self, BusError> {
        let producer = RwLock::new(build_producer(&settings)?);
        Ok(KafkaBus {
            settings,
            producer,
            timeouts_in_a_row: AtomicU32::new(0),
        })
    }

    /// The producer in use now (it is replaced after a fatal error); for diagnostics and the
    /// fault-injection test.
    pub fn producer(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// If `used` is in a fatal state: replaces it (unless another caller already did) and
    /// returns the error to report.
    fn recover_from_fatal(&self, used: &FutureProducer) -> Option<BusError> {
        let (code, reason) = used.client().fatal_error()?;
        self.replace(used, &format!("fatal producer error {code}: {reason}"));
        Some(BusError::Broker(
            format!("fatal producer error {code}: {reason} (producer replaced)").into(),
        ))
    }

    /// Counts a failed publish on `used`; the [`REPLACE_AFTER_TIMEOUTS`]th delivery timeout in a
    /// row replaces it.
    fn note_failure(&self, used: &FutureProducer, err: &KafkaError) {
        let timed_out = matches!(
            err,
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        );
        if timed_out
            && self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= REPLACE_AFTER_TIMEOUTS
        {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            self.replace(
                used,
                &format!("{REPLACE_AFTER_TIMEOUTS} delivery timeouts in a row"),
            );
        }
    }

    /// Puts a fresh producer in place of `used`, unless another caller already replaced it.
    /// Publishes still in flight on `used` finish or fail there; the relay retries the failed
    /// ones on the fresh producer, after them, so a key's order holds.
    fn replace(&self, used: &FutureProducer, why: &str) {
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !std::ptr::eq(current.client().native_ptr(), used.client().native_ptr()) {
            return;
        }
        match build_producer(&self.settings) {
            Ok(fresh) => {
                *current = fresh;
                tracing::error!(why, "producer replaced");
            }
            Err(e) => tracing::error!(why, error = %e, "replacing the producer failed"),
        }
    }

    fn consumer(
        &self,
        group: &str,
        joined: Joined,
    ) -> Result<StreamConsumer<GroupContext>, BusError> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", &self.settings.brokers)
            .set("client.id", &self.settings.client_id)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set(
                "metadata.recovery.rebootstrap.trigger.ms",
                REBOOTSTRAP_AFTER.as_millis().to_string(),
            )
            .create_with_context(GroupContext {
                joined,
                ownership: Arc::default(),
            })?)
    }
}

/// Idempotent, `acks=all`: an acknowledged publish is durable, and retries never duplicate or
/// reorder within a partition.
fn build_producer(settings: &KafkaSettings) -> Result<FutureProducer, BusError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", &settings.client_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "metadata.recovery.rebootstrap.trigger.ms",
            REBOOTSTRAP_AFTER.as_millis().to_string(),
        )
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .create()?)
}

#[async_trait]
impl MessageBus for KafkaBus {
    /// Creates the topics; groups need nothing beforehand (a topic keeps its messages for any
    /// group that joins later, from the earliest offset).
    async fn declare(&self, topology: &[TopicSpec]) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.settings.brokers)
            .create()?;
        let min_insync = self.settings.min_insync_replicas.map(|n| n.to_string());
        let new: Vec<NewTopic<'_>> = topology
            .iter()
            .map(|t| {
                let topic = NewTopic::new(
                    &t.topic,
                    self.settings.partitions,
                    TopicReplication::Fixed(self.settings.replication),
                );
                match &min_insync {
                    Some(n) => topic.set("min.insync.replicas", n),
                    None => topic,
                }
            })
            .collect();
        let opts = AdminOptions::new()
            .operation_timeout(Some(ADMIN_TIMEOUT))
            .request_timeout(Some(ADMIN_TIMEOUT));
        for result in admin.create_topics(&new, &opts).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::Broker(
                        format!("cannot create topic {topic}: {code}").into(),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, message: &Message) -> Result<(), BusError> {
        let headers = message
            .wire_headers()
            .iter()
            .fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            });
        let record = FutureRecord::to(topic)
            .key(message.key.as_bytes())
            .payload(&message.payload)
            .headers(headers);
        let producer = self.producer();
        match producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
        {
            Ok(_) => {
                self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                Ok(())
            }
            Err((err, _)) => {
                if let Some(fatal) = self.recover_from_fatal(&producer) {
                    return Err(fatal);
                }
                self.note_failure(&producer, &err);
                Err(err.into())
            }
        }
    }

    async fn subscribe_signalled(
        &self,
        topic: &str,
        group: &str,
        joined: Joined,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let consumer = self.consumer(group, joined)?;
        consumer.subscribe(&[topic])?;
        Ok(Box::new(KafkaSubscription { consumer }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let producer = self.producer();
        if let Some(fatal) = self.recover_from_fatal(&producer) {
            return Err(fatal);
        }
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .map(drop)
        })
        .await
        .map_err(|e| BusError::Broker(Box::new(e)))?
        .map_err(BusError::from)
    }

    /// Asks the group's committed offsets and each partition's watermarks on a short-lived
    /// client that never joins the group. A partition without a commit counts from its low
    /// watermark (a new group starts at the earliest offset).
    async fn backlog(&self, topic: &str, group: &str) -> Result<Vec<Backlog>, BusError> {
        let (brokers, topic, group) = (
            self.settings.brokers.clone(),
            topic.to_owned(),
            group.to_owned(),
        );
        tokio::task::spawn_blocking(move || -> Result<Vec<Backlog>, KafkaError> {
            let client: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()?;
            let metadata = client.fetch_metadata(Some(&topic), LAG_TIMEOUT)?;
            let mut wanted = TopicPartitionList::new();
            for t in metadata.topics() {
                for p in t.partitions() {
                    wanted.add_partition(&topic, p.id());
                }
            }
            let committed = client.committed_offsets(wanted, LAG_TIMEOUT)?;
            let mut backlog = Vec::new();
            for element in committed.elements() {
                let partition = element.partition();
                let (low, high) = client.fetch_watermarks(&topic, partition, LAG_TIMEOUT)?;
                let done = match element.offset() {
                    Offset::Offset(n) => n.max(low),
                    _ => low,
                };
                backlog.push(Backlog {
                    partition: u32::try_from(partition).unwrap_or(u32::MAX),
                    messages: u64::try_from(high - done).unwrap_or(0),
                });
            }
            Ok(backlog)
        })
        .await
        .map_err(|e| BusError::Broker(Box::new(e)))?
        .map_err(BusError::from)
    }
}

/// A (topic, partition) pair.
type Tp = (String, i32);

/// Which partitions this member owns right now, under which assignment, and what it has
/// acknowledged in them. Shared by the rebalance callbacks and the subscription.
#[derive(Default)]
struct Ownership {
    /// Owned partitions and the epoch of the assignment that gave each one.
    owned: HashMap<Tp, u64>,
    /// Bumped on every assignment, so each one has its own epoch.
    epoch: u64,
    /// Next offset to commit per owned partition: what a revocation or `close` commits
    /// synchronously.
    acked: HashMap<Tp, i64>,
    /// Something was acknowledged since the last commit went out.
    dirty: bool,
}

impl Ownership {
    /// What was acknowledged, as one list to commit; clears `dirty`. `None` when nothing is left
    /// to commit (a revocation may have committed and forgotten it since the last `ack`).
    fn take_dirty(&mut self) -> Result<Option<TopicPartitionList>, KafkaError> {
        if !std::mem::take(&mut self.dirty) || self.acked.is_empty() {
            return Ok(None);
        }
        offsets_list(self.acked.iter().map(|(tp, offset)| (tp, *offset))).map(Some)
    }

    /// Commits what was acknowledged in `partitions` (all owned ones when `None`) and forgets it.
    fn commit_acked<C: Consumer<GroupContext>>(
        &mut self,
        consumer: &C,
        partitions: Option<&[Tp]>,
    ) -> Result<(), KafkaError> {
        let tps: Vec<Tp> = match partitions {
            Some(p) => p.to_vec(),
            None => self.acked.keys().cloned().collect(),
        };
        let taken: Vec<(&Tp, i64)> = tps
            .iter()
            .filter_map(|tp| self.acked.remove(tp).map(|offset| (tp, offset)))
            .collect();
        let tpl = offsets_list(taken.into_iter())?;
        if tpl.count() > 0 {
            consumer.commit(&tpl, CommitMode::Sync)?;
        }
        Ok(())
    }
}

/// The commit request for next-offsets per partition.
fn offsets_list<'a>(
    offsets: impl Iterator<Item = (&'a Tp, i64)>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(offset))?;
    }
    Ok(tpl)
}

/// Tracks partition ownership through rebalances and signals [`Joined`] on assignment.
struct GroupContext {
    joined: Joined,
    ownership: Arc<Mutex<Ownership>>,
}

impl GroupContext {
    fn ownership(&self) -> MutexGuard<'_, Ownership> {
        // A panic while holding it cannot leave the maps half-updated in a way that matters more
        // than losing the consumer: keep going with what is there.
        self.ownership
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions_of(tpl);
            let mut own = self.ownership();
            if consumer.assignment_lost() {
                // Session timed out (e.g. the broker restarted): the partitions may have a new
                // owner already and the coordinator is away, so a synchronous commit would only
                // block the rejoin. The next owner redelivers from the last commit.
                for tp in &revoked {
                    own.acked.remove(tp);
                }
                tracing::warn!("assignment lost: acknowledged offsets not committed, redelivered");
            } else if let Err(e) = own.commit_acked(consumer, Some(&revoked)) {
                // Hand over exactly where we are: the next owner starts after what we finished.
                tracing::warn!(error = %e, "commit on revocation failed; the next owner redelivers");
            }
            for tp in &revoked {
                own.owned.remove(tp);
            }
            tracing::info!(partitions = revoked.len(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut own = self.ownership();
            own.epoch += 1;
            let epoch = own.epoch;
            for tp in partitions_of(tpl) {
                own.owned.insert(tp, epoch);
            }
            tracing::info!(partitions = tpl.count(), "consumer group joined");
            self.joined.set();
        }
    }
}

/// A consumer-group member on one topic.
struct KafkaSubscription {
    consumer: StreamConsumer<GroupContext>,
}

impl KafkaSubscription {
    fn to_delivery(&self, msg: &BorrowedMessage<'_>) -> Delivery {
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .filter_map(|h| {
                        let value = std::str::from_utf8(h.value?).ok()?;
                        Some((h.key.to_owned(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tp = (msg.topic().to_owned(), msg.partition());
        // A record fetched before a revocation may still be in the queue: epoch 0 never matches.
        let epoch = self
            .consumer
            .context()
            .ownership()
            .owned
            .get(&tp)
            .copied()
            .unwrap_or(0);
        Delivery {
            topic: tp.0,
            key: msg
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned),
            payload: msg.payload().unwrap_or_default().to_vec(),
            headers,
            token: AckToken(TokenKind::Kafka {
                partition: msg.partition(),
                offset: msg.offset(),
                epoch,
            }),
        }
    }
}

/// The Kafka position inside a token; a token of another broker is a caller's bug.
fn kafka_position(token: &AckToken) -> Result<(i32, i64, u64), BusError> {
    match token.0 {
        TokenKind::Kafka {
            partition,
            offset,
            epoch,
        } => Ok((partition, offset, epoch)),
        _ => Err(BusError::Config(format!(
            "{token:?} was not delivered by Kafka"
        ))),
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    /// Commits (asynchronously, one request for every partition) what was acknowledged since
    /// the last call: a consumer batch costs one commit, not one per message.
    async fn next(&mut self) -> Result<Delivery, BusError> {
        let pending = self.consumer.context().ownership().take_dirty()?;
        if let Some(tpl) = pending {
            // Async: commits go out in order on one connection; revocation and `close` commit
            // the last acknowledged offsets synchronously.
            self.consumer.commit(&tpl, CommitMode::Async)?;
        }
        loop {
            match self.consumer.recv().await {
                Ok(msg) => return Ok(self.to_delivery(&msg)),
                // Errors librdkafka puts in the consumer queue are informational (a topic created
                // a moment ago not yet in the metadata, a broker reconnecting); it keeps
                // consuming, so waiting for the next message goes on too.
                Err(KafkaError::MessageConsumption(code)) => {
                    tracing::warn!(error = %code, "transient consumer error");
                    tokio::time::sleep(TRANSIENT_PAUSE).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let (partition, offset, epoch) = kafka_position(&delivery.token)?;
        let tp = (delivery.topic.clone(), partition);
        let next = offset + 1;
        {
            let mut own = self.consumer.context().ownership();
            if own.owned.get(&tp) != Some(&epoch) {
                // Revoked since it was received: the new owner has it and its own progress.
                tracing::info!(topic = %tp.0, partition, offset, "ack of a partition no longer owned: not committed");
                return Ok(());
            }
            own.acked.insert(tp, next);
            // Committed by the next `next` (the consumer loop asks for the next batch right
            // after acknowledging this one), or by revocation / `close`. A crash before that
            // redelivers these messages: duplicates for the inbox, never a loss.
            own.dirty = true;
        }
        Ok(())
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let (partition, offset, _) = kafka_position(&delivery.token)?;
        // Rewinding the partition discards what was prefetched after this message, so per-key
        // order is kept: nothing behind a failed message is processed before it.
        self.consumer.seek(
            &delivery.topic,
            partition,
            Offset::Offset(offset),
            ADMIN_TIMEOUT,
        )?;
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        let KafkaSubscription { consumer } = *self;
        tokio::task::spawn_blocking(move || -> Result<(), BusError> {
            let ownership = consumer.context().ownership.clone();
            ownership
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .commit_acked(&consumer, None)?;
            consumer.unsubscribe();
            Ok(())
        })
        .await
        .map_err(|e| BusError::Broker(Box::new(e)))?
    }
}
