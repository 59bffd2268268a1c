//! ICE restarts between a browser guest and a native host, started from each side: new ICE
//! credentials are negotiated through signaling, and media keeps flowing both ways in the
//! same call.

#[path = "common/guest.rs"]
mod guest;

use std::time::Duration;

use confer_call::call::{CallEvent, CallHandle};
use confer_media::VideoCodec;
use guest::{Browser, Which};

async fn ufrag(page: &impl Browser, which: &str) -> String {
    let sdp = page
        .eval(&format!("confer.state.call.pc.{which}.sdp"))
        .await
        .expect("sdp");
    sdp.as_str()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        })
        .expect("a ufrag")
        .to_owned()
}

/// Media still flows both ways: new marked frames on the page, and browser frames at the host.
async fn media_flows(page: &impl Browser, host: &mut CallHandle, what: &str) {
    let before = guest::marks(page).await.last().map_or(0, |m| m.0);
    let (frames, _) = guest::host_receives(host, Duration::from_secs(2)).await;
    let after = guest::marks(page).await;
    let newer = after.iter().filter(|m| m.0 > before).count();
    eprintln!(
        "{what}: {newer} new frames on the page, {} at the host",
        frames.len()
    );
    assert!(
        newer >= 20,
        "{what}: {newer} new native frames on the page in 2 s"
    );
    assert!(
        frames.len() >= 20,
        "{what}: {} browser frames at the host in 2 s",
        frames.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restarts_from_either_side_keep_the_browser_call() {
    restarts(Which::Chromium, "guest-restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restarts_from_either_side_keep_the_firefox_call() {
    restarts(Which::Firefox, "guest-restart-firefox").await;
}

async fn restarts(which: Which, room: &str) {
    let _alone = guest::ONE_AT_A_TIME.lock().await;
    let (mut scene, _, _) = guest::connected(which, room, VideoCodec::Vp8).await;
    guest::watch_marks(&scene.page).await;
    media_flows(&scene.page, &mut scene.host, "before").await;

    // From the native side: the host's new offer reaches the page with new credentials.
    let remote_before = ufrag(&scene.page, "remoteDescription").await;
    let local_before = ufrag(&scene.page, "localDescription").await;
    scene.host.restart_ice();
    scene
        .page
        .wait_until(
            &format!(
                "!confer.state.call.pc.remoteDescription.sdp.includes('a=ice-ufrag:{remote_before}') \
                 && !confer.state.call.pc.localDescription.sdp.includes('a=ice-ufrag:{local_before}')"
            ),
            Duration::from_secs(5),
        )
        .await
        .expect("the host's restart reached the page, which answered with new credentials");
    let local_after = ufrag(&scene.page, "localDescription").await;
    media_flows(&scene.page, &mut scene.host, "after the host's restart").await;

    // From the browser: the host answers the page's new offer.
    scene
        .page
        .eval("confer.state.call.restartIce().then(() => true)")
        .await
        .expect("restart");
    let page_ufrag = ufrag(&scene.page, "localDescription").await;
    assert_ne!(page_ufrag, local_after, "the page offered new credentials");
    let host_ufrag = guest::host_event(&mut scene.host, Duration::from_secs(5), |e| match e {
        CallEvent::IceRestarted { ufrag } => Some(ufrag),
        _ => None,
    })
    .await;
    scene
        .page
        .wait_until(
            &format!(
                "confer.state.call.pc.remoteDescription.sdp.includes('a=ice-ufrag:{host_ufrag}')"
            ),
            Duration::from_secs(5),
        )
        .await
        .expect("the host's answer, with its new credentials, reached the page");
    media_flows(&scene.page, &mut scene.host, "after the page's restart").await;
    let state = scene
        .page
        .eval("confer.state.call.pc.connectionState")
        .await
        .expect("state");
    assert_eq!(state, "connected");
    scene.end().await;
}
