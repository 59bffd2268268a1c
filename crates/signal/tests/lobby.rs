//! The waiting room over real sockets: a third guest waits and is admitted after one leaves;
//! deny disconnects; the host hears when a waiting guest gives up; auto-admit rooms.

mod common;

use common::*;
use confer_protocol::{ClientMessage, ErrorCode, LeaveReason, ParticipantState, ServerMessage};
use serde_json::json;

fn knock_peer(msg: &ServerMessage) -> String {
    match msg {
        ServerMessage::Knock { peer, .. } => peer.clone(),
        other => panic!("expected knock, got {other:?}"),
    }
}

/// A host with two guests waiting (`a`, `b`), both knocks received.
struct Lobby {
    host: Client,
    a: Client,
    b: Client,
    pa: String,
    pb: String,
}

async fn lobby(server: &TestServer) -> Lobby {
    let room = server.create_room(json!({})).await;
    let url = server.ws_url();
    let mut host = Client::join(&url, &room.host_token).await;
    let a = Client::join(&url, &room.guest_token).await;
    let b = Client::join(&url, &room.guest_token).await;
    let pa = knock_peer(&host.recv().await);
    let pb = knock_peer(&host.recv().await);
    Lobby { host, a, b, pa, pb }
}

fn state(c: &Client) -> ParticipantState {
    c.welcome.as_ref().expect("welcomed").state
}

#[tokio::test]
async fn third_guest_waits_then_is_admitted_after_one_leaves() {
    let server = TestServer::start().await;
    let Call {
        room,
        mut host,
        mut guest,
        ..
    } = call(&server).await;
    // The same invite link again: several connections may share a guest token.
    let mut third = Client::join(&server.ws_url(), &room.guest_token).await;
    assert_eq!(state(&third), ParticipantState::Waiting);
    let peer3 = knock_peer(&host.recv().await);
    assert_ne!(peer3, guest.peer());

    host.send(&ClientMessage::Admit {
        peer: peer3.clone(),
    })
    .await;
    assert_eq!(error_code(&host.recv().await), ErrorCode::RoomFull);

    guest.send(&ClientMessage::Leave).await;
    let left = host.recv().await;
    assert!(matches!(
        left,
        ServerMessage::PeerLeft {
            reason: LeaveReason::Left,
            ..
        }
    ));
    host.send(&ClientMessage::Admit {
        peer: peer3.clone(),
    })
    .await;
    assert!(matches!(third.recv().await, ServerMessage::Admitted { .. }));
    assert!(matches!(
        third.recv().await,
        ServerMessage::CallReady { .. }
    ));
    let ready = host.recv().await;
    assert!(matches!(ready, ServerMessage::CallReady { ref peer, .. } if *peer == peer3));
    server.stop().await;
}

#[tokio::test]
async fn deny_disconnects_and_a_waiting_guest_that_leaves_is_reported() {
    let server = TestServer::start().await;
    let Lobby {
        mut host,
        mut a,
        mut b,
        pa,
        pb,
    } = lobby(&server).await;

    host.send(&ClientMessage::Deny {
        peer: pa.clone(),
        reason: Some("wrong appointment".into()),
    })
    .await;
    assert_eq!(
        a.recv().await,
        ServerMessage::Denied {
            reason: Some("wrong appointment".into())
        }
    );
    assert_eq!(u16::from(a.closed().await.expect("close").code), 1000);

    // Denying again names nobody.
    host.send(&ClientMessage::Deny {
        peer: pa,
        reason: None,
    })
    .await;
    assert_eq!(error_code(&host.recv().await), ErrorCode::UnknownPeer);

    b.send(&ClientMessage::Leave).await;
    let left = host.recv().await;
    assert!(matches!(left, ServerMessage::PeerLeft { ref peer, .. } if *peer == pb));
    server.stop().await;
}

#[tokio::test]
async fn guests_cannot_admit_and_cannot_signal_while_waiting() {
    let server = TestServer::start().await;
    let Lobby {
        mut host,
        mut a,
        mut b,
        ..
    } = lobby(&server).await;
    a.send(&ClientMessage::Admit { peer: b.peer() }).await;
    assert_eq!(error_code(&a.recv().await), ErrorCode::NotAllowed);
    a.signal(json!({"kind": "offer"})).await;
    assert_eq!(error_code(&a.recv().await), ErrorCode::NotAllowed);
    // Nothing reached the host or the other guest.
    assert!(
        host.try_recv(std::time::Duration::from_millis(200))
            .await
            .is_err()
    );
    assert!(
        b.try_recv(std::time::Duration::from_millis(50))
            .await
            .is_err()
    );
    server.stop().await;
}

#[tokio::test]
async fn auto_admit_rooms_skip_the_lobby() {
    let server = TestServer::start().await;
    let room = server.create_room(json!({"auto_admit": true})).await;
    let url = server.ws_url();
    let mut a = Client::join(&url, &room.guest_token).await;
    let mut b = Client::join(&url, &room.guest_token).await;
    assert_eq!(state(&a), ParticipantState::Admitted);
    assert_eq!(state(&b), ParticipantState::Admitted);
    assert!(matches!(a.recv().await, ServerMessage::CallReady { .. }));
    assert!(matches!(b.recv().await, ServerMessage::CallReady { .. }));
    // A host arriving at a full auto-admit room is told so.
    let mut host = Client::connect(&url).await;
    assert_eq!(
        error_code(&host.hello(&room.host_token).await),
        ErrorCode::RoomFull
    );
    server.stop().await;
}
