//! [`MessageBus`] on RabbitMQ via lapin, keeping Kafka's guarantees: nothing lost, per-key order
//! with any number of consumer instances, redelivery of what was not acknowledged.
//!
//! Topology of topic `T` read by groups `g…` (all durable, declared idempotently by every
//! process that publishes to or consumes from `T`):
//!
//! ```text
//! exchange T/direct (direct) ──[routing key i]──► queue T/g/i of every group g, i in 0..N
//!                                                  (x-single-active-consumer; classic, or quorum)
//! ```
//!
//! - The publisher picks the queue: `i` = [`queue_for`] (a fixed hash of the message key, the
//!   user id, modulo N), so one key always lands in the same queue of every group, across
//!   restarts: the queue plays the role of a Kafka partition. The key travels in the
//!   `message-key` header. (RabbitMQ's consistent-hash exchange is not used: it rebuilds its
//!   ring in binding-recovery order when the node boots, which moves keys between queues while
//!   their older messages still wait in the old ones — rabbitmq-server #3386.)
//! - On a cluster every queue is a quorum queue (`RABBITMQ_QUEUE_TYPE=quorum`): replicated by
//!   Raft over the nodes, a publish is confirmed only once a majority has written it, and the
//!   queue survives the loss of a minority of nodes. A single node keeps classic durable queues
//!   (the default): there is nothing to replicate to, and a single 3.10 node holding several
//!   hundred quorum queues stopped answering after a few restarts here (docs/RELIABILITY.md).
//!   `AMQP_URL` may list every node (comma-separated URLs); a connection goes to the first that
//!   answers, starting with the one that answered last, so a lost node costs one reconnect.
//! - `x-single-active-consumer` lets any number of instances subscribe to every queue while the
//!   broker delivers each queue to one of them at a time, in order; the others take over when
//!   it goes away. A plain shared queue with competing consumers would reorder one user.
//! - Publishes are persistent, `mandatory` and confirmed: `publish` returns only after the
//!   broker wrote the message to every group's queue, and a message no queue accepts is an
//!   error (the outbox row stays pending) rather than a silent drop.
//! - A `nack` closes the channel of that queue: the broker requeues everything unacknowledged on
//!   it at its original position before anything behind it is delivered, whatever the prefetch.
//!   What the closed channel had already handed over is discarded by its epoch.
//! - A dropped connection fails `next` (the consumer loop backs off and calls it again, which
//!   reconnects and redeclares); [`Joined`] is cleared meanwhile, so `/health` says 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::message::{
    AckToken, Delivery, HEADER_MESSAGE_ID, HEADER_MESSAGE_TYPE, Message, TokenKind,
};
use crate::{Backlog, BusError, Joined, MessageBus, Subscription, TopicSpec};

/// How long a publish may wait for its confirm before the relay retries it later.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on connecting, so `/health` and start-up never hang on a dead address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Header carrying the message key: the routing key is the queue index.
const HEADER_MESSAGE_KEY: &str = "message-key";
/// AMQP reply code of a normal close.
const REPLY_SUCCESS: u16 = 200;

/// Connection settings; defaults match the local stack.
#[derive(Debug, Clone)]
pub struct RabbitSettings {
    /// `amqp://user:pass@host:port/vhost` (`AMQP_URL`), or one such URL per node of a cluster,
    /// comma-separated; `?heartbeat=10` on each shortens the detection of a half-open
    /// connection.
    pub url: String,
    /// Queues per consumer group, the unit of order and of parallelism (`RABBITMQ_QUEUES`).
    /// Every process must use the same value: changing it moves keys between queues.
    pub queues: u16,
    /// Unacknowledged messages the broker may hand a consumer per queue (`RABBITMQ_PREFETCH`,
    /// default 256): above the consumer's batch (128), so the next batch is already here while
    /// the previous one is applied and acknowledged. At 32 a backlog drained at a fifth of the
    /// rate (698 vs 3,607 settled/s, docs/PERFORMANCE.md); a crash redelivers at most this many
    /// per queue, which the inbox absorbs.
    pub prefetch: u16,
    /// Identifies this process in the broker's connection list.
    pub client_id: String,
    /// What the topology's queues are (`RABBITMQ_QUEUE_TYPE`); every process of a topology must
    /// agree, the broker refuses a declaration of another type.
    pub queue_type: QueueType,
}

