//! The orders process: `orders` serves; `orders migrate` applies migrations and exits.

use orders::config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init("orders");
    let settings = config::from_env()?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        return orders::startup::migrate(&settings.database_url).await;
    }
    let bus = bus::connect::from_env("orders")?;
    let listener = platform::http::bind(&settings.http_host, settings.http_port).await?;
    orders::startup::run(settings, bus, listener, platform::shutdown::on_signal()).await
}
