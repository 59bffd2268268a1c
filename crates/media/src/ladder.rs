//! The resolution ladder (no simulcast): which size and frame rate to send for a target
//! bitrate, as the call engine's congestion control moves it.
//!
//! Rungs and their floors follow what VP8 needs for a watchable 30 fps picture of a person
//! (WebRTC's defaults are of the same order): 720p from 1.2 Mbit/s, 540p from 700 kbit/s, 360p
//! from 300 kbit/s, 180p below. Stepping up needs 25% more than the floor, stepping down happens
//! at the floor: a bitrate that hovers at a boundary does not make the picture size flap (each
//! switch costs a keyframe).
//!
//! A margin in bitrate is not enough where the estimate swings by more than that: at 20% loss
//! it crossed the 360p floor both ways every two or three seconds, and each crossing sent a
//! keyframe through the loss. So there is a margin in time as well: after a step down, no step
//! up for [`UP_HOLD`], and a climb that had to come straight back down (within the hold) doubles
//! the hold, up to [`UP_HOLD_MAX`], as a TCP sender backs off its probing; a step down after a
//! rung held for longer starts again from [`UP_HOLD`]. Steps down are never held back.
//!
//! Under 150 kbit/s, where 180p at 30 fps would get less than [`FRAME_KBIT`] a frame, the frame
//! rate comes down with the bitrate so that each frame keeps that much (20 fps at 100 kbit/s),
//! to no fewer than [`MIN_FPS`]: motion before detail, as a conversation needs it (lips and
//! hands read at 20 frames a second, not at 15), while every frame stays as sharp as one at
//! 150 kbit/s and 30 fps.

use std::time::{Duration, Instant};

/// One step of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Width to encode.
    pub width: u32,
    /// Height to encode.
    pub height: u32,
    /// Frames per second to encode.
    pub fps: u32,
}

/// (width, height, floor in kbit/s), largest first.
const RUNGS: [(u32, u32, u32); 4] = [
    (1280, 720, 1200),
    (960, 540, 700),
    (640, 360, 300),
    (320, 180, 0),
];
/// The least a frame is given above [`MIN_FPS`], kbit: a 180p frame at 150 kbit/s and 30 fps.
pub const FRAME_KBIT: u32 = 5;
/// The frame rate never goes below this for want of bitrate.
pub const MIN_FPS: u32 = 15;
const UP_MARGIN: f64 = 1.25;
/// After a step down, the least time before a step up.
pub const UP_HOLD: Duration = Duration::from_secs(4);
/// The longest the hold grows to after climbs that failed.
pub const UP_HOLD_MAX: Duration = Duration::from_secs(12);

/// Chooses rungs with hysteresis; remembers the current one.
#[derive(Debug, Clone)]
pub struct Ladder {
    /// Index into `RUNGS` of the largest rung the source allows.
    top: usize,
    current: usize,
    fps: u32,
    /// Whether a rung has been picked yet: the first pick needs no margin.
    picked: bool,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    /// How long after `last_down` a step up must wait.
    hold: Duration,
}

