//! Asking again for lost video packets (RFC 4585 generic NACK), as often as the round trip
//! allows.
//!
//! webrtc-rs's generator asks for every missing packet on a fixed interval, at most N times.
//! Confer ran it at 20 ms and twice, which is blind to the round trip: on a LAN (a round trip
//! of a few ms) a packet gets two attempts in the 150 ms the receiver waits for it, where
//! seven fit, and at 20% loss one gap in 25 lost both and waited for a keyframe; beyond a
//! 20 ms round trip both requests leave before the first retransmission can arrive, so every
//! loss is sent twice whether the first copy arrives or not.
//!
//! [`NackRequests`] asks once, then again only when the retransmission should have come and
//! has not (a round trip and a margin later), for as long as the receiver still waits for the
//! packet ([`repair_wait`]), up to [`MAX_ASKS`] times. When the round trip is too long for a
//! retransmission asked after a miss to land in time, it asks a second time right away, as
//! before (one lost retransmission then costs nothing). Packets given up are no longer asked
//! for; a jump too long to be a loss (a cut, a restarted sender) is not asked for at all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use confer_media::jitter::SeqUnwrapper;
use rtc::interceptor::{AttributedPacket, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::shared::TransportContext;

use crate::belt::Stage;

/// The shortest time between two requests for one packet, and the least margin over the round
/// trip before a retransmission counts as missed. (webrtc-rs's default interval is 100 ms,
/// which puts the first request up to 100 ms after the gap.)
pub const NACK_INTERVAL: Duration = Duration::from_millis(20);

/// How long after a gap shows its packets are first asked for: a packet merely overtaken by
/// the next one (reordered on the path) has usually arrived by then.
const REORDER_HOLD: Duration = Duration::from_millis(5);

/// Most requests for one packet.
pub const MAX_ASKS: u32 = 8;

/// A jump in sequence numbers longer than this is not a loss to repair (a cut, a sender that
/// started over): the receiver asks for a keyframe instead.
const MAX_GAP: u64 = 256;

/// Most packets followed per stream; the oldest are dropped first.
const MAX_MISSING: usize = 512;

/// How long a gap in the video may hold newer frames back while its retransmission is on the
/// way: a round trip plus the NACK interval plus room for a second attempt and jitter, at
/// least 150 ms, at most 1 s. Giving up before the retransmission can have come gains
/// nothing: the keyframe asked for instead needs the same round trip, and is larger. (A cap
/// of 500 ms gave up every unrepaired gap with 300 ms each way, dropping the frames until a
/// keyframe came, a second later.)
pub fn repair_wait(rtt_us: u32) -> Duration {
    let rtt = Duration::from_micros(u64::from(rtt_us));
    (rtt + NACK_INTERVAL * 4).clamp(Duration::from_millis(150), Duration::from_secs(1))
}

/// One missing packet: when its gap showed, how often and when it was last asked for.
#[derive(Debug, Clone, Copy)]
struct Ask {
    seen: Instant,
    asked: u32,
    last: Instant,
}

/// When the next request for `ask` is due, with `rtt` the round trip (`None`: not measured
/// yet) and `wait` how long the receiver holds the gap; `None`: no more requests (the
/// retransmission of another could not arrive in time, or it was asked for enough).
fn next_ask(ask: &Ask, rtt: Option<Duration>, wait: Duration) -> Option<Instant> {
    if ask.asked == 0 {
        return Some(ask.seen + REORDER_HOLD);
    }
    if ask.asked >= MAX_ASKS {
        return None;
    }
    let deadline = ask.seen + wait;
    let Some(rtt) = rtt else {
        // No round trip yet: twice, an interval apart (webrtc-rs's way, as Confer ran it).
        return (ask.asked == 1).then_some(ask.last + NACK_INTERVAL);
    };
    let missed_by = ask.last + rtt + NACK_INTERVAL.max(rtt / 4);
    if ask.asked == 1 && missed_by + rtt > deadline {
        // A request after a miss would be answered too late: ask again now instead.
        return Some(ask.last + NACK_INTERVAL);
    }
    (missed_by + rtt <= deadline).then_some(missed_by)
}

/// The packets missing from one stream we receive.
#[derive(Debug, Default)]
struct Stream {
    seq: SeqUnwrapper,
    highest: Option<u64>,
    missing: BTreeMap<u64, Ask>,
}

impl Stream {
    /// Notes packet `seq` arriving at `now`; true when it shows a gap.
    fn received(&mut self, seq: u16, now: Instant) -> bool {
        let ext = self.seq.unwrap(seq);
        let Some(highest) = self.highest else {
            self.highest = Some(ext);
            return false;
        };
        if ext <= highest {
            self.missing.remove(&ext); // late, repaired or rebuilt
            return false;
        }
        self.highest = Some(ext);
        if ext == highest + 1 {
            return false;
        }
        if ext - highest - 1 > MAX_GAP {
            self.missing.clear();
            return false;
        }
        for lost in highest + 1..ext {
            self.missing.insert(
                lost,
                Ask {
                    seen: now,
                    asked: 0,
                    last: now,
                },
            );
        }
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_first();
        }
        true
    }

    /// The sequence numbers to ask for now (each counted as asked), and when the next request
    /// is due.
    fn due(
        &mut self,
        now: Instant,
        rtt: Option<Duration>,
        wait: Duration,
    ) -> (Vec<u16>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next = None;
        self.missing.retain(|&seq, ask| {
            if next_ask(ask, rtt, wait).is_some_and(|at| at <= now) {
                ask.asked += 1;
                ask.last = now;
                due.push(seq as u16);
            }
            let after = next_ask(ask, rtt, wait);
            next = earliest(next, after);
            after.is_some()
        });
        (due, next)
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The NACK generator (see the module): watches the video arriving, asks for what is missing.
#[derive(Debug)]
pub struct NackRequests {
    /// The round trip, µs (0: not measured yet).
    rtt: Arc<AtomicU32>,
    sender_ssrc: u32,
    streams: HashMap<u32, Stream>,
    next_tick: Option<Instant>,
}

impl NackRequests {
    /// A generator reading the round trip (µs) from `rtt`.
    pub fn new(rtt: Arc<AtomicU32>) -> Self {
        Self {
            rtt,
            sender_ssrc: rand::random(),
            streams: HashMap::new(),
            next_tick: None,
        }
    }
}

impl Stage for NackRequests {
    fn read(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtp(rtp) = &msg.message.packet
            && let Some(stream) = self.streams.get_mut(&rtp.header.ssrc)
            && stream.received(rtp.header.sequence_number, msg.now)
        {
            self.next_tick = earliest(self.next_tick, Some(msg.now + REORDER_HOLD));
        }
        out.push_back(msg);
    }

    fn timeout(&mut self, now: Instant, out: &mut VecDeque<TaggedPacket>) {
        if self.next_tick.is_none_or(|at| now < at) {
            return;
        }
        let rtt_us = self.rtt.load(Ordering::Relaxed);
        let rtt = (rtt_us > 0).then(|| Duration::from_micros(u64::from(rtt_us)));
        let wait = repair_wait(rtt_us);
        self.next_tick = None;
        for (&ssrc, stream) in &mut self.streams {
            let (due, next) = stream.due(now, rtt, wait);
            self.next_tick = earliest(self.next_tick, next);
            if due.is_empty() {
                continue;
            }
            let nack = TransportLayerNack {
                sender_ssrc: self.sender_ssrc,
                media_ssrc: ssrc,
                nacks: nack_pairs_from_sequence_numbers(&due),
            };
            out.push_back(TaggedPacket {
                now,
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)])),
            });
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.next_tick
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|fb| fb.typ == "nack" && fb.parameter.is_empty());
        if nack {
            self.streams.insert(info.ssrc, Stream::default());
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.streams.remove(&info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::belt::OnBelt;
    use rtc::interceptor::Interceptor;
    use rtc::interceptor::RTCPFeedback;
    use rtc::sansio::Protocol;

    const VIDEO: u32 = 0x1234;
    const AUDIO: u32 = 0x5678;

    fn rtp(ssrc: u32, seq: u16, now: Instant) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    ssrc,
                    sequence_number: seq,
                    ..Default::default()
                },
                ..Default::default()
            })),
        }
    }

    /// A generator for one video stream (NACK feedback) and one audio stream (none), with the
    /// round trip `rtt_ms` (0: not measured).
    fn generator(rtt_ms: u32) -> OnBelt<NackRequests> {
        let mut belt = OnBelt::new(NackRequests::new(Arc::new(AtomicU32::new(rtt_ms * 1_000))));
        belt.bind_remote_stream(&StreamInfo {
            ssrc: VIDEO,
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            }],
            ..Default::default()
        });
        belt.bind_remote_stream(&StreamInfo {
            ssrc: AUDIO,
            ..Default::default()
        });
        belt
    }

    fn arrive(belt: &mut OnBelt<NackRequests>, ssrc: u32, seq: u16, now: Instant) {
        belt.handle_read(rtp(ssrc, seq, now)).expect("read");
        assert!(belt.poll_read().is_some(), "every packet passes on");
    }

    /// Runs the clock from `from` to `to` as the interceptor chain does, and returns when each
    /// request went out (ms after `from`) and for which sequence numbers.
    fn run(belt: &mut OnBelt<NackRequests>, from: Instant, to: Instant) -> Vec<(u64, Vec<u16>)> {
        let mut sent = Vec::new();
        while let Some(at) = belt.poll_timeout().filter(|&at| at <= to) {
            belt.handle_timeout(at).expect("timeout");
            while let Some(out) = belt.poll_write() {
                let Packet::Rtcp(packets) = &out.message.packet else {
                    panic!("only RTCP is generated");
                };
                let nack = packets[0]
                    .as_any()
                    .downcast_ref::<TransportLayerNack>()
                    .expect("a NACK");
                assert_eq!(nack.media_ssrc, VIDEO);
                let seqs = nack
                    .nacks
                    .iter()
                    .flat_map(|p| p.packet_list())
                    .collect::<Vec<u16>>();
                sent.push(((at - from).as_millis() as u64, seqs));
            }
        }
        sent
    }

    /// Packets 10 and 11 of the video lost (12 arrives at `t0`), and the same gap in the audio.
    fn a_gap(belt: &mut OnBelt<NackRequests>, t0: Instant) {
        for seq in [8, 9, 12] {
            arrive(belt, VIDEO, seq, t0);
            arrive(belt, AUDIO, seq, t0);
        }
    }

    #[test]
    fn a_gap_waits_for_its_retransmission_however_long_the_round_trip() {
        let wait = |rtt_ms: u32| super::repair_wait(rtt_ms * 1_000);
        assert_eq!(wait(20), Duration::from_millis(150));
        // 300 ms each way: the retransmission lands about 620 ms after the gap (the first
        // NACK within 20 ms, then the round trip); the gap must still be held then.
        assert_eq!(wait(600), Duration::from_millis(680));
        assert!(wait(600) > Duration::from_millis(620 + 40));
        assert_eq!(wait(3_000), Duration::from_secs(1));
    }

    /// The requests for [`a_gap`] with a round trip of `rtt_ms`, over 2 s (ms after the gap,
    /// and for which packets), and the generator after them.
    fn asks(rtt_ms: u32) -> (OnBelt<NackRequests>, Vec<(u64, Vec<u16>)>) {
        let t0 = Instant::now();
        let mut belt = generator(rtt_ms);
        a_gap(&mut belt, t0);
        let sent = run(&mut belt, t0, t0 + Duration::from_secs(2));
        (belt, sent)
    }

    /// When the requests for [`a_gap`] went out (ms after it) with a round trip of `rtt_ms`.
    fn ask_times(rtt_ms: u32) -> Vec<u64> {
        asks(rtt_ms).1.into_iter().map(|(at, _)| at).collect()
    }

    #[test]
    fn on_a_short_round_trip_a_lost_packet_is_asked_for_again_until_its_wait_is_over() {
        let (mut belt, sent) = asks(2);
        let times: Vec<u64> = sent.iter().map(|(at, _)| *at).collect();
        // 5 ms after the gap, then each time a retransmission is 20 ms overdue, within the
        // 150 ms the receiver waits (the last ask's answer due by then); audio is never asked
        // for.
        assert_eq!(times, [5, 27, 49, 71, 93, 115, 137]);
        assert!(sent.iter().all(|(_, seqs)| seqs == &[10, 11]), "{sent:?}");
        assert_eq!(belt.poll_timeout(), None, "nothing left to ask for");
    }

    #[test]
    fn a_packet_that_arrives_is_no_longer_asked_for() {
        let t0 = Instant::now();
        let mut belt = generator(2);
        a_gap(&mut belt, t0);
        let first = run(&mut belt, t0, t0 + Duration::from_millis(15));
        assert_eq!(first, [(5, vec![10, 11])]);
        // The retransmission of 10 (RTX turned back into it) and a reordered 11 arrive.
        arrive(&mut belt, VIDEO, 10, t0 + Duration::from_millis(14));
        let sent = run(&mut belt, t0, t0 + Duration::from_millis(45));
        assert_eq!(sent, [(27, vec![11])]);
        arrive(&mut belt, VIDEO, 11, t0 + Duration::from_millis(46));
        assert!(run(&mut belt, t0, t0 + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn on_a_long_round_trip_it_asks_twice_at_once_and_no_more() {
        // 300 ms each way: a request after a missed retransmission (at 5 + 600 + 150 ms)
        // would be answered after the 680 ms the receiver waits; two at once cover one lost.
        let (_, sent) = asks(600);
        assert_eq!(sent, [(5, vec![10, 11]), (25, vec![10, 11])]);
    }

    #[test]
    fn a_medium_round_trip_gets_the_second_ask_when_the_first_is_overdue() {
        // 40 ms: a wait of 150 ms, the first answer due 5 + 40 + 20 ms after the gap, the
        // answer to a third ask (at 125 ms) would come after the wait.
        let times = ask_times(40);
        assert_eq!(times, [5, 65]);
    }

    #[test]
    fn before_the_round_trip_is_measured_it_asks_twice_an_interval_apart() {
        let times = ask_times(0);
        assert_eq!(times, [5, 25]);
    }

    #[test]
    fn a_jump_too_long_for_a_loss_is_not_asked_for_and_numbers_wrap() {
        let t0 = Instant::now();
        let mut belt = generator(2);
        arrive(&mut belt, VIDEO, 65_534, t0);
        arrive(&mut belt, VIDEO, 1, t0); // 65,535 and 0 lost across the wrap
        let sent = run(&mut belt, t0, t0 + Duration::from_millis(15));
        assert_eq!(sent, [(5, vec![65_535, 0])]);
        // A sender 1,000 packets on (a cut): nothing new asked for, the old gap dropped.
        arrive(&mut belt, VIDEO, 1_001, t0 + Duration::from_millis(20));
        assert!(run(&mut belt, t0, t0 + Duration::from_secs(1)).is_empty());
    }
}
