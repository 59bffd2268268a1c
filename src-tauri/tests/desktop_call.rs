//! End to end: two instances of the real app (separate config and home directories) under
//! Xvfb, driven through WebDriver (WebKitWebDriver), call each other through
//! the host's embedded signaling server. Nothing is mocked: real windows, real WebRTC on
//! loopback, the synthetic camera (this machine has none) and a test tone (no microphone).
//!
//! The pre-call check shows the camera preview and the microphone meter moving. The host
//! starts a call and the guest joins from the invite link; the guest waits until the
//! host admits it from the knock; the remote video canvas changes from frame to frame (pixels
//! read back); chat arrives both ways with a receipt; a file arrives and is saved; mute shows
//! on the far side; the verification codes match; hang-up ends both; the host's window,
//! moved and resized, comes back there at its next launch. Screenshots of each screen go to
//! target/e2e-screens/.

mod common;

use std::path::{Path, PathBuf};

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::notifications::Notifications;
use common::process::{Started, free_port, start_xvfb, wait_listening};
use common::webdriver::Session;
use serde_json::{Value, json};

/// One app instance: its own WebKitWebDriver (so its own environment), config and home.
struct Instance {
    _driver: Started,
    session: Option<Session>,
    home: PathBuf,
}

impl Instance {
    fn start(display: &str, dir: &Path, name: &str) -> Self {
        Self::start_with(display, dir, name, &[])
    }

    /// With more environment for the app.
    fn start_with(display: &str, dir: &Path, name: &str, env: &[(&str, &str)]) -> Self {
        let home = dir.join(name);
        let config = home.join(".config");
        // Sources this machine has: the synthetic camera, a test tone, no speaker.
        let settings_dir = config.join("org.confer.desktop");
        std::fs::create_dir_all(&settings_dir).unwrap();
        std::fs::write(
            settings_dir.join("settings.json"),
            json!({"video": "pattern:640x360", "audio": "tone", "speaker": "none"}).to_string(),
        )
        .unwrap();
        let port = free_port();
        let mut command = Command::new("WebKitWebDriver");
        command
            .arg(format!("--port={port}"))
            .arg("--host=127.0.0.1")
            // Tauri lets WebKit's automation in only when asked (what tauri-driver sets).
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            // Compositing stays on under test, although the app turns it off on machines
            // without a GPU (such as this one): WebKitWebDriver's screenshots hang without it.
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "0")
            .env("DISPLAY", display)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_DOWNLOAD_DIR", home.join("Downloads"))
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(dir.join(format!("{name}-driver.log"))).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{name}-driver.err"))).unwrap());
        let driver = Started::spawn(&mut command, "WebKitWebDriver (webkit2gtk-driver)");
        assert!(
            wait_listening(port),
            "{name}: WebKitWebDriver did not listen within 10 s"
        );
        let app = env!("CARGO_BIN_EXE_confer-desktop");
        let session = Session::start(port, app)
            .unwrap_or_else(|e| panic!("{name}: no WebDriver session: {e}"));
        session
            .wait_for(
                "the page is ready",
                "return document.body.dataset.ready === 'true'",
                Duration::from_secs(30),
            )
            .unwrap();
        Self {
            _driver: driver,
            session: Some(session),
            home,
        }
    }

    fn s(&self) -> &Session {
        self.session.as_ref().expect("session open")
    }

    fn shot(&self, name: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-screens");
        std::fs::create_dir_all(&dir).unwrap();
        // WebKit takes the picture at the next repaint, which a still page may never have:
        // change one pixel's worth of page first.
        self.s()
            .script(
                "let d = document.getElementById('e2e-repaint');
                 if (!d) { d = document.createElement('div'); d.id = 'e2e-repaint';
                   d.style.position = 'fixed'; d.style.right = '0'; d.style.bottom = '0';
                   d.style.width = '1px'; d.style.height = '1px'; document.body.append(d); }
                 d.style.background = d.style.background === 'black' ? 'white' : 'black';",
                vec![],
            )
            .unwrap();
        let png = self.s().screenshot().expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    fn text(&self, css: &str) -> String {
        self.s()
            .script(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                vec![json!(css)],
            )
            .unwrap()
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn visible(&self, what: &str, css: &str) {
        self.s()
            .wait_for(
                what,
                &format!("const e = document.querySelector({css:?}); return !!e && !e.hidden"),
                Duration::from_secs(30),
            )
            .unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.end();
        }
    }
}

/// A fingerprint of what the remote canvas shows now (its pixels, read back through a 2D
/// canvas), and how many frames it has drawn.
const REMOTE_PIXELS: &str = r#"
const src = document.getElementById('remote-video');
if (!src.width || !src.dataset.drawn) return null;
const c = document.createElement('canvas');
c.width = 160; c.height = 90;
const g = c.getContext('2d');
g.drawImage(src, 0, 0, 160, 90);
const d = g.getImageData(0, 0, 160, 90).data;
let hash = 0, sum = 0;
for (let i = 0; i < d.length; i += 4) { hash = (hash * 31 + d[i] + d[i+1] * 7 + d[i+2] * 13) | 0; sum += d[i]; }
return {hash, mean: sum / (d.length / 4), drawn: Number(src.dataset.drawn), w: src.width, h: src.height};
"#;

