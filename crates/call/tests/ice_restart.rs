//! ICE restart in the middle of a call, asked for from either side: new ICE credentials on
//! both sides (through signaling), the same call, and video that keeps being decoded (which
//! needs the receiver's keyframe requests to reach the sender's encoder).

mod common;

use std::time::{Duration, Instant};

use confer_call::call::{CallEvent, CallHandle};
use confer_signal::Config;

/// For `window`: the ufrag of each restart seen, frames decoded, the longest gap between them.
async fn watch(call: &mut CallHandle, window: Duration) -> (Vec<String>, usize, Duration) {
    let (mut restarts, mut frames) = (Vec::new(), 0);
    let (mut last, mut gap) = (Instant::now(), Duration::ZERO);
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::IceRestarted { ufrag } => restarts.push(ufrag),
            CallEvent::RemoteVideo(_) => {
                frames += 1;
                gap = gap.max(last.elapsed());
                last = Instant::now();
            }
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    (restarts, frames, gap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restarts_from_either_side_keep_the_call() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let (mut host, mut guest) = common::join_pair(&handle, "ice").await;
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );

    let mut ufrags = Vec::new();
    for (n, restarting_host) in [true, false].into_iter().enumerate() {
        if restarting_host {
            host.restart_ice();
        } else {
            guest.restart_ice();
        }
        let window = Duration::from_secs(2);
        let ((at_host, host_frames, host_gap), (at_guest, guest_frames, guest_gap)) =
            tokio::join!(watch(&mut host, window), watch(&mut guest, window));
        assert_eq!(
            (at_host.len(), at_guest.len()),
            (1, 1),
            "restart {n}: both restarted"
        );
        ufrags.extend(at_host);
        ufrags.extend(at_guest);
        for (side, frames, gap) in [
            ("host", host_frames, host_gap),
            ("guest", guest_frames, guest_gap),
        ] {
            assert!(frames >= 45, "restart {n}, {side}: {frames} frames in 2 s");
            assert!(
                gap < Duration::from_millis(500),
                "restart {n}, {side}: a {gap:?} gap"
            );
        }
    }
    ufrags.sort();
    ufrags.dedup();
    assert_eq!(ufrags.len(), 4, "fresh credentials every time: {ufrags:?}");
    host.hang_up();
    guest.hang_up();
    handle.shutdown().await;
}
