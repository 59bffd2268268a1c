//! confer-browser: real browsers for Confer's interop tests and benchmarks.
//!
//! [`Chromium`] starts Debian's headless Chromium in a process group of its own, with fake
//! camera and microphone and a fresh profile, and drives one page over the DevTools protocol
//! (`Runtime.evaluate`, promises awaited). [`PeerPage`] serves `page/peer.html`: a WebRTC
//! participant that speaks Confer's signaling protocol (docs/protocol.md) with the browser's
//! own `RTCPeerConnection`, for browser-to-browser calls measured next to Confer's.
//!
//! Chromium is stopped by killing its process group (only the processes it started), and its
//! CPU time and memory (PSS) are summed over that group, so a browser peer is measured the way
//! a native peer process is.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// What went wrong driving the browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Chromium is not installed, or would not start.
    #[error("starting {binary}: {detail} (install Debian's chromium: scripts/setup does)")]
    Start {
        /// The binary tried.
        binary: String,
        /// Why it failed.
        detail: String,
    },
    /// The DevTools connection failed.
    #[error("DevTools: {0}")]
    DevTools(String),
    /// The page threw.
    #[error("in the page: {0}")]
    Page(String),
}

/// What a browser operation gives.
pub type Result<T> = std::result::Result<T, Error>;

mod firefox;
pub use firefox::Firefox;

/// Firefox's binary and whether it is installed.
pub mod firefox_binary {
    pub use crate::firefox::{available, binary};
}

/// A browser page under control (Chromium over DevTools, Firefox over WebDriver BiDi), for
/// tests that run the same scenario in both.
pub trait Browser: Sync {
    /// Evaluates `expression` in the page, awaiting it if it is a promise; its value as JSON.
    fn eval(&self, expression: &str) -> impl Future<Output = Result<Value>> + Send;

