//! Forward error correction for video: FlexFEC-03 repair packets on their own SSRC
//! (`a=ssrc-group:FEC-FR`, negotiated like RTX), sized to the loss and the round trip.
//!
//! A retransmission costs a round trip: with 300 ms each way a frame behind a lost packet is
//! shown 600 ms late, or given up. A repair packet sent with the frame rebuilds one lost packet
//! of its block where it lands. libwebrtc does the same (NACK and FEC together, FEC weighted up
//! as the round trip grows); here the repair packets per ten media packets follow the loss the
//! far side's transport-wide feedback reports ([`repair_per_ten`]), and the encoder is given
//! that much less ([`crate::rate::SendRate`]), so protection never adds to a congested path.
//!
//! rtc 0.21.1 brings a draft-03 encoder and decoder, and interceptors around them that do not
//! fit here: the sending one has a fixed block shape (5 media + 2 repair, 40% always), and the
//! receiving one decodes packets with the transport-wide sequence number the sender added
//! after protecting them (it rebuilt garbage) and swallows the repair packets before the
//! transport-wide feedback sees them arrive. [`FecSender`] builds blocks that end at a
//! frame's end with a repair count that changes with the path, off when there is nothing to
//! repair, and masks of its own ([`crate::fec_encoder`]: two losses in a block are rebuilt
//! far more often than with rtc's interleaved ones); [`FecReceiver`] and [`FecRepairSink`]
//! decode with rtc's decoder and feed back correctly.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rtc::interceptor::{
    Attribute, AttributedPacket, FlexFec03Decoder, Packet, StreamInfo, TaggedPacket,
};

use crate::belt::Stage;
use crate::fec_encoder::RepairEncoder;

/// Repair packets sent per ten media packets (0: none), set once a second by the call from
/// [`repair_per_ten`] and read by the sender and by the encoder's rate.
pub type Protection = Arc<AtomicU32>;

/// The most repair packets per ten media packets: beyond this much loss, FEC costs more of the
/// rate than it saves (libwebrtc caps its protection at a similar share).
pub const MAX_PER_TEN: u32 = 6;
/// Below this round trip a retransmission is about as quick as waiting for a block's repair
/// packets, and costs nothing on a clean path.
const MIN_RTT_MS: f64 = 40.0;
/// Up to this round trip retransmissions still arrive within a few frames, so half the
/// protection is enough (as libwebrtc weighs NACK against FEC between 20 and 100 ms).
const FULL_RTT_MS: f64 = 100.0;
/// Loss below this is left to retransmissions.
const MIN_LOSS: f64 = 0.01;
/// From this round trip on protection is doubled: a block FEC cannot rebuild holds the
/// frames after it (each needs the one before) for the retransmission's round trip, which at
/// 600 ms is 18 frames for every block lost.
const LONG_RTT_MS: f64 = 400.0;

/// Repair packets per ten media packets for `loss` (0..1, [`held_loss`]) and the round trip:
/// 2.5 times the loss, half that under 100 ms of round trip, twice that from 400 ms, none
/// under 40 ms or 1%. With 5% lost a block of ten gets two, which rebuild any one loss and
/// 33 of the 45 pairs; from 400 ms of round trip, three, which rebuild 42.
pub fn repair_per_ten(loss: f64, rtt_ms: f64) -> u32 {
    if loss < MIN_LOSS || rtt_ms < MIN_RTT_MS {
        return 0;
    }
    let weight = if rtt_ms < FULL_RTT_MS {
        12.5
    } else if rtt_ms < LONG_RTT_MS {
        25.0
    } else {
        50.0
    };
    ((loss.min(1.0) * weight).ceil() as u32).clamp(1, MAX_PER_TEN)
}

/// The loss protection is sized for, given last second's `seen` and the figure before: up at
/// once, down by 15% a second. One second of video is 30-60 packets, so 5% lost reads as
/// anything from 0 to 10% from one second to the next; sized to each second alone, protection
/// was off for a third of a 5% call (measured at 300 ms each way).
pub fn held_loss(previous: f64, seen: f64) -> f64 {
    seen.clamp(0.0, 1.0).max(previous * 0.85)
}

