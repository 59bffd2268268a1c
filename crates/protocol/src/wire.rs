//! Hand-written `Deserialize` for the two message enums.
//!
//! One flat struct holds every field any message may carry; the `type` tag then picks the
//! variant and checks that its required fields are there. Unknown fields are ignored (the
//! protocol may grow within version 1); a field of the wrong type is an error whatever the
//! message, which is stricter than necessary and never wrong for a well-formed message.

use serde::{Deserialize, Deserializer, de};

use crate::{
    ByeReason, ClientMessage, ErrorCode, Hello, IceServer, LeaveReason, ParticipantState, PeerId,
    PingStamp, Role, ServerMessage, SignalPayload, Welcome,
};

fn need<T, E: de::Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(field))
}

/// Parses an enum field given as a string (fields such as `reason` mean different enums in
/// different messages, so the flat struct keeps them as text).
fn parse_str<T: de::DeserializeOwned, E: de::Error>(
    value: Option<String>,
    field: &'static str,
) -> Result<T, E> {
    let text = need(value, field)?;
    T::deserialize(de::value::StrDeserializer::<E>::new(&text))
}

const CLIENT_TYPES: &[&str] = &["hello", "admit", "deny", "signal", "leave", "ping"];

#[derive(Deserialize)]
struct ClientWire {
    #[serde(rename = "type")]
    kind: String,
    protocol: Option<u32>,
    token: Option<String>,
    resume: Option<String>,
    last_seq: Option<u64>,
    name: Option<String>,
    peer: Option<PeerId>,
    reason: Option<String>,
    payload: Option<SignalPayload>,
    t: Option<PingStamp>,
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = ClientWire::deserialize(deserializer)?;
        Ok(match w.kind.as_str() {
            "hello" => ClientMessage::Hello(Hello {
                protocol: need(w.protocol, "protocol")?,
                token: need(w.token, "token")?,
                resume: w.resume,
                last_seq: w.last_seq,
                name: w.name,
            }),
            "admit" => ClientMessage::Admit {
                peer: need(w.peer, "peer")?,
            },
            "deny" => ClientMessage::Deny {
                peer: need(w.peer, "peer")?,
                reason: w.reason,
            },
            "signal" => ClientMessage::Signal {
                payload: need(w.payload, "payload")?,
            },
            "leave" => ClientMessage::Leave,
            "ping" => ClientMessage::Ping { t: need(w.t, "t")? },
            other => return Err(de::Error::unknown_variant(other, CLIENT_TYPES)),
        })
    }
}

#[derive(Deserialize)]
struct ServerWire {
    #[serde(rename = "type")]
    kind: String,
    peer: Option<PeerId>,
    room: Option<String>,
    role: Option<Role>,
    resume: Option<String>,
    ice_servers: Option<Vec<IceServer>>,
    state: Option<ParticipantState>,
    resumed: Option<bool>,
    grace_s: Option<u64>,
    name: Option<String>,
    seq: Option<u64>,
    initiator: Option<bool>,
    from: Option<PeerId>,
    payload: Option<SignalPayload>,
    reason: Option<String>,
    code: Option<ErrorCode>,
    message: Option<String>,
    t: Option<PingStamp>,
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = ServerWire::deserialize(deserializer)?;
        let seq = || need(w.seq, "seq");
        Ok(match w.kind.as_str() {
            "welcome" => ServerMessage::Welcome(Welcome {
                peer: need(w.peer, "peer")?,
                room: need(w.room, "room")?,
                role: need(w.role, "role")?,
                resume: need(w.resume, "resume")?,
                ice_servers: need(w.ice_servers, "ice_servers")?,
                state: need(w.state, "state")?,
                resumed: w.resumed.unwrap_or(false),
                grace_s: need(w.grace_s, "grace_s")?,
            }),
            "knock" => ServerMessage::Knock {
                peer: need(w.peer, "peer")?,
                name: w.name,
                seq: seq()?,
            },
            "admitted" => ServerMessage::Admitted { seq: seq()? },
            "denied" => ServerMessage::Denied { reason: w.reason },
            "call-ready" => ServerMessage::CallReady {
                peer: need(w.peer, "peer")?,
                initiator: need(w.initiator, "initiator")?,
                seq: seq()?,
            },
            "signal" => ServerMessage::Signal {
                from: need(w.from, "from")?,
                payload: need(w.payload, "payload")?,
                seq: seq()?,
            },
            "peer-reconnecting" => ServerMessage::PeerReconnecting {
                peer: need(w.peer, "peer")?,
                seq: seq()?,
            },
            "peer-resumed" => ServerMessage::PeerResumed {
                peer: need(w.peer, "peer")?,
                seq: seq()?,
            },
            "peer-left" => ServerMessage::PeerLeft {
                peer: need(w.peer, "peer")?,
                reason: parse_str::<LeaveReason, _>(w.reason, "reason")?,
                seq: seq()?,
            },
            "error" => ServerMessage::Error {
                code: need(w.code, "code")?,
                message: need(w.message, "message")?,
            },
            "pong" => ServerMessage::Pong { t: need(w.t, "t")? },
            "bye" => ServerMessage::Bye {
                reason: parse_str::<ByeReason, _>(w.reason, "reason")?,
            },
            _ => ServerMessage::Unknown,
        })
    }
}
