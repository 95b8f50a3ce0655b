//! The hostile corpus (`validation::hostile`) through both public edges — the gateway and the
//! front end's nginx `/api` — plus what a table of requests cannot express: 10 MB bodies,
//! declared or streamed, and bodies that trickle in or stop half-way. Every refusal carries the
//! envelope and its status, and nothing is written.

use std::time::Duration;

use e2e::api::Gateway;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::whole;
use crate::invalid_requests::assert_refused;
use crate::validation::hostile;

/// Ten megabytes: far over the 64 KiB limit, so a server that buffered it first would show.
const TEN_MB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn the_hostile_corpus_is_refused_at_both_edges_and_writes_nothing() {
    let api = Gateway::from_env();
    let (ghost, holder) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(holder, json!(100)).await;
    let edges = [api.clone(), Gateway::frontend_from_env()];
    assert_refused(&api, &edges, &hostile::cases(ghost, holder), ghost, holder).await;
}

/// A 10 MB body is a 413 with the envelope on every POST at both edges: declared with
/// `Content-Length` (answered before the body is sent: `Expect: 100-continue`) or streamed
/// chunked until the server gives up reading; nothing is written.
#[tokio::test]
async fn ten_megabyte_bodies_are_413_at_both_edges() {
    let api = Gateway::from_env();
    let (ghost, holder) = (Uuid::new_v4(), Uuid::new_v4());
    api.create_account(holder, json!(100)).await;
    let mut problems = Vec::new();
    for edge in [api.clone(), Gateway::frontend_from_env()] {
        for path in ["/orders", "/accounts", "/accounts/topup"] {
            for chunked in [false, true] {
                let answer = post_ten_mb(&edge, path, ghost, chunked).await;
                let ok = answer.status == 413
                    && serde_json::from_str::<Value>(&answer.body)
                        .is_ok_and(|v| v["error"]["code"] == "PAYLOAD_TOO_LARGE");
                if !ok {
                    problems.push(format!(
                        "{}{path} ({}): {} {}",
                        edge.base(),
                        if chunked { "chunked" } else { "declared" },
                        answer.status,
                        answer.body
                    ));
                }
            }
        }
    }
    assert!(
        api.orders_of(ghost).await.is_empty(),
        "an order was written"
    );
    assert!(api.account(ghost).await.is_none(), "an account was written");
    assert_eq!(api.balance_cents(holder).await, whole(100));
    assert!(
        problems.is_empty(),
        "not refused with 413:\n{}",
        problems.join("\n")
    );
}

