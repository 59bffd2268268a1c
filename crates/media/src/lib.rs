//! confer-media: what Confer captures, encodes, decodes and plays, with no Tauri and no WebRTC
//! types. The call engine moves its encoded frames; the desktop app shows its raw frames.
//!
//! This first slice holds raw I420 frames ([`VideoFrame`]), the synthetic test pattern with a
//! machine-readable frame mark ([`pattern`], [`mark`]) that tests and latency benchmarks read
//! back on the far side of a call, and VP8 on Debian's libvpx ([`vp8`]) behind the
//! [`VideoEncoder`]/[`VideoDecoder`] traits.
//!
//! `unsafe` lives only in [`vp8`] (the libvpx FFI), each block with its `SAFETY:` argument.

pub mod apm;
pub mod audio;
pub mod camera;
pub mod capture;
pub mod convert;
pub mod device;
mod frame;
pub mod h264;
pub mod jitter;
pub mod ladder;
pub mod level;
pub mod mark;
pub mod opus;
pub mod pace;
pub mod pattern;
pub mod quality;
pub mod reframe;
pub mod scale;
pub mod source;
pub mod tone;
pub mod vp8;

pub use frame::VideoFrame;

/// Errors of the media engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A codec call failed.
    #[error("{codec}: {what}: {detail}")]
    Codec {
        /// Which codec.
        codec: &'static str,
        /// What was being done.
        what: &'static str,
        /// The library's explanation.
        detail: String,
    },
    /// A frame or setting does not fit.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A capture or playback device failed (missing, busy, refused, unplugged).
    #[error("{0}")]
    Device(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One encoded video frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The bitstream.
    pub data: Vec<u8>,
    /// Whether it decodes without any earlier frame.
    pub keyframe: bool,
    /// Presentation time, microseconds (the raw frame's capture time).
    pub pts_us: u64,
}

/// A video encoder (VP8 now; H.264 behind the same trait later).
pub trait VideoEncoder: Send {
    /// Encodes one frame; `force_keyframe` answers a PLI/FIR. Realtime encoders return at most
    /// one frame per input, none when rate control drops it.
    fn encode(&mut self, frame: &VideoFrame, force_keyframe: bool) -> Result<Option<EncodedFrame>>;
    /// Changes the target bitrate (kbit/s) from the next frame on.
    fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<()>;
    /// The current target bitrate.
    fn bitrate_kbps(&self) -> u32;
}

/// A video decoder.
pub trait VideoDecoder: Send {
    /// Decodes one encoded frame; `None` when the decoder produced no picture.
    fn decode(&mut self, data: &[u8], pts_us: u64) -> Result<Option<VideoFrame>>;
}
