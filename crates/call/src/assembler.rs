//! Reassembles received video frames (VP8 or H.264) from RTP packets the moment their last
//! packet (the marker bit) is in, in order.
//!
//! webrtc-rs's `SampleBuilder` emits a frame only when a packet of the *next* frame arrives,
//! which adds a whole frame interval (33 ms at 30 fps) to glass-to-glass latency. Here a frame
//! is complete when its packets are contiguous from a partition head to a marker. A gap waits
//! for NACK retransmission; once a later frame is complete and the gap is older than
//! [`MAX_WAIT_TICKS`], the gap is given up: its frames are dropped and the next frame reports
//! how many packets were lost before it (the caller asks for a keyframe).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use confer_media::VideoCodec;
use confer_media::jitter::SeqUnwrapper;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// How long (90 kHz RTP ticks: 150 ms) a gap may hold up newer complete frames, unless
/// [`FrameAssembler::set_max_wait`] says otherwise.
pub const MAX_WAIT_TICKS: u32 = 90 * 150;
/// Most packets held while waiting (about 1 s of 720p at 1.5 Mbit/s).
const MAX_PACKETS: usize = 1_024;

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The bitstream (H.264 in Annex B).
    pub data: Bytes,
    /// RTP timestamp.
    pub rtp_timestamp: u32,
    /// Packets given up on since the previous frame.
    pub lost_before: u16,
    /// Whether it waited for a repair: it came out when a missing packet arrived (a
    /// retransmission, a packet rebuilt from FEC) or when a gap was given up, not when its
    /// own last packet arrived in order.
    pub repaired: bool,
}

#[derive(Debug)]
struct Held {
    timestamp: u32,
    marker: bool,
    payload: Bytes,
}

/// The assembler for one stream of one codec.
#[derive(Debug)]
pub struct FrameAssembler {
    codec: VideoCodec,
    packets: BTreeMap<u64, Held>,
    seq: SeqUnwrapper,
    /// First sequence number of the next frame to emit.
    next: Option<u64>,
    /// Newest timestamp seen (for the wait limit); `None` before the first packet.
    newest_ts: Option<u32>,
    /// Highest sequence number seen.
    highest: Option<u64>,
    lost: u64,
    /// Packets given up on and not yet reported with a frame.
    unreported: u64,
    /// The wait limit, RTP ticks.
    max_wait: u32,
}

impl FrameAssembler {
    /// An empty assembler for `codec`.
    pub fn new(codec: VideoCodec) -> Self {
        Self {
            codec,
            packets: BTreeMap::new(),
            seq: SeqUnwrapper::default(),
            next: None,
            newest_ts: None,
            highest: None,
            lost: 0,
            unreported: 0,
            max_wait: MAX_WAIT_TICKS,
        }
    }

    /// The codec it reassembles.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Whether the packet held at `seq` starts a frame.
    fn is_head(&self, seq: u64) -> bool {
        let Some(p) = self.packets.get(&seq) else {
            return false;
        };
        match self.codec {
            // The S bit on partition 0 says it outright.
            VideoCodec::Vp8 => {
                Vp8Packet::default().is_partition_head(&p.payload)
                    && p.payload.first().is_some_and(|b| b & 0x0f == 0)
            }
            // H.264 only says where a NAL unit starts; a frame starts at one whose predecessor
            // is not of the same frame (held with another timestamp, or not held at all).
            VideoCodec::H264 => {
                H264Packet::default().is_partition_head(&p.payload)
                    && seq
                        .checked_sub(1)
                        .and_then(|prev| self.packets.get(&prev))
                        .is_none_or(|prev| prev.timestamp != p.timestamp || prev.marker)
            }
        }
    }

    fn depacketizer(&self) -> Box<dyn Depacketizer + Send> {
        match self.codec {
            VideoCodec::Vp8 => Box::<Vp8Packet>::default(),
            VideoCodec::H264 => Box::<H264Packet>::default(),
        }
    }

