//! The Tauri commands: each a short adapter over confer-call, confer-media or the embedded
//! confer-signal. Errors come back to the page as sentences it shows as they are.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};
use tokio::sync::oneshot;

use confer_call::call::{CallConfig, CallHandle};
use confer_call::link::{Link, host_and_port, split_server};
use confer_call::tls::{Trust, fingerprint};
use confer_frames::{FrameServer, Stream};
use confer_media::VideoCodec;
use confer_media::apm::ProcessingConfig;

use crate::events::{CALL_EVENT, UiEvent};
use crate::session::{Op, Session};
use crate::settings::Settings;

/// confer-signal inside the app: rooms for calls hosted here, with nothing deployed. One
/// server on loopback, always; with LAN hosting on, a second one on this computer's network
/// address, started when first needed (and again when that address changed), so that someone
/// on the same network can join. That one speaks https with a certificate it makes for the
/// address (a browser gives camera and microphone only to secure pages), which invite links
/// name by its hash (`confer_call::link`).
#[derive(Debug)]
pub(crate) struct Embedded {
    handle: confer_signal::ServerHandle,
    lan: tokio::sync::Mutex<Option<(confer_signal::ServerHandle, [u8; 32])>>,
}

/// Where a hosted call's room goes.
#[derive(Debug)]
struct Host {
    /// The server's base URL.
    server: String,
    api_key: String,
    /// The SHA-256 of its certificate, when it made its own.
    certificate: Option<[u8; 32]>,
}

impl Host {
    fn trust(&self) -> Trust {
        Trust {
            ca_pem: None,
            server_sha256: self.certificate,
        }
    }

    /// `link` naming this server's certificate when it made its own.
    fn named(&self, link: Link) -> Link {
        match self.certificate {
            Some(sha256) => link.with_certificate(sha256),
            None => link,
        }
    }
}

impl Embedded {
    /// Binds on loopback, port chosen by the system.
    pub(crate) async fn start() -> Result<Self, confer_signal::Error> {
        let handle = serve(confer_signal::Config::loopback()).await?;
        Ok(Self {
            handle,
            lan: Default::default(),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.handle.local_addr())
    }

    /// The server a hosted call's room goes on: loopback, or for `lan` the one on this
    /// computer's network address.
    async fn for_call(&self, lan: bool) -> Result<Host, String> {
        if !lan {
            return Ok(Host {
                server: self.base_url(),
                api_key: self.handle.api_key().to_owned(),
                certificate: None,
            });
        }
        let address = lan_address()?;
        let mut running = self.lan.lock().await;
        if running
            .as_ref()
            .is_none_or(|(h, _)| h.local_addr().ip() != address)
        {
            if let Some((old, _)) = running.take() {
                old.shutdown().await;
            }
            let cannot =
                |e: confer_signal::Error| format!("cannot host on this network ({address}): {e}");
            let identity =
                confer_signal::Identity::self_signed(vec![address.to_string()]).map_err(cannot)?;
            let config = confer_signal::Config {
                listen: std::net::SocketAddr::new(address, 0),
                ..confer_signal::Config::default()
            };
            let server = confer_signal::Server::bind_with_identity(config, &identity)
                .await
                .map_err(cannot)?;
            let handle = server.handle();
            tokio::spawn(server.serve());
            tracing::info!(addr = %handle.local_addr(), "hosting on the local network");
            *running = Some((handle, fingerprint(identity.certificate_der())));
        }
        let (handle, certificate) = running.as_ref().expect("started above");
        Ok(Host {
            server: format!("https://{}", handle.local_addr()),
            api_key: handle.api_key().to_owned(),
            certificate: Some(*certificate),
        })
    }
}

async fn serve(
    config: confer_signal::Config,
) -> Result<confer_signal::ServerHandle, confer_signal::Error> {
    let server = confer_signal::Server::bind(config).await?;
    let handle = server.handle();
    tokio::spawn(server.serve());
    Ok(handle)
}

/// This computer's address on its network: the one its default route leaves from (found by
/// connecting a UDP socket, which sends nothing).
fn lan_address() -> Result<IpAddr, String> {
    let none = || {
        "this computer is on no network, so nobody else can join a call hosted here; \
         turn off hosting for the local network in Settings to call on this computer"
            .to_owned()
    };
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|_| none())?;
    socket
        .connect((Ipv4Addr::new(192, 0, 2, 1), 9))
        .map_err(|_| none())?;
    let ip = socket.local_addr().map_err(|_| none())?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        return Err(none());
    }
    Ok(ip)
}

