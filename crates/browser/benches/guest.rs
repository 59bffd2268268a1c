//! The browser guest page with a native Confer host, next to a call between two browsers, in
//! one run (docs/BENCHMARKS.md, issue 6).
//!
//! `cargo bench -p confer-browser --bench guest [-- --calls 10 --seconds 10]`
//!
//! Everything goes through one confer-signal on loopback, VP8 at 640x360, 30 fps:
//! - **set-up**, over `--calls` calls each:
//!   - native ↔ browser: the host (`CallHandle`, joined and waiting, admitting whoever
//!     knocks) and Chromium on the guest page after its device check. From the press of Join
//!     until both sides have a first remote frame (the page's `requestVideoFrameCallback`,
//!     the host's first decoded frame), on the machine's wall clock. A new page load (a new
//!     invite link) per call.
//!   - browser ↔ browser: two Chromium instances on the peer page (crates/browser/page), from
//!     `peer.join` (which also opens the fake devices) until both have presented a remote
//!     frame; the page reloaded for every call.
//! - **glass-to-glass** over `--seconds`, from the wall-clock capture time in the frame mark:
//!   - native → browser: the host's test pattern, read where the page presents it;
//!   - browser → native: a marked canvas sent by the guest page in place of its camera, read
//!     off the host's decoded frames (before display: the host is headless);
//!   - browser → browser: the peer pages' marked canvases, read where they are presented.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use confer_browser::{Browser, Chromium, MARKS_JS, PeerPage};
use confer_call::call::{CallEvent, CallHandle};
use confer_media::{VideoCodec, mark};
use confer_protocol::Role;
use confer_signal::{Config, ServerHandle};

#[path = "../tests/common/guest.rs"]
mod guest;
#[path = "../../media/benches/stats.rs"]
mod stats;
use stats::{arg, median, p95};

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Opens the invite link of `room` in `page` (a new page load) and waits for its devices.
async fn open_invite(page: &Chromium, handle: &ServerHandle, room: &str) {
    let url = guest::invite_url(handle, room, &guest::guest_token(handle, room, None));
    page.eval(&format!(
        "setTimeout(() => {{ location.href = {url:?}; }}, 0); true"
    ))
    .await
    .expect("navigate");
    page.wait_until(
        &format!(
            "location.pathname.endsWith({:?}) && document.readyState === 'complete' && {}",
            format!("/{room}"),
            confer_browser::GUEST_READY_JS
        ),
        Duration::from_secs(20),
    )
    .await
    .expect("the device check");
    page.eval(MARKS_JS).await.expect("mark reader");
}

/// The host's first decoded frame, wall-clock ms.
async fn host_first_frame(host: &mut CallHandle) -> f64 {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), host.next_event()).await {
            Ok(Some(CallEvent::RemoteVideo(_))) => return wall_ms(),
            Ok(Some(CallEvent::Ended(why))) => panic!("host ended: {why}"),
            Ok(Some(_)) => {}
            _ => panic!("no frame at the host within 20 s"),
        }
    }
}

/// One native ↔ browser call up to both first frames; returns it (for a longer look) and the
/// set-up time, ms.
async fn native_call(page: &Chromium, handle: &ServerHandle, room: &str) -> (CallHandle, f64) {
    open_invite(page, handle, room).await;
    let mut host = CallHandle::join(guest::host_config(handle, room, VideoCodec::Vp8))
        .await
        .expect("host joins");
    let pressed = page
        .eval(
            "window.firstFrameAt = null; \
             document.getElementById('remote').requestVideoFrameCallback(() => { \
               window.firstFrameAt = performance.timeOrigin + performance.now(); }); \
             document.getElementById('name').value = 'Bench'; \
             const at = performance.timeOrigin + performance.now(); \
             document.getElementById('join').click(); at",
        )
        .await
        .expect("join")
        .as_f64()
        .expect("a time");
    let host_first = host_first_frame(&mut host).await;
    page.wait_until("window.firstFrameAt", Duration::from_secs(20))
        .await
        .expect("a frame on the page");
    let page_first = page.eval("window.firstFrameAt").await.expect("time");
    let page_first = page_first.as_f64().expect("a time");
    (host, host_first.max(page_first) - pressed)
}

async fn leave(page: &Chromium, host: CallHandle) {
    let _ = page
        .eval("document.getElementById('hang-up').click(); true")
        .await;
    guest::call_common::end(host).await;
}

/// Two browsers on the peer page, each call a reload; join → both first frames, ms.
async fn browser_call(
    a: &Chromium,
    b: &Chromium,
    handle: &ServerHandle,
    room: &str,
    options: &str,
) -> f64 {
    for page in [a, b] {
        page.eval("setTimeout(() => location.reload(), 0); true")
            .await
            .expect("reload");
    }
    for page in [a, b] {
        page.wait_until(
            "document.readyState === 'complete' && window.peer && !peer.state.pc",
            Duration::from_secs(20),
        )
        .await
        .expect("reloaded");
    }
    let join = |role| {
        format!(
            "peer.join({{url: {:?}, token: {:?}, {options}}})",
            handle.ws_url(),
            guest::call_common::token(handle, room, role)
        )
    };
    let (ja, jb) = (join(Role::Host), join(Role::Guest));
    let joined = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(a.eval(&ja), b.eval(&jb))
    })
    .await;
    let Ok((fa, fb)) = joined else {
        for p in [a, b] {
            eprintln!(
                "{}",
                p.eval("peer.state.log.join('\\n')")
                    .await
                    .unwrap_or_default()
            );
        }
        panic!("the browsers did not connect within 30 s");
    };
    let (fa, fb) = (fa.expect("a joins"), fb.expect("b joins"));
    fa.as_f64()
        .unwrap_or(f64::NAN)
        .max(fb.as_f64().unwrap_or(f64::NAN))
}

