//! VP8 on Debian's libvpx (through `env-libvpx-sys`): realtime one-pass CBR, no lag, error
//! resilient, keyframes only on request (as WebRTC senders do), runtime bitrate changes.
//!
//! Our own small wrapper rather than `vpx-encode`, which hard-codes 8 threads and reached
//! 9.5 fps at 720p on these 2-core machines. Every `unsafe` block below is a libvpx call or a
//! read of memory libvpx owns; each says why it is sound.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_long, c_uint, c_ulong};
use std::ptr;

use vpx_sys as vpx;

use crate::frame::{Strided, check_encoder_size};
use crate::pace::InputRate;
use crate::{EncodedFrame, Error, Result, VideoDecoder, VideoEncoder, VideoFrame};

/// Encoder settings.
#[derive(Debug, Clone)]
pub struct Vp8Config {
    /// Frame width (even).
    pub width: u32,
    /// Frame height (even).
    pub height: u32,
    /// Target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Nominal frame rate, for rate control.
    pub fps: u32,
    /// Encoder threads (1 keeps a core free for everything else on small machines).
    pub threads: u32,
    /// libvpx speed for realtime (`VP8E_SET_CPUUSED`): −16..16, higher is faster; WebRTC uses −6
    /// on desktops.
    pub cpu_used: i32,
    /// Let rate control drop frames under pressure instead of overshooting.
    pub allow_frame_drop: bool,
}

impl Vp8Config {
    /// Defaults for a call: 30 fps, one thread, speed −6, and frames dropped rather than the
    /// rate overshot (as libwebrtc does for cameras): without drops, the test pattern at 180p
    /// and 176 kbit/s came out at ~290 kbit/s and filled a 300 kbit/s link's queue.
    pub fn new(width: u32, height: u32, bitrate_kbps: u32) -> Self {
        Self {
            width,
            height,
            bitrate_kbps,
            fps: 30,
            threads: 1,
            cpu_used: -6,
            allow_frame_drop: true,
        }
    }
}

fn check(
    ctx: *mut vpx::vpx_codec_ctx_t,
    err: vpx::vpx_codec_err_t,
    what: &'static str,
) -> Result<()> {
    if err == vpx::VPX_CODEC_OK {
        return Ok(());
    }
    // SAFETY: vpx_codec_err_to_string returns a static NUL-terminated string for any code;
    // vpx_codec_error_detail takes an initialised context (or null) and returns null or a
    // NUL-terminated string owned by the context, read here before any other call.
    let detail = unsafe {
        let base = CStr::from_ptr(vpx::vpx_codec_err_to_string(err)).to_string_lossy();
        let extra = if ctx.is_null() {
            ptr::null()
        } else {
            vpx::vpx_codec_error_detail(ctx)
        };
        if extra.is_null() {
            base.into_owned()
        } else {
            format!("{base} ({})", CStr::from_ptr(extra).to_string_lossy())
        }
    };
    Err(Error::Codec {
        codec: "VP8",
        what,
        detail,
    })
}

/// A libvpx codec context that is destroyed on drop.
struct Context(Box<vpx::vpx_codec_ctx_t>);

impl Context {
    fn zeroed() -> Self {
        // SAFETY: vpx_codec_ctx_t is a plain C struct of pointers and integers for which all
        // zeroes is the "not initialised" state libvpx's init functions expect.
        Self(Box::new(unsafe { MaybeUninit::zeroed().assume_init() }))
    }

    fn ptr(&mut self) -> *mut vpx::vpx_codec_ctx_t {
        &mut *self.0
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if !self.0.iface.is_null() {
            // SAFETY: iface is set only by a successful init; destroy is then called once.
            unsafe { vpx::vpx_codec_destroy(self.ptr()) };
        }
    }
}

// SAFETY: a libvpx context has no thread affinity; it is only ever used through `&mut self`,
// so it is never touched from two threads at once.
unsafe impl Send for Context {}

/// An encoder configuration kept for runtime changes.
struct EncConfig(Box<vpx::vpx_codec_enc_cfg_t>);

// SAFETY: the only pointers in the configuration are the two-pass statistics buffers, which
// stay null for one-pass realtime encoding; the rest is plain data.
unsafe impl Send for EncConfig {}

