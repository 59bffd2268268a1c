//! Two Confer peers call each other through a real confer-signal on loopback: real ICE, DTLS,
//! SRTP and RTP over UDP sockets. Each sends the test pattern (VP8 or H.264, 640x360) and tone
//! bursts (Opus); each reads the frame marks of the video it decodes (in order, no duplicates, enough
//! of them) and finds the tone bursts in the audio it plays out.

use std::time::{Duration, Instant};

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_media::tone::BurstDetector;
use confer_media::{VideoCodec, mark};
use confer_protocol::Role;
use confer_signal::Config;

mod common;

/// What one side received in the measuring window.
#[derive(Debug, Default)]
struct Received {
    frame_ids: Vec<u32>,
    unmarked: usize,
    bursts: usize,
    stats: Vec<confer_call::call::CallStats>,
}

/// Collects what arrives for `window`.
async fn collect(call: &mut CallHandle, window: Duration) -> Received {
    let mut got = Received::default();
    let mut bursts = BurstDetector::new(1000.0, 0.005);
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(frame) => match mark::read(&frame) {
                Some(m) => got.frame_ids.push(m.frame_id),
                None => got.unmarked += 1,
            },
            CallEvent::RemoteAudio(samples) => bursts.push(&samples),
            CallEvent::Stats(s) => got.stats.push(*s),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    got.bursts = bursts.onsets().len();
    got
}

/// Host and guest of `room` with their preferred video codecs, connected; returns what each
/// received in four seconds.
async fn call(room: &str, host_codec: VideoCodec, guest_codec: VideoCodec) -> (Received, Received) {
    let (handle, _task) = common::start(Config::loopback()).await;
    let started = Instant::now();
    let config = |role, video_codec| CallConfig {
        video_codec,
        ..common::call_config(&handle, room, role)
    };
    let mut host = CallHandle::join(config(Role::Host, host_codec))
        .await
        .expect("host joins");
    let mut guest = CallHandle::join(config(Role::Guest, guest_codec))
        .await
        .expect("guest joins");
    let (h, g) = tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );
    assert_eq!(h, g, "both read the same verification code");
    eprintln!("connected after {:?}", started.elapsed());

    let window = Duration::from_secs(4);
    let (at_host, at_guest) = tokio::join!(collect(&mut host, window), collect(&mut guest, window));
    host.hang_up();
    guest.hang_up();
    handle.shutdown().await;
    (at_host, at_guest)
}

/// Video (marks in order, few losses), audio bursts and stats as a healthy call has them.
fn check(side: &str, got: &Received) {
    eprintln!(
        "{side}: {} frames ({} unmarked), ids {:?}…, {} bursts",
        got.frame_ids.len(),
        got.unmarked,
        &got.frame_ids[..got.frame_ids.len().min(5)],
        got.bursts
    );
    assert!(
        got.frame_ids.len() >= 80,
        "{side}: {} frames in 4 s",
        got.frame_ids.len()
    );
    assert!(
        got.frame_ids.windows(2).all(|w| w[1] > w[0]),
        "{side}: frame ids in order without repeats"
    );
    let span = got.frame_ids.last().unwrap() - got.frame_ids.first().unwrap() + 1;
    assert!(
        got.frame_ids.len() as f64 >= 0.95 * f64::from(span),
        "{side}: {} of {span} frames arrived",
        got.frame_ids.len()
    );
    assert_eq!(
        got.unmarked, 0,
        "{side}: every decoded frame carries its mark"
    );
    assert!(
        got.bursts >= 6,
        "{side}: {} tone bursts in 4 s (one per 500 ms)",
        got.bursts
    );
    // Stats once a second, and they describe this call.
    assert!(
        got.stats.len() >= 3,
        "{side}: {} stats in 4 s",
        got.stats.len()
    );
    let last = got.stats.last().expect("stats");
    eprintln!("{side}: {last:?}");
    assert_eq!((last.width, last.height), (640, 360), "{side}: {last:?}");
    assert_eq!(
        last.quality.as_ref().map(|q| q.level),
        Some(confer_call::quality::Level::Good),
        "{side}: a clean loopback call is good: {last:?}"
    );
    assert!(
        (25.0..=35.0).contains(&last.fps_received),
        "{side}: {last:?}"
    );
    assert!((25.0..=35.0).contains(&last.fps_sent), "{side}: {last:?}");
    assert!(
        last.recv_kbps > 100.0 && last.send_kbps > 100.0,
        "{side}: {last:?}"
    );
    assert_eq!(
        last.path.as_deref(),
        Some("host"),
        "{side}: direct on loopback"
    );
    assert!(last.loss_pct < 1.0 && last.freezes == 0, "{side}: {last:?}");
    assert!(
        last.decode_ms > 0.0 && last.encode_ms > 0.0,
        "{side}: {last:?}"
    );
}

/// A call where both sides prefer `codec`: a healthy call in that codec both ways.
async fn both_prefer(room: &str, codec: VideoCodec) {
    let (at_host, at_guest) = call(room, codec, codec).await;
    for (side, got) in [("host", &at_host), ("guest", &at_guest)] {
        check(side, got);
        let last = got.stats.last().expect("stats");
        assert_eq!(
            (last.codec_sent, last.codec_received),
            (Some(codec), Some(codec)),
            "{side}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_video_and_audio_through_the_signaling_server() {
    both_prefer("media", VideoCodec::Vp8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_used_when_both_sides_prefer_it() {
    both_prefer("h264", VideoCodec::H264).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_preferences_agree_on_the_initiators_first_codec() {
    let (at_host, at_guest) = call("mixed", VideoCodec::H264, VideoCodec::Vp8).await;
    check("host", &at_host);
    check("guest", &at_guest);
    let (h, g) = (
        at_host.stats.last().expect("stats"),
        at_guest.stats.last().expect("stats"),
    );
    eprintln!(
        "host sends {:?}, guest sends {:?}",
        h.codec_sent, g.codec_sent
    );
    assert_eq!(h.codec_sent, g.codec_received);
    assert_eq!(g.codec_sent, h.codec_received);
    // The answer keeps the offer's order, so both send what the initiator put first.
    assert_eq!(h.codec_sent, g.codec_sent, "one codec for the call");
    assert!(h.codec_sent.is_some());
}
