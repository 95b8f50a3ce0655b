//! `payments migrate`, the compose migration job, runs with nothing but `DATABASE_URL`: with
//! `AUTH` at its default (jwt) and no `AUTH_INTERNAL_SECRET` it still applies every migration
//! (before, it parsed the whole service configuration first and refused to start without the
//! secret, so the compose stack never got its schema).

use std::process::Command;

#[tokio::test]
async fn the_migrate_job_needs_only_the_database() {
    let db = testkit::TestDb::create().await;
    let out = Command::new(env!("CARGO_BIN_EXE_payments"))
        .arg("migrate")
        .env_remove("AUTH")
        .env_remove("AUTH_INTERNAL_SECRET")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "payments migrate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = db.pool().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, payments::MIGRATOR.iter().count() as i64);
    pool.close().await;
    db.drop_db().await;
}
