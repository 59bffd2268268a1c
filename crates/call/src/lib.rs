//! confer-call: the call engine. This first slice is the signaling client
//! ([`signaling::SignalClient`]): one session with confer-signal that survives dropped
//! connections (resume with `last_seq`, back-off) and reports the room's events in order.
//! The WebRTC peer connection, media and data channel build on it (issue 4).

#![forbid(unsafe_code)]

pub mod assembler;
pub mod call;
pub mod peer;
pub mod sas;
pub mod signaling;
pub mod transfer;