/// A thread of the pre-call check (camera preview, microphone meter), stopped when dropped.
#[derive(Debug)]
struct Worker {
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn spawn(
        name: &str,
        work: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(stopped))
            .map_err(|e| e.to_string())?;
        Ok(Self { stop })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Everything the commands share.
#[derive(Debug)]
pub(crate) struct App {
    frames: Arc<FrameServer>,
    embedded: Embedded,
    session: tokio::sync::Mutex<Option<Session>>,
    preview: std::sync::Mutex<Option<Worker>>,
    meter: std::sync::Mutex<Option<Worker>>,
    /// The call link the app was opened with (a deep link or an invite link).
    launch_link: Option<String>,
    /// [`video_drawing`]'s choice for this machine.
    video_drawing: &'static str,
}

impl App {
    /// The state of one launch.
    pub(crate) fn new(
        frames: Arc<FrameServer>,
        embedded: Embedded,
        launch_link: Option<String>,
        video_drawing: &'static str,
    ) -> Self {
        Self {
            frames,
            embedded,
            launch_link,
            video_drawing,
            session: Default::default(),
            preview: Default::default(),
            meter: Default::default(),
        }
    }

    /// Stops the pre-call check's camera and microphone (a call opens its own).
    fn stop_checks(&self) {
        for worker in [&self.preview, &self.meter] {
            worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }

    async fn op<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Op) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| "the call has ended".to_owned())
    }

    async fn send(&self, op: Op) -> Result<(), String> {
        match &*self.session.lock().await {
            Some(session) if session.send(op) => Ok(()),
            _ => Err("there is no call".into()),
        }
    }
}

/// `connect-src` allows Tauri's IPC and this launch's frame socket, nothing else.
pub(crate) fn content_security_policy(frames: SocketAddr) -> tauri::utils::config::Csp {
    tauri::utils::config::Csp::Policy(format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src ipc: http://ipc.localhost ws://{frames}; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ))
}

/// Every command, for the builder.
pub(crate) fn handler<R: Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static
{
    tauri::generate_handler![
        app_info,
        devices,
        get_settings,
        save_settings,
        start_preview,
        stop_preview,
        start_mic_meter,
        stop_mic_meter,
        test_speaker,
        check_server,
        start_call,
        join_call,
        admit,
        deny,
        set_muted,
        set_camera,
        send_chat,
        send_file,
        cancel_transfer,
        save_file,
        switch_video,
        switch_audio,
        switch_speaker,
        set_processing,
        restart_ice,
        hang_up,
    ]
}

/// What the page needs to know at start.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AppInfo {
    remote_video_url: String,
    local_video_url: String,
    embedded_server: String,
    version: &'static str,
    /// The link the app was opened with, for the page to offer (never joined unasked).
    launch_link: Option<String>,
    /// How the page draws video: `webgl` or `canvas2d` (see [`video_drawing`]).
    video_drawing: &'static str,
}

/// WebGL (a YUV shader) with a GPU; without one, a 2D canvas the page converts to RGB for:
/// WebGL there runs on Mesa's llvmpipe, whose LLVM alone is about 31 MB of the web process
/// (measured in docs/BENCHMARKS.md), for no speed gained. `CONFER_VIDEO_DRAWING` overrides.
pub(crate) fn video_drawing(chosen: Option<&str>, gpu: bool) -> &'static str {
    match chosen {
        Some("webgl") => "webgl",
        Some("canvas2d") => "canvas2d",
        Some(other) => {
            tracing::warn!("CONFER_VIDEO_DRAWING={other} is neither webgl nor canvas2d: ignored");
            video_drawing(None, gpu)
        }
        None if gpu => "webgl",
        None => "canvas2d",
    }
}

#[tauri::command]
fn app_info(state: State<'_, App>) -> AppInfo {
    AppInfo {
        remote_video_url: state.frames.url(Stream::Remote),
        local_video_url: state.frames.url(Stream::Local),
        embedded_server: state.embedded.base_url(),
        version: env!("CARGO_PKG_VERSION"),
        launch_link: state.launch_link.clone(),
        video_drawing: state.video_drawing,
    }
}

/// A device the pickers offer.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Device {
    /// What to pass as the source (`camera:0`, `mic:<id>`, a speaker id).
    spec: String,
    /// What to show.
    label: String,
    is_default: bool,
}

/// What this machine has.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Devices {
    cameras: Vec<Device>,
    microphones: Vec<Device>,
    speakers: Vec<Device>,
    /// What went wrong while looking (shown, never fatal).
    problems: Vec<String>,
}

