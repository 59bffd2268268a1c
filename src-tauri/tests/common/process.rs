//! Processes the desktop test and bench start: each in its own process group, stopped with
//! everything it started when dropped; a free loopback port; a virtual screen.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// A process we started in its own process group, stopped with everything it started (by
/// the group's id) when dropped, however the test or bench ends.
pub struct Started(pub Child);

impl Started {
    /// Spawns `command` in a process group of its own.
    pub fn spawn(command: &mut Command, what: &str) -> Self {
        Self(
            command
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("{what} does not run ({e}); scripts/setup installs it")),
        )
    }

    /// Its PID (also its process group's id).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Xvfb on a display number it picks itself (`-displayfd`); returns it and the display.
pub fn start_xvfb() -> (Started, String) {
    let mut xvfb = Started::spawn(
        Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        "Xvfb",
    );
    let mut line = String::new();
    BufReader::new(xvfb.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("Xvfb prints its display");
    (xvfb, format!(":{}", line.trim()))
}

/// Waits (up to 10 s) until something listens on `port`.
pub fn wait_listening(port: u16) -> bool {
    (0..200).any(|_| {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        }
    })
}
