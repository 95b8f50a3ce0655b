//! Stopping: the shared cancellation token ends the server and frees its port.

use poem::http::StatusCode;

use crate::helpers::{DEADLINE, gateway_with_fakes};

/// Cancelling the stop signal ends `run` cleanly and closes the port.
#[tokio::test]
async fn stops_when_the_shutdown_token_is_cancelled() {
    let gw = gateway_with_fakes().await;
    assert_eq!(gw.get("/health").await.status(), StatusCode::OK);

    gw.shutdown.cancel();
    let outcome = tokio::time::timeout(DEADLINE, gw.server).await;

    assert!(matches!(outcome, Ok(Ok(Ok(())))), "{outcome:?}");
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}
