//! Firefox ESR (Debian's `firefox-esr`) headless, driven over WebDriver BiDi: the second,
//! independent browser the guest page is tested with. Fake camera and microphone come from
//! the profile's preferences (`media.navigator.streams.fake`), granted without a prompt.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Error, Result, Socket, devtools, rand_u64, round_trip, stop_group};

/// The binary: `$CONFER_FIREFOX`, or Debian's `firefox-esr`.
pub fn binary() -> String {
    std::env::var("CONFER_FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into())
}

/// Whether Firefox is installed.
pub fn available() -> bool {
    std::path::Path::new(&binary()).exists()
}

/// Preferences of every profile: fake devices without a prompt, nothing fetched from the
/// network (this machine refuses it, and Firefox would keep trying), no first-run pages.
const PREFS: &str = r#"
user_pref("media.navigator.streams.fake", true);
user_pref("media.navigator.permission.disabled", true);
user_pref("media.autoplay.default", 0);
user_pref("media.peerconnection.ice.loopback", true);
user_pref("media.peerconnection.ice.obfuscate_host_addresses", false);
user_pref("app.update.enabled", false);
user_pref("app.normandy.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("services.settings.server", "http://127.0.0.1:9/");
user_pref("extensions.update.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
"#;

/// A running headless Firefox with its one tab under control.
pub struct Firefox {
    child: Child,
    profile: PathBuf,
    context: String,
    /// The BiDi session's socket and the last command id (none until connected).
    socket: tokio::sync::Mutex<Option<(Socket, u64)>>,
}

impl std::fmt::Debug for Firefox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firefox")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Firefox {
    /// Starts Firefox headless, opens a BiDi session and loads `url` in its tab.
    pub async fn launch(url: &str) -> Result<Self> {
        let binary = binary();
        let start = |detail: String| Error::Start {
            binary: binary.clone(),
            detail,
        };
        let profile = std::env::temp_dir().join(format!(
            "confer-firefox-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&profile).map_err(|e| start(format!("profile: {e}")))?;
        std::fs::write(profile.join("user.js"), PREFS).map_err(|e| start(format!("prefs: {e}")))?;
        let mut child = {
            use std::os::unix::process::CommandExt;
            Command::new(&binary)
                .args([
                    "--headless",
                    "--no-remote",
                    "--remote-debugging-port",
                    "0",
                    "--profile",
                ])
                .arg(&profile)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                // Its own process group, stopped as a whole, as Chromium's.
                .process_group(0)
                .spawn()
                .map_err(|e| start(e.to_string()))?
        };
        // The BiDi address is printed on stderr; the rest of stderr is drained after it.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(|l| l.ok())
            {
                if let Some(addr) = line.split("WebDriver BiDi listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut firefox = Self {
            child,
            profile,
            context: String::new(),
            socket: tokio::sync::Mutex::new(None),
        };
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .map_err(devtools)?
            .map_err(|_| start("no WebDriver BiDi address within 30 s".into()))?;
        let (socket, _) = tokio_tungstenite::connect_async(format!("{addr}/session"))
            .await
            .map_err(devtools)?;
        *firefox.socket.get_mut() = Some((socket, 0));
        firefox
            .command("session.new", json!({ "capabilities": {} }))
            .await?;
        let tree = firefox
            .command("browsingContext.getTree", json!({}))
            .await?;
        firefox.context = tree["contexts"][0]["context"]
            .as_str()
            .ok_or_else(|| devtools("no browsing context"))?
            .to_owned();
        let context = firefox.context.clone();
        firefox
            .command(
                "browsingContext.navigate",
                json!({ "context": context, "url": url, "wait": "complete" }),
            )
            .await?;
        Ok(firefox)
    }

    /// One BiDi command; its result.
    async fn command(&self, method: &str, params: Value) -> Result<Value> {
        let mut guard = self.socket.lock().await;
        let (socket, next) = guard.as_mut().ok_or_else(|| devtools("not connected"))?;
        *next += 1;
        let id = *next;
        let reply = round_trip(socket, id, method, params)
            .await?
            .ok_or_else(|| devtools("the BiDi socket closed"))?;
        if reply["type"] == "error" {
            return Err(devtools(format!(
                "{}: {}",
                reply["error"], reply["message"]
            )));
        }
        Ok(reply["result"].clone())
    }

    /// Evaluates `expression` in the tab (a script: top-level declarations stay), awaiting it
    /// if it is a promise; its value as JSON. A thrown exception is an [`Error::Page`].
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        let result = self
            .command(
                "script.evaluate",
                json!({
                    "expression": expression,
                    "target": { "context": self.context },
                    "awaitPromise": true,
                    "resultOwnership": "none",
                    "serializationOptions": { "maxObjectDepth": 16 },
                }),
            )
            .await?;
        if result["type"] == "exception" {
            let details = &result["exceptionDetails"];
            let text = details["text"].as_str().unwrap_or("exception").to_owned();
            return Err(Error::Page(text));
        }
        Ok(from_remote(&result["result"]))
    }

    /// The browser's process id (its process group's too).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A BiDi remote value as JSON: primitives as themselves, arrays and objects recursively,
/// anything else (nodes, windows, functions, NaN) as null.
fn from_remote(v: &Value) -> Value {
    match v["type"].as_str() {
        Some("string" | "boolean") => v["value"].clone(),
        Some("number") => match &v["value"] {
            Value::Number(n) => Value::Number(n.clone()),
            _ => Value::Null, // NaN, ±Infinity, -0
        },
        Some("bigint") => v["value"].clone(),
        Some("array") => Value::Array(
            v["value"]
                .as_array()
                .map(|a| a.iter().map(from_remote).collect())
                .unwrap_or_default(),
        ),
        Some("object" | "map") => Value::Object(
            v["value"]
                .as_array()
                .map(|pairs| {
                    pairs
                        .iter()
                        .filter_map(|pair| {
                            let key = match &pair[0] {
                                Value::String(k) => k.clone(),
                                other => other["value"].as_str()?.to_owned(),
                            };
                            Some((key, from_remote(&pair[1])))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => Value::Null,
    }
}

impl Drop for Firefox {
    fn drop(&mut self) {
        stop_group(&mut self.child, &self.profile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_values_become_json() {
        let remote = json!({"type": "object", "value": [
            ["a", {"type": "number", "value": 1.5}],
            ["b", {"type": "array", "value": [{"type": "string", "value": "x"}, {"type": "null"}]}],
            ["c", {"type": "number", "value": "NaN"}],
            ["d", {"type": "boolean", "value": true}],
        ]});
        assert_eq!(
            from_remote(&remote),
            json!({"a": 1.5, "b": ["x", null], "c": null, "d": true})
        );
        assert_eq!(from_remote(&json!({"type": "undefined"})), Value::Null);
    }
}
