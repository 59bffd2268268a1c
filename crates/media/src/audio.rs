//! Audio sources behind one trait, chosen by a config string: `silence`, `tone` (tone bursts
//! with known onsets), `speech` (a deterministic speech-like signal), `file:<path.wav>` (a looping WAV
//! file, downmixed and resampled) and `mic[:<id or name>]` (a cpal microphone, see
//! [`crate::device`]).
//!
//! Everything in Confer's audio path is 48 kHz mono `f32` in 10 ms frames
//! ([`FRAME_10MS`] samples). Synthetic and file sources return frames as fast as they are
//! asked (the caller paces them); the microphone blocks until its next frame is captured.

use std::path::{Path, PathBuf};

use crate::reframe::Reframer;
use crate::tone::{FRAME_10MS, SAMPLE_RATE, ToneBursts};
use crate::{Error, Result};

/// A source of 10 ms frames of 48 kHz mono audio.
pub trait AudioSource: Send {
    /// The next [`FRAME_10MS`] samples.
    fn next_frame(&mut self) -> Result<Vec<f32>>;
}

/// Opens the source a config string names: `tone`, `speech`, `file:<path.wav>` or
/// `mic[:<id or name>]`.
pub fn open(spec: &str) -> Result<Box<dyn AudioSource>> {
    match spec {
        "silence" => return Ok(Box::new(Silence)),
        "tone" => return Ok(Box::new(ToneSource::default())),
        "speech" => return Ok(Box::new(SpeechSource::new(1))),
        "mic" => return Ok(Box::new(crate::device::Microphone::open(None)?)),
        _ => {}
    }
    if let Some(path) = spec.strip_prefix("file:") {
        return Ok(Box::new(WavSource::open(path)?));
    }
    if let Some(which) = spec.strip_prefix("mic:") {
        return Ok(Box::new(crate::device::Microphone::open(Some(which))?));
    }
    Err(Error::Invalid(format!(
        "unknown audio source {spec:?}: use silence, tone, speech, file:<path.wav>, mic or \
         mic:<device>"
    )))
}

/// Whether `spec` names a microphone (`mic`, `mic:<device>`): a source that blocks for its
/// own 10 ms, where synthetic and file sources must be paced by their caller.
pub fn is_microphone(spec: &str) -> bool {
    spec == "mic" || spec.starts_with("mic:")
}

/// The source `spec` names, or [`Silence`] and the reason when it cannot open (a microphone
/// that is missing, busy or refused): a call goes on without sending sound rather than not
/// at all.
pub fn open_or_silence(spec: &str) -> (Box<dyn AudioSource>, Option<Error>) {
    match open(spec) {
        Ok(source) => (source, None),
        Err(e) => (Box::new(Silence), Some(e)),
    }
}

/// Digital silence: what a call sends when there is no microphone to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silence;

impl AudioSource for Silence {
    fn next_frame(&mut self) -> Result<Vec<f32>> {
        Ok(vec![0.0; FRAME_10MS])
    }
}

/// Tone bursts (1 kHz, 100 ms every 500 ms, −12 dBFS peak by default): the far side finds the
/// onsets with [`crate::tone::BurstDetector`].
#[derive(Debug, Clone)]
pub struct ToneSource(ToneBursts);

impl ToneSource {
    /// Bursts as [`ToneBursts::new`] describes them.
    pub fn new(bursts: ToneBursts) -> Self {
        Self(bursts)
    }
}

impl Default for ToneSource {
    fn default() -> Self {
        Self(ToneBursts::new(1000.0, 0.25, 100, 500))
    }
}

impl AudioSource for ToneSource {
    fn next_frame(&mut self) -> Result<Vec<f32>> {
        Ok(self.0.next_samples(FRAME_10MS))
    }
}

/// A deterministic speech-like signal: voiced "syllables" (a glottal pulse train at a gliding
/// pitch of 100–220 Hz through three formant resonators, shaped by a 3–6 Hz envelope) with
/// pauses between words, so it has speech's spectrum, rhythm and silences. Used as near-end
/// talk in echo-cancellation tests and for noise and level tests; never random between runs
/// of the same seed.
#[derive(Debug, Clone)]
pub struct SpeechSource {
    rng: u64,
    pos: usize,
    /// Samples left in the current syllable (or pause, when `voiced` is false).
    left: usize,
    len: usize,
    voiced: bool,
    f0: (f64, f64),
    phase: f64,
    formants: [Resonator; 3],
}

/// A two-pole resonator (one formant).
#[derive(Debug, Clone, Copy)]
struct Resonator {
    a1: f64,
    a2: f64,
    gain: f64,
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn new(hz: f64, bandwidth: f64) -> Self {
        let fs = f64::from(SAMPLE_RATE);
        let r = (-std::f64::consts::PI * bandwidth / fs).exp();
        let theta = std::f64::consts::TAU * hz / fs;
        Self {
            a1: 2.0 * r * theta.cos(),
            a2: -r * r,
            gain: 1.0 - r,
            y1: 0.0,
            y2: 0.0,
        }
    }

