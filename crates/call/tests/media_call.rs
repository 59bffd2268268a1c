//! Two Confer peers call each other through a real confer-signal on loopback: real ICE, DTLS,
//! SRTP and RTP over UDP sockets. Each sends the test pattern (VP8, 640x360) and tone bursts
//! (Opus); each reads the frame marks of the video it decodes (in order, no duplicates, enough
//! of them) and finds the tone bursts in the audio it plays out.

use std::time::{Duration, Instant};

use confer_call::call::{CallEvent, CallHandle};
use confer_media::mark;
use confer_media::tone::BurstDetector;
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
            CallEvent::Stats(s) => got.stats.push(s),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    got.bursts = bursts.onsets().len();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_exchange_video_and_audio_through_the_signaling_server() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let started = Instant::now();
    let (mut host, mut guest) = common::join_pair(&handle, "media").await;
    let (h, g) = tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );
    assert_eq!(h, g, "both read the same verification code");
    eprintln!("connected after {:?}", started.elapsed());

    let window = Duration::from_secs(4);
    let (at_host, at_guest) = tokio::join!(collect(&mut host, window), collect(&mut guest, window));
    for (side, got) in [("host", &at_host), ("guest", &at_guest)] {
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
    host.hang_up();
    guest.hang_up();
    handle.shutdown().await;
}
