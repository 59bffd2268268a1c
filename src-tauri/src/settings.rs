//! The user's settings, in `settings.json` in the app's config directory. Nothing about calls
//! (who, when, chat, files) is stored: only how the app should behave.

use std::path::Path;

/// What the settings screen changes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Settings {
    /// The name shown to the other person.
    pub(crate) display_name: String,
    /// A signaling server to use instead of the embedded one (`http(s)://host:port`); empty:
    /// the embedded server.
    pub(crate) server_url: String,
    /// The API key of that server (room creation).
    pub(crate) api_key: String,
    /// Media only through TURN: the other side never learns this machine's addresses.
    pub(crate) relay_only: bool,
    /// Calls hosted on the embedded server can be joined from this network (the server also
    /// listens on this computer's network address); off: from this computer only.
    pub(crate) lan_hosting: bool,
    /// `vp8` or `h264`.
    pub(crate) preferred_codec: String,
    /// Acoustic echo cancellation.
    pub(crate) echo_cancellation: bool,
    /// Noise suppression.
    pub(crate) noise_suppression: bool,
    /// Automatic gain.
    pub(crate) auto_gain: bool,
    /// Send at most 300 kbit/s of video.
    pub(crate) low_bandwidth: bool,
    /// `system`, `light` or `dark`.
    pub(crate) theme: String,
    /// Camera (`camera:<id>`, `pattern:WxH`, `file:…`); empty: the first camera, or the test
    /// pattern when there is none.
    pub(crate) video: String,
    /// Microphone (`mic`, `mic:<device>`, `tone`, `file:…`); empty: the default microphone.
    pub(crate) audio: String,
    /// Speaker device; empty: the system default; `none`: play nothing.
    pub(crate) speaker: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            display_name: String::new(),
            server_url: String::new(),
            api_key: String::new(),
            relay_only: false,
            lan_hosting: false,
            preferred_codec: "vp8".into(),
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain: true,
            low_bandwidth: false,
            theme: "system".into(),
            video: String::new(),
            audio: String::new(),
            speaker: String::new(),
        }
    }
}

impl Settings {
    /// Checks what the user typed; the message says what is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.server_url.is_empty() {
            confer_call::link::split_server(&self.server_url)?;
        }
        if !matches!(self.preferred_codec.as_str(), "vp8" | "h264") {
            return Err(format!(
                "unknown codec {:?}: vp8 or h264",
                self.preferred_codec
            ));
        }
        if !matches!(self.theme.as_str(), "system" | "light" | "dark") {
            return Err(format!("unknown theme {:?}", self.theme));
        }
        if self.display_name.chars().count() > 64 {
            return Err("a display name holds at most 64 characters".into());
        }
        Ok(())
    }

    /// Reads `path`; a missing file gives the defaults, a broken one an error that names it
    /// (the file is left as it is).
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not valid settings: {e}", path.display())),
        }
    }

    /// Writes `path` (through a temporary file, so a crash never leaves half a file).
    pub(crate) fn save(&self, path: &Path) -> Result<(), String> {
        self.validate()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self).expect("settings serialize");
        std::fs::write(&tmp, json).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("confer-settings-{}", std::process::id()));
        let path = dir.join("settings.json");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let changed = Settings {
            display_name: "Dr. Ada".into(),
            relay_only: true,
            theme: "dark".into(),
            ..Settings::default()
        };
        changed.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), changed);

        // Fields added later take their defaults; a broken file is an error, left untouched.
        std::fs::write(&path, br#"{"displayName":"Pat"}"#).unwrap();
        assert_eq!(Settings::load(&path).unwrap().preferred_codec, "vp8");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(
            Settings::load(&path)
                .unwrap_err()
                .contains("not valid settings")
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"{not json");

        let bad = Settings {
            server_url: "ftp://x".into(),
            ..Settings::default()
        };
        assert!(bad.save(&path).unwrap_err().contains("http://"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
