//! Retransmissions on their own stream (RTX, RFC 4588) around webrtc-rs's NACK interceptors.
//!
//! rtc 0.21.1 sends a NACKed packet as RTX when the video encoding has an RTX SSRC: the NACK
//! responder wraps it (two bytes of original sequence number, then the payload) on the RTX
//! SSRC, with the RTX payload type of the codec the track was made with. Two things are left
//! to this interceptor:
//!
//! - **Sending**: Confer's one video track carries VP8 or H.264, whichever the far side
//!   prefers, but webrtc-rs binds the track to VP8 (see `peer::video_out`), so every
//!   retransmission would name VP8's RTX type, and a receiver would unwrap H.264 as VP8.
//!   Here each outgoing RTX packet gets the RTX type whose `apt` is the payload type the
//!   original packet was sent with. When the far side negotiated no RTX for it, the packet
//!   goes back to being a plain retransmission on the media SSRC, as without RTX.
//! - **Receiving**: webrtc-rs unwraps RTX only after the interceptors, so its NACK generator
//!   never sees a repaired sequence number arrive and asks for it again (each ask costs a
//!   retransmission). Placed before the generator, this unwraps RTX first: the generator,
//!   the receiver reports and the assembler all see the original packet on its own stream.
//!
//! The payload-type pairs come from the remote description (`a=fmtp:<rtx> apt=<media>`), as
//! the video codecs do; the SSRC pairs from the streams webrtc-rs binds (its `a=ssrc-group:FID`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rtc::interceptor::{Attribute, Packet, StreamInfo, TaggedPacket};

use crate::belt::Stage;

/// The remote description's RTX payload types: `(rtx, apt)`, the RTX type and the media type
/// it repairs.
pub type RtxTypes = Arc<std::sync::RwLock<Vec<(u8, u8)>>>;

/// The `(rtx, apt)` pairs of an SDP's `m=video` section, in its order.
pub fn rtx_payload_types(sdp: &str) -> Vec<(u8, u8)> {
    let mut in_video = false;
    let mut rtx = Vec::new();
    let mut apt = HashMap::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video ");
            continue;
        }
        if !in_video {
            continue;
        }
        if let Some(map) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, name)) = map.split_once(' ')
            && name.to_ascii_lowercase().starts_with("rtx/")
            && let Ok(pt) = pt.parse::<u8>()
        {
            rtx.push(pt);
        } else if let Some(fmtp) = line.strip_prefix("a=fmtp:")
            && let Some((pt, params)) = fmtp.split_once(' ')
            && let Ok(pt) = pt.parse::<u8>()
            && let Some(media) = params
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix("apt="))
                .and_then(|v| v.parse::<u8>().ok())
        {
            apt.insert(pt, media);
        }
    }
    rtx.into_iter()
        .filter_map(|pt| Some((pt, *apt.get(&pt)?)))
        .collect()
}

/// What RTX did so far.
#[derive(Debug, Default)]
pub struct RtxCounters {
    /// Retransmissions sent as RTX.
    pub sent: AtomicU64,
    /// Retransmissions sent on the media stream (the far side takes no RTX for that type).
    pub sent_plain: AtomicU64,
    /// RTX packets received and unwrapped.
    pub received: AtomicU64,
}

/// Sequence numbers remembered per sent stream, to find a retransmitted packet's payload type
/// (about 1.5 s of 720p video; the NACK responder keeps fewer).
const HISTORY: usize = 2048;

/// The interceptor (see the module docs). It goes between the NACK responder and the wire
/// (write side) and between the wire and the NACK generator (read side).
pub struct Rtx {
    types: RtxTypes,
    /// Received RTX SSRC → media SSRC.
    remote: HashMap<u32, u32>,
    /// Sent RTX SSRC → media SSRC.
    local: HashMap<u32, u32>,
    /// Per sent media SSRC: (sequence number, payload type) by sequence number modulo
    /// [`HISTORY`].
    sent: HashMap<u32, Vec<Option<(u16, u8)>>>,
    counters: Arc<RtxCounters>,
}

