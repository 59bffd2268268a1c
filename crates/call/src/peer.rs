//! The WebRTC side of a call, on webrtc-rs 0.21.1 behind Confer's own types: a peer
//! connection with one video (VP8 or H.264) and one Opus audio track each way, offer/answer and trickle
//! ICE as JSON that browsers speak too, encoded frames in, RTP out, and received RTP assembled
//! into whole frames on tasks of their own (never inside the track's poll loop) and handed to
//! the caller's channel.
//!
//! Signal payloads (relayed by confer-signal, opaque to it): `{"type":"offer"|"answer",
//! "sdp":…}` (RTCSessionDescription's JSON) and `{"type":"candidate","candidate":{…}}` (an
//! RTCIceCandidateInit: `candidate`, `sdpMid`, `sdpMLineIndex`, `usernameFragment`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_FLEX_FEC03, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::TrackLocalEvent;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder, configure_rtcp_reports,
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use webrtc::rtp_transceiver::RtpSender;

use rtc::interceptor::{
    Attribute, CongestionControlBuilder, NackResponderBuilder, Packet, Slot, TaggedPacket,
    TwccSenderBuilder,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use confer_media::VideoCodec;
use confer_protocol::{IceServer, SignalPayload};
use rtc::rtp::packetizer::Packetizer;

use crate::assembler::FrameAssembler;
use crate::belt::OnBelt;
use crate::twcc::WithRepairStreams;

/// A failure of the WebRTC layer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// webrtc-rs refused something.
    #[error("WebRTC: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// A signal payload that is not ours.
    #[error("bad signal payload: {0}")]
    Payload(String),
    /// A TURN server over TCP or TLS that cannot be set up (its CA certificates, say).
    #[error("TURN over TCP/TLS: {0}")]
    TurnBridge(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, PeerError>;

/// A signal payload of the call (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Signal {
    /// The initiator's offer.
    Offer {
        /// SDP.
        sdp: String,
    },
    /// The answer.
    Answer {
        /// SDP.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate.
        candidate: RTCIceCandidateInit,
    },
}

impl Signal {
    /// As a payload for confer-signal.
    pub fn to_payload(&self) -> SignalPayload {
        SignalPayload::from_json(&serde_json::to_string(self).expect("signals serialize"))
            .expect("a JSON object")
    }

    /// From a payload; other payloads (chat over signaling is not a thing) are refused.
    pub fn from_payload(payload: &SignalPayload) -> Result<Self> {
        serde_json::from_str(payload.as_str()).map_err(|e| PeerError::Payload(e.to_string()))
    }
}

/// What the peer connection reports.
#[derive(Debug)]
pub enum PeerEvent {
    /// A local candidate to send to the other side.
    Candidate(Signal),
    /// Gathering ended without a single candidate: in relay-only mode, the TURN server gave
    /// no relay address.
    NoCandidates,
    /// The connection state changed.
    State(RTCPeerConnectionState),
    /// A whole received video frame (and whether packets were lost before it).
    Video {
        /// Its codec.
        codec: VideoCodec,
        /// The bitstream of one frame (H.264: Annex B).
        data: Bytes,
        /// RTP timestamp (90 kHz).
        rtp_timestamp: u32,
        /// Packets lost since the previous frame.
        lost_before: u16,
        /// Whether it waited for a repair ([`crate::assembler::Frame::repaired`]).
        repaired: bool,
    },
    /// The data channel (chat, control) is open.
    DataOpen,
    /// A text message on the data channel.
    Data(String),
    /// A binary message on the data channel (file chunks).
    Binary(Bytes),
    /// A received Opus packet (20 ms) with its RTP sequence number.
    Audio {
        /// Sequence number (for the jitter buffer).
        seq: u16,
        /// The Opus packet.
        data: Bytes,
    },
}

struct Handler {
    events: mpsc::UnboundedSender<PeerEvent>,
    /// Candidates gathered in this ICE generation, and whether finding none was reported.
    gathering: Arc<Gathering>,
    /// Relay-only: candidates leave without their related address.
    relay_only: bool,
    data: Arc<Mutex<Option<Arc<dyn DataChannel>>>>,
    remote_video: RemoteVideo,
    payload_types: PayloadTypes,
    rtt: Rtt,
    keyframe_requests: Arc<KeyframeRequestLimit>,
}

#[derive(Debug, Default)]
struct Gathering {
    gathered: std::sync::atomic::AtomicU32,
    generation: std::sync::atomic::AtomicU32,
    reported: AtomicBool,
}

impl Gathering {
    /// Relay-only: reports [`PeerEvent::NoCandidates`] if `generation` has gathered nothing
    /// after [`RELAY_PATIENCE`].
    fn watch(self: &Arc<Self>, generation: u32, events: mpsc::UnboundedSender<PeerEvent>) {
        let g = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(RELAY_PATIENCE).await;
            if g.generation.load(Ordering::Acquire) == generation {
                g.report_if_none(&events);
            }
        });
    }

    /// Reports [`PeerEvent::NoCandidates`] once per generation, if none was gathered.
    fn report_if_none(&self, events: &mpsc::UnboundedSender<PeerEvent>) {
        if self.gathered.load(Ordering::Relaxed) == 0 && !self.reported.swap(true, Ordering::AcqRel)
        {
            let _ = events.send(PeerEvent::NoCandidates);
        }
    }
}

/// In relay-only mode, how long gathering may go without a relay candidate before the user is
/// told why there is none. A TURN allocation takes a round trip or two; webrtc-rs itself only
/// gives up on an unanswered server (UDP blocked, say) after its retransmissions, about 40 s.
pub const RELAY_PATIENCE: Duration = Duration::from_secs(8);

/// The last round-trip time measured, µs (0: none yet); the assembler sizes its wait by it.
type Rtt = Arc<std::sync::atomic::AtomicU32>;

/// The video codecs of the remote description by RTP payload type, in its order.
type PayloadTypes = Arc<std::sync::RwLock<Vec<(u8, VideoCodec)>>>;

