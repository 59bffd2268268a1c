//! What a participant asks a signaling server over HTTP: a room (`confer host`, and the app
//! hosting a call) and whether it answers (the app's pre-call check).

use std::time::{Duration, Instant};

use crate::link::split_server;
use crate::tls::Trust;
use confer_protocol::{CreateRoomRequest, CreateRoomResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a request may take, connection and TLS included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request to `server` (`http://` or `https://`, whose certificate is checked as
/// `trust` says): the status and the body.
async fn request(
    server: &str,
    trust: &Trust,
    head: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let (secure, authority) = split_server(server)?;
    let exchange = async {
        let mut stream = crate::tls::connect_signaling(authority, secure, trust)
            .await
            .map_err(|e| format!("cannot reach {server}: {e}"))?;
        let request = format!(
            "{head}\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{server} did not answer within 10 s"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{server}: not an HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{server}: not an HTTP answer"))?;
    Ok((status, body.to_owned()))
}

/// `POST /v1/rooms` on `server`.
pub async fn create_room(
    server: &str,
    api_key: &str,
    host_name: Option<&str>,
    trust: &Trust,
) -> Result<CreateRoomResponse, String> {
    let body = serde_json::to_string(&CreateRoomRequest {
        host_name: host_name.map(str::to_owned),
        ..Default::default()
    })
    .expect("request serializes");
    let head = format!(
        "POST /v1/rooms HTTP/1.1\r\nAuthorization: Bearer {api_key}\r\n\
         Content-Type: application/json"
    );
    let (status, body) = request(server, trust, &head, &body).await?;
    match status {
        201 => serde_json::from_str(&body).map_err(|e| format!("{server}: unexpected answer: {e}")),
        401 => Err(format!("{server} refused the API key")),
        _ => Err(format!("{server} answered {status}: {}", body.trim())),
    }
}

/// Whether `server` answers as a Confer signaling server does (`GET /healthz`), and how long
/// the answer took, connection and TLS included.
pub async fn check(server: &str, trust: &Trust) -> Result<Duration, String> {
    let started = Instant::now();
    let (status, _) = request(server, trust, "GET /healthz HTTP/1.1", "").await?;
    match status {
        200 => Ok(started.elapsed()),
        503 => Err(format!("{server} is shutting down; try again in a moment")),
        _ => Err(format!(
            "{server} answered {status}: it does not look like a Confer server"
        )),
    }
}
