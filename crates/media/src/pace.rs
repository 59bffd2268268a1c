//! Real-time pacing for the threads that produce or consume media at a fixed rate.

use std::time::{Duration, Instant};

/// Wakes a loop once per `period`. A loop that falls behind catches up by at most `max_lag`
/// (zero: missed ticks are skipped; `Duration::MAX`: every tick is made up).
#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    max_lag: Duration,
    next: Instant,
}

impl Pacer {
    /// A pacer whose first tick is now.
    pub fn new(period: Duration, max_lag: Duration) -> Self {
        Self {
            period,
            max_lag,
            next: Instant::now(),
        }
    }

    /// Sleeps until the next tick (not at all when it is already due) and schedules the one
    /// after.
    pub fn wait(&mut self) {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        }
        self.next += self.period;
        if let Some(floor) = Instant::now().checked_sub(self.max_lag) {
            self.next = self.next.max(floor);
        }
    }
}

/// The rate frames come at, from their capture times, for the encoders' rate control: a
/// frame's share of the bitrate is the time it stands for. A call that takes 2 of every 3
/// frames of a 30 fps camera gives them 33 and 67 ms apart; told nothing, OpenH264 budgets
/// every frame as 1/30 s (the output fell to the fraction of frames taken) and libvpx, told a
/// fixed 33 ms duration, takes each 67 ms gap for a drop to 15 fps and budgets the next
/// frames as such (35% over the target at 20 fps).
#[derive(Debug)]
pub(crate) struct InputRate {
    /// The rate the encoder was configured for: never reported above it.
    max_fps: f64,
    last_us: Option<u64>,
    /// Average interval between frames, µs (0 until two frames).
    interval_us: f64,
}

impl InputRate {
    /// For an encoder configured for `max_fps` (at least 1).
    pub(crate) fn new(max_fps: u32) -> Self {
        Self {
            max_fps: f64::from(max_fps.max(1)),
            last_us: None,
            interval_us: 0.0,
        }
    }

    /// Takes a frame's capture time; the frame rate measured so far (at most the configured
    /// one), once there is one.
    pub(crate) fn frame(&mut self, capture_us: u64) -> Option<f64> {
        if let Some(last) = self.last_us.replace(capture_us) {
            // A gap of a second or more is a pause (camera off), not a rate.
            if let Some(dt) = capture_us
                .checked_sub(last)
                .filter(|&d| d > 0 && d < 1_000_000)
            {
                let dt = dt as f64;
                self.interval_us = if self.interval_us == 0.0 {
                    dt
                } else {
                    self.interval_us + (dt - self.interval_us) * 0.2
                };
            }
        }
        (self.interval_us > 0.0).then(|| (1e6 / self.interval_us).min(self.max_fps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_at_the_period_and_bounds_catching_up() {
        let mut p = Pacer::new(Duration::from_millis(5), Duration::ZERO);
        let started = Instant::now();
        for _ in 0..5 {
            p.wait();
        }
        // Ticks at 0, 5, 10, 15, 20 ms.
        assert!(started.elapsed() >= Duration::from_millis(20));

        // A 30 ms stall with no lag allowed: the overdue tick and one more fire at once,
        // then the period resumes (the six missed ticks are not made up).
        let mut skip = Pacer::new(Duration::from_millis(5), Duration::ZERO);
        skip.wait();
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        skip.wait();
        skip.wait();
        assert!(t.elapsed() < Duration::from_millis(4), "the overdue tick");
        let t = Instant::now();
        skip.wait();
        assert!(
            t.elapsed() >= Duration::from_millis(4),
            "missed ticks skipped"
        );

        // With unbounded lag the missed ticks come back to back.
        let mut catch_up = Pacer::new(Duration::from_millis(5), Duration::MAX);
        catch_up.wait();
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        for _ in 0..4 {
            catch_up.wait();
        }
        assert!(t.elapsed() < Duration::from_millis(5), "made up at once");
    }

    #[test]
    fn the_input_rate_follows_the_frames_given() {
        let mut rate = InputRate::new(30);
        assert_eq!(rate.frame(1_000_000), None);
        let mut t = 1_000_000;
        let mut last = None;
        for _ in 0..30 {
            t += 33_333;
            last = rate.frame(t);
        }
        assert!((last.unwrap() - 30.0).abs() < 0.1, "{last:?}");
        // Every other frame taken: 15 fps within a second.
        for _ in 0..15 {
            t += 66_667;
            last = rate.frame(t);
        }
        assert!((last.unwrap() - 15.0).abs() < 0.5, "{last:?}");
        // A pause (the camera off for 5 s) is not a rate; a clock step back is ignored.
        t += 5_000_000;
        assert!((rate.frame(t).unwrap() - 15.0).abs() < 0.5);
        assert!((rate.frame(t - 10).unwrap() - 15.0).abs() < 0.5);
        // Never above the configured rate, however close together frames come.
        let mut burst = InputRate::new(30);
        assert_eq!(burst.frame(0), None);
        assert_eq!(burst.frame(10_000), Some(30.0));
    }
}
