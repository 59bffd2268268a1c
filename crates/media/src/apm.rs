//! Echo cancellation, noise suppression and automatic gain on the capture path: `sonora`, a
//! pure-Rust port of WebRTC's audio processing (AEC3, NS, AGC2, high-pass filter), so it
//! builds anywhere Rust does and behaves like Chromium's.
//!
//! The speaker side feeds every 10 ms it plays to [`AudioProcessor::render`] (the far-end
//! reference); the microphone side runs [`AudioProcessor::capture`] on every 10 ms it
//! captures. Each stage can be switched on and off during a call.

use crate::tone::{FRAME_10MS, SAMPLE_RATE};
use crate::{Error, Result};

/// Which stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingConfig {
    /// Acoustic echo cancellation (AEC3), with its high-pass filter.
    pub echo_cancellation: bool,
    /// Stationary noise suppression (about 12 dB).
    pub noise_suppression: bool,
    /// Adaptive digital gain with a limiter (AGC2).
    pub auto_gain: bool,
}

impl Default for ProcessingConfig {
    /// Everything on, as a call needs on laptop speakers.
    fn default() -> Self {
        Self {
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain: true,
        }
    }
}

impl ProcessingConfig {
    /// Everything off: the signal passes unchanged.
    pub const OFF: Self = Self {
        echo_cancellation: false,
        noise_suppression: false,
        auto_gain: false,
    };

