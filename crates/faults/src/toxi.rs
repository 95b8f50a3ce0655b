//! toxiproxy between one service instance and its database or broker: latency and partitions.
//!
//! The server is Shopify's toxiproxy, built from the Go module proxy into `dev/.cache/toxiproxy`
//! on first use (STACK-NOTES: ~1 min cold) and driven over its HTTP API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use tokio::process::{Child, Command};

/// The toxiproxy version installed (the one STACK-NOTES checked).
const VERSION: &str = "v2.12.0";

/// A running toxiproxy server of ours.
pub struct Toxiproxy {
    /// The server process; killed on drop.
    child: Child,
    /// `http://127.0.0.1:<port>`: its API.
    api: String,
    /// API client.
    http: reqwest::Client,
}

/// The server binary, installed with `go install` if missing. `None` (with the reason) when it
/// cannot be had: the network faults are then left out and the report says so.
pub async fn binary(root: &Path) -> Result<PathBuf, String> {
    let dir = root.join("dev/.cache/toxiproxy");
    let bin = dir.join("server");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("faults: installing toxiproxy {VERSION} from the Go module proxy into {dir:?}");
    let status = Command::new("go")
        .args([
            "install",
            &format!("github.com/Shopify/toxiproxy/v2/cmd/server@{VERSION}"),
        ])
        .env("GOBIN", &dir)
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(|e| format!("go install toxiproxy: {e}"))?;
    if !status.success() || !bin.exists() {
        return Err(format!("go install toxiproxy failed ({status})"));
    }
    Ok(bin)
}

/// Starts `command` in a process group of its own (so a signal to the harness does not reach
/// it, and a kill reaches all of it), stdout and stderr into `log`, killed if dropped.
pub fn spawn_logged(mut command: Command, log: std::fs::File) -> anyhow::Result<Child> {
    Ok(command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .process_group(0)
        .spawn()?)
}

impl Toxiproxy {
    /// Starts the server on `port`, logging to `log`, and waits until its API answers.
    pub async fn start(bin: &Path, port: u16, log: &Path) -> anyhow::Result<Self> {
        let out = std::fs::File::create(log).with_context(|| format!("create {log:?}"))?;
        let mut command = Command::new(bin);
        command.args(["-host", "127.0.0.1", "-port", &port.to_string()]);
        let child = spawn_logged(command, out).with_context(|| format!("start {bin:?}"))?;
        let proxy = Toxiproxy {
            child,
            api: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = proxy
                .http
                .get(format!("{}/version", proxy.api))
                .send()
                .await
                && resp.status().is_success()
            {
                return Ok(proxy);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("toxiproxy did not answer on {} within 20 s", proxy.api);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A proxy `name` listening on `127.0.0.1:listen`, forwarding to `upstream` (`host:port`).
    pub async fn create(&self, name: &str, listen: u16, upstream: &str) -> anyhow::Result<()> {
        let body = json!({
            "name": name,
            "listen": format!("127.0.0.1:{listen}"),
            "upstream": upstream,
            "enabled": true,
        });
        self.call(reqwest::Method::POST, "/proxies", Some(body))
            .await
    }

    /// Adds `latency_ms` (± `jitter_ms`) to everything the upstream sends back.
    pub async fn add_latency(
        &self,
        proxy: &str,
        latency_ms: u64,
        jitter_ms: u64,
    ) -> anyhow::Result<()> {
        let body = json!({
            "name": "latency",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": latency_ms, "jitter": jitter_ms},
        });
        self.call(
            reqwest::Method::POST,
            &format!("/proxies/{proxy}/toxics"),
            Some(body),
        )
        .await
    }

    /// Removes the latency toxic again.
    pub async fn remove_latency(&self, proxy: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/proxies/{proxy}/toxics/latency"),
            None,
        )
        .await
    }

    /// Enables or disables `proxy`: disabled, it closes every connection and refuses new ones
    /// (a partition the service sees as resets and refused connects).
    pub async fn set_enabled(&self, proxy: &str, enabled: bool) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &format!("/proxies/{proxy}"),
            Some(json!({"enabled": enabled})),
        )
        .await
    }

    /// One API call; anything but 2xx is an error naming the call.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<()> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.api));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("toxiproxy {method} {path}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            bail!("toxiproxy {method} {path}: {status} {text}");
        }
        Ok(())
    }

    /// Stops the server (its proxies go with it).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
