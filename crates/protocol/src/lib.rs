//! Confer signaling wire types, protocol version 1.
//!
//! Every client (desktop app, browser guest page, headless CLI, tests) and the server
//! `confer-signal` speak these messages: one JSON object per WebSocket text frame, tagged by a
//! kebab-case `"type"` field. The contract is docs/protocol.md; golden fixtures in
//! `tests/fixtures/` lock the wire format, and `bindings/protocol.ts` carries the same types for
//! TypeScript (regenerated and compared by `tests/typescript.rs`).
//!
//! Invariants:
//! - Within version 1 the server may add messages and fields but never changes or drops the
//!   ones here. Clients therefore ignore unknown fields and map unknown server message types to
//!   [`ServerMessage::Unknown`].
//! - Every room event the server sends to a participant (`knock`, `admitted`, `call-ready`,
//!   `signal`, `peer-reconnecting`, `peer-resumed`, `peer-left`) carries `seq`, a per-participant
//!   counter starting at 1. A client resuming with `last_seq` gets exactly the events after it,
//!   in order: nothing lost, nothing twice.
//! - `signal.payload` is opaque to the server: any JSON object, relayed unchanged.

#![forbid(unsafe_code)]

mod wire;

use serde::{Deserialize, Deserializer, Serialize, de};
use serde_json::value::RawValue;
use ts_rs::TS;

/// The protocol version a client puts in `hello.protocol`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest text frame the server accepts (uncompressed bytes). Larger frames get `too-large`.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Path of the WebSocket endpoint.
pub const WS_PATH: &str = "/v1/ws";

/// Opaque id of one participant (one seat) in a room; stable across resume.
pub type PeerId = String;

/// The body of a `signal` message: any JSON object (offer, answer, candidate, ...), kept as
/// the exact text the sender wrote so the server relays it byte for byte (no key reordering,
/// no number rounding) without parsing it into a tree.
#[derive(Debug, Clone, TS)]
#[ts(type = "Record<string, unknown>")]
pub struct SignalPayload(Box<RawValue>);

impl SignalPayload {
    /// A payload from a JSON object.
    pub fn from_object(object: serde_json::Map<String, serde_json::Value>) -> Self {
        let text = serde_json::to_string(&object).expect("a JSON map always serializes");
        Self(RawValue::from_string(text).expect("serde_json wrote valid JSON"))
    }

    /// A payload from JSON text, which must be an object; kept exactly as written.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The payload's JSON text, exactly as received.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The payload parsed into a JSON object.
    pub fn to_object(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(self.0.get()).expect("a payload is always a JSON object")
    }
}

impl PartialEq for SignalPayload {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for SignalPayload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignalPayload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if raw.get().trim_start().starts_with('{') {
            Ok(Self(raw))
        } else {
            Err(de::Error::invalid_type(
                de::Unexpected::Other("a non-object payload"),
                &"a JSON object",
            ))
        }
    }
}

/// A number echoed unchanged by `ping`/`pong` (integer or float, as the client sent it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(type = "number")]
#[serde(transparent)]
pub struct PingStamp(pub serde_json::Number);

/// Role granted by a room token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Created the room; admits itself and admits or denies guests.
    Host,
    /// Joined through an invite link; waits in the lobby until admitted (unless auto-admit).
    Guest,
}

/// Where a participant stands in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
pub enum ParticipantState {
    /// In the lobby, waiting for the host.
    Waiting,
    /// In the call (at most two per room).
    Admitted,
}

/// One entry of `welcome.ice_servers`, in the shape of WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username (coturn REST scheme: `expiry:peer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub credential: Option<String>,
}

/// The first message of every connection (client → server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Hello {
    /// Must be [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The room token (JWT, HS256) from the invite link or room creation.
    pub token: String,
    /// The `resume` token of an earlier `welcome`, to take the same seat back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub resume: Option<String>,
    /// With `resume`: the highest `seq` this client has processed. Events after it are
    /// replayed. Without it, the server replays what it had not written to the old socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub last_seq: Option<u64>,
    /// Display name; overrides the token's `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub name: Option<String>,
}

/// Messages a client sends to the server.
///
/// Deserialized by hand ([`wire`]): serde's derived internally-tagged enums buffer every field
/// into an intermediate tree, which cannot hold a raw [`SignalPayload`].
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Authenticate and join (or resume). Must come first, within 10 s.
    Hello(Hello),
    /// Host only: let a waiting guest into the call.
    Admit {
        /// The waiting guest (from `knock`).
        peer: PeerId,
    },
    /// Host only: turn a waiting guest away.
    Deny {
        /// The waiting guest (from `knock`).
        peer: PeerId,
        /// Shown to the guest.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        reason: Option<String>,
    },
    /// Relayed unchanged, in order, to the other admitted participant.
    Signal {
        /// Offer, answer, candidate, end-of-candidates, restart, ...
        payload: SignalPayload,
    },
    /// Give up this seat now (the other side gets `peer-left` `"left"`).
    Leave,
    /// Application-level keepalive; answered with `pong`.
    Ping {
        /// Echoed back.
        t: PingStamp,
    },
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// It sent `leave`, or a new host connection replaced it.
    Left,
    /// Its socket dropped and the grace period ran out.
    Timeout,
}

/// Why the server ends a connection with `bye`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
pub enum ByeReason {
    /// The server is stopping; reconnect with `resume`.
    ServerShutdown,
    /// This seat was resumed on another connection.
    Replaced,
}

