//! The level meter the UI shows beside the microphone: RMS and peak per 50 ms, in dBFS.

use crate::tone::SAMPLE_RATE;

/// Samples per meter reading (50 ms at 48 kHz).
pub const WINDOW: usize = SAMPLE_RATE as usize / 20;
/// Floor of the scale: digital silence reads this, not minus infinity.
pub const FLOOR_DBFS: f32 = -100.0;

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Root mean square over the window, dBFS (a full-scale sine reads −3.01).
    pub rms_dbfs: f32,
    /// Largest absolute sample, dBFS.
    pub peak_dbfs: f32,
    /// Whether any sample reached full scale (the input clips).
    pub clipped: bool,
}

fn dbfs(x: f64) -> f32 {
    if x <= 0.0 {
        FLOOR_DBFS
    } else {
        (20.0 * x.log10()).max(f64::from(FLOOR_DBFS)) as f32
    }
}

/// Accumulates samples and yields a [`Level`] every [`WINDOW`] samples.
#[derive(Debug, Clone, Default)]
pub struct LevelMeter {
    sum_sq: f64,
    peak: f32,
    count: usize,
}

impl LevelMeter {
    /// A meter with nothing measured.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds samples; returns the readings of the windows they completed (usually zero or one).
    pub fn push(&mut self, samples: &[f32]) -> Vec<Level> {
        let mut out = Vec::new();
        for &s in samples {
            self.sum_sq += f64::from(s) * f64::from(s);
            self.peak = self.peak.max(s.abs());
            self.count += 1;
            if self.count == WINDOW {
                out.push(Level {
                    rms_dbfs: dbfs((self.sum_sq / WINDOW as f64).sqrt()),
                    peak_dbfs: dbfs(f64::from(self.peak)),
                    clipped: self.peak >= 1.0,
                });
                *self = Self::default();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::sine;

    #[test]
    fn a_sine_reads_its_rms_and_peak_every_50_ms() {
        let mut meter = LevelMeter::new();
        // 0.5 peak: −6.02 dBFS peak, −9.03 dBFS RMS. 120 ms gives two readings.
        let samples = sine(1000.0, 0.5, 0, 5_760);
        let mut levels = Vec::new();
        for chunk in samples.chunks(480) {
            levels.extend(meter.push(chunk));
        }
        assert_eq!(levels.len(), 2);
        for l in &levels {
            assert!((l.rms_dbfs + 9.03).abs() < 0.05, "{l:?}");
            assert!((l.peak_dbfs + 6.02).abs() < 0.05, "{l:?}");
            assert!(!l.clipped);
        }
        // Silence reads the floor; a full-scale sample is reported as clipping.
        let carried = meter.push(&[0.0; WINDOW]);
        assert_eq!(
            carried.len(),
            1,
            "the 20 ms left over starts the next window"
        );
        assert!(carried[0].rms_dbfs < -12.0, "{carried:?}");
        let mut fresh = LevelMeter::new();
        assert_eq!(fresh.push(&[0.0; WINDOW])[0].rms_dbfs, FLOOR_DBFS);
        let mut loud = vec![0.0; WINDOW];
        loud[7] = -1.0;
        let l = fresh.push(&loud)[0];
        assert!(l.clipped && l.peak_dbfs == 0.0, "{l:?}");
    }
}