impl std::fmt::Debug for Rtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtx")
            .field("remote", &self.remote)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Rtx {
    /// An interceptor reading the payload-type pairs from `types` and counting into `counters`.
    pub fn new(types: RtxTypes, counters: Arc<RtxCounters>) -> Self {
        Self {
            types,
            remote: HashMap::new(),
            local: HashMap::new(),
            sent: HashMap::new(),
            counters,
        }
    }

    fn rtx_for(&self, media: u8) -> Option<u8> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types
            .iter()
            .find_map(|&(rtx, apt)| (apt == media).then_some(rtx))
    }

    fn media_for(&self, rtx: u8) -> Option<u8> {
        let types = self.types.read().unwrap_or_else(|e| e.into_inner());
        types.iter().find_map(|&(r, apt)| (r == rtx).then_some(apt))
    }
}

/// The original sequence number an RTX payload starts with; `None` for a padding-only packet.
fn original_sequence(payload: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(payload.get(..2)?.try_into().ok()?))
}

/// Turns an RTX packet back into the packet it repairs (RFC 4588 §4): the media SSRC, type and
/// original sequence number; timestamp, marker and extensions as they are.
fn unwrap(packet: &mut rtc::rtp::Packet, ssrc: u32, payload_type: u8) -> bool {
    let Some(seq) = original_sequence(&packet.payload) else {
        return false;
    };
    packet.header.ssrc = ssrc;
    packet.header.payload_type = payload_type;
    packet.header.sequence_number = seq;
    packet.payload = Bytes::copy_from_slice(&packet.payload[2..]);
    true
}

impl Stage for Rtx {
    fn read(&mut self, mut msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtp(p) = &mut msg.message.packet
            && let Some(&media_ssrc) = self.remote.get(&p.header.ssrc)
        {
            // Not a type the remote description pairs: left for webrtc-rs to deal with.
            if let Some(media_type) = self.media_for(p.header.payload_type) {
                if !unwrap(p, media_ssrc, media_type) {
                    return; // padding only (a probe): nothing to repair
                }
                self.counters.received.fetch_add(1, Ordering::Relaxed);
            }
        }
        out.push_back(msg);
    }

