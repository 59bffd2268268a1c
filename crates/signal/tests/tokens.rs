//! Authentication over real sockets: expired, forged and wrong-room tokens; protocol version;
//! the hello deadline; the room-creation API key and body validation.

mod common;

use std::time::Duration;

use common::*;
use confer_protocol::{ClientMessage, ErrorCode, Role, ServerMessage};
use confer_signal::{Claims, Config, TokenIssuer, unix_now};
use serde_json::json;

fn claims(room: &str, role: Role, exp: u64) -> Claims {
    Claims {
        room: room.into(),
        role,
        exp,
        name: None,
        jti: "test".into(),
        auto_admit: false,
        consent: None,
    }
}

/// Sends `hello` with `token`, expects `error{code}` then close 1008, and no welcome.
async fn refused(server: &TestServer, token: &str, code: ErrorCode) {
    let mut c = Client::connect(&server.ws_url()).await;
    let reply = c.hello(token).await;
    assert_eq!(error_code(&reply), code, "{reply:?}");
    let close = c.closed().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1008);
}

#[tokio::test]
async fn bad_tokens_get_no_welcome() {
    let server = TestServer::start().await;
    let issuer = server.handle.tokens();
    let expired = issuer.issue(&claims("r1", Role::Host, unix_now() - 120));
    refused(&server, &expired, ErrorCode::TokenExpired).await;

    let forged = TokenIssuer::new(b"another deployment's secret....!").issue(&claims(
        "r1",
        Role::Host,
        unix_now() + 60,
    ));
    refused(&server, &forged, ErrorCode::Unauthorized).await;
    refused(&server, "garbage", ErrorCode::Unauthorized).await;

    // Tampering with the payload (role guest → host) breaks the signature.
    let guest = issuer.issue(&claims("r1", Role::Guest, unix_now() + 60));
    let mut parts: Vec<String> = guest.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let body = String::from_utf8(b64.decode(&parts[1]).expect("b64")).expect("utf8");
    parts[1] = b64.encode(body.replace("\"guest\"", "\"host\""));
    refused(&server, &parts.join("."), ErrorCode::Unauthorized).await;
    assert!(
        server
            .metric("confer_errors_total{code=\"unauthorized\"}")
            .await
            >= 3.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_for_another_room_cannot_reach_this_one() {
    let server = TestServer::start().await;
    let Call {
        mut host, guest, ..
    } = call(&server).await;
    let other = server.create_room(json!({})).await;
    // The other room's guest token, even with this room's resume secret, lands in the other
    // room as a new seat: it cannot take over or observe the call.
    let mut intruder = Client::connect(&server.ws_url()).await;
    intruder
        .send(&hello(
            &other.guest_token,
            Some(guest.resume_secret()),
            None,
        ))
        .await;
    let ServerMessage::Welcome(w) = intruder.recv().await else {
        panic!("welcome to its own room")
    };
    assert_eq!(w.room, other.room);
    assert!(!w.resumed);
    assert_ne!(w.peer, guest.peer());
    intruder
        .send(&ClientMessage::Admit { peer: guest.peer() })
        .await;
    assert_eq!(error_code(&intruder.recv().await), ErrorCode::NotAllowed);
    assert!(
        host.try_recv(Duration::from_millis(200)).await.is_err(),
        "the call saw nothing"
    );
    server.stop().await;
}

#[tokio::test]
async fn version_and_hello_rules() {
    let server = TestServer::with(Config {
        hello_timeout_s: 1,
        ..Config::loopback()
    })
    .await;
    let room = server.create_room(json!({})).await;
    let url = server.ws_url();

    let mut c = Client::connect(&url).await;
    c.send_text(&format!(
        r#"{{"type":"hello","protocol":2,"token":"{}"}}"#,
        room.host_token
    ))
    .await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::UnsupportedVersion);
    assert_eq!(u16::from(c.closed().await.expect("close").code), 1008);

    let mut c = Client::connect(&url).await;
    c.send(&ClientMessage::Admit { peer: "x".into() }).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::Unauthorized);
    assert_eq!(u16::from(c.closed().await.expect("close").code), 1008);

    // Silent after connecting: unauthorized and closed once the deadline passes.
    let mut c = Client::connect(&url).await;
    assert_eq!(error_code(&c.recv().await), ErrorCode::Unauthorized);
    assert_eq!(u16::from(c.closed().await.expect("close").code), 1008);
    server.stop().await;
}

#[tokio::test]
async fn room_creation_needs_the_api_key_and_a_sane_body() {
    let server = TestServer::start().await;
    let (status, _) = http(server.addr, "POST", "/v1/rooms", &[], "").await;
    assert_eq!(status, 401);
    let (status, _) = http(
        server.addr,
        "POST",
        "/v1/rooms",
        &[("Authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(status, 401);
    let key = format!("Bearer {}", server.handle.api_key());
    let auth = [("Authorization", key.as_str())];
    for bad in [
        r#"{"ttl_s": 0}"#,
        r#"{"ttl_s": 99999999999}"#,
        r#"{"auto_admit": "yes"}"#,
        r#"{"surprise": 1}"#,
        "not json",
    ] {
        let (status, body) = http(server.addr, "POST", "/v1/rooms", &auth, bad).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert!(body.contains("message"), "a clear error: {body}");
    }
    // An empty body takes the defaults; the tokens carry the room and roles.
    let (status, body) = http(server.addr, "POST", "/v1/rooms", &auth, "").await;
    assert_eq!(status, 201);
    let room: confer_protocol::CreateRoomResponse = serde_json::from_str(&body).expect("json");
    let host = server
        .handle
        .tokens()
        .verify(&room.host_token)
        .expect("host token");
    let guest = server
        .handle
        .tokens()
        .verify(&room.guest_token)
        .expect("guest token");
    assert_eq!((host.role, guest.role), (Role::Host, Role::Guest));
    assert_eq!(
        (host.room.as_str(), guest.room.as_str()),
        (room.room.as_str(), room.room.as_str())
    );
    assert_ne!(host.jti, guest.jti);
    assert!(room.expires_at > unix_now() + 3600);
    server.stop().await;
}
