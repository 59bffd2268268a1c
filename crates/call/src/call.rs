//! A whole call, driven by a handle: signaling, the peer connection, and the media pipelines
//! between confer-media and the peer.
//!
//! Threads: a capture thread per source (confer-media), an encoder thread for video, a paced
//! thread for audio capture + Opus, a decoder thread for received video and a paced playout
//! thread for received audio. The async side only moves bytes: no codec ever runs on a tokio
//! worker or inside a track's poll loop.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use confer_media::apm::{AudioProcessor, ProcessingConfig};
use confer_media::audio::AudioSource;
use confer_media::capture::Capture;
use confer_media::device::Speaker;
use confer_media::jitter::{JitterConfig, Playout};
use confer_media::opus::{OpusConfig, OpusEncoder};
use confer_media::pace::Pacer;
use confer_media::tone::FRAME_10MS;
use confer_media::{VideoCodec, VideoDecoder, VideoFrame};

use crate::peer::{Peer, PeerEvent, Signal};
use crate::rate::SendRate;
use crate::render::{Presenter, RenderClock};
use crate::signaling::{Backoff, SignalClient, SignalError, SignalEvent};
use crate::transfer;
use confer_media::scale::Scaler;

/// What a call is made of.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The signaling server's WebSocket URL.
    pub url: String,
    /// The room token (host or guest).
    pub token: String,
    /// Display name.
    pub name: Option<String>,
    /// Video source spec (`pattern:640x360`, `file:…`, `camera:…`).
    pub video: String,
    /// Video bitrate, kbit/s.
    pub video_kbps: u32,
    /// The video codec offered first (the other side's offer decides when it calls us).
    pub video_codec: VideoCodec,
    /// Audio source spec (`tone`, `speech`, `file:…`, `mic`).
    pub audio: String,
    /// Where remote audio plays: `None` on no device (bots and tests; [`CallEvent::RemoteAudio`]
    /// carries it either way), `Some("default")` on the system default (following it when it
    /// changes), otherwise on the output device with this id or name.
    pub speaker: Option<String>,
    /// Echo cancellation, noise suppression and automatic gain on a microphone. Synthetic and
    /// file sources are sent as they are.
    pub processing: ProcessingConfig,
    /// Address to gather ICE candidates on (loopback in tests).
    pub bind_ip: IpAddr,
    /// Admit every guest that knocks (for bots and tests; the app asks the host).
    pub auto_admit: bool,
    /// Privacy: media only through the TURN relay, so the other side never learns this
    /// machine's IP addresses (as Signal's "always relay calls"). Needs TURN on the server.
    pub relay_only: bool,
    /// Which servers' certificates are accepted: the signaling server's (`wss://`) and TURN
    /// over TLS (a private deployment's own CA; the certificate an invite link names).
    pub trust: crate::tls::Trust,
}

/// What the call reports.
#[derive(Debug)]
pub enum CallEvent {
    /// A signaling event (joined, waiting, admitted, knock, peer left, reconnecting, …).
    Signaling(SignalEvent),
    /// Media flows (the peer connection is connected).
    Connected,
    /// The verification code to compare aloud with the other person (a mismatch means
    /// someone is in the middle).
    VerificationCode(String),
    /// The peer connection failed or closed.
    Disconnected(String),
    /// Nothing has arrived from the other side for a while
    /// ([`crate::peer::ICE_DISCONNECTED_AFTER`]): the path is being looked for again (the side
    /// that started the call restarts ICE if it does not come back by itself).
    Reconnecting,
    /// Media flows again after [`CallEvent::Reconnecting`].
    Reconnected,
    /// This machine's network changed (an address came or went): ICE restarts to find the
    /// path over it ([`CallEvent::IceRestarted`] follows).
    NetworkChanged,
    /// The newest decoded remote video frame. Latest-frame-wins: a reader that falls behind
    /// gets the newest frame, never a queue of old ones ([`CallStats::frames_skipped`]).
    RemoteVideo(VideoFrame),
    /// The newest local camera frame, for the self view (after
    /// [`CallHandle::set_local_preview`]; latest-frame-wins as well).
    LocalVideo(VideoFrame),
    /// 10 ms of decoded remote audio (48 kHz mono), paced at real time.
    RemoteAudio(Vec<f32>),
    /// A chat message from the other side (a delivery receipt has been sent back).
    Chat {
        /// Message id (the sender's).
        id: String,
        /// The text.
        text: String,
    },
    /// The other side's microphone or camera changed.
    PeerMedia {
        /// Its microphone is muted.
        muted: bool,
        /// Its camera is on.
        camera: bool,
    },
    /// The other side hung up, saying why.
    PeerHungUp(String),
    /// A file transfer moved on (`incoming`: to us); `done` of `total` bytes.
    TransferProgress {
        /// Transfer id.
        id: u64,
        /// Whether we receive it.
        incoming: bool,
        /// Bytes so far.
        done: u64,
        /// Size.
        total: u64,
    },
    /// A file arrived whole. It is only in memory: saving it is the user's choice.
    FileReceived {
        /// Transfer id.
        id: u64,
        /// Name as the sender gave it.
        name: String,
        /// The content.
        data: Bytes,
        /// Whether it matched the sender's SHA-256.
        verified: bool,
    },
    /// The other side has our file `id` (`verified`: its hash matched).
    TransferDone {
        /// Transfer id.
        id: u64,
        /// Hash verified on arrival.
        verified: bool,
    },
    /// A transfer stopped before the end.
    TransferCancelled {
        /// Transfer id.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The other side received our chat message `id`.
    ChatDelivered {
        /// The id [`CallHandle::send_chat`] returned.
        id: String,
    },
    /// ICE restarted (asked for here or there): our new ICE username fragment.
    IceRestarted {
        /// The local ufrag after the restart.
        ufrag: String,
    },
    /// Once a second while connected.
    Stats(Box<CallStats>),
    /// Something went wrong that the call survives.
    Warning(String),
    /// Something went wrong that keeps media from flowing until it is fixed (the call stays
    /// joined).
    Error(String),
    /// The call is over.
    Ended(String),
}

enum Command {
    Admit(String),
    Deny(String),
    Chat(DataMessage),
    /// Mute, camera: send the new state.
    MediaState,
    SendFile {
        id: u64,
        name: String,
        data: Bytes,
    },
    CancelTransfer(u64),
    RestartIce,
    HangUp,
}

/// What travels on the data channel (JSON text messages, ordered and reliable).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
enum DataMessage {
    /// A chat message.
    Chat { id: String, text: String },
    /// "I have your message `id`".
    Receipt { id: String },
    /// The sender's microphone and camera state.
    Media { muted: bool, camera: bool },
    /// The sender is hanging up.
    Bye { reason: String },
    /// A file follows in binary chunks tagged `id`.
    FileOffer {
        id: u64,
        name: String,
        size: u64,
        sha256: String,
    },
    /// Stop transfer `id` (either side).
    FileCancel { id: u64, reason: String },
    /// The receiver has all of `id`; `ok` when its hash matched.
    FileResult { id: u64, ok: bool },
}

/// The most a decoded frame is held back to smooth out late arrivals (beyond it, frames are
/// shown as they come and the reader skips to the newest).
const MAX_PLAYOUT_DELAY: Duration = Duration::from_millis(400);
/// How long the video receiver waits for a frame when none is queued to be shown.
const IDLE: Duration = Duration::from_millis(100);
/// How often the video receiver looks whether the reader has taken the last frame.
const READER_POLL: Duration = Duration::from_millis(4);

/// Longest chat message accepted (characters).
pub const MAX_CHAT_CHARS: usize = 4_000;

/// A call in progress.
#[derive(Debug)]
pub struct CallHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<CallEvent>,
    switches: Arc<Switches>,
}

