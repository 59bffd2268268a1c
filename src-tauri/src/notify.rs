//! A desktop notification when someone knocks while Confer is not in front, through the
//! freedesktop notification service on the session bus (notify-rust, over zbus on tokio).
//! Where there is none (no desktop session) the knock still shows in the window, which asks
//! for attention; the failure is logged.

/// What the notification says about a knock: who, when they gave a name.
pub(crate) fn knock_text(name: Option<&str>) -> (String, String) {
    let who = name.map(str::trim).filter(|n| !n.is_empty());
    (
        match who {
            Some(name) => format!("{name} is waiting to join"),
            None => "Someone is waiting to join".to_owned(),
        },
        "Open Confer to let them in or turn them away.".to_owned(),
    )
}

/// Shows the knock's notification (in the background; a failure is only logged).
pub(crate) fn knock(name: Option<&str>) {
    let (summary, body) = knock_text(name);
    tauri::async_runtime::spawn(async move {
        let shown = notify_rust::Notification::new()
            .appname("Confer")
            .summary(&summary)
            .body(&body)
            .icon("confer-desktop")
            .urgency(notify_rust::Urgency::Critical)
            .show_async()
            .await;
        if let Err(e) = shown {
            tracing::warn!("no desktop notification for the knock: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::knock_text;

    #[test]
    fn the_knock_names_who_waits_when_they_gave_a_name() {
        assert_eq!(knock_text(Some("Pat")).0, "Pat is waiting to join");
        assert_eq!(knock_text(Some("  ")).0, "Someone is waiting to join");
        assert_eq!(knock_text(None).0, "Someone is waiting to join");
    }
}
