//! Shared harness for the integration tests and the load benchmark: a real server on loopback
//! port 0, real WebSocket clients, and a minimal HTTP/1.1 client. Nothing is mocked.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use confer_protocol::{
    ClientMessage, CreateRoomResponse, Hello, PROTOCOL_VERSION, ServerMessage, SignalPayload,
    Welcome,
};
use confer_signal::{Config, Server, ServerHandle};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for any one expected event before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server running in this process.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(Config::loopback()).await
    }

    pub async fn with(config: Config) -> Self {
        let server = Server::bind(config).await.expect("bind");
        let handle = server.handle();
        let addr = server.local_addr();
        let task = tokio::spawn(server.serve());
        Self { handle, addr, task }
    }

    pub fn ws_url(&self) -> String {
        self.handle.ws_url()
    }

    /// `POST /v1/rooms` with the server's API key.
    pub async fn create_room(&self, body: Value) -> CreateRoomResponse {
        let auth = format!("Bearer {}", self.handle.api_key());
        let (status, text) = http(
            self.addr,
            "POST",
            "/v1/rooms",
            &[("Authorization", auth.as_str())],
            &body.to_string(),
        )
        .await;
        assert_eq!(status, 201, "create room: {text}");
        serde_json::from_str(&text).expect("room response")
    }

    /// Stops the server and waits for `serve` to return.
    pub async fn stop(self) {
        self.handle.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("serve returned")
            .expect("serve did not panic");
    }

    /// Current value of a metric line prefix (`name{labels}`), summed.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let (_, text) = http(self.addr, "GET", "/metrics", &[], "").await;
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    http_on(&mut stream, &addr.to_string(), method, path, headers, body).await
}

pub async fn http_on<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("http response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Bodies here are small; undo chunked encoding if the server used it.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A real WebSocket client speaking the protocol.
pub struct Client {
    pub ws: Ws,
    pub welcome: Option<Welcome>,
    /// Highest `seq` seen.
    pub last_seq: u64,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Self {
            ws,
            welcome: None,
            last_seq: 0,
        }
    }

    /// Connects with extra request headers (for Origin checks); returns the HTTP error status
    /// if the upgrade was refused.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Self, u16> {
        let mut req = url.into_client_request().expect("request");
        for (k, v) in headers {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("header"),
                v.parse().expect("value"),
            );
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Self {
                ws,
                welcome: None,
                last_seq: 0,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("connect: {e}"),
        }
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        let text = serde_json::to_string(msg).expect("serialize");
        self.send_text(&text).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    pub async fn hello(&mut self, token: &str) -> ServerMessage {
        self.send(&hello(token, None, None)).await;
        self.recv().await
    }

    /// Hello and expect a welcome.
    pub async fn join(url: &str, token: &str) -> Self {
        let mut c = Self::connect(url).await;
        match c.hello(token).await {
            ServerMessage::Welcome(_) => c,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Next server message (text frames only), failing after [`WAIT`].
    pub async fn recv(&mut self) -> ServerMessage {
        self.try_recv(WAIT)
            .await
            .unwrap_or_else(|e| panic!("no message: {e}"))
    }

    pub async fn try_recv(&mut self, wait: Duration) -> Result<ServerMessage, String> {
        // One deadline for the whole wait: pings and pongs must not extend it.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| "timed out".to_owned())?;
            match frame {
                Some(Ok(Message::Text(t))) => {
                    let msg: ServerMessage = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("malformed server message {t}: {e}"));
                    assert_ne!(msg, ServerMessage::Unknown, "unknown type in {t}");
                    if let Some(seq) = msg.seq() {
                        assert!(
                            seq > self.last_seq,
                            "seq went from {} to {seq}",
                            self.last_seq
                        );
                        self.last_seq = seq;
                    }
                    if let ServerMessage::Welcome(w) = &msg {
                        self.welcome = Some(w.clone());
                    }
                    return Ok(msg);
                }
                Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("error: {e}")),
                None => return Err("ended".into()),
            }
        }
    }

    /// Receives until `pred` matches; panics on close or timeout.
    pub async fn recv_until(&mut self, pred: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self
                .try_recv(left)
                .await
                .unwrap_or_else(|e| panic!("no matching message: {e}"));
            if pred(&msg) {
                return msg;
            }
        }
    }

    /// Waits for the server's close frame (skipping messages); returns it.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection not closed in time"),
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }

    pub fn peer(&self) -> String {
        self.welcome.as_ref().expect("welcomed").peer.clone()
    }

    pub fn resume_secret(&self) -> String {
        self.welcome.as_ref().expect("welcomed").resume.clone()
    }

    pub async fn signal(&mut self, payload: Value) {
        self.send(&ClientMessage::Signal {
            payload: as_payload(payload),
        })
        .await;
    }
}

pub fn hello(token: &str, resume: Option<String>, last_seq: Option<u64>) -> ClientMessage {
    ClientMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        token: token.to_owned(),
        resume,
        last_seq,
        name: None,
    })
}

pub fn as_payload(v: Value) -> SignalPayload {
    match v {
        Value::Object(m) => SignalPayload::from_object(m),
        other => panic!("payloads are objects, not {other}"),
    }
}

/// The error code of an `error` message, or panic.
pub fn error_code(msg: &ServerMessage) -> confer_protocol::ErrorCode {
    match msg {
        ServerMessage::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A room with its host and guest admitted, both past `call-ready`.
pub struct Call {
    pub room: CreateRoomResponse,
    pub host: Client,
    pub guest: Client,
    pub host_initiates: bool,
}

/// Creates a room, joins host and guest, admits the guest and waits for `call-ready`.
pub async fn call(server: &TestServer) -> Call {
    let room = server.create_room(json!({})).await;
    let url = server.ws_url();
    let mut host = Client::join(&url, &room.host_token).await;
    let mut guest = Client::join(&url, &room.guest_token).await;
    let knock = host.recv().await;
    let ServerMessage::Knock { peer, .. } = knock else {
        panic!("expected knock, got {knock:?}")
    };
    host.send(&ClientMessage::Admit { peer }).await;
    guest
        .recv_until(|m| matches!(m, ServerMessage::CallReady { .. }))
        .await;
    let ready = host
        .recv_until(|m| matches!(m, ServerMessage::CallReady { .. }))
        .await;
    let host_initiates = matches!(
        ready,
        ServerMessage::CallReady {
            initiator: true,
            ..
        }
    );
    Call {
        room,
        host,
        guest,
        host_initiates,
    }
}
