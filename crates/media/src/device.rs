//! Microphones and speakers through cpal.
//!
//! Host: PulseAudio (which PipeWire also serves) when a server is reachable, else the
//! platform default (ALSA on Linux). Devices are chosen by cpal's stable id
//! (`pulseaudio:alsa_input.usb-…`) or by their human name; no choice follows the system
//! default (checked every second: when the user picks another default, the stream moves).
//!
//! The microphone callback never blocks: it downmixes and resamples to 48 kHz mono 10 ms
//! frames ([`Reframer`]) and hands each to a bounded channel with `try_send`, counting what it
//! had to drop. The speaker callback only copies from a lock-free ring that the playout thread
//! fills ([`Speaker::play`] waits for room, so the device clock paces playout); when the ring
//! runs dry it plays silence and counts an underrun. Device loss (unplugged, server gone) is
//! reported by the stream's error callback or noticed as a stall; the next read or write
//! reopens the device, and the counters say how often that happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::audio::AudioSource;
use crate::reframe::Reframer;
use crate::tone::{FRAME_10MS, SAMPLE_RATE};
use crate::{Error, Result};

/// One audio device as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable id (survives restarts; store this in settings).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Whether it is the system default for its direction.
    pub is_default: bool,
}

/// Capture or playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Input,
    Output,
}

impl Direction {
    fn noun(self) -> &'static str {
        match self {
            Self::Input => "microphone",
            Self::Output => "speaker",
        }
    }
}

fn device_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Device(format!("{what}: {e}"))
}

fn host() -> cpal::Host {
    #[cfg(target_os = "linux")]
    if let Ok(host) = cpal::host_from_id(cpal::HostId::PulseAudio) {
        return host;
    }
    cpal::default_host()
}

fn info(device: &cpal::Device, default: Option<&str>) -> Option<DeviceInfo> {
    let id = device.id().ok()?.to_string();
    let name = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id.clone());
    Some(DeviceInfo {
        is_default: default == Some(id.as_str()),
        id,
        name,
    })
}

fn list(host: &cpal::Host, direction: Direction) -> Result<Vec<DeviceInfo>> {
    let (devices, default) = match direction {
        Direction::Input => (
            host.input_devices()
                .map_err(|e| device_err("listing microphones", e))?
                .collect::<Vec<_>>(),
            host.default_input_device(),
        ),
        Direction::Output => (
            host.output_devices()
                .map_err(|e| device_err("listing speakers", e))?
                .collect::<Vec<_>>(),
            host.default_output_device(),
        ),
    };
    let default_id = default.and_then(|d| d.id().ok()).map(|id| id.to_string());
    Ok(devices
        .iter()
        .filter_map(|d| info(d, default_id.as_deref()))
        .collect())
}

/// Microphones on this machine.
pub fn inputs() -> Result<Vec<DeviceInfo>> {
    list(&host(), Direction::Input)
}

/// Speakers on this machine.
pub fn outputs() -> Result<Vec<DeviceInfo>> {
    list(&host(), Direction::Output)
}

