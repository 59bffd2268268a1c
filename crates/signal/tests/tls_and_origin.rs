//! `wss://` through rustls with a certificate from files, and the Origin allow-list.

mod common;

use std::sync::Arc;

use common::*;
use confer_protocol::ServerMessage;
use confer_signal::Config;
use tokio_rustls::rustls::{self, pki_types::ServerName};

#[tokio::test]
async fn wss_with_a_certificate_from_files() {
    let dir = std::env::temp_dir().join(format!("confer-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");

    let server = TestServer::with(Config {
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        ..Config::loopback()
    })
    .await;
    assert!(server.ws_url().starts_with("wss://"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let name = ServerName::try_from("localhost").expect("name");

    // HTTPS: room creation.
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    let mut tls = connector.connect(name.clone(), tcp).await.expect("tls");
    let auth = format!("Bearer {}", server.handle.api_key());
    let (status, body) = http_on(
        &mut tls,
        "localhost",
        "POST",
        "/v1/rooms",
        &[("Authorization", auth.as_str())],
        "{}",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let room: confer_protocol::CreateRoomResponse = serde_json::from_str(&body).expect("json");
    assert!(room.guest_url.starts_with("https://"));

    // WSS: a full hello/welcome.
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("tcp");
    let tls = connector.connect(name, tcp).await.expect("tls");
    let url = format!("wss://localhost:{}/v1/ws", server.addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("wss");
    let (mut tx, mut rx) = futures_util::StreamExt::split(ws);
    use futures_util::{SinkExt, StreamExt};
    let hello = serde_json::to_string(&hello(&room.host_token, None, None)).expect("json");
    tx.send(tokio_tungstenite::tungstenite::Message::text(hello))
        .await
        .expect("send");
    let reply = rx.next().await.expect("reply").expect("frame");
    let msg: ServerMessage = serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert!(matches!(msg, ServerMessage::Welcome(_)), "{msg:?}");

    // Plain HTTP to the TLS port gets no HTTP answer (at most a TLS alert).
    let answer = tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("tcp");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("plain request ends");
    assert!(
        !answer.starts_with(b"HTTP"),
        "served plaintext on a TLS port"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn origins_same_origin_by_default_or_from_the_allow_list() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let host = server.addr.to_string();
    let same = format!("http://{host}");
    assert!(
        Client::connect_with(&url, &[]).await.is_ok(),
        "native client, no Origin"
    );
    assert!(
        Client::connect_with(&url, &[("Origin", same.as_str())])
            .await
            .is_ok()
    );
    let evil = Client::connect_with(&url, &[("Origin", "https://evil.example")]).await;
    assert_eq!(evil.err(), Some(403));
    server.stop().await;

    let server = TestServer::with(Config {
        allowed_origins: vec!["https://clinic.example".into()],
        ..Config::loopback()
    })
    .await;
    let url = server.ws_url();
    let ok = Client::connect_with(&url, &[("Origin", "https://clinic.example")]).await;
    assert!(ok.is_ok());
    let other = Client::connect_with(&url, &[("Origin", "https://evil.example")]).await;
    assert_eq!(other.err(), Some(403));
    server.stop().await;
}