#[tauri::command]
async fn devices() -> Result<Devices, String> {
    tokio::task::spawn_blocking(|| {
        let mut problems = Vec::new();
        let cameras = confer_media::camera::cameras()
            .map_err(|e| problems.push(format!("cameras: {e}")))
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, c)| Device {
                spec: format!("camera:{}", c.id),
                label: c.name,
                is_default: i == 0,
            })
            .collect();
        let mut audio = |list: confer_media::Result<Vec<confer_media::device::DeviceInfo>>,
                         what: &str,
                         prefix: &str| {
            list.map_err(|e| problems.push(format!("{what}: {e}")))
                .unwrap_or_default()
                .into_iter()
                .map(|d| Device {
                    spec: format!("{prefix}{}", d.id),
                    label: d.name,
                    is_default: d.is_default,
                })
                .collect::<Vec<_>>()
        };
        let microphones = audio(confer_media::device::inputs(), "microphones", "mic:");
        let speakers = audio(confer_media::device::outputs(), "speakers", "");
        Devices {
            cameras,
            microphones,
            speakers,
            problems,
        }
    })
    .await
    .map_err(|e| e.to_string())
}

fn settings_path<R: Runtime>(app: &AppHandle<R>) -> Result<std::path::PathBuf, String> {
    app.path()
        .app_config_dir()
        .map(|dir| dir.join("settings.json"))
        .map_err(|e| format!("no configuration directory: {e}"))
}

#[tauri::command]
fn get_settings<R: Runtime>(app: AppHandle<R>) -> Result<Settings, String> {
    Settings::load(&settings_path(&app)?)
}

#[tauri::command]
fn save_settings<R: Runtime>(app: AppHandle<R>, settings: Settings) -> Result<(), String> {
    settings.save(&settings_path(&app)?)
}

/// The video source to use: the one chosen, else the first camera, else the test pattern.
fn video_source(settings: &Settings) -> String {
    if !settings.video.is_empty() {
        return settings.video.clone();
    }
    match confer_media::camera::cameras() {
        Ok(cameras) if !cameras.is_empty() => format!("camera:{}", cameras[0].id),
        _ => "pattern:1280x720".into(),
    }
}

#[tauri::command]
async fn start_preview(state: State<'_, App>, video: String) -> Result<(), String> {
    let frames = Arc::clone(&state.frames);
    // Opening a camera blocks: not on the window's thread.
    let source = tokio::task::spawn_blocking(move || confer_media::source::open(&video))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let worker = Worker::spawn("confer-preview", move |stop| {
        let capture = confer_media::capture::Capture::start_wall_clock(source);
        while !stop.load(Ordering::Relaxed) {
            if let Some(frame) = capture.next(Duration::from_millis(200)) {
                frames.publish(Stream::Local, frame);
            }
        }
    })?;
    // Replacing the old preview stops it.
    *state.preview.lock().unwrap_or_else(|e| e.into_inner()) = Some(worker);
    Ok(())
}

#[tauri::command]
fn stop_preview(state: State<'_, App>) {
    state
        .preview
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
}

/// One reading of the microphone meter (event `mic-level`, every 50 ms).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct MicLevel {
    rms_dbfs: f32,
    peak_dbfs: f32,
    clipped: bool,
}

/// The pre-call microphone meter: opens `audio` and reports its level until stopped (or a
/// call starts).
#[tauri::command]
async fn start_mic_meter<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, App>,
    audio: String,
) -> Result<(), String> {
    let microphone = confer_media::audio::is_microphone(&audio);
    let mut source = tokio::task::spawn_blocking(move || confer_media::audio::open(&audio))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let worker = Worker::spawn("confer-mic-meter", move |stop| {
        let mut meter = confer_media::level::LevelMeter::new();
        // A microphone blocks for its 10 ms; synthetic sources are paced here.
        let mut pacer = confer_media::pace::Pacer::new(Duration::from_millis(10), Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            if !microphone {
                pacer.wait();
            }
            let Ok(frame) = source.next_frame() else {
                let _ = app.emit("mic-level", Option::<MicLevel>::None);
                return;
            };
            for level in meter.push(&frame) {
                let _ = app.emit(
                    "mic-level",
                    Some(MicLevel {
                        rms_dbfs: level.rms_dbfs,
                        peak_dbfs: level.peak_dbfs,
                        clipped: level.clipped,
                    }),
                );
            }
        }
    })?;
    *state.meter.lock().unwrap_or_else(|e| e.into_inner()) = Some(worker);
    Ok(())
}

#[tauri::command]
fn stop_mic_meter(state: State<'_, App>) {
    state.meter.lock().unwrap_or_else(|e| e.into_inner()).take();
}

