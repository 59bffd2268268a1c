//! The frame socket over a real loopback WebSocket: who may connect, what a frame message
//! holds, and that frames are sent only against credits, newest first.

use std::time::Duration;

use confer_frames::{FrameServer, Stream, decode_header};
use confer_media::VideoFrame;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn frame(fill: u8) -> VideoFrame {
    let mut f = VideoFrame::black(64, 36);
    f.y.fill(fill);
    f.capture_us = confer_media::mark::wall_clock_us();
    f
}

async fn next_frame(ws: &mut Socket) -> Vec<u8> {
    let message = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s")
        .expect("socket open")
        .expect("no socket error");
    match message {
        Message::Binary(bytes) => bytes.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

type Connected = Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error>;

fn status_of(result: Connected) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the socket opened"),
    }
}

#[tokio::test]
async fn strangers_are_refused_before_the_socket_opens() {
    let server = FrameServer::start().await.unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());

    let wrong = format!("ws://{addr}/remote?token=not-the-token");
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(wrong).await),
        403
    );
    let missing = format!("ws://{addr}/remote");
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(missing).await),
        403
    );
    let unknown = format!("ws://{addr}/screen?token={}", server.token());
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(unknown).await),
        404
    );
    assert_eq!(server.refused(), 3);

    // Every launch has its own token.
    let other = FrameServer::start().await.unwrap();
    assert_ne!(server.token(), other.token());
    assert!(server.token().len() >= 32);
    tokio_tungstenite::connect_async(server.url(Stream::Remote))
        .await
        .expect("the launch's own URL connects");
}

#[tokio::test]
async fn frames_go_out_only_against_credit_and_the_newest_wins() {
    let server = FrameServer::start().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url(Stream::Remote))
        .await
        .unwrap();

    // Three frames before the page asks for any: only the newest will be sent.
    for fill in [10, 20, 30] {
        server.publish(Stream::Remote, frame(fill));
    }
    // A frame on the other stream never shows up on this socket.
    server.publish(Stream::Local, frame(99));
    ws.send(Message::text("credit 1")).await.unwrap();
    let first = next_frame(&mut ws).await;
    let header = decode_header(&first).unwrap();
    assert_eq!(header.stream, Stream::Remote);
    assert_eq!((header.width, header.height, header.seq), (64, 36, 3));
    assert_eq!(
        first[confer_frames::HEADER_LEN],
        30,
        "the newest frame's pixels"
    );

    // The credit is spent: two more frames wait, the older replaced by the newer. Drawing
    // frame 3 returns the credit, and frame 5 (not 4) comes.
    server.publish(Stream::Remote, frame(40));
    server.publish(Stream::Remote, frame(50));
    ws.send(Message::text("drawn 3")).await.unwrap();
    let second = next_frame(&mut ws).await;
    assert_eq!(decode_header(&second).unwrap().seq, 5);
    assert_eq!(second[confer_frames::HEADER_LEN], 50);
    ws.send(Message::text("drawn 5")).await.unwrap();

    // The page has drawn two frames: the stats say so, with a latency for each.
    let stats = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let stats = server.stats(Stream::Remote);
            if stats.drawn == 2 {
                break stats;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("both drawn reports read within 5 s");
    assert_eq!(stats.published, 5);
    assert_eq!(stats.sent, 2);
    assert_eq!(stats.replaced, 3);
    let p50 = stats.latency_p50_ms.expect("latency measured");
    assert!((0.0..5_000.0).contains(&p50), "latency {p50} ms");
    assert_eq!(server.stats(Stream::Local).sent, 0);
}

#[tokio::test]
async fn a_page_that_speaks_nonsense_is_closed() {
    let server = FrameServer::start().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url(Stream::Local))
        .await
        .unwrap();
    ws.send(Message::text("gimme frames")).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed within 5 s");
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
}

#[tokio::test]
async fn frames_come_no_larger_than_the_page_shows_them() {
    let server = FrameServer::start().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url(Stream::Local))
        .await
        .unwrap();
    // A 64x36 canvas box of 16x16: the frame comes at 16x8 (aspect kept, sides even).
    ws.send(Message::text("size 16 16")).await.unwrap();
    ws.send(Message::text("credit 1")).await.unwrap();
    server.publish(Stream::Local, frame(200));
    let small = next_frame(&mut ws).await;
    let header = decode_header(&small).unwrap();
    assert_eq!((header.width, header.height), (16, 8));
    assert_eq!(header.seq, 1);
    assert_eq!(small[confer_frames::HEADER_LEN], 200, "the picture, scaled");

    // No limit again: full size; and a box larger than the frame never enlarges it.
    for (size, expected) in [("size 0 0", (64, 36)), ("size 4000 4000", (64, 36))] {
        ws.send(Message::text(size)).await.unwrap();
        server.publish(Stream::Local, frame(100));
        let seq = server.stats(Stream::Local).published as u32;
        ws.send(Message::text(format!("drawn {}", seq - 1)))
            .await
            .unwrap();
        let header = decode_header(&next_frame(&mut ws).await).unwrap();
        assert_eq!((header.width, header.height), expected, "{size}");
        assert_eq!(header.seq, seq);
    }
}