/// The video payload types of an SDP that Confer can decode, in the order of its `m=video`
/// line (the writer's preference): VP8, and H.264 in packetization mode 1 with a baseline
/// profile (what OpenH264 speaks). Both sides of a session use the offer's numbers, so the
/// remote description tells what arriving packets carry and what to send with.
pub fn video_payload_types(sdp: &str) -> Vec<(u8, VideoCodec)> {
    let attribute = |name: &str, pt: &str| {
        sdp.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(name)?.strip_prefix(pt)?;
            rest.strip_prefix(' ').map(str::to_owned)
        })
    };
    let Some(order) = sdp
        .lines()
        .find_map(|line| line.trim().strip_prefix("m=video "))
    else {
        return Vec::new();
    };
    order
        .split_whitespace()
        .skip(2) // port, protocol
        .filter_map(|pt| {
            let rtpmap = attribute("a=rtpmap:", pt)?;
            let (name, clock) = rtpmap.split_once('/')?;
            let codec = VideoCodec::from_name(name).filter(|_| clock.starts_with("90000"))?;
            if codec == VideoCodec::H264 {
                let fmtp = attribute("a=fmtp:", pt).unwrap_or_default();
                let has = |p: &str| fmtp.split(';').any(|kv| kv.trim().eq_ignore_ascii_case(p));
                let baseline = fmtp.split(';').any(|kv| {
                    kv.trim()
                        .strip_prefix("profile-level-id=")
                        .is_some_and(|id| id.to_ascii_lowercase().starts_with("42"))
                });
                if !has("packetization-mode=1") || !baseline {
                    return None;
                }
            }
            Some((pt.parse().ok()?, codec))
        })
        .collect()
}

/// [`video_payload_types`] of the remote description that the local one also lists (both
/// sides of a session use the offer's numbers).
pub fn negotiated_payload_types(remote: &str, local: &str) -> Vec<(u8, VideoCodec)> {
    let ours = video_payload_types(local);
    video_payload_types(remote)
        .into_iter()
        .filter(|pair| ours.contains(pair))
        .collect()
}

/// The remote video track and its SSRC, for keyframe requests.
type RemoteVideo = Arc<Mutex<Option<(Arc<dyn TrackRemote>, u32)>>>;

/// The label of Confer's one data channel (ordered, reliable): chat, receipts, control.
pub const DATA_CHANNEL: &str = "confer";

/// Delivers a data channel's open and text messages as events.
async fn serve_data(channel: Arc<dyn DataChannel>, events: mpsc::UnboundedSender<PeerEvent>) {
    while let Some(event) = channel.poll().await {
        let event = match event {
            DataChannelEvent::OnOpen => PeerEvent::DataOpen,
            DataChannelEvent::OnMessage(msg) if msg.is_string => {
                match String::from_utf8(msg.data.to_vec()) {
                    Ok(text) => PeerEvent::Data(text),
                    Err(_) => continue,
                }
            }
            DataChannelEvent::OnMessage(msg) => PeerEvent::Binary(msg.data.freeze()),
            DataChannelEvent::OnClose => break,
            _ => continue,
        };
        if events.send(event).is_err() {
            break;
        }
    }
}

/// Lets the far side's keyframe requests (PLI, FIR) through to the application. webrtc-rs's
/// default chain ends inbound RTCP inside the interceptors, so without this a receiver that
/// lost a keyframe would wait forever. Everything else inbound is left to the interceptors
/// before it (registered last, it sees what they saw).
struct KeyframeRequests;

impl crate::belt::Stage for KeyframeRequests {
    fn read(&mut self, mut msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if wanted.is_empty() {
                return;
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        out.push_back(msg);
    }
}

/// Keyframe requests the far side sent for our video, for the encoder to answer.
#[derive(Debug, Default)]
pub struct KeyframeFlag {
    wanted: AtomicBool,
    received: AtomicU64,
}

impl KeyframeFlag {
    /// Whether a keyframe was asked for since the last call (clears it).
    pub fn take(&self) -> bool {
        self.wanted.swap(false, Ordering::AcqRel)
    }

    /// Requests received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        match state {
            RTCIceGatheringState::Gathering => {
                let g = &self.gathering;
                g.gathered.store(0, Ordering::Relaxed);
                g.reported.store(false, Ordering::Relaxed);
                let generation = g.generation.fetch_add(1, Ordering::AcqRel) + 1;
                if self.relay_only {
                    g.watch(generation, self.events.clone());
                }
            }
            RTCIceGatheringState::Complete => self.gathering.report_if_none(&self.events),
            _ => {}
        }
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        self.gathering.gathered.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut candidate) = event.candidate.to_json() {
            if self.relay_only {
                candidate.candidate = without_related_address(&candidate.candidate);
            }
            let _ = self
                .events
                .send(PeerEvent::Candidate(Signal::Candidate { candidate }));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        if channel.label().await.ok().as_deref() != Some(DATA_CHANNEL) {
            return;
        }
        *self.data.lock().await = Some(Arc::clone(&channel));
        tokio::spawn(serve_data(channel, self.events.clone()));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await == RtpCodecKind::Video {
            let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
            *self.remote_video.lock().await = Some((Arc::clone(&track), ssrc));
        }
        let events = self.events.clone();
        tokio::spawn(receive(
            track,
            events,
            Arc::clone(&self.payload_types),
            Arc::clone(&self.rtt),
            Arc::clone(&self.keyframe_requests),
        ));
    }
}

/// Asks the sender of `track` (its SSRC `ssrc`) for a keyframe.
async fn send_pli(track: &dyn TrackRemote, ssrc: u32) {
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc: ssrc,
    };
    let _ = track.write_rtcp(vec![Box::new(pli)]).await;
}

