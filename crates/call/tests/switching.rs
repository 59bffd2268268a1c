//! Switching sources in the middle of a call, without renegotiating: the far side sees the new
//! picture (another size: a new encoder, a keyframe) without a freeze and hears the new sound;
//! a source that cannot open is refused and the call keeps the old one.

mod common;

use std::time::{Duration, Instant};

use confer_call::call::{CallEvent, CallHandle};
use confer_media::mark;
use confer_media::tone::BurstDetector;
use confer_signal::Config;

/// For `window`: sizes of the frames seen, the longest gap between frames, tone bursts heard.
async fn watch(call: &mut CallHandle, window: Duration) -> (Vec<(u32, u32)>, Duration, usize) {
    let mut sizes = Vec::new();
    let mut bursts = BurstDetector::new(1000.0, 0.005);
    let (mut last, mut gap) = (Instant::now(), Duration::ZERO);
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(frame) => {
                assert!(mark::read(&frame).is_some(), "a clean frame");
                gap = gap.max(last.elapsed());
                last = Instant::now();
                sizes.push((frame.width, frame.height));
            }
            CallEvent::RemoteAudio(samples) => bursts.push(&samples),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    (sizes, gap, bursts.onsets().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_and_microphone_switch_mid_call_without_a_glitch() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let (mut host, mut guest) = common::join_pair(&handle, "switch").await;
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );
    // A call starts at a low rate on a smaller rung and climbs to the source's size.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, guest.next_event())
            .await
            .expect("640x360 within 5 s")
            .expect("call running");
        if let CallEvent::RemoteVideo(frame) = event
            && (frame.width, frame.height) == (640, 360)
        {
            break;
        }
    }
    let (sizes, _, bursts) = watch(&mut guest, Duration::from_secs(1)).await;
    assert!(sizes.iter().all(|s| *s == (640, 360)) && bursts >= 1);

    // Another "camera" at another size, and speech instead of the tone.
    host.switch_video("pattern:320x180").expect("switch video");
    host.switch_audio("speech").expect("switch audio");
    let (sizes, gap, _) = watch(&mut guest, Duration::from_millis(1500)).await;
    assert_eq!(sizes.last(), Some(&(320, 180)), "the new picture arrived");
    let switched_at = sizes
        .iter()
        .position(|s| *s == (320, 180))
        .expect("switched");
    assert!(
        sizes[switched_at..].iter().all(|s| *s == (320, 180)),
        "no going back"
    );
    assert!(
        gap < Duration::from_millis(300),
        "a {gap:?} gap at the switch"
    );
    let (_, _, bursts) = watch(&mut guest, Duration::from_millis(1500)).await;
    assert_eq!(bursts, 0, "no tone once the source is speech");

    // A source that does not exist: refused, and the call goes on with the current one.
    let err = host
        .switch_video("camera:Nonexistent Camera")
        .expect_err("no such camera");
    assert!(err.contains("Nonexistent Camera"), "{err}");
    host.switch_audio("tone").expect("back to the tone");
    let (sizes, _, bursts) = watch(&mut guest, Duration::from_millis(1500)).await;
    assert!(
        sizes.len() > 30 && sizes.iter().all(|s| *s == (320, 180)),
        "{} frames in 1.5 s, sizes {:?}",
        sizes.len(),
        sizes.iter().collect::<std::collections::BTreeSet<_>>()
    );
    assert!(bursts >= 2, "{bursts} bursts after switching back");
    host.hang_up();
    guest.hang_up();
    handle.shutdown().await;
}