/// Finds a device by id or name (`None`: the system default).
fn find(
    host: &cpal::Host,
    direction: Direction,
    selector: Option<&str>,
) -> Result<(cpal::Device, DeviceInfo)> {
    let noun = direction.noun();
    let device = match selector {
        None => match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or_else(|| Error::Device(format!("no {noun} on this machine")))?,
        Some(wanted) => {
            let devices: Vec<cpal::Device> = match direction {
                Direction::Input => host.input_devices().map(|d| d.collect()),
                Direction::Output => host.output_devices().map(|d| d.collect()),
            }
            .map_err(|e| device_err(format!("listing {noun}s"), e))?;
            let infos: Vec<Option<DeviceInfo>> = devices.iter().map(|d| info(d, None)).collect();
            let pick = infos
                .iter()
                .position(|i| i.as_ref().is_some_and(|i| i.id == wanted))
                .or_else(|| {
                    infos
                        .iter()
                        .position(|i| i.as_ref().is_some_and(|i| i.name == wanted))
                });
            let Some(index) = pick else {
                let known: Vec<String> = infos.into_iter().flatten().map(|i| i.name).collect();
                return Err(Error::Device(format!(
                    "no {noun} {wanted:?} (found: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            devices
                .into_iter()
                .nth(index)
                .ok_or_else(|| Error::Device(format!("{noun} {wanted:?} vanished")))?
        }
    };
    let info = info(&device, None).ok_or_else(|| Error::Device(format!("{noun} has no id")))?;
    Ok((device, info))
}

/// Picks a stream format: 48 kHz float if offered, else the device's default rate; the
/// device's own channel count (we downmix or duplicate).
fn stream_config(device: &cpal::Device, direction: Direction) -> Result<cpal::StreamConfig> {
    let noun = direction.noun();
    let default = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(|e| device_err(format!("{noun} format"), e))?;
    let configs: Vec<cpal::SupportedStreamConfigRange> = match direction {
        Direction::Input => device.supported_input_configs().map(|c| c.collect()),
        Direction::Output => device.supported_output_configs().map(|c| c.collect()),
    }
    .map_err(|e| device_err(format!("{noun} formats"), e))?;
    let channels = default.channels();
    let fits = |c: &&cpal::SupportedStreamConfigRange| {
        c.sample_format() == cpal::SampleFormat::F32
            && c.channels() == channels
            && (c.min_sample_rate()..=c.max_sample_rate()).contains(&SAMPLE_RATE)
    };
    let at_48k = configs.iter().find(fits);
    let rate = if at_48k.is_some() {
        SAMPLE_RATE
    } else {
        default.sample_rate()
    };
    // Device periods of 10 ms capturing and 20 ms playing (servers such as PulseAudio
    // otherwise default to 2 s buffers). Playback keeps two periods queued.
    let period = match direction {
        Direction::Input => rate / 100,
        Direction::Output => rate / 50,
    };
    let range = at_48k.map_or(*default.buffer_size(), |c| *c.buffer_size());
    let buffer_size = match range {
        cpal::SupportedBufferSize::Range { min, max } if (min..=max).contains(&period) => {
            cpal::BufferSize::Fixed(period)
        }
        _ => cpal::BufferSize::Default,
    };
    Ok(cpal::StreamConfig {
        channels,
        sample_rate: rate,
        buffer_size,
    })
}

/// Counters shared with a device callback.
#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    dropped: AtomicU64,
    underruns: AtomicU64,
    reopened: AtomicU64,
    lost: AtomicBool,
}

/// What a microphone or speaker has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// 10 ms frames captured (microphone) or callbacks served (speaker).
    pub frames: u64,
    /// Frames the microphone dropped because nobody read them in time.
    pub dropped: u64,
    /// Speaker callbacks that found the ring short and played silence.
    pub underruns: u64,
    /// Times the device was lost and reopened.
    pub reopened: u64,
}

impl Counters {
    fn snapshot(&self) -> DeviceStats {
        DeviceStats {
            frames: self.frames.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            underruns: self.underruns.load(Ordering::Relaxed),
            reopened: self.reopened.load(Ordering::Relaxed),
        }
    }
}

/// How a stream is bound to its device: which one the user chose, whether we fell back to
/// the system default because it vanished, and when we last looked.
struct Binding {
    host: cpal::Host,
    direction: Direction,
    /// The user's choice (`None`: the system default).
    selector: Option<String>,
    /// Playing on the default because the chosen device is gone.
    on_fallback: bool,
    last_check: Instant,
    last_attempt: Option<Instant>,
}

/// How often a chosen device's presence is checked by re-enumeration.
const PRESENCE_CHECK: Duration = Duration::from_secs(1);
/// Least time between two attempts to reopen a lost device.
const RETRY: Duration = Duration::from_millis(250);

/// What the binding decided.
enum Rebind {
    /// Nothing to do.
    Keep,
    /// Open this (the chosen device again, or the default in its place).
    Open(Option<String>),
}

impl Binding {
    fn new(direction: Direction, selector: Option<&str>) -> Self {
        Self {
            host: host(),
            direction,
            selector: selector.map(str::to_owned),
            on_fallback: false,
            last_check: Instant::now(),
            last_attempt: None,
        }
    }

    fn find(&self, selector: Option<&str>) -> Result<(cpal::Device, DeviceInfo)> {
        find(&self.host, self.direction, selector)
    }

    /// Looks for the chosen device once a second: gone → fall back to the default (and say
    /// so); back → return to it.
    fn check(&mut self, counters: &Counters, current: &DeviceInfo) -> Result<Rebind> {
        if self.last_check.elapsed() < PRESENCE_CHECK && !counters.lost.load(Ordering::Relaxed) {
            return Ok(Rebind::Keep);
        }
        self.last_check = Instant::now();
        let Some(chosen) = self.selector.clone() else {
            // Following the system default: move when the user changes it.
            let default = match self.direction {
                Direction::Input => self.host.default_input_device(),
                Direction::Output => self.host.default_output_device(),
            };
            let default_id = default.and_then(|d| d.id().ok()).map(|id| id.to_string());
            return Ok(match default_id {
                Some(id) if id != current.id => Rebind::Open(None),
                _ => Rebind::Keep,
            });
        };
        let present = self.find(Some(&chosen)).is_ok();
        match (present, self.on_fallback) {
            (true, true) => {
                self.on_fallback = false;
                Ok(Rebind::Open(Some(chosen)))
            }
            (false, false) => {
                self.on_fallback = true;
                counters.lost.store(true, Ordering::Relaxed);
                let noun = self.direction.noun();
                Err(Error::Device(format!(
                    "{noun} {:?} was unplugged; using the system default until it returns",
                    current.name
                )))
            }
            _ => Ok(Rebind::Keep),
        }
    }

    /// What to do before the next read or write: `Ok(None)` nothing, `Ok(Some(selector))`
    /// open that device (returning to the chosen one, or reopening a lost one), `Err` the
    /// chosen device was unplugged (the caller opens the default and reports it).
    fn decide(
        &mut self,
        counters: &Counters,
        current: &DeviceInfo,
    ) -> Result<Option<Option<String>>> {
        match self.check(counters, current)? {
            Rebind::Open(selector) => Ok(Some(selector)),
            Rebind::Keep if counters.lost.load(Ordering::Relaxed) => {
                Ok(Some(if self.on_fallback {
                    None
                } else {
                    self.selector.clone()
                }))
            }
            Rebind::Keep => Ok(None),
        }
    }

    /// Waits out the retry interval since the last attempt.
    fn pace_retry(&mut self) {
        if let Some(last) = self.last_attempt {
            let since = last.elapsed();
            if since < RETRY {
                std::thread::sleep(RETRY - since);
            }
        }
        self.last_attempt = Some(Instant::now());
    }
}

/// The error that reports an unplug, after trying to open the default in its place.
fn unplugged(report: Error, fallback: Result<()>) -> Error {
    match fallback {
        Ok(()) => report,
        Err(e) => Error::Device(format!("{report}; {e}")),
    }
}

/// The stream error callback: anything but "rerouted to the new default" means the device
/// is lost, and the next read or write reopens it.
fn loss_reporter(counters: &Arc<Counters>) -> impl FnMut(cpal::Error) + Send + 'static {
    let counters = Arc::clone(counters);
    move |e| {
        if !matches!(e.kind(), cpal::ErrorKind::DeviceChanged) {
            counters.lost.store(true, Ordering::Relaxed);
        }
    }
}

fn play(stream: &cpal::Stream, direction: Direction, info: &DeviceInfo) -> Result<()> {
    stream
        .play()
        .map_err(|e| device_err(format!("starting {} {:?}", direction.noun(), info.name), e))
}

/// Frames a microphone buffers for a slow reader (200 ms) before it drops.
const MIC_QUEUE: usize = 20;
/// No frame for this long means the device is gone even if nobody said so.
const STALL: Duration = Duration::from_secs(1);

/// A microphone delivering 10 ms frames of 48 kHz mono.
pub struct Microphone {
    binding: Binding,
    info: DeviceInfo,
    rx: Receiver<Vec<f32>>,
    counters: Arc<Counters>,
    stream: Option<cpal::Stream>,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("info", &self.info)
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

fn mic_stream(
    binding: &Binding,
    selector: Option<&str>,
    counters: &Arc<Counters>,
) -> Result<(cpal::Stream, DeviceInfo, Receiver<Vec<f32>>)> {
    let (device, info) = binding.find(selector)?;
    let config = stream_config(&device, Direction::Input)?;
    let mut reframer = Reframer::new(config.sample_rate, usize::from(config.channels))?;
    let (tx, rx): (SyncSender<Vec<f32>>, _) = sync_channel(MIC_QUEUE);
    let data_counters = Arc::clone(counters);
    let stream = device
        .build_input_stream::<f32, _, _>(
            config,
            move |data, _| {
                // Resampler errors cannot happen with the fixed chunk sizes Reframer feeds it.
                let _ = reframer.push_interleaved(data, |frame| {
                    data_counters.frames.fetch_add(1, Ordering::Relaxed);
                    match tx.try_send(frame.to_vec()) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                            data_counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            },
            loss_reporter(counters),
            Some(Duration::from_secs(5)),
        )
        .map_err(|e| device_err(format!("opening microphone {:?}", info.name), e))?;
    play(&stream, Direction::Input, &info)?;
    Ok((stream, info, rx))
}

impl Microphone {
    /// Opens the microphone `selector` names (id or name; `None`: the system default).
    pub fn open(selector: Option<&str>) -> Result<Self> {
        let binding = Binding::new(Direction::Input, selector);
        let counters = Arc::new(Counters::default());
        let (stream, info, rx) = mic_stream(&binding, selector, &counters)?;
        Ok(Self {
            binding,
            info,
            rx,
            counters,
            stream: Some(stream),
        })
    }

    /// The device in use.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        self.counters.snapshot()
    }

    fn open_now(&mut self, selector: Option<String>) -> Result<()> {
        self.stream = None; // release the old stream first
        self.binding.pace_retry();
        let (stream, info, rx) = mic_stream(&self.binding, selector.as_deref(), &self.counters)?;
        self.stream = Some(stream);
        self.info = info;
        self.rx = rx;
        self.counters.lost.store(false, Ordering::Relaxed);
        self.counters.reopened.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl AudioSource for Microphone {
    /// Blocks until the next 10 ms is captured. A chosen device that vanishes is reported
    /// once (an error naming it) and replaced by the system default until it returns; a lost
    /// device is reopened here, and while that fails the error says why and the next call
    /// tries again.
    fn next_frame(&mut self) -> Result<Vec<f32>> {
        let started = Instant::now();
        loop {
            match self.binding.decide(&self.counters, &self.info) {
                Ok(None) => {}
                Ok(Some(selector)) => self.open_now(selector)?,
                Err(report) => return Err(unplugged(report, self.open_now(None))),
            }
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(frame) => return Ok(frame),
                Err(RecvTimeoutError::Timeout) if started.elapsed() < STALL => {}
                Err(_) => self.counters.lost.store(true, Ordering::Relaxed),
            }
            if started.elapsed() >= STALL * 2 {
                return Err(Error::Device(format!(
                    "microphone {:?} delivers nothing",
                    self.info.name
                )));
            }
        }
    }
}

/// Samples the speaker ring holds ahead of the device (60 ms): the playout's part of latency.
const RING_MS: usize = 60;

/// A speaker playing 10 ms frames of 48 kHz mono.
pub struct Speaker {
    binding: Binding,
    info: DeviceInfo,
    producer: rtrb::Producer<f32>,
    counters: Arc<Counters>,
    stream: Option<cpal::Stream>,
    /// 48 kHz mono → device rate.
    converter: Option<Reframer>,
    channels: usize,
    scratch: Vec<f32>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speaker")
            .field("info", &self.info)
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

struct SpeakerParts {
    stream: cpal::Stream,
    info: DeviceInfo,
    producer: rtrb::Producer<f32>,
    converter: Option<Reframer>,
    channels: usize,
}

fn speaker_stream(
    binding: &Binding,
    selector: Option<&str>,
    counters: &Arc<Counters>,
) -> Result<SpeakerParts> {
    let (device, info) = binding.find(selector)?;
    let config = stream_config(&device, Direction::Output)?;
    let channels = usize::from(config.channels);
    let rate = config.sample_rate;
    let converter = if rate == SAMPLE_RATE {
        None
    } else {
        Some(Reframer::between(SAMPLE_RATE, 1, rate)?)
    };
    let (producer, mut consumer) =
        rtrb::RingBuffer::<f32>::new(rate as usize * RING_MS / 1000 * channels);
    let data_counters = Arc::clone(counters);
    let stream = device
        .build_output_stream::<f32, _, _>(
            config,
            move |out, _| {
                data_counters.frames.fetch_add(1, Ordering::Relaxed);
                let available = consumer.slots().min(out.len());
                if let Ok(chunk) = consumer.read_chunk(available) {
                    let (a, b) = chunk.as_slices();
                    out[..a.len()].copy_from_slice(a);
                    out[a.len()..a.len() + b.len()].copy_from_slice(b);
                    chunk.commit_all();
                }
                if available < out.len() {
                    out[available..].fill(0.0);
                    data_counters.underruns.fetch_add(1, Ordering::Relaxed);
                }
            },
            loss_reporter(counters),
            Some(Duration::from_secs(5)),
        )
        .map_err(|e| device_err(format!("opening speaker {:?}", info.name), e))?;
    play(&stream, Direction::Output, &info)?;
    Ok(SpeakerParts {
        stream,
        info,
        producer,
        converter,
        channels,
    })
}

impl Speaker {
    /// Opens the speaker `selector` names (id or name; `None`: the system default).
    pub fn open(selector: Option<&str>) -> Result<Self> {
        let binding = Binding::new(Direction::Output, selector);
        let counters = Arc::new(Counters::default());
        let parts = speaker_stream(&binding, selector, &counters)?;
        Ok(Self {
            binding,
            info: parts.info,
            producer: parts.producer,
            counters,
            stream: Some(parts.stream),
            converter: parts.converter,
            channels: parts.channels,
            scratch: Vec::with_capacity(FRAME_10MS * 8),
        })
    }

    /// The device in use.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Counters (`frames` counts device callbacks).
    pub fn stats(&self) -> DeviceStats {
        self.counters.snapshot()
    }

    fn open_now(&mut self, selector: Option<String>) -> Result<()> {
        self.stream = None;
        self.binding.pace_retry();
        let parts = speaker_stream(&self.binding, selector.as_deref(), &self.counters)?;
        self.stream = Some(parts.stream);
        self.info = parts.info;
        self.producer = parts.producer;
        self.converter = parts.converter;
        self.channels = parts.channels;
        self.counters.lost.store(false, Ordering::Relaxed);
        self.counters.reopened.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Queues 10 ms of 48 kHz mono, waiting while the ring is full: the device clock paces the
    /// caller. Device loss and unplugging are handled as for [`Microphone::next_frame`].
    pub fn play(&mut self, frame: &[f32]) -> Result<()> {
        if frame.len() != FRAME_10MS {
            return Err(Error::Invalid(format!(
                "the speaker takes 10 ms frames of {FRAME_10MS} samples, got {}",
                frame.len()
            )));
        }
        match self.binding.decide(&self.counters, &self.info) {
            Ok(None) => {}
            Ok(Some(selector)) => self.open_now(selector)?,
            Err(report) => return Err(unplugged(report, self.open_now(None))),
        }
        self.scratch.clear();
        let channels = self.channels;
        let scratch = &mut self.scratch;
        let mut widen = |mono: &[f32]| {
            for &s in mono {
                scratch.extend(std::iter::repeat_n(s, channels));
            }
        };
        match &mut self.converter {
            None => widen(frame),
            Some(c) => c.push_interleaved(frame, widen)?,
        }
        let started = Instant::now();
        let mut written = 0;
        while written < self.scratch.len() {
            let room = self.producer.slots().min(self.scratch.len() - written);
            if room > 0
                && let Ok(mut chunk) = self.producer.write_chunk(room)
            {
                let (a, b) = chunk.as_mut_slices();
                let src = &self.scratch[written..written + room];
                a.copy_from_slice(&src[..a.len()]);
                b.copy_from_slice(&src[a.len()..]);
                chunk.commit_all();
                written += room;
                continue;
            }
            if started.elapsed() > STALL {
                self.counters.lost.store(true, Ordering::Relaxed);
                return Err(Error::Device(format!(
                    "speaker {:?} stopped playing",
                    self.info.name
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}
