//! When to show each decoded remote frame: at its capture cadence, behind a delay just large
//! enough to absorb how late frames arrive.
//!
//! On a clean path frames arrive as they were captured, and each is shown the moment it is
//! decoded. A path with jitter delivers them unevenly; shown as they come, they would stutter.
//! So each frame is scheduled at its RTP time plus a playout delay, and no clock sync is
//! needed: what counts is each frame's transit (arrival less RTP time, plus the clocks'
//! unknown offset) next to the frames just before it.
//!
//! Frames that waited for a repair (the assembler says which: a retransmission or a packet
//! rebuilt from FEC completed them, or a gap before them was given up) are not jitter: they
//! are late by a round trip, and absorbing that would hold every frame back by it (with 300 ms
//! each way and 5% loss the delay sat at its 400 ms cap). They are shown as soon as they are
//! here and left out of the delay, as libwebrtc leaves frames delayed by retransmission out
//! of its jitter estimate.
//!
//! Shown as they come, though, the frames that waited together come out together, and a
//! reader that takes only the newest frame (the UI, a display) would see the last of them
//! and skip the rest: a stall and a jump. So the [`Presenter`] hands frames over one at a
//! time: never two within a refresh of a 60 Hz display, and, for a while, not before the
//! reader has taken the one before. A burst behind a repair plays out at up to twice a 30 fps
//! stream's pace and catches up with the frames on time; a frame that has fallen too far
//! behind the newest one ready is skipped rather than shown late, so the picture does not
//! trail the sound after a long repair, and a reader slower than the stream costs frames,
//! not a growing latency.
//!
//! A frame is late by how much longer its transit was than the quickest of the few frames
//! before it, and the delay is the 95th percentile of that over the last few seconds. It rises
//! at once and falls by at most 100 ms a second (libwebrtc's video timing limits its changes
//! the same way), and is capped so that a long outage turns into a skip, not into lasting
//! latency. A frame is due at the quickest transit of the last 4 s plus the delay (never
//! before it arrives).
//!
//! Measuring lateness against the frames just before, not against the quickest frame of the
//! 4 s, is what keeps a queue on the path from turning into playout delay: a queue that builds
//! and drains moves every frame's transit together, which is latency the path added and not
//! jitter to absorb; counting it as lateness held frames back for it after the queue had gone,
//! adding that latency a second time for as long as the window remembered it. Scheduling from
//! the quickest transit of the whole 4 s (not of those few frames, nor of the last second) is
//! what keeps repairs from being counted twice: under loss, with a long round trip, frames can
//! wait behind repairs for most of a second at a time, and a reference taken from them would
//! put the delay on top of their own lateness (measured: 5% loss, 300 ms each way,
//! capture-to-frame p95 954-1046 ms with a one-second reference, 772-785 ms with 4 s).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back lateness is remembered, and over which the quickest transit says when frames
/// are due (before the delay).
const WINDOW: Duration = Duration::from_secs(4);
/// Frames before a silence this long are not a reference for the ones after it.
const RESET_AFTER: Duration = Duration::from_secs(1);
/// How many frames before a frame its lateness is measured against.
const REFERENCE_FRAMES: usize = 4;
/// How fast the delay falls once frames arrive on time again, per second.
const DECAY_PER_SECOND: f64 = 0.100;

/// Never two frames closer than this: one refresh of a 60 Hz display.
const MIN_GAP: Duration = Duration::from_micros(16_667);
/// How long a due frame waits for the reader to take the one before (then the newest due
/// frame replaces it).
const PATIENCE: Duration = Duration::from_millis(50);
/// A frame this much older (in the stream's schedule, i.e. capture time) than a newer frame
/// that is ready too is skipped: after a repair that took a long round trip, showing every
/// frame it held back would keep the video that far behind the sound for as long as they take
/// to catch up; the picture jumps forward instead. Frames held by a short repair (the round
/// trip of a call on one continent), or arriving in clumps from a queue, are all shown.
const TOO_LATE: Duration = Duration::from_millis(250);

