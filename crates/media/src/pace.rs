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
}
