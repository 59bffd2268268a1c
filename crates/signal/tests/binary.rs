//! The `confer-signal` binary as an operator runs it: flags and environment, structured JSON
//! logs that never carry tokens, SDP bodies or client addresses at info level, and SIGTERM
//! handled by saying `bye` to everyone before exiting 0.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use confer_protocol::{ByeReason, ServerMessage};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn sigterm_says_bye_and_logs_stay_private() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confer-signal"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("CONFER_API_KEY", "operator-key")
        .env(
            "CONFER_TOKEN_SECRET",
            "a-token-secret-of-at-least-32-bytes!!",
        )
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn confer-signal");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = Vec::new();
    let addr: std::net::SocketAddr = loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("start-up in time")
            .expect("read")
            .expect("server exited early");
        if let Some(rest) = line.strip_prefix("confer-signal listening on ") {
            break rest
                .split_whitespace()
                .next()
                .expect("addr")
                .parse()
                .expect("addr");
        }
        log.push(line);
    };
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push(line);
        }
        log
    });

    let (status, body) = http(
        addr,
        "POST",
        "/v1/rooms",
        &[("Authorization", "Bearer operator-key")],
        r#"{"host_name":"Dr. Confidential"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let room: confer_protocol::CreateRoomResponse = serde_json::from_str(&body).expect("room");
    let url = format!("ws://{addr}/v1/ws");
    let mut host = Client::join(&url, &room.host_token).await;
    let mut guest = Client::join(&url, &room.guest_token).await;
    let ServerMessage::Knock { peer, .. } = host.recv().await else {
        panic!("knock")
    };
    host.send(&confer_protocol::ClientMessage::Admit { peer })
        .await;
    guest
        .recv_until(|m| matches!(m, ServerMessage::CallReady { .. }))
        .await;
    host.recv_until(|m| matches!(m, ServerMessage::CallReady { .. }))
        .await;
    host.signal(json!({"kind": "offer", "sdp": "v=0 SDP-BODY-MARKER"}))
        .await;
    guest.recv().await;
    let client_port = guest
        .ws
        .get_ref()
        .get_ref()
        .local_addr()
        .expect("local")
        .port();

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    for c in [&mut host, &mut guest] {
        assert_eq!(
            c.recv().await,
            ServerMessage::Bye {
                reason: ByeReason::ServerShutdown
            }
        );
        assert_eq!(u16::from(c.closed().await.expect("close").code), 1001);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exited in time")
        .expect("wait");
    assert!(status.success(), "{status}");

    let log = reader.await.expect("log reader");
    let structured: Vec<serde_json::Value> = log
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    assert!(
        structured
            .iter()
            .any(|v| v["fields"]["message"] == "joined"),
        "joins are logged: {log:#?}"
    );
    for line in &log {
        for secret in [
            room.host_token.as_str(),
            room.guest_token.as_str(),
            "SDP-BODY-MARKER",
            "Dr. Confidential",
            "operator-key",
        ] {
            assert!(!line.contains(secret), "log leaks {secret}: {line}");
        }
        assert!(
            !line.contains(&format!(":{client_port}")),
            "log leaks a client address: {line}"
        );
    }
}

#[test]
fn help_explains_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_confer-signal"))
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--token-secret",
        "--api-key",
        "--turn-url",
        "--turn-secret",
        "--tls-cert",
        "--allowed-origin",
        "--grace",
        "--rate-burst",
        "CONFER_TOKEN_SECRET",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_confer-signal"))
        .args(["--listen", "not-an-address"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--listen"));
}