impl Ladder {
    /// A ladder for a source of `width × height` at `fps`: never above the source size or rate.
    /// Starts at the smallest rung, as a call starts at a low rate and climbs.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        let top = RUNGS
            .iter()
            .position(|&(w, h, _)| w <= width && h <= height)
            .unwrap_or(RUNGS.len() - 1);
        Self {
            top,
            current: RUNGS.len() - 1,
            fps: fps.max(1),
            picked: false,
            last_down: None,
            last_up: None,
            hold: UP_HOLD,
        }
    }

    /// The rung in force.
    pub fn current(&self, target_kbps: u32) -> Rung {
        let (width, height, _) = RUNGS[self.current];
        let fps = self.fps.min((target_kbps / FRAME_KBIT).max(MIN_FPS));
        Rung { width, height, fps }
    }

    /// Moves to the rung for `target_kbps` at `now` and returns it.
    pub fn select(&mut self, target_kbps: u32, now: Instant) -> Rung {
        let target = f64::from(target_kbps);
        // Down while below the current floor.
        let from = self.current;
        while self.current + 1 < RUNGS.len() && target < f64::from(RUNGS[self.current].2) {
            self.current += 1;
        }
        if self.current != from {
            let failed_climb = self
                .last_up
                .is_some_and(|up| now.saturating_duration_since(up) < self.hold);
            self.hold = if failed_climb {
                (self.hold * 2).min(UP_HOLD_MAX)
            } else {
                UP_HOLD
            };
            self.last_down = Some(now);
        }
        // Up while the next rung's floor is cleared with margin (the margin stops flapping
        // at a boundary; the first pick has nothing to flap from), and not within the hold.
        let margin = if self.picked { UP_MARGIN } else { 1.0 };
        self.picked = true;
        let held = self
            .last_down
            .is_some_and(|down| now.saturating_duration_since(down) < self.hold);
        let from = self.current;
        while !held
            && self.current > self.top
            && target >= f64::from(RUNGS[self.current - 1].2) * margin
        {
            self.current -= 1;
        }
        if self.current != from {
            self.last_up = Some(now);
        }
        self.current(target_kbps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(r: Rung) -> (u32, u32) {
        (r.width, r.height)
    }

    /// The start of a test's clock.
    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    #[test]
    fn picks_by_bitrate_and_never_exceeds_the_source() {
        let mut l = Ladder::new(1280, 720, 30);
        assert_eq!(size(l.select(100, t0())), (320, 180));
        assert_eq!(l.select(60, t0()).fps, 15);
        assert_eq!(size(l.select(400, t0())), (640, 360));
        assert_eq!(size(l.select(900, t0())), (960, 540));
        assert_eq!(size(l.select(2500, t0())), (1280, 720));
        assert_eq!(l.select(2500, t0()).fps, 30);
        let mut small = Ladder::new(640, 480, 24);
        assert_eq!(
            small.select(5000, t0()),
            Rung {
                width: 640,
                height: 360,
                fps: 24
            }
        );
    }

    #[test]
    fn under_150_kbps_the_frame_rate_follows_the_bitrate_down_to_15() {
        let mut l = Ladder::new(1280, 720, 30);
        let fps = |l: &mut Ladder, kbps| l.select(kbps, t0()).fps;
        assert_eq!(fps(&mut l, 150), 30);
        assert_eq!(fps(&mut l, 149), 29);
        assert_eq!(fps(&mut l, 100), 20);
        assert_eq!(fps(&mut l, 76), 15);
        assert_eq!(fps(&mut l, 60), 15);
        // Never above the source's rate, nor raised to 15 for a slower source.
        let mut slow = Ladder::new(640, 360, 10);
        assert_eq!(fps(&mut slow, 60), 10);
        assert_eq!(fps(&mut slow, 1000), 10);
        let mut film = Ladder::new(640, 360, 24);
        assert_eq!(fps(&mut film, 110), 22);
        assert_eq!(fps(&mut film, 200), 24);
    }

    #[test]
    fn the_first_pick_needs_only_the_floor() {
        let mut l = Ladder::new(1280, 720, 30);
        assert_eq!(size(l.select(352, t0())), (640, 360));
        assert_eq!(
            size(l.select(1300, t0())),
            (960, 540),
            "then 1200 × 1.25 for 720p"
        );
        assert_eq!(size(l.select(1500, t0())), (1280, 720));
    }

    fn at(secs: f64) -> Instant {
        t0() + Duration::from_secs_f64(secs)
    }

    #[test]
    fn hysteresis_stops_flapping_at_a_boundary() {
        let mut l = Ladder::new(1280, 720, 30);
        assert_eq!(size(l.select(100, at(0.0))), (320, 180));
        assert_eq!(
            size(l.select(380, at(1.0))),
            (640, 360),
            "300 × 1.25 = 375 cleared"
        );
        // Hovering around the 360p floor: down only below 300, up only from 375.
        assert_eq!(size(l.select(310, at(2.0))), (640, 360));
        assert_eq!(size(l.select(299, at(10.0))), (320, 180));
        assert_eq!(size(l.select(360, at(20.0))), (320, 180), "not yet 375");
        assert_eq!(size(l.select(375, at(20.0))), (640, 360));
        // A sudden collapse goes straight down; a recovery climbs as far as it clears.
        l.select(3000, at(30.0));
        assert_eq!(size(l.select(200, at(40.0))), (320, 180));
        assert_eq!(size(l.select(1000, at(50.0))), (960, 540));
    }

    #[test]
    fn after_a_step_down_the_climb_waits_and_waits_longer_after_each_failed_climb() {
        let mut l = Ladder::new(1280, 720, 30);
        let hold = UP_HOLD.as_secs_f64();
        assert_eq!(size(l.select(400, at(0.0))), (640, 360));
        // Down at once, whenever the floor is crossed.
        assert_eq!(size(l.select(250, at(10.0))), (320, 180));
        // The estimate is back at once, but the picture stays small for the hold.
        assert_eq!(size(l.select(500, at(10.5))), (320, 180));
        assert_eq!(size(l.select(500, at(10.0 + hold - 0.1))), (320, 180));
        assert_eq!(size(l.select(500, at(10.0 + hold))), (640, 360));
        // That climb fails within the hold: the next hold is twice as long.
        let t = 10.0 + hold + 1.0;
        assert_eq!(size(l.select(250, at(t))), (320, 180));
        assert_eq!(
            size(l.select(500, at(t + hold))),
            (320, 180),
            "held twice as long"
        );
        assert_eq!(size(l.select(500, at(t + 2.0 * hold))), (640, 360));
        // And again, up to the longest hold.
        let mut t = t + 2.0 * hold;
        for _ in 0..5 {
            t += 0.5;
            assert_eq!(size(l.select(250, at(t))), (320, 180));
            let max = UP_HOLD_MAX.as_secs_f64();
            assert_eq!(size(l.select(500, at(t + max - 0.1))), (320, 180));
            assert_eq!(
                size(l.select(500, at(t + max))),
                (640, 360),
                "never over the most"
            );
            t += max;
        }
        // A rung that held for longer than the hold: the next step down is forgiven.
        t += 60.0;
        assert_eq!(size(l.select(250, at(t))), (320, 180));
        assert_eq!(size(l.select(500, at(t + hold))), (640, 360));
        // A collapse is never held back, from any rung.
        assert_eq!(size(l.select(3000, at(t + 100.0))), (1280, 720));
        assert_eq!(size(l.select(100, at(t + 100.1))), (320, 180));
    }
}
