//! Confer's desktop app: a thin Tauri 2 shell. The call is confer-call's, the video path to
//! the page is confer-frames' loopback socket, and by default the rooms live on a
//! confer-signal embedded in this process, so a call needs nothing deployed. Each Tauri
//! command is a short adapter; see `commands`.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
#![forbid(unsafe_code)]

mod commands;
mod events;
mod instance;
mod notify;
mod session;
mod settings;
mod window_state;

use std::sync::Arc;

use confer_frames::FrameServer;

/// Without a GPU, WebKit's accelerated compositing runs on the CPU (llvmpipe) and a moving
/// video costs it one and a half cores; with compositing off the same page takes a fifth of
/// one (measured here: 174% → 23% CPU for the web process showing the camera preview). So on
/// a machine without a GPU render node, the app starts itself again with compositing off,
/// unless `WEBKIT_DISABLE_COMPOSITING_MODE` already says what to do (0 keeps it on).
///
/// It also fixes malloc's threshold for giving a large block its own mapping at glibc's
/// default (128 KiB; `MALLOC_MMAP_THRESHOLD_`, unless set). Left to itself glibc raises the
/// threshold as large blocks are freed, after which video planes and frame-socket messages
/// (up to 1.4 MB each, dozens a second) are carved from per-thread arenas that keep what
/// they freed (docs/BENCHMARKS.md, sixth session). Planes are reused from confer-media's
/// pool, so the fixed threshold costs no CPU worth measuring.
fn with_the_environment_it_needs() {
    use std::os::unix::process::CommandExt;
    const COMPOSITING: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    const MMAP_THRESHOLD: &str = "MALLOC_MMAP_THRESHOLD_";
    let mut missing: Vec<(&str, &str)> = Vec::new();
    if std::env::var_os(COMPOSITING).is_none() && !has_gpu() {
        missing.push((COMPOSITING, "1"));
    }
    if std::env::var_os(MMAP_THRESHOLD).is_none() {
        missing.push((MMAP_THRESHOLD, "131072"));
    }
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // Only returns on failure: then the app runs as it is.
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .envs(missing)
        .exec();
    eprintln!("confer-desktop: could not restart with its environment: {error}");
}

/// Whether the machine has a GPU render node (else GL is Mesa's llvmpipe, on the CPU).
fn has_gpu() -> bool {
    std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// The app's identifier (tauri.conf.json), which names its config directory.
const IDENTIFIER: &str = "org.confer.desktop";

fn main() {
    with_the_environment_it_needs();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,webrtc=warn,webrtc_ice=warn,rtc=warn".into()),
        )
        .init();
    let link = commands::launch_link(std::env::args().skip(1));
    // One Confer per user: a second launch hands its link over and stops.
    let claimed =
        match instance::config_dir(IDENTIFIER).map(|dir| instance::claim(&dir, link.as_deref())) {
            Some(Ok(instance::Instance::Forwarded)) => {
                eprintln!("Confer is already running: it has been brought to the front.");
                return;
            }
            Some(Ok(instance::Instance::First(claimed))) => Some(claimed),
            Some(Err(e)) => {
                tracing::warn!("cannot tell whether Confer is already running: {e}");
                None
            }
            None => None,
        };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("confer-rt")
        .build()
        .expect("the async runtime starts");
    tauri::async_runtime::set(runtime.handle().clone());

    let (frames, embedded) = runtime.block_on(async {
        let frames = FrameServer::start()
            .await
            .expect("the frame socket binds on loopback");
        let embedded = commands::Embedded::start()
            .await
            .expect("the embedded signaling server binds on loopback");
        (frames, embedded)
    });
    tracing::info!(
        frames = %frames.local_addr(),
        signal = %embedded.base_url(),
        "confer-desktop starting"
    );

    let mut context = tauri::generate_context!();
    // The page may open exactly one socket besides Tauri's own IPC: this launch's frame socket.
    context.config_mut().app.security.csp =
        Some(commands::content_security_policy(frames.local_addr()));

    let drawing = commands::video_drawing(
        std::env::var("CONFER_VIDEO_DRAWING").ok().as_deref(),
        has_gpu(),
    );
    let state = commands::App::new(Arc::new(frames), embedded, link, drawing);
    tauri::Builder::default()
        .plugin(window_state::plugin())
        .on_window_event(window_state::on_event)
        .manage(state)
        .setup(move |app| {
            window_state::save_when_settled(app.handle());
            if let Some(claimed) = claimed {
                let app = app.handle().clone();
                claimed.serve(move |request| commands::another_launch(&app, request));
            }
            Ok(())
        })
        .invoke_handler(commands::handler())
        .run(context)
        .expect("the window opens");
}
