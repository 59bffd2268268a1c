//! The send-side bandwidth estimate from transport-wide feedback: every ~100 ms the other side
//! reports when each of our packets arrived (TWCC, which Confer, Chromium and Firefox all send),
//! and webrtc-rs's congestion-control interceptor joins that with when each one left. This is
//! the algorithm behind its [`BandwidthEstimator`] seam.
//!
//! It reads the queue on the path directly. A packet's one-way delay is its arrival (on the
//! receiver's clock) less its departure (on ours); the two clocks differ by an unknown constant,
//! so the smallest delay seen recently stands for the empty path and anything above it is
//! queueing. Three regimes, decided on each report:
//!
//! - **Over**: more than [`OVERUSE_MS`] of queue in every packet of the report (the least of
//!   them, so one packet held up by a busy receiver is not a queue). The link is saturated, so
//!   what it delivered (the acknowledged rate over the last half second) is its capacity: the
//!   rate drops to 85% of that, so the queue drains at 15% of capacity, or lower for a longer
//!   queue, so that any queue drains within about [`DRAIN_TIME`] (down to half of capacity).
//!   Not again until the queue has had time to answer, unless it keeps growing.
//! - **Rising**: a smaller queue (over [`RISING_MS`]) that grew by more than [`RISING_SLOPE`]
//!   over the last [`TREND_WINDOW`] of departures (a least-squares line through every
//!   packet's delay, as GCC's trendline filter): the path is being filled faster than it
//!   empties. The rate drops to 95% of what was delivered, before the queue reaches the
//!   overuse threshold. Feedback is a round trip old when it arrives: on a 200 ms round trip a
//!   sender 20% over capacity adds 40 ms of queue before it hears of the first, so waiting for
//!   60 ms of queue meant 150 ms or more by the time the cut took effect.
//! - **Lossy**: more than 10% of packets lost over the last second, with a queue building
//!   (loss that comes with a queue is congestion: a short router buffer overflowing), or more
//!   than 25% with none: cut by half the loss (as GCC's loss-based half does). Loss with no
//!   queue behind it is the medium's (Wi-Fi, a mobile link): sending less would not lose less,
//!   so up to 25% of it is left to retransmission and FEC.
//! - **Clear**: under [`CLEAR_MS`] of queue and at most 10% lost: climb, fastest (50% a second)
//!   until the path has first pushed back (a call starts low, at
//!   [`crate::rate::START_KBPS`]), then fast (25% a second) while below 90% of the rate that
//!   last congested the path, more gently (15% a second) above it, and never past 1.5 times
//!   what is actually being delivered, so a muted camera does not license a burst later.
//!   Each of these speeds holds while news of a packet takes up to [`RESPONSE_REF`] to come
//!   back (a round trip plus the far side's reporting interval), and is slower in proportion
//!   beyond: a climb overshoots by its speed times that time, so at 300 ms each way it goes
//!   at about a third of the speed rather than building a queue three times as long.
//!   With 10-25% lost and no queue (the medium's loss), climb too, at 15% a second: holding
//!   there kept a call that started low on a lossy Wi-Fi at its starting rate.
//! - In between (a queue draining, or loss with a small queue): hold.
//!
//! webrtc-rs's own GCC port, measured here first (see `crate::rate`), was far too slow to follow
//! a link down; this one reads the same feedback more directly. With no feedback (a far side
//! that does not do TWCC), [`crate::rate::Controller`] decides from receiver reports instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, PacketReport};

