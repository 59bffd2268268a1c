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

/// The host's app asks before letting anyone in: the guest knocks with its name, waits, and is
/// let in or turned away by the host's choice.
#[tokio::test]
async fn the_host_admits_or_denies_a_knocking_guest() {
    use confer_call::signaling::SignalEvent;
    use confer_protocol::{ParticipantState, Role};

    let (server, _task) = common::start(Default::default()).await;
    for admit in [true, false] {
        let room = if admit { "knock-admit" } else { "knock-deny" };
        let mut host_config = common::call_config(&server, room, Role::Host);
        host_config.auto_admit = false;
        let mut host = CallHandle::join(host_config).await.unwrap();
        let mut guest_config = common::call_config(&server, room, Role::Guest);
        guest_config.name = Some("Pat Guest".into());
        let mut guest = CallHandle::join(guest_config).await.unwrap();

        let knock = loop {
            match tokio::time::timeout(Duration::from_secs(10), host.next_event()).await {
                Ok(Some(CallEvent::Signaling(SignalEvent::Knock { peer, name }))) => {
                    break (peer, name);
                }
                Ok(Some(_)) => {}
                other => panic!("no knock: {other:?}"),
            }
        };
        assert_eq!(knock.1.as_deref(), Some("Pat Guest"));
        // The guest is told it waits.
        let waiting = loop {
            match tokio::time::timeout(Duration::from_secs(10), guest.next_event()).await {
                Ok(Some(CallEvent::Signaling(SignalEvent::Joined { state, .. }))) => break state,
                Ok(Some(_)) => {}
                other => panic!("guest not joined: {other:?}"),
            }
        };
        assert_eq!(waiting, ParticipantState::Waiting);

        if admit {
            host.admit(knock.0.as_ref());
            common::wait_connected(&mut guest).await;
            common::end(guest).await;
        } else {
            host.deny(knock.0.as_ref());
            let ended = loop {
                match tokio::time::timeout(Duration::from_secs(10), guest.next_event()).await {
                    Ok(Some(CallEvent::Ended(why))) => break why,
                    Ok(Some(CallEvent::Connected)) => panic!("a denied guest connected"),
                    Ok(Some(_)) => {}
                    other => panic!("the denied guest's call did not end: {other:?}"),
                }
            };
            assert!(ended.contains("did not let you in"), "{ended}");
        }
        common::end(host).await;
    }
}

/// A microphone that cannot open (missing, busy, refused) does not stop the call: the user is
/// told, silence is sent, and video still flows.
#[tokio::test]
async fn a_microphone_that_cannot_open_leaves_the_call_running_and_says_so() {
    use confer_protocol::Role;

    let (server, _task) = common::start(Default::default()).await;
    let mut host_config = common::call_config(&server, "no-mic", Role::Host);
    host_config.audio = "mic:Confer Test Microphone 9000".into();
    let mut host = CallHandle::join(host_config).await.unwrap();
    let mut guest = CallHandle::join(common::call_config(&server, "no-mic", Role::Guest))
        .await
        .unwrap();
    let mut warned = None;
    let mut connected = false;
    while warned.is_none() || !connected {
        match tokio::time::timeout(Duration::from_secs(15), host.next_event()).await {
            Ok(Some(CallEvent::Warning(w))) if w.starts_with("microphone") => warned = Some(w),
            Ok(Some(CallEvent::Connected)) => connected = true,
            Ok(Some(CallEvent::Ended(why))) => panic!("ended: {why}"),
            Ok(Some(_)) => {}
            other => panic!("no warning and connection (warned {warned:?}): {other:?}"),
        }
    }
    assert!(warned.unwrap().contains("cannot hear you"));
    common::first_frame(&mut guest).await;
    common::end(guest).await;
    common::end(host).await;
}