    fn tick(&mut self, x: f64) -> f64 {
        let y = self.gain * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// Vowel formants (F1, F2, F3) in Hz, roughly /a/, /e/, /i/, /o/, /u/.
const VOWELS: [[f64; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
];

impl SpeechSource {
    /// A speech-like signal; equal seeds give equal signals.
    pub fn new(seed: u64) -> Self {
        let mut s = Self {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            pos: 0,
            left: 0,
            len: 1,
            voiced: false,
            f0: (120.0, 120.0),
            phase: 0.0,
            formants: [Resonator::new(700.0, 100.0); 3],
        };
        s.next_segment();
        s
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: deterministic, no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next_segment(&mut self) {
        let ms = |m: f64| (m * f64::from(SAMPLE_RATE) / 1000.0) as usize;
        // Four syllables in five are voiced (150–300 ms); the rest are pauses (80–400 ms).
        self.voiced = self.random() < 0.8;
        self.len = if self.voiced {
            ms(150.0 + 150.0 * self.random())
        } else {
            ms(80.0 + 320.0 * self.random())
        };
        self.left = self.len;
        let start = 100.0 + 120.0 * self.random();
        self.f0 = (start, start * (0.8 + 0.4 * self.random()));
        let vowel = VOWELS[(self.random() * VOWELS.len() as f64) as usize % VOWELS.len()];
        for (r, (&hz, bw)) in self
            .formants
            .iter_mut()
            .zip(vowel.iter().zip([80.0, 100.0, 150.0]))
        {
            let (y1, y2) = (r.y1, r.y2);
            *r = Resonator::new(hz, bw);
            (r.y1, r.y2) = (y1, y2);
        }
    }

    /// The next `len` samples (peaks near −6 dBFS).
    pub fn next_samples(&mut self, len: usize) -> Vec<f32> {
        let fs = f64::from(SAMPLE_RATE);
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            if self.left == 0 {
                self.next_segment();
            }
            let t = 1.0 - self.left as f64 / self.len as f64;
            self.left -= 1;
            self.pos += 1;
            let sample = if self.voiced {
                let f0 = self.f0.0 + (self.f0.1 - self.f0.0) * t;
                self.phase += f0 / fs;
                // A glottal pulse once per period: a short decaying impulse.
                let excitation = if self.phase >= 1.0 {
                    self.phase -= 1.0;
                    1.0
                } else {
                    0.0
                };
                let envelope = (std::f64::consts::PI * t).sin().powf(0.7);
                let voiced: f64 = self.formants.iter_mut().map(|r| r.tick(excitation)).sum();
                voiced * envelope * 4.0
            } else {
                for r in &mut self.formants {
                    r.tick(0.0);
                }
                0.0
            };
            out.push(sample.clamp(-1.0, 1.0) as f32);
        }
        out
    }
}

impl AudioSource for SpeechSource {
    fn next_frame(&mut self) -> Result<Vec<f32>> {
        Ok(self.next_samples(FRAME_10MS))
    }
}

/// A WAV file (PCM 8–32 bit or float, any rate, any channel count), downmixed to mono,
/// resampled to 48 kHz and played in a loop.
pub struct WavSource {
    path: PathBuf,
    /// The whole file at 48 kHz mono: calls play short clips, and a loop needs it all anyway.
    samples: Vec<f32>,
    pos: usize,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .field("samples", &self.samples.len())
            .field("pos", &self.pos)
            .finish()
    }
}

/// Longest WAV file we load (10 minutes at 48 kHz mono is 110 MB of `f32`).
const MAX_WAV_SECONDS: u64 = 600;

impl WavSource {
    /// Loads `path`; refuses empty, oversized and non-PCM files with the reason.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let err = |e: &dyn std::fmt::Display| Error::Invalid(format!("{}: {e}", path.display()));
        let mut reader = hound::WavReader::open(&path).map_err(|e| err(&e))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels);
        if channels == 0 || spec.sample_rate == 0 {
            return Err(err(&"no channels or no sample rate"));
        }
        let seconds = u64::from(reader.duration()) / u64::from(spec.sample_rate);
        if seconds > MAX_WAV_SECONDS {
            return Err(err(&format!(
                "{seconds} s long: at most {MAX_WAV_SECONDS} s"
            )));
        }
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .samples::<f32>()
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| err(&e))?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|s| s as f32 * scale))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| err(&e))?
            }
        };
        let mut reframer = Reframer::new(spec.sample_rate, channels)?;
        let mut samples = Vec::with_capacity(interleaved.len() / channels * 48_000 / 44_100 + 1);
        reframer.push_interleaved(&interleaved, |frame| samples.extend_from_slice(frame))?;
        reframer.flush(|frame| samples.extend_from_slice(frame))?;
        if samples.is_empty() {
            return Err(err(&"no samples"));
        }
        Ok(Self {
            path,
            samples,
            pos: 0,
        })
    }

    /// Length of one loop, in samples at 48 kHz.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the file holds no samples (never: `open` refuses those).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

