//! Reassembles received VP8 frames from RTP packets the moment their last packet (the marker
//! bit) is in, in order.
//!
//! webrtc-rs's `SampleBuilder` emits a frame only when a packet of the *next* frame arrives,
//! which adds a whole frame interval (33 ms at 30 fps) to glass-to-glass latency. Here a frame
//! is complete when its packets are contiguous from a partition head to a marker. A gap waits
//! for NACK retransmission; once a later frame is complete and the gap is older than
//! [`MAX_WAIT_TICKS`], the gap is given up: its frames are dropped and the next frame reports
//! how many packets were lost before it (the caller asks for a keyframe).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use confer_media::jitter::SeqUnwrapper;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// How long (90 kHz RTP ticks: 150 ms) a gap may hold up newer complete frames.
pub const MAX_WAIT_TICKS: u32 = 90 * 150;
/// Most packets held while waiting (about 1 s of 720p at 1.5 Mbit/s).
const MAX_PACKETS: usize = 1_024;

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The VP8 bitstream.
    pub data: Bytes,
    /// RTP timestamp.
    pub rtp_timestamp: u32,
    /// Packets given up on since the previous frame.
    pub lost_before: u16,
}

#[derive(Debug)]
struct Held {
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

/// The assembler for one VP8 stream.
#[derive(Debug, Default)]
pub struct FrameAssembler {
    packets: BTreeMap<u64, Held>,
    seq: SeqUnwrapper,
    /// First sequence number of the next frame to emit.
    next: Option<u64>,
    /// Newest timestamp seen (for the wait limit).
    newest_ts: u32,
    lost: u64,
}

impl FrameAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets given up on so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Adds a packet; returns the frames it completed, oldest first.
    pub fn push(&mut self, packet: &rtc::rtp::Packet) -> Vec<Frame> {
        let ext = self.seq.unwrap(packet.header.sequence_number);
        if self.next.is_some_and(|n| ext < n) || packet.payload.is_empty() {
            return Vec::new(); // late (its frame was emitted or given up) or padding
        }
        let ts = packet.header.timestamp;
        if ts.wrapping_sub(self.newest_ts) < (1 << 31) {
            self.newest_ts = ts;
        }
        self.packets.insert(
            ext,
            Held {
                timestamp: ts,
                marker: packet.header.marker,
                payload: packet.payload.clone(),
            },
        );
        let mut out = Vec::new();
        let mut lost_before = 0u64;
        loop {
            if let Some(frame) = self.complete_at_next() {
                out.push(Frame {
                    lost_before: lost_before.min(u64::from(u16::MAX)) as u16,
                    ..frame
                });
                lost_before = 0;
                continue;
            }
            match self.skip_gap() {
                Some(skipped) => lost_before += skipped,
                None => break,
            }
        }
        out
    }

    /// The frame starting at `next`, if all of it is here.
    fn complete_at_next(&mut self) -> Option<Frame> {
        let start = match self.next {
            Some(n) => n,
            None => {
                // The first frame: start at the oldest partition head held.
                let head = self.packets.iter().find(|(_, p)| is_head(&p.payload))?.0;
                self.next = Some(*head);
                *head
            }
        };
        let first = self.packets.get(&start)?;
        if !is_head(&first.payload) {
            return None;
        }
        let ts = first.timestamp;
        let mut end = start;
        loop {
            let p = self.packets.get(&end)?;
            if p.timestamp != ts {
                return None; // the frame's end was lost: treat as a gap
            }
            if p.marker {
                break;
            }
            end += 1;
        }
        let mut depacketizer = Vp8Packet::default();
        let mut data = BytesMut::new();
        let mut ok = true;
        for seq in start..=end {
            let p = self.packets.remove(&seq).expect("checked above");
            match depacketizer.depacketize(&p.payload) {
                Ok(part) => data.extend_from_slice(&part),
                Err(_) => ok = false,
            }
        }
        self.next = Some(end + 1);
        if !ok {
            self.lost += end + 1 - start;
        }
        ok.then(|| Frame {
            data: data.freeze(),
            rtp_timestamp: ts,
            lost_before: 0,
        })
    }