    /// Waits until `expression` is truthy in the page (checked every 20 ms).
    fn wait_until(
        &self,
        expression: &str,
        limit: Duration,
    ) -> impl Future<Output = Result<()>> + Send {
        async move {
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let value = self.eval(expression).await?;
                if !(value.is_null() || value == false || value == 0 || value == "") {
                    return Ok(());
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(Error::Page(format!(
                        "not true after {limit:?}: {expression}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl Browser for Chromium {
    fn eval(&self, expression: &str) -> impl Future<Output = Result<Value>> + Send {
        Chromium::eval(self, expression)
    }
}

impl Browser for Firefox {
    fn eval(&self, expression: &str) -> impl Future<Output = Result<Value>> + Send {
        Firefox::eval(self, expression)
    }
}

fn devtools(e: impl std::fmt::Display) -> Error {
    Error::DevTools(e.to_string())
}

/// The flags every Chromium here needs: headless, no sandbox (root), no GPU, off the network
/// (this machine refuses outside connections, and Chromium keeps trying them), fake camera and
/// microphone granted without a prompt, host candidates on loopback without mDNS names.
pub const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream=fps=30",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--remote-debugging-port=0",
];

/// A running headless Chromium with one page under control.
pub struct Chromium {
    child: Child,
    profile: PathBuf,
    page: tokio::sync::Mutex<Page>,
}

struct Page {
    socket: Option<Socket>,
    next_id: u64,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Sends command `id` (`{id, method, params}`, as the DevTools protocol and WebDriver BiDi
/// both frame one) and returns the reply that carries `id`, passing over events; `None` if
/// the socket closed first.
async fn round_trip(
    socket: &mut Socket,
    id: u64,
    method: &str,
    params: Value,
) -> Result<Option<Value>> {
    let request = json!({ "id": id, "method": method, "params": params });
    socket
        .send(Message::text(request.to_string()))
        .await
        .map_err(devtools)?;
    while let Some(message) = socket.next().await {
        let Message::Text(text) = message.map_err(devtools)? else {
            continue;
        };
        let reply: Value = serde_json::from_str(&text).map_err(devtools)?;
        if reply["id"] == id {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}

impl std::fmt::Debug for Chromium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chromium")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// The Chromium binary: `$CONFER_CHROMIUM`, else Debian's.
pub fn binary() -> String {
    std::env::var("CONFER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Whether Chromium is installed here.
pub fn available() -> bool {
    Path::new(&binary()).exists()
}

impl Chromium {
    /// Starts Chromium on `url` with [`FLAGS`] and `extra` flags, and connects to the page.
    pub async fn launch(url: &str, extra: &[&str]) -> Result<Self> {
        let binary = binary();
        let profile = std::env::temp_dir().join(format!(
            "confer-chromium-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&profile).map_err(|e| Error::Start {
            binary: binary.clone(),
            detail: format!("profile directory: {e}"),
        })?;
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&binary)
                .args(FLAGS)
                .args(extra)
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(url)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group: every helper process it forks is measured with it and
                // stopped with it, and nothing else is.
                .process_group(0)
                .spawn()
                .map_err(|e| Error::Start {
                    binary: binary.clone(),
                    detail: e.to_string(),
                })?
        };
        let mut chromium = Self {
            child,
            profile,
            page: tokio::sync::Mutex::new(Page {
                socket: None,
                next_id: 1,
            }),
        };
        // On failure the browser is dropped, which stops it.
        let socket = connect(&mut chromium.child, &chromium.profile).await?;
        chromium.page.get_mut().socket = Some(socket);
        chromium
            .wait_until(
                "document.readyState === 'complete' && location.href !== 'about:blank'",
                Duration::from_secs(20),
            )
            .await?;
        Ok(chromium)
    }

    /// Evaluates `expression` in the page, awaiting it if it is a promise; returns its value
    /// as JSON. A thrown exception is an [`Error::Page`].
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "awaitPromise": true,
                    "returnByValue": true,
                }),
            )
            .await?;
        if let Some(details) = result.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("exception")
                .to_owned();
            return Err(Error::Page(text));
        }
        Ok(result["result"]["value"].clone())
    }

    /// The peer page's remote audio since the last call, 48 kHz mono (the page joined with
    /// `tones: true`, which sends Confer's tone bursts and records what arrives).
    pub async fn take_peer_audio(&self) -> Result<Vec<f32>> {
        use base64::Engine;
        let v = self.eval("peer.takeAudio()").await?;
        if v["rate"].as_f64() != Some(48_000.0) {
            return Err(Error::Page(format!("recorded audio at {} Hz", v["rate"])));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["samples"].as_str().unwrap_or_default())
            .map_err(|e| Error::Page(format!("recorded audio: {e}")))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Sets the page's viewport to `width` x `height` CSS pixels (a phone: 390 x 844).
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        )
        .await
        .map(drop)
    }

    /// Saves a PNG of what the page shows now.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        use base64::Engine;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(devtools)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(devtools)?;
        }
        std::fs::write(path, png).map_err(devtools)
    }

    /// One DevTools command to the page; its result.
    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let mut page = self.page.lock().await;
        let id = page.next_id;
        page.next_id += 1;
        let socket = page
            .socket
            .as_mut()
            .ok_or_else(|| devtools("not connected"))?;
        let reply = round_trip(socket, id, method, params)
            .await?
            .ok_or_else(|| devtools("the page's DevTools socket closed"))?;
        match reply.get("error") {
            Some(error) => Err(devtools(error)),
            None => Ok(reply["result"].clone()),
        }
    }

    /// The PID of the browser process (its process group id too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) used so far by every process of this browser.
    pub fn cpu_seconds(&self) -> f64 {
        group_processes(self.pid())
            .iter()
            .map(|&p| cpu_seconds(p))
            .sum()
    }

    /// Memory of every process of this browser: the sum of their PSS, MiB.
    pub fn pss_mib(&self) -> f64 {
        group_processes(self.pid())
            .iter()
            .map(|&p| pss_mib(p))
            .sum()
    }

    /// Processes in the browser's group now.
    pub fn processes(&self) -> usize {
        group_processes(self.pid()).len()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        stop_group(&mut self.child, &self.profile);
    }
}

/// Stops a browser's whole process group, by its id: the browser and the helpers it started,
/// nothing else; then removes its profile.
fn stop_group(child: &mut Child, profile: &Path) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
    // The helpers die (and are reaped by init) a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !group_processes(child.id()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(profile);
}

