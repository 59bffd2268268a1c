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
    tls_port: Option<u16>,
    secret: String,
    dir: PathBuf,
}

/// How clients may reach it. The relayed leg, from the server to the other peer, is UDP
/// whatever this says.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    /// No UDP listener: as seen from a network that blocks UDP, only TCP (and TLS) get through.
    pub no_udp: bool,
    /// TLS too, with this certificate chain and key (PEM), on a port of its own.
    pub tls: Option<(String, String)>,
}

impl Listeners {
    /// TCP only, as a network that blocks UDP sees the server.
    pub fn tcp_only() -> Self {
        Self {
            no_udp: true,
            tls: None,
        }
    }
}

/// A STUN binding request: type 0x0001, length 0, the magic cookie, a transaction id.
fn binding_request() -> Vec<u8> {
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"confer-ready");
    request
}

/// A free port on loopback (coturn cannot listen on port 0: take one and hand it over).
fn free_port() -> std::io::Result<u16> {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = udp.local_addr()?.port();
    // Free for TCP as well (coturn listens on both).
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    Ok(port)
}

impl Coturn {
    /// Starts turnserver on 127.0.0.1 with `secret` as its `static-auth-secret`, relaying on
    /// 127.0.0.1, and waits until it answers STUN.
    pub fn start(secret: &str) -> std::io::Result<Self> {
        Self::start_with(secret, &Listeners::default())
    }

    /// As [`Coturn::start`], listening as `listeners` says.
    pub fn start_with(secret: &str, listeners: &Listeners) -> std::io::Result<Self> {
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("confer-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("turnserver.log"))?;
        let mut args = vec![
            "-n".to_owned(), // no configuration file: everything is on this line
            "--listening-ip=127.0.0.1".to_owned(),
            format!("--listening-port={port}"),
            "--relay-ip=127.0.0.1".to_owned(),
            "--use-auth-secret".to_owned(),
            format!("--static-auth-secret={secret}"),
            "--realm=confer.test".to_owned(),
            "--no-dtls".to_owned(),
            "--no-cli".to_owned(),
            // The peers are on loopback too; never in production.
            "--allow-loopback-peers".to_owned(),
            "--log-file=stdout".to_owned(),
            "--simple-log".to_owned(),
            format!("--db={}", dir.join("turndb").display()),
            format!("--pidfile={}", dir.join("turnserver.pid").display()),
        ];
        if listeners.no_udp {
            args.push("--no-udp".into());
        }
        let tls_port = match &listeners.tls {
            Some((cert, key)) => {
                let tls_port = free_port()?;
                let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
                std::fs::write(&cert_path, cert)?;
                std::fs::write(&key_path, key)?;
                args.extend([
                    format!("--tls-listening-port={tls_port}"),
                    format!("--cert={}", cert_path.display()),
                    format!("--pkey={}", key_path.display()),
                ]);
                Some(tls_port)
            }
            None => {
                args.push("--no-tls".into());
                None
            }
        };
        let child = Command::new("turnserver")
            .args(&args)
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
            tls_port,
            secret: secret.to_owned(),
            dir,
        };
        if listeners.no_udp {
            server.wait_tcp_ready()?;
        } else {
            server.wait_ready()?;
        }
        Ok(server)
    }

    /// Sends a STUN binding request over TCP until one is answered (at most 10 s).
    fn wait_tcp_ready(&self) -> std::io::Result<()> {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(10);
        let request = binding_request();
        while Instant::now() < deadline {
            if let Ok(mut tcp) =
                std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
            {
                tcp.set_read_timeout(Some(Duration::from_millis(500)))?;
                let mut answer = [0u8; 20];
                if tcp.write_all(&request).is_ok()
                    && tcp.read_exact(&mut answer).is_ok()
                    && answer[..2] == [0x01, 0x01]
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "turnserver did not answer STUN over TCP within 10 s; log: {}",
                self.log()
            ),
        ))
    }

    /// Sends STUN binding requests until one is answered (at most 10 s).
    fn wait_ready(&self) -> std::io::Result<()> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let request = binding_request();
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

    /// Its URL for TURN over TCP.
    pub fn turn_tcp_url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=tcp", self.port)
    }

    /// Its URL for TURN over TLS, when it listens for TLS.
    pub fn turns_url(&self) -> Option<String> {
        self.tls_port
            .map(|p| format!("turns:127.0.0.1:{p}?transport=tcp"))
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