/// Plays one second of a 440 Hz tone at −20 dBFS on `device` (empty: the system default).
#[tauri::command]
async fn test_speaker(device: String) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let selector = Some(device.as_str()).filter(|d| !d.is_empty() && *d != "default");
        let mut speaker =
            confer_media::device::Speaker::open(selector).map_err(|e| e.to_string())?;
        let frame = confer_media::tone::FRAME_10MS;
        for i in 0..100 {
            let tone = confer_media::tone::sine(440.0, 0.1, i * frame, frame);
            speaker.play(&tone).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Where ICE gathers for a call through `server`. For a server on this computer (the
/// embedded one), loopback: the wildcard leaves loopback out. Otherwise every interface: the
/// wildcard, which webrtc-rs expands to the interfaces there are at each bind, so the ICE
/// restart a network change brings gathers on the new network (a concrete address would stay
/// on one that may be gone).
fn ice_bind(server: &str) -> IpAddr {
    let everywhere = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let Ok((secure, authority)) = split_server(server) else {
        return everywhere;
    };
    let resolved = std::net::ToSocketAddrs::to_socket_addrs(&host_and_port(authority, secure))
        .map(|addrs| addrs.collect::<Vec<_>>())
        .unwrap_or_default();
    if !resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback()) {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        everywhere
    }
}

/// The call's configuration. Listing the devices (cameras, microphones, speakers) and
/// resolving the server's name block, so this runs off the async workers.
async fn call_config(
    settings: Settings,
    server: String,
    link: &Link,
) -> Result<CallConfig, String> {
    let link = link.clone();
    tokio::task::spawn_blocking(move || configure(&settings, &server, &link))
        .await
        .map_err(|e| e.to_string())
}

fn configure(settings: &Settings, server: &str, link: &Link) -> CallConfig {
    let microphones = confer_media::device::inputs().unwrap_or_default();
    let audio = if !settings.audio.is_empty() {
        settings.audio.clone()
    } else if microphones.is_empty() {
        // Nothing to capture: the call still runs, sending silence.
        "silence".into()
    } else {
        "mic".into()
    };
    let speaker = if settings.speaker == "none" {
        None
    } else if !settings.speaker.is_empty() {
        Some(settings.speaker.clone())
    } else if confer_media::device::outputs().is_ok_and(|o| !o.is_empty()) {
        Some("default".into())
    } else {
        None
    };
    CallConfig {
        url: link.ws_url(),
        token: link.token.clone(),
        name: Some(settings.display_name.trim().to_owned()).filter(|n| !n.is_empty()),
        video: video_source(settings),
        video_kbps: if settings.low_bandwidth { 300 } else { 1500 },
        video_codec: if settings.preferred_codec == "h264" {
            VideoCodec::H264
        } else {
            VideoCodec::Vp8
        },
        audio,
        speaker,
        processing: ProcessingConfig {
            echo_cancellation: settings.echo_cancellation,
            noise_suppression: settings.noise_suppression,
            auto_gain: settings.auto_gain,
        },
        bind_ip: ice_bind(server),
        auto_admit: false,
        relay_only: settings.relay_only,
        trust: link.trust(None),
    }
}

/// What starting a call gives the host.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    /// The link to send to the guest.
    invite_link: String,
    /// The room.
    room: String,
}

async fn begin<R: Runtime>(
    app: &AppHandle<R>,
    state: &App,
    config: CallConfig,
) -> Result<(), String> {
    let mut session = state.session.lock().await;
    if session.as_ref().is_some_and(|s| !s.is_over()) {
        return Err("a call is already running: hang up first".into());
    }
    state.stop_checks();
    let call = CallHandle::join(config).await.map_err(|e| e.to_string())?;
    let app = app.clone();
    *session = Some(Session::start(
        call,
        Arc::clone(&state.frames),
        move |event| {
            // Someone knocking needs the host's attention even when the window is behind
            // others: it asks for attention and, when not in front, a desktop notification
            // says who knocks.
            if let UiEvent::Knock { name, .. } = &event
                && let Some(window) = app.get_webview_window("main")
            {
                let in_front =
                    window.is_focused().unwrap_or(false) && !window.is_minimized().unwrap_or(false);
                tracing::info!(in_front, "a guest knocks");
                if !in_front {
                    crate::notify::knock(name.as_deref());
                }
                let _ = window.request_user_attention(Some(tauri::UserAttentionType::Critical));
            }
            let _ = app.emit(CALL_EVENT, event);
        },
    ));
    Ok(())
}

