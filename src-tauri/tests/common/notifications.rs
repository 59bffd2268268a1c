//! A stand-in for a desktop's notification service, which this machine (Xvfb, no desktop
//! session) has none of: a private session bus (Debian's dbus-daemon, started here) with this
//! test's own `org.freedesktop.Notifications` on it, keeping every notification it is asked to
//! show. The app talks to it exactly as it would to GNOME's or KDE's.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::process::Started;

/// A notification as shown: its summary and body.
pub type Shown = (String, String);

struct Service {
    shown: Arc<Mutex<Vec<Shown>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Service {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().unwrap();
        shown.push((summary, body));
        shown.len() as u32
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "confer-test".into(),
            "confer".into(),
            "0".into(),
            "1.2".into(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

/// The bus and the service on it, for as long as this lives.
pub struct Notifications {
    /// `DBUS_SESSION_BUS_ADDRESS` for the app.
    pub address: String,
    shown: Arc<Mutex<Vec<Shown>>>,
    _connection: zbus::Connection,
    _runtime: tokio::runtime::Runtime,
    _bus: Started,
}

impl Notifications {
    pub fn start() -> Self {
        let mut bus = Started::spawn(
            Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
            "dbus-daemon",
        );
        let mut address = String::new();
        BufReader::new(bus.0.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("dbus-daemon prints its address");
        let address = address.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon gave no address");
        // One worker of its own, so the service answers whatever the test thread does.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let service = Service {
            shown: Arc::clone(&shown),
        };
        let connection = runtime
            .block_on(async {
                zbus::connection::Builder::address(address.as_str())
                    .name("org.freedesktop.Notifications")
                    .serve_at("/org/freedesktop/Notifications", service)
                    .build()
                    .await
            })
            .expect("the stand-in notification service is on the bus");
        Self {
            address,
            shown,
            _connection: connection,
            _runtime: runtime,
            _bus: bus,
        }
    }

    /// Waits up to `limit` for a notification that `matches`.
    pub fn wait_for(
        &self,
        matches: impl Fn(&Shown) -> bool,
        limit: Duration,
    ) -> Result<Shown, String> {
        let deadline = Instant::now() + limit;
        loop {
            let shown = self.shown.lock().unwrap();
            if let Some(found) = shown.iter().find(|s| matches(s)) {
                return Ok(found.clone());
            }
            if Instant::now() >= deadline {
                return Err(format!("not within {limit:?}; shown: {:?}", *shown));
            }
            drop(shown);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every notification shown so far.
    pub fn shown(&self) -> Vec<Shown> {
        self.shown.lock().unwrap().clone()
    }
}