impl CallHandle {
    /// Joins: connects to the server (errors here are the user's: bad link, unreachable
    /// server) and runs the call in the background.
    pub async fn join(config: CallConfig) -> Result<Self, SignalError> {
        let signaling = SignalClient::connect(
            &config.url,
            &config.token,
            config.name.as_deref(),
            &config.trust,
            Backoff::default(),
        )
        .await?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let switches = Arc::new(Switches {
            processor: Mutex::new(Some(AudioProcessor::new(config.processing))),
            ..Switches::default()
        });
        tokio::spawn(run(
            config,
            signaling,
            Arc::clone(&switches),
            command_rx,
            event_tx,
        ));
        Ok(Self {
            commands,
            events,
            switches,
        })
    }

    /// The next event; `None` once the call has ended. Video frames wait in one-frame slots
    /// beside the queue of other events, so a slow reader never makes them pile up.
    pub async fn next_event(&mut self) -> Option<CallEvent> {
        let (remote, local) = (&self.switches.remote, &self.switches.local);
        loop {
            tokio::select! {
                event = self.events.recv() => return event,
                () = remote.ready.notified() => {
                    if let Some(frame) = remote.take() {
                        return Some(CallEvent::RemoteVideo(frame));
                    }
                }
                () = local.ready.notified() => {
                    if let Some(frame) = local.take() {
                        return Some(CallEvent::LocalVideo(frame));
                    }
                }
            }
        }
    }

    /// Shows the local camera in [`CallEvent::LocalVideo`] frames (off by default: headless
    /// peers have no self view).
    pub fn set_local_preview(&self, on: bool) {
        self.switches.preview.store(on, Ordering::Relaxed);
    }

    /// Host: let a waiting guest in.
    pub fn admit(&self, peer: &str) {
        let _ = self.commands.send(Command::Admit(peer.to_owned()));
    }

    /// Host: turn a waiting guest away (it is told the host declined).
    pub fn deny(&self, peer: &str) {
        let _ = self.commands.send(Command::Deny(peer.to_owned()));
    }

    /// Sends a chat message; returns its id ([`CallEvent::ChatDelivered`] follows when it has
    /// arrived). Messages sent before the data channel opens wait for it. Text longer than
    /// [`MAX_CHAT_CHARS`] is refused.
    pub fn send_chat(&self, text: &str) -> Result<String, String> {
        if text.chars().count() > MAX_CHAT_CHARS {
            return Err(format!(
                "a chat message holds at most {MAX_CHAT_CHARS} characters"
            ));
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let message = DataMessage::Chat {
            id: id.clone(),
            text: text.to_owned(),
        };
        let _ = self.commands.send(Command::Chat(message));
        Ok(id)
    }

    /// Sends a file (kept in memory by the receiver until its user saves it); returns the
    /// transfer id for progress and [`CallHandle::cancel_transfer`].
    pub fn send_file(&self, name: &str, data: Bytes) -> u64 {
        let id = rand::random::<u64>() >> 11; // exact in JSON numbers
        let _ = self.commands.send(Command::SendFile {
            id,
            name: name.to_owned(),
            data,
        });
        id
    }

    /// Stops a transfer in either direction.
    pub fn cancel_transfer(&self, id: u64) {
        let _ = self.commands.send(Command::CancelTransfer(id));
    }

    /// The largest file accepted from the other side (default 100 MiB).
    pub fn set_file_limit(&self, bytes: u64) {
        self.switches.file_limit.store(bytes, Ordering::Relaxed);
    }

    /// Switches the video source mid-call (`camera:<id>`, `pattern:WxH`, `file:…`) without
    /// renegotiating: same track, a keyframe from the new source. Fails, keeping the current
    /// source, when the new one cannot open (camera busy, gone).
    pub fn switch_video(&self, spec: &str) -> Result<(), String> {
        let source = confer_media::source::open(spec).map_err(|e| e.to_string())?;
        put(&self.switches.next_video, source);
        Ok(())
    }

    /// Switches the audio source mid-call (`mic:<device>`, `tone`, `speech`, `file:…`), the
    /// same way.
    pub fn switch_audio(&self, spec: &str) -> Result<(), String> {
        let source = confer_media::audio::open(spec).map_err(|e| e.to_string())?;
        put(
            &self.switches.next_audio,
            (source, confer_media::audio::is_microphone(spec)),
        );
        Ok(())
    }

    /// Plays remote audio on another output device (`default`, or a device id or name from
    /// `confer_media::device::outputs`). Fails, keeping the current one, when it cannot open.
    pub fn switch_speaker(&self, device: &str) -> Result<(), String> {
        put(&self.switches.next_speaker, open_speaker(device)?);
        Ok(())
    }

    /// Turns echo cancellation, noise suppression and automatic gain on or off mid-call.
    pub fn set_processing(&self, config: ProcessingConfig) {
        with_processor(&self.switches, |p| p.set_config(config));
    }

    /// Mutes or unmutes the microphone (the other side is told).
    pub fn set_muted(&self, muted: bool) {
        self.switches.muted.store(muted, Ordering::Relaxed);
        let _ = self.commands.send(Command::MediaState);
    }

    /// Turns the camera on or off (off: no video leaves the machine; the other side is told).
    pub fn set_camera(&self, on: bool) {
        let was_off = self.switches.camera_off.swap(!on, Ordering::AcqRel);
        if on && was_off {
            self.switches.camera_back.store(true, Ordering::Release);
        }
        let _ = self.commands.send(Command::MediaState);
    }

    /// Restarts ICE through signaling (after a network change, or when media stalls): the
    /// call stays, the path is found again.
    pub fn restart_ice(&self) {
        let _ = self.commands.send(Command::RestartIce);
    }

    /// Hangs up.
    pub fn hang_up(&self) {
        let _ = self.commands.send(Command::HangUp);
    }
}

/// Counters the media threads keep (cumulative; the stats tick takes differences).
#[derive(Debug, Default)]
struct MediaCounters {
    frames_encoded: AtomicU64,
    encode_us: AtomicU64,
    frames_decoded: AtomicU64,
    decode_us: AtomicU64,
    decode_errors: AtomicU64,
    capture_dropped: AtomicU64,
    freezes: AtomicU64,
    width: AtomicU64,
    height: AtomicU64,
    /// The codec of the last decoded remote frame (0: none yet, 1: VP8, 2: H.264).
    codec_received: std::sync::atomic::AtomicU8,
    /// Times the speaker ran dry.
    speaker_underruns: AtomicU64,
    /// Video packets lost for good (not repaired in time): their frames were dropped.
    packets_given_up: AtomicU64,
    /// The video playout delay, µs.
    playout_delay_us: AtomicU64,
    /// The video bitrate the encoder is set to, kbit/s.
    send_kbps_target: AtomicU64,
    /// The size encoded (width << 32 | height).
    send_size: AtomicU64,
    /// The audio sent comes from a microphone (and through the canceller).
    microphone: AtomicBool,
    /// The loss (%) the Opus encoder sizes its in-band FEC for ([`crate::rate::audio_fec_loss`]).
    audio_fec_loss_pct: std::sync::atomic::AtomicU8,
}

fn codec_code(codec: Option<VideoCodec>) -> u8 {
    match codec {
        None => 0,
        Some(VideoCodec::Vp8) => 1,
        Some(VideoCodec::H264) => 2,
    }
}

fn codec_from_code(code: u8) -> Option<VideoCodec> {
    [VideoCodec::Vp8, VideoCodec::H264]
        .into_iter()
        .find(|&c| codec_code(Some(c)) == code)
}

/// One second of a call, for the stats panel and the network-quality indicator.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CallStats {
    /// Round-trip time, ms.
    pub rtt_ms: Option<f64>,
    /// Inbound RTP packets lost in this second, percent: the loss left after repairs
    /// (a packet a retransmission restored counts as received).
    pub loss_pct: f64,
    /// Our packets lost on the way to the other side, percent, before any repair: over the
    /// last second from its transport-wide feedback, else from its last receiver report
    /// (`None` before either arrives).
    pub send_loss_pct: Option<f64>,
    /// Inbound interarrival jitter, ms.
    pub jitter_ms: f64,
    /// Everything sent (media, RTCP, data), kbit/s.
    pub send_kbps: f64,
    /// Everything received, kbit/s.
    pub recv_kbps: f64,
    /// Remote frames decoded per second.
    pub fps_received: f64,
    /// Local frames encoded per second.
    pub fps_sent: f64,
    /// Size of the last decoded remote frame.
    pub width: u32,
    /// Height of the last decoded remote frame.
    pub height: u32,
    /// Freezes so far (no new remote frame for 500 ms while media flows).
    pub freezes: u64,
    /// Mean decode time in this second, ms.
    pub decode_ms: f64,
    /// Mean encode time in this second, ms.
    pub encode_ms: f64,
    /// Frames dropped so far (capture hand-off behind, or undecodable).
    pub dropped_frames: u64,
    /// `host` (direct), `srflx`/`prflx` (through NAT) or `relay` (TURN).
    pub path: Option<String>,
    /// The video codec we send.
    pub codec_sent: Option<VideoCodec>,
    /// The video codec we receive.
    pub codec_received: Option<VideoCodec>,
    /// Times the speaker ran out of audio to play so far.
    pub speaker_underruns: u64,
    /// Decoded remote frames never shown so far: replaced by a newer one before the reader
    /// took them, or skipped because one captured 250 ms later was ready too
    /// ([`crate::render::Presenter`]).
    pub frames_skipped: u64,
    /// Received video packets lost for good so far (not repaired by retransmission in
    /// time); each costs its frame and a keyframe request.
    pub video_packets_given_up: u64,
    /// How long decoded frames are held to show them at their capture cadence, ms (0 on a
    /// clean path; it grows with late, repaired frames).
    pub video_playout_delay_ms: f64,
    /// Remote audio so far: 20 ms packets rebuilt from the next packet's in-band FEC.
    pub audio_fec_recovered: u64,
    /// Remote audio so far: 20 ms ticks concealed (nothing to play, or lost without FEC).
    pub audio_concealed: u64,
    /// Remote audio packets that came after their turn (dropped) so far.
    pub audio_late: u64,
    /// Remote audio buffered ahead of the play point, ms.
    pub audio_buffer_ms: u32,
    /// Remote audio so far played longer (a pitch period repeated) to deepen the jitter
    /// buffer without a gap, ms.
    pub audio_inserted_ms: f64,
    /// Remote audio so far played shorter (a period taken out) to bring the delay back, ms.
    pub audio_removed_ms: f64,
    /// What the congestion controller lets us send now (all media), kbit/s (as of the
    /// previous second).
    pub bandwidth_estimate_kbps: f64,
    /// The queue on the path towards the other side, ms, read from its transport-wide
    /// feedback (`None` when it sends none: the rate then follows its receiver reports).
    pub send_queue_ms: Option<f64>,
    /// Times the send rate was cut for a queue building on the path, so far.
    pub rate_cuts_delay: u64,
    /// Times the send rate was cut for loss, so far.
    pub rate_cuts_loss: u64,
    /// The loss (%) our Opus encoder sizes its in-band FEC for, following the far side's.
    pub audio_fec_loss_pct: u8,
    /// The video bitrate the encoder is set to, kbit/s.
    pub video_target_kbps: u32,
    /// The size we encode at (the resolution ladder's rung).
    pub sent_width: u32,
    /// The height we encode at.
    pub sent_height: u32,
    /// Retransmissions asked for but not sent so far, because they were over the share of
    /// the rate retransmissions may take.
    pub retransmissions_dropped: u64,
    /// Retransmissions sent on the RTX stream (RFC 4588) so far.
    pub rtx_sent: u64,
    /// Retransmissions received on the RTX stream so far.
    pub rtx_received: u64,
    /// Video repair packets per ten media packets we send now (0: no FEC).
    pub fec_per_ten: u32,
    /// Video repair packets (FEC) sent so far.
    pub fec_sent: u64,
    /// Video packets the other side's repair packets rebuilt here so far.
    pub fec_recovered: u64,
    /// The network-quality indicator for this second (good / fair / poor, and why).
    pub quality: Option<crate::quality::NetworkQuality>,
    /// How much echo the canceller removes (its own estimate, dB), while it runs on a
    /// microphone.
    pub echo_erle_db: Option<f64>,
}

