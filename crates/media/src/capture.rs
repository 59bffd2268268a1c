//! Capture threads: a source runs on its own thread at its own pace and hands frames over a
//! small bounded queue that drops the *oldest* frame when the consumer falls behind, so the
//! encoder always gets the freshest picture and latency never builds up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::VideoFrame;
use crate::pace::Pacer;
use crate::source::VideoSource;

/// A bounded queue that drops the oldest item when full.
#[derive(Debug)]
pub struct DropOldest<T> {
    state: Mutex<(VecDeque<T>, bool)>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

impl<T> DropOldest<T> {
    /// A queue holding at most `capacity` (≥ 1) items.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new((VecDeque::with_capacity(capacity.max(1)), false)),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds an item, dropping the oldest if full; never blocks on the consumer.
    pub fn push(&self, item: T) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0.len() == self.capacity {
            state.0.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        state.0.push_back(item);
        drop(state);
        self.ready.notify_one();
    }

    /// The oldest item, waiting up to `timeout`; `None` on timeout or once closed and empty.
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) = self
            .ready
            .wait_timeout_while(state, timeout, |(q, closed)| q.is_empty() && !*closed)
            .unwrap_or_else(|e| e.into_inner());
        state.0.pop_front()
    }

    /// Wakes consumers for good: `pop` returns what is left, then `None` at once.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.ready.notify_all();
    }

    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What a capture thread has counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames produced by the source.
    pub captured: u64,
    /// Frames dropped because the consumer was behind.
    pub dropped: u64,
    /// Times the source failed (each failure retried at the next tick).
    pub errors: u64,
    /// The last failure, cleared when frames flow again (what the UI shows: "camera
    /// unplugged", …).
    pub last_error: Option<String>,
}

struct Shared {
    queue: DropOldest<VideoFrame>,
    stop: AtomicBool,
    captured: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A source running on its own thread, paced at its frame rate, stamping each frame with
/// microseconds since `epoch` (shared with whoever measures latency).
pub struct Capture {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    size: (u32, u32),
    fps: f64,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("size", &self.size)
            .field("fps", &self.fps)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Frames the hand-off holds: one being encoded can wait behind one fresh frame.
const QUEUE: usize = 2;

impl Capture {
    /// Starts capturing from `source` on a new thread, stamping frames in µs since `epoch`.
    pub fn start(source: Box<dyn VideoSource>, epoch: Instant) -> Self {
        Self::start_with_clock(source, move || epoch.elapsed().as_micros() as u64)
    }

    /// Starts capturing, stamping frames with the wall clock ([`crate::mark::wall_clock_us`]),
    /// so a receiver in another process on the same machine can measure glass-to-glass time.
    pub fn start_wall_clock(source: Box<dyn VideoSource>) -> Self {
        Self::start_with_clock(source, crate::mark::wall_clock_us)
    }

