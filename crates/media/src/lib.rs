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
pub mod stretch;
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

/// A video codec Confer speaks: VP8 (libvpx) by default, H.264 (OpenH264) when both sides
/// offer it and the user prefers it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// VP8, every WebRTC implementation's baseline.
    #[default]
    Vp8,
    /// H.264 constrained baseline, packetization mode 1.
    H264,
}

impl VideoCodec {
    /// The codec's name as SDP spells it (`VP8`, `H264`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Vp8 => "VP8",
            Self::H264 => "H264",
        }
    }

    /// From an SDP encoding name (case-insensitive); `None` for codecs Confer does not speak.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Vp8, Self::H264]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// A real-time encoder for `width`x`height` at `kbps`.
    pub fn encoder(self, width: u32, height: u32, kbps: u32) -> Result<Box<dyn VideoEncoder>> {
        Ok(match self {
            Self::Vp8 => Box::new(vp8::Vp8Encoder::new(vp8::Vp8Config::new(
                width, height, kbps,
            ))?),
            Self::H264 => Box::new(h264::H264Encoder::new(h264::H264Config::new(
                width, height, kbps,
            ))?),
        })
    }

    /// A decoder.
    pub fn decoder(self) -> Result<Box<dyn VideoDecoder>> {
        Ok(match self {
            Self::Vp8 => Box::new(vp8::Vp8Decoder::new()?),
            Self::H264 => Box::new(h264::H264Decoder::new()?),
        })
    }
}

impl std::str::FromStr for VideoCodec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| {
            Error::Invalid(format!("unknown video codec {s:?} (expected vp8 or h264)"))
        })
    }
}

/// A video encoder (VP8 or H.264).
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
