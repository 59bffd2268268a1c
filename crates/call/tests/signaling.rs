//! The signaling client against a real confer-signal on loopback: meeting, admission, ordered
//! relay, a dropped connection resumed without losing or repeating anything, a server restart,
//! the errors a user sees for a bad link or an unreachable server, and `wss://`/`https://` to a
//! server whose certificate the link names.

use std::time::Duration;

use confer_call::link::Link;
use confer_call::rooms::{check, create_room};
use confer_call::signaling::{Backoff, SignalClient, SignalError, SignalEvent};
use confer_call::tls::Trust;
use confer_protocol::{ParticipantState, Role, SignalPayload};
use confer_signal::{Config, ServerHandle};

mod common;
use common::{start, token};

fn fast() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    }
}

async fn next(client: &mut SignalClient) -> SignalEvent {
    tokio::time::timeout(Duration::from_secs(10), client.next_event())
        .await
        .expect("an event within 10 s")
        .expect("the session is open")
}

/// Skips events until one matches.
async fn until(client: &mut SignalClient, pred: impl Fn(&SignalEvent) -> bool) -> SignalEvent {
    loop {
        let e = next(client).await;
        if pred(&e) {
            return e;
        }
    }
}

fn payload(n: u32) -> SignalPayload {
    SignalPayload::from_json(&format!("{{\"n\":{n},\"sdp\":\"v=0 …\"}}")).expect("payload")
}

/// Host and guest in a room, admitted, call-ready.
async fn meet(url: &str, handle: &ServerHandle) -> (SignalClient, SignalClient) {
    let mut host = SignalClient::connect(
        url,
        &token(handle, "r1", Role::Host),
        None,
        &Trust::default(),
        fast(),
    )
    .await
    .expect("host");
    let SignalEvent::Joined { role, state, .. } = next(&mut host).await else {
        panic!("host joined")
    };
    assert_eq!((role, state), (Role::Host, ParticipantState::Admitted));
    let mut guest = SignalClient::connect(
        url,
        &token(handle, "r1", Role::Guest),
        Some("Pat"),
        &Trust::default(),
        fast(),
    )
    .await
    .expect("guest");
    let SignalEvent::Joined { state, .. } = next(&mut guest).await else {
        panic!("guest joined")
    };
    assert_eq!(state, ParticipantState::Waiting);
    let SignalEvent::Knock { peer, name } = next(&mut host).await else {
        panic!("knock")
    };
    assert_eq!(name.as_deref(), Some("Pat"));
    host.admit(&peer);
    assert_eq!(next(&mut guest).await, SignalEvent::Admitted);
    let a = until(&mut host, |e| matches!(e, SignalEvent::CallReady { .. })).await;
    let b = until(&mut guest, |e| matches!(e, SignalEvent::CallReady { .. })).await;
    let (
        SignalEvent::CallReady { initiator: ha, .. },
        SignalEvent::CallReady { initiator: gb, .. },
    ) = (a, b)
    else {
        unreachable!()
    };
    assert!(ha ^ gb, "exactly one initiator");
    (host, guest)
}

fn signal_n(e: &SignalEvent) -> Option<u64> {
    match e {
        SignalEvent::Signal { payload, .. } => payload.to_object().get("n")?.as_u64(),
        _ => None,
    }
}

/// The next `count` signal numbers, skipping other events.
async fn signals(client: &mut SignalClient, count: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < count {
        if let Some(n) = signal_n(&next(client).await) {
            got.push(n);
        }
    }
    got
}

