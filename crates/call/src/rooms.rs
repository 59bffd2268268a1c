//! Room creation on a signaling server (`confer host`, and the app hosting a call).

use crate::link::split_server;
use crate::tls::Trust;
use confer_protocol::{CreateRoomRequest, CreateRoomResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `POST /v1/rooms` on `server` (`http://` or `https://`, whose certificate is checked as
/// `trust` says).
pub async fn create_room(
    server: &str,
    api_key: &str,
    host_name: Option<&str>,
    trust: &Trust,
) -> Result<CreateRoomResponse, String> {
    let (secure, authority) = split_server(server)?;
    let body = serde_json::to_string(&CreateRoomRequest {
        host_name: host_name.map(str::to_owned),
        ..Default::default()
    })
    .expect("request serializes");
    let mut stream = crate::tls::connect_signaling(authority, secure, trust)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    let request = format!(
        "POST /v1/rooms HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {api_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{server}: not an HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{server}: not an HTTP answer"))?;
    match status {
        201 => serde_json::from_str(body).map_err(|e| format!("{server}: unexpected answer: {e}")),
        401 => Err(format!("{server} refused the API key")),
        _ => Err(format!("{server} answered {status}: {}", body.trim())),
    }
}