/// VP8 encoder.
pub struct Vp8Encoder {
    ctx: Context,
    cfg: EncConfig,
    config: Vp8Config,
    /// A frame's duration at the configured rate, µs.
    frame_us: u64,
    /// The rate frames actually come at.
    input: InputRate,
}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Opens an encoder.
    pub fn new(config: Vp8Config) -> Result<Self> {
        let Vp8Config {
            width,
            height,
            bitrate_kbps,
            fps,
            ..
        } = config;
        check_encoder_size("VP8", width, height)?;
        if fps == 0 {
            return Err(Error::Invalid("a VP8 encoder at 0 fps".into()));
        }
        // SAFETY: zeroed memory is a valid bit pattern for this plain C struct, and
        // vpx_codec_enc_config_default fully initialises it for the VP8 interface.
        let mut cfg: Box<vpx::vpx_codec_enc_cfg_t> =
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: the interface pointer is a static from libvpx; cfg points to writable memory.
        let err =
            unsafe { vpx::vpx_codec_enc_config_default(vpx::vpx_codec_vp8_cx(), &mut *cfg, 0) };
        check(ptr::null_mut(), err, "default configuration")?;
        cfg.g_w = width;
        cfg.g_h = height;
        cfg.g_timebase = vpx::vpx_rational {
            num: 1,
            den: 1_000_000,
        };
        cfg.g_threads = config.threads.max(1);
        cfg.g_lag_in_frames = 0;
        cfg.g_error_resilient = vpx::VPX_ERROR_RESILIENT_DEFAULT;
        cfg.g_pass = vpx::vpx_enc_pass::VPX_RC_ONE_PASS;
        cfg.rc_end_usage = vpx::vpx_rc_mode::VPX_CBR;
        cfg.rc_target_bitrate = bitrate_kbps;
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 56;
        cfg.rc_undershoot_pct = 100;
        cfg.rc_overshoot_pct = 15;
        cfg.rc_buf_initial_sz = 500;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_buf_sz = 1000;
        cfg.rc_dropframe_thresh = if config.allow_frame_drop { 30 } else { 0 };
        cfg.kf_mode = vpx::vpx_kf_mode::VPX_KF_DISABLED;
        let mut ctx = Context::zeroed();
        // SAFETY: ctx is zeroed and owned; cfg is initialised; the ABI version matches the
        // bindings the crate was generated for (checked by libvpx itself).
        let err = unsafe {
            vpx::vpx_codec_enc_init_ver(
                ctx.ptr(),
                vpx::vpx_codec_vp8_cx(),
                &*cfg,
                0,
                vpx::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        check(ctx.ptr(), err, "opening the encoder")?;
        // SAFETY: VP8E_SET_CPUUSED takes one int argument, passed as c_int to the variadic.
        let err = unsafe {
            vpx::vpx_codec_control_(
                ctx.ptr(),
                vpx::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
                config.cpu_used as c_int,
            )
        };
        check(ctx.ptr(), err, "setting the speed")?;
        // A keyframe may take at most this share of one frame's budget (as libwebrtc sets it:
        // half the optimal buffer, in frames): uncapped, a 640x360 keyframe at 250 kbit/s was a
        // second of the link, and every one of them a second of queue in front of the audio.
        let max_intra_pct = (cfg.rc_buf_optimal_sz / 2 * fps / 10).max(300);
        // SAFETY: VP8E_SET_MAX_INTRA_BITRATE_PCT takes one unsigned int argument.
        let err = unsafe {
            vpx::vpx_codec_control_(
                ctx.ptr(),
                vpx::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
                max_intra_pct as std::os::raw::c_uint,
            )
        };
        check(ctx.ptr(), err, "capping keyframes")?;
        Ok(Self {
            ctx,
            cfg: EncConfig(cfg),
            frame_us: 1_000_000 / u64::from(fps),
            input: InputRate::new(fps),
            config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &Vp8Config {
        &self.config
    }
}

impl VideoEncoder for Vp8Encoder {
    fn encode(&mut self, frame: &VideoFrame, force_keyframe: bool) -> Result<Option<EncodedFrame>> {
        frame.check_size(self.config.width, self.config.height)?;
        let (cw, _) = VideoFrame::chroma_size(frame.width, frame.height);
        // SAFETY: zeroed is valid for this C struct; the fields libvpx reads for an I420 input
        // (format, sizes, shifts, plane pointers and strides) are all set below, and the planes
        // outlive the encode call, which only reads them.
        let mut img: vpx::vpx_image_t = unsafe { MaybeUninit::zeroed().assume_init() };
        img.fmt = vpx::vpx_img_fmt::VPX_IMG_FMT_I420;
        img.w = frame.width;
        img.h = frame.height;
        img.d_w = frame.width;
        img.d_h = frame.height;
        img.bit_depth = 8;
        img.x_chroma_shift = 1;
        img.y_chroma_shift = 1;
        img.bps = 12;
        img.planes[0] = frame.y.as_ptr().cast_mut();
        img.planes[1] = frame.u.as_ptr().cast_mut();
        img.planes[2] = frame.v.as_ptr().cast_mut();
        img.stride[0] = frame.width as c_int;
        img.stride[1] = cw as c_int;
        img.stride[2] = cw as c_int;
        let flags = if force_keyframe {
            vpx::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };
        let pts = (frame.capture_us & (i64::MAX as u64)) as i64;
        // Each frame stands for the average time between the frames given (never less than
        // the configured rate's): libvpx's rate control budgets by it.
        let duration = self
            .input
            .frame(frame.capture_us)
            .map_or(self.frame_us, |fps| (1e6 / fps) as u64);
        // SAFETY: the context is an initialised encoder and img describes valid I420 memory.
        let err = unsafe {
            vpx::vpx_codec_encode(
                self.ctx.ptr(),
                &img,
                pts,
                duration as c_ulong,
                flags,
                vpx::VPX_DL_REALTIME as c_ulong,
            )
        };
        check(self.ctx.ptr(), err, "encoding")?;
        let mut out = None;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: iterating the packets of the encode call just made, with its iterator.
            let pkt = unsafe { vpx::vpx_codec_get_cx_data(self.ctx.ptr(), &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: libvpx returned a valid packet that stays alive until the next
            // encode/get_cx_data call; for frame packets the `frame` member of the union is the
            // active one, and buf/sz describe its bytes, copied out here.
            unsafe {
                if (*pkt).kind != vpx::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = (*pkt).data.frame;
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                out = Some(EncodedFrame {
                    data,
                    keyframe: f.flags & vpx::VPX_FRAME_IS_KEY != 0,
                    pts_us: frame.capture_us,
                });
            }
        }
        Ok(out)
    }

    fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<()> {
        if kbps == 0 {
            return Err(Error::Invalid("a bitrate of 0 kbit/s".into()));
        }
        self.cfg.0.rc_target_bitrate = kbps;
        // SAFETY: an initialised encoder and a configuration libvpx initialised earlier.
        let err = unsafe { vpx::vpx_codec_enc_config_set(self.ctx.ptr(), &*self.cfg.0) };
        check(self.ctx.ptr(), err, "changing the bitrate")?;
        self.config.bitrate_kbps = kbps;
        Ok(())
    }

    fn bitrate_kbps(&self) -> u32 {
        self.config.bitrate_kbps
    }
}

/// VP8 decoder.
pub struct Vp8Decoder {
    ctx: Context,
}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vp8Decoder")
    }
}

impl Vp8Decoder {
    /// Opens a decoder (one thread).
    pub fn new() -> Result<Self> {
        let mut ctx = Context::zeroed();
        let cfg = vpx::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        // SAFETY: ctx is zeroed and owned; cfg lives across the call; the ABI version matches.
        let err = unsafe {
            vpx::vpx_codec_dec_init_ver(
                ctx.ptr(),
                vpx::vpx_codec_vp8_dx(),
                &cfg,
                0,
                vpx::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        check(ctx.ptr(), err, "opening the decoder")?;
        Ok(Self { ctx })
    }
}

impl VideoDecoder for Vp8Decoder {
    fn decode(&mut self, data: &[u8], pts_us: u64) -> Result<Option<VideoFrame>> {
        if data.is_empty() {
            return Err(Error::Invalid("an empty VP8 frame".into()));
        }
        let len = c_uint::try_from(data.len())
            .map_err(|_| Error::Invalid(format!("a {} byte VP8 frame", data.len())))?;
        // SAFETY: an initialised decoder reading `len` bytes from a live slice.
        let err = unsafe {
            vpx::vpx_codec_decode(self.ctx.ptr(), data.as_ptr(), len, ptr::null_mut(), 0)
        };
        check(self.ctx.ptr(), err, "decoding")?;
        let mut iter: vpx::vpx_codec_iter_t = ptr::null();
        let mut out = None;
        loop {
            // SAFETY: iterating the pictures of the decode call just made.
            let img = unsafe { vpx::vpx_codec_get_frame(self.ctx.ptr(), &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: libvpx returned a valid I420 image that stays alive until the next
            // decode call; each plane has `stride × rows` readable bytes, of which the first
            // `width` of each row are copied.
            out = Some(unsafe { copy_image(&*img, pts_us) });
        }
        Ok(out)
    }
}

/// Copies a decoded I420 image into an owned frame.
///
/// # Safety
/// `img` must describe valid I420 planes, each with `stride × rows` readable bytes.
unsafe fn copy_image(img: &vpx::vpx_image_t, pts_us: u64) -> VideoFrame {
    let (w, h) = (img.d_w, img.d_h);
    let (_, ch) = VideoFrame::chroma_size(w, h);
    let plane = |i: usize, rows: u32| {
        let stride = img.stride[i] as usize;
        // SAFETY: guaranteed by the caller: plane `i` has `stride × rows` readable bytes.
        let data = unsafe { std::slice::from_raw_parts(img.planes[i], stride * rows as usize) };
        Strided { data, stride }
    };
    VideoFrame::from_strided(w, h, [plane(0, h), plane(1, ch), plane(2, ch)], pts_us)
}
