//! ICE restart in the middle of a call, asked for from either side: new ICE credentials on
//! both sides (through signaling), the same call, and video that keeps being decoded (which
//! needs the receiver's keyframe requests to reach the sender's encoder). And the restart a
//! network change makes by itself, with nobody asking.

mod common;

use std::time::{Duration, Instant};

use confer_call::call::{CallEvent, CallHandle};
use confer_signal::Config;

/// For `window`: the ufrag of each restart seen, frames decoded, the longest gap between them.
async fn watch(call: &mut CallHandle, window: Duration) -> (Vec<String>, usize, Duration) {
    let (restarts, frames, gap, _) = watch_network(call, window).await;
    (restarts, frames, gap)
}

/// As [`watch`], with the network changes reported too.
async fn watch_network(
    call: &mut CallHandle,
    window: Duration,
) -> (Vec<String>, usize, Duration, usize) {
    let (mut restarts, mut frames, mut changes) = (Vec::new(), 0, 0);
    let (mut last, mut gap) = (Instant::now(), Duration::ZERO);
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::NetworkChanged => changes += 1,
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
    // Up to the window's end too: no frame at all is one long gap.
    (restarts, frames, gap.max(last.elapsed()), changes)
}

/// [`watch_network`] on both sides at once.
async fn watch_both(
    host: &mut CallHandle,
    guest: &mut CallHandle,
    window: Duration,
) -> (
    (Vec<String>, usize, Duration, usize),
    (Vec<String>, usize, Duration, usize),
) {
    tokio::join!(watch_network(host, window), watch_network(guest, window))
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

/// Set when this test binary runs inside its own network namespace.
const IN_NETNS: &str = "CONFER_TEST_IN_NETNS";

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2) runs");
    assert!(status.success(), "ip {}", args.join(" "));
}

