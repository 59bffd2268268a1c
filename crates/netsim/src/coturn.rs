//! A private coturn (Debian's `turnserver`) on loopback for relay tests, with REST
//! credentials (`use-auth-secret`) as confer-signal issues them. The harness owns the process
//! and stops exactly it.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running turnserver.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    port: u16,
    secret: String,
    dir: PathBuf,
}

impl Coturn {
    /// Starts turnserver on 127.0.0.1 with `secret` as its `static-auth-secret`, relaying on
    /// 127.0.0.1, and waits until it answers STUN.
    pub fn start(secret: &str) -> std::io::Result<Self> {
        // coturn cannot listen on port 0: take a free port and hand it over.
        let port = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("confer-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("turnserver.log"))?;
        let child = Command::new("turnserver")
            .args([
                "-n", // no configuration file: everything is on this line
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--relay-ip=127.0.0.1",
                "--use-auth-secret",
                &format!("--static-auth-secret={secret}"),
                "--realm=confer.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                // The peers are on loopback too; never in production.
                "--allow-loopback-peers",
                "--log-file=stdout",
                "--simple-log",
                &format!("--db={}", dir.join("turndb").display()),
                &format!("--pidfile={}", dir.join("turnserver.pid").display()),
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("turnserver (Debian's coturn; scripts/setup installs it): {e}"),
                )
            })?;
        let server = Self {
            child,
            port,
            secret: secret.to_owned(),
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Sends STUN binding requests until one is answered (at most 10 s).
    fn wait_ready(&self) -> std::io::Result<()> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        // A binding request: type 0x0001, length 0, the magic cookie, a transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"confer-ready");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            socket.send_to(&request, self.addr())?;
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 20
                && buf[..2] == [0x01, 0x01]
            {
                return Ok(());
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "turnserver did not answer STUN within 10 s; log: {}",
                std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
            ),
        ))
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Its TURN URL for confer-signal's `--turn-url` (UDP: webrtc-rs speaks TURN over UDP).
    pub fn turn_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// The shared secret, for confer-signal's `--turn-secret`.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// What turnserver logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