/// The kind of queue the topology declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// Durable queues on one node: the single-node layout.
    #[default]
    Classic,
    /// Raft-replicated queues: a confirm means a majority of the cluster wrote the message.
    Quorum,
}

impl QueueType {
    /// The `x-queue-type` argument.
    fn as_arg(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            other => Err(format!("{other:?} is not a queue type (classic, quorum)")),
        }
    }
}

impl RabbitSettings {
    /// Reads `AMQP_URL`, `RABBITMQ_QUEUES`, `RABBITMQ_PREFETCH`, `RABBITMQ_QUEUE_TYPE`.
    pub fn from_env(client_id: &str) -> Result<Self, platform::config::ConfigError> {
        let queues: u16 = platform::config::var_or("RABBITMQ_QUEUES", 3)?;
        if queues == 0 {
            return Err(platform::config::ConfigError {
                name: "RABBITMQ_QUEUES".into(),
                value: "0".into(),
                reason: "a group needs at least one queue".into(),
            });
        }
        Ok(RabbitSettings {
            url: platform::config::string_or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            queues,
            prefetch: platform::config::var_or("RABBITMQ_PREFETCH", 256)?,
            client_id: client_id.to_owned(),
            queue_type: platform::config::var_or("RABBITMQ_QUEUE_TYPE", QueueType::Classic)?,
        })
    }
}

/// The exchange publishers of `topic` send to; every group's queue `i` is bound to it with
/// routing key `i`.
fn topic_exchange(topic: &str) -> String {
    format!("{topic}/direct")
}

/// The queue (of every group, `0..queues`) that messages of `key` go to: FNV-1a (64 bit) of the
/// key's bytes modulo `queues`. A fixed function, the same in every process, version and after
/// any restart; changing it or `RABBITMQ_QUEUES` moves keys.
pub fn queue_for(key: &str, queues: u16) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // The remainder is below `queues`, a u16: it fits any usize.
    (hash % u64::from(queues.max(1))) as usize
}

/// Queue `index` of group `group` on `topic`.
fn group_queue(topic: &str, group: &str, index: usize) -> String {
    format!("{topic}/{group}/{index}")
}

fn broker_error(text: String) -> BusError {
    BusError::Broker(text.into())
}

/// The node of the URL list that answered last: where the next connection is tried first.
static PREFERRED_NODE: AtomicUsize = AtomicUsize::new(0);

