//! The plumbing of an interceptor that works on packets as they pass, written once.
//!
//! webrtc-rs 0.21's interceptors are sans-io: each takes a packet (`handle_read`,
//! `handle_write`), keeps what it passes on in a queue per direction, and hands it to the next
//! from `poll_read`/`poll_write`. Confer's own (FEC, RTX, the retransmission budget, keyframe
//! requests) only differ in what they do with a packet: a [`Stage`] says that, and
//! [`OnBelt`] is the interceptor registered with webrtc-rs.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;

/// What an interceptor does with the packets passing it. Each method pushes what goes on to
/// `out`: the packet (the default), a changed one, nothing (dropped), or more than one.
pub trait Stage: Send + Sync {
    /// A packet on its way in, from the wire.
    fn read(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        out.push_back(msg);
    }

    /// A packet on its way out, to the wire.
    fn write(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        out.push_back(msg);
    }

    /// Time passing: what to send now goes to `out` (on its way to the wire).
    fn timeout(&mut self, _now: Instant, _out: &mut VecDeque<TaggedPacket>) {}

    /// When [`Stage::timeout`] wants to be called next.
    fn next_timeout(&self) -> Option<Instant> {
        None
    }

    /// A stream we send was set up.
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}

    /// A stream we send was taken down.
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}

    /// A stream we receive was set up.
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    /// A stream we receive was taken down.
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A [`Stage`] as a webrtc-rs interceptor.
#[derive(Default)]
pub struct OnBelt<S> {
    stage: S,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for OnBelt<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnBelt")
            .field("stage", &self.stage)
            .field("reads", &self.reads.len())
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl<S> OnBelt<S> {
    /// `stage` on the belt.
    pub fn new(stage: S) -> Self {
        Self {
            stage,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }

    /// The stage.
    pub fn stage(&self) -> &S {
        &self.stage
    }
}

impl<S: Stage> Protocol<TaggedPacket, TaggedPacket, ()> for OnBelt<S> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.stage.read(msg, &mut self.reads);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.stage.write(msg, &mut self.writes);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.stage.timeout(now, &mut self.writes);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.stage.next_timeout()
    }
}

impl<S: Stage> Interceptor for OnBelt<S> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.stage.bind_local_stream(info);
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.stage.unbind_local_stream(info);
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.stage.bind_remote_stream(info);
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.stage.unbind_remote_stream(info);
    }
}
