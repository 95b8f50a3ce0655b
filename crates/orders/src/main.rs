//! The orders process: `orders` serves; `orders migrate` applies migrations and exits.

use orders::config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("orders");
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // Only the database: a migration job has no secrets to give (AUTH defaults to jwt).
        let url = platform::config::database_url_from_env("orders");
        return orders::startup::migrate(&url).await;
    }
    let settings = config::from_env()?;
    let bus = bus::connect::from_env("orders")?;
    let listener = platform::http::bind(&settings.http_host, settings.http_port).await?;
    orders::startup::run(settings, bus, listener, platform::shutdown::on_signal()).await
}