/// Decoded frames waiting to be shown, handed to the reader one at a time.
#[derive(Debug)]
pub struct Presenter<T> {
    /// (due, on time, frame): when to show it, and when it would have been shown had it not
    /// waited for a repair ([`Scheduled::on_time`]).
    queue: VecDeque<(Instant, Instant, T)>,
    last: Option<Instant>,
    skipped: u64,
}

impl<T> Default for Presenter<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            last: None,
            skipped: 0,
        }
    }
}

impl<T> Presenter<T> {
    /// Queues a frame to be shown at `due` (after the frames queued before it), which was
    /// `on_time` in the stream's schedule.
    pub fn push(&mut self, Scheduled { due, on_time }: Scheduled, frame: T) {
        self.queue.push_back((due, on_time, frame));
    }

    /// Frames skipped so far: a frame 250 ms newer was ready, or the reader had not taken
    /// the last one in 50 ms.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The earliest the front frame may be handed over, given whether the reader has taken
    /// the last one (`taken`); `None` when nothing is queued.
    pub fn next_at(&self, taken: bool) -> Option<Instant> {
        let &(due, ..) = self.queue.front()?;
        Some(match self.last {
            None => due,
            Some(last) => {
                let wait = if taken { MIN_GAP } else { PATIENCE };
                due.max(last + wait)
            }
        })
    }

    /// The frame to show at `now`, if one is due and the reader is ready for it (`taken`:
    /// it has taken the last one).
    pub fn release(&mut self, now: Instant, taken: bool) -> Option<T> {
        // Skip what is far older than the newest frame that is due as well.
        while self.queue.len() > 1 {
            let newest = self.queue.iter().rev().find(|&&(due, ..)| due <= now);
            if newest.is_none_or(|&(_, on_time, _)| on_time < self.queue[0].1 + TOO_LATE) {
                break;
            }
            self.queue.pop_front();
            self.skipped += 1;
        }
        if self.next_at(taken)? > now {
            return None;
        }
        // A reader that has not taken the last frame in PATIENCE is away or slower than the
        // stream: it gets the newest frame due, as a latest-wins slot would give it, not the
        // next of a queue that grows while it is away.
        if !taken {
            while self.queue.len() > 1 && self.queue[1].0 <= now {
                self.queue.pop_front();
                self.skipped += 1;
            }
        }
        self.last = Some(now);
        self.queue.pop_front().map(|(.., frame)| frame)
    }
}

/// When to show a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// When to show it (never before it arrived).
    pub due: Instant,
    /// Where it stands in the stream's schedule: when it would have been due had it not
    /// arrived late (at most `due`).
    pub on_time: Instant,
}

/// The render schedule of one remote video stream.
#[derive(Debug)]
pub struct RenderClock {
    epoch: Instant,
    /// (arrival, transit, how late; s) per frame over the last [`WINDOW`], oldest first.
    /// Transit is seconds since the epoch minus RTP seconds.
    window: VecDeque<(Instant, f64, f64)>,
    /// The transits of the last frames.
    recent: VecDeque<f64>,
    last_arrival: Option<Instant>,
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
            recent: VecDeque::new(),
            last_arrival: None,
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

    /// The quickest transit of the window (infinite while it is empty).
    fn quickest_transit(&self) -> f64 {
        self.window
            .iter()
            .map(|&(_, t, _)| t)
            .fold(f64::INFINITY, f64::min)
    }

    /// A frame at `media` seconds on time at the quickest transit plus the delay, shown then
    /// or when it arrived, whichever is later.
    fn scheduled(&self, media: f64, quickest: f64, arrival: Instant) -> Scheduled {
        let on_time =
            self.epoch + Duration::from_secs_f64((media + quickest).max(0.0)) + self.delay;
        Scheduled {
            due: on_time.max(arrival),
            on_time,
        }
    }

