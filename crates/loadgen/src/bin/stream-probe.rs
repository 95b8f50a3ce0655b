//! `stream-probe` — what the order stream (`GET /orders/stream`) costs and how fast it is, on
//! the running stack.
//!
//! 1. Latency: through each edge (the gateway, nginx's `/api`) it follows one user over the
//!    stream and places `--orders` orders, one every `--pace-ms`; for every event the delay is
//!    its arrival minus the row's own timestamp in the event (`created_at` for NEW, `updated_at`
//!    for the settled state: the time of the writing transaction, on the same clock). p50, p99
//!    and max, per edge and per kind.
//! 2. Idle cost: the orders and gateway processes' CPU (from `/proc/<pid>/stat`) and RSS over
//!    `--window-s` with no stream, then again with `--idle-streams` open streams of idle users
//!    through the gateway, side by side.
//!
//! `--auth` (default `auto`) sends each user's bearer token on its stream and its requests
//! (the account opened with the `payments:topup` scope), minted before anything is measured.
//!
//! ```text
//! . .stack/env && cargo run --release -p loadgen --bin stream-probe
//! ```

#[path = "../auth.rs"]
mod auth;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use auth::{AuthFlag, TOPUP_SCOPE};
use chrono::{DateTime, Utc};
use clap::Parser;
use devauth::Signer;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use testkit::sse::EventStream;
use uuid::Uuid;

/// Command line; URLs and pid files default to what the local stack exports and writes.
#[derive(Debug, Parser)]
#[command(about = "Measure the order stream: delivery latency and the cost of idle streams")]
struct Args {
    /// The gateway.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// The frontend (nginx); its `/api` is the second edge.
    #[arg(long, env = "FRONTEND_URL", default_value = "http://127.0.0.1:8083")]
    frontend: String,
    /// Orders to follow per edge.
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// Pause between two orders.
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Idle streams to hold open for the cost measurement (0 skips it).
    #[arg(long, default_value_t = 500)]
    idle_streams: usize,
    /// Length of each CPU window.
    #[arg(long, default_value_t = 20)]
    window_s: u64,
    /// Where the stack writes its pid files.
    #[arg(long, default_value = ".stack/pids")]
    pids: PathBuf,
    /// Write the figures as JSON here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Bearer tokens: `jwt` always, `off` never, `auto` when the environment has a signing key
    /// (`. .stack/env` of a stack with `AUTH=jwt`).
    #[arg(long, value_enum, default_value_t = AuthFlag::Auto)]
    auth: AuthFlag,
}

/// How long the probe's tokens are valid: longer than any run of it.
const TOKEN_TTL: Duration = Duration::from_secs(4 * 3600);

/// One user's `Authorization` values: its own (stream, orders) and with the operator scope
/// (opening its account with a balance); `None` without tokens.
struct Credentials {
    user: Option<HeaderValue>,
    operator: Option<HeaderValue>,
}

impl Credentials {
    fn mint(signer: Option<&Signer>, user: Uuid) -> Credentials {
        let sub = user.to_string();
        Credentials {
            user: signer.map(|s| auth::bearer(s, &sub, &[], TOKEN_TTL)),
            operator: signer.map(|s| auth::bearer(s, &sub, &[TOPUP_SCOPE], TOKEN_TTL)),
        }
    }
}