    fn start_with_clock(
        mut source: Box<dyn VideoSource>,
        clock: impl Fn() -> u64 + Send + 'static,
    ) -> Self {
        let size = source.size();
        let fps = source.fps().clamp(1.0, 120.0);
        let shared = Arc::new(Shared {
            queue: DropOldest::new(QUEUE),
            stop: AtomicBool::new(false),
            captured: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let worker = Arc::clone(&shared);
        let period = Duration::from_secs_f64(1.0 / fps);
        let thread = std::thread::Builder::new()
            .name("confer-capture".into())
            .spawn(move || {
                // Ticks missed while the source was slow are skipped, not caught up.
                let mut pacer = Pacer::new(period, Duration::ZERO);
                while !worker.stop.load(Ordering::Relaxed) {
                    pacer.wait();
                    let capture_us = clock();
                    match source.next_frame(capture_us) {
                        Ok(frame) => {
                            worker.captured.fetch_add(1, Ordering::Relaxed);
                            *worker.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                            worker.queue.push(frame);
                        }
                        Err(e) => {
                            worker.errors.fetch_add(1, Ordering::Relaxed);
                            *worker.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(e.to_string());
                        }
                    }
                }
                worker.queue.close();
            })
            .expect("spawn the capture thread");
        Self {
            shared,
            thread: Some(thread),
            size,
            fps,
        }
    }

    /// Picture size.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Frame rate it paces at.
    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The oldest frame not yet taken (at most one frame old), waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<VideoFrame> {
        self.shared.queue.pop(timeout)
    }

    /// Counters and the last error.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            captured: self.shared.captured.load(Ordering::Relaxed),
            dropped: self.shared.queue.dropped(),
            errors: self.shared.errors.load(Ordering::Relaxed),
            last_error: self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mark;
    use crate::pattern::PatternSource;
    use crate::{Error, Result};

    #[test]
    fn the_queue_keeps_the_newest_and_counts_what_it_dropped() {
        let q = DropOldest::new(2);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop(Duration::ZERO), Some(3));
        assert_eq!(q.pop(Duration::ZERO), Some(4));
        let started = Instant::now();
        assert_eq!(q.pop(Duration::from_millis(30)), None);
        assert!(started.elapsed() >= Duration::from_millis(30));
        q.close();
        assert_eq!(q.pop(Duration::from_secs(10)), None, "closed: no wait");
    }

    #[test]
    fn a_slow_consumer_gets_fresh_frames_and_the_drops_are_counted() {
        let capture = Capture::start(
            Box::new(PatternSource::new(320, 180).expect("pattern")),
            Instant::now(),
        );
        let first = capture.next(Duration::from_secs(2)).expect("a frame");
        // A consumer that stalls for 10 frame periods: the frames it missed are dropped and
        // the next ones are no older than the queue's depth.
        std::thread::sleep(Duration::from_millis(340));
        let later = capture.next(Duration::from_secs(1)).expect("a frame");
        let id = |f: &VideoFrame| mark::read(f).expect("mark").frame_id;
        assert!(
            id(&later) >= id(&first) + 8,
            "{} → {}",
            id(&first),
            id(&later)
        );
        let stats = capture.stats();
        assert!(stats.dropped >= 6, "{stats:?}");
        assert!(later.capture_us > first.capture_us);
    }

    /// A stand-in for a camera that is unplugged after 5 frames and back after 10 failed
    /// reads (no camera can exist on a test machine without kernel modules).
    struct Unplugged {
        inner: PatternSource,
        calls: u32,
    }

    impl VideoSource for Unplugged {
        fn size(&self) -> (u32, u32) {
            self.inner.size()
        }
        fn fps(&self) -> f64 {
            100.0
        }
        fn next_frame(&mut self, capture_us: u64) -> Result<VideoFrame> {
            self.calls += 1;
            if (6..16).contains(&self.calls) {
                return Err(Error::Device("camera \"Test Cam\" was unplugged".into()));
            }
            Ok(self.inner.next_frame(capture_us))
        }
    }

    #[test]
    fn an_unplugged_source_is_reported_and_frames_resume_when_it_returns() {
        let capture = Capture::start(
            Box::new(Unplugged {
                inner: PatternSource::new(320, 180).expect("pattern"),
                calls: 0,
            }),
            Instant::now(),
        );
        let mut seen_error = None;
        let mut frames = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while frames < 10 {
            assert!(Instant::now() < deadline, "{:?}", capture.stats());
            if capture.next(Duration::from_millis(20)).is_some() {
                frames += 1;
            }
            if let Some(e) = capture.stats().last_error {
                seen_error = Some(e);
            }
        }
        let stats = capture.stats();
        assert_eq!(stats.errors, 10, "{stats:?}");
        assert_eq!(stats.last_error, None, "cleared once frames flow again");
        assert!(seen_error.is_some_and(|e| e.contains("unplugged")));
    }
}
