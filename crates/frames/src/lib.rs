//! confer-frames: the frame socket. Decoded video reaches the desktop UI over a loopback
//! binary WebSocket, never through Tauri events or JSON (measured here: about twice the
//! headroom of Tauri IPC for 720p, see RECIPES.md).
//!
//! - One server per launch, on `127.0.0.1` and a port chosen by the system, guarded by a
//!   random per-launch token (`ws://127.0.0.1:<port>/<stream>?token=<token>`). A wrong token
//!   or an unknown stream is refused with 403/404 before the WebSocket opens.
//! - Two streams, [`Stream::Remote`] and [`Stream::Local`] (the self view), one socket each.
//! - Each message is one I420 frame: a [`HEADER_LEN`]-byte header ([`Header`]) followed by the
//!   Y, U and V planes, tightly packed.
//! - Frames are sent no larger than the page shows them: the page says its canvas's size in
//!   device pixels (`size <w> <h>`, `size 0 0` for no limit), and bigger frames are scaled
//!   down to fit it (aspect kept, never up). A 720p camera drawn in a 240-pixel self view
//!   costs the page a 240-pixel frame: the WebSocket copy, the texture upload and the draw
//!   all shrink with it (on software GL, where the page's CPU goes).
//! - Latest-frame-wins with credits: the page grants credits (`credit <n>`) and returns one
//!   with each frame it has drawn (`drawn <seq>`). The server sends only while it holds a
//!   credit; meanwhile newer frames replace older ones, so a slow page never builds a queue.
//!   The `drawn` messages also measure capture-to-displayed latency ([`StreamStats`]).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

use confer_media::VideoFrame;
use confer_media::mark::wall_clock_us;

/// Bytes before the planes.
pub const HEADER_LEN: usize = 32;
/// The first four bytes of every frame message.
pub const MAGIC: [u8; 4] = *b"CFV1";
/// Pixel format code of I420 (the only one today).
pub const FORMAT_I420: u8 = 0;
/// Credits one connection may hold: more would only let frames queue in the socket.
pub const MAX_CREDITS: u32 = 4;
/// Latency samples kept per stream.
const SAMPLES: usize = 300;

/// Which video a socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The other person.
    Remote,
    /// Our own camera (the self view).
    Local,
}

impl Stream {
    /// Both streams.
    pub const ALL: [Stream; 2] = [Stream::Remote, Stream::Local];

    fn index(self) -> usize {
        match self {
            Stream::Remote => 0,
            Stream::Local => 1,
        }
    }

    /// The path segment of its socket.
    pub fn path(self) -> &'static str {
        match self {
            Stream::Remote => "remote",
            Stream::Local => "local",
        }
    }

    fn from_path(path: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.path() == path)
    }
}

/// The header of a frame message (little-endian):
///
/// | bytes | field |
/// |---|---|
/// | 0–3 | magic `CFV1` |
/// | 4 | stream: 0 remote, 1 local |
/// | 5 | format: 0 I420 |
/// | 6–7 | reserved, 0 |
/// | 8–11 | width (even) |
/// | 12–15 | height (even) |
/// | 16–19 | sequence number on this stream (from 1) |
/// | 20–23 | reserved, 0 |
/// | 24–31 | capture time, µs since the Unix epoch |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The stream.
    pub stream: Stream,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Sequence number.
    pub seq: u32,
    /// Capture time, µs since the Unix epoch.
    pub capture_us: u64,
}

/// A message that is not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Too short, wrong magic or format, odd size.
    #[error("not a frame message: {0}")]
    Malformed(&'static str),
    /// The planes do not add up to the size in the header.
    #[error("{got} bytes of planes for {width}x{height}, expected {expected}")]
    Length {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Plane bytes present.
        got: usize,
        /// Plane bytes a frame of that size has.
        expected: usize,
    },
}

fn planes_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// One frame as a message.
pub fn encode(stream: Stream, seq: u32, frame: &VideoFrame) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + planes_len(frame.width, frame.height));
    out.put_slice(&MAGIC);
    out.put_u8(stream.index() as u8);
    out.put_u8(FORMAT_I420);
    out.put_u16_le(0);
    out.put_u32_le(frame.width);
    out.put_u32_le(frame.height);
    out.put_u32_le(seq);
    out.put_u32_le(0);
    out.put_u64_le(frame.capture_us);
    out.put_slice(&frame.y);
    out.put_slice(&frame.u);
    out.put_slice(&frame.v);
    out.freeze()
}

