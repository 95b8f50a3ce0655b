//! Connection limits every server applies below HTTP: a cap on open connections and deadlines
//! a slow or silent client cannot stretch (SPEC §2, "Timeouts").
//!
//! poem offers an idle timeout but nothing for a client that keeps a connection busy without
//! finishing a request — half a header sent and then one byte every few seconds, or a body
//! trickled in chunks. [`Guarded`] watches the bytes: from the first byte of a request, its
//! headers must be complete (`\r\n\r\n` seen) within [`Limits::header_read`], and a response
//! must have started within [`Limits::request`]; otherwise the connection is closed. The
//! handler-level [`Limits::request`] deadline (a 408) normally answers first; this one catches
//! what never reaches a handler.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How much longer than [`Limits::request`] the socket waits, so the handler's 408 goes out
/// before the connection is cut.
const GRACE: Duration = Duration::from_secs(2);

/// The limits of one server, from the environment (`HTTP_*`, README "Configuration").
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a request's first byte to the end of its headers (`HTTP_HEADER_TIMEOUT_S`, 10).
    pub header_read: Duration,
    /// From a request's first byte to its response (`HTTP_REQUEST_TIMEOUT_S`, 30): a handler
    /// still running then is answered 408, a connection still reading is closed.
    pub request: Duration,
    /// A keep-alive connection with no traffic is closed after this (`HTTP_IDLE_TIMEOUT_S`, 60).
    pub idle: Duration,
    /// Most connections open at once (`HTTP_MAX_CONNECTIONS`, 1024); past it new ones wait in
    /// the kernel's accept queue instead of taking memory and file descriptors.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl Limits {
    /// Reads the `HTTP_*` variables over the defaults.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let d = Limits::default();
        let secs =
            |name: &str, default: Duration| -> Result<Duration, crate::config::ConfigError> {
                let s: u64 = crate::config::var_or(name, default.as_secs())?;
                Ok(Duration::from_secs(s.max(1)))
            };
        Ok(Limits {
            header_read: secs("HTTP_HEADER_TIMEOUT_S", d.header_read)?,
            request: secs("HTTP_REQUEST_TIMEOUT_S", d.request)?,
            idle: secs("HTTP_IDLE_TIMEOUT_S", d.idle)?,
            max_connections: crate::config::var_or::<usize>(
                "HTTP_MAX_CONNECTIONS",
                d.max_connections,
            )?
            .max(1),
        })
    }
}

/// A TCP acceptor holding at most `max_connections` open and wrapping each in [`Guarded`].
pub struct GuardedAcceptor {
    inner: TcpAcceptor,
    permits: Arc<Semaphore>,
    limits: Limits,
}

impl GuardedAcceptor {
    /// Guards `listener` with `limits`.
    pub fn new(listener: tokio::net::TcpListener, limits: Limits) -> io::Result<Self> {
        Ok(GuardedAcceptor {
            inner: TcpAcceptor::from_tokio(listener)?,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
        })
    }
}

impl Acceptor for GuardedAcceptor {
    type Io = Guarded<tokio::net::TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((Guarded::new(io, self.limits, permit), local, remote, scheme))
    }
}

/// Where the connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (idle: poem's idle timeout applies).
    Waiting,
    /// Reading headers: both deadlines run.
    Headers,
    /// Headers complete, no response yet: the request deadline runs.
    Body,
}

/// A connection enforcing the header-read and request deadlines; holds its cap permit.
pub struct Guarded<S> {
    io: S,
    limits: Limits,
    phase: Phase,
    /// The last bytes read, to find `\r\n\r\n` across reads.
    tail: [u8; 3],
    header_deadline: Pin<Box<Sleep>>,
    request_deadline: Pin<Box<Sleep>>,
    _permit: OwnedSemaphorePermit,
}

impl<S> Guarded<S> {
    fn new(io: S, limits: Limits, permit: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        Guarded {
            io,
            limits,
            phase: Phase::Waiting,
            tail: [0; 3],
            header_deadline: Box::pin(tokio::time::sleep_until(now + limits.header_read)),
            request_deadline: Box::pin(tokio::time::sleep_until(now + limits.request + GRACE)),
            _permit: permit,
        }
    }

    /// Advances the phase over bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Waiting {
            let now = Instant::now();
            self.header_deadline
                .as_mut()
                .reset(now + self.limits.header_read);
            self.request_deadline
                .as_mut()
                .reset(now + self.limits.request + GRACE);
            self.phase = Phase::Headers;
            self.tail = [0; 3];
        }
        if self.phase == Phase::Headers {
            let mut window: Vec<u8> = self.tail.to_vec();
            window.extend_from_slice(&bytes[bytes.len().saturating_sub(64 * 1024)..]);
            if window.windows(4).any(|w| w == b"\r\n\r\n") {
                self.phase = Phase::Body;
            }
            let n = window.len();
            self.tail.copy_from_slice(&window[n - 3..]);
        }
    }

    /// The error that closes a connection whose deadline passed, if one did.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let what = match self.phase {
            Phase::Waiting => return None,
            Phase::Headers if self.header_deadline.as_mut().poll(cx).is_ready() => {
                "request headers not received in time"
            }
            _ if self.request_deadline.as_mut().poll(cx).is_ready() => {
                "request not completed in time"
            }
            _ => return None,
        };
        Some(io::Error::new(io::ErrorKind::TimedOut, what))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = buf.filled()[before..].to_vec();
            this.saw(&new);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // A response is under way: the request is answered, the next one starts a new clock.
        this.phase = Phase::Waiting;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
