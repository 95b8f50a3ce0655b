//! `faults` — the fault-injection round of issue 8: its own two orders, two payments and one
//! gateway process on a fresh pair of databases and fresh topics, a stream of top-ups and orders
//! through the gateway, faults at seeded random points of the stream, then quiescence and every
//! invariant of SPEC §3 checked from both databases. Exit 0: no violation; 1: violations; 2: the
//! harness itself failed; 3: fewer faults injected than asked.
//!
//! ```text
//! . .stack/env && cargo build -p orders -p payments -p gateway -p faults \
//!   && target/debug/faults --broker kafka --orders 2000 --faults 12
//! ```
//!
//! Authentication follows the environment: with `AUTH=jwt` (the stack's `.stack/env`) the
//! processes get the stack's JWKS, issuer, audience and internal secret, and the workload sends
//! per-user tokens signed with `AUTH_SIGNING_KEY`; otherwise they run with `AUTH=off`. The
//! harness's gateway never rate-limits (it measures invariants, not limits).

mod check;
mod cluster;
mod inject;
mod report;
mod rng;
mod toxi;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bus::connect::BrokerKind;
use clap::Parser;
use tokio::sync::watch;

use crate::cluster::{AuthEnv, Cluster, Config, Names};
use crate::report::Report;
use crate::workload::{Counters, Driver};

