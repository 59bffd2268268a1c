//! A signaling proxy that puts a call on the relay: it stands between the participants and
//! confer-signal, passes every WebSocket message through, and in what the participants send
//! replaces each UDP ICE candidate's address with its relay front (TCP candidates are
//! dropped: the relay carries UDP). Neither peer needs to know: Confer peers and browsers
//! alike are impaired by pointing them at the proxy's URL instead of the server's.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::relay::{Relay, Side};

/// The proxy, serving until dropped.
#[derive(Debug)]
pub struct SignalProxy {
    addr: SocketAddr,
    path: String,
    task: tokio::task::JoinHandle<()>,
    seen: Seen,
}

/// Every ICE candidate line the participants sent, as they sent it, with the sender's side.
type Seen = Arc<Mutex<Vec<(Option<Side>, String)>>>;

impl Drop for SignalProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SignalProxy {
    /// Listens on 127.0.0.1 (port 0) and forwards to the signaling WebSocket `upstream`,
    /// routing candidates through `relay`.
    pub async fn start(upstream: &str, relay: Relay) -> std::io::Result<Self> {
        Self::serve(upstream, Some(relay)).await
    }

    /// A proxy that changes nothing and only records the candidates the participants send
    /// ([`SignalProxy::candidates`]): what the other side, or the server, learns about them.
    pub async fn observe(upstream: &str) -> std::io::Result<Self> {
        Self::serve(upstream, None).await
    }

    /// The candidate lines sent so far through this proxy, with the sender's side.
    pub fn candidates(&self) -> Vec<(Option<Side>, String)> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn serve(upstream: &str, relay: Option<Relay>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream = upstream.to_owned();
        let path = upstream
            .split("://")
            .nth(1)
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_else(|| "/".into());
        let seen = Seen::default();
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (upstream, relay, seen) =
                        (upstream.clone(), relay.clone(), Arc::clone(&seen));
                    tokio::spawn(async move {
                        let _ = connection(stream, &upstream, relay.as_ref(), &seen).await;
                    });
                }
            }
        });
        Ok(Self {
            addr,
            path,
            task,
            seen,
        })
    }

    /// The URL participants use instead of the server's.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

