//! `platform::http::serve_with` against real sockets: the slow and silent clients of issue 8
//! (half a header, a trickled body, a connection that never speaks) are cut off, and the
//! connection cap holds new connections back until one closes.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use platform::conn::Limits;
use poem::{Body, handler};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Reads the whole body, as a JSON handler would.
#[handler]
async fn echo(body: Body) -> String {
    let bytes = body.into_vec().await.unwrap_or_default();
    format!("read {}", bytes.len())
}

/// Serves [`echo`] with `limits` on a port-0 listener; returns its address.
async fn serve(limits: Limits) -> (String, CancellationToken) {
    let listener = platform::http::bind("127.0.0.1", 0).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = CancellationToken::new();
    tokio::spawn(platform::http::serve_with(
        listener,
        poem::Route::new().at("/", poem::post(echo).get(echo)),
        stop.clone(),
        limits,
    ));
    (addr, stop)
}

fn limits() -> Limits {
    Limits {
        header_read: Duration::from_secs(1),
        request: Duration::from_secs(2),
        idle: Duration::from_secs(3),
        max_connections: 16,
    }
}

/// What the server sends before it closes the connection, or `None` if it is still open after
/// `within`.
async fn until_closed(conn: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn half_a_header_is_cut_off_after_the_header_timeout() {
    let (addr, stop) = serve(limits()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Keep trickling header lines: activity must not extend the header deadline.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if conn.write_all(b"X-A: b\r\n").await.is_err() {
            break;
        }
    }
    let closed = until_closed(&mut conn, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the connection is still open");
    stop.cancel();
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_after_the_request_timeout() {
    let (addr, stop) = serve(limits()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if conn.write_all(b"a").await.is_err() {
            break;
        }
    }
    let answer = until_closed(&mut conn, Duration::from_secs(5))
        .await
        .expect("closed after the request timeout");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains(r#""error""#), "the envelope: {answer:?}");
    stop.cancel();
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let (addr, stop) = serve(limits()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let closed = until_closed(&mut conn, Duration::from_secs(6)).await;
    assert_eq!(closed.as_deref(), Some(""), "closed without a word");
    stop.cancel();
}

#[tokio::test]
async fn a_normal_request_and_keep_alive_still_work() {
    let (addr, stop) = serve(limits()).await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        conn.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("read 2"), "{text}");
        // Longer than the header timeout, shorter than idle: the deadlines restart per request.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    stop.cancel();
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let (addr, stop) = serve(Limits {
        max_connections: 1,
        ..limits()
    })
    .await;
    let first = TcpStream::connect(&addr).await.unwrap();
    let mut second = TcpStream::connect(&addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(700), second.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap");
    drop(first);
    let answer = until_closed(&mut second, Duration::from_secs(5))
        .await
        .expect("served once the first closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    stop.cancel();
}
