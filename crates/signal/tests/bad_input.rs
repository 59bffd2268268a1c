//! Bad input over real sockets: every rejected frame gets a typed error, the limits hold, the
//! server never falls over, and a flood in one room leaves other rooms' relay latency alone.

mod common;

use std::time::{Duration, Instant};

use common::*;
use confer_protocol::{ClientMessage, ErrorCode, ServerMessage};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn still_alive(c: &mut Client) {
    c.send_text(r#"{"type":"ping","t":7}"#).await;
    // Room events may come first; the pong must come.
    c.recv_until(|m| matches!(m, ServerMessage::Pong { .. }))
        .await;
}

#[tokio::test]
async fn each_bad_frame_gets_a_typed_error_and_the_connection_survives() {
    let server = TestServer::start().await;
    let Call {
        mut guest,
        host: _host,
        ..
    } = call(&server).await;
    let cases: Vec<(Message, ErrorCode)> = vec![
        (Message::text("{not json"), ErrorCode::BadMessage),
        (Message::binary(vec![1u8, 2, 3]), ErrorCode::BadMessage),
        (
            Message::text(r#"{"type":"teleport"}"#),
            ErrorCode::BadMessage,
        ),
        (
            Message::text(r#"{"type":"admit","peer":42}"#),
            ErrorCode::BadMessage,
        ),
        (
            Message::text(r#"{"type":"signal","payload":"sdp"}"#),
            ErrorCode::BadMessage,
        ),
        (Message::text(r#"{"no":"type"}"#), ErrorCode::BadMessage),
        (Message::text("[1,2,3]"), ErrorCode::BadMessage),
        (Message::text("x".repeat(100 * 1024)), ErrorCode::TooLarge),
        (
            Message::text(r#"{"type":"admit","peer":"p"}"#),
            ErrorCode::NotAllowed,
        ),
    ];
    for (frame, code) in cases {
        guest.ws.send(frame).await.expect("send");
        let reply = guest.recv().await;
        assert_eq!(error_code(&reply), code, "{reply:?}");
        let ServerMessage::Error { message, .. } = reply else {
            unreachable!()
        };
        assert!(!message.is_empty());
    }
    still_alive(&mut guest).await;
    assert!(
        server
            .metric("confer_errors_total{code=\"bad-message\"}")
            .await
            >= 7.0
    );
    server.stop().await;
}

#[tokio::test]
async fn repeated_violations_close_with_1008() {
    let server = TestServer::start().await;
    let Call {
        mut guest,
        mut host,
        ..
    } = call(&server).await;
    for _ in 0..11 {
        guest.send_text("nope").await;
    }
    let close = guest.closed().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1008);
    // The seat is held like any dropped socket; the host is told, nothing else breaks.
    let msg = host.recv().await;
    assert!(
        matches!(msg, ServerMessage::PeerReconnecting { .. }),
        "{msg:?}"
    );
    still_alive(&mut host).await;
    assert!(server.metric("confer_policy_closes_total").await >= 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_closes_with_1009() {
    let server = TestServer::start().await;
    let Call {
        mut guest,
        mut host,
        ..
    } = call(&server).await;
    guest
        .ws
        .send(Message::text("y".repeat(1024 * 1024)))
        .await
        .expect("send");
    let close = guest.closed().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1009);
    still_alive(&mut host).await;
    server.stop().await;
}

/// Relay latency (one signal from a to b and back) in a quiet room, `n` samples.
async fn relay_rtts(a: &mut Client, b: &mut Client, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        a.signal(json!({"n": i})).await;
        b.recv().await;
        b.signal(json!({"n": i})).await;
        a.recv().await;
        out.push(t.elapsed());
        // Stay within the quiet room's own rate limit (20/s sustained after the burst).
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    out.sort();
    out
}

/// The host of `call` floods its guest with signals until the server cuts the connection,
/// resumes its seat and floods again, until `stop`. Returns (connections cut, messages sent,
/// whether `rate-limited` was seen).
async fn flood(
    url: String,
    call: Call,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u32, u64, bool) {
    let Call {
        room,
        host,
        guest: _guest,
        ..
    } = call;
    let secret = host.resume_secret();
    drop(host);
    let frame = serde_json::to_string(&ClientMessage::Signal {
        payload: as_payload(json!({"kind": "candidate", "junk": "z".repeat(200)})),
    })
    .expect("json");
    let (mut cuts, mut sent, mut rate_limited) = (0, 0u64, false);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut f = Client::connect(&url).await;
        f.send(&hello(&room.host_token, Some(secret.clone()), None))
            .await;
        'conn: loop {
            if f.ws.send(Message::text(frame.clone())).await.is_err() {
                break;
            }
            sent += 1;
            loop {
                match f.try_recv(Duration::ZERO).await {
                    Ok(ServerMessage::Error { code, .. }) => {
                        rate_limited |= code == ErrorCode::RateLimited;
                    }
                    Ok(_) => {}
                    Err(e) if e == "timed out" => break,
                    Err(_) => break 'conn,
                }
            }
            assert!(sent < 10_000_000, "flooder never cut off");
        }
        cuts += 1;
    }
    (cuts, sent, rate_limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_cut_off_and_other_rooms_do_not_notice() {
    let server = TestServer::start().await;
    let Call {
        host: mut a,
        guest: mut b,
        ..
    } = call(&server).await;
    let baseline = relay_rtts(&mut a, &mut b, 20).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let call = call(&server).await;
        flooders.push(tokio::spawn(flood(server.ws_url(), call, stop.clone())));
    }
    let during = relay_rtts(&mut a, &mut b, 20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for f in flooders {
        let (cuts, sent, rate_limited) = f.await.expect("flooder");
        assert!(
            cuts >= 1 && rate_limited,
            "cut {cuts} times, rate-limited {rate_limited}"
        );
        total += sent;
    }
    let p50 = |v: &[Duration]| v[v.len() / 2];
    let max = |v: &[Duration]| v[v.len() - 1];
    eprintln!(
        "quiet-room round trip: baseline p50 {:?} max {:?}; during a flood of {total} messages p50 {:?} max {:?}",
        p50(&baseline),
        max(&baseline),
        p50(&during),
        max(&during)
    );
    // Two relays per sample. Generous bounds for a debug build on a shared 2-core machine;
    // a server that stalled other rooms behind a flooder would blow far past them.
    assert!(max(&during) < Duration::from_millis(250), "{during:?}");
    assert!(p50(&during) < p50(&baseline) * 10 + Duration::from_millis(20));
    assert!(server.metric("confer_policy_closes_total").await >= 4.0);
    assert!(
        server
            .metric("confer_errors_total{code=\"rate-limited\"}")
            .await
            >= 4.0
    );
    still_alive(&mut a).await;
    server.stop().await;
}
