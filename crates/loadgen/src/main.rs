//! `loadgen` — orders through the public HTTP API, open loop at a rate or closed loop at max.
//!
//! It opens `--users` accounts, places `--orders` orders of 1 spread over them, waits until every
//! one has left NEW, and reports accepted/s, settled/s, POST latency and settle latency
//! (POST → terminal status, from the order rows' own `created_at`/`updated_at`, read from the
//! orders database, so measuring adds no load to the API). With a PostgreSQL server URL it also
//! runs pgbench's single-row insert on the same server in the same run and prints settled/s as a
//! ratio to it. A JSON report (`--report`) keeps the numbers and the per-second series, with SVG
//! plots beside it (settle latency over time, its histogram, throughput over time).
//!
//! `--auth` (default `auto`): against a stack with `AUTH=jwt` every request carries its user's
//! bearer token (accounts opened with the `payments:topup` scope), all minted before the first
//! request, so the same tool measures the system with authentication on and off; the report
//! says which.
//!
//! ```text
//! . .stack/env && cargo run --release -p loadgen -- --clients 32 --orders 2000
//! ```

mod auth;
mod pgbench;
mod plot;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::auth::{AuthFlag, TOPUP_SCOPE};
use crate::stats::{Latencies, Report, Run};

/// Command line; every option also reads the environment the local stack exports.
#[derive(Debug, Parser)]
#[command(about = "Load the orders & payments API and measure settlement")]
struct Args {
    /// Base URL the orders and accounts API is reached at (the gateway, or a service).
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    target: String,
    /// The orders database, read only: settle latency from the rows' timestamps.
    #[arg(long, env = "DATABASE_URL_ORDERS")]
    orders_db: String,
    /// Open loop: orders per second. Without it, a closed loop of `--clients` at max.
    #[arg(long)]
    rate: Option<f64>,
    /// Concurrent clients of the closed loop (the open loop's bound on requests in flight).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Orders to place.
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Users the orders are spread over (each with an account).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// A PostgreSQL server URL for pgbench's single-row insert (same server); skipped if unset.
    #[arg(long, env = "TEST_DATABASE_URL")]
    pgbench_db: Option<String>,
    /// How long pgbench runs; 0 skips it.
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u64,
    /// Where to write the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// How long to wait for the last order to settle.
    #[arg(long, default_value_t = 120)]
    settle_timeout_s: u64,
    /// Backlog mode: a shell command run once the accounts are open and before the first order,
    /// stopping what settles orders (e.g. `kill -STOP` of payments), so a backlog builds up.
    #[arg(long, requires = "backlog_release")]
    backlog_hold: Option<String>,
    /// Backlog mode: the shell command that lets it run again once every order was answered;
    /// settled/s is then measured from this moment: the pipeline alone draining the backlog.
    #[arg(long, requires = "backlog_hold")]
    backlog_release: Option<String>,
    /// Bearer tokens: `jwt` always, `off` never, `auto` when the environment has a signing key
    /// (`. .stack/env` of a stack with `AUTH=jwt`).
    #[arg(long, value_enum, default_value_t = AuthFlag::Auto)]
    auth: AuthFlag,
}

/// One user of the load, with the `Authorization` values it sends (`None`: no tokens).
#[derive(Clone)]
struct User {
    id: Uuid,
    /// Its own token: the orders it places.
    orders: Option<HeaderValue>,
    /// Its token with the operator scope: opening its account with a balance.
    open: Option<HeaderValue>,
}

/// `--users` fresh users, their tokens minted now, before anything is measured; valid for the
/// longest the run can take (placing at `--rate`, settling, an hour to spare).
fn users(args: &Args, signer: Option<&devauth::Signer>) -> Vec<User> {
    let placing = args.rate.map_or(0.0, |r| args.orders as f64 / r);
    let ttl = Duration::from_secs(3600 + args.settle_timeout_s + placing.min(86_400.0) as u64);
    (0..args.users)
        .map(|_| {
            let id = Uuid::new_v4();
            let sub = id.to_string();
            User {
                id,
                orders: signer.map(|s| auth::bearer(s, &sub, &[], ttl)),
                open: signer.map(|s| auth::bearer(s, &sub, &[TOPUP_SCOPE], ttl)),
            }
        })
        .collect()
}

/// Runs `command` with `sh -c`, failing on a non-zero exit.
async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .await
        .with_context(|| format!("run {command:?}"))?;
    if !status.success() {
        bail!("{command:?}: {status}");
    }
    Ok(())
}

