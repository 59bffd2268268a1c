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
use confer_call::link::{Link, split_server};
use confer_frames::{FrameServer, Stream};
use confer_media::VideoCodec;
use confer_media::apm::ProcessingConfig;

use crate::events::CALL_EVENT;
use crate::session::{Op, Session};
use crate::settings::Settings;

/// confer-signal inside the app: rooms for calls hosted here, with nothing deployed.
#[derive(Debug)]
pub(crate) struct Embedded {
    handle: confer_signal::ServerHandle,
}

impl Embedded {
    /// Binds on loopback, port chosen by the system.
    pub(crate) async fn start() -> Result<Self, confer_signal::Error> {
        let server = confer_signal::Server::bind(confer_signal::Config::loopback()).await?;
        let handle = server.handle();
        tokio::spawn(server.serve());
        Ok(Self { handle })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.handle.local_addr())
    }
}

/// A camera preview outside a call (the pre-call check).
#[derive(Debug)]
struct Preview {
    stop: Arc<AtomicBool>,
}

impl Drop for Preview {
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
    preview: std::sync::Mutex<Option<Preview>>,
}

impl App {
    /// The state of one launch.
    pub(crate) fn new(frames: Arc<FrameServer>, embedded: Embedded) -> Self {
        Self {
            frames,
            embedded,
            session: Default::default(),
            preview: Default::default(),
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
}

#[tauri::command]
fn app_info(state: State<'_, App>) -> AppInfo {
    AppInfo {
        remote_video_url: state.frames.url(Stream::Remote),
        local_video_url: state.frames.url(Stream::Local),
        embedded_server: state.embedded.base_url(),
        version: env!("CARGO_PKG_VERSION"),
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
fn start_preview(state: State<'_, App>, video: String) -> Result<(), String> {
    let source = confer_media::source::open(&video).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::clone(&state.frames);
    let stopped = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("confer-preview".into())
        .spawn(move || {
            let capture = confer_media::capture::Capture::start_wall_clock(source);
            while !stopped.load(Ordering::Relaxed) {
                if let Some(frame) = capture.next(Duration::from_millis(200)) {
                    frames.publish(Stream::Local, &frame);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    // Replacing the old preview stops it.
    *state.preview.lock().unwrap_or_else(|e| e.into_inner()) = Some(Preview { stop });
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

/// The address this machine reaches `server` from (no packet is sent): ICE gathers there.
fn route_to(server: &str) -> IpAddr {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Ok((_, authority)) = split_server(server) else {
        return loopback;
    };
    let Some(addr) = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .ok()
        .and_then(|mut a| a.next())
    else {
        return loopback;
    };
    if addr.ip().is_loopback() {
        return loopback;
    }
    std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(addr).and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(loopback)
}

fn call_config(settings: &Settings, server: &str, url: String, token: String) -> CallConfig {
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
        url,
        token,
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
        bind_ip: route_to(server),
        auto_admit: false,
        relay_only: settings.relay_only,
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
    state
        .preview
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let call = CallHandle::join(config).await.map_err(|e| e.to_string())?;
    let app = app.clone();
    *session = Some(Session::start(
        call,
        Arc::clone(&state.frames),
        move |event| {
            let _ = app.emit(CALL_EVENT, event);
        },
    ));
    Ok(())
}

#[tauri::command]
async fn start_call<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, App>,
    settings: Settings,
) -> Result<Started, String> {
    settings.validate()?;
    let (server, api_key) = if settings.server_url.is_empty() {
        (
            state.embedded.base_url(),
            state.embedded.handle.api_key().to_owned(),
        )
    } else {
        (settings.server_url.clone(), settings.api_key.clone())
    };
    let name = Some(settings.display_name.trim()).filter(|n| !n.is_empty());
    let room = confer_call::rooms::create_room(&server, &api_key, name).await?;
    let host = Link::for_token(&server, &room.room, &room.host_token)?;
    let config = call_config(&settings, &server, host.ws_url(), room.host_token.clone());
    begin(&app, &state, config).await?;
    Ok(Started {
        invite_link: room.guest_url,
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
    let config = call_config(&settings, &server, link.ws_url(), link.token.clone());
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
