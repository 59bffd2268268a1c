//! What the video sender does with the bandwidth estimate: the encoder's bitrate, the picture
//! size (confer-media's resolution ladder, kept to the source's aspect ratio) and the frame rate.
//!
//! The allowed rate comes from [`Controller`] (through the peer's shared value). Audio is
//! protected first: a fixed share is kept for it and video gets the
//! rest, between [`MIN_VIDEO_KBPS`] and the user's maximum. A bitrate change is applied when it
//! moves by more than 5% (encoders do not like being poked every frame); a size change goes
//! through the ladder's hysteresis, since each one costs a keyframe.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Instant;

use confer_media::ladder::{Ladder, Rung};
use rtc::interceptor::{Attribute, Packet, TaggedPacket};

use crate::belt::Stage;

/// Kept for audio (Opus at its default rate, with packet overhead), kbit/s.
pub const AUDIO_RESERVE_KBPS: u32 = 48;
/// The least video is given, kbit/s (a 180p picture at 15 fps).
pub const MIN_VIDEO_KBPS: u32 = 60;
/// Where a call starts, all media, kbit/s: what almost any path carries (libwebrtc starts at
/// 300 kbit/s of video), and enough for 640x360 from the first frame. Starting at the most
/// the call may send put a second of queue and a burst of loss in front of the first frames
/// on a slower link; from here the estimator climbs by 50% a second until the path first
/// pushes back (`crate::estimate`).
pub const START_KBPS: u32 = 400;

/// The send-rate controller: loss- and delay-based, run once a second on what the other side
/// reports (RTCP receiver reports: the fraction of our packets lost) and on the round-trip
/// time, whose growth says a queue is building on the path and how fast.
///
/// - Congested (more than 10% lost; or over 50 ms of queue growing by more than 20 ms a
///   second; or more than 150 ms of queue that is not shrinking): the link's capacity is estimated from what
///   we sent and how fast the queue grew (`sent / (1 + growth)`: a queue growing by 0.3 s a
///   second means we sent 1.3 times what the link carries), and the rate drops to 85% of that
///   so the queue drains.
/// - Clear (under 2% lost, under 50 ms of queue, not growing): climb by 15% a second (plus
///   10 kbit/s, so a low rate does not creep), up to the maximum.
/// - In between (a queue draining): hold.
///
/// webrtc-rs 0.21.1 has GCC (transport-wide feedback, with a pacer), measured here first: behind
/// a 500 kbit/s link with a 1 s queue it still estimated 590–650 kbit/s after 8 s with the queue
/// full, and climbed from 400 to 430 kbit/s in 15 s once the link opened to 2 Mbit/s.
#[derive(Debug, Clone)]
pub struct Controller {
    rate_kbps: f64,
    min_kbps: f64,
    max_kbps: f64,
    base_rtt_ms: Option<f64>,
    last_rtt_ms: Option<f64>,
    last_sample_ms: Option<f64>,
}

/// Above this loss the path is congested.
const CONGESTED_LOSS: f64 = 0.10;
/// RTT growth (ms per second, the update interval) that means a queue is building.
const GROWING_MS: f64 = 20.0;
/// A queue this long, and not shrinking, means congestion.
const CONGESTED_QUEUE_MS: f64 = 150.0;
/// Below both, it is clear.
const CLEAR_LOSS: f64 = 0.02;
const CLEAR_QUEUE_MS: f64 = 50.0;

impl Controller {
    /// Starts at [`START_KBPS`] (or `max_kbps`, the most this call may send, all media, if
    /// that is less), never going under what audio and the smallest video need.
    pub fn new(max_kbps: u32) -> Self {
        Self {
            rate_kbps: f64::from(max_kbps.min(START_KBPS)),
            min_kbps: f64::from(AUDIO_RESERVE_KBPS + MIN_VIDEO_KBPS),
            max_kbps: f64::from(max_kbps),
            base_rtt_ms: None,
            last_rtt_ms: None,
            last_sample_ms: None,
        }
    }