// tungstenite's handshake callback returns its HTTP response type as the error.
#[allow(clippy::result_large_err)]
async fn connection(
    stream: tokio::net::TcpStream,
    upstream: &str,
    relay: Option<&Relay>,
    seen: &Seen,
) -> Result<(), Error> {
    // Browsers send an Origin the server checks: pass it on.
    let mut origin = None;
    let client = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| {
        origin = req.headers().get("origin").cloned();
        Ok(resp)
    })
    .await?;
    let mut request = upstream.into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin);
    }
    let (server, _) = tokio_tungstenite::connect_async(request).await?;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();
    let up = async {
        let mut side = None;
        while let Some(Ok(msg)) = from_client.next().await {
            let msg = match msg {
                Message::Text(text) => match rewrite(&text, &mut side, relay, seen).await {
                    Some(text) => Message::text(text),
                    None => continue,
                },
                other => other,
            };
            if to_server.send(msg).await.is_err() {
                break;
            }
        }
        let _ = to_server.close().await;
    };
    let down = async {
        while let Some(Ok(msg)) = from_server.next().await {
            if to_client.send(msg).await.is_err() {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
    Ok(())
}

/// A client message with its candidates moved onto the relay (if there is one); `None` drops
/// it (a TCP candidate). `side` is learnt from the `hello` token's role. Candidates are
/// recorded in `seen` as they came.
async fn rewrite(
    text: &str,
    side: &mut Option<Side>,
    relay: Option<&Relay>,
    seen: &Seen,
) -> Option<String> {
    let Ok(mut msg) = serde_json::from_str::<Value>(text) else {
        return Some(text.to_owned());
    };
    match msg["type"].as_str() {
        Some("hello") => {
            *side = msg["token"].as_str().and_then(role_of);
            Some(text.to_owned())
        }
        Some("signal") => {
            let payload = &mut msg["payload"];
            let mut lines: Vec<String> = Vec::new();
            if let Some(line) = payload["candidate"]["candidate"].as_str() {
                lines.push(line.to_owned());
            }
            if let Some(sdp) = payload["sdp"].as_str() {
                lines.extend(
                    sdp.lines()
                        .filter_map(|l| l.strip_prefix("a="))
                        .filter(|l| l.starts_with("candidate:"))
                        .map(str::to_owned),
                );
            }
            seen.lock().unwrap_or_else(|e| e.into_inner()).extend(
                lines
                    .into_iter()
                    .filter(|l| !l.is_empty())
                    .map(|l| (*side, l)),
            );
            let (Some(owner), Some(relay)) = (*side, relay) else {
                return Some(text.to_owned());
            };
            if let Some(line) = payload["candidate"]["candidate"].as_str() {
                if line.is_empty() {
                    return Some(text.to_owned()); // end of candidates
                }
                let moved = move_candidate(line, owner, relay).await?;
                payload["candidate"]["candidate"] = Value::String(moved);
            }
            if let Some(sdp) = payload["sdp"].as_str() {
                let mut out = String::with_capacity(sdp.len());
                for line in sdp.split_inclusive("\r\n") {
                    match line.strip_prefix("a=") {
                        Some(c) if c.starts_with("candidate:") => {
                            if let Some(moved) = move_candidate(c.trim_end(), owner, relay).await {
                                out.push_str("a=");
                                out.push_str(&moved);
                                out.push_str("\r\n");
                            }
                        }
                        _ => out.push_str(line),
                    }
                }
                payload["sdp"] = Value::String(out);
            }
            Some(msg.to_string())
        }
        _ => Some(text.to_owned()),
    }
}

/// The room role in a token's claims (the proxy does not verify it; the server does).
fn role_of(token: &str) -> Option<Side> {
    let claims = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&json).ok()?;
    match claims["role"].as_str()? {
        "host" => Some(Side::Host),
        "guest" => Some(Side::Guest),
        _ => None,
    }
}

/// `candidate:<foundation> <component> <transport> <priority> <address> <port> typ …` with
/// the address and port of its relay front; `None` for anything but UDP.
async fn move_candidate(line: &str, owner: Side, relay: &Relay) -> Option<String> {
    let mut parts: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    if parts.len() < 8 || !parts[2].eq_ignore_ascii_case("udp") {
        return None;
    }
    let real: SocketAddr = format!("{}:{}", parts[4], parts[5]).parse().ok()?;
    let front = relay.front_for(owner, real).await.ok()?;
    parts[4] = front.ip().to_string();
    parts[5] = front.port().to_string();
    Some(parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn candidates_move_to_the_relay_and_tcp_ones_are_dropped() {
        let relay = Relay::new(1);
        let line = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host";
        let moved = move_candidate(line, Side::Host, &relay).await.expect("udp");
        let parts: Vec<&str> = moved.split(' ').collect();
        assert_eq!(parts[..4], ["candidate:1", "1", "udp", "2130706431"]);
        assert_ne!(parts[5], "40000");
        assert_eq!(parts[6..], ["typ", "host"]);
        // The same address, the same front.
        assert_eq!(move_candidate(line, Side::Host, &relay).await, Some(moved));
        let tcp = "candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active";
        assert_eq!(move_candidate(tcp, Side::Host, &relay).await, None);

        let mut side = None;
        let seen = Seen::default();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"role":"guest"}"#);
        let hello = format!(r#"{{"type":"hello","protocol":1,"token":"x.{claims}.y"}}"#);
        assert!(
            rewrite(&hello, &mut side, Some(&relay), &seen)
                .await
                .is_some()
        );
        assert_eq!(side, Some(Side::Guest));
        let offer = r#"{"type":"signal","payload":{"type":"offer","sdp":"v=0\r\na=candidate:1 1 udp 1 127.0.0.1 40001 typ host\r\na=candidate:2 1 tcp 1 127.0.0.1 9 typ host\r\na=mid:0\r\n"}}"#;
        let out: Value = serde_json::from_str(
            &rewrite(offer, &mut side, Some(&relay), &seen)
                .await
                .expect("kept"),
        )
        .expect("json");
        let sdp = out["payload"]["sdp"].as_str().expect("sdp");
        assert!(!sdp.contains("40001") && !sdp.contains(" tcp "), "{sdp}");
        assert!(
            sdp.starts_with("v=0\r\na=candidate:1 1 udp 1 127.0.0.1 "),
            "{sdp}"
        );
        assert!(sdp.ends_with("a=mid:0\r\n"), "{sdp}");
    }
}