    /// A frame captured at RTP time `rtp` was complete at `arrival`, after waiting for a
    /// repair or not (`repaired`): when to show it.
    pub fn schedule(&mut self, rtp: u32, arrival: Instant, repaired: bool) -> Scheduled {
        let media = self.rtp_seconds(rtp);
        let transit = arrival.duration_since(self.epoch).as_secs_f64() - media;
        if repaired {
            // Late by a repair's round trip, which says nothing about the path's jitter:
            // shown on the same schedule as the others, which is to say as soon as it is
            // here, and not counted (libwebrtc leaves frames delayed by retransmission out of
            // its jitter estimate the same way).
            let quickest = self.quickest_transit();
            if !quickest.is_finite() {
                return Scheduled {
                    due: arrival,
                    on_time: arrival,
                };
            }
            return self.scheduled(media, quickest, arrival);
        }
        // After a silence (a cut, a restart onto another path) the frames before say nothing
        // about this one: judged against them, the first frame of a new path was "late" by
        // the difference and held back by it (a 5 s cut: 340 ms to the first new frame
        // instead of 204).
        if self
            .last_arrival
            .is_some_and(|at| arrival.saturating_duration_since(at) > RESET_AFTER)
        {
            self.recent.clear();
        }
        // This frame is late by how much slower it was than the quickest of the few before.
        self.recent.push_back(transit);
        if self.recent.len() > REFERENCE_FRAMES + 1 {
            self.recent.pop_front();
        }
        let expected = self.recent.iter().copied().fold(f64::INFINITY, f64::min);
        self.window
            .push_back((arrival, transit, transit - expected));
        while self
            .window
            .front()
            .is_some_and(|&(at, ..)| arrival.duration_since(at) > WINDOW)
        {
            self.window.pop_front();
        }
        let quickest = self.quickest_transit();
        let mut late: Vec<f64> = self.window.iter().map(|&(.., l)| l).collect();
        late.sort_by(f64::total_cmp);
        let p95 = late[(late.len() * 95 / 100).min(late.len() - 1)];
        let wanted = Duration::from_secs_f64(p95.max(0.0)).min(self.max);
        let since_last = self
            .last_arrival
            .map_or(Duration::ZERO, |at| arrival.saturating_duration_since(at));
        self.last_arrival = Some(arrival);
        self.delay = if wanted > self.delay {
            wanted
        } else {
            self.delay
                .saturating_sub(since_last.mul_f64(DECAY_PER_SECOND))
                .max(wanted)
        };
        self.scheduled(media, quickest, arrival)
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
            let due = clock.schedule(k * 3000, arrival, false).due;
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
            shown.push(clock.schedule(k * 3000, arrival, false).due);
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
        // 2 s of frames held up in 1 s stalls, each released all at once, then steady.
        for k in 0..60u32 {
            let held_until = t0 + FRAME * (k - k % 30) + Duration::from_secs(1);
            clock.schedule(k * 3000, (t0 + FRAME * k).max(held_until), false);
        }
        assert_eq!(clock.delay(), Duration::from_millis(200));
        // Once the window has forgotten the stalls (4 s after the last frames held up
        // arrived, at 2 s), it falls at 100 ms a second.
        for k in 60..180u32 {
            clock.schedule(k * 3000, t0 + FRAME * k + Duration::from_secs(1), false);
        }
        let d = clock.delay();
        assert!(
            d > Duration::from_millis(90) && d < Duration::from_millis(110),
            "{d:?}"
        );
        for k in 180..240u32 {
            clock.schedule(k * 3000, t0 + FRAME * k + Duration::from_secs(1), false);
        }
        assert!(
            clock.delay() < Duration::from_millis(5),
            "{:?}",
            clock.delay()
        );
    }

