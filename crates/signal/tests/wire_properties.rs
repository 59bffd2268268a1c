//! Property tests over real sockets: arbitrary bytes and arbitrary message sequences never
//! crash the server, and every reply is a well-formed server message.

mod common;

use std::time::Duration;

use common::*;
use confer_protocol::{ClientMessage, ServerMessage};
use futures_util::SinkExt;
use proptest::prelude::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// One runtime and one server for all cases (starting a server per case would test start-up).
fn world() -> &'static (tokio::runtime::Runtime, TestServer) {
    static WORLD: std::sync::OnceLock<(tokio::runtime::Runtime, TestServer)> =
        std::sync::OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(TestServer::start());
        (rt, server)
    })
}

/// Reads whatever arrives within a short quiet period; each reply must parse (the client
/// helper panics on malformed or unknown messages). Returns whether the socket is still open.
async fn drain(c: &mut Client) -> bool {
    loop {
        match c.try_recv(Duration::from_millis(10)).await {
            Ok(_) => {}
            Err(e) => return e == "timed out",
        }
    }
}

async fn server_is_healthy(server: &TestServer) {
    let (status, _) = http(server.addr, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 200);
    // And still relays in a fresh room.
    let Call {
        mut host,
        mut guest,
        ..
    } = call(server).await;
    host.signal(json!({"n": 1})).await;
    assert!(matches!(guest.recv().await, ServerMessage::Signal { .. }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn arbitrary_bytes(frames in proptest::collection::vec(
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 1..12)) {
        let (rt, server) = world();
        rt.block_on(async {
            let Call { mut guest, host: _host, .. } = call(server).await;
            for (binary, bytes) in frames {
                let frame = if binary {
                    Message::binary(bytes)
                } else {
                    Message::text(String::from_utf8_lossy(&bytes).into_owned())
                };
                if guest.ws.send(frame).await.is_err() {
                    break;
                }
                if !drain(&mut guest).await {
                    break;
                }
            }
            server_is_healthy(server).await;
        });
    }

    #[test]
    fn arbitrary_message_sequences(ops in proptest::collection::vec((0usize..3, 0u8..9, any::<u16>()), 1..30)) {
        let (rt, server) = world();
        rt.block_on(async {
            let room = server.create_room(json!({})).await;
            let url = server.ws_url();
            let tokens = [room.host_token.clone(), room.guest_token.clone(), "bad.token.here".to_owned()];
            let mut clients: Vec<Option<Client>> = Vec::new();
            for _ in 0..3 {
                clients.push(Some(Client::connect(&url).await));
            }
            let mut peers: Vec<String> = vec!["nobody".into()];
            for (who, kind, n) in ops {
                let Some(c) = clients[who].as_mut() else { continue };
                let msg = match kind {
                    0 => Some(hello(&tokens[usize::from(n) % 3], None, None)),
                    1 => Some(ClientMessage::Admit { peer: peers[usize::from(n) % peers.len()].clone() }),
                    2 => Some(ClientMessage::Deny { peer: peers[usize::from(n) % peers.len()].clone(), reason: None }),
                    3 | 4 => Some(ClientMessage::Signal { payload: as_payload(json!({"n": n})) }),
                    5 => Some(ClientMessage::Leave),
                    6 => Some(ClientMessage::Ping { t: confer_protocol::PingStamp(n.into()) }),
                    7 => {
                        // Drop the socket; a later op on this slot reconnects.
                        clients[who] = Some(Client::connect(&url).await);
                        None
                    }
                    _ => {
                        c.send_text(&format!(r#"{{"type":"signal","payload":{n}}}"#)).await;
                        None
                    }
                };
                let Some(c) = clients[who].as_mut() else { continue };
                if let Some(msg) = msg
                    && c.ws.send(Message::text(serde_json::to_string(&msg).expect("json"))).await.is_err()
                {
                    clients[who] = Some(Client::connect(&url).await);
                    continue;
                }
                for (i, slot) in clients.iter_mut().enumerate() {
                    let Some(c) = slot.as_mut() else { continue };
                    if !drain(c).await {
                        *slot = if i == who { Some(Client::connect(&url).await) } else { None };
                    }
                    if let Some(w) = slot.as_ref().and_then(|c| c.welcome.as_ref())
                        && !peers.contains(&w.peer)
                    {
                        peers.push(w.peer.clone());
                    }
                }
            }
            server_is_healthy(server).await;
        });
    }
}