/// The user's microphone and camera switches, read by the media threads.
#[derive(Default)]
struct Switches {
    muted: AtomicBool,
    camera_off: AtomicBool,
    /// Set when the camera comes back: the next frame is a keyframe.
    camera_back: AtomicBool,
    /// Largest file accepted from the other side (0: the default).
    file_limit: std::sync::atomic::AtomicU64,
    /// A camera (or other video source) to switch to, taken by the video thread.
    next_video: Mutex<Option<Box<dyn confer_media::source::VideoSource>>>,
    /// A microphone (or other audio source) to switch to, taken by the audio thread, and
    /// whether it is a microphone (processed) or not.
    next_audio: Mutex<Option<(Box<dyn AudioSource>, bool)>>,
    /// A speaker to switch to, taken by the playout thread.
    next_speaker: Mutex<Option<Speaker>>,
    /// Echo cancellation, noise suppression and gain: the playout thread feeds it what the
    /// speaker plays, the audio thread runs the microphone through it.
    processor: Mutex<Option<AudioProcessor>>,
    /// The newest decoded remote frame, waiting for the reader.
    remote: Latest,
    /// The newest local frame, when the self view is on.
    local: Latest,
    /// Local frames are shown.
    preview: AtomicBool,
}

/// A one-frame slot: the writer replaces what the reader has not taken (and counts it).
#[derive(Default)]
struct Latest {
    frame: Mutex<Option<VideoFrame>>,
    ready: tokio::sync::Notify,
    skipped: AtomicU64,
}

impl Latest {
    fn put(&self, frame: VideoFrame) {
        if self
            .frame
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(frame)
            .is_some()
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    fn take(&self) -> Option<VideoFrame> {
        self.frame.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The reader has taken the last frame.
    fn is_empty(&self) -> bool {
        self.frame
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

/// Leaves a value for a media thread to take.
fn put<T>(slot: &Mutex<Option<T>>, value: T) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
}

/// Opens the output device a speaker spec names (`default`, or a device id or name).
fn open_speaker(device: &str) -> Result<Speaker, String> {
    Speaker::open((device != "default").then_some(device)).map_err(|e| e.to_string())
}

/// Runs `f` on the audio processor.
fn with_processor<R>(switches: &Switches, f: impl FnOnce(&mut AudioProcessor) -> R) -> Option<R> {
    switches
        .processor
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
        .map(f)
}

/// Takes what was left for this thread, if anything.
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl std::fmt::Debug for Switches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switches")
            .field("muted", &self.muted)
            .field("camera_off", &self.camera_off)
            .finish_non_exhaustive()
    }
}

/// Media threads of one connected call; dropping it stops them.
struct Media {
    stop: Arc<AtomicBool>,
    counters: Arc<MediaCounters>,
    /// Received frames for the decoder thread.
    to_decoder: std::sync::mpsc::Sender<(VideoCodec, Bytes, u32, bool)>,
    /// The codec we send.
    codec: VideoCodec,
    playout: Arc<Mutex<Playout>>,
    /// The clock of received audio: arrivals and playout are both read from it.
    epoch: Instant,
    switches: Arc<Switches>,
    /// The send rate the congestion controller allows, bit/s (read by the video sender).
    bandwidth: Arc<AtomicU64>,
    controller: crate::rate::Controller,
    /// Video repair packets per ten media packets (`crate::fec`), set once a second from
    /// the loss held for it.
    protection: crate::fec::Protection,
    fec_loss: f64,
}

impl Drop for Media {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start_media(
    config: &CallConfig,
    codec: VideoCodec,
    peer: &Arc<Peer>,
    switches: &Arc<Switches>,
    events: &mpsc::UnboundedSender<CallEvent>,
    keyframe_needed: mpsc::UnboundedSender<()>,
) -> Result<Media, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(MediaCounters::default());
    let (video_source, warning) = confer_media::source::open_or_pattern(&config.video);
    if let Some(w) = warning {
        let _ = events.send(CallEvent::Warning(format!("video: {w}")));
    }
    let (audio_source, problem) = confer_media::audio::open_or_silence(&config.audio);
    // Silence in place of a microphone that did not open is paced like any synthetic source.
    let microphone_open = problem.is_none() && confer_media::audio::is_microphone(&config.audio);
    if let Some(e) = problem {
        let _ = events.send(CallEvent::Warning(format!(
            "microphone: {e}. The call goes on, but the other person cannot hear you."
        )));
    }
    let source_size = video_source.size();
    let fps = video_source.fps();
    // The encoder follows the congestion controller: bitrate, size and frame rate. It starts
    // low (`rate::START_KBPS`) and climbs to what the path carries.
    let controller =
        crate::rate::Controller::new(config.video_kbps + crate::rate::AUDIO_RESERVE_KBPS);
    let bandwidth = peer.bandwidth();
    let protection = peer.video_protection();
    bandwidth.store((controller.rate_kbps() * 1000.0) as u64, Ordering::Relaxed);
    let mut rate = SendRate::new(
        source_size,
        fps.round() as u32,
        config.video_kbps,
        Arc::clone(&bandwidth),
    )
    .with_protection(Arc::clone(&protection));
    let plan = rate.plan(Instant::now());
    let mut encoder = codec
        .encoder(plan.rung.width, plan.rung.height, plan.kbps)
        .map_err(|e| e.to_string())?;
    let mut encoder_size = (plan.rung.width, plan.rung.height);