/// Connects to the first node of `settings.url`'s list that answers, starting with the one that
/// answered last; the error of the last node tried when none does. Public for tools that manage
/// a topology outside the trait (the fault harness deletes its run's queues).
pub async fn connect(settings: &RabbitSettings) -> Result<Connection, BusError> {
    let urls: Vec<&str> = settings
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(BusError::Config("AMQP_URL names no broker".into()));
    }
    let first = PREFERRED_NODE.load(Ordering::Relaxed) % urls.len();
    let mut last = None;
    for step in 0..urls.len() {
        let index = (first + step) % urls.len();
        let props =
            ConnectionProperties::default().with_connection_name(settings.client_id.clone().into());
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(urls[index], props))
                .await
                .map_err(|_| BusError::Timeout(CONNECT_TIMEOUT))
                .and_then(|r| r.map_err(BusError::from));
        match attempt {
            Ok(connection) => {
                PREFERRED_NODE.store(index, Ordering::Relaxed);
                return Ok(connection);
            }
            Err(e) => {
                if urls.len() > 1 {
                    tracing::warn!(node = index + 1, error = %e, "RabbitMQ node not reachable; trying the next");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| BusError::Config("AMQP_URL names no broker".into())))
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// Declares the exchange of `topic` and, for each group, its queues bound by index.
async fn declare_topic(
    channel: &Channel,
    spec: &TopicSpec,
    queues: u16,
    queue_type: QueueType,
) -> Result<(), BusError> {
    let exchange = topic_exchange(&spec.topic);
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
    for group in &spec.groups {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(queue_type.as_arg().into()),
        );
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        for index in 0..usize::from(queues) {
            let queue = group_queue(&spec.topic, group, index);
            channel
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    args.clone(),
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    index.to_string().as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
    }
    Ok(())
}

/// Declares on a channel of its own: a refused declaration closes the channel it was sent on.
async fn declare_all(
    connection: &Connection,
    topology: &[TopicSpec],
    settings: &RabbitSettings,
) -> Result<(), BusError> {
    let channel = connection.create_channel().await?;
    for spec in topology {
        declare_topic(&channel, spec, settings.queues, settings.queue_type).await?;
    }
    channel.close(REPLY_SUCCESS, "declared".into()).await?;
    Ok(())
}

/// The publishing connection and its confirm-mode channel.
struct Link {
    connection: Arc<Connection>,
    channel: Channel,
}

/// The RabbitMQ bus: one publishing connection shared by all publishers of the process,
/// re-established on the first use after it broke.
pub struct RabbitBus {
    settings: RabbitSettings,
    link: tokio::sync::Mutex<Option<Link>>,
}

impl RabbitBus {
    /// Creates the bus; the broker is contacted on first use, so this does not wait for it.
    pub fn new(settings: RabbitSettings) -> Self {
        RabbitBus {
            settings,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// The live publishing channel, reconnecting if the connection or channel broke.
    async fn publisher(&self) -> Result<(Arc<Connection>, Channel), BusError> {
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref()
            && l.connection.status().connected()
            && l.channel.status().connected()
        {
            return Ok((l.connection.clone(), l.channel.clone()));
        }
        if let Some(old) = link.take() {
            let _ = old
                .connection
                .close(REPLY_SUCCESS, "reconnecting".into())
                .await;
        }
        let connection = Arc::new(connect(&self.settings).await?);
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *link = Some(Link {
            connection: connection.clone(),
            channel: channel.clone(),
        });
        Ok((connection, channel))
    }
}

fn properties(message: &Message) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        HEADER_MESSAGE_KEY.into(),
        AMQPValue::LongString(message.key.as_str().into()),
    );
    for (k, v) in &message.headers {
        headers.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
    }
    BasicProperties::default()
        .with_delivery_mode(2) // persistent
        .with_message_id(message.id.to_string().into())
        .with_type(message.kind.as_str().into())
        .with_content_type("application/json".into())
        .with_headers(headers)
}

#[async_trait]
impl MessageBus for RabbitBus {
    async fn declare(&self, topology: &[TopicSpec]) -> Result<(), BusError> {
        let (connection, _) = self.publisher().await?;
        declare_all(&connection, topology, &self.settings).await
    }

    async fn publish(&self, topic: &str, message: &Message) -> Result<(), BusError> {
        let (_, channel) = self.publisher().await?;
        let exchange = topic_exchange(topic);
        let queue = queue_for(&message.key, self.settings.queues).to_string();
        let confirm = async {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &message.payload,
                    properties(message),
                )
                .await?
                .await
        };
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| BusError::Timeout(CONFIRM_TIMEOUT))??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(broker_error(format!(
                "{topic}: no queue took the message ({} {}); is the topology declared?",
                returned.reply_code, returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(broker_error(format!(
                "{topic}: the broker refused the message"
            ))),
            Confirmation::NotRequested => Err(broker_error(
                "publisher confirms are off on the publishing channel".into(),
            )),
        }
    }

    async fn subscribe_signalled(
        &self,
        topic: &str,
        group: &str,
        joined: Joined,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let mut sub = RabbitSubscription {
            settings: self.settings.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            joined,
            live: None,
            epochs: 0,
        };
        // Attach now, so what is published after `subscribe` returns is this group's to read.
        sub.attach().await?;
        Ok(Box::new(sub))
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.publisher().await.map(drop)
    }

    /// Declares each queue of the group passively (it must exist) on a channel of its own, so
    /// a missing queue closes that channel and not the publisher's. Counts ready messages:
    /// those delivered and not yet acknowledged are in the consumer's hands, not behind it.
    async fn backlog(&self, topic: &str, group: &str) -> Result<Vec<Backlog>, BusError> {
        let (connection, _) = self.publisher().await?;
        let channel = connection.create_channel().await?;
        let mut backlog = Vec::with_capacity(usize::from(self.settings.queues));
        for index in 0..usize::from(self.settings.queues) {
            let queue = channel
                .queue_declare(
                    group_queue(topic, group, index).as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match queue {
                Ok(q) => backlog.push(Backlog {
                    partition: u32::try_from(index).unwrap_or(u32::MAX),
                    messages: u64::from(q.message_count()),
                }),
                Err(e) => return Err(e.into()),
            }
        }
        let _ = channel
            .close(REPLY_SUCCESS, "backlog measured".into())
            .await;
        Ok(backlog)
    }
}

/// What a queue's forwarding task hands the subscription.
struct Incoming {
    queue: usize,
    epoch: u64,
    item: Result<lapin::message::Delivery, String>,
}

/// One queue of the group, consumed on its own channel.
struct Reader {
    channel: Channel,
    epoch: u64,
    forwarder: JoinHandle<()>,
}

/// A connected subscription: its connection, one reader per queue, and their merged stream.
struct Live {
    connection: Arc<Connection>,
    readers: Vec<Reader>,
    tx: mpsc::UnboundedSender<Incoming>,
    rx: mpsc::UnboundedReceiver<Incoming>,
}

/// A consumer-group member on one topic: consumes every queue of the group (active on those the
/// broker gives it, standby on the others).
struct RabbitSubscription {
    settings: RabbitSettings,
    topic: String,
    group: String,
    joined: Joined,
    live: Option<Live>,
    /// Source of channel epochs, unique for the life of the subscription.
    epochs: u64,
}

impl RabbitSubscription {
    fn next_epoch(&mut self) -> u64 {
        self.epochs += 1;
        self.epochs
    }

    /// Connects, declares the group's queues and consumes each of them.
    async fn attach(&mut self) -> Result<(), BusError> {
        let connection = Arc::new(connect(&self.settings).await?);
        let spec = TopicSpec::new(&self.topic, [&self.group]);
        declare_all(&connection, std::slice::from_ref(&spec), &self.settings).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut readers = Vec::with_capacity(usize::from(self.settings.queues));
        for queue in 0..usize::from(self.settings.queues) {
            let epoch = self.next_epoch();
            readers.push(self.open_reader(&connection, queue, epoch, &tx).await?);
        }
        self.live = Some(Live {
            connection,
            readers,
            tx,
            rx,
        });
        self.joined.set();
        tracing::info!(topic = %self.topic, group = %self.group, "consuming");
        Ok(())
    }

    async fn open_reader(
        &self,
        connection: &Connection,
        queue: usize,
        epoch: u64,
        tx: &mpsc::UnboundedSender<Incoming>,
    ) -> Result<Reader, BusError> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{}-{}", self.settings.client_id, uuid::Uuid::now_v7());
        let mut consumer = channel
            .basic_consume(
                group_queue(&self.topic, &self.group, queue).into(),
                ShortString::from(tag),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tx = tx.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(item) = consumer.next().await {
                let failed = item.is_err();
                let item = item.map_err(|e| e.to_string());
                if tx.send(Incoming { queue, epoch, item }).is_err() || failed {
                    return;
                }
            }
            let item = Err("the broker ended the consumer".to_owned());
            let _ = tx.send(Incoming { queue, epoch, item });
        });
        Ok(Reader {
            channel,
            epoch,
            forwarder,
        })
    }

    /// Drops the connection; the broker requeues what was not acknowledged.
    async fn detach(&mut self) {
        self.joined.clear();
        if let Some(live) = self.live.take() {
            for r in &live.readers {
                r.forwarder.abort();
            }
            let _ = live
                .connection
                .close(REPLY_SUCCESS, "subscription closed".into())
                .await;
        }
    }

    /// The reader a token refers to, if its channel is still the one that delivered it.
    fn reader_of(&self, token: &AckToken) -> Result<Option<&Reader>, BusError> {
        let (queue, _, epoch) = rabbit_position(token)?;
        Ok(self
            .live
            .as_ref()
            .and_then(|l| l.readers.get(queue))
            .filter(|r| r.epoch == epoch))
    }
}

