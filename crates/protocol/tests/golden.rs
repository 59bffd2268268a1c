//! Golden fixtures lock the wire format: each fixture must parse to exactly the value below and
//! that value must serialize back to the same JSON (compared as JSON values, so key order and
//! whitespace in the files do not matter).

use confer_protocol::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use std::fmt::Debug;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(name: &str, expected: T) {
    let text = fixture(name);
    let parsed: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(parsed, expected, "{name}: parsed value differs");
    let written = serde_json::to_value(&expected).expect("serialize");
    let file: Value = serde_json::from_str(&text).expect("fixture is JSON");
    assert_eq!(
        written, file,
        "{name}: serialized form differs from the fixture"
    );
}

fn payload(text: &str) -> SignalPayload {
    SignalPayload::from_json(text).expect("an object")
}

fn stamp(v: Value) -> PingStamp {
    match v {
        Value::Number(n) => PingStamp(n),
        other => panic!("not a number: {other}"),
    }
}

#[test]
fn client_messages() {
    check(
        "client-hello",
        ClientMessage::Hello(Hello {
            protocol: 1,
            token: "eyJ.x.y".into(),
            resume: None,
            last_seq: None,
            name: Some("Dr. Ada".into()),
        }),
    );
    check(
        "client-hello-resume",
        ClientMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            token: "eyJ.x.y".into(),
            resume: Some("r-123".into()),
            last_seq: Some(7),
            name: None,
        }),
    );
    check("client-admit", ClientMessage::Admit { peer: "p2".into() });
    check(
        "client-deny",
        ClientMessage::Deny {
            peer: "p3".into(),
            reason: Some("wrong room".into()),
        },
    );
    check(
        "client-signal",
        ClientMessage::Signal {
            payload: payload(r#"{"kind":"offer","sdp":"v=0\r\n"}"#),
        },
    );
    check("client-leave", ClientMessage::Leave);
    check(
        "client-ping",
        ClientMessage::Ping {
            t: stamp(json!(12.5)),
        },
    );
}

#[test]
fn server_messages() {
    check(
        "server-welcome",
        ServerMessage::Welcome(Welcome {
            peer: "p1".into(),
            room: "r1".into(),
            role: Role::Host,
            resume: "r-123".into(),
            ice_servers: vec![
                IceServer {
                    urls: vec!["stun:127.0.0.1:3478".into()],
                    username: None,
                    credential: None,
                },
                IceServer {
                    urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
                    username: Some("1700000000:p1".into()),
                    credential: Some("c2VjcmV0".into()),
                },
            ],
            state: ParticipantState::Admitted,
            resumed: false,
            grace_s: 30,
        }),
    );
    check(
        "server-knock",
        ServerMessage::Knock {
            peer: "p2".into(),
            name: Some("Pat".into()),
            seq: 1,
        },
    );
    check("server-admitted", ServerMessage::Admitted { seq: 1 });
    check(
        "server-denied",
        ServerMessage::Denied {
            reason: Some("wrong room".into()),
        },
    );
    check(
        "server-call-ready",
        ServerMessage::CallReady {
            peer: "p2".into(),
            initiator: true,
            seq: 2,
        },
    );
    check(
        "server-signal",
        ServerMessage::Signal {
            from: "p2".into(),
            payload: payload(
                r#"{"kind":"candidate","candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}"#,
            ),
            seq: 3,
        },
    );
    check(
        "server-peer-reconnecting",
        ServerMessage::PeerReconnecting {
            peer: "p2".into(),
            seq: 4,
        },
    );
    check(
        "server-peer-resumed",
        ServerMessage::PeerResumed {
            peer: "p2".into(),
            seq: 5,
        },
    );
    check(
        "server-peer-left",
        ServerMessage::PeerLeft {
            peer: "p2".into(),
            reason: LeaveReason::Timeout,
            seq: 6,
        },
    );
    check(
        "server-error",
        ServerMessage::error(ErrorCode::RateLimited, "too many messages"),
    );
    check(
        "server-pong",
        ServerMessage::Pong {
            t: stamp(json!(42)),
        },
    );
    check(
        "server-bye",
        ServerMessage::Bye {
            reason: ByeReason::ServerShutdown,
        },
    );
}