    fn to_sonora(self) -> sonora::Config {
        use sonora::config::{
            AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
        };
        sonora::Config {
            high_pass_filter: self.echo_cancellation.then(HighPassFilter::default),
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(NoiseSuppression::default),
            gain_controller2: self.auto_gain.then(|| GainController2 {
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// What the echo canceller reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessingStats {
    /// Echo return loss enhancement the canceller estimates, dB.
    pub erle_db: Option<f64>,
    /// Echo path delay it found, milliseconds.
    pub delay_ms: Option<i32>,
}

/// The capture-path processor (48 kHz mono, 10 ms frames).
pub struct AudioProcessor {
    apm: sonora::AudioProcessing,
    config: ProcessingConfig,
    delay_ms: i32,
    out: Vec<f32>,
}

impl std::fmt::Debug for AudioProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioProcessor")
            .field("config", &self.config)
            .field("delay_ms", &self.delay_ms)
            .finish_non_exhaustive()
    }
}

fn frame_len(samples: &[f32]) -> Result<()> {
    if samples.len() != FRAME_10MS {
        return Err(Error::Invalid(format!(
            "audio processing takes 10 ms frames of {FRAME_10MS} samples, got {}",
            samples.len()
        )));
    }
    Ok(())
}

fn apm_err(e: sonora::Error) -> Error {
    Error::Codec {
        codec: "audio processing",
        what: "processing a frame",
        detail: e.to_string(),
    }
}

impl AudioProcessor {
    /// A processor with the stages `config` turns on.
    pub fn new(config: ProcessingConfig) -> Self {
        let stream = sonora::StreamConfig::new(SAMPLE_RATE, 1);
        let apm = sonora::AudioProcessing::builder()
            .config(config.to_sonora())
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self {
            apm,
            config,
            delay_ms: 0,
            out: vec![0.0; FRAME_10MS],
        }
    }

    /// The stages running now.
    pub fn config(&self) -> ProcessingConfig {
        self.config
    }

    /// Switches stages on or off from the next frame on (the echo canceller keeps what it
    /// learned when it stays on).
    pub fn set_config(&mut self, config: ProcessingConfig) {
        if config != self.config {
            self.apm.apply_config(config.to_sonora());
            self.config = config;
        }
    }

    /// The known part of the echo delay (playout buffering + capture buffering), a hint: the
    /// canceller searches around it.
    pub fn set_delay_ms(&mut self, delay_ms: i32) {
        self.delay_ms = delay_ms.clamp(0, 500);
    }

    /// Tells the canceller what the speaker is playing (10 ms, far end).
    pub fn render(&mut self, far: &[f32]) -> Result<()> {
        frame_len(far)?;
        if !self.config.echo_cancellation {
            return Ok(());
        }
        self.apm
            .process_render_f32(&[far], &mut [&mut self.out])
            .map_err(apm_err)
    }

    /// Processes 10 ms captured from the microphone, in place.
    pub fn capture(&mut self, near: &mut [f32]) -> Result<()> {
        frame_len(near)?;
        if self.config == ProcessingConfig::OFF {
            return Ok(());
        }
        // Within 0..=500 by construction, so sonora never reports clamping.
        let _ = self.apm.set_stream_delay_ms(self.delay_ms);
        self.apm
            .process_capture_f32(&[near], &mut [&mut self.out])
            .map_err(apm_err)?;
        near.copy_from_slice(&self.out);
        Ok(())
    }

    /// The canceller's own estimates.
    pub fn stats(&self) -> ProcessingStats {
        let s = self.apm.statistics();
        ProcessingStats {
            erle_db: s.echo_return_loss_enhancement,
            delay_ms: s.delay_ms,
        }
    }
}

/// Energy ratio in dB of `a` over `b` (`10 log10(Σa² / Σb²)`).
pub fn ratio_db(a: &[f32], b: &[f32]) -> f64 {
    let energy = |x: &[f32]| x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() + 1e-20;
    10.0 * (energy(a) / energy(b)).log10()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::SpeechSource;

    /// Far-end speech through a simulated room (40 ms delay, −6 dB, a short reflection) into
    /// the microphone, with near-end speech alone from 8 s to 11 s: returns (mic, output,
    /// near-end alone) per 10 ms frame.
    fn run(config: ProcessingConfig) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut apm = AudioProcessor::new(config);
        apm.set_delay_ms(0);
        let mut far = SpeechSource::new(11);
        let mut near = SpeechSource::new(22);
        let delay = 48 * 40;
        let mut far_hist = vec![0.0f32; delay + 480];
        let (mut mic_all, mut out_all, mut near_all) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..1100 {
            let far_on = !(800..1100).contains(&k);
            let f = if far_on {
                far.next_samples(FRAME_10MS)
            } else {
                vec![0.0; FRAME_10MS]
            };
            let n = if k >= 800 {
                near.next_samples(FRAME_10MS)
            } else {
                vec![0.0; FRAME_10MS]
            };
            apm.render(&f).expect("render");
            far_hist.extend_from_slice(&f);
            let start = far_hist.len() - FRAME_10MS - delay;
            let mut mic: Vec<f32> = (0..FRAME_10MS)
                .map(|i| {
                    let j = start + i;
                    0.5 * far_hist[j] + 0.15 * far_hist[j - 240] + n[i] * 0.7
                })
                .collect();
            mic_all.extend_from_slice(&mic);
            apm.capture(&mut mic).expect("capture");
            out_all.extend_from_slice(&mic);
            near_all.extend(n.iter().map(|s| s * 0.7));
        }
        (mic_all, out_all, near_all)
    }

    #[test]
    fn cancels_a_simulated_echo_by_25_db_and_keeps_near_end_speech() {
        let config = ProcessingConfig {
            auto_gain: false,
            ..ProcessingConfig::default()
        };
        let (mic, out, near) = run(config);
        let s = |from_ms: usize, to_ms: usize| from_ms * 48..to_ms * 48;
        // Echo only, after 3 s to converge.
        let erle = ratio_db(&mic[s(3_000, 8_000)], &out[s(3_000, 8_000)]);
        assert!(erle >= 25.0, "ERLE {erle:.1} dB");
        // Near end alone: its level survives within 3 dB.
        let kept = ratio_db(&out[s(8_500, 11_000)], &near[s(8_500, 11_000)]);
        assert!(kept.abs() < 3.0, "near end changed by {kept:.1} dB");

        // Off passes the signal through untouched.
        let (mic, out, _) = run(ProcessingConfig::OFF);
        assert_eq!(mic, out);
    }

    #[test]
    fn auto_gain_lifts_quiet_speech_and_bad_frames_are_refused() {
        let mut apm = AudioProcessor::new(ProcessingConfig {
            echo_cancellation: false,
            noise_suppression: false,
            auto_gain: true,
        });
        let mut speech = SpeechSource::new(5);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for _ in 0..800 {
            let mut f: Vec<f32> = speech
                .next_samples(FRAME_10MS)
                .iter()
                .map(|s| s * 0.03)
                .collect();
            before.extend_from_slice(&f);
            apm.capture(&mut f).expect("capture");
            after.extend_from_slice(&f);
        }
        let gain = ratio_db(&after[48 * 4_000..], &before[48 * 4_000..]);
        assert!(gain > 10.0, "gain {gain:.1} dB");
        assert!(after.iter().all(|s| s.abs() <= 1.0), "limited");
        assert!(apm.capture(&mut [0.0; 100]).is_err());
        assert!(apm.render(&[0.0; 960]).is_err());
    }
}