fn to_delivery(topic: &str, queue: usize, epoch: u64, d: lapin::message::Delivery) -> Delivery {
    let props = &d.properties;
    let mut headers = Vec::new();
    let mut key = None;
    if let Some(id) = props.message_id() {
        headers.push((HEADER_MESSAGE_ID.to_owned(), id.to_string()));
    }
    if let Some(kind) = props.kind() {
        headers.push((HEADER_MESSAGE_TYPE.to_owned(), kind.to_string()));
    }
    if let Some(table) = props.headers() {
        for (k, v) in table.inner() {
            let text = match v {
                AMQPValue::LongString(s) => {
                    std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned)
                }
                AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            };
            match text {
                Some(text) if k.as_str() == HEADER_MESSAGE_KEY => key = Some(text),
                Some(text) => headers.push((k.to_string(), text)),
                None => {}
            }
        }
    }
    Delivery {
        topic: topic.to_owned(),
        key: key.filter(|k| !k.is_empty()),
        payload: d.data,
        headers,
        token: AckToken(TokenKind::Rabbit {
            queue,
            tag: d.delivery_tag,
            epoch,
        }),
    }
}

/// The RabbitMQ position inside a token; a token of another broker is a caller's bug.
fn rabbit_position(token: &AckToken) -> Result<(usize, u64, u64), BusError> {
    match token.0 {
        TokenKind::Rabbit { queue, tag, epoch } => Ok((queue, tag, epoch)),
        _ => Err(BusError::Config(format!(
            "{token:?} was not delivered by RabbitMQ"
        ))),
    }
}

