//! `bindings/protocol.ts` is generated from the Rust types. This test regenerates it and fails
//! when the committed file differs; run with `CONFER_BLESS=1` to rewrite it after a change.

use confer_protocol::*;
use ts_rs::{Config, TS};

fn generate() -> String {
    let cfg = Config::new().with_large_int("number");
    let decls = [
        SignalPayload::decl(&cfg),
        PingStamp::decl(&cfg),
        Role::decl(&cfg),
        ParticipantState::decl(&cfg),
        IceServer::decl(&cfg),
        Hello::decl(&cfg),
        ClientMessage::decl(&cfg),
        LeaveReason::decl(&cfg),
        ByeReason::decl(&cfg),
        ErrorCode::decl(&cfg),
        Welcome::decl(&cfg),
        ServerMessage::decl(&cfg),
        CreateRoomRequest::decl(&cfg),
        CreateRoomResponse::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from crates/protocol by `CONFER_BLESS=1 cargo test -p confer-protocol \
         --test typescript`. Do not edit.\n\n",
    );
    out.push_str(&format!(
        "export const PROTOCOL_VERSION = {PROTOCOL_VERSION};\n"
    ));
    out.push_str(&format!(
        "export const MAX_FRAME_BYTES = {MAX_FRAME_BYTES};\n"
    ));
    out.push_str("export type PeerId = string;\n");
    for decl in decls {
        out.push_str("\nexport ");
        out.push_str(&decl);
        out.push('\n');
    }
    out
}

#[test]
fn typescript_bindings_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bindings/protocol.ts");
    let fresh = generate();
    if std::env::var_os("CONFER_BLESS").is_some() {
        std::fs::write(path, &fresh).expect("write bindings");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{path} is stale: run `CONFER_BLESS=1 cargo test -p confer-protocol --test typescript`"
    );
}