/// Reads a frame message's header, checking that the planes fit it.
pub fn decode_header(message: &[u8]) -> Result<Header, FrameError> {
    if message.len() < HEADER_LEN {
        return Err(FrameError::Malformed("shorter than the header"));
    }
    if message[..4] != MAGIC {
        return Err(FrameError::Malformed("wrong magic"));
    }
    let stream = match message[4] {
        0 => Stream::Remote,
        1 => Stream::Local,
        _ => return Err(FrameError::Malformed("unknown stream")),
    };
    if message[5] != FORMAT_I420 {
        return Err(FrameError::Malformed("unknown pixel format"));
    }
    let u32_at = |i: usize| u32::from_le_bytes(message[i..i + 4].try_into().expect("4 bytes"));
    let (width, height) = (u32_at(8), u32_at(12));
    if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
        return Err(FrameError::Malformed("size zero or odd"));
    }
    let expected = planes_len(width, height);
    let got = message.len() - HEADER_LEN;
    if got != expected {
        return Err(FrameError::Length {
            width,
            height,
            got,
            expected,
        });
    }
    Ok(Header {
        stream,
        width,
        height,
        seq: u32_at(16),
        capture_us: u64::from_le_bytes(message[24..32].try_into().expect("8 bytes")),
    })
}

/// What one stream did so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StreamStats {
    /// Frames handed to [`FrameServer::publish`].
    pub published: u64,
    /// Frames sent to the page.
    pub sent: u64,
    /// Frames the page reported drawn.
    pub drawn: u64,
    /// Frames replaced by a newer one before they could be sent (the page was behind, or
    /// not listening).
    pub replaced: u64,
    /// Capture to drawn, over the last few hundred frames: median, ms.
    pub latency_p50_ms: Option<f64>,
    /// The same, 95th percentile.
    pub latency_p95_ms: Option<f64>,
}

#[derive(Debug)]
struct Slot {
    /// The newest frame and its sequence number.
    latest: watch::Sender<Option<Arc<(u32, VideoFrame)>>>,
    published: AtomicU64,
    sent: AtomicU64,
    /// The sequence number last sent.
    last_sent: AtomicU64,
    drawn: AtomicU64,
    latencies_us: Mutex<VecDeque<u64>>,
}

impl Slot {
    fn new() -> Self {
        Self {
            latest: watch::channel(None).0,
            published: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_sent: AtomicU64::new(0),
            drawn: AtomicU64::new(0),
            latencies_us: Mutex::new(VecDeque::with_capacity(SAMPLES)),
        }
    }
}

#[derive(Debug)]
struct Shared {
    token: String,
    slots: [Slot; 2],
    refused: AtomicU64,
}

/// The frame socket server of one launch.
#[derive(Debug)]
pub struct FrameServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FrameServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FrameServer {
    /// Listens on `127.0.0.1` on a free port with a fresh random token.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let token = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let shared = Arc::new(Shared {
            token,
            slots: [Slot::new(), Slot::new()],
            refused: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, Arc::clone(&accepting)));
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The per-launch token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The WebSocket URL of `stream`, token included.
    pub fn url(&self, stream: Stream) -> String {
        format!(
            "ws://{}/{}?token={}",
            self.addr,
            stream.path(),
            self.shared.token
        )
    }

    /// Offers a frame to the page: it replaces any frame not yet sent. A `capture_us` of 0 is
    /// stamped with the time now (so latency is measured from here). Taken by value: every
    /// caller hands over a frame it has finished with, so none is copied on the way.
    pub fn publish(&self, stream: Stream, mut frame: VideoFrame) {
        let slot = &self.shared.slots[stream.index()];
        let seq = (slot.published.fetch_add(1, Ordering::Relaxed) + 1) as u32;
        if frame.capture_us == 0 {
            frame.capture_us = wall_clock_us();
        }
        slot.latest.send_replace(Some(Arc::new((seq, frame))));
    }

    /// What `stream` did so far.
    pub fn stats(&self, stream: Stream) -> StreamStats {
        let slot = &self.shared.slots[stream.index()];
        let published = slot.published.load(Ordering::Relaxed);
        let sent = slot.sent.load(Ordering::Relaxed);
        let mut latencies: Vec<u64> = slot
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect();
        latencies.sort_unstable();
        let percentile = |p: f64| {
            (!latencies.is_empty()).then(|| {
                let i = ((latencies.len() - 1) as f64 * p).round() as usize;
                latencies[i] as f64 / 1000.0
            })
        };
        // A frame still waiting in the slot is neither sent nor replaced yet.
        let waiting = u64::from(published > slot.last_sent.load(Ordering::Relaxed));
        StreamStats {
            published,
            sent,
            drawn: slot.drawn.load(Ordering::Relaxed),
            replaced: published.saturating_sub(sent).saturating_sub(waiting),
            latency_p50_ms: percentile(0.5),
            latency_p95_ms: percentile(0.95),
        }
    }

    /// Connections refused (wrong token, unknown stream, not a WebSocket).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