    /// The rate allowed now, kbit/s.
    pub fn rate_kbps(&self) -> f64 {
        self.rate_kbps
    }

    /// Takes over from another controller's `rate_kbps` (within this one's bounds).
    pub fn set_rate(&mut self, rate_kbps: f64) {
        self.rate_kbps = rate_kbps.clamp(self.min_kbps, self.max_kbps);
    }

    /// One second's news: the loss the other side reported (0..1), the round-trip time, and
    /// what we sent (kbit/s, all media). Returns the new rate.
    pub fn update(&mut self, loss: Option<f64>, rtt_ms: Option<f64>, sent_kbps: f64) -> f64 {
        // The lower of the last two samples: a queue lasts, a late sample from a busy machine
        // does not.
        let (queue_ms, growth_ms) = match rtt_ms {
            Some(sample) => {
                let rtt = self.last_sample_ms.map_or(sample, |last| last.min(sample));
                self.last_sample_ms = Some(sample);
                let base = self.base_rtt_ms.map_or(rtt, |b| b.min(rtt));
                let growth = self.last_rtt_ms.map_or(0.0, |last| rtt - last);
                self.base_rtt_ms = Some(base);
                self.last_rtt_ms = Some(rtt);
                (rtt - base, growth)
            }
            None => (0.0, 0.0),
        };
        let loss = loss.unwrap_or(0.0);
        // A queue must be there and growing: one late RTT sample on a busy machine (a spike
        // with no queue behind it) is not congestion.
        let congested = loss > CONGESTED_LOSS
            || (growth_ms > GROWING_MS && queue_ms > CLEAR_QUEUE_MS)
            || (queue_ms > CONGESTED_QUEUE_MS && growth_ms >= 0.0);
        if congested {
            let sent = if sent_kbps > 0.0 {
                sent_kbps
            } else {
                self.rate_kbps
            };
            // What the link carried: what we sent, less what was lost or piled up in the queue
            // (RTT growth is twice the one-way growth when both directions queue; taking it
            // whole errs on the side of draining).
            let carried = sent * (1.0 - loss) / (1.0 + growth_ms.max(0.0) / 1000.0);
            self.rate_kbps = (self.rate_kbps.min(carried) * 0.85).max(self.min_kbps);
        } else if loss < CLEAR_LOSS && queue_ms < CLEAR_QUEUE_MS && growth_ms < GROWING_MS {
            self.rate_kbps = (self.rate_kbps * 1.15 + 10.0).min(self.max_kbps);
        }
        self.rate_kbps
    }
}

/// The packet loss (%) Opus is told to expect, which sizes its in-band FEC (each packet
/// carries a coarser copy of the one before, at a cost in bits that grows with the figure):
/// the loss just seen (0..1) as soon as it rises, easing back by a quarter a second when it
/// falls, and never below 2% so the first loss after a clean stretch can already be repaired.
pub fn audio_fec_loss(previous_pct: u8, seen: f64) -> u8 {
    let seen = (seen.clamp(0.0, 1.0) * 100.0).ceil() as u8;
    let eased = (f64::from(previous_pct) * 0.75).floor() as u8;
    seen.max(eased).clamp(2, 50)
}

/// Caps retransmissions at a share of the allowed rate. On a congested path every packet the
/// queue drops is asked for again (at least once, see `crate::nack`), and resending all of them adds
/// load exactly when there is none to spare: left alone, NACKs and retransmissions kept a
/// 250 kbit/s link's queue full while the encoder sent 170 kbit/s. Sits wire-ward of the NACK
/// responder, whose retransmissions it sees on the write path; everything else passes.
pub struct RetransmissionBudget {
    allowed_bps: Arc<AtomicU64>,
    tokens: f64,
    last: Option<Instant>,
    /// Retransmissions dropped for want of budget.
    pub dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for RetransmissionBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetransmissionBudget")
            .field("tokens", &self.tokens)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// The share of the allowed rate retransmissions may use.
pub const RETRANSMISSION_SHARE: f64 = 0.25;

impl RetransmissionBudget {
    /// A budget of [`RETRANSMISSION_SHARE`] of `allowed_bps` (bit/s, as the controller sets it).
    pub fn new(allowed_bps: Arc<AtomicU64>, dropped: Arc<AtomicU64>) -> Self {
        Self {
            allowed_bps,
            tokens: 0.0,
            last: None,
            dropped,
        }
    }