/// What the pre-call check found about the server a call would go through.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerCheck {
    /// The server checked (its base URL).
    server: String,
    /// How long its answer took, connection and TLS included, ms.
    ms: f64,
}

/// The pre-call check's look at the server: the one `link` is on when a link is given (with
/// the certificate it names), else the one a hosted call would use (the settings' server, or
/// the built-in one: on the network address with LAN hosting on, started if it is not yet).
/// An error says what is wrong in words.
#[tauri::command]
async fn check_server(
    state: State<'_, App>,
    settings: Settings,
    link: Option<String>,
) -> Result<ServerCheck, String> {
    settings.validate()?;
    let (server, trust) = match link.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(link) => {
            let link = Link::parse(link)?;
            (link.server(), link.trust(None))
        }
        None if !settings.server_url.is_empty() => (settings.server_url.clone(), Trust::default()),
        None => {
            let host = state.embedded.for_call(settings.lan_hosting).await?;
            let trust = host.trust();
            (host.server, trust)
        }
    };
    let took = confer_call::rooms::check(&server, &trust).await?;
    Ok(ServerCheck {
        server,
        ms: took.as_secs_f64() * 1e3,
    })
}

#[tauri::command]
async fn start_call<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, App>,
    settings: Settings,
) -> Result<Started, String> {
    settings.validate()?;
    let host = if settings.server_url.is_empty() {
        state.embedded.for_call(settings.lan_hosting).await?
    } else {
        Host {
            server: settings.server_url.clone(),
            api_key: settings.api_key.clone(),
            certificate: None,
        }
    };
    let name = Some(settings.display_name.trim()).filter(|n| !n.is_empty());
    let room =
        confer_call::rooms::create_room(&host.server, &host.api_key, name, &host.trust()).await?;
    let link = host.named(Link::for_token(&host.server, &room.room, &room.host_token)?);
    let invite = host.named(Link::parse(&room.guest_url)?);
    let config = call_config(settings, host.server, &link).await?;
    begin(&app, &state, config).await?;
    Ok(Started {
        invite_link: invite.to_string(),
        room: room.room,
    })
}

#[tauri::command]
async fn join_call<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, App>,
    link: String,
    settings: Settings,
) -> Result<(), String> {
    settings.validate()?;
    let link = Link::parse(&link)?;
    let server = link.to_string();
    let config = call_config(settings, server, &link).await?;
    begin(&app, &state, config).await
}

#[tauri::command]
async fn admit(state: State<'_, App>, peer: String) -> Result<(), String> {
    state.send(Op::Admit(peer)).await
}

#[tauri::command]
async fn deny(state: State<'_, App>, peer: String) -> Result<(), String> {
    state.send(Op::Deny(peer)).await
}

#[tauri::command]
async fn set_muted(state: State<'_, App>, muted: bool) -> Result<(), String> {
    state.send(Op::Mute(muted)).await
}

#[tauri::command]
async fn set_camera(state: State<'_, App>, on: bool) -> Result<(), String> {
    state.send(Op::Camera(on)).await
}

#[tauri::command]
async fn send_chat(state: State<'_, App>, text: String) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("nothing to send".into());
    }
    state.op(|reply| Op::Chat(text, reply)).await?
}

/// The page sends the file's bytes as the raw body and its name in `x-file-name`
/// (percent-encoded): no JSON array of numbers, no path the page could choose.
#[tauri::command]
async fn send_file(state: State<'_, App>, request: tauri::ipc::Request<'_>) -> Result<u64, String> {
    let tauri::ipc::InvokeBody::Raw(data) = request.body() else {
        return Err("send_file takes the file's bytes as a raw body".into());
    };
    let name = request
        .headers()
        .get("x-file-name")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .filter(|n| !n.is_empty())
        .ok_or("send_file needs the file's name in x-file-name")?;
    let data = Bytes::copy_from_slice(data);
    state.op(|reply| Op::SendFile(name, data, reply)).await
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tauri::command]
async fn cancel_transfer(state: State<'_, App>, id: u64) -> Result<(), String> {
    state.send(Op::CancelTransfer(id)).await
}