    // Video: capture thread → encoder thread → async sender.
    let (encoded_tx, mut encoded_rx) = mpsc::channel::<(Bytes, u64)>(4);
    {
        let stop = Arc::clone(&stop);
        let keyframes = peer.keyframes();
        let switches = Arc::clone(switches);
        let counters = Arc::clone(&counters);
        let events = events.clone();
        std::thread::Builder::new()
            .name("confer-video-send".into())
            .spawn(move || {
                // Wall-clock stamps: a receiver on the same machine reads glass-to-glass time
                // off the frame mark.
                let mut capture = Capture::start_wall_clock(video_source);
                let mut source_size = source_size;
                let mut scaler = Scaler::new();
                let mut switched = false;
                let mut requested = false;
                let mut last_requested_keyframe: Option<Instant> = None;
                while !stop.load(Ordering::Relaxed) {
                    // Another camera: same track, same connection, a keyframe from it.
                    let next = take(&switches.next_video);
                    if let Some(source) = next {
                        source_size = source.size();
                        rate.set_source(source_size, source.fps().round() as u32);
                        capture = Capture::start_wall_clock(source);
                        switched = true;
                    }
                    let Some(frame) = capture.next(Duration::from_millis(200)) else {
                        continue;
                    };
                    if (frame.width, frame.height) != source_size {
                        continue; // a frame of the previous source still in the hand-off
                    }
                    if switches.camera_off.load(Ordering::Relaxed) {
                        continue; // nothing leaves the machine while the camera is off
                    }
                    if switches.preview.load(Ordering::Relaxed) {
                        switches.local.put(frame.clone());
                    }
                    // What the network takes now: a new encoder for a new size (it starts
                    // with a keyframe), a new bitrate otherwise, and fewer frames when asked.
                    let plan = rate.plan(Instant::now());
                    let size = (plan.rung.width, plan.rung.height);
                    if size != encoder_size {
                        match codec.encoder(size.0, size.1, plan.kbps) {
                            Ok(e) => {
                                encoder = e;
                                encoder_size = size;
                                switched = true;
                            }
                            Err(e) => {
                                let _ =
                                    events.send(CallEvent::Warning(format!("video encoder: {e}")));
                                continue;
                            }
                        }
                    } else if plan.kbps != encoder.bitrate_kbps() {
                        let _ = encoder.set_bitrate_kbps(plan.kbps);
                    }
                    counters
                        .send_kbps_target
                        .store(u64::from(plan.kbps), Ordering::Relaxed);
                    counters.send_size.store(
                        u64::from(size.0) << 32 | u64::from(size.1),
                        Ordering::Relaxed,
                    );
                    if !rate.take_frame(plan.rung.fps) {
                        continue;
                    }
                    let frame = if (frame.width, frame.height) == size {
                        frame
                    } else {
                        match scaler.scale(&frame, size.0, size.1) {
                            Ok(scaled) => scaled,
                            Err(e) => {
                                let _ = events.send(CallEvent::Warning(format!("video: {e}")));
                                continue;
                            }
                        }
                    };
                    // The far side's requests are answered at most once per KEYFRAME_INTERVAL
                    // (a request held back is answered when the interval is over).
                    requested |= keyframes.take();
                    let answer = requested
                        && last_requested_keyframe
                            .is_none_or(|t: Instant| t.elapsed() >= crate::peer::KEYFRAME_INTERVAL);
                    if answer {
                        requested = false;
                        last_requested_keyframe = Some(Instant::now());
                    }
                    let force = answer
                        | switches.camera_back.swap(false, Ordering::AcqRel)
                        | std::mem::take(&mut switched);
                    counters
                        .capture_dropped
                        .store(capture.stats().dropped, Ordering::Relaxed);
                    let started = Instant::now();
                    let encoded = encoder.encode(&frame, force);
                    counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
                    counters
                        .encode_us
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    match encoded {
                        Ok(Some(encoded)) => {
                            if encoded_tx
                                .blocking_send((Bytes::from(encoded.data), encoded.pts_us))
                                .is_err()
                            {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ = events.send(CallEvent::Warning(format!("video encoder: {e}")));
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }
    tokio::spawn({
        let peer = Arc::clone(peer);
        async move {
            while let Some((data, capture_us)) = encoded_rx.recv().await {
                let _ = peer.send_video(codec, data, capture_us).await;
            }
        }
    });

    // Audio: paced 10 ms capture → Opus (20 ms) → async sender.
    let (opus_tx, mut opus_rx) = mpsc::channel::<Bytes>(8);
    {
        let stop = Arc::clone(&stop);
        let switches = Arc::clone(switches);
        let counters = Arc::clone(&counters);
        let mut source: Box<dyn AudioSource> = audio_source;
        let mut microphone = microphone_open;
        let opus_config = OpusConfig::default();
        counters
            .audio_fec_loss_pct
            .store(opus_config.expected_loss_pct, Ordering::Relaxed);
        let mut opus = OpusEncoder::new(opus_config).map_err(|e| e.to_string())?;
        std::thread::Builder::new()
            .name("confer-audio-send".into())
            .spawn(move || {
                let mut pcm = Vec::with_capacity(2 * FRAME_10MS);
                // Synthetic and file sources return at once: pace them; a microphone blocks
                // for its own 10 ms and the deadline has passed by then. Up to 50 ms of delay
                // is made up.
                let mut pacer = Pacer::new(Duration::from_millis(10), Duration::from_millis(50));
                while !stop.load(Ordering::Relaxed) {
                    pacer.wait();
                    let next = take(&switches.next_audio);
                    if let Some((new, is_mic)) = next {
                        source = new;
                        microphone = is_mic;
                    }
                    let Ok(mut frame) = source.next_frame() else {
                        pcm.extend(std::iter::repeat_n(0.0, FRAME_10MS));
                        continue;
                    };
                    counters.microphone.store(microphone, Ordering::Relaxed);
                    if microphone {
                        // The echo of what the speaker played comes out here; a processing
                        // error leaves the frame as captured.
                        let _ = with_processor(&switches, |p| p.capture(&mut frame));
                    }
                    // Muted: the microphone is still read (so it does not back up) but only
                    // silence is encoded.
                    if switches.muted.load(Ordering::Relaxed) {
                        pcm.extend(std::iter::repeat_n(0.0, FRAME_10MS));
                    } else {
                        pcm.extend_from_slice(&frame);
                    }
                    if pcm.len() == 2 * FRAME_10MS {
                        let loss = counters.audio_fec_loss_pct.load(Ordering::Relaxed);
                        if loss != opus.config().expected_loss_pct {
                            let _ = opus.set_expected_loss_pct(loss);
                        }
                        if let Ok(packet) = opus.encode(&pcm)
                            && opus_tx.blocking_send(Bytes::from(packet.data)).is_err()
                        {
                            break;
                        }
                        pcm.clear();
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }
    tokio::spawn({
        let peer = Arc::clone(peer);
        async move {
            while let Some(data) = opus_rx.recv().await {
                let _ = peer.send_audio(data).await;
            }
        }
    });

    // Received video: a decoder thread.
    let (to_decoder, video_rx) = std::sync::mpsc::channel::<(VideoCodec, Bytes, u32, bool)>();
    {
        let events = events.clone();
        let switches = Arc::clone(switches);
        let counters = Arc::clone(&counters);
        let stop = Arc::clone(&stop);
        // Opened for the first frame's codec, and again if the sender changes codec.
        let mut decoder: Option<(VideoCodec, Box<dyn VideoDecoder>)> = None;
        std::thread::Builder::new()
            .name("confer-video-recv".into())
            .spawn(move || {
                let mut last_frame: Option<Instant> = None;
                let mut frozen = false;
                // Decoded frames wait here until their time to be shown (crate::render).
                let mut clock = RenderClock::new(MAX_PLAYOUT_DELAY);
                let mut presenter = Presenter::default();
                loop {
                    let skipped = presenter.skipped();
                    let mut taken = switches.remote.is_empty();
                    if let Some(frame) = presenter.release(Instant::now(), taken) {
                        switches.remote.put(frame);
                        taken = false;
                    }
                    switches
                        .remote
                        .skipped
                        .fetch_add(presenter.skipped() - skipped, Ordering::Relaxed);
                    let wait = presenter.next_at(taken).map_or(IDLE, |at| {
                        // Until the reader takes the last frame, look again soon.
                        let soon = if taken { IDLE } else { READER_POLL };
                        at.saturating_duration_since(Instant::now()).min(soon)
                    });
                    let next = video_rx.recv_timeout(wait);
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    // A freeze: no new frame for 500 ms once frames had started.
                    if let Some(last) = last_frame
                        && !frozen
                        && last.elapsed() > Duration::from_millis(500)
                    {
                        frozen = true;
                        counters.freezes.fetch_add(1, Ordering::Relaxed);
                    }
                    let (codec, data, rtp_timestamp, repaired) = match next {
                        Ok(item) => item,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(_) => break,
                    };
                    if decoder.as_ref().is_none_or(|(c, _)| *c != codec) {
                        match codec.decoder() {
                            Ok(d) => decoder = Some((codec, d)),
                            Err(e) => {
                                let _ =
                                    events.send(CallEvent::Warning(format!("video decoder: {e}")));
                                continue;
                            }
                        }
                    }
                    let Some((_, decoder)) = decoder.as_mut() else {
                        continue;
                    };
                    let started = Instant::now();
                    let decoded = decoder.decode(&data, 0);
                    counters
                        .decode_us
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    match decoded {
                        Ok(Some(frame)) => {
                            counters.frames_decoded.fetch_add(1, Ordering::Relaxed);
                            counters
                                .codec_received
                                .store(codec_code(Some(codec)), Ordering::Relaxed);
                            counters
                                .width
                                .store(u64::from(frame.width), Ordering::Relaxed);
                            counters
                                .height
                                .store(u64::from(frame.height), Ordering::Relaxed);
                            last_frame = Some(Instant::now());
                            frozen = false;
                            presenter.push(
                                clock.schedule(rtp_timestamp, Instant::now(), repaired),
                                frame,
                            );
                            counters
                                .playout_delay_us
                                .store(clock.delay().as_micros() as u64, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        // A frame that does not decode (its reference was lost, or the first
                        // keyframe went by before we listened): ask for a keyframe (the peer
                        // limits how often one is asked for) and wait for it.
                        Err(_) => {
                            counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                            let _ = keyframe_needed.send(());
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }

    // Received audio: the playout, pulled every 10 ms.
    let playout = Arc::new(Mutex::new(
        Playout::new(JitterConfig::default()).map_err(|e| e.to_string())?,
    ));
    let epoch = Instant::now();
    {
        let stop = Arc::clone(&stop);
        let playout = Arc::clone(&playout);
        let events = events.clone();
        let switches = Arc::clone(switches);
        let counters = Arc::clone(&counters);
        let device = config.speaker.clone();
        std::thread::Builder::new()
            .name("confer-audio-recv".into())
            .spawn(move || {
                // Opened here, not on the async side: cpal blocks while it sets up a stream.
                let mut speaker = device.and_then(|d| {
                    open_speaker(&d)
                        .map_err(|e| {
                            let _ = events.send(CallEvent::Warning(format!("speaker: {e}")));
                        })
                        .ok()
                });
                // On a speaker its clock paces playout (`play` waits while the device's ring
                // is full); on no device a pacer keeps real time, every 10 ms made up.
                let mut pacer = Pacer::new(Duration::from_millis(10), Duration::MAX);
                let mut last_problem = String::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(next) = take(&switches.next_speaker) {
                        speaker = Some(next);
                    }
                    if speaker.is_none() {
                        pacer.wait();
                    }
                    let frame = playout
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .next_10ms(epoch.elapsed().as_micros() as u64);
                    if let Some(speaker) = speaker.as_mut() {
                        // The canceller hears what the speaker plays, just before it does.
                        let _ = with_processor(&switches, |p| p.render(&frame));
                        // A lost or unplugged device is reported once; the speaker falls back
                        // to the system default and returns to its device when it can.
                        if let Err(e) = speaker.play(&frame) {
                            let problem = format!("speaker: {e}");
                            if problem != last_problem {
                                let _ = events.send(CallEvent::Warning(problem.clone()));
                                last_problem = problem;
                            }
                        }
                        counters
                            .speaker_underruns
                            .store(speaker.stats().underruns, Ordering::Relaxed);
                    }
                    if events.send(CallEvent::RemoteAudio(frame)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(Media {
        stop,
        counters,
        to_decoder,
        codec,
        playout,
        epoch,
        switches: Arc::clone(switches),
        bandwidth,
        controller,
        protection,
        fec_loss: 0.0,
    })
}

/// Why gathering found nothing, as precisely as can be told: webrtc-rs does not report the
/// TURN server's error, but the REST credentials carry their expiry (`<unix time>:<peer>`), and
/// the bridges to TURN over TCP/TLS say why they could not connect (`bridge_errors`).
fn no_candidates_reason(
    ice_servers: &[confer_protocol::IceServer],
    relay_only: bool,
    bridge_errors: &[String],
) -> String {
    if !relay_only {
        return "no network path: not a single ICE candidate could be gathered".into();
    }
    let turn: Vec<_> = ice_servers
        .iter()
        .filter(|s| s.urls.iter().any(|u| u.starts_with("turn")))
        .collect();
    if turn.is_empty() {
        return "relay-only: the server offers no TURN relay; the call cannot connect".into();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expired = turn.iter().find_map(|s| {
        let expiry: u64 = s.username.as_deref()?.split(':').next()?.parse().ok()?;
        (expiry < now).then(|| now - expiry)
    });
    let over_stream = turn
        .iter()
        .flat_map(|s| &s.urls)
        .any(|u| crate::turn_tcp::StreamServer::parse(u).is_some());
    match (expired, bridge_errors.first()) {
        (Some(ago), _) => format!(
            "relay-only: the TURN credentials expired {ago} s ago, so the relay refused them; \
             rejoin to get fresh ones (the call cannot connect without the relay)"
        ),
        (None, Some(bridge)) => format!(
            "relay-only: the TURN relay cannot be reached ({bridge}); the call cannot connect"
        ),
        (None, None) if over_stream => "relay-only: the TURN server gave no relay address \
             over UDP, TCP or TLS (it refused the credentials, or cannot be reached); the call \
             cannot connect"
            .into(),
        (None, None) => "relay-only: the TURN server gave no relay address: it refused the \
             credentials, or UDP to it is blocked on this network (a server that also offers \
             TURN over TLS on port 443, a `turns:` URL, gets through such networks); the call \
             cannot connect"
            .into(),
    }
}

/// How often this machine's addresses are checked for a network change.
const NETWORK_CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long the answerer waits, after its network changed, for the offerer's own restart.
const ANSWERER_RESTART_DELAY: Duration = Duration::from_millis(1500);

/// How long the path may stay lost before the offerer restarts ICE, and how often it tries
/// again while the path stays lost.
const ICE_RESTART_AFTER: Duration = Duration::from_secs(2);
// Just over a generation's connectivity checks (28 × 50 ms): checks run almost without a
// break while the path is lost, so media is back within about this long of it returning
// (the matrix benchmark measured 2.2 s after a 5 s cut with 4 s between restarts).
const ICE_RESTART_EVERY: Duration = Duration::from_millis(1500);

/// Restarts ICE: new credentials, a new offer through signaling.
async fn restart_ice(
    peer: Option<&Peer>,
    signaling: &mut SignalClient,
    events: &mpsc::UnboundedSender<CallEvent>,
) {
    let Some(p) = peer else { return };
    match p.restart_ice().await {
        Ok(offer) => {
            signaling.signal(offer.to_payload());
            let ufrag = p.local_ufrag().await.unwrap_or_default();
            let _ = events.send(CallEvent::IceRestarted { ufrag });
        }
        Err(e) => {
            let _ = events.send(CallEvent::Warning(format!("ICE restart: {e}")));
        }
    }
}

/// Offers a file and starts sending its chunks on a task of its own.
async fn start_send(
    peer: &Arc<Peer>,
    id: u64,
    name: String,
    data: Bytes,
    sending: &mut std::collections::HashMap<u64, Arc<AtomicBool>>,
    events: &mpsc::UnboundedSender<CallEvent>,
) {
    let offer = DataMessage::FileOffer {
        id,
        name,
        size: data.len() as u64,
        sha256: transfer::sha256_hex(&data),
    };
    send_message(peer, &offer).await;
    let cancelled = Arc::new(AtomicBool::new(false));
    sending.insert(id, Arc::clone(&cancelled));
    let (peer, events, total) = (Arc::clone(peer), events.clone(), data.len() as u64);
    tokio::spawn(async move {
        let mut last = 0;
        transfer::send_chunks(peer, id, data, cancelled, |done| {
            if done - last >= 1 << 20 || done == total {
                last = done;
                let _ = events.send(CallEvent::TransferProgress {
                    id,
                    incoming: false,
                    done,
                    total,
                });
            }
        })
        .await;
    });
}

/// What the previous stats tick saw.
#[derive(Default)]
struct Previous {
    at: Option<Instant>,
    net: crate::peer::NetworkStats,
    frames_encoded: u64,
    encode_us: u64,
    frames_decoded: u64,
    decode_us: u64,
}

/// One second's stats from the counters now and at the previous tick.
/// `video_expected`: the other side's camera is on (for the quality indicator).
fn stats(
    net: crate::peer::NetworkStats,
    media: &Media,
    prev: &mut Previous,
    video_expected: bool,
) -> Option<CallStats> {
    let counters = &*media.counters;
    let now = Instant::now();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (fe, eu, fd, du) = (
        load(&counters.frames_encoded),
        load(&counters.encode_us),
        load(&counters.frames_decoded),
        load(&counters.decode_us),
    );
    let (audio, audio_buffer_ms, stretch) = {
        let playout = media.playout.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = playout.buffer();
        (
            buffer.stats(),
            buffer.buffered_ms(),
            playout.stretch_stats(),
        )
    };
    let samples_ms = |n: u64| n as f64 * 1e3 / f64::from(confer_media::tone::SAMPLE_RATE);
    let result = prev.at.map(|at| {
        let secs = now.duration_since(at).as_secs_f64().max(1e-3);
        let received = net
            .packets_received
            .saturating_sub(prev.net.packets_received);
        let lost = (net.packets_lost - prev.net.packets_lost).max(0) as f64;
        let per = |n: u64, us: u64| {
            if n == 0 {
                0.0
            } else {
                us as f64 / n as f64 / 1e3
            }
        };
        let mut s = CallStats {
            rtt_ms: net.rtt_ms,
            loss_pct: if received as f64 + lost > 0.0 {
                100.0 * lost / (received as f64 + lost)
            } else {
                0.0
            },
            send_loss_pct: net
                .transport_loss
                .or(net.remote_fraction_lost)
                .map(|f| 100.0 * f),
            jitter_ms: net.jitter_ms,
            send_kbps: (net.bytes_sent.saturating_sub(prev.net.bytes_sent)) as f64 * 8.0
                / 1e3
                / secs,
            recv_kbps: (net.bytes_received.saturating_sub(prev.net.bytes_received)) as f64 * 8.0
                / 1e3
                / secs,
            fps_received: (fd - prev.frames_decoded) as f64 / secs,
            fps_sent: (fe - prev.frames_encoded) as f64 / secs,
            width: load(&counters.width) as u32,
            height: load(&counters.height) as u32,
            freezes: load(&counters.freezes),
            decode_ms: per(fd - prev.frames_decoded, du - prev.decode_us),
            encode_ms: per(fe - prev.frames_encoded, eu - prev.encode_us),
            dropped_frames: load(&counters.capture_dropped) + load(&counters.decode_errors),
            path: net.path.clone(),
            codec_sent: Some(media.codec),
            codec_received: codec_from_code(counters.codec_received.load(Ordering::Relaxed)),
            speaker_underruns: load(&counters.speaker_underruns),
            frames_skipped: load(&media.switches.remote.skipped),
            video_packets_given_up: load(&counters.packets_given_up),
            video_playout_delay_ms: load(&counters.playout_delay_us) as f64 / 1e3,
            audio_fec_recovered: audio.recovered,
            audio_concealed: audio.concealed,
            audio_late: audio.late,
            audio_buffer_ms,
            audio_inserted_ms: samples_ms(stretch.inserted_samples),
            audio_removed_ms: samples_ms(stretch.removed_samples),
            bandwidth_estimate_kbps: media.bandwidth.load(Ordering::Relaxed) as f64 / 1e3,
            send_queue_ms: net.send_queue_ms,
            rate_cuts_delay: net.delay_cuts,
            rate_cuts_loss: net.loss_cuts,
            audio_fec_loss_pct: media.counters.audio_fec_loss_pct.load(Ordering::Relaxed),
            video_target_kbps: load(&counters.send_kbps_target) as u32,
            sent_width: (load(&counters.send_size) >> 32) as u32,
            sent_height: load(&counters.send_size) as u32,
            retransmissions_dropped: net.retransmissions_dropped,
            rtx_sent: net.rtx_sent,
            rtx_received: net.rtx_received,
            fec_per_ten: media.protection.load(Ordering::Relaxed),
            fec_sent: net.fec_sent,
            fec_recovered: net.fec_recovered,
            quality: None, // assessed from the rest, below
            echo_erle_db: counters
                .microphone
                .load(Ordering::Relaxed)
                .then(|| with_processor(&media.switches, |p| p.stats().erle_db))
                .flatten()
                .flatten(),
        };
        s.quality = Some(crate::quality::assess(&s, video_expected));
        s
    });
    *prev = Previous {
        at: Some(now),
        net,
        frames_encoded: fe,
        encode_us: eu,
        frames_decoded: fd,
        decode_us: du,
    };
    result
}

fn media_state(switches: &Switches) -> DataMessage {
    DataMessage::Media {
        muted: switches.muted.load(Ordering::Relaxed),
        camera: !switches.camera_off.load(Ordering::Relaxed),
    }
}

/// Sends one message on the data channel; `false` when it is not open.
async fn send_message(peer: &Peer, message: &DataMessage) -> bool {
    let json = serde_json::to_string(message).expect("data messages serialize");
    peer.send_data(&json).await
}

async fn run(
    config: CallConfig,
    mut signaling: SignalClient,
    switches: Arc<Switches>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<CallEvent>,
) {
    let (peer_tx, mut peer_rx) = mpsc::unbounded_channel();
    let mut ice_servers = Vec::new();
    let mut peer: Option<Arc<Peer>> = None;
    let peer_settings = crate::peer::PeerSettings {
        bind_ip: config.bind_ip,
        prefer: config.video_codec,
        relay_only: config.relay_only,
        max_kbps: config.video_kbps + crate::rate::AUDIO_RESERVE_KBPS,
        trust: config.trust.clone(),
    };
    let mut media: Option<Media> = None;
    // Chat waiting for the data channel.
    let mut outbox: Vec<DataMessage> = Vec::new();
    let mut incoming = transfer::Receiver::default();
    let mut sending: std::collections::HashMap<u64, Arc<AtomicBool>> = Default::default();
    let mut pending_files: Vec<(u64, String, Bytes)> = Vec::new();
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let (keyframe_tx, mut keyframe_rx) = mpsc::unbounded_channel::<()>();
    let mut previous = Previous::default();
    let mut data_open = false;
    // Whether this side sent the offer (it restarts ICE when the path is lost), since when the
    // path has been lost, and the next automatic ICE restart.
    let mut we_offered = false;
    // The other side's camera, for the quality indicator.
    let mut peer_camera = true;
    let mut reconnecting = false;
    let mut next_restart: Option<tokio::time::Instant> = None;
    // This machine's network, to restart ICE when it changes (crate::netwatch). The offerer
    // restarts at once; the answerer a moment later, unless the offerer's restart (its network
    // changed as well: two calls on one machine) has arrived by then, so they do not collide.
    let mut addresses = crate::netwatch::usable_addresses();
    let mut network_tick = tokio::time::interval(NETWORK_CHECK_EVERY);
    network_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut network_restart: Option<(tokio::time::Instant, Instant)> = None;
    let mut remote_restart_at: Option<Instant> = None;
    let ended = loop {
        let restart_at =
            next_restart.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            () = tokio::time::sleep_until(restart_at), if next_restart.is_some() => {
                next_restart = Some(tokio::time::Instant::now() + ICE_RESTART_EVERY);
                restart_ice(peer.as_deref(), &mut signaling, &events).await;
            }
            _ = network_tick.tick() => {
                let now = crate::netwatch::usable_addresses();
                if now != addresses {
                    addresses = now;
                    if media.is_some() {
                        let _ = events.send(CallEvent::NetworkChanged);
                        if we_offered {
                            restart_ice(peer.as_deref(), &mut signaling, &events).await;
                        } else {
                            network_restart = Some((tokio::time::Instant::now() + ANSWERER_RESTART_DELAY, Instant::now()));
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(network_restart.map_or(restart_at, |(at, _)| at)), if network_restart.is_some() => {
                let (_, noticed) = network_restart.take().expect("scheduled");
                if remote_restart_at.is_none_or(|at| at < noticed) {
                    restart_ice(peer.as_deref(), &mut signaling, &events).await;
                }
            }
            event = signaling.next_event() => {
                let Some(event) = event else { break "signaling closed".to_owned() };
                match &event {
                    SignalEvent::Joined { ice_servers: servers, .. } => ice_servers = servers.clone(),
                    SignalEvent::Knock { peer: guest, .. } if config.auto_admit => signaling.admit(guest),
                    // A second call-ready while media flows: the signaling server restarted
                    // (fresh seats, same room, same two people). Media is peer to peer and
                    // never touched the server, so the call goes on as it is.
                    SignalEvent::CallReady { .. } if media.is_some() => {}
                    SignalEvent::CallReady { initiator, .. } => {
                        media = None;
                        // A new call's counters start from zero.
                        previous = Previous::default();
                        if let Some(old) = peer.take() {
                            let _ = old.close().await;
                        }
                        match Peer::new(&ice_servers, &peer_settings, peer_tx.clone()).await {
                            Ok(p) => {
                                let p = Arc::new(p);
                                data_open = false;
                                we_offered = *initiator;
                                reconnecting = false;
                                next_restart = None;
                                if *initiator {
                                    match p.offer(peer_tx.clone()).await {
                                        Ok(offer) => signaling.signal(offer.to_payload()),
                                        Err(e) => { let _ = events.send(CallEvent::Warning(e.to_string())); }
                                    }
                                }
                                peer = Some(p);
                            }
                            Err(e) => { let _ = events.send(CallEvent::Warning(e.to_string())); }
                        }
                    }
                    SignalEvent::Signal { payload, .. } => {
                        let (Some(p), Ok(signal)) = (&peer, Signal::from_payload(payload)) else {
                            let _ = events.send(CallEvent::Warning("a signal outside a call".into()));
                            continue;
                        };
                        let before = p.local_ufrag().await;
                        match p.on_signal(signal).await {
                            Ok(Some(answer)) => {
                                signaling.signal(answer.to_payload());
                                // An offer with new credentials during a connected call: the
                                // other side restarted ICE, and so did we in answering.
                                let after = p.local_ufrag().await;
                                if media.is_some() && before.is_some() && after != before {
                                    remote_restart_at = Some(Instant::now());
                                    let ufrag = after.unwrap_or_default();
                                    let _ = events.send(CallEvent::IceRestarted { ufrag });
                                }
                            }
                            Ok(None) => {}
                            Err(e) => { let _ = events.send(CallEvent::Warning(e.to_string())); }
                        }
                    }
                    SignalEvent::PeerLeft { .. } => {
                        media = None;
                        previous = Previous::default();
                        if let Some(old) = peer.take() {
                            let _ = old.close().await;
                        }
                    }
                    _ => {}
                }
                let end = if let SignalEvent::Ended(why) = &event { Some(why.clone()) } else { None };
                let _ = events.send(CallEvent::Signaling(event));
                if let Some(why) = end {
                    break why;
                }
            }
            event = peer_rx.recv() => {
                let Some(event) = event else { continue };
                match event {
                    PeerEvent::Candidate(c) => signaling.signal(c.to_payload()),
                    PeerEvent::NoCandidates => {
                        let bridges = peer.as_ref().map(|p| p.turn_bridge_errors()).unwrap_or_default();
                        let why = no_candidates_reason(&ice_servers, config.relay_only, &bridges);
                        let _ = events.send(CallEvent::Error(why));
                    }
                    PeerEvent::State(state) => {
                        use webrtc::peer_connection::RTCPeerConnectionState as S;
                        match state {
                            S::Connected if media.is_none() => {
                                if let Some(p) = &peer {
                                    let codec = p.video_codec().await.unwrap_or_default();
                                    match start_media(&config, codec, p, &switches, &events, keyframe_tx.clone()) {
                                        Ok(m) => {
                                            media = Some(m);
                                            let _ = events.send(CallEvent::Connected);
                                            if let Some(code) = p.verification_code().await {
                                                let _ = events.send(CallEvent::VerificationCode(code));
                                            }
                                        }
                                        Err(e) => { let _ = events.send(CallEvent::Warning(e)); }
                                    }
                                }
                            }
                            S::Connected if reconnecting => {
                                reconnecting = false;
                                next_restart = None;
                                let _ = events.send(CallEvent::Reconnected);
                            }
                            // The path went quiet: say so, and unless it comes back by itself
                            // (a short outage: the same pair resumes), the offerer restarts ICE.
                            S::Disconnected | S::Failed if media.is_some() && !reconnecting => {
                                reconnecting = true;
                                let _ = events.send(CallEvent::Reconnecting);
                                if we_offered {
                                    next_restart = Some(tokio::time::Instant::now() + ICE_RESTART_AFTER);
                                }
                            }
                            // Still reconnecting: the restarts go on.
                            S::Disconnected | S::Failed if media.is_some() => {}
                            S::Failed | S::Closed => {
                                let _ = events.send(CallEvent::Disconnected(state.to_string()));
                            }
                            _ => {}
                        }
                    }
                    PeerEvent::Video { codec, data, lost_before, rtp_timestamp, repaired } => {
                        if let Some(m) = &media {
                            m.counters
                                .packets_given_up
                                .fetch_add(u64::from(lost_before), Ordering::Relaxed);
                            let _ = m.to_decoder.send((codec, data, rtp_timestamp, repaired));
                        }
                    }
                    PeerEvent::DataOpen => {
                        data_open = true;
                        if let Some(p) = &peer {
                            send_message(p, &media_state(&switches)).await;
                            for message in outbox.drain(..) {
                                send_message(p, &message).await;
                            }
                            for (id, name, data) in pending_files.drain(..) {
                                start_send(p, id, name, data, &mut sending, &events).await;
                            }
                        }
                    }
                    PeerEvent::Data(text) => match serde_json::from_str::<DataMessage>(&text) {
                        Ok(DataMessage::Chat { id, text }) => {
                            if let Some(p) = &peer {
                                send_message(p, &DataMessage::Receipt { id: id.clone() }).await;
                            }
                            let _ = events.send(CallEvent::Chat { id, text });
                        }
                        Ok(DataMessage::Receipt { id }) => {
                            let _ = events.send(CallEvent::ChatDelivered { id });
                        }
                        Ok(DataMessage::Media { muted, camera }) => {
                            peer_camera = camera;
                            let _ = events.send(CallEvent::PeerMedia { muted, camera });
                        }
                        Ok(DataMessage::Bye { reason }) => {
                            let _ = events.send(CallEvent::PeerHungUp(reason));
                        }
                        Ok(DataMessage::FileOffer { id, name, size, sha256 }) => {
                            let limit = match switches.file_limit.load(Ordering::Relaxed) {
                                0 => transfer::DEFAULT_LIMIT,
                                n => n,
                            };
                            if size > limit {
                                let reason = format!("{size} bytes is more than the {limit} accepted");
                                if let Some(p) = &peer {
                                    send_message(p, &DataMessage::FileCancel { id, reason: reason.clone() }).await;
                                }
                                let _ = events.send(CallEvent::TransferCancelled { id, reason });
                            } else {
                                incoming.offer(id, name, size, sha256);
                                let _ = events.send(CallEvent::TransferProgress { id, incoming: true, done: 0, total: size });
                            }
                        }
                        Ok(DataMessage::FileCancel { id, reason }) => {
                            if let Some(flag) = sending.remove(&id) {
                                flag.store(true, Ordering::Relaxed);
                            }
                            incoming.cancel(id);
                            let _ = events.send(CallEvent::TransferCancelled { id, reason });
                        }
                        Ok(DataMessage::FileResult { id, ok }) => {
                            sending.remove(&id);
                            let _ = events.send(CallEvent::TransferDone { id, verified: ok });
                        }
                        Err(e) => {
                            let _ = events.send(CallEvent::Warning(format!("data channel: {e}")));
                        }
                    },
                    PeerEvent::Binary(frame) => {
                        let Some((id, chunk)) = transfer::parse_chunk(&frame) else { continue };
                        match incoming.chunk(id, chunk) {
                            transfer::ChunkOutcome::Unknown => {}
                            transfer::ChunkOutcome::Progress(done) => {
                                // Every MiB, not every chunk.
                                if done % (1 << 20) < chunk.len() as u64 {
                                    let total = incoming.size_of(id).unwrap_or_default();
                                    let _ = events.send(CallEvent::TransferProgress { id, incoming: true, done, total });
                                }
                            }
                            transfer::ChunkOutcome::Overflow => {
                                let reason = "more data than offered".to_owned();
                                if let Some(p) = &peer {
                                    send_message(p, &DataMessage::FileCancel { id, reason: reason.clone() }).await;
                                }
                                let _ = events.send(CallEvent::TransferCancelled { id, reason });
                            }
                            transfer::ChunkOutcome::Complete(ok) => {
                                if let Some(file) = incoming.take(id) {
                                    if let Some(p) = &peer {
                                        send_message(p, &DataMessage::FileResult { id, ok }).await;
                                    }
                                    let _ = events.send(CallEvent::FileReceived {
                                        id,
                                        name: file.name,
                                        data: file.data.freeze(),
                                        verified: ok,
                                    });
                                }
                            }
                        }
                    }
                    PeerEvent::Audio { seq, data } => {
                        if let Some(m) = &media {
                            let arrival = m.epoch.elapsed().as_micros() as u64;
                            m.playout.lock().unwrap_or_else(|e| e.into_inner()).push(seq, data.to_vec(), arrival);
                        }
                    }
                }
            }
            Some(()) = keyframe_rx.recv() => {
                if let Some(p) = &peer {
                    p.request_keyframe().await;
                }
            }
            _ = stats_tick.tick() => {
                if let (Some(p), Some(m)) = (&peer, &mut media) {
                    let net = p.network_stats().await;
                    let remote_loss = net.remote_fraction_lost;
                    // The far side reports per packet (transport-wide feedback) while
                    // `transport_loss` is there.
                    let transport_loss = net.transport_loss;
                    // Opus's in-band FEC, sized to the loss the far side sees (transport-wide
                    // when it reports per packet, else its receiver reports).
                    let seen = transport_loss.unwrap_or(0.0).max(remote_loss.unwrap_or(0.0));
                    let fec = &m.counters.audio_fec_loss_pct;
                    fec.store(crate::rate::audio_fec_loss(fec.load(Ordering::Relaxed), seen), Ordering::Relaxed);
                    // And video FEC, sized to the same loss and the round trip.
                    m.fec_loss = crate::fec::held_loss(m.fec_loss, seen);
                    if let Some(rtt_ms) = net.rtt_ms {
                        m.protection.store(crate::fec::repair_per_ten(m.fec_loss, rtt_ms), Ordering::Relaxed);
                    }
                    if let Some(s) = stats(net, m, &mut previous, peer_camera) {
                        // That feedback drives the rate as it arrives (crate::estimate); without
                        // it, the receiver-report controller decides once a second. The video
                        // sender follows either.
                        if transport_loss.is_some() {
                            m.controller.set_rate(m.bandwidth.load(Ordering::Relaxed) as f64 / 1e3);
                        } else {
                            let allowed = m.controller.update(remote_loss, s.rtt_ms, s.send_kbps);
                            m.bandwidth.store((allowed * 1000.0) as u64, Ordering::Relaxed);
                        }
                        let _ = events.send(CallEvent::Stats(Box::new(s)));
                    }
                } else {
                    previous = Previous::default();
                }
            }
            command = commands.recv() => match command {
                Some(Command::Admit(guest)) => signaling.admit(&guest),
                Some(Command::Deny(guest)) => signaling.deny(&guest, Some("the host declined")),
                Some(Command::Chat(message)) => match &peer {
                    Some(p) if data_open && send_message(p, &message).await => {}
                    _ => outbox.push(message),
                },
                Some(Command::SendFile { id, name, data }) => match &peer {
                    Some(p) if data_open => {
                        start_send(p, id, name, data, &mut sending, &events).await;
                    }
                    // Before the data channel is open: it goes out when it opens.
                    _ => pending_files.push((id, name, data)),
                },
                Some(Command::RestartIce) => restart_ice(peer.as_deref(), &mut signaling, &events).await,
                Some(Command::CancelTransfer(id)) => {
                    let reason = "cancelled".to_owned();
                    let ours = sending.remove(&id);
                    if let Some(flag) = &ours {
                        flag.store(true, Ordering::Relaxed);
                    }
                    if ours.is_some() || incoming.cancel(id).is_some() {
                        if let Some(p) = &peer {
                            send_message(p, &DataMessage::FileCancel { id, reason: reason.clone() }).await;
                        }
                        let _ = events.send(CallEvent::TransferCancelled { id, reason });
                    }
                }
                Some(Command::MediaState) => {
                    if let Some(p) = &peer && data_open {
                        send_message(p, &media_state(&switches)).await;
                    }
                }
                Some(Command::HangUp) | None => {
                    if let Some(p) = &peer && data_open {
                        send_message(p, &DataMessage::Bye { reason: "hung up".into() }).await;
                        p.flush_data(Duration::from_millis(500)).await;
                    }
                    signaling.leave();
                    break "hung up".to_owned();
                }
            },
        }
    };
    drop(media);
    if let Some(p) = peer {
        let _ = p.close().await;
    }
    let _ = events.send(CallEvent::Ended(ended));
}
