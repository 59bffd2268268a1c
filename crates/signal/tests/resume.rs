//! Resume over real sockets: a dropped socket keeps its seat for the grace period, and the
//! signals sent meanwhile arrive exactly once, in order; a second connection replaces the first;
//! after the grace period the seat is gone.

mod common;

use std::time::Duration;

use common::*;
use confer_protocol::{ByeReason, LeaveReason, ServerMessage};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, frame::coding::CloseCode};

async fn resume(url: &str, token: &str, secret: String, last_seq: Option<u64>) -> Client {
    let mut c = Client::connect(url).await;
    c.send(&hello(token, Some(secret), last_seq)).await;
    match c.recv().await {
        ServerMessage::Welcome(w) => assert!(w.resumed, "seat taken back"),
        other => panic!("expected welcome, got {other:?}"),
    }
    c
}

fn signal_n(msg: &ServerMessage) -> u64 {
    match msg {
        ServerMessage::Signal { payload, .. } => payload.to_object()["n"].as_u64().expect("n"),
        other => panic!("expected signal, got {other:?}"),
    }
}

#[tokio::test]
async fn dropped_socket_resumes_with_queued_signals_exactly_once() {
    let server = TestServer::start().await;
    let Call {
        room,
        mut host,
        guest,
        ..
    } = call(&server).await;
    let (peer, secret) = (guest.peer(), guest.resume_secret());
    drop(guest); // TCP gone without a close handshake

    let msg = host.recv().await;
    assert!(matches!(msg, ServerMessage::PeerReconnecting { peer: ref p, .. } if *p == peer));
    for n in 0..5 {
        host.signal(json!({"n": n})).await;
    }
    // Let the relays reach the room before the guest comes back.
    host.send_text(r#"{"type":"ping","t":1}"#).await;
    host.recv().await;

    let mut back = resume(&server.ws_url(), &room.guest_token, secret, None).await;
    assert_eq!(back.peer(), peer, "same peer id");
    let got: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(signal_n(&back.recv().await));
        }
        v
    };
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(
        back.try_recv(Duration::from_millis(300)).await.is_err(),
        "nothing twice, no second call-ready"
    );
    let msg = host.recv().await;
    assert!(matches!(msg, ServerMessage::PeerResumed { peer: ref p, .. } if *p == peer));

    // The call goes on.
    back.signal(json!({"n": 99})).await;
    assert_eq!(signal_n(&host.recv().await), 99);
    server.stop().await;
}

#[tokio::test]
async fn last_seq_recovers_signals_written_to_a_dead_socket() {
    let server = TestServer::start().await;
    let Call {
        room,
        mut host,
        mut guest,
        ..
    } = call(&server).await;
    host.signal(json!({"n": 0})).await;
    assert_eq!(signal_n(&guest.recv().await), 0);
    let processed = guest.last_seq;
    // Three more reach the guest's socket, but the guest never processes them.
    for n in 1..4 {
        host.signal(json!({"n": n})).await;
    }
    host.send_text(r#"{"type":"ping","t":1}"#).await;
    host.recv().await;
    let secret = guest.resume_secret();
    drop(guest);

    let mut back = resume(&server.ws_url(), &room.guest_token, secret, Some(processed)).await;
    for n in 1..4 {
        assert_eq!(signal_n(&back.recv().await), n);
    }
    assert!(back.try_recv(Duration::from_millis(300)).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn resuming_while_the_old_socket_is_open_replaces_it() {
    let server = TestServer::start().await;
    let Call {
        room,
        mut host,
        mut guest,
        ..
    } = call(&server).await;
    let mut second = resume(
        &server.ws_url(),
        &room.guest_token,
        guest.resume_secret(),
        None,
    )
    .await;
    assert_eq!(
        guest.recv().await,
        ServerMessage::Bye {
            reason: ByeReason::Replaced
        }
    );
    guest.closed().await;
    host.signal(json!({"n": 5})).await;
    assert_eq!(signal_n(&second.recv().await), 5);
    // The host never saw the seat drop.
    second.signal(json!({"n": 6})).await;
    assert_eq!(signal_n(&host.recv().await), 6);
    server.stop().await;
}

#[tokio::test]
async fn the_seat_expires_after_the_grace_period() {
    let server = TestServer::with(confer_signal::Config {
        grace_s: 1,
        ..confer_signal::Config::loopback()
    })
    .await;
    let Call {
        room,
        mut host,
        guest,
        ..
    } = call(&server).await;
    let secret = guest.resume_secret();
    drop(guest);
    assert!(matches!(
        host.recv().await,
        ServerMessage::PeerReconnecting { .. }
    ));
    let left = host.recv().await;
    assert!(matches!(
        left,
        ServerMessage::PeerLeft {
            reason: LeaveReason::Timeout,
            ..
        }
    ));

    // Too late: the old secret makes a new seat in the lobby.
    let mut late = Client::connect(&server.ws_url()).await;
    late.send(&hello(&room.guest_token, Some(secret), None))
        .await;
    let ServerMessage::Welcome(w) = late.recv().await else {
        panic!("welcome")
    };
    assert!(!w.resumed);
    assert!(matches!(host.recv().await, ServerMessage::Knock { .. }));
    server.stop().await;
}

#[tokio::test]
async fn closing_without_leave_holds_the_seat() {
    let server = TestServer::start().await;
    let Call {
        room,
        mut host,
        mut guest,
        ..
    } = call(&server).await;
    let secret = guest.resume_secret();
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "network change".into(),
    };
    guest.ws.close(Some(bye)).await.expect("close");
    // The server answers the close handshake (the stream ends cleanly, not by a reset).
    let answer = guest.closed().await.expect("the server's close frame");
    assert_eq!(answer.code, CloseCode::Normal);
    let msg = host.recv().await;
    assert!(
        matches!(msg, ServerMessage::PeerReconnecting { .. }),
        "{msg:?}"
    );
    let back = resume(&server.ws_url(), &room.guest_token, secret, None).await;
    assert_eq!(back.peer(), guest.peer());
    server.stop().await;
}
