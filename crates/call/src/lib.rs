//! confer-call: the call engine. [`call::CallHandle`] runs a whole one-to-one call from a
//! [`link::Link`] (or a server URL and a token): the signaling client
//! ([`signaling::SignalClient`], which survives dropped connections and server restarts), the
//! WebRTC peer connection ([`peer`], webrtc-rs behind our own types), the media threads
//! between confer-media and the peer, the data channel (chat, files, control) and the
//! verification code ([`sas`]).

#![forbid(unsafe_code)]

pub mod assembler;
pub mod belt;
pub mod call;
pub mod estimate;
pub mod fec;
pub mod fec_encoder;
pub mod link;
pub mod nack;
pub mod netwatch;
pub mod peer;
pub mod quality;
pub mod rate;
pub mod render;
pub mod rooms;
pub mod rtx;
pub mod sas;
pub mod signaling;
pub mod tls;
pub mod transfer;
pub mod turn_tcp;
pub mod twcc;
