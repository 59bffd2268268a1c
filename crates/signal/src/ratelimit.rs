//! Per-connection token bucket (time is an input, so tests need no clock).

use std::time::Instant;

/// A token bucket: `burst` tokens, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_sec: u32, now: Instant) -> Self {
        Self {
            burst: f64::from(burst),
            per_sec: f64::from(per_sec),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 20, t0);
        assert_eq!((0..150).filter(|_| b.take(t0)).count(), 100);
        // One second later, 20 more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..50).filter(|_| b.take(t1)).count(), 20);
        // Refill never exceeds the burst.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..500).filter(|_| b.take(t2)).count(), 100);
    }

    #[test]
    fn steady_sender_at_the_rate_is_never_limited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 20, t0);
        for i in 0..2000u32 {
            assert!(b.take(t0 + Duration::from_millis(50) * i), "message {i}");
        }
    }
}
