//! pgbench's single-row insert on the same PostgreSQL server: the ceiling the pipeline lives
//! under (one commit per order at least), measured in the same run so the ratio means something.

use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::{Connection, PgConnection};

/// Scratch database the insert runs in; dropped and recreated each run.
const SCRATCH_DB: &str = "loadgen_pgbench";
/// Clients and threads of the run (the figure SPEC and STACK-NOTES quote).
const CLIENTS: &str = "32";

/// Runs `INSERT` of one uuid row per transaction with 32 clients for `seconds`; returns tps.
pub async fn single_row_insert_tps(server_url: &str, seconds: u64) -> anyhow::Result<f64> {
    let mut admin = PgConnection::connect(server_url)
        .await
        .context("connect to the pgbench server (--pgbench-db)")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {SCRATCH_DB}")))
        .execute(&mut admin)
        .await?;
    let url = testkit::replace_database(server_url, SCRATCH_DB);
    let mut scratch = PgConnection::connect(&url).await?;
    sqlx::raw_sql("CREATE TABLE t (id uuid PRIMARY KEY)")
        .execute(&mut scratch)
        .await?;
    scratch.close().await?;

    let script = std::env::temp_dir().join(format!("loadgen-pgbench-{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO t VALUES (gen_random_uuid());\n")?;
    eprintln!("pgbench: single-row insert, {CLIENTS} clients, {seconds} s");
    let out = tokio::time::timeout(
        Duration::from_secs(seconds + 60),
        tokio::process::Command::new(pgbench_binary())
            .args([
                "-n",
                "-c",
                CLIENTS,
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
                "-f",
            ])
            .arg(&script)
            .arg(&url)
            .output(),
    )
    .await
    .context("pgbench did not finish")?
    .context("run pgbench (postgresql-15 ships it)")?;
    let _ = std::fs::remove_file(&script);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_tps(&stdout).with_context(|| format!("no tps in pgbench's output:\n{stdout}"))
}

/// `pgbench` on the PATH, else the Debian location.
fn pgbench_binary() -> String {
    let debian = "/usr/lib/postgresql/15/bin/pgbench";
    if std::path::Path::new(debian).exists() {
        debian.to_owned()
    } else {
        "pgbench".to_owned()
    }
}

/// The figure of `tps = 12090.123456 (without initial connection time)`.
fn parse_tps(out: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tps_is_read_from_pgbench_output() {
        let out =
            "latency average = 2.6 ms\ntps = 12090.123456 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(12090.123456));
        assert_eq!(parse_tps("nothing"), None);
    }
}
