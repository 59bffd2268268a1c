//! What the UI hears about a call: [`CallEvent`]s without the media (video goes through the
//! frame socket, audio to the speaker), as one tagged JSON shape the UI's state reducer reads.

use confer_call::call::{CallEvent, CallStats};
use confer_call::signaling::SignalEvent;
use confer_frames::StreamStats;
use confer_protocol::{LeaveReason, ParticipantState, Role};

/// The name of the Tauri event that carries [`UiEvent`]s.
pub(crate) const CALL_EVENT: &str = "call";

/// One thing that happened in the call, for the UI.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum UiEvent {
    /// In the room: `waiting` (a guest in the lobby) or `admitted`.
    Joined {
        /// `host` or `guest`.
        role: &'static str,
        /// `waiting` or `admitted`.
        state: &'static str,
        /// A seat taken back after a dropped connection.
        resumed: bool,
    },
    /// Host: a guest is waiting to be let in.
    Knock {
        /// Its peer id (for admit/deny).
        peer: String,
        /// The name it gave.
        name: Option<String>,
    },
    /// Guest: the host let us in.
    Admitted,
    /// Both are in the room: the connection is being made.
    CallReady,
    /// Media flows.
    Connected,
    /// The code to read aloud.
    VerificationCode {
        /// The words.
        code: String,
    },
    /// Nothing arrives from the other side: looking for the path again.
    Reconnecting,
    /// It came back.
    Reconnected,
    /// Our connection to the signaling server dropped; trying again.
    ServerReconnecting {
        /// Attempt, from 1.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// The other person's connection to the server dropped (their seat is held).
    PeerReconnecting,
    /// It came back.
    PeerResumed,
    /// The other person left the room.
    PeerLeft {
        /// Why, in words.
        reason: String,
    },
    /// The other person's microphone or camera changed.
    PeerMedia {
        /// Their microphone is muted.
        muted: bool,
        /// Their camera is on.
        camera: bool,
    },
    /// The other person hung up.
    PeerHungUp {
        /// Their reason.
        reason: String,
    },
    /// A chat message arrived.
    Chat {
        /// Its id.
        id: String,
        /// The text (shown as text, never as HTML).
        text: String,
    },
    /// Our chat message arrived there.
    ChatDelivered {
        /// The id `send_chat` returned.
        id: String,
    },
    /// A transfer moved on.
    TransferProgress {
        /// Transfer id.
        id: u64,
        /// To us.
        incoming: bool,
        /// Bytes so far.
        done: u64,
        /// Size.
        total: u64,
    },
    /// A file arrived; it stays in memory until the user saves it.
    FileReceived {
        /// Transfer id (for `save_file`).
        id: u64,
        /// The sender's name for it.
        name: String,
        /// Bytes.
        size: u64,
        /// Its SHA-256 matched.
        verified: bool,
    },
    /// Our file arrived there.
    TransferDone {
        /// Transfer id.
        id: u64,
        /// Its hash matched.
        verified: bool,
    },
    /// A transfer stopped.
    TransferCancelled {
        /// Transfer id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// Once a second: the call's numbers and the video path to the screen.
    Stats {
        /// The call.
        call: Box<CallStats>,
        /// Remote video through the frame socket.
        remote_display: StreamStats,
        /// The self view.
        local_display: StreamStats,
    },
    /// Something the call survives.
    Warning {
        /// In words.
        message: String,
    },
    /// Something that stops media until fixed (the call stays).
    Error {
        /// In words.
        message: String,
    },
    /// The call is over.
    Ended {
        /// Why.
        reason: String,
    },
}

/// The UI's view of a call event; `None` for media and for what the UI does not show.
pub(crate) fn ui_event(event: &CallEvent) -> Option<UiEvent> {
    Some(match event {
        CallEvent::Signaling(signal) => return signaling_event(signal),
        CallEvent::Connected => UiEvent::Connected,
        CallEvent::VerificationCode(code) => UiEvent::VerificationCode { code: code.clone() },
        CallEvent::Disconnected(reason) => UiEvent::Warning {
            message: format!("the connection closed: {reason}"),
        },
        CallEvent::Reconnecting => UiEvent::Reconnecting,
        CallEvent::Reconnected => UiEvent::Reconnected,
        CallEvent::Chat { id, text } => UiEvent::Chat {
            id: id.clone(),
            text: text.clone(),
        },
        CallEvent::PeerMedia { muted, camera } => UiEvent::PeerMedia {
            muted: *muted,
            camera: *camera,
        },
        CallEvent::PeerHungUp(reason) => UiEvent::PeerHungUp {
            reason: reason.clone(),
        },
        CallEvent::TransferProgress {
            id,
            incoming,
            done,
            total,
        } => UiEvent::TransferProgress {
            id: *id,
            incoming: *incoming,
            done: *done,
            total: *total,
        },
        CallEvent::FileReceived {
            id,
            name,
            data,
            verified,
        } => UiEvent::FileReceived {
            id: *id,
            name: name.clone(),
            size: data.len() as u64,
            verified: *verified,
        },
        CallEvent::TransferDone { id, verified } => UiEvent::TransferDone {
            id: *id,
            verified: *verified,
        },
        CallEvent::TransferCancelled { id, reason } => UiEvent::TransferCancelled {
            id: *id,
            reason: reason.clone(),
        },
        CallEvent::ChatDelivered { id } => UiEvent::ChatDelivered { id: id.clone() },
        CallEvent::Warning(message) => UiEvent::Warning {
            message: message.clone(),
        },
        CallEvent::Error(message) => UiEvent::Error {
            message: message.clone(),
        },
        CallEvent::Ended(reason) => UiEvent::Ended {
            reason: reason.clone(),
        },
        CallEvent::RemoteVideo(_)
        | CallEvent::LocalVideo(_)
        | CallEvent::RemoteAudio(_)
        | CallEvent::IceRestarted { .. }
        | CallEvent::NetworkChanged
        | CallEvent::Stats(_) => return None,
    })
}

fn signaling_event(event: &SignalEvent) -> Option<UiEvent> {
    Some(match event {
        SignalEvent::Joined {
            role,
            state,
            resumed,
            ..
        } => UiEvent::Joined {
            role: match role {
                Role::Host => "host",
                Role::Guest => "guest",
            },
            state: match state {
                ParticipantState::Waiting => "waiting",
                ParticipantState::Admitted => "admitted",
            },
            resumed: *resumed,
        },
        SignalEvent::Knock { peer, name } => UiEvent::Knock {
            peer: peer.to_string(),
            name: name.clone(),
        },
        SignalEvent::Admitted => UiEvent::Admitted,
        SignalEvent::CallReady { .. } => UiEvent::CallReady,
        SignalEvent::PeerReconnecting(_) => UiEvent::PeerReconnecting,
        SignalEvent::PeerResumed(_) => UiEvent::PeerResumed,
        SignalEvent::PeerLeft { reason, .. } => UiEvent::PeerLeft {
            reason: match reason {
                LeaveReason::Left => "left the call",
                LeaveReason::Timeout => "their connection was lost",
            }
            .into(),
        },
        SignalEvent::Reconnecting { attempt, reason } => UiEvent::ServerReconnecting {
            attempt: *attempt,
            reason: reason.clone(),
        },
        SignalEvent::Rejected { message, .. } => UiEvent::Warning {
            message: format!("the server refused a message: {message}"),
        },
        SignalEvent::Ended(reason) => UiEvent::Ended {
            reason: reason.clone(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_to_the_shape_the_ui_reads() {
        let json = |e: UiEvent| serde_json::to_value(e).unwrap();
        assert_eq!(
            json(UiEvent::Knock {
                peer: "p1".into(),
                name: Some("Pat".into())
            }),
            serde_json::json!({"kind": "knock", "peer": "p1", "name": "Pat"})
        );
        assert_eq!(
            json(UiEvent::PeerMedia {
                muted: true,
                camera: false
            }),
            serde_json::json!({"kind": "peer-media", "muted": true, "camera": false})
        );
        assert_eq!(
            json(UiEvent::VerificationCode { code: "a b".into() }),
            serde_json::json!({"kind": "verification-code", "code": "a b"})
        );
    }

    #[test]
    fn media_never_becomes_a_ui_event() {
        let frame = confer_media::VideoFrame::black(16, 16);
        assert_eq!(ui_event(&CallEvent::RemoteVideo(frame.clone())), None);
        assert_eq!(ui_event(&CallEvent::LocalVideo(frame)), None);
        assert_eq!(ui_event(&CallEvent::RemoteAudio(vec![0.0; 480])), None);
        assert_eq!(
            ui_event(&CallEvent::Ended("bye".into())),
            Some(UiEvent::Ended {
                reason: "bye".into()
            })
        );
    }
}
