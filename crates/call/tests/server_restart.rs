//! The signaling server restarts in the middle of a call: media, which never passed through
//! it, keeps flowing without a gap; both clients reconnect by themselves and the new server
//! pairs them again; chat (peer to peer) keeps working throughout.

mod common;

use std::time::{Duration, Instant};

use confer_call::call::CallEvent;
use confer_call::signaling::SignalEvent;
use confer_media::mark;
use confer_signal::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_keeps_flowing_while_the_signaling_server_restarts() {
    let (handle, task) = common::start(Config::loopback()).await;
    let addr = handle.local_addr();
    let (mut host, mut guest) = common::join_pair(&handle, "restart").await;
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );

    // The server goes away for a second and comes back on the same address.
    handle.shutdown().await;
    task.await.expect("stopped");
    let down = Instant::now();
    let restarted = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        common::start(Config {
            listen: addr,
            ..Config::loopback()
        })
        .await
    });

    // Watch the guest's side for 4 s: video frames keep coming with no freeze, the
    // client reports reconnecting, then is paired again.
    let mut last_frame = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut frames = 0;
    let mut ids = Vec::new();
    let (mut reconnecting, mut paired_again) = (false, false);
    let end = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(event)) = tokio::time::timeout_at(end, guest.next_event()).await {
        match event {
            CallEvent::RemoteVideo(frame) => {
                frames += 1;
                longest_gap = longest_gap.max(last_frame.elapsed());
                last_frame = Instant::now();
                ids.extend(mark::read(&frame).map(|m| m.frame_id));
            }
            CallEvent::Signaling(SignalEvent::Reconnecting { .. }) => reconnecting = true,
            CallEvent::Signaling(SignalEvent::CallReady { .. }) => paired_again = true,
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    let (new_handle, _new_task) = restarted.await.expect("restarted");
    assert!(down.elapsed() >= Duration::from_secs(1));
    assert!(frames >= 100, "{frames} frames in 4 s");
    // No freeze (500 ms without a frame, as the stats count them): the restart does not
    // touch media. (A 250 ms bound failed once on the CI runner at 309 ms.)
    assert!(
        longest_gap < Duration::from_millis(500),
        "a {longest_gap:?} gap in the video"
    );
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "in order");
    assert!(reconnecting, "the outage was reported");
    assert!(paired_again, "the new server paired the two again");

    // Chat still arrives (peer to peer).
    let id = host.send_chat("still here").expect("send");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut got = false;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, guest.next_event()).await {
        if let CallEvent::Chat { text, .. } = event {
            assert_eq!(text, "still here");
            got = true;
            break;
        }
    }
    assert!(got, "chat after the restart ({id})");
    host.hang_up();
    guest.hang_up();
    new_handle.shutdown().await;
}
