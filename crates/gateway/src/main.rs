//! `gateway` serves the public API; `gateway openapi` prints its OpenAPI document as YAML.

use anyhow::Context;
use gateway::config::Settings;
use gateway::{openapi, startup};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("openapi") => {
            print!("{}", openapi::spec_yaml());
            return Ok(());
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; usage: gateway [openapi]"),
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
