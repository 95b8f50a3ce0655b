//! The payments process: `payments` serves; `payments migrate` applies migrations and exits.

use payments::config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("payments");
    let settings = config::from_env()?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return payments::startup::migrate(&settings.database_url).await;
    }
    let bus = bus::connect::from_env("payments")?;
    let listener = platform::http::bind(&settings.http_host, settings.http_port).await?;
    payments::startup::run(settings, bus, listener, platform::shutdown::on_signal()).await
}