/// Checks the request line: a known stream and the launch's token.
fn authorize(shared: &Shared, request: &Request) -> Result<Stream, (StatusCode, &'static str)> {
    let path = request.uri().path().trim_start_matches('/');
    let stream = Stream::from_path(path).ok_or((StatusCode::NOT_FOUND, "no such stream"))?;
    let token = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="));
    if token != Some(shared.token.as_str()) {
        return Err((StatusCode::FORBIDDEN, "wrong or missing token"));
    }
    Ok(stream)
}

async fn serve(socket: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut stream = None;
    // The callback's error type is tungstenite's.
    #[allow(clippy::result_large_err)]
    let handshake =
        tokio_tungstenite::accept_hdr_async(socket, |request: &Request, response| match authorize(
            &shared, request,
        ) {
            Ok(s) => {
                stream = Some(s);
                Ok::<Response, ErrorResponse>(response)
            }
            Err((status, why)) => {
                let mut refusal = ErrorResponse::new(Some(why.to_owned()));
                *refusal.status_mut() = status;
                Err(refusal)
            }
        })
        .await;
    let (Ok(mut ws), Some(stream)) = (handshake, stream) else {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let slot = &shared.slots[stream.index()];
    let mut latest = slot.latest.subscribe();
    latest.mark_changed(); // a frame already waiting goes out on the first credit
    let mut credits = 0u32;
    let mut fit: Option<(u32, u32)> = None;
    let mut scaler = Some(confer_media::scale::Scaler::new());
    // Capture times of frames sent and not yet reported drawn.
    let mut in_flight: VecDeque<(u32, u64)> = VecDeque::new();
    loop {
        tokio::select! {
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => return,
                };
                match parse_control(&text) {
                    Some(Control::Size(w, h)) => fit = (w > 0 && h > 0).then_some((w, h)),
                    Some(Control::Credit(n)) => credits = credits.saturating_add(n).min(MAX_CREDITS),
                    Some(Control::Drawn(seq)) => {
                        credits = (credits + 1).min(MAX_CREDITS);
                        slot.drawn.fetch_add(1, Ordering::Relaxed);
                        while let Some(&(sent_seq, capture_us)) = in_flight.front() {
                            if sent_seq > seq {
                                break;
                            }
                            in_flight.pop_front();
                            if sent_seq == seq {
                                let mut samples = slot.latencies_us.lock().unwrap_or_else(|e| e.into_inner());
                                if samples.len() == SAMPLES {
                                    samples.pop_front();
                                }
                                samples.push_back(wall_clock_us().saturating_sub(capture_us));
                            }
                        }
                    }
                    None => {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
            changed = latest.changed(), if credits > 0 => {
                if changed.is_err() {
                    return;
                }
                let Some(newest) = latest.borrow_and_update().clone() else { continue };
                let seq = newest.0;
                let capture_us = newest.1.capture_us;
                // Scaling is codec-sized work: off the async workers.
                let target = fit.and_then(|box_| fit_within((newest.1.width, newest.1.height), box_));
                let message = match (target, scaler.take()) {
                    (Some((w, h)), Some(mut s)) => {
                        let (scaled, s) = tokio::task::spawn_blocking(move || {
                            let frame = &newest.1;
                            let scaled = s.scale(frame, w, h).map(|f| encode(stream, seq, &f));
                            (scaled.unwrap_or_else(|_| encode(stream, seq, frame)), s)
                        })
                        .await
                        .expect("scaling does not panic");
                        scaler = Some(s);
                        scaled
                    }
                    (_, s) => {
                        scaler = s;
                        encode(stream, seq, &newest.1)
                    }
                };
                credits -= 1;
                if in_flight.len() == MAX_CREDITS as usize {
                    in_flight.pop_front();
                }
                in_flight.push_back((seq, capture_us));
                if ws.send(Message::Binary(message)).await.is_err() {
                    return;
                }
                slot.sent.fetch_add(1, Ordering::Relaxed);
                slot.last_sent.store(u64::from(seq), Ordering::Relaxed);
            }
        }
    }
}

/// The size `frame` takes to fit in `bounds` (aspect kept, sides even, at least 2×2), or
/// `None` when it already fits.
fn fit_within(frame: (u32, u32), bounds: (u32, u32)) -> Option<(u32, u32)> {
    if frame.0 <= bounds.0 && frame.1 <= bounds.1 {
        return None;
    }
    let scale = f64::min(
        f64::from(bounds.0) / f64::from(frame.0),
        f64::from(bounds.1) / f64::from(frame.1),
    );
    let even = |side: u32| ((f64::from(side) * scale) as u32 & !1).max(2);
    Some((even(frame.0), even(frame.1)))
}

#[derive(Debug, PartialEq, Eq)]
enum Control {
    Credit(u32),
    Drawn(u32),
    Size(u32, u32),
}

fn parse_control(text: &str) -> Option<Control> {
    let mut words = text.split_whitespace();
    let verb = words.next()?;
    let mut number = || words.next()?.parse::<u32>().ok();
    let control = match verb {
        "credit" => Control::Credit(number()?),
        "drawn" => Control::Drawn(number()?),
        "size" => Control::Size(number()?, number()?),
        _ => return None,
    };
    words.next().is_none().then_some(control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: u32, height: u32, fill: u8) -> VideoFrame {
        let mut f = VideoFrame::black(width, height);
        f.y.fill(fill);
        f.capture_us = 1_700_000_000_123_456;
        f
    }

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let message = encode(Stream::Local, 7, &frame(4, 2, 99));
        assert_eq!(message.len(), HEADER_LEN + 8 + 2 + 2);
        assert_eq!(&message[..4], b"CFV1");
        assert_eq!(message[4], 1);
        assert_eq!(message[5], FORMAT_I420);
        assert_eq!(&message[8..12], &4u32.to_le_bytes());
        assert_eq!(&message[12..16], &2u32.to_le_bytes());
        assert_eq!(&message[16..20], &7u32.to_le_bytes());
        assert_eq!(&message[24..32], &1_700_000_000_123_456u64.to_le_bytes());
        assert_eq!(&message[32..40], &[99; 8]);
        assert_eq!(&message[40..44], &[128; 4]);
        let header = decode_header(&message).unwrap();
        assert_eq!(
            header,
            Header {
                stream: Stream::Local,
                width: 4,
                height: 2,
                seq: 7,
                capture_us: 1_700_000_000_123_456
            }
        );
    }

    #[test]
    fn broken_messages_are_named() {
        let good = encode(Stream::Remote, 1, &frame(4, 2, 0));
        assert_eq!(
            decode_header(&good[..10]),
            Err(FrameError::Malformed("shorter than the header"))
        );
        let mut bad = good.to_vec();
        bad[0] = b'X';
        assert_eq!(
            decode_header(&bad),
            Err(FrameError::Malformed("wrong magic"))
        );
        assert!(matches!(
            decode_header(&good[..good.len() - 1]),
            Err(FrameError::Length {
                got: 11,
                expected: 12,
                ..
            })
        ));
    }

    #[test]
    fn control_messages_parse() {
        assert_eq!(parse_control("credit 2"), Some(Control::Credit(2)));
        assert_eq!(parse_control("drawn 17\n"), Some(Control::Drawn(17)));
        assert_eq!(parse_control("drawn"), None);
        assert_eq!(parse_control("draw 1"), None);
        assert_eq!(parse_control("credit -1"), None);
        assert_eq!(parse_control("size 640 360"), Some(Control::Size(640, 360)));
        assert_eq!(parse_control("size 640"), None);
        assert_eq!(parse_control("credit 1 2"), None);
    }

    #[test]
    fn frames_fit_the_page_and_are_never_enlarged() {
        assert_eq!(fit_within((1280, 720), (1280, 720)), None);
        assert_eq!(fit_within((640, 360), (1280, 800)), None);
        assert_eq!(fit_within((1280, 720), (640, 640)), Some((640, 360)));
        // A tall box: the width decides.
        assert_eq!(fit_within((1280, 720), (241, 1000)), Some((240, 134)));
        assert_eq!(fit_within((1280, 720), (1, 1)), Some((2, 2)));
    }
}