/// Reads a remote track: RTP straight off the poll loop into a channel; a second task builds
/// frames (video) or passes packets on (audio).
async fn receive(
    track: Arc<dyn TrackRemote>,
    events: mpsc::UnboundedSender<PeerEvent>,
    payload_types: PayloadTypes,
    rtt: Rtt,
    keyframe_requests: Arc<KeyframeRequestLimit>,
) {
    let kind = track.kind().await;
    let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let assembler = tokio::spawn({
        let track = Arc::clone(&track);
        async move {
            let mut assembler = FrameAssembler::new(VideoCodec::Vp8);
            while let Some(packet) = rx.recv().await {
                let packet: rtc::rtp::Packet = packet;
                if kind == RtpCodecKind::Audio {
                    let _ = events.send(PeerEvent::Audio {
                        seq: packet.header.sequence_number,
                        data: packet.payload.clone(),
                    });
                    continue;
                }
                let pt = packet.header.payload_type;
                let codec = payload_types
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .find_map(|&(p, c)| (p == pt).then_some(c));
                let Some(codec) = codec else {
                    continue; // not a codec of ours (padding, an unnegotiated type)
                };
                if codec != assembler.codec() {
                    assembler = FrameAssembler::new(codec);
                }
                assembler.set_max_wait(crate::nack::repair_wait(rtt.load(Ordering::Relaxed)));
                for frame in assembler.push(&packet) {
                    // Lost packets: the decoder's reference is gone; ask for a keyframe (once per
                    // KEYFRAME_INTERVAL: the first answer repairs every loss before it).
                    if frame.lost_before > 0 && keyframe_requests.allow(Instant::now()) {
                        send_pli(&*track, ssrc).await;
                    }
                    let _ = events.send(PeerEvent::Video {
                        codec,
                        data: frame.data,
                        rtp_timestamp: frame.rtp_timestamp,
                        lost_before: frame.lost_before,
                        repaired: frame.repaired,
                    });
                }
            }
        }
    });
    while let Some(event) = track.poll().await {
        let sent = match event {
            // Opus packets pass whole; video frames are assembled on the other task.
            TrackRemoteEvent::OnRtpPacket(packet) => tx.send(packet).is_ok(),
            TrackRemoteEvent::OnEnded => false,
            _ => true,
        };
        if !sent {
            break;
        }
    }
    drop(tx);
    let _ = assembler.await;
}

/// Transport-level counters from webrtc-rs's stats, cumulative.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkStats {
    /// Round-trip time of the selected candidate pair (STUN consent checks), ms.
    pub rtt_ms: Option<f64>,
    /// Bytes sent and received on the selected pair.
    pub bytes_sent: u64,
    /// Bytes received on the selected pair.
    pub bytes_received: u64,
    /// RTP packets received on all inbound streams.
    pub packets_received: u64,
    /// RTP packets lost on all inbound streams (RFC 3550 cumulative).
    pub packets_lost: i64,
    /// Largest inbound interarrival jitter, ms.
    pub jitter_ms: f64,
    /// The local candidate type of the selected pair: `host`, `srflx`, `prflx` or `relay`.
    pub path: Option<String>,
    /// The largest fraction (0..1) of our packets the other side reported lost in its last
    /// receiver report, over our outbound streams.
    pub remote_fraction_lost: Option<f64>,
    /// Retransmissions not sent so far because they were over budget
    /// ([`crate::rate::RetransmissionBudget`]).
    pub retransmissions_dropped: u64,
    /// Retransmissions sent on the RTX stream so far.
    pub rtx_sent: u64,
    /// Retransmissions received on the RTX stream so far.
    pub rtx_received: u64,
    /// Video repair packets (FEC) sent so far.
    pub fec_sent: u64,
    /// Video packets the far side's repair packets rebuilt here so far.
    pub fec_recovered: u64,
    /// The queue on the path towards the other side, ms, from its transport-wide feedback
    /// (`None` while it sends none).
    pub send_queue_ms: Option<f64>,
    /// The fraction (0..1) of our packets lost over the last second, from that feedback
    /// (`None` while it sends none).
    pub transport_loss: Option<f64>,
    /// Times the send rate was cut for queueing so far.
    pub delay_cuts: u64,
    /// Times the send rate was cut for loss so far.
    pub loss_cuts: u64,
}

/// The outgoing audio track with its negotiated payload type.
struct Outgoing {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    payload_type: Mutex<Option<u8>>,
}

impl Outgoing {
    async fn write(&self, data: Bytes, duration: Duration) -> Result<()> {
        let mut pt = self.payload_type.lock().await;
        if pt.is_none() {
            let params = self.sender.get_parameters().await?;
            *pt = params.rtp_parameters.codecs.first().map(|c| c.payload_type);
        }
        let Some(payload_type) = *pt else {
            return Ok(()); // not negotiated (yet): nothing to send to
        };
        self.track
            .sample_writer(self.ssrc, payload_type)
            .write_sample(&Sample {
                data,
                duration,
                ..Sample::new(Instant::now())
            })
            .await?;
        Ok(())
    }
}

/// How often ICE runs its connectivity checks while connecting. webrtc-rs's 200 ms puts every
/// step (a check for a trickled candidate, the nomination after it) on the next tick, which
/// made set-up take 200–400 ms on loopback; 50 ms is RFC 8445's pacing (Ta) and Chromium's.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// A candidate line with its related address blanked (`raddr 0.0.0.0 rport 0`). A relay
/// candidate's related address is the machine's own (server-reflexive or host) address, which
/// relay-only mode exists to keep from the other side; browsers blank it the same way.
fn without_related_address(line: &str) -> String {
    let mut parts: Vec<&str> = line.split(' ').collect();
    for i in 0..parts.len().saturating_sub(1) {
        match parts[i] {
            "raddr" => parts[i + 1] = "0.0.0.0",
            "rport" => parts[i + 1] = "0",
            _ => {}
        }
    }
    parts.join(" ")
}

/// The least time between two keyframe requests we send, and between two keyframes we send
/// on request: a keyframe is many times the size of a frame, and on a congested path a stream
/// of them is what keeps the queue full.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// The one limit on the keyframe requests we send, whatever the reason (packets lost for good
/// in the assembler, a frame the decoder refused): at most one per [`KEYFRAME_INTERVAL`], as
/// the first answer repairs every loss before it.
#[derive(Debug, Default)]
struct KeyframeRequestLimit(std::sync::Mutex<Option<Instant>>);