    /// Whether a retransmission of `bytes` may go at `now`.
    fn spend(&mut self, bytes: usize, now: Instant) -> bool {
        let rate = self.allowed_bps.load(Ordering::Relaxed) as f64 / 8.0 * RETRANSMISSION_SHARE;
        // At most 200 ms of budget saved up, and that much to begin with: the first losses
        // (often in the first keyframe, the largest frame of the call) are repaired too.
        let most = rate * 0.2 + 1500.0;
        self.tokens = match self.last {
            None => most,
            Some(l) => {
                let elapsed = now.saturating_duration_since(l).as_secs_f64();
                (self.tokens + rate * elapsed).min(most)
            }
        };
        self.last = Some(now);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

impl Stage for RetransmissionBudget {
    fn write(&mut self, msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if msg.message.has(&Attribute::Retransmission)
            && let Packet::Rtp(p) = &msg.message.packet
            && !self.spend(p.payload.len() + 12, msg.now)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        out.push_back(msg);
    }
}

/// What to encode now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Picture size and frame rate.
    pub rung: Rung,
    /// Video bitrate, kbit/s.
    pub kbps: u32,
}

/// The video sender's rate state.
#[derive(Debug)]
pub struct SendRate {
    estimate: Arc<AtomicU64>,
    max_kbps: u32,
    ladder: Ladder,
    source: (u32, u32),
    source_fps: u32,
    kbps: u32,
    /// Frames owed to the encoder, for frame-rate reduction.
    credit: f64,
    /// Video repair packets per ten media packets ([`crate::fec`]): the encoder gets that
    /// share less.
    protection: crate::fec::Protection,
}

impl SendRate {
    /// For a source of `source` size at `fps`, at most `max_kbps` of video, reading the
    /// estimate (bit/s; 0 before the first) from `estimate`.
    pub fn new(source: (u32, u32), fps: u32, max_kbps: u32, estimate: Arc<AtomicU64>) -> Self {
        let mut rate = Self {
            estimate,
            max_kbps,
            ladder: Ladder::new(source.0, source.1, fps),
            source,
            source_fps: fps.max(1),
            kbps: max_kbps,
            credit: 0.0,
            protection: crate::fec::Protection::default(),
        };
        let first = rate.wanted_kbps();
        rate.kbps = first;
        rate.ladder.select(first, Instant::now());
        rate
    }

    /// Leaves room for the video FEC `protection` asks for (none unless given).
    pub fn with_protection(mut self, protection: crate::fec::Protection) -> Self {
        self.protection = protection;
        self
    }

    /// Another source (a camera switch).
    pub fn set_source(&mut self, source: (u32, u32), fps: u32) {
        self.ladder = Ladder::new(source.0, source.1, fps);
        self.source = source;
        self.source_fps = fps.max(1);
        self.ladder.select(self.kbps, Instant::now());
    }

    fn wanted_kbps(&self) -> u32 {
        let bps = self.estimate.load(Ordering::Relaxed);
        if bps == 0 {
            return self.max_kbps;
        }
        let per_ten = self
            .protection
            .load(Ordering::Relaxed)
            .min(crate::fec::MAX_PER_TEN);
        (((bps / 1000) as u32).saturating_sub(AUDIO_RESERVE_KBPS) * 10 / (10 + per_ten))
            .clamp(MIN_VIDEO_KBPS.min(self.max_kbps), self.max_kbps)
    }

