//! TURN over TCP and over TLS, for networks that let no UDP out (hotel and hospital guest
//! Wi-Fi, corporate firewalls that allow only web traffic on 443).
//!
//! webrtc-rs 0.21.1 allocates TURN relays over UDP only: it skips `turns:` URLs and
//! `?transport=tcp` ones (its issues #848 and #539). Rather than fork its TURN client, each such
//! server gets a small local bridge: a UDP socket on loopback that webrtc-rs talks to as if it
//! were the TURN server, and, per client socket, one TCP (or TLS) connection to the real server
//! carrying the same messages. TURN was designed for this (RFC 8656 §3.1, the client-to-server
//! leg over TCP or TLS, as Chromium does it): the messages are the same, only the framing on a
//! stream differs (ChannelData is padded to four bytes), and the relayed leg from the server to
//! the other peer stays UDP. The allocation belongs to the stream, so a bridge keeps one stream
//! per client address for as long as that client talks.
//!
//! The server's certificate is checked against the system's roots, plus any given in the call's
//! configuration (a private deployment's CA), for the name in the URL ([`crate::tls::Trust::roots`]).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use confer_protocol::IceServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

/// A TURN server reached over a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamServer {
    /// Host name or address, as in the URL (and as the certificate must name it).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS (`turns:`) or plain TCP.
    pub tls: bool,
}

impl StreamServer {
    /// The stream servers among TURN URLs: `turns:` (TLS, port 5349 by default) and
    /// `turn:…?transport=tcp` (port 3478). `None` for a UDP one, which webrtc-rs handles.
    pub fn parse(url: &str) -> Option<Self> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("turns:") {
            (true, rest)
        } else {
            (false, url.strip_prefix("turn:")?)
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let transport = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("transport="))
            .unwrap_or(if tls { "tcp" } else { "udp" });
        if !transport.eq_ignore_ascii_case("tcp") {
            return None;
        }
        let default_port = if tls { 5349 } else { 3478 };
        // `[v6]:port`, `host:port` or `host`.
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None => default_port,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, port.parse().ok()?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

/// The length of the TURN message a stream's next four bytes begin, and how many bytes it takes
/// on the stream: a STUN message (the two top bits 00) is 20 bytes of header and its length;
/// ChannelData (01) is 4 bytes and its length, padded to a multiple of four on a stream.
pub fn frame_len(header: [u8; 4]) -> io::Result<(usize, usize)> {
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] >> 6 {
        0b00 => Ok((20 + length, 20 + length)),
        0b01 => Ok((4 + length, (4 + length).next_multiple_of(4))),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the TURN server sent something that is neither STUN nor ChannelData \
                 (first byte {:#04x})",
                header[0]
            ),
        )),
    }
}

/// A datagram from webrtc-rs as it goes on the stream: ChannelData padded to four bytes.
pub fn to_stream(datagram: &[u8]) -> Vec<u8> {
    let mut out = datagram.to_vec();
    if datagram.first().is_some_and(|b| b >> 6 == 0b01) {
        out.resize(datagram.len().next_multiple_of(4), 0);
    }
    out
}

/// A running bridge; it stops (and closes its streams) when dropped.
#[derive(Debug)]
pub struct Bridge {
    local: SocketAddr,
    server: StreamServer,
    error: Failure,
    task: tokio::task::JoinHandle<()>,
}

/// Why the last stream to the server could not be opened.
type Failure = Arc<Mutex<Option<String>>>;

impl Bridge {
    /// The local UDP address webrtc-rs is pointed at.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The URL webrtc-rs is given in place of the stream server's.
    pub fn url(&self) -> String {
        format!("turn:{}?transport=udp", self.local)
    }

    /// The server it reaches.
    pub fn server(&self) -> &StreamServer {
        &self.server
    }

    /// Why the last stream to the server could not be opened, if it could not.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts a bridge to `server`; TLS with `tls`.
    pub async fn start(server: StreamServer, tls: Arc<ClientConfig>) -> io::Result<Self> {
        let socket = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let local = socket.local_addr()?;
        let error = Failure::default();
        let task = tokio::spawn(serve(
            socket,
            server.clone(),
            TlsConnector::from(tls),
            Arc::clone(&error),
        ));
        Ok(Self {
            local,
            server,
            error,
            task,
        })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Datagrams waiting for a stream that is still connecting are dropped past this many (TURN
/// retransmits its requests).
const BACKLOG: usize = 256;

async fn serve(socket: Arc<UdpSocket>, server: StreamServer, tls: TlsConnector, error: Failure) {
    let mut clients: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut streams = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!("TURN bridge: {e}");
                continue;
            }
        };
        let datagram = to_stream(&buf[..n]);
        if let Some(tx) = clients.get(&from)
            && !tx.is_closed()
        {
            let _ = tx.try_send(datagram);
            continue;
        }
        let (tx, rx) = mpsc::channel(BACKLOG);
        let _ = tx.try_send(datagram);
        clients.insert(from, tx);
        streams.spawn(client(
            Arc::clone(&socket),
            from,
            rx,
            server.clone(),
            tls.clone(),
            Arc::clone(&error),
        ));
        // Streams that ended are forgotten, so their clients get a new one.
        while streams.try_join_next().is_some() {}
        clients.retain(|_, tx| !tx.is_closed());
    }
}

