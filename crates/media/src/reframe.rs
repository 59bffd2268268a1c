//! From whatever a device or file gives (any rate, any channel count, any chunk size) to
//! Confer's unit of audio: 10 ms frames of 48 kHz mono. Channels are averaged (downmix);
//! rates other than 48 kHz go through rubato's FFT resampler.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::tone::SAMPLE_RATE;
use crate::{Error, Result};

/// Downmixes, resamples and cuts into 10 ms frames. Buffers are allocated once, so pushing
/// from an audio callback does not allocate.
pub struct Reframer {
    channels: usize,
    resampler: Option<Fft<f32>>,
    /// Mono input waiting for a full resampler chunk.
    pending_in: Vec<f32>,
    chunk_in: usize,
    resampled: Vec<f32>,
    /// Output mono waiting for a full 10 ms frame.
    pending_out: Vec<f32>,
    frame_len: usize,
}

impl std::fmt::Debug for Reframer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reframer")
            .field("channels", &self.channels)
            .field("resampling", &self.resampler.is_some())
            .field("chunk_in", &self.chunk_in)
            .finish_non_exhaustive()
    }
}

impl Reframer {
    /// A reframer from `rate` Hz with `channels` interleaved channels to 48 kHz mono.
    pub fn new(rate: u32, channels: usize) -> Result<Self> {
        Self::between(rate, channels, SAMPLE_RATE)
    }

    /// A reframer from `rate` Hz with `channels` interleaved channels to `out_rate` Hz mono,
    /// in frames of 10 ms at `out_rate` (the speaker's direction).
    pub fn between(rate: u32, channels: usize, out_rate: u32) -> Result<Self> {
        let ok = |r: u32| (8_000..=384_000).contains(&r);
        if channels == 0 || !ok(rate) || !ok(out_rate) {
            return Err(Error::Invalid(format!(
                "audio format {rate} Hz × {channels} channels → {out_rate} Hz: need 8–384 kHz \
                 and ≥ 1 channel"
            )));
        }
        let (resampler, chunk_in) = if rate == out_rate {
            (None, out_rate as usize / 100)
        } else {
            // 10 ms of input where that is whole, else a chunk of about that size.
            let chunk = if rate.is_multiple_of(100) {
                rate as usize / 100
            } else {
                512
            };
            let r = Fft::<f32>::new(rate as usize, out_rate as usize, chunk, 1, FixedSync::Input)
                .map_err(|e| {
                Error::Invalid(format!("resampler {rate} → {out_rate} Hz: {e}"))
            })?;
            (Some(r), chunk)
        };
        let out_max = resampler.as_ref().map_or(0, |r| r.output_frames_max());
        Ok(Self {
            channels,
            resampler,
            pending_in: Vec::with_capacity(chunk_in * 2),
            chunk_in,
            resampled: vec![0.0; out_max],
            pending_out: Vec::with_capacity(out_rate as usize / 25 + out_max),
            frame_len: out_rate as usize / 100,
        })
    }

    /// Adds interleaved samples; calls `frame` with each complete 10 ms frame.
    pub fn push_interleaved(&mut self, samples: &[f32], frame: impl FnMut(&[f32])) -> Result<()> {
        let mut frame = frame;
        let scale = 1.0 / self.channels as f32;
        for group in samples.chunks_exact(self.channels) {
            let mono = if self.channels == 1 {
                group[0]
            } else {
                group.iter().sum::<f32>() * scale
            };
            self.pending_in.push(mono);
            if self.pending_in.len() == self.chunk_in {
                self.run_chunk(None, &mut frame)?;
            }
        }
        Ok(())
    }

