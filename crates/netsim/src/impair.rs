//! What happens to each packet on one direction of a path: the decision alone, with no
//! sockets, so it is deterministic under a seed and testable packet by packet.
//!
//! In order, for every packet: a cut drops it; then the loss model (independent, or
//! Gilbert-Elliott bursts); then the rate cap, a link that sends one packet after another at
//! `rate_kbps` behind a drop-tail queue of `queue_ms`; then the delay, `delay_ms` plus a
//! uniform jitter of ±`jitter_ms`. Without `reorder`, a packet never overtakes the one before
//! it (jitter then bunches packets up, as on a real link); with it, jitter reorders them.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How packets are lost (before the rate cap).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    /// None lost.
    #[default]
    None,
    /// Each packet lost with this probability (0..=1), independently.
    Random(f64),
    /// Gilbert-Elliott: a two-state Markov chain. In the good state a packet is lost with
    /// `loss_good`, in the bad state with `loss_bad`; before each packet the chain moves
    /// good → bad with `p` and bad → good with `r`.
    GilbertElliott {
        /// Good → bad, per packet.
        p: f64,
        /// Bad → good, per packet (the mean burst is `1 / r` packets).
        r: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl Loss {
    /// Bursts of `mean_burst` packets on average, all lost, adding up to `average` (0..1) of
    /// all packets: the classic Gilbert model.
    pub fn bursts(average: f64, mean_burst: f64) -> Self {
        let r = 1.0 / mean_burst.max(1.0);
        let average = average.clamp(0.0, 0.99);
        Self::GilbertElliott {
            p: average * r / (1.0 - average),
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }
}

/// One direction's impairment. `Impairment::default()` is a perfect link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairment {
    /// Everything dropped (a cable pulled, a tunnel).
    pub cut: bool,
    /// Loss model.
    pub loss: Loss,
    /// Link rate, kbit/s (`None`: unlimited).
    pub rate_kbps: Option<u32>,
    /// Longest queue behind the rate cap, ms of sending time; a packet that would wait longer
    /// is dropped (drop-tail). Ignored without a cap.
    pub queue_ms: u32,
    /// One-way delay, ms.
    pub delay_ms: u32,
    /// Uniform jitter on top of the delay, ± ms.
    pub jitter_ms: u32,
    /// Let jitter reorder packets.
    pub reorder: bool,
}

/// What one direction did, since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Packets offered.
    pub packets_in: u64,
    /// Bytes offered.
    pub bytes_in: u64,
    /// Packets let through (delivered once their time comes).
    pub passed: u64,
    /// Bytes let through.
    pub bytes_passed: u64,
    /// Dropped by the loss model.
    pub lost: u64,
    /// Dropped because the queue behind the rate cap was full.
    pub queue_drops: u64,
    /// Dropped during a cut.
    pub cut_drops: u64,
    /// Let through but later than a packet offered after them.
    pub reordered: u64,
    /// Longest wait in the queue behind the rate cap, µs.
    pub max_queue_us: u64,
    /// The wait of the last packet let through behind the rate cap, µs (the queue now).
    pub queue_us: u64,
}

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// The loss model.
    Lost,
    /// The queue behind the rate cap was full.
    Queue,
    /// A cut.
    Cut,
}

/// One direction's state: the loss chain, the link and the random source.
#[derive(Debug)]
pub struct Shaper {
    config: Impairment,
    rng: StdRng,
    bad: bool,
    /// When the capped link finishes sending what it has queued.
    link_free: Option<Instant>,
    /// Delivery time of the last packet let through.
    last_delivery: Option<Instant>,
    counters: Counters,
}