/// What FEC did so far.
#[derive(Debug, Default)]
pub struct FecCounters {
    /// Repair packets sent.
    pub sent: AtomicU64,
    /// Media packets the far side's repair packets rebuilt here.
    pub recovered: AtomicU64,
}

/// A block ends at the end of a frame once it holds this many packets (fewer would make even
/// one repair packet a large share), or anywhere at [`BLOCK`].
const MIN_BLOCK: usize = 4;
/// The longest block: one repair packet in ten at the least protection.
const BLOCK: usize = 10;

struct Stream {
    encoder: RepairEncoder,
    block: Vec<rtc::rtp::Packet>,
}

/// The sending interceptor: at [`rtc::interceptor::Slot::FecEncoder`], above the NACK
/// responder (retransmissions are not protected again) and the pacer, transport-wide numbering
/// and congestion control (which see the repair packets as the real packets they are).
pub struct FecSender {
    protection: Protection,
    counters: Arc<FecCounters>,
    /// Keyed by the media SSRC.
    streams: HashMap<u32, Stream>,
}

impl std::fmt::Debug for FecSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FecSender")
            .field("protection", &self.protection)
            .field("streams", &self.streams.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl FecSender {
    /// A sender protecting as `protection` says, counting into `counters`.
    pub fn new(protection: Protection, counters: Arc<FecCounters>) -> Self {
        Self {
            protection,
            counters,
            streams: HashMap::new(),
        }
    }
}

impl Stage for FecSender {
    fn write(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        let (now, transport) = (msg.now, msg.transport);
        let Packet::Rtp(packet) = &msg.message.packet else {
            out.push_back(msg);
            return;
        };
        let per_ten = self.protection.load(Ordering::Relaxed).min(MAX_PER_TEN);
        let Some(stream) = self.streams.get_mut(&packet.header.ssrc) else {
            out.push_back(msg);
            return;
        };
        if per_ten == 0 {
            stream.block.clear();
            out.push_back(msg);
            return;
        }
        // A block is a consecutive run (the masks count from its first sequence number).
        if stream.block.last().is_some_and(|last| {
            last.header.sequence_number.wrapping_add(1) != packet.header.sequence_number
        }) {
            stream.block.clear();
        }
        stream.block.push(packet.clone());
        let full = stream.block.len() >= BLOCK
            || (packet.header.marker && stream.block.len() >= MIN_BLOCK);
        // The media packet leaves first; its block's repair packets follow it.
        out.push_back(msg);
        if full {
            let repairs = (stream.block.len() * per_ten as usize).div_ceil(BLOCK);
            let packets = stream.encoder.encode(&stream.block, repairs);
            stream.block.clear();
            self.counters
                .sent
                .fetch_add(packets.len() as u64, Ordering::Relaxed);
            out.extend(packets.into_iter().map(|p| TaggedPacket {
                now,
                transport,
                message: AttributedPacket::new(Packet::Rtp(p)),
            }));
        }
    }

    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let (Some(ssrc), Some(payload_type)) = (info.ssrc_fec, info.payload_type_fec) {
            // A random first sequence number, as for any RTP stream (RFC 3550).
            let encoder = RepairEncoder::new(payload_type, ssrc, rand::random());
            self.streams.insert(
                info.ssrc,
                Stream {
                    encoder,
                    block: Vec::new(),
                },
            );
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }
}

/// The receiving interceptor, at [`rtc::interceptor::Slot::FecDecoder`] (below the NACK
/// generator, so a rebuilt packet is not asked for again): rtc's draft-03 decoder, fed what
/// the sender protected.
///
/// The sender protects packets before they get their transport-wide sequence number (the
/// repair packets need one too, so protection sits above that numbering), and the decoder
/// XORs whole packets, extensions included. rtc's own receiving interceptor feeds it the
/// packets as they arrived, with that extension, and rebuilt garbage; here the decoder gets
/// copies without it. Repair packets go on up so the transport-wide feedback reports their
/// arrival (consumed here, they would count as lost), and [`FecRepairSink`] ends them there.
pub struct FecReceiver {
    counters: Arc<FecCounters>,
    /// Decoder and the transport-wide extension's id, by media SSRC.
    decoders: HashMap<u32, (FlexFec03Decoder, Option<u8>)>,
    /// Repair SSRC → media SSRC.
    repair_to_media: HashMap<u32, u32>,
}

impl std::fmt::Debug for FecReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FecReceiver")
            .field("repair_to_media", &self.repair_to_media)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl FecReceiver {
    /// Counting what it rebuilds into `counters`.
    pub fn new(counters: Arc<FecCounters>) -> Self {
        Self {
            counters,
            decoders: HashMap::new(),
            repair_to_media: HashMap::new(),
        }
    }
}

/// `packet` as it was before the transport-wide sequence number was added (extension `id`).
fn without_extension(packet: &rtc::rtp::Packet, id: Option<u8>) -> rtc::rtp::Packet {
    let mut packet = packet.clone();
    let header = &mut packet.header;
    if let Some(id) = id
        && header.extension
        && let Some(at) = header.extensions.iter().position(|e| e.id == id)
    {
        header.extensions.remove(at);
        header.extensions_padding = 0;
        if header.extensions.is_empty() {
            header.extension = false;
            header.extension_profile = 0;
        }
    }
    packet
}

impl Stage for FecReceiver {
    fn read(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        let (now, transport) = (msg.now, msg.transport);
        let recovered = match &msg.message.packet {
            Packet::Rtp(p) => {
                let ssrc = p.header.ssrc;
                let media = self.repair_to_media.get(&ssrc).copied().unwrap_or(ssrc);
                match self.decoders.get_mut(&media) {
                    Some((decoder, id)) => decoder.decode(without_extension(p, *id)),
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        out.push_back(msg);
        self.counters
            .recovered
            .fetch_add(recovered.len() as u64, Ordering::Relaxed);
        out.extend(recovered.into_iter().map(|p| {
            let mut message = AttributedPacket::new(Packet::Rtp(p));
            message.add(Attribute::RecoveredByFec);
            TaggedPacket {
                now,
                transport,
                message,
            }
        }));
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(repair), Some(_)) = (info.ssrc_fec, info.payload_type_fec) {
            self.decoders.insert(
                info.ssrc,
                (
                    FlexFec03Decoder::new(repair, info.ssrc),
                    transport_cc_id(info),
                ),
            );
            self.repair_to_media.insert(repair, info.ssrc);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.decoders.remove(&info.ssrc);
        self.repair_to_media.retain(|_, media| *media != info.ssrc);
    }
}

/// The id the stream negotiated for the transport-wide sequence number, if any.
fn transport_cc_id(info: &StreamInfo) -> Option<u8> {
    info.rtp_header_extensions
        .iter()
        .find(|e| e.uri == rtc::sdp::extmap::TRANSPORT_CC_URI)
        .and_then(|e| u8::try_from(e.id).ok())
}

/// Ends the repair packets [`FecReceiver`] let through, once the transport-wide feedback has
/// recorded them (above [`rtc::interceptor::Slot::TwccReceiver`]): they carry no media.
#[derive(Default)]
pub struct FecRepairSink {
    repair: std::collections::HashSet<u32>,
}

impl std::fmt::Debug for FecRepairSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FecRepairSink")
            .field("repair", &self.repair)
            .finish_non_exhaustive()
    }
}

impl Stage for FecRepairSink {
    fn read(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtp(p) = &msg.message.packet
            && self.repair.contains(&p.header.ssrc)
        {
            return;
        }
        out.push_back(msg);
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(repair), Some(_)) = (info.ssrc_fec, info.payload_type_fec) {
            self.repair.insert(repair);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(repair) = info.ssrc_fec {
            self.repair.remove(&repair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::belt::OnBelt;
    use bytes::Bytes;
    use rtc::interceptor::{Interceptor, RTPHeaderExtension};
    use rtc::sansio::Protocol;
    use rtc::shared::TransportContext;
    use std::time::Instant;

    const MEDIA: u32 = 0x1111;
    const REPAIR: u32 = 0x2222;

    fn info() -> StreamInfo {
        StreamInfo {
            ssrc: MEDIA,
            ssrc_fec: Some(REPAIR),
            payload_type: 96,
            payload_type_fec: Some(125),
            rtp_header_extensions: vec![RTPHeaderExtension {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                id: u16::from(TWCC_ID),
            }],
            ..Default::default()
        }
    }

    const TWCC_ID: u8 = 5;

    fn media(seq: u16, marker: bool) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    ssrc: MEDIA,
                    payload_type: 96,
                    sequence_number: seq,
                    timestamp: 3000 * u32::from(seq / 3),
                    marker,
                    ..Default::default()
                },
                // Sizes differ, so the length recovery is exercised too.
                payload: Bytes::from(vec![seq as u8; 300 + usize::from(seq % 7) * 50]),
            })),
        }
    }

    fn rtp_of(msg: &TaggedPacket) -> &rtc::rtp::Packet {
        match &msg.message.packet {
            Packet::Rtp(p) => p,
            _ => panic!("not RTP"),
        }
    }

    /// Sends `count` packets (frames of three) through a sender at `per_ten`; returns what
    /// went to the wire.
    fn send(per_ten: u32, count: u16) -> (Vec<TaggedPacket>, Arc<FecCounters>) {
        let counters = Arc::new(FecCounters::default());
        let mut sender = OnBelt::new(FecSender::new(
            Arc::new(AtomicU32::new(per_ten)),
            Arc::clone(&counters),
        ));
        sender.bind_local_stream(&info());
        let mut wire = Vec::new();
        for seq in 0..count {
            sender
                .handle_write(media(seq, seq % 3 == 2))
                .expect("write");
            while let Some(p) = sender.poll_write() {
                wire.push(p);
            }
        }
        (wire, counters)
    }

    #[test]
    fn protection_follows_loss_and_round_trip() {
        // Nothing to repair, or repairs as quick as a retransmission: none.
        assert_eq!(repair_per_ten(0.0, 600.0), 0);
        assert_eq!(repair_per_ten(0.005, 600.0), 0);
        assert_eq!(repair_per_ten(0.10, 10.0), 0);
        // 2.5 times the loss, half of it under 100 ms of round trip, twice from 400 ms.
        assert_eq!(repair_per_ten(0.05, 300.0), 2);
        assert_eq!(repair_per_ten(0.10, 300.0), 3);
        assert_eq!(repair_per_ten(0.20, 300.0), 5);
        assert_eq!(repair_per_ten(0.10, 60.0), 2);
        assert_eq!(repair_per_ten(0.05, 600.0), 3);
        assert_eq!(repair_per_ten(0.10, 600.0), 5);
        assert_eq!(repair_per_ten(0.9, 300.0), MAX_PER_TEN);
        assert_eq!(repair_per_ten(0.9, 600.0), MAX_PER_TEN);
    }

    #[test]
    fn the_loss_protected_for_rises_at_once_and_falls_slowly() {
        // A 5% call whose seconds read 6, 0, 2, 9, 0, 0%: two in ten throughout, three after
        // the worst second.
        let mut loss = 0.0;
        let mut levels = Vec::new();
        for seen in [0.06, 0.0, 0.02, 0.09, 0.0, 0.0] {
            loss = held_loss(loss, seen);
            levels.push(repair_per_ten(loss, 300.0));
        }
        assert_eq!(levels, [2, 2, 2, 3, 2, 2]);
        // Then clean: off within about ten seconds.
        let clean = (1..)
            .find(|_| {
                loss = held_loss(loss, 0.0);
                repair_per_ten(loss, 300.0) == 0
            })
            .expect("falls");
        assert!((8..=14).contains(&clean), "{clean} s");
    }

    #[test]
    fn without_protection_nothing_is_added() {
        let (wire, counters) = send(0, 30);
        assert_eq!(wire.len(), 30);
        assert!(wire.iter().all(|p| rtp_of(p).header.ssrc == MEDIA));
        assert_eq!(counters.sent.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn blocks_end_at_a_frame_end_and_carry_the_share_asked_for() {
        // Frames of three packets: a block closes at the second frame's end (six packets);
        // two repairs per ten → two per block of six.
        let (wire, counters) = send(2, 60);
        let repairs: Vec<usize> = wire
            .iter()
            .enumerate()
            .filter(|(_, p)| rtp_of(p).header.ssrc == REPAIR)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(repairs.len(), 20, "10 blocks of 6, 2 each");
        assert_eq!(counters.sent.load(Ordering::Relaxed), 20);
        // Each block's repairs right after its last media packet (the frame's marker).
        let mut media_before = 0;
        for (i, p) in wire.iter().enumerate() {
            if rtp_of(p).header.ssrc == MEDIA {
                media_before += 1;
            } else {
                assert_eq!(media_before % 6, 0, "repair at {i} follows a whole block");
                assert!(
                    rtp_of(&wire[i - 1]).header.marker
                        || rtp_of(&wire[i - 1]).header.ssrc == REPAIR
                );
            }
        }
    }

    #[test]
    fn a_lost_packet_in_each_block_is_rebuilt_by_the_far_side() {
        let (wire, _) = send(2, 60);
        let counters = Arc::new(FecCounters::default());
        let mut receiver = OnBelt::new(FecReceiver::new(Arc::clone(&counters)));
        receiver.bind_remote_stream(&info());
        let mut sink = OnBelt::new(FecRepairSink::default());
        sink.bind_remote_stream(&info());
        // What stands between them: every packet, repair packets too, gets its transport-wide
        // sequence number after protection, and the wire loses the fourth packet of every
        // block of six.
        let (mut delivered, mut numbered_arrivals) = (HashMap::new(), 0);
        for (n, mut p) in wire.into_iter().enumerate() {
            let Packet::Rtp(rtp) = &mut p.message.packet else {
                unreachable!()
            };
            rtp.header
                .set_extension(TWCC_ID, Bytes::copy_from_slice(&(n as u16).to_be_bytes()))
                .expect("extension");
            if rtp.header.ssrc == MEDIA && rtp.header.sequence_number % 6 == 3 {
                continue;
            }
            receiver.handle_read(p).expect("read");
            while let Some(up) = receiver.poll_read() {
                // The transport-wide feedback's place: it sees what arrived, repairs included.
                if rtp_of(&up).header.get_extension(TWCC_ID).is_some() {
                    numbered_arrivals += 1;
                }
                sink.handle_read(up).expect("sink");
                while let Some(up) = sink.poll_read() {
                    let rebuilt = up.message.has(&Attribute::RecoveredByFec);
                    let up = rtp_of(&up).clone();
                    assert_eq!(up.header.ssrc, MEDIA, "repair packets end at the sink");
                    assert_eq!(
                        up.header.get_extension(TWCC_ID).is_none(),
                        rebuilt,
                        "only rebuilt packets lack the number (they never arrived)"
                    );
                    delivered.insert(up.header.sequence_number, up);
                }
            }
        }
        assert_eq!(counters.recovered.load(Ordering::Relaxed), 10);
        assert_eq!(
            numbered_arrivals,
            50 + 20,
            "media that arrived, and every repair"
        );
        assert_eq!(
            delivered.len(),
            60,
            "every media packet, 10 of them rebuilt"
        );
        for seq in 0..60u16 {
            let original = media(seq, seq % 3 == 2);
            let original = rtp_of(&original);
            let got = &delivered[&seq];
            assert_eq!(got.payload, original.payload, "packet {seq}");
            assert_eq!(got.header.timestamp, original.header.timestamp);
            assert_eq!(got.header.marker, original.header.marker);
            assert_eq!(got.header.payload_type, original.header.payload_type);
        }
    }

    #[test]
    fn a_gap_in_the_sent_run_starts_a_new_block() {
        let counters = Arc::new(FecCounters::default());
        let mut sender = OnBelt::new(FecSender::new(
            Arc::new(AtomicU32::new(2)),
            Arc::clone(&counters),
        ));
        sender.bind_local_stream(&info());
        for seq in [0, 1, 2, 10, 11, 12, 13, 14, 15] {
            sender
                .handle_write(media(seq, seq == 2 || seq == 15))
                .expect("write");
        }
        let wire: Vec<_> = std::iter::from_fn(|| sender.poll_write()).collect();
        // 0-2 is one frame of three packets (too few to close a block) cut by the gap; 10-15,
        // one frame of six, is a block with two repairs.
        assert_eq!(counters.sent.load(Ordering::Relaxed), 2);
        assert_eq!(wire.len(), 11);
    }
}