/// Queue (ms) above which the path is overused.
pub const OVERUSE_MS: f64 = 60.0;
/// Queue (ms) below which the path is clear.
pub const CLEAR_MS: f64 = 25.0;
/// Queue (ms) above which a growing queue is acted on before it reaches [`OVERUSE_MS`].
pub const RISING_MS: f64 = 15.0;
/// Growth of the queue (s per s of departures) that counts as rising: sending 5% over capacity.
const RISING_SLOPE: f64 = 0.05;
/// The departures the queue's growth is measured over.
const TREND_WINDOW: Duration = Duration::from_millis(300);
/// An overuse cut aims to drain the queue within about this long.
const DRAIN_TIME: f64 = 1.0;
/// Loss above which the rate comes down even with no queue in sight.
const HOPELESS_LOSS: f64 = 0.25;
/// How long the smallest one-way delay stands for the empty path.
const BASE_WINDOW: Duration = Duration::from_secs(15);
/// The acknowledged rate is measured over this much of the receiver's clock.
const ACKED_WINDOW: Duration = Duration::from_millis(500);
/// Loss is measured over this much of our clock.
const LOSS_WINDOW: Duration = Duration::from_secs(1);
/// Unacknowledged packets sent over this long in a row: their report was lost, not they.
const UNKNOWN_FATE_RUN: Duration = Duration::from_millis(50);
/// The feedback loop (round trip plus reporting interval) up to which the rate climbs at full
/// speed; slower beyond.
const RESPONSE_REF: Duration = Duration::from_millis(250);
/// Feedback older than this means the far side stopped reporting (or never did).
pub const FEEDBACK_STALE: Duration = Duration::from_secs(2);

/// What the estimator last knew, for the call's stats and its choice of controller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// When the last feedback arrived.
    pub feedback_at: Option<Instant>,
    /// The queue on the path towards the far side, ms.
    pub queue_ms: f64,
    /// What the far side received from us, kbit/s.
    pub acked_kbps: f64,
    /// Fraction of our packets lost, over the last second.
    pub loss: f64,
    /// Rate cuts for queueing so far.
    pub delay_cuts: u64,
    /// Rate cuts for loss so far.
    pub loss_cuts: u64,
}

impl Snapshot {
    /// Whether the far side is reporting, as of `now`.
    pub fn fresh(&self, now: Instant) -> bool {
        self.feedback_at
            .is_some_and(|at| now.saturating_duration_since(at) < FEEDBACK_STALE)
    }
}

/// The estimator. The allowed rate (bit/s) is published in `target`, the value the video sender
/// reads; a second opinion (the receiver-report controller) writes there only while no
/// feedback arrives, and the estimator starts again from whatever it left.
#[derive(Debug)]
pub struct QueueEstimator {
    target: Arc<AtomicU64>,
    snapshot: Arc<Mutex<Snapshot>>,
    rate_bps: f64,
    min_bps: f64,
    max_bps: f64,
    epoch: Option<Instant>,
    /// Smallest one-way delay (s, offset included) per second of departures: (second, delay).
    base: VecDeque<(u64, f64)>,
    /// Arrivals on the receiver's clock, with their sizes.
    acked: VecDeque<(Duration, usize)>,
    /// (departure, arrived) for the loss window.
    fates: VecDeque<(Instant, bool)>,
    /// (departure s since the epoch, one-way delay s) of arrived packets, for the trend.
    trend: VecDeque<(f64, f64)>,
    last_report: Option<Instant>,
    last_change: Option<Instant>,
    /// When the rate was last cut, and the queue then.
    last_cut: Option<(Instant, f64)>,
    last_loss_cut: Option<Instant>,
    /// The acknowledged rate when the path last congested.
    congested_at_bps: Option<f64>,
    /// How old the newest news of a packet is when its report arrives (a round trip plus
    /// the far side's reporting interval), s, smoothed: how long a climb goes on before the
    /// queue it builds can be heard of.
    response_s: Option<f64>,
}

impl QueueEstimator {
    /// Between `min_bps` and `max_bps`, publishing into `target` (whose value is the start).
    pub fn new(
        target: Arc<AtomicU64>,
        snapshot: Arc<Mutex<Snapshot>>,
        min_bps: f64,
        max_bps: f64,
    ) -> Self {
        let rate_bps = (target.load(Ordering::Relaxed) as f64).clamp(min_bps, max_bps);
        Self {
            target,
            snapshot,
            rate_bps,
            min_bps,
            max_bps,
            epoch: None,
            base: VecDeque::new(),
            acked: VecDeque::new(),
            fates: VecDeque::new(),
            trend: VecDeque::new(),
            last_report: None,
            last_change: None,
            last_cut: None,
            last_loss_cut: None,
            congested_at_bps: None,
            response_s: None,
        }
    }

