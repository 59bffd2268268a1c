//! The whole happy path over real sockets: create a room over HTTP, host and guest join, the
//! host admits, exactly one initiator, offer/answer and 20 candidates each way in order, leave.

mod common;

use common::*;
use confer_protocol::{ClientMessage, LeaveReason, ParticipantState, Role, ServerMessage};
use serde_json::json;

#[tokio::test]
async fn host_and_guest_complete_a_call() {
    let server = TestServer::start().await;
    let room = server.create_room(json!({"host_name": "Dr. Ada"})).await;
    assert!(room.guest_url.contains(&format!("/join/{}#", room.room)));
    let url = server.ws_url();

    let mut host = Client::connect(&url).await;
    let ServerMessage::Welcome(hw) = host.hello(&room.host_token).await else {
        panic!("host welcome")
    };
    assert_eq!(
        (hw.role, hw.state, hw.resumed),
        (Role::Host, ParticipantState::Admitted, false)
    );
    assert_eq!(hw.room, room.room);
    assert_eq!(hw.grace_s, 30);

    let mut guest = Client::connect(&url).await;
    guest
        .send(&ClientMessage::Hello(confer_protocol::Hello {
            protocol: 1,
            token: room.guest_token.clone(),
            resume: None,
            last_seq: None,
            name: Some("Pat\u{7}".into()),
        }))
        .await;
    let ServerMessage::Welcome(gw) = guest.recv().await else {
        panic!("guest welcome")
    };
    assert_eq!(
        (gw.role, gw.state),
        (Role::Guest, ParticipantState::Waiting)
    );

    let knock = host.recv().await;
    assert_eq!(
        knock,
        ServerMessage::Knock {
            peer: gw.peer.clone(),
            name: Some("Pat".into()),
            seq: 1
        },
        "the name is cleaned of control characters"
    );
    host.send(&ClientMessage::Admit {
        peer: gw.peer.clone(),
    })
    .await;
    assert!(matches!(guest.recv().await, ServerMessage::Admitted { .. }));
    let ServerMessage::CallReady {
        peer: gp,
        initiator: gi,
        ..
    } = guest.recv().await
    else {
        panic!("guest call-ready")
    };
    let ServerMessage::CallReady {
        peer: hp,
        initiator: hi,
        ..
    } = host.recv().await
    else {
        panic!("host call-ready")
    };
    assert_eq!((gp, hp), (hw.peer.clone(), gw.peer.clone()));
    assert!(gi ^ hi, "exactly one initiator");

    let (offerer, answerer) = if hi {
        (&mut host, &mut guest)
    } else {
        (&mut guest, &mut host)
    };
    offerer
        .signal(json!({"kind": "offer", "sdp": "v=0 offer"}))
        .await;
    for i in 0..20 {
        offerer.signal(json!({"kind": "candidate", "i": i})).await;
    }
    answerer
        .signal(json!({"kind": "answer", "sdp": "v=0 answer"}))
        .await;
    for i in 0..20 {
        answerer.signal(json!({"kind": "candidate", "i": i})).await;
    }
    for side in [&mut *answerer, &mut *offerer] {
        let first = side.recv().await;
        let ServerMessage::Signal { payload, .. } = first else {
            panic!("signal expected, got {first:?}")
        };
        assert!(
            payload.to_object()["sdp"].is_string(),
            "offer/answer first, unchanged"
        );
        for i in 0..20 {
            let ServerMessage::Signal { payload, .. } = side.recv().await else {
                panic!("candidate")
            };
            assert_eq!(payload.to_object()["i"], json!(i), "in order");
        }
    }

    guest.send(&ClientMessage::Leave).await;
    let left = host.recv().await;
    assert!(matches!(
        left,
        ServerMessage::PeerLeft { ref peer, reason: LeaveReason::Left, .. } if *peer == gw.peer
    ));
    let close = guest.closed().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1000);

    assert!(
        server
            .metric("confer_messages_total{direction=\"in\"}")
            .await
            >= 44.0
    );
    assert_eq!(server.metric("confer_rooms ").await, 1.0);
    assert!(server.metric("confer_relay_latency_seconds_count").await >= 42.0);
    host.send(&ClientMessage::Leave).await;
    host.closed().await;
    // The room is dropped once empty.
    for _ in 0..50 {
        if server.handle.rooms() == 0 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(server.handle.rooms(), 0);
    server.stop().await;
}

#[tokio::test]
async fn ping_pong_and_health() {
    let server = TestServer::start().await;
    let (status, body) = http(server.addr, "GET", "/healthz", &[], "").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let room = server.create_room(json!({})).await;
    let mut c = Client::join(&server.ws_url(), &room.host_token).await;
    c.send_text(r#"{"type":"ping","t":12.5}"#).await;
    assert_eq!(
        serde_json::to_value(c.recv().await).expect("json"),
        json!({"type": "pong", "t": 12.5})
    );
    let (status, page) = http(server.addr, "GET", &format!("/join/{}", room.room), &[], "").await;
    assert_eq!(status, 200);
    assert!(page.contains("Confer"));
    let (status, metrics) = http(server.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    for name in [
        "confer_connections",
        "confer_rooms",
        "confer_messages_total",
        "confer_errors_total{code=\"rate-limited\"}",
        "confer_relay_latency_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    server.stop().await;
}
