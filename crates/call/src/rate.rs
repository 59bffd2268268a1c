//! What the video sender does with the bandwidth estimate: the encoder's bitrate, the picture
//! size (confer-media's resolution ladder, kept to the source's aspect ratio) and the frame rate.
//!
//! The allowed rate comes from [`Controller`] (through the peer's shared value). Audio is
//! protected first: a fixed share is kept for it and video gets the
//! rest, between [`MIN_VIDEO_KBPS`] and the user's maximum. A bitrate change is applied when it
//! moves by more than 5% (encoders do not like being poked every frame); a size change goes
//! through the ladder's hysteresis, since each one costs a keyframe.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confer_media::ladder::{Ladder, Rung};

/// Kept for audio (Opus at its default rate, with packet overhead), kbit/s.
pub const AUDIO_RESERVE_KBPS: u32 = 48;
/// The least video is given, kbit/s (a 180p picture at 15 fps).
pub const MIN_VIDEO_KBPS: u32 = 60;

/// The send-rate controller: loss- and delay-based, run once a second on what the other side
/// reports (RTCP receiver reports: the fraction of our packets lost) and on the round-trip
/// time (a queue building on the path shows as RTT above the lowest seen).
///
/// - Congested (more than 10% lost, or more than 150 ms of queue): drop to 85% of what got
///   through last second (what was sent, less what was lost), so the queue drains.
/// - Clear (under 2% lost, under 50 ms of queue): climb by 15% a second (plus 10 kbit/s, so a
///   low rate does not creep), up to the maximum.
/// - In between: hold.
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
}

/// Above this loss, or queue, the path is congested.
const CONGESTED_LOSS: f64 = 0.10;
const CONGESTED_QUEUE_MS: f64 = 150.0;
/// Below both, it is clear.
const CLEAR_LOSS: f64 = 0.02;
const CLEAR_QUEUE_MS: f64 = 50.0;

impl Controller {
    /// Starts at `max_kbps` (the most this call may send, all media), never going under
    /// what audio and the smallest video need.
    pub fn new(max_kbps: u32) -> Self {
        Self {
            rate_kbps: f64::from(max_kbps),
            min_kbps: f64::from(AUDIO_RESERVE_KBPS + MIN_VIDEO_KBPS),
            max_kbps: f64::from(max_kbps),
            base_rtt_ms: None,
        }
    }

    /// The rate allowed now, kbit/s.
    pub fn rate_kbps(&self) -> f64 {
        self.rate_kbps
    }

    /// One second's news: the loss the other side reported (0..1), the round-trip time, and
    /// what we sent (kbit/s, all media). Returns the new rate.
    pub fn update(&mut self, loss: Option<f64>, rtt_ms: Option<f64>, sent_kbps: f64) -> f64 {
        let queue_ms = match rtt_ms {
            Some(rtt) => {
                let base = self.base_rtt_ms.map_or(rtt, |b| b.min(rtt));
                self.base_rtt_ms = Some(base);
                rtt - base
            }
            None => 0.0,
        };
        let loss = loss.unwrap_or(0.0);
        if loss > CONGESTED_LOSS || queue_ms > CONGESTED_QUEUE_MS {
            let through = if sent_kbps > 0.0 {
                sent_kbps * (1.0 - loss)
            } else {
                self.rate_kbps
            };
            self.rate_kbps = (self.rate_kbps.min(through) * 0.85).max(self.min_kbps);
        } else if loss < CLEAR_LOSS && queue_ms < CLEAR_QUEUE_MS {
            self.rate_kbps = (self.rate_kbps * 1.15 + 10.0).min(self.max_kbps);
        }
        self.rate_kbps
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
        };
        let first = rate.wanted_kbps();
        rate.kbps = first;
        rate.ladder.select(first);
        rate
    }

    /// Another source (a camera switch).
    pub fn set_source(&mut self, source: (u32, u32), fps: u32) {
        self.ladder = Ladder::new(source.0, source.1, fps);
        self.source = source;
        self.source_fps = fps.max(1);
        self.ladder.select(self.kbps);
    }

    fn wanted_kbps(&self) -> u32 {
        let bps = self.estimate.load(Ordering::Relaxed);
        if bps == 0 {
            return self.max_kbps;
        }
        ((bps / 1000) as u32)
            .saturating_sub(AUDIO_RESERVE_KBPS)
            .clamp(MIN_VIDEO_KBPS.min(self.max_kbps), self.max_kbps)
    }

    /// The plan for the next frame.
    pub fn plan(&mut self) -> Plan {
        let wanted = self.wanted_kbps();
        let moved = f64::from(wanted.abs_diff(self.kbps)) / f64::from(self.kbps.max(1));
        if moved > 0.05 {
            self.kbps = wanted;
        }
        let rung = self.ladder.select(self.kbps);
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
        let p = r.plan();
        assert_eq!(
            (p.rung.width, p.rung.height, p.rung.fps, p.kbps),
            (1280, 720, 30, 1500)
        );
    }

    #[test]
    fn the_estimate_sets_bitrate_and_size_with_audio_kept_aside() {
        let (mut r, estimate) = rate((1280, 720), 1500);
        estimate.store(548_000, Ordering::Relaxed);
        let p = r.plan();
        assert_eq!(p.kbps, 500);
        assert_eq!((p.rung.width, p.rung.height), (640, 360));
        estimate.store(100_000, Ordering::Relaxed);
        let p = r.plan();
        assert_eq!(p.kbps, MIN_VIDEO_KBPS);
        assert_eq!((p.rung.width, p.rung.height, p.rung.fps), (320, 180, 15));
        // Small moves are ignored; the cap holds.
        estimate.store(102_000, Ordering::Relaxed);
        assert_eq!(r.plan().kbps, MIN_VIDEO_KBPS);
        estimate.store(10_000_000, Ordering::Relaxed);
        assert_eq!(r.plan().kbps, 1500);
    }

    #[test]
    fn the_picture_keeps_the_source_aspect() {
        let (mut r, estimate) = rate((640, 480), 1000);
        estimate.store(300_000, Ordering::Relaxed);
        let p = r.plan();
        assert_eq!((p.rung.width, p.rung.height), (240, 180), "4:3 stays 4:3");
    }

    #[test]
    fn the_controller_backs_off_under_congestion_and_climbs_when_clear() {
        let mut c = Controller::new(1048);
        // A 500 kbit/s link: what we send overflows it, the queue grows, packets are lost.
        let r = c.update(Some(0.0), Some(40.0), 1000.0);
        assert!(r >= 1048.0 * 0.99, "clear at first: {r}");
        let r = c.update(Some(0.2), Some(400.0), 1000.0);
        assert!(
            (670.0..=690.0).contains(&r),
            "85% of the 800 that got through: {r}"
        );
        let r = c.update(Some(0.15), Some(600.0), 680.0);
        assert!(r < 500.0, "under the link: {r}");
        // The queue drains but is not gone: hold.
        let held = c.update(Some(0.0), Some(120.0), r);
        assert_eq!(held, r);
        // Clear: climb 15% a second, to the maximum and no further.
        let mut last = held;
        for _ in 0..4 {
            let next = c.update(Some(0.0), Some(41.0), last);
            assert!(next > last * 1.14, "{last} -> {next}");
            last = next;
        }
        for _ in 0..20 {
            last = c.update(Some(0.0), Some(40.0), last);
        }
        assert_eq!(last, 1048.0);
        // Never below what audio and the smallest video need.
        for _ in 0..30 {
            last = c.update(Some(0.5), Some(900.0), 10.0);
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