/// Finds the DevTools port Chromium chose and connects to its page.
async fn connect(child: &mut Child, profile: &Path) -> Result<Socket> {
    let port_file = profile.join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let port: u16 = loop {
        if let Some(status) = child.try_wait().map_err(devtools)? {
            return Err(Error::Start {
                binary: binary(),
                detail: format!("exited at start ({status})"),
            });
        }
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse().ok())
        {
            break port;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(devtools("no DevToolsActivePort after 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ws_url = loop {
        let list = http_get(port, "/json/list").await?;
        let targets: Value = serde_json::from_str(&list).map_err(devtools)?;
        let page = targets.as_array().and_then(|t| {
            t.iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .map(str::to_owned)
        });
        if let Some(url) = page {
            break url;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(devtools("no page target after 20 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .map_err(devtools)?;
    Ok(socket)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A minimal HTTP GET on loopback (the DevTools target list).
async fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(devtools)?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .map_err(devtools)?;
    // Chromium keeps the connection open: read the headers, then Content-Length bytes.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .map_err(|_| devtools("no HTTP answer in 5 s"))?
            .map_err(devtools)?;
        if n == 0 {
            return Err(devtools("the HTTP connection closed early"));
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or_else(|| devtools("an HTTP answer without Content-Length"))?;
        if body.len() >= length {
            return Ok(body[..length].to_owned());
        }
    }
}

/// PIDs whose process group is `pgid`.
pub fn group_processes(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).and_then(|f| f.get(2)?.parse::<u32>().ok()) == Some(pgid))
        .collect()
}

/// The fields of /proc/<pid>/stat after the command name (state is the first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user + system, all threads) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name, in clock ticks
    // (100 per second on Linux).
    stat_fields(pid).map_or(0.0, |f| {
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (tick(11) + tick(12)) / 100.0
    })
}

/// A process's proportional set size (its share of every page it maps), MiB.
pub fn pss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Serves the peer page on loopback.
#[derive(Debug)]
pub struct PeerPage {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// The browser peer: `window.peer.join({...})` and friends (see the page).
pub const PEER_HTML: &str = include_str!("../page/peer.html");

/// Confer's frame mark in JavaScript (draw, read, and `conferMarks.watch(video)` to log the
/// marks a video presents): loaded by the peer page, injected into pages under test.
pub const MARKS_JS: &str = include_str!("../page/marks.js");

/// True on Confer's guest page once its device check is done and Join can be pressed: the
/// camera and microphone are open *and* the button is enabled (the page enables it only after
/// listing the devices, a moment after the media opens; a click before then does nothing).
pub const GUEST_READY_JS: &str = "window.confer && confer.state.screen === 'check' \
    && confer.state.media !== undefined && !document.getElementById('join').disabled";

impl PeerPage {
    /// Starts serving `/peer.html` on 127.0.0.1 at a free port.
    pub async fn serve() -> std::io::Result<Self> {
        let app = axum::Router::new()
            .route(
                "/peer.html",
                axum::routing::get(|| async { axum::response::Html(PEER_HTML) }),
            )
            .route(
                "/marks.js",
                axum::routing::get(|| async {
                    (
                        [("content-type", "text/javascript; charset=utf-8")],
                        MARKS_JS,
                    )
                }),
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, task })
    }

    /// The page's URL.
    pub fn url(&self) -> String {
        format!("http://{}/peer.html", self.addr)
    }

    /// The page's origin (for the signaling server's allowed origins).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Two headless Chromium instances on `page`, launched side by side (the two ends of a call).
pub async fn launch_pair(page: &PeerPage) -> Result<(Chromium, Chromium)> {
    let url = page.url();
    let (a, b) = tokio::join!(Chromium::launch(&url, &[]), Chromium::launch(&url, &[]));
    Ok((a?, b?))
}

/// Reloads the peer page in each of `browsers` (a new call: new peer connections, as a new call
/// in a browser tab) and waits until each is ready to join.
pub async fn reload_peer_pages(browsers: &[&Chromium]) -> Result<()> {
    for browser in browsers {
        browser
            .eval("window.reloading = true; setTimeout(() => location.reload(), 0); true")
            .await?;
    }
    // The old page is ready too until the reload starts: only the new one lacks the flag.
    for browser in browsers {
        browser
            .wait_until(
                "!window.reloading && document.readyState === 'complete' && window.peer \
                 && !peer.state.pc",
                std::time::Duration::from_secs(20),
            )
            .await?;
    }
    Ok(())
}

impl Drop for PeerPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}