#[test]
fn http_bodies() {
    check(
        "create-room-request",
        CreateRoomRequest {
            auto_admit: Some(true),
            ttl_s: Some(3600),
            host_name: Some("Dr. Ada".into()),
            consent: Some("I agree to a video consultation.".into()),
        },
    );
    check(
        "create-room-response",
        CreateRoomResponse {
            room: "r1".into(),
            host_token: "h.t.s".into(),
            guest_token: "g.t.s".into(),
            guest_url: "http://127.0.0.1:8443/join/r1#g.t.s".into(),
            expires_at: 1_700_003_600,
        },
    );
}

#[test]
fn error_codes_spell_as_on_the_wire() {
    for code in ErrorCode::ALL {
        let json = serde_json::to_value(code).expect("serialize");
        assert_eq!(json, Value::String(code.as_str().into()));
    }
}

#[test]
fn unknown_server_types_are_tolerated_and_unknown_client_types_are_not() {
    let msg: ServerMessage =
        serde_json::from_str(r#"{"type":"from-the-future","x":1}"#).expect("tolerated");
    assert_eq!(msg, ServerMessage::Unknown);
    assert!(parse_client(r#"{"type":"from-the-future"}"#).is_err());
    // Extra fields are ignored (the server may add fields within version 1).
    let msg = parse_client(r#"{"type":"leave","extra":true}"#).expect("extra field ignored");
    assert_eq!(msg, ClientMessage::Leave);
}

#[test]
fn payloads_are_relayed_byte_for_byte() {
    // Key order, spacing and numbers beyond f64 survive a parse and a re-serialization.
    let text = r#"{"type":"signal","payload":{"z":1, "a":123456789012345678901234567890}}"#;
    let ClientMessage::Signal { payload } = parse_client(text).expect("signal") else {
        panic!("not a signal")
    };
    assert_eq!(
        payload.as_str(),
        r#"{"z":1, "a":123456789012345678901234567890}"#
    );
    let relayed = ServerMessage::Signal {
        from: "p1".into(),
        payload,
        seq: 1,
    };
    let out = serde_json::to_string(&relayed).expect("serialize");
    assert!(
        out.contains(r#""payload":{"z":1, "a":123456789012345678901234567890}"#),
        "{out}"
    );
}

#[test]
fn missing_fields_are_named() {
    let err = parse_client(r#"{"type":"admit"}"#).expect_err("no peer");
    assert!(err.to_string().contains("peer"), "{err}");
    let err = parse_client(r#"{"type":"hello","protocol":1}"#).expect_err("no token");
    assert!(err.to_string().contains("token"), "{err}");
    let err = serde_json::from_str::<ServerMessage>(
        r#"{"type":"peer-left","peer":"p","seq":1,"reason":"bored"}"#,
    )
    .expect_err("unknown reason");
    assert!(err.to_string().contains("bored"), "{err}");
}

#[test]
fn wrong_shapes_are_rejected() {
    for bad in [
        r#"{"type":"signal","payload":"not an object"}"#,
        r#"{"type":"signal","payload":[1,2]}"#,
        r#"{"type":"signal","payload":null}"#,
        r#"{"type":"signal"}"#,
        r#"{"type":"admit","peer":5}"#,
        r#"{"type":"hello","protocol":"1","token":"t"}"#,
        r#"{"type":"ping","t":"now"}"#,
        r#"{"peer":"p2"}"#,
        r#"[]"#,
        r#"null"#,
    ] {
        assert!(parse_client(bad).is_err(), "accepted: {bad}");
    }
}
