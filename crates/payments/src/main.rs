//! The payments process: `payments` serves; `payments migrate` applies migrations and exits.

use payments::config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("payments");
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // Only the database: a migration job has no secrets to give (AUTH defaults to jwt).
        let url = platform::config::database_url_from_env("payments");
        return payments::startup::migrate(&url).await;
    }
    let settings = config::from_env()?;
    let bus = bus::connect::from_env("payments")?;
    let listener = platform::http::bind(&settings.http_host, settings.http_port).await?;
    payments::startup::run(settings, bus, listener, platform::shutdown::on_signal()).await
}