    /// How long a gap may hold newer complete frames back before it is given up (a repair
    /// takes about a round trip: the caller sizes this by the RTT).
    pub fn set_max_wait(&mut self, wait: std::time::Duration) {
        self.max_wait = (wait.as_micros() * 90 / 1000).min(u128::from(u32::MAX / 4)) as u32;
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
        // A packet older than one already here filled a gap: whatever it completes waited.
        let mut waited = self.highest.is_some_and(|h| ext < h);
        self.highest = self.highest.max(Some(ext));
        let ts = packet.header.timestamp;
        // Newer in RTP's wrapping order (a stream may start anywhere in the 32 bits).
        if self
            .newest_ts
            .is_none_or(|newest| ts.wrapping_sub(newest) < (1 << 31))
        {
            self.newest_ts = Some(ts);
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
        loop {
            if let Some(frame) = self.complete_at_next() {
                // Packets given up since the last frame out, even in an earlier call.
                let lost_before = std::mem::take(&mut self.unreported);
                out.push(Frame {
                    lost_before: lost_before.min(u64::from(u16::MAX)) as u16,
                    repaired: waited,
                    ..frame
                });
                continue;
            }
            match self.skip_gap() {
                Some(skipped) => {
                    self.unreported += skipped;
                    waited = true;
                }
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
                let head = *self.packets.keys().find(|&&seq| self.is_head(seq))?;
                self.next = Some(head);
                head
            }
        };
        let first = self.packets.get(&start)?;
        if !self.is_head(start) {
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
        let mut depacketizer = self.depacketizer();
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
            self.unreported += end + 1 - start;
        }
        ok.then(|| Frame {
            data: data.freeze(),
            rtp_timestamp: ts,
            lost_before: 0,
            repaired: false,
        })
    }

    /// Gives up on the gap at `next` when a later frame waits behind it for too long; returns
    /// the packets skipped.
    fn skip_gap(&mut self) -> Option<u64> {
        let next = self.next?;
        let oldest_ts = self.packets.range(next..).next()?.1.timestamp;
        let waited = self.newest_ts?.wrapping_sub(oldest_ts);
        if waited < self.max_wait && self.packets.len() < MAX_PACKETS {
            return None;
        }
        // Resume at the first partition head of a frame newer than the oldest held.
        let resume = self
            .packets
            .range(next..)
            .find(|&(&seq, p)| p.timestamp != oldest_ts && self.is_head(seq))
            .map(|(seq, _)| *seq)?;
        let skipped = resume - next;
        self.packets = self.packets.split_off(&resume);
        self.next = Some(resume);
        self.lost += skipped;
        Some(skipped)
    }
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

    /// An H.264 frame as an RTP packetizer sends it: the SPS and PPS together (STAP-A), then
    /// one slice in FU-A fragments of two bytes.
    fn h264_frame(seq: u16, ts: u32) -> Vec<rtc::rtp::Packet> {
        let payloads: [&[u8]; 4] = [
            &[0x78, 0, 2, 0x67, 1, 0, 2, 0x68, 2], // STAP-A: SPS [0x67 1], PPS [0x68 2]
            &[0x7c, 0x80 | 5, 10, 11],             // FU-A start, IDR slice (NRI 3)
            &[0x7c, 5, 12, 13],
            &[0x7c, 0x40 | 5, 14, 15], // FU-A end
        ];
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| rtc::rtp::Packet {
                header: Header {
                    sequence_number: seq.wrapping_add(i as u16),
                    timestamp: ts,
                    marker: i == 3,
                    payload_type: 102,
                    ..Default::default()
                },
                payload: Bytes::copy_from_slice(p),
            })
            .collect()
    }