#[async_trait]
impl Subscription for RabbitSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if self.live.is_none() {
                self.attach().await?;
            }
            let live = self
                .live
                .as_mut()
                .ok_or_else(|| broker_error("not attached".into()))?;
            let Some(incoming) = live.rx.recv().await else {
                // Unreachable while `live` holds a sender; treat like a dropped connection.
                self.detach().await;
                return Err(broker_error("subscription stream ended".into()));
            };
            if live.readers.get(incoming.queue).map(|r| r.epoch) != Some(incoming.epoch) {
                continue; // handed over by a channel closed since: requeued, comes again
            }
            match incoming.item {
                Ok(d) => return Ok(to_delivery(&self.topic, incoming.queue, incoming.epoch, d)),
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "connection to RabbitMQ lost");
                    self.detach().await;
                    return Err(broker_error(e));
                }
            }
        }
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let (_, tag, _) = rabbit_position(&delivery.token)?;
        match self.reader_of(&delivery.token)? {
            Some(reader) => Ok(reader
                .channel
                .basic_ack(tag, BasicAckOptions::default())
                .await?),
            // Its channel is gone, so the broker requeued it: the next consumer has it.
            None => Ok(()),
        }
    }

    async fn nack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let (queue, _, _) = rabbit_position(&delivery.token)?;
        if self.reader_of(&delivery.token)?.is_none() {
            return Ok(()); // already requeued with its channel
        }
        let epoch = self.next_epoch();
        let Some(live) = self.live.as_mut() else {
            return Ok(());
        };
        let old = &live.readers[queue];
        old.forwarder.abort();
        // Closing the channel requeues all it holds unacknowledged, in queue order, before the
        // broker delivers anything behind it: the failed message comes back first.
        old.channel
            .close(REPLY_SUCCESS, "nack: requeue in order".into())
            .await?;
        let (connection, tx) = (live.connection.clone(), live.tx.clone());
        let reader = self.open_reader(&connection, queue, epoch, &tx).await?;
        if let Some(live) = self.live.as_mut() {
            live.readers[queue] = reader;
        }
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<(), BusError> {
        self.detach().await;
        Ok(())
    }
}

impl Drop for RabbitSubscription {
    /// A subscription dropped without `close` (its task aborted) still hands its unacknowledged
    /// messages back at once, like a crashed process whose socket the broker sees closing.
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            for r in &live.readers {
                r.forwarder.abort();
            }
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = live.connection.close(REPLY_SUCCESS, "dropped".into()).await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_s_queue_is_a_fixed_function_of_key_and_count() {
        // Pinned values: a change of the function would move every deployed key.
        assert_eq!(queue_for("", 3), 0xcbf2_9ce4_8422_2325_u64 as usize % 3);
        assert_eq!(queue_for("a", 3), 0xaf63_dc4c_8601_ec8c_u64 as usize % 3);
        assert_eq!(
            queue_for("foobar", 7),
            0x8594_4171_f739_67e8_u64 as usize % 7
        );
        let key = "6f1c9a4e-2b7d-4c8e-9f10-3a5b7c9d1e2f";
        assert_eq!(queue_for(key, 3), queue_for(key, 3));
        assert_eq!(queue_for(key, 1), 0);
        assert_eq!(queue_for(key, 0), 0, "no queue count divides by zero");
    }

    #[test]
    fn user_ids_spread_over_the_queues() {
        let mut counts = [0usize; 3];
        for _ in 0..3_000 {
            counts[queue_for(&uuid::Uuid::new_v4().to_string(), 3)] += 1;
        }
        for c in counts {
            assert!((800..=1_200).contains(&c), "uneven spread: {counts:?}");
        }
    }
}