    /// The plan for the next frame, at `now`.
    pub fn plan(&mut self, now: Instant) -> Plan {
        let wanted = self.wanted_kbps();
        let moved = f64::from(wanted.abs_diff(self.kbps)) / f64::from(self.kbps.max(1));
        if moved > 0.05 {
            self.kbps = wanted;
        }
        let rung = self.ladder.select(self.kbps, now);
        Plan {
            rung: fit(rung, self.source),
            kbps: self.kbps,
        }
    }

    /// Whether to encode the next captured frame at `fps` (the source runs at its own rate).
    pub fn take_frame(&mut self, fps: u32) -> bool {
        self.credit += f64::from(fps.min(self.source_fps)) / f64::from(self.source_fps);
        if self.credit >= 1.0 - 1e-9 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A rung at the source's aspect ratio: the rung's height (never above the source's), the
/// width that keeps the proportions, both even.
fn fit(rung: Rung, source: (u32, u32)) -> Rung {
    let (sw, sh) = source;
    let height = rung.height.min(sh) & !1;
    let width = ((u64::from(height) * u64::from(sw) / u64::from(sh.max(1))) as u32).min(sw) & !1;
    Rung {
        width: width.max(2),
        height: height.max(2),
        fps: rung.fps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn opus_fec_follows_loss_up_at_once_and_down_slowly() {
        // A clean path keeps the floor.
        assert_eq!(audio_fec_loss(10, 0.0), 7);
        assert_eq!(audio_fec_loss(2, 0.0), 2);
        // 12.5% seen: 13 at once.
        assert_eq!(audio_fec_loss(2, 0.125), 13);
        // It eases back a quarter a second: 13, 9, 6, 4, 3, 2.
        let mut pct = 13;
        let mut seen = Vec::new();
        for _ in 0..5 {
            pct = audio_fec_loss(pct, 0.0);
            seen.push(pct);
        }
        assert_eq!(seen, [9, 6, 4, 3, 2]);
        // Heavy loss is capped where FEC stops paying for itself.
        assert_eq!(audio_fec_loss(2, 0.9), 50);
    }

    /// 1 Mbit/s allowed: retransmissions get 31,250 bytes a second, 6,250 (+1,500) saved up
    /// at most, and the first losses of the call are repaired from a full bucket.
    #[test]
    fn retransmissions_spend_a_quarter_of_the_rate_from_a_bucket_that_starts_full() {
        let dropped = Arc::new(AtomicU64::new(0));
        let mut budget =
            RetransmissionBudget::new(Arc::new(AtomicU64::new(1_000_000)), Arc::clone(&dropped));
        let t0 = Instant::now();
        let sent = (0..10).filter(|_| budget.spend(1_200, t0)).count();
        assert_eq!(sent, 6, "7,750 bytes at once: six packets of 1,200");
        assert!(!budget.spend(1_200, t0 + Duration::from_millis(1)));
        // 40 ms later: 1,250 bytes more, one packet.
        assert!(budget.spend(1_200, t0 + Duration::from_millis(41)));
        assert!(!budget.spend(1_200, t0 + Duration::from_millis(41)));
    }

    fn rate(source: (u32, u32), max: u32) -> (SendRate, Arc<AtomicU64>) {
        let estimate = Arc::new(AtomicU64::new(0));
        (
            SendRate::new(source, 30, max, Arc::clone(&estimate)),
            estimate,
        )
    }

    #[test]
    fn before_an_estimate_the_maximum_and_the_source_size() {
        let (mut r, _) = rate((1280, 720), 1500);
        let p = r.plan(Instant::now());
        assert_eq!(
            (p.rung.width, p.rung.height, p.rung.fps, p.kbps),
            (1280, 720, 30, 1500)
        );
    }

    #[test]
    fn the_estimate_sets_bitrate_and_size_with_audio_kept_aside() {
        let (mut r, estimate) = rate((1280, 720), 1500);
        estimate.store(548_000, Ordering::Relaxed);
        let p = r.plan(Instant::now());
        assert_eq!(p.kbps, 500);
        assert_eq!((p.rung.width, p.rung.height), (640, 360));
        estimate.store(100_000, Ordering::Relaxed);
        let p = r.plan(Instant::now());
        assert_eq!(p.kbps, MIN_VIDEO_KBPS);
        assert_eq!((p.rung.width, p.rung.height, p.rung.fps), (320, 180, 15));
        // Small moves are ignored; the cap holds.
        estimate.store(102_000, Ordering::Relaxed);
        assert_eq!(r.plan(Instant::now()).kbps, MIN_VIDEO_KBPS);
        estimate.store(10_000_000, Ordering::Relaxed);
        assert_eq!(r.plan(Instant::now()).kbps, 1500);
    }

    #[test]
    fn the_picture_keeps_the_source_aspect() {
        let (mut r, estimate) = rate((640, 480), 1000);
        estimate.store(300_000, Ordering::Relaxed);
        let p = r.plan(Instant::now());
        assert_eq!((p.rung.width, p.rung.height), (240, 180), "4:3 stays 4:3");
    }

    #[test]
    fn the_controller_backs_off_under_congestion_and_climbs_when_clear() {
        let mut c = Controller::new(1048);
        assert_eq!(c.rate_kbps(), f64::from(START_KBPS), "starts low");
        assert_eq!(Controller::new(200).rate_kbps(), 200.0, "or at the maximum");
        c.set_rate(1048.0); // as if it had climbed
        let r = c.update(Some(0.0), Some(40.0), 1000.0);
        assert!(r >= 1048.0 * 0.99, "clear at first: {r}");
        // One late sample is not a queue.
        assert_eq!(c.update(Some(0.0), Some(340.0), 1000.0), r);
        // A 500 kbit/s link: sending 650, the queue grows by 300 ms a second.
        let r = c.update(Some(0.0), Some(640.0), 650.0);
        assert!(
            (420.0..=430.0).contains(&r),
            "85% of the 500 the link carried: {r}"
        );
        // The queue drains: hold until it is short.
        assert_eq!(c.update(Some(0.0), Some(250.0), r), r);
        assert_eq!(c.update(Some(0.0), Some(120.0), r), r);
        // A queue that builds again is congestion again.
        assert_eq!(c.update(Some(0.0), Some(240.0), r), r);
        let r2 = c.update(Some(0.0), Some(240.0), r);
        assert!(r2 < r, "{r} -> {r2}");
        // Back under 50 ms of queue: clear. Climb 15% a second, to the maximum and no further.
        let mut last = c.update(Some(0.0), Some(41.0), r2);
        assert!(last > r2 * 1.14, "{r2} -> {last}");
        for _ in 0..3 {
            let next = c.update(Some(0.0), Some(41.0), last);
            assert!(next > last * 1.14, "{last} -> {next}");
            last = next;
        }
        for _ in 0..20 {
            last = c.update(Some(0.0), Some(40.0), last);
        }
        assert_eq!(last, 1048.0);
        // A lone RTT spike on an idle path changes nothing.
        assert_eq!(c.update(Some(0.0), Some(140.0), last), last);
        assert_eq!(c.update(Some(0.0), Some(40.0), last), last);
        // Heavy loss alone is congestion; never below what audio and the smallest video need.
        for _ in 0..30 {
            last = c.update(Some(0.5), Some(40.0), 10.0);
        }
        assert_eq!(last, f64::from(AUDIO_RESERVE_KBPS + MIN_VIDEO_KBPS));
    }

    #[test]
    fn frame_rate_reduction_takes_every_other_frame_at_half_rate() {
        let (mut r, _) = rate((640, 360), 600);
        let taken = (0..30).filter(|_| r.take_frame(15)).count();
        assert_eq!(taken, 15);
        let all = (0..30).filter(|_| r.take_frame(30)).count();
        assert_eq!(all, 30);
    }
}