/// Now, in seconds since the epoch (the clock the rows' timestamps use on this machine).
fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What one POST /orders gave: the order id (if accepted) and how long it took.
struct Posted {
    order_id: Option<Uuid>,
    /// The answer's status (`None`: no answer).
    status: Option<u16>,
    latency: Duration,
    at: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.users == 0 || args.orders == 0 || args.clients == 0 {
        bail!("--users, --orders and --clients must be at least 1");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(30))
        .build()?;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.orders_db)
        .await
        .context("connect to the orders database (--orders-db)")?;

    let signer = auth::signer(args.auth)?;
    let minting = Instant::now();
    let users = users(&args, signer.as_ref());
    let tokens = match &signer {
        Some(s) => format!(
            "bearer tokens ({:?}, 2 per user, minted in {:.0} ms before the run)",
            s.algorithm(),
            minting.elapsed().as_secs_f64() * 1000.0
        ),
        None => "no tokens sent".to_owned(),
    };
    open_accounts(&http, &args, &users).await?;
    eprintln!(
        "{} accounts opened ({tokens}); placing {} orders ({})",
        users.len(),
        args.orders,
        match args.rate {
            Some(r) => format!("open loop at {r}/s"),
            None => format!("closed loop, {} clients", args.clients),
        }
    );

    if let Some(hold) = &args.backlog_hold {
        eprintln!("backlog mode: {hold}");
        shell(hold).await?;
    }
    let start = Instant::now();
    let posted = Arc::new(Mutex::new(Vec::with_capacity(args.orders)));
    let progress = tokio::spawn(progress(posted.clone(), args.orders));
    match args.rate {
        None => closed_loop(&http, &args, &users, posted.clone(), start).await,
        Some(rate) => open_loop(&http, &args, &users, posted.clone(), start, rate).await?,
    }
    let post_wall = start.elapsed();
    progress.abort();
    let posted = std::mem::take(&mut *posted.lock().await);
    let ids: Vec<Uuid> = posted.iter().filter_map(|p| p.order_id).collect();
    let refused = posted.len() - ids.len();
    let rate_limited = posted.iter().filter(|p| p.status == Some(429)).count();
    eprintln!(
        "\r{} accepted, {refused} refused in {:.1} s; waiting for settlement",
        ids.len(),
        post_wall.as_secs_f64()
    );

    let drain_from = match &args.backlog_release {
        Some(release) => {
            eprintln!("backlog of {} orders: {release}", ids.len());
            let at = epoch_now();
            shell(release).await?;
            Some(at)
        }
        None => None,
    };
    let settled = wait_settled(&db, &ids, Duration::from_secs(args.settle_timeout_s)).await?;
    let pgbench = match &args.pgbench_db {
        Some(url) if args.pgbench_seconds > 0 => {
            Some(pgbench::single_row_insert_tps(url, args.pgbench_seconds).await?)
        }
        _ => None,
    };

    let report = Report::new(
        json!({
            "target": args.target,
            "mode": args.rate.map_or("closed".to_owned(), |r| format!("open {r}/s")),
            "backlog": drain_from.is_some(),
            "clients": args.clients,
            "orders": args.orders,
            "users": args.users,
            "auth": if signer.is_some() { "jwt" } else { "off" },
            "rate_limited": rate_limited,
        }),
        Run {
            post: Latencies::from(posted.iter().map(|p| p.latency).collect::<Vec<_>>()),
            post_at: posted.iter().map(|p| p.at).collect(),
            refused,
            post_wall,
            settled: &settled,
            drain_from,
            pgbench_tps: pgbench,
        },
    );
    println!("{}", report.summary());
    println!("auth     {tokens}; {rate_limited} POSTs answered 429");
    if let Some(path) = &args.report {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("report written to {}", path.display());
        let first = settled
            .iter()
            .map(|s| s.created)
            .fold(f64::INFINITY, f64::min);
        let points: Vec<plot::Point> = settled
            .iter()
            .map(|s| (s.created - first, (s.updated - s.created) * 1000.0))
            .collect();
        let accepted = stats::per_second(posted.iter().map(|p| p.at.as_secs_f64()), 0.0);
        let done = stats::per_second(settled.iter().map(|s| s.updated), first);
        for plot in plot::all(path, &points, &accepted, &done)? {
            eprintln!("plot written to {}", plot.display());
        }
    }
    Ok(())
}

