//! Mute, camera off/on and hang-up on a real call: the far side is told (data channel), and
//! what it receives changes accordingly — no tone while muted, no frames while the camera is
//! off, frames again (from a keyframe) when it comes back, and the reason when the other
//! side hangs up.

mod common;

use std::time::Duration;

use confer_call::call::{CallEvent, CallHandle};
use confer_media::tone::BurstDetector;
use confer_signal::Config;

/// What the guest sees for `window`: frames, tone bursts and the last media state reported.
async fn watch(call: &mut CallHandle, window: Duration) -> (usize, usize, Option<(bool, bool)>) {
    let (mut frames, mut state) = (0, None);
    let mut bursts = BurstDetector::new(1000.0, 0.005);
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(_) => frames += 1,
            CallEvent::RemoteAudio(samples) => bursts.push(&samples),
            CallEvent::PeerMedia { muted, camera } => state = Some((muted, camera)),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    (frames, bursts.onsets().len(), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_camera_and_hang_up_reach_the_far_side() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let (mut host, mut guest) = common::join_pair(&handle, "controls").await;
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );

    let (frames, bursts, _) = watch(&mut guest, Duration::from_millis(1500)).await;
    assert!(
        frames > 30 && bursts >= 2,
        "before: {frames} frames, {bursts} bursts"
    );

    host.set_muted(true);
    host.set_camera(false);
    // Let what was in flight drain (jitter buffer, last frames), then measure.
    let (_, _, state) = watch(&mut guest, Duration::from_millis(500)).await;
    assert_eq!(state, Some((true, false)), "muted, camera off");
    let (frames, bursts, _) = watch(&mut guest, Duration::from_millis(1500)).await;
    assert_eq!((frames, bursts), (0, 0), "nothing seen or heard while off");

    host.set_muted(false);
    host.set_camera(true);
    let (frames, bursts, state) = watch(&mut guest, Duration::from_millis(1500)).await;
    assert_eq!(state, Some((false, true)));
    assert!(frames > 30, "{frames} frames after the camera came back");
    assert!(bursts >= 2, "{bursts} bursts after unmuting");

    host.hang_up();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut reason = None;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, guest.next_event()).await {
        if let CallEvent::PeerHungUp(why) = event {
            reason = Some(why);
            break;
        }
    }
    assert_eq!(reason.as_deref(), Some("hung up"));
    guest.hang_up();
    handle.shutdown().await;
}