/// A client that sends `authorization` on every request: [`EventStream::open`] takes a client,
/// not headers, and each stream is its user's.
fn client_with(authorization: Option<&HeaderValue>) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization {
        headers.insert(AUTHORIZATION, value.clone());
    }
    Ok(reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let signer = auth::signer(args.auth)?;
    println!(
        "auth     {}",
        if signer.is_some() {
            "bearer tokens sent (minted before each measurement)"
        } else {
            "no tokens sent"
        }
    );
    let mut report = json!({"auth": if signer.is_some() { "jwt" } else { "off" }});
    for (edge, base) in [
        ("gateway", args.gateway.clone()),
        (
            "nginx",
            format!("{}/api", args.frontend.trim_end_matches('/')),
        ),
    ] {
        let (new, settled) = latency(&base, &args, signer.as_ref()).await?;
        println!(
            "{edge:8} NEW      {}\n{edge:8} settled  {}",
            summary(&new),
            summary(&settled)
        );
        report[edge] = json!({"new_ms": figures(&new), "settled_ms": figures(&settled)});
    }
    if args.idle_streams > 0 {
        report["idle"] = idle_cost(&args, signer.as_ref()).await?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// Follows one fresh user through `base` while placing orders; the delays of NEW and settled
/// events, in milliseconds.
async fn latency(
    base: &str,
    args: &Args,
    signer: Option<&Signer>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let user = Uuid::new_v4();
    let credentials = Credentials::mint(signer, user);
    post(
        &client_with(credentials.operator.as_ref())?,
        &format!("{base}/accounts"),
        json!({"user_id": user, "balance": 1_000_000}),
    )
    .await?;
    let client = &client_with(credentials.user.as_ref())?;
    let url = format!("{base}/orders/stream?user_id={user}");
    let mut stream = EventStream::open(client, &url, None)
        .await
        .map_err(|r| anyhow::anyhow!("{url}: {} {}", r.status, r.body))?;
    stream
        .next(Duration::from_secs(10))
        .await
        .context("the stream's first message")?;
    let placing = {
        let client = client.clone();
        let orders = format!("{base}/orders");
        let (count, pace) = (args.orders, Duration::from_millis(args.pace_ms));
        tokio::spawn(async move {
            for i in 0..count {
                let body =
                    json!({"user_id": user, "amount": 1, "description": format!("probe {i}")});
                post(&client, &orders, body).await?;
                tokio::time::sleep(pace).await;
            }
            anyhow::Ok(())
        })
    };
    let (mut new, mut settled) = (Vec::new(), Vec::new());
    while settled.len() < args.orders {
        let message = stream
            .next_event("order", Duration::from_secs(30))
            .await
            .context("an order event within 30 s")?;
        let arrived = Utc::now();
        let order: Value = serde_json::from_str(&message.data)?;
        let (list, stamp) = match order["status"].as_str() {
            Some("NEW") => (&mut new, "created_at"),
            _ => (&mut settled, "updated_at"),
        };
        let at: DateTime<Utc> = order[stamp].as_str().context("a timestamp")?.parse()?;
        list.push((arrived - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
    }
    placing.await??;
    Ok((new, settled))
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<()> {
    let resp = client.post(url).json(&body).send().await?;
    if !resp.status().is_success() {
        bail!("POST {url}: {}", resp.status());
    }
    Ok(())
}

/// CPU and RSS of orders and the gateway over a window without streams, then with
/// `--idle-streams` idle streams open through the gateway.
async fn idle_cost(args: &Args, signer: Option<&Signer>) -> anyhow::Result<Value> {
    let window = Duration::from_secs(args.window_s);
    let pids = [
        ("orders", pid(&args.pids, "orders")?),
        ("gateway", pid(&args.pids, "gateway")?),
    ];
    // One client per idle user, its token minted here: nothing of it inside a window.
    let idle: Vec<(Uuid, reqwest::Client)> = (0..args.idle_streams)
        .map(|_| {
            let user = Uuid::new_v4();
            let client = client_with(Credentials::mint(signer, user).user.as_ref())?;
            anyhow::Ok((user, client))
        })
        .collect::<Result<_, _>>()?;
    let before = measure(&pids, window).await?;
    let mut streams = Vec::with_capacity(args.idle_streams);
    for (user, client) in &idle {
        let url = format!("{}/orders/stream?user_id={user}", args.gateway);
        let mut stream = EventStream::open(client, &url, None)
            .await
            .map_err(|r| anyhow::anyhow!("{url}: {} {}", r.status, r.body))?;
        stream.next(Duration::from_secs(10)).await.context("open")?;
        streams.push(stream);
    }
    let with = measure(&pids, window).await?;
    let mut out = json!({"streams": args.idle_streams, "window_s": args.window_s});
    for (i, (name, _)) in pids.iter().enumerate() {
        let ((cpu0, rss0), (cpu1, rss1)) = (before[i], with[i]);
        let per_stream_kib = (rss1 - rss0) as f64 / 1024.0 / args.idle_streams as f64;
        println!(
            "{name:8} CPU {cpu0:.2} % without streams, {cpu1:.2} % with {} idle; RSS {:.1} → {:.1} MiB ({per_stream_kib:.1} KiB per stream)",
            args.idle_streams,
            rss0 as f64 / 1048576.0,
            rss1 as f64 / 1048576.0
        );
        out[*name] = json!({
            "cpu_percent_without": cpu0, "cpu_percent_with": cpu1,
            "rss_bytes_without": rss0, "rss_bytes_with": rss1, "rss_kib_per_stream": per_stream_kib,
        });
    }
    drop(streams);
    Ok(out)
}

fn pid(dir: &std::path::Path, name: &str) -> anyhow::Result<u32> {
    let path = dir.join(format!("{name}.pid"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(text.trim().parse()?)
}

/// Per process: CPU percent of one core over `window`, and RSS at its end.
async fn measure(pids: &[(&str, u32)], window: Duration) -> anyhow::Result<Vec<(f64, u64)>> {
    let start: Vec<u64> = pids
        .iter()
        .map(|(_, p)| cpu_ticks(*p))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t.elapsed().as_secs_f64();
    let mut out = Vec::new();
    for (i, (_, p)) in pids.iter().enumerate() {
        let ticks = cpu_ticks(*p)? - start[i];
        // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
        out.push((ticks as f64 / 100.0 / secs * 100.0, rss(*p)?));
    }
    Ok(out)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches(" kB")
        .parse()?;
    Ok(kib * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn figures(samples: &[f64]) -> Value {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    json!({"n": s.len(), "p50": percentile(&s, 50.0), "p99": percentile(&s, 99.0), "max": s.last()})
}

fn summary(samples: &[f64]) -> String {
    let f = figures(samples);
    format!(
        "n {} p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        f["n"],
        f["p50"].as_f64().unwrap_or(f64::NAN),
        f["p99"].as_f64().unwrap_or(f64::NAN),
        f["max"].as_f64().unwrap_or(f64::NAN)
    )
}