impl KeyframeRequestLimit {
    /// Whether a request may go now (and, if so, counts it as sent).
    fn allow(&self, now: Instant) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Silence on the selected pair (no media, no keepalive answers) after which the connection
/// counts as disconnected and the call as reconnecting (webrtc-rs: 5 s).
pub const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(2);

/// Checks per candidate pair before it is given up: 1.4 s, as webrtc-rs's default (7 × 200 ms).
const ICE_CHECKS_PER_PAIR: u16 = 28;

/// Largest RTP packet sent (as webrtc-rs's sample track: room for SRTP and TURN headers).
const RTP_MTU: usize = 1_200;

/// The outgoing video track. It packetizes itself, with one packetizer per codec on one
/// sequence of numbers, because webrtc-rs's sample track fixes its codec when it is made,
/// before negotiation has said which codecs the other side takes.
struct VideoOut {
    track: Arc<TrackLocalStaticRTP>,
    packetizers: Mutex<HashMap<VideoCodec, Box<dyn Packetizer>>>,
    /// RTP timestamps from capture times, shared by both codecs (they share the SSRC).
    clock: std::sync::Mutex<RtpClock>,
    /// The remote description's video codecs.
    remote: PayloadTypes,
}

/// A video frame's RTP timestamp (90 kHz) from its capture time, as browsers stamp camera
/// frames: a frame the encoder dropped or the ladder skipped leaves its gap in the timestamps,
/// so the far side's playout (ours in `crate::render`, a browser's jitter buffer) sees the
/// frames' real spacing. Stamping each sent frame one frame interval after the last instead
/// made the sender's clock run slow whenever frames were dropped, which a receiver reads as
/// every frame arriving later than the one before: a playout delay that only grows.
#[derive(Debug, Default)]
struct RtpClock {
    /// (capture µs, RTP timestamp) the others count from.
    anchor: Option<(u64, u32)>,
    /// The last frame's (capture µs, RTP timestamp).
    last: Option<(u64, u32)>,
}

impl RtpClock {
    /// One frame interval at 30 fps, for a capture clock that went backwards.
    const STEP: u32 = 3_000;

    /// The timestamp of a frame captured at `capture_us`; the first frame gets `start`.
    /// Timestamps only move forward: a capture clock that steps back (a new source) carries
    /// on one frame interval after the last.
    fn stamp(&mut self, capture_us: u64, start: u32) -> u32 {
        if let Some((last_us, last_rtp)) = self.last
            && capture_us <= last_us
        {
            self.anchor = Some((capture_us, last_rtp.wrapping_add(Self::STEP)));
        }
        let (anchor_us, anchor_rtp) = *self.anchor.get_or_insert((capture_us, start));
        let ticks = (capture_us - anchor_us) * 9 / 100;
        let rtp = anchor_rtp.wrapping_add(ticks as u32);
        self.last = Some((capture_us, rtp));
        rtp
    }
}

impl VideoOut {
    /// The codec to send and its payload type: the first one of ours in the remote
    /// description, which is what the other side prefers to receive (RFC 3264: send the first
    /// format of the peer's list). webrtc-rs keeps a sender's codec list as the local
    /// preference and does not narrow it to what was negotiated, so this reads the remote
    /// description.
    fn negotiated(&self) -> Option<(VideoCodec, u8)> {
        let remote = self.remote.read().unwrap_or_else(|e| e.into_inner());
        remote.first().map(|&(pt, codec)| (codec, pt))
    }

    async fn write(&self, codec: VideoCodec, data: Bytes, capture_us: u64) -> Result<()> {
        let Some(payload_type) = self
            .negotiated()
            .filter(|(c, _)| *c == codec)
            .map(|(_, pt)| pt)
        else {
            return Ok(()); // not negotiated (yet), or not this codec: nothing to send to
        };
        let packets = {
            let mut packetizers = self.packetizers.lock().await;
            let packetizer = packetizers.get_mut(&codec).expect("one per codec");
            packetizer.packetize(Instant::now(), &data, 0)?
        };
        let Some(first) = packets.first() else {
            return Ok(());
        };
        let timestamp = self
            .clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stamp(capture_us, first.header.timestamp);
        for mut packet in packets {
            packet.header.payload_type = payload_type;
            packet.header.timestamp = timestamp;
            self.track.write_rtp_with_extensions(packet, &[]).await?;
        }
        Ok(())
    }
}

fn video_mime(codec: VideoCodec) -> String {
    match codec {
        VideoCodec::Vp8 => MIME_TYPE_VP8.to_owned(),
        VideoCodec::H264 => MIME_TYPE_H264.to_owned(),
    }
}

/// One peer connection.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    remote_video: RemoteVideo,
    payload_types: PayloadTypes,
    /// The remote description's RTX payload types.
    rtx_types: crate::rtx::RtxTypes,
    /// What RTX did.
    rtx: Arc<crate::rtx::RtxCounters>,
    /// Video repair packets per ten media packets, and what FEC did.
    protection: crate::fec::Protection,
    fec: Arc<crate::fec::FecCounters>,
    data: Arc<Mutex<Option<Arc<dyn DataChannel>>>>,
    keyframes: Arc<KeyframeFlag>,
    video: VideoOut,
    audio: Outgoing,
    /// The last round-trip time, for the assembler.
    rtt: Rtt,
    /// The keyframe requests we send, limited.
    keyframe_requests: Arc<KeyframeRequestLimit>,
    /// The send rate the congestion controller allows, bit/s.
    bandwidth: Arc<std::sync::atomic::AtomicU64>,
    /// What the feedback estimator last knew.
    estimate: Arc<std::sync::Mutex<crate::estimate::Snapshot>>,
    /// Local bridges to TURN servers over TCP or TLS; they close with the peer.
    turn_bridges: Vec<crate::turn_tcp::Bridge>,
    /// Retransmissions not sent for want of budget.
    retransmissions_dropped: Arc<std::sync::atomic::AtomicU64>,
    /// Candidates that arrived before the remote description.
    early: Mutex<Vec<RTCIceCandidateInit>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").finish_non_exhaustive()
    }
}

fn feedback(typ: &str, parameter: &str) -> RTCPFeedback {
    RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    }
}

/// Opus: 48 kHz, in-band FEC on.
fn audio_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![feedback("transport-cc", "")],
        },
        payload_type: 111,
    }
}

/// A video codec with keyframe requests, NACK and transport-wide congestion feedback. H.264 is
/// constrained baseline 3.1 in packetization mode 1, as browsers offer it.
fn video_codec(codec: VideoCodec) -> RTCRtpCodecParameters {
    let (payload_type, fmtp) = match codec {
        VideoCodec::Vp8 => (96, ""),
        VideoCodec::H264 => (
            102,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: video_mime(codec),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback: vec![
                feedback("ccm", "fir"),
                feedback("nack", ""),
                feedback("nack", "pli"),
                feedback("transport-cc", ""),
            ],
        },
        payload_type,
    }
}

/// Video FEC: FlexFEC draft-03 (what browsers call `video/flexfec-03`), repairing whichever
/// video codec is sent, since it protects packets by SSRC.
fn flexfec_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_FLEX_FEC03.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            // The window (µs) a repair packet may refer back over, as browsers offer it.
            sdp_fmtp_line: "repair-window=10000000".into(),
            rtcp_feedback: Vec::new(),
        },
        payload_type: FLEXFEC_PAYLOAD_TYPE,
    }
}