    /// Pushes out what is left (the resampler's tail and a last partial frame, padded with
    /// silence); for the end of a file.
    pub fn flush(&mut self, frame: impl FnMut(&[f32])) -> Result<()> {
        let mut frame = frame;
        if self.resampler.is_some() {
            let partial = self.pending_in.len();
            self.pending_in.resize(self.chunk_in, 0.0);
            self.run_chunk(Some(partial), &mut frame)?;
        } else {
            let taken = std::mem::take(&mut self.pending_in);
            self.pending_out.extend_from_slice(&taken);
            self.pending_in = taken;
            self.pending_in.clear();
        }
        if !self.pending_out.is_empty() {
            self.pending_out.resize(self.frame_len, 0.0);
            frame(&self.pending_out);
            self.pending_out.clear();
        }
        Ok(())
    }

    fn run_chunk(&mut self, partial: Option<usize>, frame: &mut impl FnMut(&[f32])) -> Result<()> {
        match &mut self.resampler {
            None => self.pending_out.extend_from_slice(&self.pending_in),
            Some(r) => {
                let err = |e: &dyn std::fmt::Display| Error::Invalid(format!("resampling: {e}"));
                let input = SequentialSlice::new(&self.pending_in, 1, self.chunk_in)
                    .map_err(|e| err(&e))?;
                let out_len = self.resampled.len();
                let mut output = SequentialSlice::new_mut(&mut self.resampled, 1, out_len)
                    .map_err(|e| err(&e))?;
                let indexing = partial.map(|n| rubato::Indexing::new().partial_len(n));
                let (_, written) = r
                    .process_into_buffer(&input, &mut output, indexing.as_ref())
                    .map_err(|e| err(&e))?;
                self.pending_out
                    .extend_from_slice(&self.resampled[..written]);
            }
        }
        self.pending_in.clear();
        let mut start = 0;
        while self.pending_out.len() - start >= self.frame_len {
            frame(&self.pending_out[start..start + self.frame_len]);
            start += self.frame_len;
        }
        self.pending_out.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{FRAME_10MS, power_at, rms, sine};

    fn frames_of(rate: u32, channels: usize, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut r = Reframer::new(rate, channels).expect("reframer");
        let mut out = Vec::new();
        for piece in input.chunks(chunk * channels) {
            r.push_interleaved(piece, |f| {
                assert_eq!(f.len(), FRAME_10MS);
                out.extend_from_slice(f)
            })
            .expect("push");
        }
        out
    }

    #[test]
    fn at_48k_mono_it_only_cuts_and_keeps_every_sample() {
        let input = sine(1000.0, 0.5, 0, 48_000);
        // Odd callback sizes, as devices deliver them.
        let out = frames_of(48_000, 1, &input, 333);
        assert_eq!(out.len(), 48_000);
        assert_eq!(out, input);
    }

    #[test]
    fn stereo_is_averaged_and_other_rates_are_resampled_at_the_same_pitch() {
        for rate in [44_100u32, 16_000, 96_000, 22_050] {
            let n = rate as usize; // one second
            let left: Vec<f32> = (0..n)
                .map(|i| {
                    0.4 * (std::f64::consts::TAU * 700.0 * i as f64 / rate as f64).sin() as f32
                })
                .collect();
            // Right is the same tone: the average keeps it.
            let stereo: Vec<f32> = left.iter().flat_map(|&s| [s, s]).collect();
            let out = frames_of(rate, 2, &stereo, 256);
            let expect_len = 48_000.0;
            assert!(
                (out.len() as f64 - expect_len).abs() < 0.03 * expect_len,
                "{rate}: {} samples",
                out.len()
            );
            let steady = &out[4_800..out.len() - 4_800];
            assert!(
                (rms(steady) - 0.4 / 2f32.sqrt()).abs() < 0.01,
                "{rate}: level"
            );
            assert!(power_at(steady, 700.0) > 0.07, "{rate}: pitch");
            assert!(power_at(steady, 762.0) < 0.001, "{rate}: not shifted");
        }
        // Opposite channels cancel: it is a mean, not a pick.
        let out = frames_of(48_000, 2, &[0.5, -0.5].repeat(960), 100);
        assert!(out.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(Reframer::new(48_000, 0).is_err());
        assert!(Reframer::new(1_000, 1).is_err());
    }
}