    /// Departure (s since the epoch) and one-way delay of a packet, seconds, plus the
    /// clocks' unknown offset.
    fn one_way(&mut self, r: &PacketReport, arrival: Duration) -> (f64, f64) {
        let epoch = *self.epoch.get_or_insert(r.departure);
        let departed = r.departure.saturating_duration_since(epoch).as_secs_f64();
        (departed, arrival.as_secs_f64() - departed)
    }

    /// How fast the queue grew over the trend window: the slope of the least-squares line
    /// through (departure, delay), s per s; `None` with too few packets to say.
    fn trend_slope(&self) -> Option<f64> {
        let n = self.trend.len();
        let (first, last) = (self.trend.front()?, self.trend.back()?);
        if n < 8 || last.0 - first.0 < TREND_WINDOW.as_secs_f64() / 2.0 {
            return None;
        }
        let nf = n as f64;
        let mean_x = self.trend.iter().map(|p| p.0).sum::<f64>() / nf;
        let mean_y = self.trend.iter().map(|p| p.1).sum::<f64>() / nf;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (x, y) in &self.trend {
            sxy += (x - mean_x) * (y - mean_y);
            sxx += (x - mean_x) * (x - mean_x);
        }
        (sxx > 0.0).then(|| sxy / sxx)
    }

    fn note_base(&mut self, second: u64, delay: f64) {
        match self.base.back_mut() {
            Some((s, d)) if *s == second => *d = d.min(delay),
            _ => self.base.push_back((second, delay)),
        }
        while self
            .base
            .front()
            .is_some_and(|(s, _)| second.saturating_sub(*s) > BASE_WINDOW.as_secs())
        {
            self.base.pop_front();
        }
    }

    fn base_delay(&self) -> Option<f64> {
        self.base.iter().map(|(_, d)| *d).reduce(f64::min)
    }

    fn acked_bps(&self) -> f64 {
        let (Some(first), Some(last)) = (self.acked.front(), self.acked.back()) else {
            return 0.0;
        };
        let span = last.0.saturating_sub(first.0).as_secs_f64();
        if span < 0.1 {
            return 0.0;
        }
        // The first packet's bytes arrived before the span began.
        let bytes: usize = self.acked.iter().skip(1).map(|(_, size)| size).sum();
        bytes as f64 * 8.0 / span
    }

    fn loss(&self) -> f64 {
        if self.fates.len() < 20 {
            return 0.0;
        }
        let lost = self.fates.iter().filter(|(_, arrived)| !arrived).count();
        lost as f64 / self.fates.len() as f64
    }

    fn publish(&self) {
        self.target.store(self.rate_bps as u64, Ordering::Relaxed);
    }
}

