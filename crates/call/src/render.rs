//! When to show each decoded remote frame: at its capture cadence, behind a delay just large
//! enough to absorb how late frames arrive.
//!
//! On a clean path frames arrive as they were captured, and each is shown the moment it is
//! decoded. Under loss, the frames behind a gap wait for its retransmission and then arrive
//! together. Shown as they come, they would be a stall followed by a jump, and a reader that
//! takes only the newest frame (the UI) would skip most of them. So each frame is scheduled
//! at its RTP time plus a playout delay. The delay is the 95th percentile of how late frames
//! arrived over the last few seconds, measured against the earliest frame of that window, so
//! no clock sync is needed. It rises at once and falls slowly (1 ms per frame), as WebRTC's
//! own video timing does, and is capped so that a long outage turns into a skip, not into
//! lasting latency.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back arrivals are remembered.
const WINDOW: Duration = Duration::from_secs(4);
/// How much the delay falls per frame once frames arrive on time again.
const DECAY: Duration = Duration::from_millis(1);

/// The render schedule of one remote video stream.
#[derive(Debug)]
pub struct RenderClock {
    epoch: Instant,
    /// (arrival, seconds since the epoch minus RTP seconds) per frame, oldest first.
    window: VecDeque<(Instant, f64)>,
    last_rtp: Option<u32>,
    rtp_base: i64,
    delay: Duration,
    max: Duration,
}

impl RenderClock {
    /// A schedule whose delay never exceeds `max`.
    pub fn new(max: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            window: VecDeque::new(),
            last_rtp: None,
            rtp_base: 0,
            delay: Duration::ZERO,
            max,
        }
    }

    /// The playout delay now.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// RTP timestamp (90 kHz, wrapping) → seconds on a continuous scale.
    fn rtp_seconds(&mut self, rtp: u32) -> f64 {
        if let Some(last) = self.last_rtp {
            let step = rtp.wrapping_sub(last) as i32;
            self.rtp_base += i64::from(step);
        }
        self.last_rtp = Some(rtp);
        self.rtp_base as f64 / 90_000.0
    }

    /// A frame captured at RTP time `rtp` was complete at `arrival`: when to show it (never
    /// before `arrival`).
    pub fn schedule(&mut self, rtp: u32, arrival: Instant) -> Instant {
        let media = self.rtp_seconds(rtp);
        let transit = arrival.duration_since(self.epoch).as_secs_f64() - media;
        self.window.push_back((arrival, transit));
        while self
            .window
            .front()
            .is_some_and(|&(at, _)| arrival.duration_since(at) > WINDOW)
        {
            self.window.pop_front();
        }
        // The quickest transit in the window is "on time"; the rest are late by the difference.
        let fastest = self
            .window
            .iter()
            .map(|&(_, t)| t)
            .fold(f64::INFINITY, f64::min);
        let mut late: Vec<f64> = self.window.iter().map(|&(_, t)| t - fastest).collect();
        late.sort_by(f64::total_cmp);
        let p95 = late[(late.len() * 95 / 100).min(late.len() - 1)];
        let wanted = Duration::from_secs_f64(p95.max(0.0)).min(self.max);
        self.delay = if wanted > self.delay {
            wanted
        } else {
            self.delay.saturating_sub(DECAY).max(wanted)
        };
        let due = self.epoch + Duration::from_secs_f64((media + fastest).max(0.0)) + self.delay;
        due.max(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_micros(33_333);

    #[test]
    fn frames_on_time_are_shown_at_once() {
        let mut clock = RenderClock::new(Duration::from_millis(300));
        let t0 = Instant::now();
        for k in 0..300u32 {
            let arrival = t0 + FRAME * k;
            let due = clock.schedule(k * 3000, arrival);
            assert!(due - arrival < Duration::from_millis(1), "frame {k}");
        }
        assert!(clock.delay() < Duration::from_millis(1));
    }

    #[test]
    fn frames_released_together_after_a_repair_are_spread_out_again() {
        let mut clock = RenderClock::new(Duration::from_millis(300));
        let t0 = Instant::now();
        let mut shown = Vec::new();
        for k in 0..300u32 {
            // Every 10th frame's packet is lost and repaired 120 ms later; the frames after
            // it wait behind it and arrive together with it.
            let captured = t0 + FRAME * k;
            let held_until = t0 + FRAME * (k - k % 10) + Duration::from_millis(120);
            let arrival = captured.max(held_until);
            shown.push(clock.schedule(k * 3000, arrival));
        }
        // Once the delay has learnt the 120 ms, frames are shown one frame interval apart.
        for pair in shown[100..].windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap > Duration::from_millis(25) && gap < Duration::from_millis(42),
                "{gap:?}"
            );
        }
        let d = clock.delay();
        assert!(
            d >= Duration::from_millis(110) && d <= Duration::from_millis(125),
            "{d:?}"
        );
    }

    #[test]
    fn the_delay_is_capped_and_falls_back_when_the_path_clears() {
        let mut clock = RenderClock::new(Duration::from_millis(200));
        let t0 = Instant::now();
        // 2 s of frames arriving up to 1 s late, then on time again.
        for k in 0..60u32 {
            let late = Duration::from_millis(u64::from(k % 30) * 33);
            clock.schedule(k * 3000, t0 + FRAME * k + late);
        }
        assert_eq!(clock.delay(), Duration::from_millis(200));
        for k in 60..600u32 {
            clock.schedule(k * 3000, t0 + FRAME * k + Duration::from_secs(1));
        }
        assert!(
            clock.delay() < Duration::from_millis(5),
            "{:?}",
            clock.delay()
        );
    }

    #[test]
    fn rtp_timestamps_wrap() {
        let mut clock = RenderClock::new(Duration::from_millis(300));
        let t0 = Instant::now();
        let start = u32::MAX - 3000 * 5;
        for k in 0..20u32 {
            let arrival = t0 + FRAME * k;
            let due = clock.schedule(start.wrapping_add(k * 3000), arrival);
            assert!(due - arrival < Duration::from_millis(1), "frame {k}");
        }
    }
}
