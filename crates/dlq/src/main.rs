//! `dlq` — what an operator does with dead letters (SPEC §3.6), on either broker (`BROKER`,
//! `KAFKA_BROKERS`, `AMQP_URL` as for the services):
//!
//! - `dlq list payment.requests` prints every message of `payment.requests.dlq` — id, key, type,
//!   why it was dead-lettered — and leaves them there;
//! - `dlq replay payment.requests [--id <message-id>]...` publishes them (or only the named ones)
//!   back to the topic they came from with their original message id, so a consumer's inbox
//!   still recognises what it already applied, and removes them from the dead-letter topic.
//!
//! It reads as the dead-letter group (`dead-letters`): nothing is acknowledged but what was
//! replayed. A message kept back while others are replayed is re-appended to the dead-letter
//! topic first (a Kafka group's offset cannot skip over it otherwise).

use std::time::Duration;

use anyhow::Context;
use bus::consumer::{DLQ_GROUP, dlq_spec, dlq_topic};
use bus::message::{HEADER_DLQ_ERROR, HEADER_DLQ_SOURCE, HEADER_MESSAGE_ID, HEADER_MESSAGE_TYPE};
use bus::{Delivery, Joined, Message, MessageBus, Subscription};
use clap::{Parser, Subcommand};

/// Command line.
#[derive(Parser)]
#[command(about = "List or replay the dead letters of a topic")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How long to wait for one more dead letter before deciding there are no more.
    #[arg(long, default_value_t = 3000, global = true)]
    idle_ms: u64,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Print the dead letters of TOPIC and keep them.
    List {
        /// The source topic (its dead letters are in `<topic>.dlq`).
        topic: String,
    },
    /// Publish the dead letters of TOPIC back to where they came from.
    Replay {
        /// The source topic (its dead letters are in `<topic>.dlq`).
        topic: String,
        /// Replay only these message ids (repeatable); default: all.
        #[arg(long = "id")]
        ids: Vec<uuid::Uuid>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let bus = bus::connect::from_env("dlq")?;
    let idle = Duration::from_millis(cli.idle_ms);
    match cli.command {
        Command::List { topic } => {
            let (mut sub, joined) = open(bus.as_ref(), &topic).await?;
            let letters = drain(sub.as_mut(), &joined, idle).await?;
            for d in &letters {
                println!("{}", describe(d));
            }
            println!("{} dead letter(s) in {}", letters.len(), dlq_topic(&topic));
            // Nothing acknowledged: closing hands them all back.
            sub.close().await?;
        }
        Command::Replay { topic, ids } => {
            let (mut sub, joined) = open(bus.as_ref(), &topic).await?;
            let letters = drain(sub.as_mut(), &joined, idle).await?;
            let (mut replayed, mut kept) = (0, 0);
            for d in &letters {
                let chosen = ids.is_empty() || d.message_id().is_ok_and(|id| ids.contains(&id));
                let (target, message) = if chosen {
                    (source_of(d, &topic), original(d)?)
                } else {
                    (dlq_topic(&topic), kept_copy(d)?)
                };
                bus.publish(&target, &message)
                    .await
                    .with_context(|| format!("publishing {} to {target}", message.id))?;
                sub.ack(d).await?;
                if chosen {
                    println!("replayed {} to {target}", message.id);
                    replayed += 1;
                } else {
                    kept += 1;
                }
            }
            sub.close().await?;
            println!("{replayed} replayed, {kept} kept in {}", dlq_topic(&topic));
        }
    }
    Ok(())
}

/// The dead-letter group of `topic`'s dead-letter topic, and its attachment signal.
async fn open(
    bus: &dyn MessageBus,
    topic: &str,
) -> anyhow::Result<(Box<dyn Subscription>, Joined)> {
    bus.declare(&[dlq_spec(topic)]).await?;
    let joined = Joined::default();
    let sub = bus
        .subscribe_signalled(&dlq_topic(topic), DLQ_GROUP, joined.clone())
        .await?;
    Ok((sub, joined))
}

/// Everything the subscription holds: receives until nothing more comes within `idle` once
/// attached (receiving is what lets a Kafka member join, so attaching is awaited in between).
async fn drain(
    sub: &mut dyn Subscription,
    joined: &Joined,
    idle: Duration,
) -> anyhow::Result<Vec<Delivery>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut letters = Vec::new();
    loop {
        match tokio::time::timeout(idle, sub.next()).await {
            Ok(next) => letters.push(next?),
            Err(_) if joined.is_set() => return Ok(letters),
            Err(_) => anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "not attached to the dead-letter group within 60 s"
            ),
        }
    }
}

/// One line per dead letter.
fn describe(d: &Delivery) -> String {
    let body = String::from_utf8_lossy(&d.payload);
    let body: String = body.chars().take(200).collect();
    format!(
        "id={} key={} type={} from={} error={:?} body={body}",
        d.header(HEADER_MESSAGE_ID).unwrap_or("-"),
        d.key.as_deref().unwrap_or("-"),
        d.header(HEADER_MESSAGE_TYPE).unwrap_or("-"),
        d.header(HEADER_DLQ_SOURCE).unwrap_or("-"),
        d.header(HEADER_DLQ_ERROR).unwrap_or("-"),
    )
}

/// Where a dead letter came from (its header; `topic` for letters without one).
fn source_of(d: &Delivery, topic: &str) -> String {
    d.header(HEADER_DLQ_SOURCE).unwrap_or(topic).to_owned()
}

/// The message as it was first published: same id, key, type and body, without the
/// dead-letter headers.
fn original(d: &Delivery) -> anyhow::Result<Message> {
    let mut m = kept_copy(d)?;
    m.headers
        .retain(|(k, _)| k != HEADER_DLQ_ERROR && k != HEADER_DLQ_SOURCE);
    Ok(m)
}

/// The dead letter as it is, to append to the dead-letter topic again.
fn kept_copy(d: &Delivery) -> anyhow::Result<Message> {
    let id = d
        .message_id()
        .map_err(anyhow::Error::msg)
        .context("a dead letter without a message id cannot be replayed safely")?;
    Ok(Message {
        id,
        key: d.key.clone().unwrap_or_default(),
        kind: d
            .header(HEADER_MESSAGE_TYPE)
            .unwrap_or("unknown")
            .to_owned(),
        payload: d.payload.clone(),
        headers: d
            .headers
            .iter()
            .filter(|(k, _)| k != HEADER_MESSAGE_ID && k != HEADER_MESSAGE_TYPE)
            .cloned()
            .collect(),
    })
}