impl Shaper {
    /// A direction with `config`, its randomness drawn from `seed`.
    pub fn new(config: Impairment, seed: u64) -> Self {
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            link_free: None,
            last_delivery: None,
            counters: Counters::default(),
        }
    }

    /// The impairment in force.
    pub fn config(&self) -> Impairment {
        self.config
    }

    /// Changes the impairment from the next packet on (the queue and the loss state carry
    /// over, as on a real link whose conditions change).
    pub fn set(&mut self, config: Impairment) {
        self.config = config;
    }

    /// What it has done so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Decides the fate of a packet of `len` bytes offered at `now`: dropped, or delivered at
    /// the returned instant.
    pub fn offer(&mut self, len: usize, now: Instant) -> Result<Instant, Drop> {
        let c = &mut self.counters;
        c.packets_in += 1;
        c.bytes_in += len as u64;
        if self.config.cut {
            c.cut_drops += 1;
            return Err(Drop::Cut);
        }
        let lost = match self.config.loss {
            Loss::None => false,
            Loss::Random(p) => self.rng.random_bool(p.clamp(0.0, 1.0)),
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad { r } else { p };
                if self.rng.random_bool(flip.clamp(0.0, 1.0)) {
                    self.bad = !self.bad;
                }
                let loss = if self.bad { loss_bad } else { loss_good };
                self.rng.random_bool(loss.clamp(0.0, 1.0))
            }
        };
        if lost {
            c.lost += 1;
            return Err(Drop::Lost);
        }
        let mut sent = now;
        if let Some(kbps) = self.config.rate_kbps {
            let start = self.link_free.filter(|&free| free > now).unwrap_or(now);
            let wait = start - now;
            if wait > Duration::from_millis(u64::from(self.config.queue_ms)) {
                c.queue_drops += 1;
                return Err(Drop::Queue);
            }
            c.queue_us = wait.as_micros() as u64;
            c.max_queue_us = c.max_queue_us.max(c.queue_us);
            let on_wire =
                Duration::from_secs_f64(len as f64 * 8.0 / (f64::from(kbps.max(1)) * 1e3));
            sent = start + on_wire;
            self.link_free = Some(sent);
        }
        let jitter = i64::from(self.config.jitter_ms) * 1000;
        let offset_us = i64::from(self.config.delay_ms) * 1000
            + if jitter > 0 {
                self.rng.random_range(-jitter..=jitter)
            } else {
                0
            };
        let mut at = sent + Duration::from_micros(offset_us.max(0) as u64);
        match self.last_delivery {
            Some(last) if at < last && !self.config.reorder => at = last,
            Some(last) if at < last => c.reordered += 1,
            _ => {}
        }
        self.last_delivery = Some(self.last_delivery.map_or(at, |l| l.max(at)));
        c.passed += 1;
        c.bytes_passed += len as u64;
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: Impairment, seed: u64, n: usize) -> (Shaper, Vec<Result<Instant, Drop>>) {
        let mut s = Shaper::new(config, seed);
        let t0 = Instant::now();
        let out = (0..n)
            .map(|i| s.offer(1000, t0 + Duration::from_millis(i as u64)))
            .collect();
        (s, out)
    }

    #[test]
    fn the_same_seed_does_the_same_thing_and_counters_add_up() {
        let config = Impairment {
            loss: Loss::Random(0.1),
            delay_ms: 50,
            jitter_ms: 10,
            ..Impairment::default()
        };
        let (a, fa) = run(config, 7, 10_000);
        let (_, fb) = run(config, 7, 10_000);
        let (_, fc) = run(config, 8, 10_000);
        let drops = |f: &[Result<Instant, Drop>]| f.iter().filter(|r| r.is_err()).count();
        assert_eq!(drops(&fa), drops(&fb));
        assert_ne!(drops(&fa), drops(&fc), "another seed, another pattern");
        let c = a.counters();
        assert_eq!(c.packets_in, 10_000);
        assert_eq!(
            c.passed + c.lost + c.queue_drops + c.cut_drops,
            c.packets_in
        );
        assert_eq!(c.lost as usize, drops(&fa));
        let rate = c.lost as f64 / 10_000.0;
        assert!((0.09..0.11).contains(&rate), "loss {rate}");
    }

    #[test]
    fn delay_and_jitter_stay_in_bounds_and_keep_order_unless_asked() {
        let config = Impairment {
            delay_ms: 50,
            jitter_ms: 10,
            ..Impairment::default()
        };
        let t0 = Instant::now();
        let mut s = Shaper::new(config, 1);
        let mut last = t0;
        for i in 0..1000u64 {
            let sent = t0 + Duration::from_millis(i);
            let at = s.offer(100, sent).expect("no loss");
            let d = at - sent;
            assert!(d >= Duration::from_millis(40), "{d:?}");
            assert!(d <= Duration::from_millis(61), "{d:?}");
            assert!(at >= last, "in order");
            last = at;
        }
        assert_eq!(s.counters().reordered, 0);
        let (s, _) = run(
            Impairment {
                reorder: true,
                ..config
            },
            1,
            1000,
        );
        assert!(s.counters().reordered > 100, "{:?}", s.counters());
    }

    #[test]
    fn bursts_average_out_and_come_in_runs() {
        let (s, out) = run(
            Impairment {
                loss: Loss::bursts(0.05, 5.0),
                ..Impairment::default()
            },
            3,
            100_000,
        );
        let rate = s.counters().lost as f64 / 100_000.0;
        assert!((0.04..0.06).contains(&rate), "average loss {rate}");
        let mut runs = Vec::new();
        let mut current = 0;
        for r in &out {
            if r.is_err() {
                current += 1;
            } else if current > 0 {
                runs.push(current);
                current = 0;
            }
        }
        let mean = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
        assert!((4.0..6.0).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn a_rate_cap_paces_packets_and_drops_what_overflows_the_queue() {
        // 1000-byte packets every 1 ms = 8 Mbit/s into a 1 Mbit/s link with a 100 ms queue:
        // 8 ms per packet on the wire, so about one in eight gets through once the queue is
        // full, each 8 ms after the last.
        let (s, out) = run(
            Impairment {
                rate_kbps: Some(1000),
                queue_ms: 100,
                ..Impairment::default()
            },
            1,
            1000,
        );
        let c = s.counters();
        assert!(c.queue_drops > 800, "{c:?}");
        assert!(c.max_queue_us <= 100_000, "{c:?}");
        let times: Vec<Instant> = out.into_iter().filter_map(Result::ok).collect();
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(8));
        }
        // Throughput over the run: the link rate.
        let span = (*times.last().expect("some") - times[0]).as_secs_f64();
        let kbps = (times.len() - 1) as f64 * 8.0 / span;
        assert!((990.0..1010.0).contains(&kbps), "{kbps} kbit/s");
    }

    #[test]
    fn a_cut_drops_everything_until_it_is_lifted() {
        let mut s = Shaper::new(
            Impairment {
                cut: true,
                ..Impairment::default()
            },
            1,
        );
        let now = Instant::now();
        assert_eq!(s.offer(10, now), Err(Drop::Cut));
        s.set(Impairment::default());
        assert_eq!(s.offer(10, now), Ok(now));
        assert_eq!(s.counters().cut_drops, 1);
        assert_eq!(s.counters().passed, 1);
    }
}
