//! The browser guest page as the server delivers it: the page at the invite link with a strict
//! Content-Security-Policy, its own script and style and nothing else, and the room's consent
//! line carried to the guest in the guest token (never in the URL path the server sees).

mod common;

use base64::Engine;
use common::{TestServer, WAIT, http};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A GET's status line and headers (lower-cased names), and body.
async fn get(server: &TestServer, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    (head.to_ascii_lowercase(), body.to_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

#[tokio::test]
async fn the_invite_link_serves_the_page_and_only_its_own_files() {
    let server = TestServer::start().await;
    let room = server.create_room(json!({})).await;
    let path = format!("/join/{}", room.room);
    assert!(
        room.guest_url
            .ends_with(&format!("{path}#{}", room.guest_token))
    );
    let (head, page) = get(&server, &path).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = header(&head, "content-security-policy").expect("CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&head, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    assert!(page.contains("Before you join"), "the device check");
    // The script and the style sheet come from this server, and are served.
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script");
    assert!(script.starts_with("/guest/assets/"), "{script}");
    let (head, js) = get(&server, script).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.contains("/v1/ws"), "the page speaks the protocol");
    let (head, _) = get(&server, "/guest/assets/nothing.js").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let (head, _) = get(&server, "/guest/../Cargo.toml").await;
    assert!(!head.starts_with("http/1.1 200"), "{head}");
    server.stop().await;
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn a_consent_line_rides_in_the_guest_token_only() {
    let server = TestServer::start().await;
    let line = "I agree to a video consultation with Dr. Ada.";
    let room = server
        .create_room(json!({ "consent": format!("  {line} ") }))
        .await;
    assert_eq!(claims(&room.guest_token)["consent"], line);
    assert_eq!(claims(&room.host_token).get("consent"), None);
    let plain = server.create_room(json!({})).await;
    assert_eq!(claims(&plain.guest_token).get("consent"), None);
    // Too long: refused with the reason, and no room.
    let auth = format!("Bearer {}", server.handle.api_key());
    let body = json!({ "consent": "x".repeat(501) }).to_string();
    let (status, text) = http(
        server.addr,
        "POST",
        "/v1/rooms",
        &[("Authorization", auth.as_str())],
        &body,
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 500"), "{text}");
    server.stop().await;
}
