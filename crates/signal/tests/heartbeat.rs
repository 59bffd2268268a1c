//! Heartbeats: a client that answers the server's pings stays, however quiet; one that goes
//! silent is treated as a dropped socket after the idle timeout (its seat is held for resume).

mod common;

use std::time::Duration;

use common::*;
use confer_protocol::ServerMessage;
use confer_signal::Config;

fn fast_heartbeat() -> Config {
    Config {
        ping_interval_s: 1,
        idle_timeout_s: 3,
        ..Config::loopback()
    }
}

#[tokio::test]
async fn a_client_answering_pings_stays_and_a_silent_one_is_dropped() {
    let server = TestServer::with(fast_heartbeat()).await;
    let Call {
        mut host, guest, ..
    } = call(&server).await;
    // The guest reads (so its WebSocket answers pings) but sends nothing for well over the
    // idle timeout: the host hears nothing.
    let guest_peer = guest.peer();
    let reader = tokio::spawn(async move {
        let mut guest = guest;
        let _ = guest.try_recv(Duration::from_secs(5)).await;
        (guest, std::time::Instant::now())
    });
    assert!(
        host.try_recv(Duration::from_secs(5)).await.is_err(),
        "a quiet but live client must not be dropped"
    );
    let (guest, stopped_reading) = reader.await.expect("reader");

    // Now the guest stops reading entirely: no pongs, so after the idle timeout its seat is
    // marked reconnecting. Its last pong answered a ping at most one interval before it
    // stopped reading, so the drop comes no sooner than (idle - interval) = 2 s after that;
    // 1 s leaves room for scheduling on a loaded machine and still fails a server that drops
    // a client the moment it goes quiet.
    let msg = host.recv().await;
    assert!(
        matches!(msg, ServerMessage::PeerReconnecting { ref peer, .. } if *peer == guest_peer),
        "{msg:?}"
    );
    assert!(
        stopped_reading.elapsed() >= Duration::from_secs(1),
        "dropped after {:?}, before the idle timeout",
        stopped_reading.elapsed()
    );
    drop(guest);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_before_serve_returns() {
    let server = confer_signal::Server::bind(Config::loopback())
        .await
        .expect("bind");
    let handle = server.handle();
    tokio::time::timeout(WAIT, handle.shutdown())
        .await
        .expect("shutdown of a server that never served returns");
    // Serving afterwards ends at once.
    tokio::time::timeout(WAIT, server.serve())
        .await
        .expect("serve returns after shutdown");
}