impl AudioSource for WavSource {
    fn next_frame(&mut self) -> Result<Vec<f32>> {
        let mut frame = Vec::with_capacity(FRAME_10MS);
        while frame.len() < FRAME_10MS {
            let take = (FRAME_10MS - frame.len()).min(self.samples.len() - self.pos);
            frame.extend_from_slice(&self.samples[self.pos..self.pos + take]);
            self.pos = (self.pos + take) % self.samples.len();
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_source_that_cannot_open_becomes_silence_with_the_reason() {
        let (mut source, err) = super::open_or_silence("mic:Confer Test Microphone 9000");
        assert!(err.is_some(), "no such microphone exists");
        let frame = source.next_frame().unwrap();
        assert_eq!(frame.len(), super::FRAME_10MS);
        assert!(frame.iter().all(|&s| s == 0.0));
        let (_, err) = super::open_or_silence("tone");
        assert!(err.is_none());
    }

    use super::*;
    use crate::tone::{power_at, rms, sine};

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        for &s in samples {
            w.write_sample((s * 32767.0) as i16).expect("write");
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn a_44k1_stereo_wav_becomes_48k_mono_at_the_same_pitch_and_loops() {
        let dir = std::env::temp_dir().join(format!("confer-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tone.wav");
        // One second of 441 Hz at 44.1 kHz: left and right equal (downmix keeps the level).
        let n = 44_100;
        let mono: Vec<f32> = (0..n)
            .map(|i| 0.5 * (std::f64::consts::TAU * 441.0 * i as f64 / 44_100.0).sin() as f32)
            .collect();
        let stereo: Vec<f32> = mono.iter().flat_map(|&s| [s, s]).collect();
        write_wav(&path, 44_100, 2, &stereo);

        let mut src = open(&format!("file:{}", path.display())).expect("open");
        let frames: Vec<Vec<f32>> = (0..150).map(|_| src.next_frame().expect("frame")).collect();
        assert!(frames.iter().all(|f| f.len() == FRAME_10MS));
        let second: Vec<f32> = frames[10..90].concat();
        let expect = sine(441.0, 0.5, 0, second.len());
        assert!(
            (rms(&second) - rms(&expect)).abs() < 0.01,
            "level kept: {} vs {}",
            rms(&second),
            rms(&expect)
        );
        assert!(power_at(&second, 441.0) > 0.1, "pitch kept");
        assert!(power_at(&second, 480.0) < 0.001, "not shifted to 480 Hz");

        let wav = WavSource::open(&path).expect("open");
        assert!((47_500..=48_500).contains(&wav.len()), "{}", wav.len());

        std::fs::write(dir.join("bad.wav"), b"RIFF not really").expect("write");
        let err = open(&format!("file:{}", dir.join("bad.wav").display()))
            .err()
            .expect("bad");
        assert!(err.to_string().contains("bad.wav"), "{err}");
        assert!(open("file:/nonexistent/x.wav").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn speech_is_deterministic_has_pauses_and_sits_in_the_voice_band() {
        let a = SpeechSource::new(7).next_samples(48_000 * 5);
        assert_eq!(a, SpeechSource::new(7).next_samples(48_000 * 5));
        assert_ne!(a, SpeechSource::new(8).next_samples(48_000 * 5));
        let frames: Vec<f32> = a.chunks(FRAME_10MS).map(rms).collect();
        let silent = frames.iter().filter(|&&r| r < 1e-3).count();
        let loud = frames.iter().filter(|&&r| r > 0.02).count();
        assert!(silent > 20 && loud > 200, "silent {silent}, loud {loud}");
        let peak = a.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!((0.1..1.0).contains(&peak), "peak {peak}");
        let voice: f64 = [300.0, 600.0, 900.0, 1200.0, 2000.0]
            .iter()
            .map(|&f| power_at(&a, f))
            .sum();
        let high: f64 = [9000.0, 12000.0, 15000.0]
            .iter()
            .map(|&f| power_at(&a, f))
            .sum();
        assert!(voice > 20.0 * high, "voice {voice:e} vs high {high:e}");
    }

    #[test]
    fn specs_choose_sources_and_bad_ones_are_explained() {
        let mut tone = open("tone").expect("tone");
        let frame = tone.next_frame().expect("frame");
        assert_eq!(frame.len(), FRAME_10MS);
        assert!(rms(&frame) > 0.1, "a burst starts at 0");
        assert!(open("speech").is_ok());
        let err = open("microphone").err().expect("unknown");
        assert!(err.to_string().contains("tone, speech"), "{err}");
    }
}