/// The FlexFEC payload type (dynamic, clear of the codecs' and RTX's).
const FLEXFEC_PAYLOAD_TYPE: u8 = 125;

/// The RTX format (RFC 4588) that carries `codec`'s retransmissions: the codec's payload type
/// plus one, as browsers number them.
fn rtx_codec(codec: VideoCodec) -> RTCRtpCodecParameters {
    let media = video_codec(codec).payload_type;
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("apt={media}"),
            rtcp_feedback: Vec::new(),
        },
        payload_type: media + 1,
    }
}

/// A local track's description: its own SSRC and an id unlike the far side's. Track ids must
/// differ from the far side's: webrtc-rs routes inbound RTCP by track id and tries received
/// tracks first, so two peers both naming their video "confer-video" would deliver every PLI
/// for our video to our own receiver instead of our encoder.
fn local_track(kind: RtpCodecKind, codec: RTCRtpCodec) -> (MediaStreamTrack, u32) {
    let ssrc = rand::random::<u32>();
    let name = if kind == RtpCodecKind::Audio {
        "audio"
    } else {
        "video"
    };
    let id = format!("confer-{name}-{ssrc:08x}");
    let track = MediaStreamTrack::new(
        format!("confer-{ssrc:08x}"),
        id.clone(),
        id,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    (track, ssrc)
}

async fn audio_out(pc: &Arc<dyn PeerConnection>) -> Result<Outgoing> {
    let (description, ssrc) = local_track(RtpCodecKind::Audio, audio_codec().rtp_codec);
    let track = Arc::new(TrackLocalStaticSample::new(Instant::now(), description)?);
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await?;
    Ok(Outgoing {
        track,
        sender,
        ssrc,
        payload_type: Mutex::new(None),
    })
}

/// The video track, offering/accepting `order` (preferred first). Must be the connection's
/// first transceiver.
async fn video_out(
    pc: &Arc<dyn PeerConnection>,
    order: [VideoCodec; 2],
    remote: PayloadTypes,
) -> Result<VideoOut> {
    // The track's own codec decides which negotiated codec webrtc-rs binds the interceptors
    // (NACK, reports, congestion feedback) to, and they work by SSRC, so VP8, which every peer
    // negotiates, serves whatever is sent. It would also narrow the transceiver to VP8 alone,
    // so the codec preferences are set again right after.
    let (description, ssrc) =
        local_track(RtpCodecKind::Video, video_codec(VideoCodec::Vp8).rtp_codec);
    let sequencer: Box<dyn rtc::rtp::sequence::Sequencer> =
        Box::new(rtc::rtp::sequence::new_random_sequencer());
    let now = Instant::now();
    let mut packetizers = HashMap::new();
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let packetizer: Box<dyn Packetizer> = Box::new(rtc::rtp::packetizer::new_packetizer(
            now,
            RTP_MTU,
            0, // set per packet from the negotiation
            ssrc,
            video_codec(codec).rtp_codec.payloader()?,
            sequencer.clone(),
            90_000,
        ));
        packetizers.insert(codec, packetizer);
    }
    let track = Arc::new(TrackLocalStaticRTP::new(description));
    pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await?;
    let transceivers = pc.get_transceivers().await;
    let [transceiver] = transceivers.as_slice() else {
        unreachable!("the video transceiver is the first");
    };
    transceiver
        .set_codec_preferences(order.iter().map(|&c| video_codec(c)).collect())
        .await?;
    Ok(VideoOut {
        track,
        packetizers: Mutex::new(packetizers),
        clock: Default::default(),
        remote,
    })
}

/// How a peer connection is set up.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Where ICE candidates are gathered (loopback in tests: binding 0.0.0.0 skips loopback
    /// candidates).
    pub bind_ip: std::net::IpAddr,
    /// The video codec offered first.
    pub prefer: VideoCodec,
    /// Only TURN relay candidates are gathered and offered, so the other side never learns
    /// this machine's addresses.
    pub relay_only: bool,
    /// The most the call may send, all media, kbit/s.
    pub max_kbps: u32,
    /// Which TURN servers' certificates are accepted (over TLS).
    pub trust: crate::tls::Trust,
}

