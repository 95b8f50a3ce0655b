//! `gateway` serves the public API (its OpenAPI document comes from `apidoc`, embedded).

use anyhow::Context;
use gateway::config::Settings;
use gateway::startup;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(other) = std::env::args().nth(1) {
        anyhow::bail!(
            "unknown argument {other:?}; usage: gateway (settings come from the environment)"
        );
    }

    platform::telemetry::init("gateway");
    let settings = Settings::from_env()?;
    let listener = platform::http::bind(&settings.host, settings.port)
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let shutdown = platform::shutdown::on_signal();
    startup::run(settings, listener, shutdown).await?;
    Ok(())
}