#[tokio::test]
async fn host_and_guest_meet_and_signals_arrive_in_order_byte_for_byte() {
    let (handle, _task) = start(Config::loopback()).await;
    let (mut host, guest) = meet(&handle.ws_url(), &handle).await;
    for n in 0..50 {
        guest.signal(payload(n));
    }
    for n in 0..50 {
        let e = next(&mut host).await;
        let SignalEvent::Signal { payload: p, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(p.as_str(), payload(n).as_str(), "byte for byte");
    }
    guest.leave();
    let e = until(&mut host, |e| matches!(e, SignalEvent::PeerLeft { .. })).await;
    assert!(matches!(e, SignalEvent::PeerLeft { .. }));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_the_seat_and_loses_nothing() {
    let (handle, _task) = start(Config::loopback()).await;
    let (mut host, mut guest) = meet(&handle.ws_url(), &handle).await;
    host.drop_connection();
    // Both sides keep talking through the outage.
    for n in 0..20 {
        guest.signal(payload(n));
        host.signal(payload(100 + n));
    }
    let e = until(&mut host, |e| matches!(e, SignalEvent::Reconnecting { .. })).await;
    assert!(
        matches!(e, SignalEvent::Reconnecting { attempt: 1, .. }),
        "{e:?}"
    );
    let e = until(&mut host, |e| matches!(e, SignalEvent::Joined { .. })).await;
    assert!(
        matches!(e, SignalEvent::Joined { resumed: true, .. }),
        "{e:?}"
    );
    assert_eq!(
        signals(&mut host, 20).await,
        (0..20).collect::<Vec<u64>>(),
        "all, in order, once"
    );
    assert_eq!(
        signals(&mut guest, 20).await,
        (100..120).collect::<Vec<u64>>(),
        "the queued ones too"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_restarted_server_is_rejoined_with_back_off() {
    let (handle, task) = start(Config::loopback()).await;
    let addr = handle.local_addr();
    let url = handle.ws_url();
    let mut host = SignalClient::connect(
        &url,
        &token(&handle, "r2", Role::Host),
        None,
        &Trust::default(),
        fast(),
    )
    .await
    .expect("host");
    let SignalEvent::Joined { peer: first, .. } = next(&mut host).await else {
        panic!("joined")
    };
    handle.shutdown().await;
    task.await.expect("server stopped");
    // A few failed attempts while the server is down.
    let mut attempts = 0;
    while attempts < 3 {
        if let SignalEvent::Reconnecting { attempt, .. } = next(&mut host).await {
            attempts = attempt;
        }
    }
    let (handle, _task) = start(Config {
        listen: addr,
        ..Config::loopback()
    })
    .await;
    let e = until(&mut host, |e| matches!(e, SignalEvent::Joined { .. })).await;
    let SignalEvent::Joined { peer, resumed, .. } = e else {
        unreachable!()
    };
    assert!(!resumed, "a restarted server forgot the seat: a fresh join");
    assert_ne!(peer, first);
    handle.shutdown().await;
}

#[tokio::test]
async fn bad_links_and_unreachable_servers_are_explained() {
    let (handle, _task) = start(Config::loopback()).await;
    let err = SignalClient::connect(
        &handle.ws_url(),
        "not-a-token",
        None,
        &Trust::default(),
        fast(),
    )
    .await
    .expect_err("bad token");
    assert!(
        matches!(&err, SignalError::Refused(m) if m.contains("unauthorized")),
        "{err}"
    );
    // A port nothing listens on (just freed by binding and dropping a listener).
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let err = SignalClient::connect(
        &format!("ws://127.0.0.1:{port}/v1/ws"),
        "x",
        None,
        &Trust::default(),
        fast(),
    )
    .await
    .expect_err("unreachable");
    assert!(
        matches!(err, SignalError::Unreachable { .. }) && err.to_string().contains("127.0.0.1"),
        "{err}"
    );
    handle.shutdown().await;
}

#[test]
fn back_off_doubles_up_to_its_cap_with_bounded_jitter() {
    let b = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };
    assert_eq!(b.delay(1, 0.5), Duration::from_millis(200));
    assert_eq!(b.delay(3, 0.5), Duration::from_millis(800));
    assert_eq!(b.delay(30, 0.5), Duration::from_secs(5));
    assert_eq!(b.delay(1, 0.0), Duration::from_millis(150));
    assert_eq!(b.delay(1, 1.0), Duration::from_millis(250));
}

#[tokio::test]
async fn over_tls_the_server_must_show_the_certificate_the_link_names() {
    // The app's server on a LAN: a certificate it made itself, named in the link by its hash.
    let (handle, _task, base, sha256) = common::start_self_signed().await;
    assert_eq!(
        handle.ws_url(),
        format!("wss://{}/v1/ws", handle.local_addr())
    );
    let named = Trust {
        server_sha256: Some(sha256),
        ..Trust::default()
    };

    // The pre-call check: the server answers over https.
    check(&base, &named).await.expect("the server answers");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let gone = check(&format!("http://127.0.0.1:{port}"), &Trust::default())
        .await
        .expect_err("nothing listens there");
    assert!(gone.contains("cannot reach"), "{gone}");

    // The room is made over https and the host joins over wss, from the link as text.
    let room = create_room(&base, handle.api_key(), Some("Dr. Ada"), &named)
        .await
        .expect("a room over https");
    let text = Link::for_token(&base, &room.room, &room.host_token)
        .expect("link")
        .with_certificate(sha256)
        .to_string();
    let link = Link::parse(&text).expect("the link reads back");
    let mut host =
        SignalClient::connect(&link.ws_url(), &link.token, None, &link.trust(None), fast())
            .await
            .expect("the host joins over wss");
    let SignalEvent::Joined { role, .. } = next(&mut host).await else {
        panic!("joined")
    };
    assert_eq!(role, Role::Host);

    // Another certificate named: refused, saying why, for the room and for the socket.
    let other = Trust {
        server_sha256: Some([0; 32]),
        ..Trust::default()
    };
    for err in [
        create_room(&base, handle.api_key(), None, &other)
            .await
            .expect_err("another certificate"),
        check(&base, &other).await.expect_err("another certificate"),
    ] {
        assert!(err.contains("not the one named in the link"), "{err}");
    }
    let err = SignalClient::connect(&link.ws_url(), &link.token, None, &other, fast())
        .await
        .expect_err("another certificate");
    assert!(
        err.to_string().contains("not the one named in the link"),
        "{err}"
    );
    // None named and no CA signed it: refused as well.
    let err = SignalClient::connect(&link.ws_url(), &link.token, None, &Trust::default(), fast())
        .await
        .expect_err("an unknown issuer");
    assert!(
        err.to_string().contains("not signed by an authority"),
        "{err}"
    );
    handle.shutdown().await;
}
