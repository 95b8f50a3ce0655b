//! A Server-Sent Events client for tests: what a browser's `EventSource` does with the bytes,
//! minus reconnecting (a test reconnects itself, choosing its `Last-Event-ID`).

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;

/// One dispatched message: an event, or an id-only message (empty `event` and `data`) that
/// only moves the client's last event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `event:` (empty when absent).
    pub event: String,
    /// `id:` of this message, when it had one.
    pub id: Option<String>,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// An open event stream.
pub struct EventStream {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
    /// The last id received, as `EventSource.lastEventId` would hold it.
    pub last_event_id: Option<String>,
    /// Keep-alive comments received so far.
    pub comments: usize,
}

/// Why a stream could not be opened.
#[derive(Debug)]
pub struct Refused {
    /// The status instead of 200.
    pub status: reqwest::StatusCode,
    /// Its body.
    pub body: String,
}

impl EventStream {
    /// `GET url` with `Accept: text/event-stream` (and `Last-Event-ID` if given); the stream
    /// when it answered 200 `text/event-stream`, else the answer.
    pub async fn open(
        client: &reqwest::Client,
        url: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, Refused> {
        let mut request = client.get(url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let resp = request.send().await.expect("stream request sent");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if status != reqwest::StatusCode::OK || !content_type.starts_with("text/event-stream") {
            let body = resp.text().await.unwrap_or_default();
            return Err(Refused { status, body });
        }
        Ok(EventStream {
            body: resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buffer: String::new(),
            last_event_id: last_event_id.map(str::to_owned),
            comments: 0,
        })
    }

    /// The next message within `wait`; `None` when none came in time or the stream ended.
    pub async fn next(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(message) = self.take_message() {
                return Some(message);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event named `event` within `wait`, skipping others (and id-only messages).
    pub async fn next_event(&mut self, event: &str, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.next(left).await?;
            if message.event == event {
                return Some(message);
            }
        }
    }

    /// Parses one complete message off the buffer, if there is one (comments are counted and
    /// dropped; a block of only comments dispatches nothing).
    fn take_message(&mut self) -> Option<Message> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            if normalized.len() != self.buffer.len() {
                self.buffer = normalized;
            }
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut message = Message {
                event: String::new(),
                id: None,
                data: String::new(),
            };
            let mut data_lines = Vec::new();
            let mut fields = 0;
            for line in block.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                fields += 1;
                match field {
                    "event" => message.event = value.to_owned(),
                    "data" => data_lines.push(value.to_owned()),
                    "id" => message.id = Some(value.to_owned()),
                    _ => {}
                }
            }
            if fields == 0 {
                continue;
            }
            if let Some(id) = &message.id {
                self.last_event_id = Some(id.clone());
            }
            message.data = data_lines.join("\n");
            return Some(message);
        }
    }
}
