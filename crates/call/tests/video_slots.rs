//! Video reaches the reader latest-frame-wins: a reader that stops for a second gets the
//! newest remote frame when it comes back, not a second of old ones, and the frames it missed
//! are counted. The self view (local preview) is off until asked for, and then delivered the
//! same way.

mod common;

use std::time::Duration;

use confer_call::call::{CallEvent, CallHandle};
use confer_media::mark;
use confer_signal::Config;

/// The next remote (or, with `local`, local) frame's mark: frame id and age in ms.
async fn next_frame(call: &mut CallHandle, local: bool) -> (u32, f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, call.next_event())
            .await
            .expect("a frame within 5 s")
            .expect("call running");
        let frame = match event {
            CallEvent::RemoteVideo(f) if !local => f,
            CallEvent::LocalVideo(f) if local => f,
            CallEvent::LocalVideo(_) => panic!("a local frame without the self view on"),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => continue,
        };
        let m = mark::read(&frame).expect("marked frame");
        let age = mark::age_us(m.capture_us, mark::wall_clock_us()) as f64 / 1e3;
        return (m.frame_id, age);
    }
}

/// The next stats report.
async fn next_stats(call: &mut CallHandle) -> confer_call::call::CallStats {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), call.next_event()).await {
            Ok(Some(CallEvent::Stats(s))) => return *s,
            Ok(Some(CallEvent::Ended(why))) => panic!("ended: {why}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no stats within 5 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_the_newest_frame_and_the_self_view_is_opt_in() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let (mut host, mut guest) = common::join_pair(&handle, "slots").await;
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );
    let (before, _) = next_frame(&mut guest, false).await;
    let skipped_before = next_stats(&mut guest).await.frames_skipped;

    // The guest does not read for a second (30 frames arrive meanwhile).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after, age) = next_frame(&mut guest, false).await;
    assert!(
        after >= before + 25,
        "frame {after} after {before}: the newest, not the next in a queue"
    );
    assert!(age < 250.0, "the frame handed over is {age:.0} ms old");
    let skipped = next_stats(&mut guest).await.frames_skipped - skipped_before;
    assert!(
        skipped >= 20,
        "{skipped} frames counted as skipped in that second"
    );
    // Reading again, frames come in order, one after the other.
    let (a, _) = next_frame(&mut guest, false).await;
    let (b, _) = next_frame(&mut guest, false).await;
    assert!(b > a, "{a} then {b}");

    // Self view: nothing until asked for (next_frame panics on a stray local frame), then
    // the camera's own frames, fresh.
    let _ = next_frame(&mut host, false).await;
    host.set_local_preview(true);
    let (first, _) = next_frame(&mut host, true).await;
    let (second, age) = next_frame(&mut host, true).await;
    assert!(second > first, "local frames {first} then {second}");
    assert!(age < 100.0, "a self-view frame {age:.0} ms old");

    tokio::join!(common::end(host), common::end(guest));
}