/// Command line; the infrastructure URLs come from `. .stack/env`.
#[derive(Debug, Parser)]
#[command(
    about = "Fault-injection round: orders and top-ups under faults, then every invariant checked"
)]
struct Args {
    /// Orders to place.
    #[arg(long, default_value_t = 2000)]
    orders: u64,
    /// Users the orders are spread over (default: orders / 10).
    #[arg(long)]
    users: Option<usize>,
    /// Faults to inject (every available kind appears once per round of kinds).
    #[arg(long, default_value_t = 12)]
    faults: usize,
    /// How many times per round of kinds a node fault of replicated infrastructure appears
    /// (PostgreSQL primary kill, broker node kill and partition): more failovers to measure.
    #[arg(long, default_value_t = 1)]
    ha_weight: usize,
    /// Seed of the plan and the fault schedule (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// The broker the services run on.
    #[arg(long, env = "BROKER", default_value = "kafka")]
    broker: BrokerKind,
    /// Where to write the JSON report.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Concurrent driver lanes (each runs one user's script at a time).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// No new order after this many seconds of stream.
    #[arg(long, default_value_t = 1800)]
    max_stream_s: u64,
    /// How long to wait for quiescence after the stream and the last fault.
    #[arg(long, default_value_t = 180)]
    quiesce_timeout_s: u64,
    /// PostgreSQL admin URL: the run's databases are created and dropped through it.
    #[arg(long, env = "TEST_DATABASE_URL")]
    admin_db: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    kafka_brokers: String,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp_url: String,
    /// Directory of the orders, payments and gateway binaries (default: this binary's own).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Repository root (dev/stack.sh, .stack/).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// `RUST_LOG` of the spawned services.
    #[arg(long, default_value = "info")]
    service_log: String,
    /// Keep the run's logs (.stack/faults/<run>/) even when the round passes.
    #[arg(long)]
    keep_logs: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match start(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faults: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn start(args: Args) -> anyhow::Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let root = std::fs::canonicalize(&args.root).context("--root")?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .to_path_buf(),
    };
    eprintln!(
        "faults: seed {seed} (repeat with --seed {seed}), run {run_id}, broker {:?}, binaries {bin_dir:?}",
        args.broker
    );
    let auth = AuthEnv::from_env()?;
    // The workload signs its tokens with the stack's key: the JWKS the processes are given
    // lists its public half.
    let signer = if auth.jwt {
        let signer = devauth::Signer::from_env()
            .context("AUTH=jwt: the workload's signing key")?
            .context("AUTH=jwt needs AUTH_SIGNING_KEY to sign the workload's tokens")?;
        Some(signer)
    } else {
        None
    };
    eprintln!(
        "faults: AUTH={}",
        if auth.jwt {
            "jwt (the workload sends bearer tokens)"
        } else {
            "off"
        }
    );
    let config = Config {
        root,
        bin_dir,
        broker: args.broker,
        admin_url: args.admin_db.clone(),
        kafka_brokers: args.kafka_brokers.clone(),
        amqp_url: args.amqp_url.clone(),
        service_log: args.service_log.clone(),
        auth,
        rabbitmq_queue_type: std::env::var("RABBITMQ_QUEUE_TYPE")
            .ok()
            .filter(|v| !v.trim().is_empty()),
    };
    let began = Instant::now();
    let mut cluster = match Cluster::start(config, Names::new(&run_id)).await {
        Ok(c) => c,
        Err((c, e)) => {
            eprintln!("faults: start-up failed; logs kept in {:?}", c.run_dir);
            c.teardown(true).await;
            return Err(e);
        }
    };
    eprintln!(
        "faults: 2 orders, 2 payments, 1 gateway up in {:.1} s (gateway {}); proxies: {}",
        began.elapsed().as_secs_f64(),
        cluster.gateway_url(),
        if cluster.proxies.is_empty() {
            cluster
                .no_proxy_reason
                .clone()
                .unwrap_or_else(|| "none".into())
        } else {
            cluster
                .proxies
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if cluster.config.kafka_replicated() {
        eprintln!(
            "faults: Kafka cluster {}: the run's topics replicated 3 times, min.insync.replicas 2; {}",
            cluster.config.kafka_brokers,
            if cluster.config.stack_kafka_cluster() {
                "one broker of three is killed among the faults"
            } else {
                "not the stack's own cluster: no broker is killed"
            }
        );
    }
    let outcome = tokio::select! {
        r = round(&args, seed, &run_id, &mut cluster, began, signer.as_ref()) => r,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    let keep = args.keep_logs || !matches!(outcome, Ok(ref r) if r.clean());
    if keep {
        eprintln!("faults: logs kept in {:?}", cluster.run_dir);
    }
    cluster.teardown(keep).await;
    let report = outcome?;
    Ok(if !report.clean() {
        ExitCode::from(1)
    } else if report.faults_not_injected > 0 || report.faults.len() < args.faults {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// SIGINT or SIGTERM: the harness stops its processes and drops its databases before exiting.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The round itself: stream and faults, quiescence, checks, report.
async fn round(
    args: &Args,
    seed: u64,
    run_id: &str,
    cluster: &mut Cluster,
    began: Instant,
    signer: Option<&devauth::Signer>,
) -> anyhow::Result<Report> {
    let mut rng = rng::Rng::new(seed);
    let (mut plan_rng, mut schedule_rng, inject_rng) = (rng.fork(), rng.fork(), rng.fork());
    let users = args.users.unwrap_or((args.orders / 10).max(1) as usize);
    let plans = workload::plan(&mut plan_rng, users, args.orders as usize, run_id);
    // Valid through the longest stream plus its quiescence, with an hour to spare.
    let ttl = Duration::from_secs(args.max_stream_s + args.quiesce_timeout_s + 3600);
    let tokens = signer.map(|signer| workload::mint(signer, &plans, ttl));
    let kinds = inject::available(cluster);
    let schedule = inject::schedule(
        &mut schedule_rng,
        &kinds,
        args.ha_weight,
        args.faults,
        args.orders,
    );

    let bus = inject::bus_for(cluster)?;
    bus.declare(&cluster.names.topology())
        .await
        .context("declare the run's topology for re-deliveries")?;
    let (orders_pool, payments_pool) = (
        cluster.orders_pool.clone().context("orders pool")?,
        cluster.payments_pool.clone().context("payments pool")?,
    );

    let (allowed_tx, allowed_rx) = watch::channel(0u64);
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let driver = Arc::new(Driver {
        gateway: cluster.gateway_url(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(args.concurrency * 4)
            .build()?,
        max_orders: args.orders,
        deadline: start + Duration::from_secs(args.max_stream_s),
        counters: counters.clone(),
        allowed: allowed_rx,
        tokens,
        auth_refusal_seen: AtomicBool::new(false),
    });
    let stream_done = Arc::new(AtomicBool::new(false));
    let mut drive = tokio::spawn({
        let done = stream_done.clone();
        let lanes = args.concurrency;
        async move {
            let records = driver.run(plans, lanes).await;
            done.store(true, Ordering::SeqCst);
            records
        }
    });
    let progress = tokio::spawn(progress(counters.clone(), args.orders, start));

    let mut injector = inject::Injector::new(
        inject_rng,
        schedule,
        allowed_tx,
        counters.clone(),
        bus,
        start,
    );
    injector.run(cluster, &stream_done).await;
    let faults_window_s = start.elapsed().as_secs_f64();
    let records = loop {
        tokio::select! {
            r = &mut drive => break r.context("the driver panicked")?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => injector.reap(cluster).await,
        }
    };
    let stream_s = start.elapsed().as_secs_f64();
    progress.abort();
    eprintln!("faults: stream and faults done in {stream_s:.1} s; waiting for quiescence");

    let wait = check::wait_quiet(
        &orders_pool,
        &payments_pool,
        Duration::from_secs(args.quiesce_timeout_s),
    );
    tokio::pin!(wait);
    let quiescence = loop {
        tokio::select! {
            q = &mut wait => break q,
            _ = tokio::time::sleep(Duration::from_secs(1)) => injector.reap(cluster).await,
        }
    };
    eprintln!(
        "faults: quiescence {} after {:.1} s ({})",
        if quiescence.reached {
            "reached"
        } else {
            "NOT reached"
        },
        quiescence.seconds,
        quiescence.last
    );

    let mut findings = check::Findings::default();
    if !quiescence.reached {
        findings.add(
            "no_quiescence",
            format!(
                "not quiet within {} s: {}",
                args.quiesce_timeout_s, quiescence.last
            ),
        );
    }
    for (kind, count, what) in [
        (
            "bare_server_error",
            &counters.bare_server_errors,
            "5xx answers without the error envelope",
        ),
        (
            "unavailable_without_retry_after",
            &counters.unavailable_without_retry_after,
            "503 answers without Retry-After",
        ),
    ] {
        let n = count.load(Ordering::Relaxed);
        if n > 0 {
            findings.add(kind, format!("{n} {what}"));
        }
    }
    for exit in &injector.exits {
        findings.add(
            "process_exited",
            format!(
                "{} ended on its own ({}): {}",
                exit.name, exit.status, exit.log_tail
            ),
        );
    }
    let tally = check::check(&orders_pool, &payments_pool, &records, &mut findings).await?;
    let (violations_by_kind, violations) = report::group(findings.all);
    let report = Report {
        broker: args.broker.name().to_owned(),
        seed,
        run_id: run_id.to_owned(),
        orders_requested: args.orders,
        faults_requested: args.faults,
        concurrency: args.concurrency,
        sent: report::Sent::from(&records),
        tally,
        faults_by_kind: report::faults_by_kind(&injector.records),
        faults_not_injected: injector.records.iter().filter(|f| !f.injected).count(),
        promotion_s: report::Spread::of(injector.records.iter().filter_map(|f| f.promoted_s)),
        writes_back_s: report::Spread::of(injector.records.iter().filter_map(|f| f.writes_back_s)),
        faults: injector.records,
        unexpected_exits: injector.exits.iter().map(Into::into).collect(),
        faults_window_s,
        stream_s,
        quiet_after_last_fault_s: stream_s - faults_window_s + quiescence.seconds,
        quiescence,
        violations_by_kind,
        violations,
        total_s: began.elapsed().as_secs_f64(),
    };
    println!("{}", report.summary());
    if let Some(path) = &args.report {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
        eprintln!("faults: report written to {}", path.display());
    }
    Ok(report)
}

/// A progress line every 5 s.
async fn progress(counters: Arc<Counters>, orders: u64, start: Instant) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        eprintln!(
            "faults: t={:>6.1}s order tickets {}/{orders}: {} acked, {} unknown; top-ups {} acked, {} unknown",
            start.elapsed().as_secs_f64(),
            counters.tickets.load(Ordering::Relaxed).min(orders),
            counters.orders_ok.load(Ordering::Relaxed),
            counters.orders_unknown.load(Ordering::Relaxed),
            counters.topups_ok.load(Ordering::Relaxed),
            counters.topups_unknown.load(Ordering::Relaxed),
        );
    }
}