#[test]
fn two_apps_call_each_other_through_the_embedded_server() {
    let dir = std::env::temp_dir().join(format!("confer-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_xvfb, display) = match std::env::var("CONFER_E2E_DISPLAY") {
        Ok(display) => (None, display),
        Err(_) => {
            let (xvfb, display) = start_xvfb();
            (Some(xvfb), display)
        }
    };
    let notifications = Notifications::start();
    let host = Instance::start_with(
        &display,
        &dir,
        "host",
        &[("DBUS_SESSION_BUS_ADDRESS", &notifications.address)],
    );
    let guest = Instance::start(&display, &dir, "guest");

    // Home: the camera preview is drawn.
    host.s()
        .wait_for(
            "the preview draws",
            "return Number(document.getElementById('preview').dataset.drawn || 0) > 3",
            Duration::from_secs(20),
        )
        .unwrap();
    // The microphone meter moves with the test tone's bursts (−12 dBFS peaks).
    host.s()
        .wait_for(
            "the meter shows the tone",
            "return document.getElementById('mic-level').value > -30",
            Duration::from_secs(10),
        )
        .unwrap();
    // The pre-call check reached the built-in server.
    host.s()
        .wait_for(
            "the server check answers",
            "return document.getElementById('server-check').textContent.startsWith('The server answered in ')",
            Duration::from_secs(10),
        )
        .unwrap();
    host.shot("1-home");

    // Settings open over the home screen, and Cancel leaves them as they were.
    host.s().click("#open-settings").unwrap();
    host.s()
        .wait_for(
            "the settings dialog",
            "return document.getElementById('settings').open",
            Duration::from_secs(10),
        )
        .unwrap();
    host.shot("1b-settings");
    host.s()
        .click("#settings-form button[value=cancel]")
        .unwrap();
    host.s()
        .wait_for(
            "the settings dialog closes",
            "return !document.getElementById('settings').open",
            Duration::from_secs(10),
        )
        .unwrap();

    // The host starts a call and gets a link.
    host.s().fill("#display-name", "Dr. Ada").unwrap();
    host.s().click("#start-call").unwrap();
    let link = host
        .s()
        .wait_for(
            "the invite link",
            "return document.getElementById('invite-link').value",
            Duration::from_secs(20),
        )
        .unwrap();
    let link = link.as_str().unwrap().to_owned();
    assert!(link.contains("/join/") && link.contains('#'), "{link}");
    host.visible("the lobby", "#screen-lobby");

    // The guest joins and waits; the host sees the knock with the guest's name.
    guest.s().fill("#display-name", "Pat Guest").unwrap();
    guest.s().fill("#join-link", &link).unwrap();
    guest.s().click("#join-call").unwrap();
    guest
        .s()
        .wait_for(
            "the guest waits",
            "return document.getElementById('waiting-text').textContent.includes('waiting room')",
            Duration::from_secs(20),
        )
        .unwrap();
    guest.shot("2-guest-waiting");
    host.visible("the knock", "#knocks li");
    assert!(
        host.text("#knocks li").contains("Pat Guest"),
        "{}",
        host.text("#knocks li")
    );
    // Not in front (the guest's window, opened later over it, has the focus), the host's app
    // also shows a desktop notification naming who knocks.
    assert_eq!(
        host.s().script("return document.hasFocus()", vec![]),
        Ok(json!(false)),
        "Xvfb has no window manager: the window opened last, over the host's, has the focus"
    );
    let (_, body) = notifications
        .wait_for(
            |(summary, _)| summary == "Pat Guest is waiting to join",
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(body.contains("let them in"), "{body}");
    assert_eq!(
        notifications.shown().len(),
        1,
        "one knock, one notification"
    );
    host.shot("3-host-knock");
    host.s().click("#knocks li button.primary").unwrap();

    // Both in the call: the remote canvas draws frames that change.
    for side in [&host, &guest] {
        side.visible("the call screen", "#screen-call");
        side.visible("the verification code", "#sas");
    }
    let first = guest
        .s()
        .wait_for("remote video", REMOTE_PIXELS, Duration::from_secs(30))
        .unwrap();
    guest
        .s()
        .wait_for(
            "ten more frames",
            &format!(
                "return Number(document.getElementById('remote-video').dataset.drawn) > {}",
                first["drawn"].as_u64().unwrap() + 10
            ),
            Duration::from_secs(20),
        )
        .unwrap();
    let later = guest.s().script(REMOTE_PIXELS, vec![]).unwrap();
    assert_eq!(
        (later["w"].as_u64(), later["h"].as_u64()),
        (Some(640), Some(360))
    );
    assert_ne!(first["hash"], later["hash"], "the picture moves");
    let mean = later["mean"].as_f64().unwrap();
    assert!(mean > 20.0, "the picture is not black (mean red {mean})");
    host.s()
        .wait_for(
            "the host sees video",
            REMOTE_PIXELS,
            Duration::from_secs(30),
        )
        .unwrap();
    let (code_host, code_guest) = (host.text("#sas"), guest.text("#sas"));
    assert!(
        code_host.starts_with("Code: ") && code_host.len() > 10,
        "{code_host}"
    );
    assert_eq!(code_host, code_guest, "the verification codes match");

    // Chat both ways, with a receipt.
    host.s().click("#btn-chat").unwrap();
    guest.s().click("#btn-chat").unwrap();
    for side in [&host, &guest] {
        side.visible("the chat panel", "#chat-panel");
    }
    guest.s().fill("#chat-input", "Hello, doctor").unwrap();
    guest.s().click("#chat-form button").unwrap();
    host.s()
        .wait_for(
            "the host reads the guest's message",
            "return document.getElementById('chat-log').textContent.includes('Hello, doctor')",
            Duration::from_secs(20),
        )
        .unwrap();
    guest
        .s()
        .wait_for(
            "the receipt",
            "return document.querySelector('#chat-log li.mine small').textContent === 'delivered'",
            Duration::from_secs(20),
        )
        .unwrap();
    host.s().fill("#chat-input", "Hello, Pat").unwrap();
    host.s().click("#chat-form button").unwrap();
    guest
        .s()
        .wait_for(
            "the guest reads the reply",
            "return document.getElementById('chat-log').textContent.includes('Hello, Pat')",
            Duration::from_secs(20),
        )
        .unwrap();

    // A file from the host's file picker to the guest, saved there into Downloads.
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // The file goes in through the picker's <input> and its change handler, as a user's
    // choice would (a page cannot be handed a path; WebDriver's way in types keys, see fill).
    let picked = host
        .s()
        .script(
            "const bytes = Uint8Array.from(atob(arguments[1]), c => c.charCodeAt(0));
             const transfer = new DataTransfer();
             transfer.items.add(new File([bytes], arguments[0]));
             const input = document.getElementById('file-input');
             input.files = transfer.files;
             const picked = input.files.length;
             input.dispatchEvent(new Event('change', {bubbles: true}));
             return picked",
            vec![
                json!("scan-results.txt"),
                json!(base64::engine::general_purpose::STANDARD.encode(&content)),
            ],
        )
        .unwrap();
    assert_eq!(picked, json!(1));
    guest
        .s()
        .wait_for(
            "the file arrives verified",
            "return document.getElementById('transfers').textContent.includes('complete, verified')",
            Duration::from_secs(30),
        )
        .unwrap();
    guest.s().click("#transfers button").unwrap();
    let saved = guest.home.join("Downloads/scan-results.txt");
    guest
        .s()
        .wait_for(
            "saved",
            "return document.querySelector('#transfers button').textContent === 'Saved'",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(std::fs::read(&saved).expect("saved in Downloads"), content);
    guest.shot("4-guest-in-call-chat");

    // Mute shows on the far side.
    host.s().click("#btn-mute").unwrap();
    guest
        .s()
        .wait_for(
            "the guest sees the host muted",
            "return document.getElementById('remote-note').textContent.includes('muted')",
            Duration::from_secs(10),
        )
        .unwrap();
    host.s().click("#btn-stats").unwrap();
    host.s()
        .wait_for(
            "stats",
            "return document.getElementById('stats-list').textContent.includes('Round trip')",
            Duration::from_secs(10),
        )
        .unwrap();
    host.shot("5-host-in-call-stats");

    // Hang up: both see the end.
    host.s().click("#btn-hangup").unwrap();
    for side in [&host, &guest] {
        side.visible("the end screen", "#screen-ended");
    }
    let ended: Value = guest
        .s()
        .script(
            "return document.getElementById('ended-reason').textContent",
            vec![],
        )
        .unwrap();
    assert!(!ended.as_str().unwrap_or_default().is_empty());
    guest.shot("6-guest-ended");
    drop(guest);

    // Moved and resized, the window comes back there at the next launch, even though this
    // launch does not exit cleanly (ending the WebDriver session kills the app).
    let placed = [100, 50, 1000, 700];
    assert_eq!(
        host.s().set_window_rect(placed).unwrap(),
        placed,
        "Xvfb has no window manager to refuse a place"
    );
    let state = host
        .home
        .join(".config/org.confer.desktop/.window-state.json");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let saved = loop {
        let main = std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(|v| v["main"].clone());
        if let Some(main) = main.filter(|m| m["width"] == json!(1000) && m["x"] == json!(100)) {
            break main;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the window's new place was not saved within 10 s: {:?}",
            std::fs::read_to_string(&state)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((&saved["y"], &saved["height"]), (&json!(50), &json!(700)));
    drop(host);
    let host = Instance::start(&display, &dir, "host");
    assert_eq!(host.s().window_rect().unwrap(), placed, "restored");
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}