impl BandwidthEstimator for QueueEstimator {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        // Back after a silence: whatever decided meanwhile (the receiver-report controller)
        // is where this starts again.
        if self
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) > FEEDBACK_STALE)
        {
            self.rate_bps =
                (self.target.load(Ordering::Relaxed) as f64).clamp(self.min_bps, self.max_bps);
            self.last_change = Some(now);
        }
        self.last_report = Some(now);

        // Fates: a run of packets never acknowledged that spans a feedback interval is most
        // likely a lost feedback report, not lost packets (webrtc-rs counts whatever no report
        // acknowledged as lost once a later one moves past it), so its fate is unknown.
        let mut run: Vec<Instant> = Vec::new();
        let flush = |run: &mut Vec<Instant>, fates: &mut VecDeque<(Instant, bool)>| {
            if let (Some(first), Some(last)) = (run.first(), run.last())
                && last.saturating_duration_since(*first) < UNKNOWN_FATE_RUN
            {
                fates.extend(run.iter().map(|d| (*d, false)));
            }
            run.clear();
        };
        for r in reports {
            if r.arrived {
                flush(&mut run, &mut self.fates);
                self.fates.push_back((r.departure, true));
            } else {
                run.push(r.departure);
            }
        }
        flush(&mut run, &mut self.fates);

        if let Some(newest) = reports
            .iter()
            .filter(|r| r.arrived)
            .map(|r| r.departure)
            .max()
        {
            let age = now.saturating_duration_since(newest).as_secs_f64();
            self.response_s = Some(self.response_s.map_or(age, |s| s + 0.2 * (age - s)));
        }

        // The least queue any packet of this report saw.
        let mut least_delay: Option<f64> = None;
        for r in reports {
            let Some(arrival) = r.arrival.filter(|_| r.arrived) else {
                continue;
            };
            let (departed, delay) = self.one_way(r, arrival);
            self.note_base(departed as u64, delay);
            self.trend.push_back((departed, delay));
            least_delay = Some(least_delay.map_or(delay, |d: f64| d.min(delay)));
            self.acked.push_back((arrival, r.size));
        }
        // Reports may come out of order: the window is the newest departure's.
        let newest = self.trend.iter().map(|p| p.0).fold(f64::MIN, f64::max);
        self.trend
            .retain(|p| newest - p.0 <= TREND_WINDOW.as_secs_f64());
        if let Some(newest) = self.acked.back().map(|(a, _)| *a) {
            while self
                .acked
                .front()
                .is_some_and(|(a, _)| newest.saturating_sub(*a) > ACKED_WINDOW)
            {
                self.acked.pop_front();
            }
        }
        while self
            .fates
            .front()
            .is_some_and(|(d, _)| now.saturating_duration_since(*d) > LOSS_WINDOW)
        {
            self.fates.pop_front();
        }

        let queue_ms = match (least_delay, self.base_delay()) {
            (Some(d), Some(base)) => ((d - base) * 1e3).max(0.0),
            _ => 0.0,
        };
        let acked = self.acked_bps();
        let loss = self.loss();
        let elapsed = self
            .last_change
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64())
            .min(0.5);
        self.last_change = Some(now);

        let rising =
            queue_ms > RISING_MS && self.trend_slope().is_some_and(|slope| slope > RISING_SLOPE);

        let mut snapshot = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if (queue_ms > OVERUSE_MS || rising) && acked > 0.0 {
            // Again only once the last cut has had time to show (the queue it left, drained
            // at 15% of capacity, plus a feedback round), or if the queue is still growing.
            let may_cut = self.last_cut.is_none_or(|(at, queue)| {
                let settle = Duration::from_millis(300 + queue as u64);
                now.saturating_duration_since(at) > settle || queue_ms > queue + 30.0
            });
            if may_cut {
                let share = if queue_ms > OVERUSE_MS {
                    (1.0 - queue_ms / 1e3 / DRAIN_TIME).clamp(0.5, 0.85)
                } else {
                    0.95
                };
                self.rate_bps = self.rate_bps.min(acked * share);
                self.last_cut = Some((now, queue_ms));
                self.congested_at_bps = Some(acked);
                snapshot.delay_cuts += 1;
            }
        } else if loss > 0.10 && (queue_ms >= CLEAR_MS || loss > HOPELESS_LOSS) {
            if self
                .last_loss_cut
                .is_none_or(|at| now.saturating_duration_since(at) > Duration::from_millis(500))
            {
                self.rate_bps *= 1.0 - 0.5 * loss;
                self.last_loss_cut = Some(now);
                snapshot.loss_cuts += 1;
            }
        } else if queue_ms < CLEAR_MS && loss <= HOPELESS_LOSS {
            let below_last_congestion = self
                .congested_at_bps
                .is_some_and(|at| self.rate_bps < 0.9 * at);
            let per_second = match self.congested_at_bps {
                // The medium's loss (no queue behind it): climb, but gently.
                _ if loss > 0.10 => 0.15,
                None => 0.5,
                Some(_) if below_last_congestion => 0.25,
                Some(_) => 0.15,
            };
            // A climb overshoots by its speed times the time it takes to hear of the queue it
            // builds: past [`RESPONSE_REF`], slower in proportion, so a long round trip does
            // not buy a longer queue.
            let per_second = per_second
                * self
                    .response_s
                    .map_or(1.0, |s| (RESPONSE_REF.as_secs_f64() / s).min(1.0));
            let climbed = self.rate_bps * (1.0 + per_second * elapsed) + 1_000.0 * elapsed;
            // Never past what delivery supports (but a cap is no reason to come down).
            let ceiling = if acked > 0.0 {
                (acked * 1.5).max(self.rate_bps)
            } else {
                self.rate_bps
            };
            self.rate_bps = climbed.min(ceiling);
        }
        self.rate_bps = self.rate_bps.clamp(self.min_bps, self.max_bps);
        self.publish();

        snapshot.feedback_at = Some(now);
        snapshot.queue_ms = queue_ms;
        snapshot.acked_kbps = acked / 1e3;
        snapshot.loss = loss;
    }

    fn target_bitrate(&self) -> f64 {
        self.rate_bps
    }

    fn stats(&self) -> EstimatorStats {
        let mut stats = EstimatorStats::default();
        stats.delay_based_bitrate = Some(self.rate_bps);
        stats.packet_loss = Some(self.loss());
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::PacketReport;

    /// A path of `capacity_bps` behind a queue, and a sender at `send_bps` in 1,000-byte
    /// packets: the reports the far side would send, 100 ms at a time.
    struct Path {
        start: Instant,
        /// Our clock, seconds since start.
        t: f64,
        /// When the link is next free (receiver clock, with a 7 s offset).
        free_at: f64,
        id: u64,
        capacity_bps: f64,
        /// Propagation each way, s; feedback takes as long to come back.
        one_way: f64,
        /// Reports on their way back: (when they arrive, the packet).
        pending: VecDeque<(Instant, PacketReport)>,
    }

    const OFFSET: f64 = 7.0;
    const SIZE: usize = 1_000;

    impl Path {
        fn new(capacity_bps: f64) -> Self {
            Self::with_delay(capacity_bps, 0.020)
        }

        fn with_delay(capacity_bps: f64, one_way: f64) -> Self {
            Self {
                start: Instant::now(),
                t: 0.0,
                free_at: 0.0,
                id: 0,
                capacity_bps,
                one_way,
                pending: VecDeque::new(),
            }
        }

        /// Sends for 100 ms at `send_bps`; returns each packet's report and when it comes
        /// back: the far side reports every 100 ms what arrived since, and the report takes
        /// the path's one-way delay (but no queue) to come back.
        fn step(&mut self, send_bps: f64) -> Vec<(Instant, PacketReport)> {
            let gap = SIZE as f64 * 8.0 / send_bps;
            let end = self.t + 0.1;
            let mut reports = Vec::new();
            while self.t < end {
                let serialise = SIZE as f64 * 8.0 / self.capacity_bps;
                let arrival = self.free_at.max(self.t + self.one_way) + serialise;
                self.free_at = arrival;
                let departure = self.start + Duration::from_secs_f64(self.t);
                let reported = ((arrival / 0.1).floor() + 1.0) * 0.1 + self.one_way;
                let report = PacketReport {
                    ssrc: 1,
                    id: self.id,
                    rtp_sequence_number: self.id as u16,
                    is_twcc: true,
                    twcc_sequence_number: self.id as u16,
                    size: SIZE,
                    arrived: true,
                    departure,
                    arrival: Some(Duration::from_secs_f64(arrival + OFFSET)),
                    ecn: Default::default(),
                };
                reports.push((self.start + Duration::from_secs_f64(reported), report));
                self.id += 1;
                self.t += gap;
            }
            reports
        }

        fn queue_ms(&self) -> f64 {
            ((self.free_at - self.t - self.one_way) * 1e3).max(0.0)
        }
    }

    fn estimator(start_bps: f64) -> QueueEstimator {
        QueueEstimator::new(
            Arc::new(AtomicU64::new(start_bps as u64)),
            Arc::default(),
            100_000.0,
            2_000_000.0,
        )
    }

    /// Runs `secs` with the sender following the estimate, which hears of each 100 ms of
    /// packets when its report comes back; returns the largest queue in the last `tail`
    /// seconds.
    fn run(e: &mut QueueEstimator, path: &mut Path, secs: f64, tail: f64) -> f64 {
        let mut worst: f64 = 0.0;
        let steps = (secs * 10.0) as usize;
        for i in 0..steps {
            let now = path.start + Duration::from_secs_f64(path.t);
            // Reports come back in the order they were sent.
            while let Some(&(at, _)) = path.pending.front()
                && at <= now
            {
                let mut report = Vec::new();
                while let Some((_, r)) = path.pending.pop_front_if(|(a, _)| *a == at) {
                    report.push(r);
                }
                e.on_reports(at, &report);
            }
            let sent = path.step(e.target_bitrate());
            path.pending.extend(sent);
            if std::env::var_os("TRACE_ESTIMATE").is_some() {
                let snap = *e.snapshot.lock().unwrap();
                eprintln!(
                    "{:.1}s rate {:.0} queue(path) {:.0} queue(est) {:.0} acked {:.0}",
                    path.t,
                    e.target_bitrate() / 1e3,
                    path.queue_ms(),
                    snap.queue_ms,
                    snap.acked_kbps
                );
            }
            if i as f64 >= (secs - tail) * 10.0 {
                worst = worst.max(path.queue_ms());
            }
        }
        worst
    }

    #[test]
    fn follows_a_link_down_without_letting_the_queue_stand() {
        let mut e = estimator(1_500_000.0);
        let mut path = Path::new(500_000.0);
        let worst = run(&mut e, &mut path, 5.0, 2.0);
        assert!(worst < 150.0, "queue {worst:.0} ms after 3 s at 500 kbit/s");
        assert!(
            (350_000.0..=550_000.0).contains(&e.target_bitrate()),
            "{:.0}",
            e.target_bitrate()
        );
        path.capacity_bps = 250_000.0;
        let worst = run(&mut e, &mut path, 5.0, 2.0);
        assert!(worst < 150.0, "queue {worst:.0} ms after 3 s at 250 kbit/s");
        assert!(
            (170_000.0..=275_000.0).contains(&e.target_bitrate()),
            "{:.0}",
            e.target_bitrate()
        );
        assert!(e.snapshot.lock().unwrap().delay_cuts >= 2);
    }

    #[test]
    fn climbs_back_when_the_link_opens() {
        let mut e = estimator(250_000.0);
        let mut path = Path::new(250_000.0);
        run(&mut e, &mut path, 5.0, 0.0);
        path.capacity_bps = 2_000_000.0;
        run(&mut e, &mut path, 15.0, 0.0);
        assert!(
            e.target_bitrate() >= 1_000_000.0,
            "{:.0} after 15 s",
            e.target_bitrate()
        );
    }

    #[test]
    fn a_long_round_trip_does_not_let_the_climb_fill_the_link() {
        // 300 kbit/s with 100 ms each way (every report at least 150 ms old on arrival), and
        // with 300 ms (at least 600 ms old: climbing at full speed, the queue reached 138 ms).
        for (one_way, most_queue_ms) in [(0.1, 100.0), (0.3, 120.0)] {
            let mut e = estimator(200_000.0);
            let mut path = Path::with_delay(300_000.0, one_way);
            run(&mut e, &mut path, 5.0, 0.0);
            let mut worst: f64 = 0.0;
            let mut rates = Vec::new();
            for _ in 0..25 {
                worst = worst.max(run(&mut e, &mut path, 1.0, 1.0));
                rates.push(e.target_bitrate());
            }
            let mean = rates.iter().sum::<f64>() / rates.len() as f64;
            assert!(
                worst < most_queue_ms,
                "{one_way} s each way: queue reached {worst:.0} ms"
            );
            assert!(
                mean > 260_000.0,
                "{one_way} s each way: {mean:.0} bit/s on average: too timid"
            );
        }
    }

    /// 100 packets 8 ms apart, one in `every` lost, each kept in the path's queue `queue_ms`
    /// longer than the one before it (0: no queue building).
    fn lossy(every: u64, queue_ms: u64) -> (Instant, Vec<PacketReport>) {
        let start = Instant::now();
        let reports = (0..100)
            .map(|i| PacketReport {
                ssrc: 1,
                id: i,
                rtp_sequence_number: i as u16,
                is_twcc: true,
                twcc_sequence_number: i as u16,
                size: SIZE,
                arrived: i % every != 0,
                departure: start + Duration::from_millis(i * 8),
                arrival: (i % every != 0)
                    .then(|| Duration::from_millis(3_000 + i * (8 + queue_ms))),
                ecn: Default::default(),
            })
            .collect();
        (start + Duration::from_millis(850), reports)
    }

    #[test]
    fn loss_with_a_queue_cuts_by_half_the_loss() {
        // One in five lost with a queue standing (40 ms: under the overuse threshold, and no
        // longer growing): 10%.
        let mut e = estimator(1_000_000.0);
        let (at, mut reports) = lossy(5, 0);
        e.on_reports(at, &reports[..50]);
        for r in &mut reports[50..] {
            r.arrival = r.arrival.map(|a| a + Duration::from_millis(40));
        }
        e.on_reports(at, &reports[50..]);
        assert!(
            (e.target_bitrate() - 900_000.0).abs() < 1.0,
            "{}",
            e.target_bitrate()
        );
        assert_eq!(e.snapshot.lock().unwrap().loss_cuts, 1);
    }

    #[test]
    fn loss_without_a_queue_is_left_to_repair_unless_it_is_hopeless() {
        // One in five lost, no queue: the medium's loss; no cut, and a gentle climb.
        let mut e = estimator(1_000_000.0);
        let (at, mut reports) = lossy(5, 0);
        e.on_reports(at, &reports);
        assert!((e.target_bitrate() - 1_000_000.0).abs() < 1.0);
        let later = Duration::from_millis(800);
        for r in &mut reports {
            r.departure += later;
            r.arrival = r.arrival.map(|a| a + later);
        }
        e.on_reports(at + later, &reports);
        let climbed = e.target_bitrate() / 1_000_000.0;
        assert!(
            (1.05..1.1).contains(&climbed),
            "{climbed}: 15% a second for 0.5 s"
        );
        assert_eq!(e.snapshot.lock().unwrap().loss_cuts, 0);
        // One in three: cut by half of it.
        let mut e = estimator(1_000_000.0);
        let (at, reports) = lossy(3, 0);
        e.on_reports(at, &reports);
        assert_eq!(e.snapshot.lock().unwrap().loss_cuts, 1);
        assert!(e.target_bitrate() < 840_000.0, "{}", e.target_bitrate());
    }

    #[test]
    fn a_lost_feedback_report_is_not_counted_as_lost_packets() {
        // 100 packets 8 ms apart: one in ten lost, and 15 in a row (120 ms: the report that
        // covered them was lost). Of the 85 whose fate is known, 8 were lost.
        let mut e = estimator(1_000_000.0);
        let (at, mut reports) = lossy(10, 0);
        for r in &mut reports[40..55] {
            r.arrived = false;
            r.arrival = None;
        }
        e.on_reports(at, &reports);
        let loss = e.loss();
        assert!((loss - 8.0 / 85.0).abs() < 1e-9, "{loss}");
    }

    #[test]
    fn starts_again_from_what_the_fallback_left() {
        let target = Arc::new(AtomicU64::new(800_000));
        let mut e = QueueEstimator::new(Arc::clone(&target), Arc::default(), 1e5, 2e6);
        let mut path = Path::new(2_000_000.0);
        let (at, reports): (Vec<Instant>, Vec<PacketReport>) =
            path.step(800_000.0).into_iter().unzip();
        let at = at.into_iter().max().expect("packets sent");
        e.on_reports(at, &reports);
        target.store(300_000, Ordering::Relaxed);
        let later = at + FEEDBACK_STALE + Duration::from_millis(100);
        let (_, reports): (Vec<Instant>, Vec<PacketReport>) =
            path.step(300_000.0).into_iter().unzip();
        e.on_reports(later, &reports);
        assert!((300_000.0..310_000.0).contains(&e.target_bitrate()));
    }
}