/// Typed error codes of `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not JSON, not an object, binary frame, unknown `type`, wrong field types.
    BadMessage,
    /// Frame larger than [`MAX_FRAME_BYTES`].
    TooLarge,
    /// Missing, forged or wrong-room token; `hello` missing or late.
    Unauthorized,
    /// The token's `exp` has passed.
    TokenExpired,
    /// Two participants are already admitted, or the lobby is full.
    RoomFull,
    /// The message is not allowed in this role or state.
    NotAllowed,
    /// Too many messages; this one was dropped.
    RateLimited,
    /// `hello.protocol` is not [`PROTOCOL_VERSION`].
    UnsupportedVersion,
    /// The named peer is not in this room (or not waiting).
    UnknownPeer,
}

impl ErrorCode {
    /// Every code, for metrics and documentation.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadMessage,
        ErrorCode::TooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::TokenExpired,
        ErrorCode::RoomFull,
        ErrorCode::NotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownPeer,
    ];

    /// The wire spelling (`"bad-message"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token-expired",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::NotAllowed => "not-allowed",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::UnsupportedVersion => "unsupported-version",
            ErrorCode::UnknownPeer => "unknown-peer",
        }
    }
}

/// Answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Welcome {
    /// This participant's id (the same after a resume).
    pub peer: PeerId,
    /// The room id from the token.
    pub room: String,
    /// The role from the token.
    pub role: Role,
    /// Secret for `hello.resume` within the grace period.
    pub resume: String,
    /// STUN/TURN servers with short-lived credentials.
    pub ice_servers: Vec<IceServer>,
    /// Waiting in the lobby or admitted.
    pub state: ParticipantState,
    /// True when `hello.resume` took an existing seat back; false for a new seat.
    #[serde(default)]
    pub resumed: bool,
    /// Seconds a dropped seat is held for `resume`.
    #[ts(type = "number")]
    pub grace_s: u64,
}

/// Messages the server sends to a client (deserialized by hand, see [`ClientMessage`]).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Answer to `hello`.
    Welcome(Welcome),
    /// To the host: a guest is waiting in the lobby.
    Knock {
        /// The waiting guest.
        peer: PeerId,
        /// Its display name, if it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        name: Option<String>,
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// To a guest: the host let you in.
    Admitted {
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// To a guest: the host turned you away; the connection closes next.
    Denied {
        /// The host's reason, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        reason: Option<String>,
    },
    /// To both participants once two are admitted; exactly one is the initiator (sends the offer).
    CallReady {
        /// The other participant.
        peer: PeerId,
        /// Whether this participant sends the offer.
        initiator: bool,
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// A relayed `signal` from the other participant.
    Signal {
        /// The sender.
        from: PeerId,
        /// Unchanged payload.
        payload: SignalPayload,
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// The other side's socket dropped; its seat is held for the grace period.
    PeerReconnecting {
        /// The participant whose socket dropped.
        peer: PeerId,
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// The other side resumed its seat (added in version 1; clients may ignore it).
    PeerResumed {
        /// The participant that came back.
        peer: PeerId,
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// A participant (admitted or waiting) is gone.
    PeerLeft {
        /// The participant that left.
        peer: PeerId,
        /// `left` or `timeout`.
        reason: LeaveReason,
        /// Event sequence number.
        #[ts(type = "number")]
        seq: u64,
    },
    /// A message was rejected; the connection stays open unless it was `hello`.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
    /// Answer to `ping`.
    Pong {
        /// Echo of `ping.t`.
        t: PingStamp,
    },
    /// The server ends this connection.
    Bye {
        /// Why.
        reason: ByeReason,
    },
    /// A message type this client does not know (from a newer server). Never sent.
    #[serde(skip)]
    #[ts(skip)]
    Unknown,
}

impl ServerMessage {
    /// The event sequence number, for the messages that carry one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerMessage::Knock { seq, .. }
            | ServerMessage::Admitted { seq }
            | ServerMessage::CallReady { seq, .. }
            | ServerMessage::Signal { seq, .. }
            | ServerMessage::PeerReconnecting { seq, .. }
            | ServerMessage::PeerResumed { seq, .. }
            | ServerMessage::PeerLeft { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// Shorthand for an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

/// Body of `POST /v1/rooms` (all fields optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomRequest {
    /// Guests skip the lobby while a seat is free.
    #[serde(default)]
    #[ts(optional)]
    pub auto_admit: Option<bool>,
    /// Lifetime of the room's tokens in seconds (server default and maximum apply).
    #[serde(default)]
    #[ts(optional, type = "number")]
    pub ttl_s: Option<u64>,
    /// Display name put in the host token.
    #[serde(default)]
    #[ts(optional)]
    pub host_name: Option<String>,
    /// A line the guest must agree to before joining (shown with a checkbox by the browser
    /// guest page; at most 500 characters), carried in the guest token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub consent: Option<String>,
}

/// Answer of `POST /v1/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct CreateRoomResponse {
    /// Room id.
    pub room: String,
    /// Token for the host's `hello`.
    pub host_token: String,
    /// Token for guests (carried by the invite link).
    pub guest_token: String,
    /// Invite link: the browser guest page with the guest token.
    pub guest_url: String,
    /// Unix seconds when the tokens expire.
    #[ts(type = "number")]
    pub expires_at: u64,
}

/// Parses one client frame. Any failure is a `bad-message`.
pub fn parse_client(text: &str) -> Result<ClientMessage, serde_json::Error> {
    serde_json::from_str(text)
}
