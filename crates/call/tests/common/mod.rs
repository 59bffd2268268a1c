//! Shared by confer-call's tests and benchmark: a real confer-signal on loopback and room
//! tokens minted with its secret.

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_protocol::Role;
use confer_signal::{Claims, Config, Server, ServerHandle};

pub const SECRET: &str = "a test secret that is long enough for HS256";

/// Starts confer-signal on 127.0.0.1 (port 0 unless `config.listen` says otherwise).
pub async fn start(config: Config) -> (ServerHandle, tokio::task::JoinHandle<()>) {
    let server = Server::bind(Config {
        token_secret: Some(SECRET.into()),
        ..config
    })
    .await
    .expect("bind");
    let handle = server.handle();
    (handle, tokio::spawn(server.serve()))
}

/// confer-signal on 127.0.0.1 over https and wss with a certificate made for it, as the
/// desktop app's server on a LAN; with its base URL (`https://…`) and the certificate's SHA-256.
pub async fn start_self_signed() -> (ServerHandle, tokio::task::JoinHandle<()>, String, [u8; 32]) {
    let identity = confer_signal::Identity::self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let server = Server::bind_with_identity(Config::loopback(), &identity)
        .await
        .expect("bind");
    let handle = server.handle();
    let base = format!("https://{}", handle.local_addr());
    let sha256 = confer_call::tls::fingerprint(identity.certificate_der());
    (handle, tokio::spawn(server.serve()), base, sha256)
}

/// A token for `role` in `room`, valid for ten minutes.
pub fn token(handle: &ServerHandle, room: &str, role: Role) -> String {
    handle.tokens().issue(&Claims {
        room: room.into(),
        role,
        exp: confer_signal::unix_now() + 600,
        name: None,
        jti: format!("{room}-{role:?}"),
        auto_admit: false,
        consent: None,
    })
}

/// A call configuration for `role` in `room`: the test pattern at 640x360 and tone bursts,
/// loopback only, host admitting whoever knocks.
pub fn call_config(handle: &ServerHandle, room: &str, role: Role) -> CallConfig {
    CallConfig {
        url: handle.ws_url(),
        token: token(handle, room, role),
        name: Some(format!("{role:?}")),
        video: "pattern:640x360".into(),
        video_kbps: 600,
        video_codec: Default::default(), // VP8
        audio: "tone".into(),
        speaker: None,
        processing: Default::default(),
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        auto_admit: true,
        relay_only: false,
        trust: Default::default(),
    }
}

/// Waits for the call to connect; returns its verification code.
pub async fn wait_connected(call: &mut CallHandle) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, call.next_event())
            .await
            .expect("connected within 15 s")
            .expect("call running");
        match event {
            CallEvent::VerificationCode(code) => return code,
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
}

/// Host and guest of `room` joined (not yet connected).
pub async fn join_pair(handle: &ServerHandle, room: &str) -> (CallHandle, CallHandle) {
    let host = CallHandle::join(call_config(handle, room, Role::Host))
        .await
        .expect("host joins");
    let guest = CallHandle::join(call_config(handle, room, Role::Guest))
        .await
        .expect("guest joins");
    (host, guest)
}

/// Waits for the first decoded remote frame (at most 20 s).
pub async fn first_frame(call: &mut CallHandle) {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), call.next_event()).await {
            Ok(Some(CallEvent::RemoteVideo(_))) => return,
            Ok(Some(CallEvent::Ended(why))) => panic!("ended: {why}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no remote frame within 20 s"),
        }
    }
}

/// Hangs up and waits until the call has ended.
pub async fn end(mut call: CallHandle) {
    call.hang_up();
    while call.next_event().await.is_some() {}
}