/// One client socket's stream: connects, then carries datagrams both ways until either ends.
async fn client(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    rx: mpsc::Receiver<Vec<u8>>,
    server: StreamServer,
    tls: TlsConnector,
    error: Failure,
) {
    let fail = |why: String| {
        let why = format!(
            "TURN over {} to {}:{}: {why}",
            if server.tls { "TLS" } else { "TCP" },
            server.host,
            server.port
        );
        tracing::warn!("{why}");
        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    };
    let tcp = match TcpStream::connect((server.host.as_str(), server.port)).await {
        Ok(tcp) => tcp,
        Err(e) => return fail(format!("cannot connect: {e}")),
    };
    *error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let _ = tcp.set_nodelay(true);
    if !server.tls {
        let (read, write) = tokio::io::split(tcp);
        carry(socket, peer, rx, read, write).await;
        return;
    }
    let name = match ServerName::try_from(server.host.clone()) {
        Ok(name) => name,
        Err(e) => return fail(format!("not a server name: {e}")),
    };
    match tls.connect(name, tcp).await {
        Ok(stream) => {
            let (read, write) = tokio::io::split(stream);
            carry(socket, peer, rx, read, write).await;
        }
        Err(e) => fail(format!("the TLS handshake failed: {e}")),
    }
}

async fn carry(
    socket: Arc<UdpSocket>,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut read: impl AsyncRead + Unpin,
    mut write: impl AsyncWrite + Unpin,
) {
    let up = async {
        while let Some(bytes) = rx.recv().await {
            write.write_all(&bytes).await?;
        }
        io::Result::Ok(())
    };
    let down = async {
        let mut message = Vec::with_capacity(2048);
        loop {
            let mut header = [0u8; 4];
            read.read_exact(&mut header).await?;
            let (len, on_stream) = frame_len(header)?;
            message.clear();
            message.extend_from_slice(&header);
            message.resize(on_stream, 0);
            read.read_exact(&mut message[4..]).await?;
            socket.send_to(&message[..len], peer).await?;
        }
        #[allow(unreachable_code)]
        io::Result::Ok(())
    };
    let result = tokio::select! {
        r = up => r,
        r = down => r,
    };
    if let Err(e) = result
        && e.kind() != io::ErrorKind::UnexpectedEof
    {
        tracing::debug!("TURN bridge stream ended: {e}");
    }
}

/// Starts a bridge for every stream TURN server among `servers` and returns the list webrtc-rs
/// is given (each such URL replaced by its bridge's), with the bridges, which must live as long
/// as the peer connection.
pub async fn bridge_servers(
    servers: &[IceServer],
    trust: &crate::tls::Trust,
) -> io::Result<(Vec<IceServer>, Vec<Bridge>)> {
    let mut tls = None;
    let mut bridges = Vec::new();
    let mut out = Vec::with_capacity(servers.len());
    for server in servers {
        let mut urls = Vec::with_capacity(server.urls.len());
        for url in &server.urls {
            match StreamServer::parse(url) {
                Some(stream) => {
                    let config = match &tls {
                        Some(config) => Arc::clone(config),
                        None => Arc::clone(tls.insert(trust.roots()?)),
                    };
                    let bridge = Bridge::start(stream, config).await?;
                    urls.push(bridge.url());
                    bridges.push(bridge);
                }
                None => urls.push(url.clone()),
            }
        }
        out.push(IceServer {
            urls,
            ..server.clone()
        });
    }
    Ok((out, bridges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_recognised_and_udp_ones_left_alone() {
        let tcp = |host: &str, port, tls| {
            Some(StreamServer {
                host: host.into(),
                port,
                tls,
            })
        };
        assert_eq!(
            StreamServer::parse("turn:turn.example.org:443?transport=tcp"),
            tcp("turn.example.org", 443, false)
        );
        assert_eq!(
            StreamServer::parse("turns:turn.example.org"),
            tcp("turn.example.org", 5349, true)
        );
        assert_eq!(
            StreamServer::parse("turns:[2001:db8::1]:443?transport=tcp"),
            tcp("2001:db8::1", 443, true)
        );
        assert_eq!(
            StreamServer::parse("turn:10.0.0.1?transport=tcp"),
            tcp("10.0.0.1", 3478, false)
        );
        assert_eq!(StreamServer::parse("turn:10.0.0.1:3478"), None);
        assert_eq!(StreamServer::parse("turn:10.0.0.1?transport=udp"), None);
        assert_eq!(StreamServer::parse("stun:10.0.0.1"), None);
        assert_eq!(StreamServer::parse("turn:?transport=tcp"), None);
        assert_eq!(StreamServer::parse("turn:h:notaport?transport=tcp"), None);
    }

    #[test]
    fn stream_framing_pads_channel_data_only() {
        // A binding request with an 8-byte attribute: 28 bytes, no padding.
        let stun = [0x00, 0x01, 0x00, 0x08];
        assert_eq!(frame_len(stun).unwrap(), (28, 28));
        // ChannelData on channel 0x4000 with 5 bytes: 9, padded to 12 on the stream.
        let data = [0x40, 0x00, 0x00, 0x05];
        assert_eq!(frame_len(data).unwrap(), (9, 12));
        assert_eq!(frame_len([0x40, 0x01, 0x00, 0x08]).unwrap(), (12, 12));
        let garbage = frame_len([0xc0, 0, 0, 0]).unwrap_err();
        assert!(garbage.to_string().contains("neither STUN nor ChannelData"));

        let padded = to_stream(&[0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5]);
        assert_eq!(padded, [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        let request = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        assert_eq!(to_stream(&request), request);
    }
}
