//! Just enough of the W3C WebDriver protocol to drive the app through WebKitWebDriver (the
//! native driver tauri-driver wraps; spoken to directly, as tauri-driver's proxy dropped
//! connections here): sessions, elements, clicks, scripts, screenshots.
//! Blocking HTTP/1.1 over std's TcpStream: the test needs no async runtime for this.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..line_end])
                .unwrap_or("0")
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// One WebDriver command; returns the JSON `value` of the answer, or the WebDriver error.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let answer = exchange(port, method, path, body)?;
    if answer.is_empty() {
        return Err(format!(
            "{method} {path}: the driver closed without an answer"
        ));
    }
    parse_answer(method, path, &answer)
}

fn exchange(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Vec<u8>, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("WebKitWebDriver: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout set");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(format!("{head}{body}").as_bytes())
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("{method} {path}: {e}"))?;
    Ok(answer)
}

fn parse_answer(method: &str, path: &str, answer: &[u8]) -> Result<Value, String> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: not HTTP"))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
    let raw = &answer[split + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    let json: Value = serde_json::from_slice(&body).map_err(|e| {
        format!(
            "{method} {path}: {e}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    let value = json.get("value").cloned().unwrap_or(Value::Null);
    if value.get("error").is_some() {
        return Err(format!(
            "{method} {path}: {}: {}",
            value["error"],
            value["message"].as_str().unwrap_or_default()
        ));
    }
    Ok(value)
}

/// A window rect answer as x, y, width, height.
fn rect(value: &Value) -> Result<[i64; 4], String> {
    let get = |k: &str| value[k].as_f64().map(|v| v.round() as i64);
    match (get("x"), get("y"), get("width"), get("height")) {
        (Some(x), Some(y), Some(w), Some(h)) => Ok([x, y, w, h]),
        _ => Err(format!("not a window rect: {value}")),
    }
}

/// A WebDriver session: one running app.
#[derive(Debug)]
pub struct Session {
    port: u16,
    id: String,
}

impl Session {
    /// Starts `application` through the WebKitWebDriver on `port` (the capabilities
    /// tauri-driver would have made of `tauri:options`).
    pub fn start(port: u16, application: &str) -> Result<Self, String> {
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "webkitgtk:browserOptions": {"binary": application, "args": []},
            }}
        });
        let value = request(port, "POST", "/session", Some(&caps))?;
        let id = value["sessionId"]
            .as_str()
            .ok_or("no session id")?
            .to_owned();
        Ok(Self { port, id })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        request(
            self.port,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_ref(),
        )
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn script(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The element matching a CSS selector.
    pub fn find(&self, css: &str) -> Result<String, String> {
        let value = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        value[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element {css}: {value}"))
    }

    /// Clicks the element matching `css`.
    pub fn click(&self, css: &str) -> Result<(), String> {
        let id = self.find(css)?;
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .map(drop)
    }

    /// Fills the input matching `css` with `text`, as typing would leave it (value set, then
    /// an `input` event). WebDriver's own key typing is not used: WebKitWebDriver under Xvfb
    /// without a window manager stalls on synthesized keys (seen here: the next screenshot
    /// never answers).
    pub fn fill(&self, css: &str, text: &str) -> Result<(), String> {
        let found = self.script(
            "const e = document.querySelector(arguments[0]);
             if (!e) return false;
             e.focus(); e.value = arguments[1];
             e.dispatchEvent(new Event('input', {bubbles: true}));
             return true",
            vec![json!(css), json!(text)],
        )?;
        if found != Value::Bool(true) {
            return Err(format!("no element {css}"));
        }
        Ok(())
    }

    /// Polls `script` (which returns a value, or null/false while not yet) until it is truthy,
    /// at most `limit`; returns that value.
    pub fn wait_for(&self, what: &str, script: &str, limit: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            // An error (a page still loading, an element not there yet) is one more "not yet".
            match self.script(script, vec![]) {
                Ok(Value::Null | Value::Bool(false)) => last = "null/false".into(),
                Ok(Value::String(s)) if s.is_empty() => last = "\"\"".into(),
                Ok(value) => return Ok(value),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{what}: not within {limit:?} (last answer: {last})"
        ))
    }

    /// The window's place and size: x, y, width, height.
    pub fn window_rect(&self) -> Result<[i64; 4], String> {
        rect(&self.call("GET", "/window/rect", None)?)
    }

    /// Moves and resizes the window; returns where it went.
    pub fn set_window_rect(&self, [x, y, width, height]: [i64; 4]) -> Result<[i64; 4], String> {
        let body = json!({"x": x, "y": y, "width": width, "height": height});
        rect(&self.call("POST", "/window/rect", Some(body))?)
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let value = self.call("GET", "/screenshot", None)?;
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().ok_or("no screenshot")?)
            .map_err(|e| e.to_string())
    }

    /// Ends the session (the app closes).
    pub fn end(self) -> Result<(), String> {
        self.call("DELETE", "", None).map(drop)
    }
}
