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