/// Whether this is the run inside a network namespace of its own; if not, runs the test
/// `name` again there (`unshare --net`, which needs root, as CI has) and checks it passed.
fn in_own_netns(name: &str) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        return true;
    }
    let status = std::process::Command::new("unshare")
        .args(["--net", "--"])
        .arg(std::env::current_exe().expect("this test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .status()
        .expect("unshare (util-linux) runs");
    assert!(
        status.success(),
        "the test failed in its network namespace (it needs root to make one)"
    );
    false
}

/// A veth pair `name`0/`name`1, both up, with `addr` on `name`0.
fn veth(name: &str, addr: &str) {
    let (a, b) = (format!("{name}0"), format!("{name}1"));
    ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
    ip(&["addr", "add", addr, "dev", &a]);
    ip(&["link", "set", &a, "up"]);
    ip(&["link", "set", &b, "up"]);
}

/// The namespace's first network (`name`0, 10.100.0.1/24, the default route) and a runtime
/// for the test. (In a namespace with nothing but loopback and no route at all, the call
/// never connected within 15 s; not looked into, since a machine with no network at all is
/// not these tests' subject.)
fn first_network(name: &str) -> tokio::runtime::Runtime {
    ip(&["link", "set", "lo", "up"]);
    veth(name, "10.100.0.1/24");
    ip(&["route", "add", "default", "dev", &format!("{name}0")]);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A handover, as a laptop leaving Wi-Fi for Ethernet: the only address the call's candidates
/// were on goes away and another comes up. Both peers gather on every interface (the
/// wildcard, as the desktop app does for a server elsewhere), so the restart the change makes
/// gathers on the new address, and video comes back in the same call.
#[test]
fn a_handover_to_another_address_keeps_the_call() {
    if !in_own_netns("a_handover_to_another_address_keeps_the_call") {
        return;
    }
    first_network("wifi").block_on(async {
        let (handle, _task) = common::start(Config::loopback()).await;
        let everywhere = |role| {
            let mut config = common::call_config(&handle, "handover", role);
            config.bind_ip = std::net::Ipv4Addr::UNSPECIFIED.into();
            config
        };
        let mut host = CallHandle::join(everywhere(confer_protocol::Role::Host))
            .await
            .expect("host joins");
        let mut guest = CallHandle::join(everywhere(confer_protocol::Role::Guest))
            .await
            .expect("guest joins");
        tokio::join!(
            common::wait_connected(&mut host),
            common::wait_connected(&mut guest)
        );
        let settle = Duration::from_secs(2);
        let ((_, before, ..), _) = watch_both(&mut host, &mut guest, settle).await;
        assert!(
            before >= 45,
            "video before the handover: {before} frames in 2 s"
        );

        // The old network goes, the new one comes.
        let moved = Instant::now();
        ip(&["addr", "del", "10.100.0.1/24", "dev", "wifi0"]);
        veth("wired", "10.200.0.1/24");
        ip(&["route", "add", "default", "dev", "wired0"]);

        let window = Duration::from_secs(8);
        let (
            (host_restarts, host_frames, host_gap, host_changes),
            (guest_restarts, guest_frames, guest_gap, guest_changes),
        ) = watch_both(&mut host, &mut guest, window).await;
        eprintln!(
            "handover: host {host_changes} changes, {} restarts, {host_frames} frames, \
             longest gap {host_gap:?}; guest {guest_changes} changes, {} restarts, \
             {guest_frames} frames, longest gap {guest_gap:?} ({:?} since the move)",
            host_restarts.len(),
            guest_restarts.len(),
            moved.elapsed()
        );
        assert!(host_changes >= 1 && guest_changes >= 1, "both noticed");
        assert!(!host_restarts.is_empty(), "ICE restarted");
        for (side, frames, gap) in [
            ("host", host_frames, host_gap),
            ("guest", guest_frames, guest_gap),
        ] {
            // A quarter of a second to notice (addresses are read four times a second), then
            // the restart.
            // Measured here 0.19-0.36 s; the margin is for a loaded CI machine.
            assert!(
                gap < Duration::from_millis(1500),
                "{side}: video stopped for {gap:?}"
            );
            assert!(frames >= 120, "{side}: {frames} frames in the 8 s after");
        }
        host.hang_up();
        guest.hang_up();
        handle.shutdown().await;
    });
}

/// A new address on a new interface mid-call (what a laptop joining another network sees):
/// both sides notice, ICE restarts once by itself (the offerer's restart; the answerer's own
/// waits and is not needed), and video goes on. The change is real, so the test runs in a
/// network namespace of its own: it re-runs itself under `unshare --net` (root, as in CI) and
/// touches nothing outside it.
#[test]
fn a_network_change_restarts_ice_by_itself() {
    if !in_own_netns("a_network_change_restarts_ice_by_itself") {
        return;
    }
    first_network("first").block_on(async {
        let (handle, _task) = common::start(Config::loopback()).await;
        let (mut host, mut guest) = common::join_pair(&handle, "moving").await;
        tokio::join!(
            common::wait_connected(&mut host),
            common::wait_connected(&mut guest)
        );
        let settle = Duration::from_secs(2);
        let ((quiet_host, ..), (quiet_guest, ..)) = watch_both(&mut host, &mut guest, settle).await;
        assert!(
            quiet_host.is_empty() && quiet_guest.is_empty(),
            "no restart unasked"
        );

        // A new interface with an address, as a Wi-Fi or VPN coming up.
        veth("confer", "10.200.0.1/24");

        let window = Duration::from_secs(5);
        let (
            (host_restarts, host_frames, host_gap, host_changes),
            (guest_restarts, guest_frames, guest_gap, guest_changes),
        ) = watch_both(&mut host, &mut guest, window).await;
        eprintln!(
            "host: {host_changes} changes, restarts {host_restarts:?}, {host_frames} frames, \
             gap {host_gap:?}; guest: {guest_changes} changes, restarts {guest_restarts:?}, \
             {guest_frames} frames, gap {guest_gap:?}"
        );
        assert_eq!((host_changes, guest_changes), (1, 1), "both noticed, once");
        assert_eq!(
            (host_restarts.len(), guest_restarts.len()),
            (1, 1),
            "one restart, no collision"
        );
        for (side, frames, gap) in [
            ("host", host_frames, host_gap),
            ("guest", guest_frames, guest_gap),
        ] {
            assert!(frames >= 120, "{side}: {frames} frames in 5 s");
            assert!(gap < Duration::from_millis(500), "{side}: a {gap:?} gap");
        }
        host.hang_up();
        guest.hang_up();
        handle.shutdown().await;
    });
}
