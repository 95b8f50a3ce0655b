//! `GET /orders/stream`: one user's order changes as Server-Sent Events.
//!
//! Wire format (docs/API.md): each change is `event: order`, `id: <cursor>`, `data: <order as
//! GET /orders/{id} shows it>`. Changes caught up from the table after a resume or a gap come
//! without ids, followed by an id-only message (`id: <cursor>`, no data) that moves the client's
//! `Last-Event-ID` past them; a stream opened without `Last-Event-ID` starts with such a message.
//! Keep-alive comments (`:`) every [`KEEP_ALIVE`]. A change may be sent twice (after a gap), so a
//! client applies events by `order_id`; a status never goes back from FINISHED/FAILED to NEW.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use poem::web::sse::Event;
use poem_openapi::payload::EventStream;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use contract::{OrderId, UserId};

use crate::api::OrderDto;
use crate::domain::OrderStatus;
use crate::feed::{Cursor, Feed, Item, Subscription};
use crate::store;

/// How often an idle stream sends a comment, so that proxies (nginx, the gateway) and clients
/// see it alive: well inside nginx's 30 s read timeout and the gateway's stream read timeout.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Rows per catch-up query.
const CATCH_UP_PAGE: i64 = 500;

/// One message of the stream.
pub enum StreamEvent {
    /// An order as a change left it; `id` is set for live changes.
    Order {
        /// The order.
        order: OrderDto,
        /// Where a client resumes after it.
        id: Option<Cursor>,
    },
    /// A position only (no event is dispatched; the client's `Last-Event-ID` moves).
    Position(Cursor),
}

/// The stream's items are orders in the OpenAPI document: the schema of its `data`.
impl Type for StreamEvent {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        OrderDto::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        OrderDto::schema_ref()
    }

    fn register(registry: &mut Registry) {
        OrderDto::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ToJSON for StreamEvent {
    fn to_json(&self) -> Option<Value> {
        match self {
            StreamEvent::Order { order, .. } => order.to_json(),
            StreamEvent::Position(_) => None,
        }
    }
}

impl StreamEvent {
    fn into_event(self) -> Event {
        match self {
            StreamEvent::Order { order, id } => {
                let event = Event::message(order.to_json_string()).event_type("order");
                match id {
                    Some(id) => event.id(id.as_str()),
                    None => event,
                }
            }
            StreamEvent::Position(id) => Event::message("").id(id.as_str()),
        }
    }
}

/// The body of `GET /orders/stream`.
pub type OrderStream = EventStream<BoxStream<'static, StreamEvent>>;

/// A stream's state between messages.
struct Streaming {
    subscription: Subscription,
    pool: PgPool,
    user: UserId,
    /// The last position sent: where a catch-up starts.
    last: Cursor,
    queue: VecDeque<StreamEvent>,
    /// Orders the last catch-up sent settled: a stale NEW of theirs still queued in the
    /// fan-out is not sent after it.
    settled: HashSet<OrderId>,
    shutdown: CancellationToken,
}

/// Opens `user`'s stream, resuming after `resume` when the client sent `Last-Event-ID`: the
/// subscription exists before the starting point is read, so no change falls in between.
/// `None` when the bound of open streams is reached.
pub async fn open(
    feed: &Arc<Feed>,
    pool: &PgPool,
    user: UserId,
    resume: Option<Cursor>,
    shutdown: CancellationToken,
) -> Result<Option<OrderStream>, sqlx::Error> {
    let Some(subscription) = feed.subscribe(user) else {
        return Ok(None);
    };
    let (last, resuming) = match resume {
        Some(cursor) => (cursor, true),
        None => (watermark(pool).await?, false),
    };
    let mut state = Streaming {
        subscription,
        pool: pool.clone(),
        user,
        last,
        queue: VecDeque::new(),
        settled: HashSet::new(),
        shutdown,
    };
    if resuming {
        state.catch_up().await?;
    } else {
        state
            .queue
            .push_back(StreamEvent::Position(state.last.clone()));
    }
    let stream = futures::stream::unfold(state, |mut s| async move {
        s.next().await.map(|event| (event, s))
    })
    .boxed();
    Ok(Some(
        EventStream::new(stream)
            .keep_alive(KEEP_ALIVE)
            .to_event(StreamEvent::into_event),
    ))
}

/// The stream position now, as a cursor.
async fn watermark(pool: &PgPool) -> Result<Cursor, sqlx::Error> {
    Cursor::parse(&store::watermark(pool).await?).map_err(|e| sqlx::Error::Decode(e.into()))
}

impl Streaming {
    /// The next message; `None` ends the stream (shutdown, or the database is unreachable
    /// while catching up: the client reconnects with its `Last-Event-ID`).
    async fn next(&mut self) -> Option<StreamEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let item = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                item = self.subscription.changes.recv() => item,
            };
            match item {
                Ok(Item::Change(change)) => {
                    let order = &change.order;
                    if order.status == OrderStatus::New && self.settled.contains(&order.order_id) {
                        continue;
                    }
                    self.last = change.cursor.clone();
                    return Some(StreamEvent::Order {
                        order: order.clone().into(),
                        id: Some(change.cursor.clone()),
                    });
                }
                Ok(Item::Resync) | Err(RecvError::Lagged(_)) => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, user_id = %self.user, "order stream ends: catch-up failed");
                        return None;
                    }
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Queues every order changed since `last` (current state, oldest change first), then the
    /// position taken before reading them.
    async fn catch_up(&mut self) -> Result<(), sqlx::Error> {
        let watermark = watermark(&self.pool).await?;
        let mut after = (self.last.as_str().to_owned(), OrderId(Uuid::nil()));
        self.settled.clear();
        loop {
            let page =
                store::changed_since(&self.pool, self.user, (&after.0, after.1), CATCH_UP_PAGE)
                    .await?;
            let full = page.len() as i64 == CATCH_UP_PAGE;
            for (xid, order) in page {
                after = (xid, order.order_id);
                if order.status != OrderStatus::New {
                    self.settled.insert(order.order_id);
                }
                self.queue.push_back(StreamEvent::Order {
                    order: order.into(),
                    id: None,
                });
            }
            if !full {
                break;
            }
        }
        self.queue
            .push_back(StreamEvent::Position(watermark.clone()));
        self.last = watermark;
        Ok(())
    }
}
