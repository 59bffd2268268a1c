//! H.264 through Cisco's OpenH264 (the `openh264` crate, built from source), behind the same
//! traits as VP8: camera real-time usage, bitrate rate control, keyframes only on request,
//! runtime bitrate changes. Negotiated when both sides offer it.
//!
//! Note on licensing: Cisco's patent licence covers only its prebuilt binary, not a build
//! from source such as this one. Shipping builds must load Cisco's binary instead (the crate's
//! `libloading` feature); see docs/architecture.md.

#![allow(unsafe_code)]

use openh264::OpenH264API;
use openh264::Timestamp;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;

use crate::frame::{Strided, check_encoder_size};
use crate::pace::InputRate;
use crate::{EncodedFrame, Error, Result, VideoDecoder, VideoEncoder, VideoFrame};

fn codec_err(what: &'static str) -> impl FnOnce(openh264::Error) -> Error {
    move |e| Error::Codec {
        codec: "H.264",
        what,
        detail: e.to_string(),
    }
}

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct H264Config {
    /// Frame width (even).
    pub width: u32,
    /// Frame height (even).
    pub height: u32,
    /// Target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Nominal frame rate.
    pub fps: u32,
    /// Encoder threads.
    pub threads: u16,
}

impl H264Config {
    /// Defaults for a call: 30 fps, one thread.
    pub fn new(width: u32, height: u32, bitrate_kbps: u32) -> Self {
        Self {
            width,
            height,
            bitrate_kbps,
            fps: 30,
            threads: 1,
        }
    }
}

/// A borrowed I420 frame as OpenH264 reads it.
struct Yuv<'a>(&'a VideoFrame);

impl YUVSource for Yuv<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = VideoFrame::chroma_size(self.0.width, self.0.height);
        (self.0.width as usize, cw as usize, cw as usize)
    }

    fn y(&self) -> &[u8] {
        &self.0.y
    }

    fn u(&self) -> &[u8] {
        &self.0.u
    }

    fn v(&self) -> &[u8] {
        &self.0.v
    }
}

/// H.264 encoder (constrained baseline, Annex B output).
pub struct H264Encoder {
    inner: Encoder,
    config: H264Config,
    /// The rate frames actually come at: OpenH264 gives each frame the bitrate over the frame
    /// rate it was told, so frames given at a lower rate (the call's frame-rate reduction)
    /// came out at that fraction of the target (half of it at 15 fps) until it was told.
    input: InputRate,
    /// The frame rate OpenH264 was last told.
    told_fps: f32,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

// SAFETY: the OpenH264 encoder has no thread affinity and is only used through `&mut self`.
unsafe impl Send for H264Encoder {}

impl H264Encoder {
    /// Opens an encoder.
    pub fn new(config: H264Config) -> Result<Self> {
        let H264Config {
            width,
            height,
            bitrate_kbps,
            fps,
            threads,
        } = config;
        check_encoder_size("H.264", width, height)?;
        let cfg = EncoderConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(bitrate_kbps * 1000))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(0))
            .num_threads(threads);
        let inner = Encoder::with_api_config(OpenH264API::from_source(), cfg)
            .map_err(codec_err("opening the encoder"))?;
        Ok(Self {
            inner,
            config,
            input: InputRate::new(fps),
            told_fps: fps as f32,
        })
    }

    /// Tells OpenH264 the rate frames come at (at most the configured one), when it has moved
    /// by more than a tenth.
    fn follow_frame_rate(&mut self, capture_us: u64) -> Result<()> {
        let Some(measured) = self.input.frame(capture_us) else {
            return Ok(());
        };
        let mut fps = measured as f32;
        if (fps - self.told_fps).abs() <= self.told_fps * 0.1 {
            return Ok(());
        }
        // SAFETY: ENCODER_OPTION_FRAME_RATE takes a float (OpenH264 recomputes the per-frame
        // budget from it).
        unsafe {
            self.set_option(
                openh264_sys2::ENCODER_OPTION_FRAME_RATE,
                &mut fps,
                "changing the frame rate",
            )?;
        }
        self.told_fps = fps;
        Ok(())
    }

    /// Sets one of OpenH264's runtime options to `value`.
    ///
    /// # Safety
    /// `value` must be of the type OpenH264 reads for `option`.
    unsafe fn set_option<T>(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        value: &mut T,
        what: &'static str,
    ) -> Result<()> {
        // SAFETY: the caller gives the type the option takes, and it lives across the call;
        // the encoder is initialised (by the first encode) or not yet, and OpenH264 accepts
        // its runtime options in both states.
        let rc = unsafe {
            self.inner
                .raw_api()
                .set_option(option, std::ptr::from_mut(value).cast())
        };
        if rc != 0 {
            return Err(Error::Codec {
                codec: "H.264",
                what,
                detail: format!("OpenH264 returned {rc}"),
            });
        }
        Ok(())
    }
}

impl VideoEncoder for H264Encoder {
    fn encode(&mut self, frame: &VideoFrame, force_keyframe: bool) -> Result<Option<EncodedFrame>> {
        frame.check_size(self.config.width, self.config.height)?;
        self.follow_frame_rate(frame.capture_us)?;
        if force_keyframe {
            self.inner.force_intra_frame();
        }
        let stream = self
            .inner
            .encode_at(&Yuv(frame), Timestamp::from_millis(frame.capture_us / 1000))
            .map_err(codec_err("encoding"))?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data,
            keyframe,
            pts_us: frame.capture_us,
        }))
    }

    fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<()> {
        let bps = i32::try_from(u64::from(kbps) * 1000)
            .ok()
            .filter(|&b| b > 0)
            .ok_or_else(|| Error::Invalid(format!("an H.264 bitrate of {kbps} kbit/s")))?;
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: bps,
        };
        // SAFETY: ENCODER_OPTION_BITRATE takes an SBitrateInfo.
        unsafe {
            self.set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                &mut info,
                "changing the bitrate",
            )?;
        }
        self.config.bitrate_kbps = kbps;
        Ok(())
    }

    fn bitrate_kbps(&self) -> u32 {
        self.config.bitrate_kbps
    }
}

/// H.264 decoder.
pub struct H264Decoder {
    inner: Decoder,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("H264Decoder")
    }
}

// SAFETY: the OpenH264 decoder has no thread affinity and is only used through `&mut self`.
unsafe impl Send for H264Decoder {}

impl H264Decoder {
    /// Opens a decoder.
    pub fn new() -> Result<Self> {
        let inner = Decoder::new().map_err(codec_err("opening the decoder"))?;
        Ok(Self { inner })
    }
}

impl VideoDecoder for H264Decoder {
    fn decode(&mut self, data: &[u8], pts_us: u64) -> Result<Option<VideoFrame>> {
        if data.is_empty() {
            return Err(Error::Invalid("an empty H.264 frame".into()));
        }
        let Some(pic) = self.inner.decode(data).map_err(codec_err("decoding"))? else {
            return Ok(None);
        };
        let (w, h) = pic.dimensions();
        let (ys, us, vs) = pic.strides();
        let planes = [
            Strided {
                data: pic.y(),
                stride: ys,
            },
            Strided {
                data: pic.u(),
                stride: us,
            },
            Strided {
                data: pic.v(),
                stride: vs,
            },
        ];
        Ok(Some(VideoFrame::from_strided(
            w as u32, h as u32, planes, pts_us,
        )))
    }
}
