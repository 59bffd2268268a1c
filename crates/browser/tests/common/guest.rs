//! The browser guest page under test: a native Confer host (confer-call, the test pattern
//! with frame marks and tone bursts) and a headless browser (Chromium over DevTools, or
//! Firefox ESR over WebDriver BiDi) on the guest page served by a real
//! confer-signal on loopback, driven the way a person would use it (fields, buttons) over the
//! DevTools protocol. `window.confer.state` is the page's own state, read to check what it
//! shows; Confer's mark reader is injected to read the native peer's frame ids from the
//! page's remote `<video>`.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

pub use confer_browser::Browser;
use confer_browser::{Chromium, Firefox, MARKS_JS};
use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_media::VideoCodec;
use confer_protocol::Role;
use confer_signal::{Claims, Config, ServerHandle};
use serde_json::Value;

#[path = "../../../call/tests/common/mod.rs"]
pub mod call_common;
pub use call_common::wait_connected;

/// The server, the native host and the browser guest of one call.
pub struct Scene {
    pub handle: ServerHandle,
    pub host: CallHandle,
    pub page: Page,
    pub room: String,
    _server: tokio::task::JoinHandle<()>,
}

/// A guest token for `room` (with the room's consent line, if any).
pub fn guest_token(handle: &ServerHandle, room: &str, consent: Option<&str>) -> String {
    handle.tokens().issue(&Claims {
        room: room.into(),
        role: Role::Guest,
        exp: confer_signal::unix_now() + 600,
        name: None,
        jti: format!("{room}-browser"),
        auto_admit: false,
        consent: consent.map(str::to_owned),
    })
}

/// The invite link a host would send: the page on this server, the token in the fragment.
pub fn invite_url(handle: &ServerHandle, room: &str, token: &str) -> String {
    let http = handle.ws_url().replace("ws://", "http://");
    let base = http.trim_end_matches(confer_protocol::WS_PATH);
    format!("{base}/join/{room}#{token}")
}

/// The native host's configuration: the marked test pattern at 640x360, tone bursts,
/// admitting whoever knocks unless `auto_admit` is off.
pub fn host_config(handle: &ServerHandle, room: &str, codec: VideoCodec) -> CallConfig {
    CallConfig {
        video_codec: codec,
        ..call_common::call_config(handle, room, Role::Host)
    }
}

/// The scenarios of a file, one at a time: each is a browser and a native peer on the
/// machine's two cores, and the test harness would run a file's tests side by side.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Which browser a scenario runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Chromium,
    Firefox,
}

/// The browser on the guest page.
pub enum Page {
    Chromium(Chromium),
    Firefox(Firefox),
}

impl Browser for Page {
    async fn eval(&self, expression: &str) -> confer_browser::Result<Value> {
        match self {
            Page::Chromium(c) => c.eval(expression).await,
            Page::Firefox(f) => f.eval(expression).await,
        }
    }
}

impl Page {
    async fn launch(which: Which, url: &str) -> Self {
        match which {
            Which::Chromium => {
                assert!(
                    confer_browser::available(),
                    "Chromium is missing: scripts/setup installs Debian's chromium"
                );
                Page::Chromium(Chromium::launch(url, &[]).await.expect("chromium"))
            }
            Which::Firefox => {
                assert!(
                    confer_browser::firefox_binary::available(),
                    "Firefox is missing: scripts/setup installs Debian's firefox-esr"
                );
                Page::Firefox(Firefox::launch(url).await.expect("firefox"))
            }
        }
    }

    /// Chromium, for what only it does here (screenshots, viewport).
    pub fn chromium(&self) -> Option<&Chromium> {
        match self {
            Page::Chromium(c) => Some(c),
            Page::Firefox(_) => None,
        }
    }
}

/// Starts the server and opens the invite link of `room` in `which` (the device check);
/// `query` is added to the page's address (`codec=H264`).
pub async fn open(
    which: Which,
    room: &str,
    consent: Option<&str>,
    query: &str,
) -> (ServerHandle, tokio::task::JoinHandle<()>, Page) {
    let (handle, server) = call_common::start(Config::loopback()).await;
    let url = invite_url(&handle, room, &guest_token(&handle, room, consent));
    let url = if query.is_empty() {
        url
    } else {
        url.replacen('#', &format!("?{query}#"), 1)
    };
    let page = Page::launch(which, &url).await;
    page.eval(MARKS_JS).await.expect("mark reader");
    page.wait_until(confer_browser::GUEST_READY_JS, Duration::from_secs(10))
        .await
        .expect("the device check opened the camera and microphone");
    (handle, server, page)
}

