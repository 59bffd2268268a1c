//! One call as the app runs it: a task owns the [`CallHandle`], sends its video to the frame
//! socket, its other events to the UI, and carries out the UI's commands in order.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use confer_call::call::{CallEvent, CallHandle};
use confer_frames::{FrameServer, Stream};
use confer_media::VideoFrame;
use confer_media::apm::ProcessingConfig;
use confer_media::mark;

use crate::events::{UiEvent, ui_event};

/// A command from the UI.
#[derive(Debug)]
pub(crate) enum Op {
    Admit(String),
    Deny(String),
    Mute(bool),
    Camera(bool),
    Chat(String, oneshot::Sender<Result<String, String>>),
    SendFile(String, Bytes, oneshot::Sender<u64>),
    CancelTransfer(u64),
    /// Writes a received file to a path the user chose.
    SaveFile(u64, PathBuf, oneshot::Sender<Result<(), String>>),
    SwitchVideo(String, oneshot::Sender<Result<(), String>>),
    SwitchAudio(String, oneshot::Sender<Result<(), String>>),
    SwitchSpeaker(String, oneshot::Sender<Result<(), String>>),
    Processing(ProcessingConfig),
    RestartIce,
    HangUp,
}

/// The running call.
#[derive(Debug)]
pub(crate) struct Session {
    ops: mpsc::UnboundedSender<Op>,
    done: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Runs `call`: `emit` hears every UI event, ending with [`UiEvent::Ended`].
    pub(crate) fn start(
        call: CallHandle,
        frames: Arc<FrameServer>,
        emit: impl Fn(UiEvent) + Send + 'static,
    ) -> Self {
        call.set_local_preview(true);
        let (ops, rx) = mpsc::unbounded_channel();
        let done = tokio::spawn(pump(call, rx, frames, emit));
        Self { ops, done }
    }

    /// Passes a command on; false once the call is over.
    pub(crate) fn send(&self, op: Op) -> bool {
        self.ops.send(op).is_ok()
    }

    /// Whether the call has ended.
    pub(crate) fn is_over(&self) -> bool {
        self.done.is_finished()
    }
}

/// Remote frames carry the sender's capture time in their mark when the sender draws one
/// (the test pattern); then the UI's latency is glass to glass. Otherwise it is measured from
/// here (decoded to drawn).
fn stamp_remote(mut frame: VideoFrame) -> VideoFrame {
    let now = mark::wall_clock_us();
    frame.capture_us = match mark::read(&frame) {
        Some(m) => now.saturating_sub(mark::age_us(m.capture_us, now)),
        None => 0,
    };
    frame
}

async fn pump(
    mut call: CallHandle,
    mut ops: mpsc::UnboundedReceiver<Op>,
    frames: Arc<FrameServer>,
    emit: impl Fn(UiEvent),
) {
    let mut received: HashMap<u64, (String, Bytes)> = HashMap::new();
    let mut ops_open = true;
    loop {
        tokio::select! {
            event = call.next_event() => {
                let Some(event) = event else { break };
                match event {
                    CallEvent::RemoteVideo(frame) => {
                        frames.publish(Stream::Remote, stamp_remote(frame));
                    }
                    CallEvent::LocalVideo(frame) => frames.publish(Stream::Local, frame),
                    CallEvent::Stats(stats) => emit(UiEvent::Stats {
                        call: stats,
                        remote_display: frames.stats(Stream::Remote),
                        local_display: frames.stats(Stream::Local),
                    }),
                    other => {
                        if let Some(ui) = ui_event(&other) {
                            emit(ui);
                        }
                        match other {
                            CallEvent::FileReceived { id, name, data, .. } => {
                                received.insert(id, (name, data));
                            }
                            // One to one: when the other person hangs up, the call is over
                            // here as well (the room is left; the end screen says why).
                            CallEvent::PeerHungUp(_) => call.hang_up(),
                            _ => {}
                        }
                    }
                }
            }
            op = ops.recv(), if ops_open => {
                let Some(op) = op else {
                    // The app is closing: leave politely.
                    ops_open = false;
                    call.hang_up();
                    continue;
                };
                apply(&call, op, &mut received);
            }
        }
    }
}

fn apply(call: &CallHandle, op: Op, received: &mut HashMap<u64, (String, Bytes)>) {
    match op {
        Op::Admit(peer) => call.admit(&peer),
        Op::Deny(peer) => call.deny(&peer),
        Op::Mute(muted) => call.set_muted(muted),
        Op::Camera(on) => call.set_camera(on),
        Op::Chat(text, reply) => {
            let _ = reply.send(call.send_chat(&text));
        }
        Op::SendFile(name, data, reply) => {
            let _ = reply.send(call.send_file(&name, data));
        }
        Op::CancelTransfer(id) => call.cancel_transfer(id),
        Op::SaveFile(id, path, reply) => {
            let result = match received.get(&id) {
                None => Err("that file is no longer held (the call ended or it was saved)".into()),
                Some((_, data)) => std::fs::write(&path, data)
                    .map_err(|e| format!("cannot write {}: {e}", path.display())),
            };
            if result.is_ok() {
                received.remove(&id);
            }
            let _ = reply.send(result);
        }
        Op::SwitchVideo(spec, reply) => {
            let _ = reply.send(call.switch_video(&spec));
        }
        Op::SwitchAudio(spec, reply) => {
            let _ = reply.send(call.switch_audio(&spec));
        }
        Op::SwitchSpeaker(device, reply) => {
            let _ = reply.send(call.switch_speaker(&device));
        }
        Op::Processing(config) => call.set_processing(config),
        Op::RestartIce => call.restart_ice(),
        Op::HangUp => call.hang_up(),
    }
}