    #[test]
    fn h264_frames_come_out_in_annex_b_and_a_lost_fragment_is_given_up() {
        let mut a = FrameAssembler::new(VideoCodec::H264);
        let mut out = Vec::new();
        for p in h264_frame(500, 3000) {
            out.extend(a.push(&p));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].data.as_ref(),
            &[
                0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, // SPS, PPS
                0, 0, 0, 1, 0x65, 10, 11, 12, 13, 14, 15, // the slice, NAL header rebuilt
            ]
        );
        // A frame missing its middle fragment is waited for, then skipped: the frames after it
        // start at their STAP-A, not at a stray fragment.
        let broken = h264_frame(504, 6000);
        a.push(&broken[0]);
        a.push(&broken[1]);
        a.push(&broken[3]);
        let mut ts = 6000;
        let mut seq = 508;
        let mut later = Vec::new();
        while later.is_empty() {
            ts += 3000;
            for p in h264_frame(seq, ts) {
                later.extend(a.push(&p));
            }
            seq += 4;
        }
        assert_eq!(
            later[0].lost_before, 4,
            "the four packets of the broken frame"
        );
        assert!(
            later
                .iter()
                .all(|f| f.data.starts_with(&[0, 0, 0, 1, 0x67]))
        );
    }

    #[test]
    fn a_frame_comes_out_with_its_last_packet_not_with_the_next_frame() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let pkts = frame(65_534, 1000, 3, 7); // across the sequence wrap
        assert!(a.push(&pkts[0]).is_empty());
        assert!(a.push(&pkts[1]).is_empty());
        let out = a.push(&pkts[2]);
        assert_eq!(out.len(), 1, "complete at the marker");
        assert_eq!(out[0].data.as_ref(), &[7; 9]);
        assert_eq!((out[0].rtp_timestamp, out[0].lost_before), (1000, 0));
        assert!(!out[0].repaired, "in order: it waited for nothing");
    }

    #[test]
    fn reordered_packets_wait_and_frames_leave_in_order() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let f1 = frame(10, 3000, 2, 1);
        let f2 = frame(12, 6000, 2, 2);
        assert!(a.push(&f1[0]).is_empty());
        assert!(a.push(&f2[0]).is_empty());
        assert!(a.push(&f2[1]).is_empty(), "frame 2 waits for frame 1");
        let out = a.push(&f1[1]);
        let ts: Vec<u32> = out.iter().map(|f| f.rtp_timestamp).collect();
        assert_eq!(ts, [3000, 6000]);
        assert!(
            out.iter().all(|f| f.repaired),
            "both waited for the missing packet"
        );
        let next = frame(14, 9000, 2, 3);
        a.push(&next[0]);
        assert!(!a.push(&next[1])[0].repaired, "then in order again");
        // A retransmitted copy of something already emitted is ignored.
        assert!(a.push(&f1[1]).is_empty());
    }

    /// A stream starting at RTP timestamp `start`, whose first frame loses a packet.
    fn lost_packet_is_waited_for(start: u32) {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let lossy = frame(100, start, 3, 1);
        a.push(&lossy[0]);
        a.push(&lossy[2]); // lossy[1] never comes
        // Newer frames complete while the gap is young: held back (a NACK may repair it).
        let mut seq = 103u16;
        let mut ts = start;
        let mut out = Vec::new();
        while out.is_empty() {
            ts = ts.wrapping_add(3000);
            for p in frame(seq, ts, 2, 2) {
                out.extend(a.push(&p));
            }
            seq += 2;
        }
        assert!(
            ts.wrapping_sub(start) >= MAX_WAIT_TICKS,
            "starting at {start}: held until the wait limit, not {}",
            ts.wrapping_sub(start)
        );
        assert_eq!(
            out[0].lost_before, 3,
            "the three packets of the broken frame"
        );
        assert_eq!(a.lost(), 3);
        // Those held behind the gap waited; the newest came out with its own last packet.
        let (newest, held) = out.split_last().expect("frames");
        assert!(
            !held.is_empty() && held.iter().all(|f| f.repaired),
            "held behind the gap"
        );
        assert!(
            !newest.repaired,
            "completed in order after the gap was given up"
        );
        // Everything queued behind the gap came out, in order.
        assert!(
            out.windows(2).all(
                |w| (1..1 << 31).contains(&w[1].rtp_timestamp.wrapping_sub(w[0].rtp_timestamp))
            )
        );
        assert_eq!(out.last().expect("frames").rtp_timestamp, ts);
    }

    #[test]
    fn a_lost_packet_is_waited_for_then_given_up_and_reported() {
        // Anywhere in the 32-bit timestamp space: a stream may start past 2^31, or wrap.
        for start in [9000, 0x9000_0000, u32::MAX - 10_000] {
            lost_packet_is_waited_for(start);
        }
    }

    #[test]
    fn the_wait_follows_the_round_trip_time() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        a.set_max_wait(std::time::Duration::from_millis(300));
        let lossy = frame(100, 0, 3, 1);
        a.push(&lossy[0]);
        a.push(&lossy[2]);
        for p in frame(103, 90 * 290, 2, 2) {
            assert!(a.push(&p).is_empty(), "still waiting at 290 ms");
        }
        let out: Vec<Frame> = frame(105, 90 * 300, 2, 3)
            .iter()
            .flat_map(|p| a.push(p))
            .collect();
        assert_eq!(out.len(), 2, "given up at 300 ms");
    }

    #[test]
    fn a_gap_given_up_before_the_next_frame_is_whole_is_still_reported() {
        let mut a = FrameAssembler::new(VideoCodec::Vp8);
        let lossy = frame(100, 0, 3, 1);
        a.push(&lossy[0]);
        a.push(&lossy[2]);
        // Only the first half of a much later frame: the gap is given up, nothing is whole.
        let late = frame(103, MAX_WAIT_TICKS + 3000, 2, 2);
        assert!(a.push(&late[0]).is_empty());
        assert_eq!(a.lost(), 3);
        let out = a.push(&late[1]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].lost_before, 3, "reported with the next frame out");
    }
}