fn line(what: &str, v: &mut [f64]) -> String {
    if v.is_empty() {
        return format!("| {what} | no samples | |");
    }
    format!(
        "| {what} | {:.1} | {:.1} | {} |",
        median(v),
        p95(v),
        v.len()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = arg("--calls", 10);
    let seconds = arg("--seconds", 10) as u64;
    assert!(
        confer_browser::available(),
        "Chromium is missing: scripts/setup installs it"
    );
    // Both pages' origins (the guest page's is the server's own, the peer page's another
    // loopback port) may open the socket.
    let (handle, _server) = guest::call_common::start(Config {
        allowed_origins: vec!["*".into()],
        ..Config::loopback()
    })
    .await;
    let peer_page = PeerPage::serve().await.expect("peer page");
    let options = "width: 640, height: 360, fps: 30, kbps: 600";

    // Set-up, alternating the two kinds of call so that both see the same machine.
    let url = peer_page.url();
    let page = Chromium::launch(&url, &[]).await.expect("chromium");
    let (a, b) = tokio::join!(Chromium::launch(&url, &[]), Chromium::launch(&url, &[]));
    let (a, b) = (a.expect("chromium a"), b.expect("chromium b"));
    let (mut native_setup, mut browser_setup) = (Vec::new(), Vec::new());
    for n in 0..calls {
        let (host, ms) = native_call(&page, &handle, &format!("bench-guest-{n}")).await;
        native_setup.push(ms);
        leave(&page, host).await;
        let ms = browser_call(
            &a,
            &b,
            &handle,
            &format!("bench-browsers-{n}"),
            &format!("{options}, source: 'camera'"),
        )
        .await;
        browser_setup.push(ms);
        for p in [&a, &b] {
            let _ = p.eval("peer.hangUp()").await;
        }
        eprintln!(
            "call {n}: native ↔ browser {:.0} ms, browser ↔ browser {ms:.0} ms",
            native_setup[n]
        );
    }

    // Glass-to-glass, native ↔ browser: the host's marks on the page, the page's marked
    // canvas at the host.
    let (mut host, _) = native_call(&page, &handle, "bench-guest-g2g").await;
    page.eval(
        "(async () => { const track = markedSource(640, 360, 30); \
         const sender = confer.state.call.pc.getSenders().find((s) => s.track && s.track.kind === 'video'); \
         await sender.replaceTrack(track); conferMarks.watch(document.getElementById('remote')); return true; })()",
    )
    .await
    .expect("marked canvas and mark reader");
    tokio::time::sleep(Duration::from_secs(2)).await; // settle
    page.eval("conferMarks.log = []; true")
        .await
        .expect("reset");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut to_native = Vec::new();
    while Instant::now() < deadline {
        if let Ok(Some(CallEvent::RemoteVideo(frame))) =
            tokio::time::timeout(Duration::from_millis(200), host.next_event()).await
            && let Some(m) = mark::read(&frame)
        {
            to_native.push(mark::age_us(m.capture_us, mark::wall_clock_us()) as f64 / 1000.0);
        }
    }
    let mut to_browser: Vec<f64> = guest::marks(&page).await.iter().map(|m| m.1).collect();
    leave(&page, host).await;

    // Glass-to-glass, browser ↔ browser: both pages send their marked canvas and read the other's.
    browser_call(
        &a,
        &b,
        &handle,
        "bench-browsers-g2g",
        &format!("{options}, source: 'mark', readMarks: true"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for p in [&a, &b] {
        p.eval("peer.takeMarks(); true").await.expect("reset");
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut browser_to_browser = Vec::new();
    for p in [&a, &b] {
        let marks = p.eval("peer.takeMarks()").await.expect("marks");
        browser_to_browser.extend(
            marks["marks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["ageMs"].as_f64()),
        );
        let _ = p.eval("peer.hangUp()").await;
    }

    println!("| | p50 ms | p95 ms | samples |");
    println!("|---|---|---|---|");
    println!(
        "{}",
        line(
            "set-up, native host ↔ browser guest (Join → both first frames)",
            &mut native_setup
        )
    );
    println!(
        "{}",
        line(
            "set-up, browser ↔ browser (join → both first frames)",
            &mut browser_setup
        )
    );
    println!(
        "{}",
        line(
            "glass-to-glass native → browser (capture → presented)",
            &mut to_browser
        )
    );
    println!(
        "{}",
        line(
            "glass-to-glass browser → native (capture → decoded)",
            &mut to_native
        )
    );
    println!(
        "{}",
        line(
            "glass-to-glass browser → browser (capture → presented)",
            &mut browser_to_browser
        )
    );
    drop((page, a, b));
    handle.shutdown().await;
}
