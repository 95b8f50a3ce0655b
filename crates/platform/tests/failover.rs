//! `platform::db` with libpq's multi-host URL against the stack's real PostgreSQL: a dead host
//! is skipped, a read-only server is refused when a writable one is wanted, and a pool whose
//! server goes away moves to the next host of the list. The "servers" are TCP forwarders to one
//! real PostgreSQL, so a host can be made to vanish without stopping the database.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use platform::db::url::{DbUrl, label, with_database};
use testkit::TestDb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// `host:port` of the stack's server.
fn server_of(url: &str) -> String {
    label(&DbUrl::parse(url).unwrap().hosts()[0])
}

/// A port with nothing behind it.
async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Forwards a local port to `target` until `stop` fires; then closes the listener and every
/// forwarded connection, as a host that died would.
async fn forwarder(target: String) -> (u16, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(Notify::new());
    let stopped = Arc::clone(&stop);
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut client, _)) = accepted else { break };
                    let target = target.clone();
                    conns.spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
                () = stopped.notified() => break,
            }
        }
        conns.abort_all();
    });
    (port, stop)
}

/// `db`'s URL with the host list `hosts` (`127.0.0.1:port` each) and `query`.
fn url_with_hosts(db: &TestDb, hosts: &[u16], query: &str) -> String {
    let parsed = DbUrl::parse(&db.url).unwrap();
    let first = &parsed.hosts()[0];
    let list: Vec<String> = hosts.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    format!(
        "postgres://{}@{}/{}{query}",
        first.get_username(),
        list.join(","),
        first.get_database().unwrap()
    )
}

#[tokio::test]
async fn a_dead_host_in_the_list_is_skipped() {
    let db = TestDb::create().await;
    let real: u16 = server_of(&db.url)
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let url = url_with_hosts(
        &db,
        &[dead_port().await, real],
        "?target_session_attrs=read-write",
    );
    let pool = platform::db::connect(&url, 2).await.unwrap();
    assert_eq!(pool.connect_options().get_port(), real);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    pool.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn a_read_only_server_is_refused_when_writes_are_wanted() {
    let db = TestDb::create().await;
    let name = DbUrl::parse(&db.url).unwrap().hosts()[0]
        .get_database()
        .unwrap()
        .to_owned();
    let pool = db.pool().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = on"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let rw = with_database(
        &format!("{}?target_session_attrs=read-write", db.url),
        &name,
    )
    .unwrap();
    let err = platform::db::connect_one(&rw).await.unwrap_err();
    assert!(platform::error::is_unavailable(&err), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    // Without the attribute any server that answers will do.
    let mut conn = platform::db::connect_one(&db.url).await.unwrap();
    let ro: String = sqlx::query_scalar("SHOW transaction_read_only")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(ro, "on");
    drop(conn);
    db.drop_db().await;
}

#[tokio::test]
async fn a_pool_whose_server_vanishes_moves_to_the_next_host() {
    let db = TestDb::create().await;
    let server = server_of(&db.url);
    let (first, kill_first) = forwarder(server.clone()).await;
    let (second, _keep) = forwarder(server).await;
    let url = url_with_hosts(&db, &[first, second], "?target_session_attrs=read-write");
    let pool = platform::db::connect(&url, 4).await.unwrap();
    assert_eq!(pool.connect_options().get_port(), first);
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();

    kill_first.notify_one();
    // The watcher notices within a probe or two; until then a query may fail, never hang.
    let mut moved = false;
    for _ in 0..100 {
        let ok = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::query("SELECT 1").execute(&pool),
        )
        .await
        .expect("a query on a vanished server must fail, not hang")
        .is_ok();
        if ok && pool.connect_options().get_port() == second {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the pool never moved to the second host");
    pool.close().await;
    db.drop_db().await;
}