/// A body sent a few bytes at a time is read whole: a valid one creates its order, one with an
/// unknown field is a 400 naming it; a body cut off half-way (the client gives up) is a 400 —
/// the gateway once called it the orders service's 502 — and writes nothing.
#[tokio::test]
async fn trickled_bodies_are_read_whole_and_a_cut_body_writes_nothing() {
    let api = Gateway::from_env();
    let (ghost, payer) = (Uuid::new_v4(), Uuid::new_v4());
    let edge = &api;

    let valid = format!(r#"{{"user_id":"{payer}","amount":1.25,"description":"slow"}}"#);
    let answer = trickle(edge, "/orders", &valid, valid.len()).await;
    assert_eq!(answer.status, 201, "{}", answer.body);

    let unknown = format!(r#"{{"user_id":"{ghost}","amount":1,"description":"x","extra":true}}"#);
    let answer = trickle(edge, "/orders", &unknown, unknown.len()).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("extra"), "{}", answer.body);

    let cut = format!(r#"{{"user_id":"{ghost}","amount":1,"description":"never finished"}}"#);
    let answer = trickle(edge, "/orders", &cut, cut.len() / 2).await;
    // The client's fault, said as such: not a 502 blaming the orders service.
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(answer.body.contains("BAD_REQUEST"), "{}", answer.body);

    let placed = api.orders_of(payer).await;
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(placed[0].description, "slow");
    assert!(
        api.orders_of(ghost).await.is_empty(),
        "a refused or cut body wrote an order"
    );
}

/// The `Authorization` header line `edge` would send with a POST of `body` to `path` (the
/// token of the user `body` names), or nothing with `AUTH=off`.
fn bearer_line(edge: &Gateway, path: &str, body: &[u8]) -> String {
    edge.authorization(&reqwest::Method::POST, path, Some(body))
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default()
}

/// What came back on a raw connection; status 0 when the connection ended without an answer.
struct Answer {
    status: u16,
    body: String,
}

/// `host:port` and the path prefix of an edge's base URL (`http://127.0.0.1:8083/api`).
fn split_base(base: &str) -> (String, String) {
    let rest = base
        .strip_prefix("http://")
        .expect("a plain http:// base URL");
    match rest.split_once('/') {
        Some((host, prefix)) => (host.to_owned(), format!("/{prefix}")),
        None => (rest.to_owned(), String::new()),
    }
}

/// Reads one HTTP/1.1 response (head, then a `Content-Length` body) or whatever arrived before
/// the connection ended.
async fn read_answer(stream: &mut (impl AsyncReadExt + Unpin)) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8_lossy(&buf[end + 4..]).to_string();
            return Answer { status, body };
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                return Answer {
                    status: 0,
                    body: String::from_utf8_lossy(&buf).to_string(),
                };
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// POSTs 10 MB of JSON-looking bytes to `path`: declared (`Content-Length` and `Expect:
/// 100-continue`, body sent only if the server asks for it) or chunked, written by a task of
/// its own while the answer is read, so a server that answers early is heard.
async fn post_ten_mb(edge: &Gateway, path: &str, user: Uuid, chunked: bool) -> Answer {
    let (host, prefix) = split_base(edge.base());
    let stream = TcpStream::connect(&host)
        .await
        .expect("connect to the edge");
    let (mut reader, mut writer) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked\r\n".to_owned()
    } else {
        format!("Content-Length: {TEN_MB}\r\nExpect: 100-continue\r\n")
    };
    let filler = format!(r#"{{"user_id":"{user}","amount":1,"description":""#).into_bytes();
    // As the user the body names: the size, not a missing token, is what must be refused.
    let authorization = bearer_line(edge, path, format!(r#"{{"user_id":"{user}"}}"#).as_bytes());
    let head = format!(
        "POST {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{authorization}{framing}Connection: close\r\n\r\n"
    );
    writer
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let sender = tokio::spawn(async move {
        if !chunked {
            return; // the server answers the declared length before asking for the body
        }
        let mut sent = 0;
        let piece = [filler, vec![b'a'; 64 * 1024 - 64]].concat();
        while sent < TEN_MB {
            let frame = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
            if writer.write_all(&frame).await.is_err() {
                return; // the server stopped reading: expected once it has answered
            }
            sent += piece.len();
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let answer = tokio::time::timeout(Duration::from_secs(30), read_answer(&mut reader))
        .await
        .unwrap_or(Answer {
            status: 0,
            body: "no answer within 30 s".into(),
        });
    sender.abort();
    // A `100 Continue` (the server asking for the 10 MB) comes back as status 100: a failure.
    answer
}

/// POSTs `body` in 8-byte pieces 20 ms apart, stopping after `send` bytes; if it stopped early,
/// the client half-closes and reads what the server answers.
async fn trickle(edge: &Gateway, path: &str, body: &str, send: usize) -> Answer {
    let (host, prefix) = split_base(edge.base());
    let mut stream = TcpStream::connect(&host)
        .await
        .expect("connect to the edge");
    let authorization = bearer_line(edge, path, body.as_bytes());
    let head = format!(
        "POST {prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{authorization}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    for piece in body.as_bytes()[..send].chunks(8) {
        stream.write_all(piece).await.expect("send a piece");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if send < body.len() {
        stream.shutdown().await.expect("half-close");
    }
    tokio::time::timeout(Duration::from_secs(30), read_answer(&mut stream))
        .await
        .unwrap_or(Answer {
            status: 0,
            body: "no answer within 30 s".into(),
        })
}
