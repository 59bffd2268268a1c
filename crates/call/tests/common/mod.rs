//! Shared by confer-call's tests and benchmark: a real confer-signal on loopback and room
//! tokens minted with its secret.

#![allow(dead_code, unreachable_pub)]

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

/// A token for `role` in `room`, valid for ten minutes.
pub fn token(handle: &ServerHandle, room: &str, role: Role) -> String {
    handle.tokens().issue(&Claims {
        room: room.into(),
        role,
        exp: confer_signal::unix_now() + 600,
        name: None,
        jti: format!("{room}-{role:?}"),
        auto_admit: false,
    })
}