    /// Gives up on the gap at `next` when a later frame waits behind it for too long; returns
    /// the packets skipped.
    fn skip_gap(&mut self) -> Option<u64> {
        let next = self.next?;
        let oldest_ts = self.packets.range(next..).next()?.1.timestamp;
        let waited = self.newest_ts.wrapping_sub(oldest_ts);
        if waited < MAX_WAIT_TICKS && self.packets.len() < MAX_PACKETS {
            return None;
        }
        // Resume at the first partition head of a frame newer than the oldest held.
        let resume = self
            .packets
            .range(next..)
            .find(|(_, p)| p.timestamp != oldest_ts && is_head(&p.payload))
            .map(|(seq, _)| *seq)?;
        let skipped = resume - next;
        self.packets = self.packets.split_off(&resume);
        self.next = Some(resume);
        self.lost += skipped;
        Some(skipped)
    }
}

/// Whether a VP8 payload starts a frame (S bit set, partition 0).
fn is_head(payload: &Bytes) -> bool {
    Vp8Packet::default().is_partition_head(payload)
        && payload.first().is_some_and(|b| b & 0x0f == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::Header;

    /// A VP8 RTP packet: the one-byte payload descriptor (S bit on a frame's first packet),
    /// then the frame byte `tag` three times.
    fn packet(seq: u16, ts: u32, first: bool, last: bool, tag: u8) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: Header {
                sequence_number: seq,
                timestamp: ts,
                marker: last,
                payload_type: 96,
                ..Default::default()
            },
            payload: Bytes::from(vec![if first { 0x10 } else { 0x00 }, tag, tag, tag]),
        }
    }

    fn frame(seq: u16, ts: u32, parts: usize, tag: u8) -> Vec<rtc::rtp::Packet> {
        (0..parts)
            .map(|i| packet(seq.wrapping_add(i as u16), ts, i == 0, i + 1 == parts, tag))
            .collect()
    }

    #[test]
    fn a_frame_comes_out_with_its_last_packet_not_with_the_next_frame() {
        let mut a = FrameAssembler::new();
        let pkts = frame(65_534, 1000, 3, 7); // across the sequence wrap
        assert!(a.push(&pkts[0]).is_empty());
        assert!(a.push(&pkts[1]).is_empty());
        let out = a.push(&pkts[2]);
        assert_eq!(out.len(), 1, "complete at the marker");
        assert_eq!(out[0].data.as_ref(), &[7; 9]);
        assert_eq!((out[0].rtp_timestamp, out[0].lost_before), (1000, 0));
    }

    #[test]
    fn reordered_packets_wait_and_frames_leave_in_order() {
        let mut a = FrameAssembler::new();
        let f1 = frame(10, 3000, 2, 1);
        let f2 = frame(12, 6000, 2, 2);
        assert!(a.push(&f1[0]).is_empty());
        assert!(a.push(&f2[0]).is_empty());
        assert!(a.push(&f2[1]).is_empty(), "frame 2 waits for frame 1");
        let out = a.push(&f1[1]);
        let ts: Vec<u32> = out.iter().map(|f| f.rtp_timestamp).collect();
        assert_eq!(ts, [3000, 6000]);
        // A retransmitted copy of something already emitted is ignored.
        assert!(a.push(&f1[1]).is_empty());
    }

    #[test]
    fn a_lost_packet_is_waited_for_then_given_up_and_reported() {
        let mut a = FrameAssembler::new();
        let lossy = frame(100, 9000, 3, 1);
        a.push(&lossy[0]);
        a.push(&lossy[2]); // lossy[1] never comes
        // Newer frames complete while the gap is young: held back (a NACK may repair it).
        let mut seq = 103u16;
        let mut ts = 9000u32;
        let mut out = Vec::new();
        while out.is_empty() {
            ts += 3000;
            for p in frame(seq, ts, 2, 2) {
                out.extend(a.push(&p));
            }
            seq += 2;
        }
        assert!(
            ts - 9000 >= MAX_WAIT_TICKS,
            "held until the wait limit: {}",
            ts - 9000
        );
        assert_eq!(
            out[0].lost_before, 3,
            "the three packets of the broken frame"
        );
        assert_eq!(a.lost(), 3);
        // Everything queued behind the gap came out, in order.
        assert!(
            out.windows(2)
                .all(|w| w[1].rtp_timestamp > w[0].rtp_timestamp)
        );
        assert_eq!(out.last().expect("frames").rtp_timestamp, ts);
    }
}
