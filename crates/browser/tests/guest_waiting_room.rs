//! The browser guest's way in and out: the room's consent line must be agreed to; the guest
//! knocks with its name and waits; the host turns it away, then lets it in when it asks
//! again; the guest leaves (the host is told) and rejoins the same call from the end screen.

#[path = "common/guest.rs"]
mod guest;

use std::time::Duration;

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_call::signaling::SignalEvent;
use confer_media::VideoCodec;
use guest::{Browser, Which};

const CONSENT: &str = "I agree to a video consultation; nothing is recorded.";

async fn knock(host: &mut CallHandle) -> (String, Option<String>) {
    guest::host_event(host, Duration::from_secs(10), |e| match e {
        CallEvent::Signaling(SignalEvent::Knock { peer, name }) => Some((peer, name)),
        _ => None,
    })
    .await
}

/// From the end screen: Join again, back through the device check, knock, be let in, and
/// connect with the same verification code on both sides.
async fn join_again_and_be_let_in(page: &impl Browser, host: &mut CallHandle) {
    let wait = Duration::from_secs(10);
    page.eval("document.getElementById('rejoin').click(); true")
        .await
        .expect("join again");
    page.wait_until(confer_browser::GUEST_READY_JS, wait)
        .await
        .expect("back to the device check");
    guest::join(page, "Pat Guest").await;
    let (peer, _) = knock(host).await;
    host.admit(&peer);
    let code = guest::wait_connected(host).await;
    page.wait_until(
        &format!("confer.state.sas === {code:?}"),
        Duration::from_secs(15),
    )
    .await
    .expect("the same code on both sides");
}

async fn screen(page: &impl Browser) -> String {
    let s = page.eval("confer.state.screen").await.expect("screen");
    s.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_waiting_room_deny_admit_leave_and_rejoin() {
    lobby(Which::Chromium, "guest-lobby").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_waiting_room_deny_admit_leave_and_rejoin_in_firefox() {
    lobby(Which::Firefox, "guest-lobby-firefox").await;
}

async fn lobby(which: Which, room: &str) {
    let _alone = guest::ONE_AT_A_TIME.lock().await;
    let (handle, _server, page) = guest::open(which, room, Some(CONSENT), "").await;
    let mut host = CallHandle::join(CallConfig {
        auto_admit: false,
        ..guest::host_config(&handle, room, VideoCodec::Vp8)
    })
    .await
    .expect("host joins");
    let wait = Duration::from_secs(10);

    if let Some(chromium) = page.chromium() {
        chromium.set_viewport(1280, 800).await.expect("viewport");
    }
    guest::shoot(&page, "1-check").await;
    // The consent line is shown, and Join does nothing until it is agreed to.
    let shown = page
        .eval("document.getElementById('consent-text').textContent")
        .await
        .expect("consent");
    assert_eq!(shown, CONSENT);
    page.eval("document.getElementById('name').value = 'Pat Guest'; document.getElementById('join').click(); true")
        .await
        .expect("join without consent");
    assert_eq!(screen(&page).await, "check", "not joined without consent");
    let focused = page.eval("document.activeElement.id").await.expect("focus");
    assert_eq!(focused, "consent", "the box to tick has the focus");

    // Agreed: the guest knocks with its name and waits; the host turns it away.
    guest::join(&page, "Pat Guest").await;
    let (peer, name) = knock(&mut host).await;
    assert_eq!(name.as_deref(), Some("Pat Guest"));
    page.wait_until(
        "confer.state.screen === 'waiting' && !document.getElementById('waiting').hidden",
        wait,
    )
    .await
    .expect("the waiting room");
    guest::shoot(&page, "2-waiting").await;
    host.deny(&peer);
    page.wait_until("confer.state.screen === 'ended'", wait)
        .await
        .expect("turned away");
    let reason = page
        .eval("document.getElementById('ended-reason').textContent")
        .await
        .expect("reason");
    assert!(
        reason
            .as_str()
            .unwrap_or_default()
            .contains("did not let you in"),
        "{reason}"
    );

    // Asking again from the end screen: let in this time, and connected.
    join_again_and_be_let_in(&page, &mut host).await;

    page.wait_until(
        "confer.state.lastStats && confer.state.lastStats.framesDecoded > 10",
        wait,
    )
    .await
    .expect("the host's video on the page");
    guest::shoot(&page, "3-call").await;
    // The guest leaves: the host is told.
    page.eval("document.getElementById('hang-up').click(); true")
        .await
        .expect("leave");
    // The server's peer-left; the data channel's bye usually comes first (the page lets it
    // go before leaving), but once the host has heard peer-left it closes the connection,
    // and a bye still in flight is dropped: the host is told either way.
    let why = guest::host_event(&mut host, wait, |e| match e {
        CallEvent::PeerHungUp(w) => Some(Some(w)),
        CallEvent::Signaling(SignalEvent::PeerLeft { .. }) => Some(None),
        _ => None,
    })
    .await;
    if why.is_some() {
        guest::host_event(&mut host, wait, |e| {
            matches!(e, CallEvent::Signaling(SignalEvent::PeerLeft { .. })).then_some(())
        })
        .await;
    }
    assert!(why.as_deref().is_none_or(|w| w == "hung up"), "{why:?}");
    let reason = page
        .eval("document.getElementById('ended-reason').textContent")
        .await
        .expect("reason");
    assert_eq!(reason, "You left the call.");
    guest::shoot(&page, "4-ended").await;

    // And rejoins the same call (new certificates, so a new code), media both ways again.
    join_again_and_be_let_in(&page, &mut host).await;
    guest::watch_marks(&page).await;
    let (frames, stats) = guest::host_receives(&mut host, Duration::from_secs(2)).await;
    eprintln!("host after rejoining: {stats:?}");
    assert!(
        frames.len() >= 20,
        "{} browser frames at the host after rejoining",
        frames.len()
    );
    assert!(
        guest::marks(&page).await.len() >= 20,
        "native frames on the page after rejoining"
    );
    host.hang_up();
    drop(page);
    handle.shutdown().await;
}