/// Types `name` and presses Join (ticking the consent box when there is one).
pub async fn join(page: &impl Browser, name: &str) {
    page.eval(&format!(
        "(() => {{ const c = document.getElementById('consent'); \
         if (!document.getElementById('consent-row').hidden) c.checked = true; \
         document.getElementById('name').value = {name:?}; \
         document.getElementById('join').click(); return true; }})()"
    ))
    .await
    .expect("join");
}

/// A connected call: the native host (preferring `codec`) and the page's guest, with both
/// verification codes.
pub async fn connected(which: Which, room: &str, codec: VideoCodec) -> (Scene, String, String) {
    // The browser joins last, so it makes the offer: its first codec is the call's.
    let query = match codec {
        VideoCodec::H264 => "codec=H264",
        VideoCodec::Vp8 => "",
    };
    let (handle, server, page) = open(which, room, None, query).await;
    let mut host = CallHandle::join(host_config(&handle, room, codec))
        .await
        .expect("host joins");
    join(&page, "Pat Guest").await;
    let host_code = wait_connected(&mut host).await;
    page.wait_until("confer.state.sas", Duration::from_secs(15))
        .await
        .expect("the page connected");
    let page_code = page.eval("confer.state.sas").await.expect("code");
    let scene = Scene {
        handle,
        host,
        page,
        room: room.to_owned(),
        _server: server,
    };
    (
        scene,
        host_code,
        page_code.as_str().unwrap_or_default().to_owned(),
    )
}

/// Reads the native peer's frame marks from the page's remote video from now on.
pub async fn watch_marks(page: &impl Browser) {
    page.eval("conferMarks.log = []; conferMarks.unmarked = 0; conferMarks.watch(document.getElementById('remote')); true")
        .await
        .expect("watch marks");
}

/// The marks read so far: (frame id, age ms, width).
pub async fn marks(page: &impl Browser) -> Vec<(u64, f64, u64)> {
    let log = page.eval("conferMarks.log").await.expect("marks");
    log.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    Some((
                        m["frameId"].as_u64()?,
                        m["ageMs"].as_f64()?,
                        m["width"].as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The page's last one-second stats (its getStats reading).
pub async fn page_stats(page: &impl Browser) -> Value {
    page.eval("confer.state.lastStats ?? null")
        .await
        .expect("stats")
}

/// What the native host received for `window`: remote frames (width, height) and the last stats.
pub async fn host_receives(
    host: &mut CallHandle,
    window: Duration,
) -> (Vec<(u32, u32)>, Option<confer_call::call::CallStats>) {
    let deadline = tokio::time::Instant::now() + window;
    let mut frames = Vec::new();
    let mut stats = None;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, host.next_event()).await {
        match event {
            CallEvent::RemoteVideo(f) => frames.push((f.width, f.height)),
            CallEvent::Stats(s) => stats = Some(*s),
            CallEvent::Ended(why) => panic!("the host's call ended: {why}"),
            _ => {}
        }
    }
    (frames, stats)
}

/// Waits for a host event `pick` accepts, for at most `limit`.
pub async fn host_event<T>(
    host: &mut CallHandle,
    limit: Duration,
    mut pick: impl FnMut(CallEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, host.next_event())
            .await
            .expect("the host's event in time")
            .expect("the host's call is running");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

/// Saves what the page shows as `target/e2e-screens/guest-<name>.png` (to look at).
pub async fn shoot(page: &Page, name: &str) {
    let Some(page) = page.chromium() else { return };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/e2e-screens")
        .join(format!("guest-{name}.png"));
    page.screenshot(&path).await.expect("screenshot");
}

impl Scene {
    /// Hangs up both and stops the server.
    pub async fn end(self) {
        self.host.hang_up();
        drop(self.page);
        self.handle.shutdown().await;
    }
}