/// Saves a received file into the Downloads folder under its own name (made unique, and
/// stripped of any path); returns where it went.
#[tauri::command]
async fn save_file<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, App>,
    id: u64,
    name: String,
) -> Result<String, String> {
    // The desktop's Downloads folder, or ~/Downloads where none is configured.
    let dir = app
        .path()
        .download_dir()
        .or_else(|_| app.path().home_dir().map(|home| home.join("Downloads")))
        .map_err(|e| format!("no Downloads folder: {e}"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = unique_path(&dir, &safe_file_name(&name));
    state
        .op(|reply| Op::SaveFile(id, path.clone(), reply))
        .await??;
    Ok(path.display().to_string())
}

/// A file name that cannot leave the folder it is saved in.
pub(crate) fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim_start_matches('.')
        .trim()
        .to_owned();
    if cleaned.is_empty() {
        "received-file".into()
    } else {
        cleaned
    }
}

fn unique_path(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    (1..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .expect("some name is free")
}

#[tauri::command]
async fn switch_video(state: State<'_, App>, spec: String) -> Result<(), String> {
    state.op(|reply| Op::SwitchVideo(spec, reply)).await?
}

#[tauri::command]
async fn switch_audio(state: State<'_, App>, spec: String) -> Result<(), String> {
    state.op(|reply| Op::SwitchAudio(spec, reply)).await?
}

#[tauri::command]
async fn switch_speaker(state: State<'_, App>, device: String) -> Result<(), String> {
    state.op(|reply| Op::SwitchSpeaker(device, reply)).await?
}

#[tauri::command]
async fn set_processing(
    state: State<'_, App>,
    echo_cancellation: bool,
    noise_suppression: bool,
    auto_gain: bool,
) -> Result<(), String> {
    state
        .send(Op::Processing(ProcessingConfig {
            echo_cancellation,
            noise_suppression,
            auto_gain,
        }))
        .await
}

#[tauri::command]
async fn restart_ice(state: State<'_, App>) -> Result<(), String> {
    state.send(Op::RestartIce).await
}

#[tauri::command]
async fn hang_up(state: State<'_, App>) -> Result<(), String> {
    state.send(Op::HangUp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_names_cannot_escape_the_downloads_folder() {
        assert_eq!(safe_file_name("report.pdf"), "report.pdf");
        assert_eq!(safe_file_name("../../.bashrc"), "bashrc");
        assert_eq!(safe_file_name("C:\\x\\evil.exe"), "evil.exe");
        assert_eq!(safe_file_name("/etc/passwd"), "passwd");
        assert_eq!(safe_file_name("..."), "received-file");
        assert_eq!(safe_file_name("a\u{0}b\nc.txt"), "abc.txt");
    }

    #[test]
    fn taken_names_get_a_number() {
        let dir = std::env::temp_dir().join(format!("confer-unique-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(unique_path(&dir, "a.txt"), dir.join("a.txt"));
        std::fs::write(dir.join("a.txt"), b"x").unwrap();
        assert_eq!(unique_path(&dir, "a.txt"), dir.join("a (1).txt"));
        std::fs::write(dir.join("a (1).txt"), b"x").unwrap();
        assert_eq!(unique_path(&dir, "a.txt"), dir.join("a (2).txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ice_gathers_on_loopback_only_for_a_server_on_this_computer() {
        let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let everywhere = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(ice_bind("http://127.0.0.1:8080"), here);
        assert_eq!(ice_bind("http://localhost:8080/"), here);
        assert_eq!(ice_bind("http://[::1]:9"), here);
        // No port: the scheme's. (A server elsewhere used to get loopback here, which no
        // other computer can reach.)
        assert_eq!(ice_bind("https://192.0.2.7"), everywhere);
        assert_eq!(ice_bind("http://192.0.2.7:8443"), everywhere);
        assert_eq!(ice_bind("https://name.invalid"), everywhere);
    }

    #[test]
    fn file_names_are_percent_decoded() {
        assert_eq!(percent_decode("r%C3%A9sum%C3%A9.pdf"), "résumé.pdf");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
    }

    #[test]
    fn the_page_may_connect_only_to_its_frame_socket() {
        let csp = content_security_policy("127.0.0.1:4567".parse().unwrap()).to_string();
        assert!(csp.contains("connect-src ipc: http://ipc.localhost ws://127.0.0.1:4567;"));
        assert!(!csp.contains('*'));
    }
}

/// The commands through Tauri's IPC on its mock runtime (no window; everything behind the
/// commands is real: the frame socket, the embedded server, the call engine).
#[cfg(test)]
mod ipc {
    use super::*;
    use serde_json::{Value, json};
    use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context};

    fn app() -> (tauri::App<MockRuntime>, tauri::WebviewWindow<MockRuntime>) {
        let (frames, embedded) = tauri::async_runtime::block_on(async {
            (
                FrameServer::start().await.unwrap(),
                Embedded::start().await.unwrap(),
            )
        });
        let app = mock_builder()
            .manage(App::new(
                Arc::new(frames),
                embedded,
                Some("confer://example.org/join/r#t".into()),
                "canvas2d",
            ))
            .invoke_handler(handler())
            .build(mock_context(tauri::test::noop_assets()))
            .unwrap();
        let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        (app, window)
    }

    fn invoke(
        window: &tauri::WebviewWindow<MockRuntime>,
        cmd: &str,
        body: tauri::ipc::InvokeBody,
    ) -> Result<Value, Value> {
        get_ipc_response(
            window,
            tauri::webview::InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body,
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_owned(),
            },
        )
        .map(|body| body.deserialize::<Value>().unwrap())
    }

    fn call(
        window: &tauri::WebviewWindow<MockRuntime>,
        cmd: &str,
        args: Value,
    ) -> Result<Value, Value> {
        invoke(window, cmd, tauri::ipc::InvokeBody::Json(args))
    }

    fn quiet_settings() -> Value {
        json!({"video": "pattern:320x180", "audio": "silence", "speaker": "none"})
    }

    #[test]
    fn app_info_names_this_launchs_frame_socket_and_server() {
        let (_app, window) = app();
        let info = call(&window, "app_info", json!({})).unwrap();
        let remote = info["remoteVideoUrl"].as_str().unwrap();
        assert!(remote.starts_with("ws://127.0.0.1:") && remote.contains("/remote?token="));
        assert!(
            info["localVideoUrl"]
                .as_str()
                .unwrap()
                .contains("/local?token=")
        );
        assert!(
            info["embeddedServer"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:")
        );
        assert_eq!(info["launchLink"], json!("confer://example.org/join/r#t"));
        assert_eq!(info["videoDrawing"], json!("canvas2d"));
    }

    #[test]
    fn video_is_drawn_with_webgl_only_on_a_gpu_unless_told() {
        assert_eq!(video_drawing(None, true), "webgl");
        assert_eq!(video_drawing(None, false), "canvas2d");
        assert_eq!(video_drawing(Some("webgl"), false), "webgl");
        assert_eq!(video_drawing(Some("canvas2d"), true), "canvas2d");
        assert_eq!(video_drawing(Some("vulkan"), true), "webgl");
        assert_eq!(video_drawing(Some(""), false), "canvas2d");
    }

    #[test]
    fn commands_without_a_call_or_with_bad_input_say_why() {
        let (_app, window) = app();
        let err = call(&window, "send_chat", json!({"text": "hello"})).unwrap_err();
        assert_eq!(err, json!("there is no call"));
        let err = call(&window, "send_chat", json!({"text": "   "})).unwrap_err();
        assert_eq!(err, json!("nothing to send"));
        let err = call(
            &window,
            "join_call",
            json!({"link": "not a link", "settings": quiet_settings()}),
        )
        .unwrap_err();
        assert!(
            err.as_str().unwrap().contains("is not a Confer link"),
            "{err}"
        );
        let mut settings = quiet_settings();
        settings["theme"] = json!("purple");
        let err = call(&window, "start_call", json!({"settings": settings})).unwrap_err();
        assert!(err.as_str().unwrap().contains("unknown theme"), "{err}");
        // A file must come as raw bytes with its name.
        let err = call(&window, "send_file", json!({"name": "x"})).unwrap_err();
        assert!(err.as_str().unwrap().contains("raw body"), "{err}");
        let err = invoke(
            &window,
            "send_file",
            tauri::ipc::InvokeBody::Raw(vec![1, 2, 3]),
        )
        .unwrap_err();
        assert!(err.as_str().unwrap().contains("x-file-name"), "{err}");
    }

    #[test]
    fn a_hosted_call_gets_an_invite_link_on_the_embedded_server_and_hangs_up() {
        let (_app, window) = app();
        let info = call(&window, "app_info", json!({})).unwrap();
        let started = call(&window, "start_call", json!({"settings": quiet_settings()})).unwrap();
        let link = started["inviteLink"].as_str().unwrap();
        let server = info["embeddedServer"].as_str().unwrap();
        assert!(
            link.starts_with(&format!("{server}/join/")),
            "{link} on {server}"
        );
        let parsed = Link::parse(link).unwrap();
        assert_eq!(parsed.room, started["room"].as_str().unwrap());
        // One call at a time.
        let err = call(&window, "start_call", json!({"settings": quiet_settings()})).unwrap_err();
        assert!(err.as_str().unwrap().contains("already running"), "{err}");
        call(&window, "hang_up", json!({})).unwrap();
    }

    #[test]
    fn the_pre_call_check_reaches_the_server_a_call_would_use() {
        let (_app, window) = app();
        let check = |settings: Value, link: Value| {
            call(
                &window,
                "check_server",
                json!({"settings": settings, "link": link}),
            )
        };
        // The built-in server.
        let built_in = check(quiet_settings(), Value::Null).unwrap();
        assert!(
            built_in["server"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:"),
            "{built_in}"
        );
        assert!(built_in["ms"].as_f64().unwrap() >= 0.0, "{built_in}");
        // A link's server, with the link's certificate hash.
        let started = call(&window, "start_call", json!({"settings": quiet_settings()})).unwrap();
        let link = started["inviteLink"].clone();
        let by_link = check(quiet_settings(), link).unwrap();
        assert_eq!(by_link["server"], built_in["server"]);
        call(&window, "hang_up", json!({})).unwrap();
        // A server of one's own that is not there: said in words.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut settings = quiet_settings();
        settings["serverUrl"] = json!(format!("http://127.0.0.1:{port}"));
        let err = check(settings, Value::Null).unwrap_err();
        assert!(err.as_str().unwrap().contains("cannot reach"), "{err}");
        // A broken link.
        let err = check(quiet_settings(), json!("not a link")).unwrap_err();
        assert!(err.as_str().unwrap().contains("not a Confer link"), "{err}");
    }

    #[test]
    fn a_call_hosted_for_the_local_network_is_on_this_computers_network_address() {
        let (_app, window) = app();
        let mut settings = quiet_settings();
        settings["lanHosting"] = json!(true);
        let start = || call(&window, "start_call", json!({"settings": settings.clone()}));
        if let Err(why) = lan_address() {
            // A machine on no network: the host is told why, and nothing starts.
            assert_eq!(start().unwrap_err(), json!(why));
            return;
        }
        let started = start().unwrap();
        let link = Link::parse(started["inviteLink"].as_str().unwrap()).unwrap();
        let server = link.to_string();
        let (_, authority) = split_server(&server).unwrap();
        let addr: std::net::SocketAddr = authority.parse().unwrap();
        // One of this computer's own network addresses (read from its interfaces, not the
        // way the app found it), and the server listens there.
        assert!(
            confer_call::netwatch::usable_addresses().contains(&addr.ip()),
            "{addr} is not one of this computer's network addresses"
        );
        // Over https, with a certificate it made, which the link names: the server shows that
        // certificate (a client given another hash is refused).
        assert!(server.starts_with("https://"), "{server}");
        let trust = link.trust(None);
        assert!(trust.server_sha256.is_some(), "{server}");
        tauri::async_runtime::block_on(confer_call::tls::connect_signaling(
            authority, true, &trust,
        ))
        .expect("the server listens there, showing the certificate the link names");
        let other = Trust {
            server_sha256: Some([0; 32]),
            ..trust
        };
        let refused = tauri::async_runtime::block_on(confer_call::tls::connect_signaling(
            authority, true, &other,
        ));
        assert!(refused.is_err(), "another certificate named");
        call(&window, "hang_up", json!({})).unwrap();
        // Hosting on this computer only, rooms stay on loopback.
        let started = call(&window, "start_call", json!({"settings": quiet_settings()})).unwrap();
        assert!(
            started["inviteLink"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1")
        );
        call(&window, "hang_up", json!({})).unwrap();
    }
}

/// Another launch of the app (a link clicked elsewhere): the window comes to the front, and a
/// link is offered on the home screen as at start-up (`open-link`); joining stays a click.
pub(crate) fn another_launch<R: Runtime>(app: &AppHandle<R>, request: crate::instance::Request) {
    use tauri::{Emitter, Manager};
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
    if let crate::instance::Request::Open(link) = request
        && let Some(link) = launch_link([link])
    {
        let _ = app.emit("open-link", link);
    }
}

/// The call link among the app's arguments (`confer-desktop <link>`, which is also how the
/// desktop opens a `confer://` deep link): the first that parses, as given.
pub(crate) fn launch_link(args: impl IntoIterator<Item = String>) -> Option<String> {
    args.into_iter()
        .find(|arg| !arg.starts_with('-') && Link::parse(arg).is_ok())
}

#[cfg(test)]
mod launch {
    #[test]
    fn the_first_call_link_among_the_arguments_is_offered() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(super::launch_link(args(&["--verbose", "nonsense"])), None);
        assert_eq!(
            super::launch_link(args(&["-x", "confer+http://10.0.0.2:8443/join/r#t", "x"])),
            Some("confer+http://10.0.0.2:8443/join/r#t".into())
        );
    }
}