impl Peer {
    /// A peer connection using `ice_servers` (from `welcome`; TURN over TCP or TLS goes
    /// through a local bridge, [`crate::turn_tcp`]), set up as `settings` says. Events go to
    /// `events`.
    pub async fn new(
        ice_servers: &[IceServer],
        settings: &PeerSettings,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Self> {
        let PeerSettings {
            bind_ip,
            prefer,
            relay_only,
            max_kbps,
            ..
        } = *settings;
        let (ice_servers, turn_bridges) =
            crate::turn_tcp::bridge_servers(ice_servers, &settings.trust).await?;
        let data = Arc::new(Mutex::new(None));
        let remote_video: RemoteVideo = Arc::new(Mutex::new(None));
        let rtt = Rtt::default();
        let keyframe_requests = Arc::new(KeyframeRequestLimit::default());
        let payload_types = PayloadTypes::default();
        let rtx_types = crate::rtx::RtxTypes::default();
        let rtx = Arc::new(crate::rtx::RtxCounters::default());
        let protection = crate::fec::Protection::default();
        let fec = Arc::new(crate::fec::FecCounters::default());
        let mut media = MediaEngine::default();
        let order = match prefer {
            VideoCodec::Vp8 => [VideoCodec::Vp8, VideoCodec::H264],
            VideoCodec::H264 => [VideoCodec::H264, VideoCodec::Vp8],
        };
        for codec in order {
            media.register_codec(video_codec(codec), RtpCodecKind::Video)?;
        }
        for codec in order {
            media.register_codec(rtx_codec(codec), RtpCodecKind::Video)?;
        }
        // Video FEC on its own SSRC (`crate::fec`): registering it is what makes webrtc-rs
        // give the video encoding a repair SSRC and offer the `FEC-FR` group.
        media.register_codec(flexfec_codec(), RtpCodecKind::Video)?;
        media.register_codec(audio_codec(), RtpCodecKind::Audio)?;
        // webrtc-rs's default chain, but NACKs from our own generator (`crate::nack`): a lost
        // packet is asked for 5 ms after the gap shows, and again as often as the round trip
        // lets a retransmission land inside the assembler's wait (`nack::repair_wait`).
        configure_simulcast_extension_headers(&mut media)?;
        // The send rate (read by the video sender through `bandwidth`) is set by our own
        // estimator from the far side's transport-wide feedback (crate::estimate), wire-most so
        // it sees every packet that leaves, retransmissions included; with no feedback, by the
        // receiver-report controller (crate::rate). Both ways: we number what we send and
        // report what we receive, for the far side's estimator (ours or a browser's).
        let bandwidth = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let estimate = Arc::new(std::sync::Mutex::new(crate::estimate::Snapshot::default()));
        let retransmissions_dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let estimator = crate::estimate::QueueEstimator::new(
            Arc::clone(&bandwidth),
            Arc::clone(&estimate),
            f64::from(crate::rate::AUDIO_RESERVE_KBPS + crate::rate::MIN_VIDEO_KBPS) * 1e3,
            f64::from(max_kbps) * 1e3,
        );
        let registry =
            configure_rtcp_reports(configure_twcc_receiver_only(Registry::new(), &mut media)?)
                // Retransmissions and FEC repair packets numbered and recorded too
                // (crate::twcc).
                .with(
                    Slot::TwccSender,
                    WithRepairStreams::new(TwccSenderBuilder::new().build()),
                )
                .with(
                    Slot::CongestionControl,
                    WithRepairStreams::new(CongestionControlBuilder::new(estimator).build()),
                )
                .with(Slot::NackResponder, NackResponderBuilder::new().build())
                .with(
                    Slot::FecEncoder,
                    OnBelt::new(crate::fec::FecSender::new(
                        Arc::clone(&protection),
                        Arc::clone(&fec),
                    )),
                )
                .with(
                    Slot::FecDecoder,
                    OnBelt::new(crate::fec::FecReceiver::new(Arc::clone(&fec))),
                )
                // Past the transport-wide feedback, which must see the repair packets arrive.
                .with(
                    Slot::from(8_500),
                    OnBelt::new(crate::fec::FecRepairSink::default()),
                )
                .with(
                    Slot::NackGenerator,
                    OnBelt::new(crate::nack::NackRequests::new(Arc::clone(&rtt))),
                )
                .with(Slot::from(14_000), OnBelt::new(KeyframeRequests))
                // Below the NACK responder, so it sees its RTX packets on the way out; below the
                // NACK generator, so the generator sees repaired packets arrive.
                .with(
                    Slot::from(3_600),
                    OnBelt::new(crate::rtx::Rtx::new(
                        Arc::clone(&rtx_types),
                        Arc::clone(&rtx),
                    )),
                )
                // Between the pacer's place (3,000) and the NACK responder (4,000): it sees the
                // responder's retransmissions on their way to the wire.
                .with(
                    Slot::from(3_500),
                    OnBelt::new(crate::rate::RetransmissionBudget::new(
                        Arc::clone(&bandwidth),
                        Arc::clone(&retransmissions_dropped),
                    )),
                );
        let config = RTCConfigurationBuilder::new()
            .with_ice_servers(
                ice_servers
                    .iter()
                    .map(|s| RTCIceServer {
                        urls: s.urls.clone(),
                        username: s.username.clone().unwrap_or_default(),
                        credential: s.credential.clone().unwrap_or_default(),
                    })
                    .collect(),
            )
            .with_ice_transport_policy(if relay_only {
                RTCIceTransportPolicy::Relay
            } else {
                RTCIceTransportPolicy::All
            })
            .build();
        // The first generation's gathering starts with the first description; webrtc-rs does
        // not always say so (no `Gathering` state change), so relay-only watches from here.
        let gathering = Arc::new(Gathering::default());
        if relay_only {
            gathering.watch(0, events.clone());
        }
        let pc = PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_ice_connection_attempts(
                        Some(ICE_CHECK_INTERVAL),
                        Some(ICE_CHECKS_PER_PAIR),
                    )
                    .with_ice_timeouts(
                        Some(ICE_DISCONNECTED_AFTER),
                        Some(Duration::from_secs(25)),
                        Some(Duration::from_secs(1)),
                    )
                    // Gathering on every interface, an ICE restart binds afresh on the ones
                    // there are now (webrtc-rs expands the wildcard at each bind) and drops the
                    // candidates of the old sockets: after a handover the old address may be
                    // gone. On one concrete address there is nothing to move to.
                    .with_discard_local_candidates_during_ice_restart(bind_ip.is_unspecified())
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                events: events.clone(),
                gathering: Arc::clone(&gathering),
                relay_only,
                data: Arc::clone(&data),
                remote_video: Arc::clone(&remote_video),
                payload_types: Arc::clone(&payload_types),
                rtt: Arc::clone(&rtt),
                keyframe_requests: Arc::clone(&keyframe_requests),
            }))
            .with_udp_addrs(vec![format!("{bind_ip}:0")])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let video = video_out(&pc, order, Arc::clone(&payload_types)).await?;
        let audio = audio_out(&pc).await?;
        let keyframes = Arc::new(KeyframeFlag::default());
        tokio::spawn({
            let track = Arc::clone(&video.track);
            let keyframes = Arc::clone(&keyframes);
            async move {
                while let Some(TrackLocalEvent::OnRtcpPacket(packets)) = track.poll().await {
                    if !packets.is_empty() {
                        keyframes.received.fetch_add(1, Ordering::Relaxed);
                        keyframes.wanted.store(true, Ordering::Release);
                    }
                }
            }
        });
        Ok(Self {
            pc,
            remote_video,
            payload_types,
            rtx_types,
            rtx,
            protection,
            fec,
            data,
            keyframes,
            video,
            audio,
            rtt,
            keyframe_requests,
            bandwidth,
            estimate,
            retransmissions_dropped,
            turn_bridges,
            early: Mutex::new(Vec::new()),
        })
    }

    /// Creates the offer (the initiator's first move), with the data channel in it.
    pub async fn offer(&self, events: mpsc::UnboundedSender<PeerEvent>) -> Result<Signal> {
        let channel = self.pc.create_data_channel(DATA_CHANNEL, None).await?;
        *self.data.lock().await = Some(Arc::clone(&channel));
        tokio::spawn(serve_data(channel, events));
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        Ok(Signal::Offer { sdp })
    }

    /// Asks the far side for a keyframe (PLI): our decoder cannot go on without one.
    /// At most one request per [`KEYFRAME_INTERVAL`], shared with the requests sent on loss.
    pub async fn request_keyframe(&self) {
        if !self.keyframe_requests.allow(Instant::now()) {
            return;
        }
        let remote = self.remote_video.lock().await.clone();
        if let Some((track, ssrc)) = remote {
            send_pli(&*track, ssrc).await;
        }
    }

    /// Restarts ICE (new credentials, candidates gathered again) and returns the offer that
    /// carries it; the other side answers as to any offer.
    pub async fn restart_ice(&self) -> Result<Signal> {
        self.pc.restart_ice().await?;
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        Ok(Signal::Offer { sdp })
    }

    /// The ICE username fragment of our current local description.
    pub async fn local_ufrag(&self) -> Option<String> {
        let local = self.pc.local_description().await?;
        local
            .sdp
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:").map(str::to_owned))
    }

    /// Handles a signal from the other side; returns the answer to an offer.
    pub async fn on_signal(&self, signal: Signal) -> Result<Option<Signal>> {
        match signal {
            Signal::Offer { sdp } => {
                self.pc
                    .set_remote_description(RTCSessionDescription::offer(sdp.clone())?)
                    .await?;
                self.flush_candidates().await?;
                let answer = self.pc.create_answer(None).await?;
                let local = answer.sdp.clone();
                self.pc.set_local_description(answer).await?;
                self.learn_payload_types(&sdp, &local);
                Ok(Some(Signal::Answer { sdp: local }))
            }
            Signal::Answer { sdp } => {
                self.pc
                    .set_remote_description(RTCSessionDescription::answer(sdp.clone())?)
                    .await?;
                let local = self.pc.local_description().await.map(|d| d.sdp);
                self.learn_payload_types(&sdp, local.as_deref().unwrap_or_default());
                self.flush_candidates().await?;
                Ok(None)
            }
            Signal::Candidate { candidate } => {
                if self.pc.remote_description().await.is_none() {
                    self.early.lock().await.push(candidate);
                } else {
                    self.pc.add_ice_candidate(candidate).await?;
                }
                Ok(None)
            }
        }
    }

    /// The video and RTX payload types of the session: the remote description's, in its
    /// order, that the local one also has. An offer may list several variants of a codec (a
    /// browser offers four H.264 profiles, each twice), and the answer keeps one of them:
    /// sending under another, however acceptable to us, would be dropped by the other side.
    fn learn_payload_types(&self, remote: &str, local: &str) {
        *self
            .payload_types
            .write()
            .unwrap_or_else(|e| e.into_inner()) = negotiated_payload_types(remote, local);
        let ours = crate::rtx::rtx_payload_types(local);
        *self.rtx_types.write().unwrap_or_else(|e| e.into_inner()) =
            crate::rtx::rtx_payload_types(remote)
                .into_iter()
                .filter(|pair| ours.contains(pair))
                .collect();
    }

    /// The video codec we send, once negotiation has picked it.
    pub async fn video_codec(&self) -> Option<VideoCodec> {
        self.video.negotiated().map(|(c, _)| c)
    }

    async fn flush_candidates(&self) -> Result<()> {
        let early = std::mem::take(&mut *self.early.lock().await);
        for candidate in early {
            self.pc.add_ice_candidate(candidate).await?;
        }
        Ok(())
    }

    /// Sends one encoded frame of `codec` captured at `capture_us` (µs, the capture clock);
    /// nothing is sent when that codec was not negotiated.
    pub async fn send_video(&self, codec: VideoCodec, data: Bytes, capture_us: u64) -> Result<()> {
        self.video.write(codec, data, capture_us).await
    }

    /// Sends one 20 ms Opus packet.
    pub async fn send_audio(&self, data: Bytes) -> Result<()> {
        self.audio.write(data, Duration::from_millis(20)).await
    }

    /// Sends a text message on the data channel; `false` when it is not open (yet).
    pub async fn send_data(&self, text: &str) -> bool {
        let channel = self.data.lock().await.clone();
        match channel {
            Some(c) => c.send_text(text).await.is_ok(),
            None => false,
        }
    }

    /// Sends a binary message on the data channel; `false` when it is not open.
    pub async fn send_binary(&self, data: BytesMut) -> bool {
        let channel = self.data.lock().await.clone();
        match channel {
            Some(c) => c.send(data).await.is_ok(),
            None => false,
        }
    }

    /// Bytes queued on the data channel and not yet acknowledged (for back-pressure).
    pub async fn data_outstanding(&self) -> usize {
        let channel = self.data.lock().await.clone();
        match channel {
            Some(c) => c.outstanding_bytes().await.unwrap_or(0),
            None => 0,
        }
    }

    /// Waits (up to `max`) until what was sent on the data channel has left, so a last
    /// message is not cut off by closing the connection.
    pub async fn flush_data(&self, max: Duration) {
        let Some(channel) = self.data.lock().await.clone() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + max;
        while tokio::time::Instant::now() < deadline {
            match channel.outstanding_bytes().await {
                Ok(0) | Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// The verification code both people read aloud ([`crate::sas`]), once both descriptions
    /// are set.
    pub async fn verification_code(&self) -> Option<String> {
        let local = self.pc.local_description().await?;
        let remote = self.pc.remote_description().await?;
        crate::sas::from_sdp(&local.sdp, &remote.sdp)
    }

    /// Transport counters now.
    pub async fn network_stats(&self) -> NetworkStats {
        use webrtc::peer_connection::{RTCStatsReportEntry, StatsSelector};
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let mut out = NetworkStats {
            retransmissions_dropped: self.retransmissions_dropped.load(Ordering::Relaxed),
            rtx_sent: self.rtx.sent.load(Ordering::Relaxed),
            rtx_received: self.rtx.received.load(Ordering::Relaxed),
            fec_sent: self.fec.sent.load(Ordering::Relaxed),
            fec_recovered: self.fec.recovered.load(Ordering::Relaxed),
            ..NetworkStats::default()
        };
        let estimate = self.estimate();
        if estimate.fresh(Instant::now()) {
            out.send_queue_ms = Some(estimate.queue_ms);
            out.transport_loss = Some(estimate.loss);
        }
        out.delay_cuts = estimate.delay_cuts;
        out.loss_cuts = estimate.loss_cuts;
        let pair = report
            .candidate_pairs()
            .filter(|p| p.nominated)
            .max_by_key(|p| p.bytes_received + p.bytes_sent);
        if let Some(p) = pair {
            out.bytes_sent = p.bytes_sent;
            out.bytes_received = p.bytes_received;
            if p.current_round_trip_time > 0.0 {
                out.rtt_ms = Some(p.current_round_trip_time * 1000.0);
                self.rtt
                    .store((p.current_round_trip_time * 1e6) as u32, Ordering::Relaxed);
            }
            out.path = report.iter().find_map(|e| match e {
                // The entry's id is the pair's candidate id behind a type prefix.
                RTCStatsReportEntry::LocalCandidate(c)
                    if c.stats.id.ends_with(p.local_candidate_id.as_str()) =>
                {
                    Some(c.candidate_type.to_string())
                }
                _ => None,
            });
        }
        for e in report.iter() {
            if let RTCStatsReportEntry::RemoteInboundRtp(r) = e {
                out.remote_fraction_lost =
                    Some(out.remote_fraction_lost.unwrap_or(0.0).max(r.fraction_lost));
            }
        }
        for s in report.inbound_rtp_streams() {
            let r = &s.received_rtp_stream_stats;
            out.packets_received += r.packets_received;
            out.packets_lost += r.packets_lost;
            // webrtc-rs reports RFC 3550 jitter in RTP timestamp units, not seconds.
            let clock = if r.rtp_stream_stats.kind == RtpCodecKind::Audio {
                48_000.0
            } else {
                90_000.0
            };
            out.jitter_ms = out.jitter_ms.max(r.jitter / clock * 1000.0);
        }
        out
    }

    /// The far side's keyframe requests for our video.
    /// What the congestion controller allows to be sent, bit/s: written by the call's
    /// controller, read by the video sender.
    pub fn bandwidth(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.bandwidth)
    }

    /// Video repair packets per ten media packets ([`crate::fec::repair_per_ten`]): set by the
    /// call, read by the FEC sender and the video sender's rate.
    pub fn video_protection(&self) -> crate::fec::Protection {
        Arc::clone(&self.protection)
    }

    /// Why bridges to TURN over TCP/TLS could not connect, if any could not.
    pub fn turn_bridge_errors(&self) -> Vec<String> {
        self.turn_bridges.iter().filter_map(|b| b.error()).collect()
    }

    /// What the transport-wide feedback estimator last knew.
    pub fn estimate(&self) -> crate::estimate::Snapshot {
        *self.estimate.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn keyframes(&self) -> Arc<KeyframeFlag> {
        Arc::clone(&self.keyframes)
    }

    /// Closes the connection.
    pub async fn close(&self) -> Result<()> {
        self.pc.close().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rtp_timestamps_follow_capture_times() {
        let mut clock = super::RtpClock::default();
        let start = u32::MAX - 4_000;
        // 30 fps from t = 5 s, then the frame at 100 ms dropped, and 15 fps after it.
        assert_eq!(clock.stamp(5_000_000, start), start);
        assert_eq!(clock.stamp(5_033_333, 0), start.wrapping_add(2_999));
        assert_eq!(clock.stamp(5_066_667, 0), start.wrapping_add(6_000));
        assert_eq!(clock.stamp(5_133_333, 0), start.wrapping_add(11_999));
        assert_eq!(clock.stamp(5_200_000, 0), start.wrapping_add(18_000));
        // A capture clock that steps back: one frame interval on, then its own spacing.
        assert_eq!(clock.stamp(1_000_000, 0), start.wrapping_add(21_000));
        assert_eq!(clock.stamp(1_100_000, 0), start.wrapping_add(30_000));
    }

    use super::*;

    #[test]
    fn relay_candidates_leave_without_the_machines_address() {
        assert_eq!(
            without_related_address(
                "candidate:1 1 udp 16777215 203.0.113.7 52423 typ relay raddr 192.168.1.20 rport 59620"
            ),
            "candidate:1 1 udp 16777215 203.0.113.7 52423 typ relay raddr 0.0.0.0 rport 0"
        );
        let host = "candidate:2 1 udp 2130706431 127.0.0.1 40000 typ host";
        assert_eq!(without_related_address(host), host);
    }

    /// The video section of a Chromium offer, abridged: VP8, RTX, H.264 in several profiles
    /// and packetization modes, VP9.
    const CHROMIUM_OFFER: &str = "v=0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111\r
a=rtpmap:111 opus/48000/2\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 103 104 107 108 98\r
a=rtpmap:96 VP8/90000\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:103 H264/90000\r
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r
a=rtpmap:104 H264/90000\r
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:107 H264/90000\r
a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:108 H264/90000\r
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r
a=rtpmap:98 VP9/90000\r
";

    #[test]
    fn payload_types_keep_the_m_line_order_and_only_what_we_decode() {
        assert_eq!(
            video_payload_types(CHROMIUM_OFFER),
            [
                (96, VideoCodec::Vp8),
                (104, VideoCodec::H264),
                (107, VideoCodec::H264),
            ],
            "no RTX, no VP9, no packetization mode 0, no High profile"
        );
        let h264_first = CHROMIUM_OFFER.replace("SAVPF 96 97 103", "SAVPF 107 96 97 103");
        assert_eq!(video_payload_types(&h264_first)[0], (107, VideoCodec::H264));
        assert!(video_payload_types("v=0\r\nm=audio 9 RTP/AVP 0\r\n").is_empty());
    }

    /// Chromium offers H.264 42001f before 42e01f; our answer keeps 42e01f only, so that is
    /// what we send and receive under (seen in the guest-page interop test).
    #[test]
    fn the_session_keeps_only_what_the_answer_kept() {
        let offer = CHROMIUM_OFFER.replace(
            "SAVPF 96 97 103 104 107 108 98",
            "SAVPF 104 107 96 97 103 108 98",
        );
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 107 96\r\na=rtpmap:107 H264/90000\r\n\
            a=fmtp:107 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
            a=rtpmap:96 VP8/90000\r\n";
        let session = [(107, VideoCodec::H264), (96, VideoCodec::Vp8)];
        assert_eq!(negotiated_payload_types(&offer, answer), session);
        assert_eq!(video_payload_types(&offer)[0], (104, VideoCodec::H264));
    }
}
