//! The window comes back where, and as large as, it was left. tauri-plugin-window-state keeps
//! the geometry (in `.window-state.json`, next to settings.json) and writes it at a clean exit;
//! here it is also written once the window has stopped moving or resizing for a moment, so a
//! crash, a kill or a logout loses nothing.

use std::sync::Arc;
use std::time::Duration;

use tauri::{AppHandle, Manager, Runtime, WindowEvent};
use tauri_plugin_window_state::{AppHandleExt, StateFlags};

/// How long the window must stay still before its geometry is written.
const SETTLE: Duration = Duration::from_millis(500);

/// Size, position, maximized and full screen; not visibility (a window closed while hidden
/// must not come back hidden) nor decorations (the app sets them).
fn flags() -> StateFlags {
    StateFlags::SIZE | StateFlags::POSITION | StateFlags::MAXIMIZED | StateFlags::FULLSCREEN
}

/// The plugin, restoring and tracking [`flags`].
pub(crate) fn plugin<R: Runtime>() -> tauri::plugin::TauriPlugin<R> {
    tauri_plugin_window_state::Builder::new()
        .with_state_flags(flags())
        .build()
}

/// Wakes the writer on every move and resize.
struct Changed(Arc<tokio::sync::Notify>);

/// Starts the writer: after each burst of moves and resizes, once the window has been still
/// for [`SETTLE`], the geometry goes to disk.
pub(crate) fn save_when_settled<R: Runtime>(app: &AppHandle<R>) {
    let changed = Arc::new(tokio::sync::Notify::new());
    app.manage(Changed(Arc::clone(&changed)));
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            changed.notified().await;
            while tokio::time::timeout(SETTLE, changed.notified())
                .await
                .is_ok()
            {}
            let app = app.clone();
            let saved = tokio::task::spawn_blocking(move || app.save_window_state(flags())).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!("the window's size and place were not saved: {e}");
            }
        }
    });
}

/// For `Builder::on_window_event`: a move or a resize wakes the writer.
pub(crate) fn on_event<R: Runtime>(window: &tauri::Window<R>, event: &WindowEvent) {
    if matches!(event, WindowEvent::Moved(_) | WindowEvent::Resized(_))
        && let Some(changed) = window.try_state::<Changed>()
    {
        changed.0.notify_one();
    }
}