    fn write(&mut self, mut msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        let retransmission = msg.message.has(&Attribute::Retransmission);
        if let Packet::Rtp(p) = &mut msg.message.packet {
            let ssrc = p.header.ssrc;
            if let Some(&media_ssrc) = self.local.get(&ssrc) {
                let original = original_sequence(&p.payload).and_then(|seq| {
                    let sent = self.sent.get(&media_ssrc)?;
                    sent[usize::from(seq) % HISTORY]
                        .filter(|&(s, _)| s == seq)
                        .map(|(_, pt)| pt)
                });
                let Some(media_type) = original else {
                    return; // no longer known what it was: not worth a wrong guess
                };
                match self.rtx_for(media_type) {
                    Some(rtx_type) => {
                        p.header.payload_type = rtx_type;
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        unwrap(p, media_ssrc, media_type);
                        self.counters.sent_plain.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else if let Some(sent) = self.sent.get_mut(&ssrc)
                && !retransmission
            {
                let seq = p.header.sequence_number;
                sent[usize::from(seq) % HISTORY] = Some((seq, p.header.payload_type));
            }
        }
        out.push_back(msg);
    }

    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.local.insert(rtx, info.ssrc);
            self.sent.insert(info.ssrc, vec![None; HISTORY]);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.local.remove(&rtx);
            self.sent.remove(&info.ssrc);
        }
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.remote.insert(rtx, info.ssrc);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.remote.remove(&rtx);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::belt::OnBelt;
    use rtc::interceptor::{AttributedPacket, Interceptor};
    use rtc::sansio::Protocol;
    use rtc::shared::TransportContext;
    use std::time::Instant;

    const SDP: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\na=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n";

    #[test]
    fn pairs_come_from_the_video_section() {
        assert_eq!(rtx_payload_types(SDP), vec![(97, 96), (103, 102)]);
        assert!(
            rtx_payload_types("v=0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n")
                .is_empty()
        );
    }

    /// An outgoing RTP packet (for other interceptors' tests too).
    pub(crate) fn packet(ssrc: u32, pt: u8, seq: u16, payload: &[u8]) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    ssrc,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: 9000,
                    ..Default::default()
                },
                payload: Bytes::copy_from_slice(payload),
            })),
        }
    }

    fn rtp(msg: &TaggedPacket) -> &rtc::rtp::Packet {
        match &msg.message.packet {
            Packet::Rtp(p) => p,
            _ => panic!("not RTP"),
        }
    }

    fn stream(ssrc: u32, rtx: u32) -> StreamInfo {
        StreamInfo {
            ssrc,
            ssrc_rtx: Some(rtx),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        }
    }

    fn interceptor(types: Vec<(u8, u8)>) -> (OnBelt<Rtx>, Arc<RtxCounters>) {
        let counters = Arc::new(RtxCounters::default());
        let rtx = Rtx::new(
            Arc::new(std::sync::RwLock::new(types)),
            Arc::clone(&counters),
        );
        (OnBelt::new(rtx), counters)
    }

    #[test]
    fn a_received_rtx_packet_becomes_the_packet_it_repairs() {
        let (mut rtx, counters) = interceptor(rtx_payload_types(SDP));
        rtx.bind_remote_stream(&stream(1000, 2000));
        // H.264 repaired: RTX type 103 names media type 102.
        rtx.handle_read(packet(2000, 103, 7, &[0x12, 0x34, 0xaa, 0xbb]))
            .unwrap();
        let out = rtx.poll_read().unwrap();
        let p = rtp(&out);
        assert_eq!((p.header.ssrc, p.header.payload_type), (1000, 102));
        assert_eq!(p.header.sequence_number, 0x1234);
        assert_eq!(&p.payload[..], &[0xaa, 0xbb]);
        assert_eq!(p.header.timestamp, 9000);
        assert_eq!(counters.received.load(Ordering::Relaxed), 1);
        // A padding-only RTX packet (a probe) carries nothing to repair.
        rtx.handle_read(packet(2000, 97, 8, &[])).unwrap();
        assert!(rtx.poll_read().is_none());
        // Media packets pass as they are.
        rtx.handle_read(packet(1000, 96, 9, &[1])).unwrap();
        assert_eq!(rtp(&rtx.poll_read().unwrap()).header.sequence_number, 9);
    }

    /// The NACK responder names VP8's RTX type whatever was sent: a retransmitted H.264
    /// packet leaves with H.264's.
    #[test]
    fn a_sent_rtx_packet_names_the_rtx_type_of_what_it_repairs() {
        let (mut rtx, counters) = interceptor(rtx_payload_types(SDP));
        rtx.bind_local_stream(&stream(1000, 2000));
        rtx.handle_write(packet(1000, 102, 500, &[0xaa])).unwrap();
        rtx.handle_write(packet(1000, 96, 501, &[0xbb])).unwrap();
        assert_eq!(
            rtx.poll_write().map(|m| rtp(&m).header.payload_type),
            Some(102)
        );
        assert_eq!(
            rtx.poll_write().map(|m| rtp(&m).header.payload_type),
            Some(96)
        );
        for (seq, want) in [(500u16, 103), (501, 97)] {
            let [hi, lo] = seq.to_be_bytes();
            rtx.handle_write(packet(2000, 97, 1, &[hi, lo, 0xcc]))
                .unwrap();
            let out = rtx.poll_write().unwrap();
            assert_eq!(
                (rtp(&out).header.ssrc, rtp(&out).header.payload_type),
                (2000, want)
            );
        }
        assert_eq!(counters.sent.load(Ordering::Relaxed), 2);
        // A retransmission of a packet no longer remembered is not sent under a guess.
        rtx.handle_write(packet(2000, 97, 2, &[0x00, 0x05, 0xcc]))
            .unwrap();
        assert!(rtx.poll_write().is_none());
    }

    #[test]
    fn without_rtx_for_the_type_a_retransmission_goes_on_the_media_stream() {
        let (mut rtx, counters) = interceptor(vec![(97, 96)]);
        rtx.bind_local_stream(&stream(1000, 2000));
        rtx.handle_write(packet(1000, 102, 500, &[0xaa])).unwrap();
        rtx.poll_write().unwrap();
        rtx.handle_write(packet(2000, 97, 1, &[0x01, 0xf4, 0xaa]))
            .unwrap();
        let out = rtx.poll_write().unwrap();
        let p = rtp(&out);
        assert_eq!(
            (
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number
            ),
            (1000, 102, 500)
        );
        assert_eq!(&p.payload[..], &[0xaa]);
        assert_eq!(counters.sent_plain.load(Ordering::Relaxed), 1);
    }
}
