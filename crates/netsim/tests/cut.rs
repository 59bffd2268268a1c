//! The path is cut completely for 5 s in both directions, then restored: both sides report
//! that they are reconnecting during the cut, and the same call carries media again within
//! 2 s of the path coming back, without anyone doing anything.

mod common;

use std::time::{Duration, Instant};

use confer_call::call::{CallEvent, CallHandle};
use confer_media::mark;
use confer_netsim::{Direction, Impairment};

/// What one side saw during the cut.
#[derive(Debug, Default)]
struct DuringCut {
    frames: usize,
    reconnecting: bool,
    restarted: bool,
}

async fn during_cut(call: &mut CallHandle, window: Duration) -> DuringCut {
    let mut seen = DuringCut::default();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(_) => seen.frames += 1,
            CallEvent::Reconnecting => seen.reconnecting = true,
            CallEvent::IceRestarted { .. } => seen.restarted = true,
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    seen
}

/// Waits for the next decoded frame and for `Reconnected`; returns when the frame arrived.
async fn back(call: &mut CallHandle, limit: Duration) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    let (mut frame_at, mut reconnected) = (None, false);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(frame) if mark::read(&frame).is_some() => {
                frame_at = frame_at.or(Some(Instant::now()));
            }
            CallEvent::Reconnected => reconnected = true,
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
        if frame_at.is_some() && reconnected {
            return frame_at;
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_resumes_within_2_s_of_a_5_s_cut() {
    let net = common::net(5).await;
    let (mut host, mut guest) = net.call("cut").await;
    let _ = common::watch(&mut host, Duration::from_secs(1)).await;
    let _ = common::watch(&mut guest, Duration::from_secs(1)).await;

    net.relay.set_both(Impairment {
        cut: true,
        ..Impairment::default()
    });
    // What was on its way drains; after that nothing arrives during the cut.
    let (h, g) = tokio::join!(
        during_cut(&mut host, Duration::from_secs(5)),
        during_cut(&mut guest, Duration::from_secs(5))
    );
    let restored = Instant::now();
    net.relay.set_both(Impairment::default());
    eprintln!("during the cut: host {h:?}, guest {g:?}");
    for (who, seen) in [("host", &h), ("guest", &g)] {
        assert!(
            seen.frames < 15,
            "{who} got {} frames during the cut",
            seen.frames
        );
        assert!(seen.reconnecting, "{who} reported reconnecting");
    }
    assert!(
        h.restarted && g.restarted,
        "the offerer restarted ICE, and the other side followed"
    );
    let (h, g) = tokio::join!(
        back(&mut host, Duration::from_secs(15)),
        back(&mut guest, Duration::from_secs(15))
    );
    for (who, at) in [("host", h), ("guest", g)] {
        let at = at.unwrap_or_else(|| panic!("{who}: not reconnected within 15 s of the restore"));
        let after = at - restored;
        eprintln!("{who}: video back {after:?} after the restore");
        assert!(
            after < Duration::from_secs(2),
            "{who}: back after {after:?}"
        );
    }
    for d in Direction::BOTH {
        assert!(net.relay.stats(d).shaper.cut_drops > 0, "{d:?} was cut");
    }
    tokio::join!(common::end(host), common::end(guest));
}
