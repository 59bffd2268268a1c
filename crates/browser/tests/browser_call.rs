//! The harness itself: two headless Chromium instances, each on the peer page with its fake
//! camera and microphone, call each other through a real confer-signal on loopback. This is
//! the reference the native peer is compared with, so it has to be a real call: video decoded
//! at the requested size both ways, audio packets arriving, and Chromium's processes measured
//! and stopped by their process group.

use std::time::Duration;

use confer_browser::{Chromium, PeerPage};
use confer_protocol::Role;
use confer_signal::Config;

#[path = "../../call/tests/common/mod.rs"]
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chromium_peers_call_through_confer_signal() {
    assert!(
        confer_browser::available(),
        "Chromium is missing: scripts/setup installs Debian's chromium"
    );
    let page = PeerPage::serve().await.expect("page server");
    let (handle, _server) = common::start(Config {
        allowed_origins: vec![page.origin()],
        ..Config::loopback()
    })
    .await;
    let token = |role| common::token(&handle, "browsers", role);
    let url = page.url();
    let (a, b) = tokio::join!(Chromium::launch(&url, &[]), Chromium::launch(&url, &[]));
    let (a, b) = (a.expect("chromium a"), b.expect("chromium b"));
    assert!(a.processes() > 1, "Chromium runs helpers in its group");
    let join = |role| {
        format!(
            "peer.join({{url: {:?}, token: {:?}, width: 640, height: 360, fps: 30, kbps: 600, \
             source: 'mark', readMarks: true}})",
            handle.ws_url(),
            token(role)
        )
    };
    let (join_a, join_b) = (join(Role::Host), join(Role::Guest));
    let joined = tokio::time::timeout(
        Duration::from_secs(20),
        futures_join(a.eval(&join_a), b.eval(&join_b)),
    )
    .await;
    let Ok((first_a, first_b)) = joined else {
        for browser in [&a, &b] {
            eprintln!(
                "{}",
                browser
                    .eval("peer.state.log.join('\\n')")
                    .await
                    .unwrap_or_default()
            );
        }
        panic!("no remote frame within 20 s");
    };
    let (first_a, first_b) = (first_a.expect("a joins"), first_b.expect("b joins"));
    eprintln!("first remote frame after {first_a} ms / {first_b} ms");

    // Two seconds of call, then both sides' view of it.
    let cpu = a.cpu_seconds();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.cpu_seconds() > cpu, "the browser's CPU time is counted");
    for (side, browser) in [("a", &a), ("b", &b)] {
        let stats = browser.eval("peer.stats()").await.expect("stats");
        eprintln!("{side}: {stats}");
        assert_eq!(stats["error"], serde_json::Value::Null, "{side}");
        assert_eq!(
            (stats["width"].as_u64(), stats["height"].as_u64()),
            (Some(640), Some(360)),
            "{side}"
        );
        assert!(
            stats["framesDecoded"].as_u64().unwrap_or(0) >= 30,
            "{side}: {stats}"
        );
        assert!(
            stats["audioPacketsReceived"].as_u64().unwrap_or(0) >= 50,
            "{side}: {stats}"
        );
        // The marks drawn by the other page's canvas come back in order, with their age.
        let marks = browser.eval("peer.takeMarks()").await.expect("marks");
        let (ids, ages): (Vec<u64>, Vec<f64>) = marks["marks"]
            .as_array()
            .expect("marks")
            .iter()
            .filter_map(|m| Some((m["frameId"].as_u64()?, m["ageMs"].as_f64()?)))
            .unzip();
        eprintln!(
            "{side}: {} marked frames, {} unmarked, ages {:?}…",
            ids.len(),
            marks["unmarked"],
            &ages[..ages.len().min(5)]
        );
        assert!(ids.len() >= 30, "{side}: {} marked frames", ids.len());
        // Never backwards. The same id can be read twice: the canvas copy takes the video's
        // current frame, which may already be the next one when the callback runs late.
        assert!(ids.windows(2).all(|w| w[1] >= w[0]), "{side}: in order");
        assert!(
            ages.iter().all(|&a| a > 0.0 && a < 1_000.0),
            "{side}: ages within a second: {ages:?}"
        );
        assert!(browser.pss_mib() > 50.0, "{side}: memory is measured");
    }
    let pid = a.pid();
    drop(a);
    drop(b);
    assert!(
        confer_browser::group_processes(pid).is_empty(),
        "every process of the browser stopped"
    );
    handle.shutdown().await;
}

async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}