/// Opens the users' accounts with a balance no run can exhaust.
async fn open_accounts(http: &reqwest::Client, args: &Args, users: &[User]) -> anyhow::Result<()> {
    let url = format!("{}/accounts", args.target);
    for chunk in users.chunks(args.clients) {
        let opens = chunk.iter().map(|user| {
            let mut request = http
                .post(&url)
                .json(&json!({"user_id": user.id, "balance": 1_000_000_000}));
            if let Some(value) = &user.open {
                request = request.header(AUTHORIZATION, value.clone());
            }
            request.send()
        });
        for resp in futures::future::join_all(opens).await {
            let resp = resp.context("POST /accounts")?;
            if resp.status() != reqwest::StatusCode::CREATED {
                bail!("POST /accounts answered {}", resp.status());
            }
        }
    }
    Ok(())
}

/// POSTs order number `i` (amount 1, user `i mod users`).
async fn place(
    http: &reqwest::Client,
    target: &str,
    user: &User,
    i: usize,
    start: Instant,
) -> Posted {
    let t = Instant::now();
    let at = start.elapsed();
    let mut request = http
        .post(format!("{target}/orders"))
        .json(&json!({"user_id": user.id, "amount": 1, "description": format!("load #{i}")}));
    if let Some(value) = &user.orders {
        request = request.header(AUTHORIZATION, value.clone());
    }
    let resp = request.send().await;
    let status = resp.as_ref().ok().map(|r| r.status().as_u16());
    let order_id = match resp {
        Ok(r) if r.status() == reqwest::StatusCode::CREATED => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["data"]["order_id"].as_str().and_then(|s| s.parse().ok())),
        _ => None,
    };
    Posted {
        order_id,
        status,
        latency: t.elapsed(),
        at,
    }
}

/// `--clients` tasks, each placing the next order as soon as its previous one was answered.
async fn closed_loop(
    http: &reqwest::Client,
    args: &Args,
    users: &[User],
    posted: Arc<Mutex<Vec<Posted>>>,
    start: Instant,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let (http, next, posted) = (http.clone(), next.clone(), posted.clone());
            let (users, target, total) = (users.to_vec(), args.target.clone(), args.orders);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let p = place(&http, &target, &users[i % users.len()], i, start).await;
                    posted.lock().await.push(p);
                }
            })
        })
        .collect();
    for c in clients {
        let _ = c.await;
    }
}

/// One order every `1/rate` seconds whatever the answers, at most `--clients` in flight (a bound
/// so a stalled target cannot make the tool itself the bottleneck of memory).
async fn open_loop(
    http: &reqwest::Client,
    args: &Args,
    users: &[User],
    posted: Arc<Mutex<Vec<Posted>>>,
    start: Instant,
    rate: f64,
) -> anyhow::Result<()> {
    if !(rate > 0.0 && rate.is_finite()) {
        bail!("--rate must be a positive number");
    }
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.clients.max(1)));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(args.orders);
    for i in 0..args.orders {
        ticker.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (http, posted, target, user) = (
            http.clone(),
            posted.clone(),
            args.target.clone(),
            users[i % users.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let p = place(&http, &target, &user, i, start).await;
            posted.lock().await.push(p);
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// Prints accepted/total once a second while the orders are being placed.
async fn progress(posted: Arc<Mutex<Vec<Posted>>>, total: usize) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let n = posted.lock().await.len();
        eprint!("\r  placed {n}/{total}");
    }
}

/// One settled order, from its row: when it was created and when it left NEW.
pub struct Settled {
    /// `created_at`, seconds since the epoch.
    pub created: f64,
    /// `updated_at`, seconds since the epoch.
    pub updated: f64,
}

/// Waits until every order in `ids` has left NEW, printing progress; returns their timestamps.
async fn wait_settled(
    db: &sqlx::PgPool,
    ids: &[Uuid],
    timeout: Duration,
) -> anyhow::Result<Vec<Settled>> {
    let deadline = Instant::now() + timeout;
    loop {
        let settled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orders WHERE order_id = ANY($1) AND status <> 'NEW'",
        )
        .bind(ids)
        .fetch_one(db)
        .await?;
        eprint!("\r  settled {settled}/{}", ids.len());
        if settled as usize == ids.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{} orders still NEW after {timeout:?}",
                ids.len() as i64 - settled
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!();
    let rows: Vec<(f64, f64)> = sqlx::query_as(
        "SELECT extract(epoch FROM created_at)::float8, extract(epoch FROM updated_at)::float8 \
         FROM orders WHERE order_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(created, updated)| Settled { created, updated })
        .collect())
}
