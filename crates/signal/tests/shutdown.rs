//! Graceful shutdown: every participant gets `bye{reason:"server-shutdown"}` and a 1001 close,
//! new connections are refused, and `serve` returns.

mod common;

use common::*;
use confer_protocol::{ByeReason, ServerMessage};

#[tokio::test]
async fn shutdown_says_bye_to_everyone_first() {
    let server = TestServer::start().await;
    let Call {
        mut host,
        mut guest,
        ..
    } = call(&server).await;
    let mut lobby = Client::connect(&server.ws_url()).await; // not even joined yet
    let addr = server.addr;
    let handle = server.handle.clone();
    let stopping = tokio::spawn(server.stop());

    for c in [&mut host, &mut guest] {
        let bye = c.recv().await;
        assert_eq!(
            bye,
            ServerMessage::Bye {
                reason: ByeReason::ServerShutdown
            }
        );
        let close = c.closed().await.expect("close frame");
        assert_eq!(u16::from(close.code), 1001);
    }
    assert!(matches!(lobby.recv().await, ServerMessage::Bye { .. }));
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stopped in time")
        .expect("stop");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
    // Shutting down twice is harmless.
    handle.shutdown().await;
}
