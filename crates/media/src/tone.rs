//! Synthetic audio for tests and benchmarks: sine tones and bursts at 48 kHz mono, and a
//! Goertzel detector that measures how much of a signal's energy sits at one frequency.

use std::f64::consts::TAU;

/// Sample rate of everything in Confer's audio path.
pub const SAMPLE_RATE: u32 = 48_000;

/// `len` samples of a sine at `hz` with peak `amplitude`, starting at sample `offset` of an
/// endless tone (so consecutive calls continue the same wave).
pub fn sine(hz: f64, amplitude: f32, offset: usize, len: usize) -> Vec<f32> {
    (offset..offset + len)
        .map(|n| amplitude * (TAU * hz * n as f64 / f64::from(SAMPLE_RATE)).sin() as f32)
        .collect()
}

/// Root mean square.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Power at `hz` (Goertzel), normalised so a full-length sine of amplitude A gives A²/2.
pub fn power_at(samples: &[f32], hz: f64) -> f64 {
    let n = samples.len() as f64;
    let coeff = 2.0 * (TAU * hz / f64::from(SAMPLE_RATE)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power / (n * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_the_tone_and_not_its_neighbour() {
        let s = sine(1000.0, 0.5, 0, 4800);
        assert!((power_at(&s, 1000.0) - 0.125).abs() < 0.005);
        assert!(power_at(&s, 1500.0) < 0.001);
        assert!((rms(&s) - 0.5 / 2f32.sqrt()).abs() < 0.001);
        // Continuation: two halves equal one whole.
        let joined = [sine(440.0, 1.0, 0, 100), sine(440.0, 1.0, 100, 100)].concat();
        assert_eq!(joined, sine(440.0, 1.0, 0, 200));
    }
}

/// Samples in 10 ms at 48 kHz: the unit of Confer's audio path before Opus.
pub const FRAME_10MS: usize = 480;

/// Tone bursts with known onsets: `burst_ms` of a sine at `hz` every `period_ms`, silence in
/// between. The far side of a call finds them with [`BurstDetector`]; comparing onsets gives
/// audio latency and loss.
#[derive(Debug, Clone)]
pub struct ToneBursts {
    hz: f64,
    amplitude: f32,
    burst: usize,
    period: usize,
    pos: usize,
}

impl ToneBursts {
    /// Bursts of `hz` at `amplitude`, `burst_ms` long, one every `period_ms` (starting at 0).
    pub fn new(hz: f64, amplitude: f32, burst_ms: u32, period_ms: u32) -> Self {
        let ms = |m: u32| m as usize * SAMPLE_RATE as usize / 1000;
        Self {
            hz,
            amplitude,
            burst: ms(burst_ms),
            period: ms(period_ms.max(burst_ms)),
            pos: 0,
        }
    }

    /// Sample index of burst `k`'s onset.
    pub fn onset(&self, k: usize) -> usize {
        k * self.period
    }

    /// The next `len` samples.
    pub fn next_samples(&mut self, len: usize) -> Vec<f32> {
        let tone = sine(self.hz, self.amplitude, self.pos, len);
        let out = tone
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                if (self.pos + i) % self.period < self.burst {
                    s
                } else {
                    0.0
                }
            })
            .collect();
        self.pos += len;
        out
    }
}

/// Finds tone-burst onsets in a stream, 10 ms at a time: an onset is the first window whose
/// power at the burst frequency rises above `threshold` after at least one quiet window.
#[derive(Debug, Clone)]
pub struct BurstDetector {
    hz: f64,
    threshold: f64,
    pos: usize,
    in_burst: bool,
    onsets: Vec<usize>,
}

impl BurstDetector {
    /// A detector for bursts at `hz` whose power at `hz` exceeds `threshold` (a sine of
    /// amplitude A has power A²/2).
    pub fn new(hz: f64, threshold: f64) -> Self {
        Self {
            hz,
            threshold,
            pos: 0,
            in_burst: false,
            onsets: Vec::new(),
        }
    }

    /// Feeds the next 10 ms window.
    pub fn push(&mut self, window: &[f32]) {
        let loud = power_at(window, self.hz) > self.threshold;
        if loud && !self.in_burst {
            self.onsets.push(self.pos);
        }
        self.in_burst = loud;
        self.pos += window.len();
    }

    /// Sample indices of the onsets found so far (accurate to one window).
    pub fn onsets(&self) -> &[usize] {
        &self.onsets
    }
}

#[cfg(test)]
mod burst_tests {
    use super::*;

    #[test]
    fn bursts_are_found_where_they_start() {
        let mut src = ToneBursts::new(1000.0, 0.5, 100, 500);
        let mut det = BurstDetector::new(1000.0, 0.01);
        for _ in 0..300 {
            det.push(&src.next_samples(FRAME_10MS));
        }
        let expected: Vec<usize> = (0..6).map(|k| src.onset(k)).collect();
        assert_eq!(det.onsets(), expected.as_slice());
    }
}