    #[test]
    fn a_queue_that_builds_and_drains_adds_no_playout_delay() {
        // The path's queue grows by 300 ms over a second, drains over the next, then stays
        // empty: every frame's transit moves with it, none arrives behind another.
        let mut clock = RenderClock::new(Duration::from_millis(400));
        let t0 = Instant::now();
        let mut worst_hold = Duration::ZERO;
        for k in 0..300u32 {
            let queue_ms = match k {
                0..30 => 10 * k,
                30..60 => 10 * (60 - k),
                _ => 0,
            };
            let arrival = t0 + FRAME * k + Duration::from_millis(u64::from(queue_ms));
            let due = clock.schedule(k * 3000, arrival, false).due;
            if k >= 60 {
                worst_hold = worst_hold.max(due - arrival);
            }
        }
        // Rising 10 ms a frame puts a frame at most 40 ms behind the four before it: that
        // much is held for the window's 4 s, then nothing.
        assert!(worst_hold <= Duration::from_millis(41), "{worst_hold:?}");
        assert!(
            clock.delay() < Duration::from_millis(1),
            "{:?}",
            clock.delay()
        );
    }

    /// 900 frames (frame number, capture, arrival) of which one in six (at random, seeded)
    /// loses a packet repaired `repair` after capture; the frames after it wait for it.
    fn behind_repairs(seed: u64, repair: Duration) -> Vec<(u32, Instant, Instant)> {
        let t0 = Instant::now();
        let mut seed = seed;
        let mut held_until = t0;
        (0..900u32)
            .map(|k| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let captured = t0 + FRAME * k;
                if (seed >> 33).is_multiple_of(6) {
                    held_until = held_until.max(captured + repair);
                }
                (k, captured, captured.max(held_until))
            })
            .collect()
    }

    #[test]
    fn frames_behind_repairs_are_not_held_back_twice() {
        // One frame in six loses a packet (at random, seeded), repaired 230 ms after it was
        // captured; the frames after it wait for it. Often several frames in a row are late.
        let mut clock = RenderClock::new(Duration::from_millis(400));
        let (mut late, mut shown) = (Vec::new(), Vec::new());
        for (k, captured, arrival) in behind_repairs(7, Duration::from_millis(230)) {
            let due = clock.schedule(k * 3000, arrival, false).due;
            if k >= 150 {
                late.push((arrival - captured).as_secs_f64());
                shown.push((due - captured).as_secs_f64());
            }
        }
        let p95 = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() * 95 / 100]
        };
        let (late, shown) = (p95(&mut late), p95(&mut shown));
        // Shown evenly means shown as late as the late ones arrive, and no later.
        assert!(
            shown <= late + 0.010,
            "p95 shown {:.0} ms after capture, p95 arrival {:.0} ms",
            shown * 1e3,
            late * 1e3
        );
    }

    #[test]
    fn frames_that_waited_for_a_repair_are_shown_as_they_come_and_hold_nothing_back() {
        // A packet in one frame of six is lost and repaired 600 ms after capture (300 ms each
        // way); the frames after it wait with it. All of those say they waited.
        let mut clock = RenderClock::new(Duration::from_millis(400));
        let mut worst_on_time_hold = Duration::ZERO;
        for (k, captured, arrival) in behind_repairs(11, Duration::from_millis(600)) {
            let repaired = arrival > captured;
            let due = clock.schedule(k * 3000, arrival, repaired).due;
            assert!(due >= arrival);
            if repaired {
                assert!(due - arrival < Duration::from_millis(1), "frame {k} held");
            } else {
                worst_on_time_hold = worst_on_time_hold.max(due - arrival);
            }
        }
        // The frames that came on time are not held back for the repairs' round trip.
        assert!(
            worst_on_time_hold < Duration::from_millis(1),
            "{worst_on_time_hold:?}"
        );
        assert!(
            clock.delay() < Duration::from_millis(1),
            "{:?}",
            clock.delay()
        );
    }

    /// What a reader sees of frames (arrival, due, on time) played through a [`Presenter`]: it takes
    /// a frame `lag` after it is handed over (never: `None`). Time runs in 1 ms steps.
    /// Returns (frame, taken at) per frame taken, and how many it never saw: replaced in
    /// its slot before it took them, or skipped by the presenter.
    fn present(
        frames: &[(Instant, Instant, Instant)],
        lag: Option<Duration>,
    ) -> (Vec<(usize, Instant)>, u64) {
        let mut presenter = Presenter::default();
        let (mut slot, mut taken, mut replaced) = (None::<(usize, Instant)>, Vec::new(), 0);
        let (start, mut next) = (frames[0].0, 0);
        let end = frames[frames.len() - 1].1 + Duration::from_secs(1);
        let mut now = start;
        while now < end {
            while next < frames.len() && frames[next].0 <= now {
                let (_, due, on_time) = frames[next];
                presenter.push(Scheduled { due, on_time }, next);
                next += 1;
            }
            if let Some((k, put)) = slot
                && lag.is_some_and(|lag| put + lag <= now)
            {
                taken.push((k, now));
                slot = None;
            }
            if let Some(k) = presenter.release(now, slot.is_none()) {
                replaced += u64::from(slot.is_some());
                slot = Some((k, now));
            }
            now += Duration::from_millis(1);
        }
        (taken, replaced + presenter.skipped())
    }

    #[test]
    fn frames_released_together_reach_a_reader_of_the_newest_one_at_a_time() {
        // 230 ms repairs: the frames behind each come out at once.
        let frames = scheduled(behind_repairs(11, Duration::from_millis(230)));
        let burst = frames.windows(7).any(|w| w[6].0 == w[0].0);
        assert!(burst, "seven frames or more released at one instant");
        // A reader that takes each frame within 3 ms sees every one, a refresh apart or more.
        let (taken, missed) = present(&frames, Some(Duration::from_millis(3)));
        assert_eq!((taken.len(), missed), (frames.len(), 0));
        for pair in taken.windows(2) {
            assert!(pair[0].0 < pair[1].0, "in order");
            assert!(
                pair[1].1 - pair[0].1 >= MIN_GAP,
                "{:?}",
                pair[1].1 - pair[0].1
            );
        }
        // Catching up costs a burst's frames a little: at most the frames before them in
        // the burst, a refresh each.
        let mut behind: Vec<Duration> = taken
            .iter()
            .map(|&(k, at)| at - frames[k].1.max(frames[k].0))
            .collect();
        behind.sort();
        let p95 = behind[behind.len() * 95 / 100];
        assert!(
            p95 < Duration::from_millis(150),
            "p95 {p95:?} behind its time"
        );
    }

    /// (arrival, due, on time) of frames (number, capture, arrival) on a [`RenderClock`], told which
    /// waited for a repair.
    fn scheduled(frames: Vec<(u32, Instant, Instant)>) -> Vec<(Instant, Instant, Instant)> {
        let mut clock = RenderClock::new(Duration::from_millis(400));
        frames
            .into_iter()
            .map(|(k, captured, arrival)| {
                let at = clock.schedule(k * 3000, arrival, arrival > captured);
                (arrival, at.due, at.on_time)
            })
            .collect()
    }

    #[test]
    fn a_burst_too_long_to_catch_up_with_skips_frames_rather_than_lag() {
        // 600 ms repairs (300 ms each way) in one frame of six: the frames behind one repair
        // often wait for the next, and come out 18 or more at a time.
        let frames = scheduled(behind_repairs(11, Duration::from_millis(600)));
        let (taken, missed) = present(&frames, Some(Duration::from_millis(3)));
        assert_eq!(taken.len() as u64 + missed, frames.len() as u64);
        // The picture jumps forward: no frame is shown while one TOO_LATE newer in the
        // schedule is ready (frames come in order; one whose repair took a round trip can be
        // the newest there is, and is shown late).
        for &(k, at) in &taken {
            let newest_ready = (k..frames.len())
                .take_while(|&j| frames[j].0 <= at)
                .filter(|&j| frames[j].1 <= at)
                .last()
                .unwrap_or(k);
            let ahead = frames[newest_ready]
                .2
                .saturating_duration_since(frames[k].2);
            assert!(
                ahead < TOO_LATE,
                "frame {k} shown with frame {newest_ready} ready, {ahead:?} newer"
            );
        }
        assert!(missed > 0);
        // Every frame that came on time is shown.
        let shown: std::collections::HashSet<usize> = taken.iter().map(|&(k, _)| k).collect();
        let on_time =
            (0..frames.len()).filter(|&k| frames[k].0 <= frames[k].2 + Duration::from_millis(1));
        assert!(on_time.clone().count() > 10, "{}", on_time.clone().count());
        assert!(on_time.into_iter().all(|k| shown.contains(&k)));
    }

    #[test]
    fn a_reader_slower_than_the_stream_costs_frames_not_latency() {
        // 30 fps on time; the reader takes a frame 45 ms after it is handed over.
        let t0 = Instant::now();
        let frames: Vec<(Instant, Instant, Instant)> = (0..300u32)
            .map(|k| (t0 + FRAME * k, t0 + FRAME * k, t0 + FRAME * k))
            .collect();
        let (taken, missed) = present(&frames, Some(Duration::from_millis(45)));
        assert!(missed > 30, "{missed} frames not seen");
        assert_eq!(taken.len() as u64 + missed, 300);
        let worst = taken
            .iter()
            .map(|&(k, at)| at - frames[k].1)
            .max()
            .expect("frames");
        // Bounded: about TOO_LATE, a frame interval and the reader's lag twice over (without
        // the skipping it grows to seconds: each frame handed over 13 ms later than the last).
        assert!(worst < Duration::from_millis(450), "{worst:?}");
        let last = taken
            .last()
            .map(|&(k, at)| at - frames[k].1)
            .expect("frames");
        assert!(last < Duration::from_millis(450), "{last:?}");
        // A reader that never takes still gets the newest frames, PATIENCE apart at worst.
        let (_, missed) = present(&frames, None);
        assert!(missed < 300);
    }

    #[test]
    fn a_reader_away_for_a_second_comes_back_to_a_fresh_frame() {
        // 30 fps on time; the reader takes nothing for a second: what waits in its slot is
        // one of the newest frames, not the next of a queue that grew meanwhile.
        let t0 = Instant::now();
        let mut presenter = Presenter::default();
        let (mut in_slot, mut next) = (None, 0u32);
        for ms in 0..1000u64 {
            let now = t0 + Duration::from_millis(ms);
            if t0 + FRAME * next <= now {
                presenter.push(
                    Scheduled {
                        due: now,
                        on_time: now,
                    },
                    next,
                );
                next += 1;
            }
            if let Some(frame) = presenter.release(now, in_slot.is_none()) {
                in_slot = Some(frame);
            }
        }
        let held = in_slot.expect("a frame");
        assert!(
            next - held <= 3,
            "frame {held} waiting, {} captured",
            next - 1
        );
    }

    #[test]
    fn the_first_frame_after_a_cut_is_shown_at_once() {
        let mut clock = RenderClock::new(Duration::from_millis(400));
        let t0 = Instant::now();
        for k in 0..90u32 {
            clock.schedule(k * 3000, t0 + FRAME * k, false);
        }
        // 5 s without frames; then a path 150 ms slower.
        for k in 240..300u32 {
            let arrival = t0 + FRAME * k + Duration::from_millis(150);
            let due = clock.schedule(k * 3000, arrival, false).due;
            assert!(due - arrival < Duration::from_millis(1), "frame {k} held");
        }
    }

    #[test]
    fn rtp_timestamps_wrap() {
        let mut clock = RenderClock::new(Duration::from_millis(300));
        let t0 = Instant::now();
        let start = u32::MAX - 3000 * 5;
        for k in 0..20u32 {
            let arrival = t0 + FRAME * k;
            let due = clock
                .schedule(start.wrapping_add(k * 3000), arrival, false)
                .due;
            assert!(due - arrival < Duration::from_millis(1), "frame {k}");
        }
    }
}
