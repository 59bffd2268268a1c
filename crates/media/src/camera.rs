//! Cameras through nokhwa (V4L2 on Linux, AVFoundation, Media Foundation).
//!
//! A camera lives on its own thread (nokhwa's handles are not `Send`): it opens the device
//! with an explicit format chosen by [`choose_mode`] (falling back to the next candidates
//! when the device refuses one), converts each frame straight to I420 ([`crate::convert`])
//! and hands it over a drop-oldest queue. When reading fails it re-enumerates: a camera that
//! is gone is reported as unplugged and reopened when it shows up again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

use crate::capture::DropOldest;
use crate::source::VideoSource;
use crate::{Error, Result, VideoFrame};

/// Pixel formats we convert, in order of preference at equal size and rate (no decoding
/// first, then the cheaper unpacking, then JPEG).
pub const FORMATS: [PixelFormat; 3] = [PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Mjpeg];

/// A camera pixel format Confer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 4:2:0, interleaved chroma.
    Nv12,
    /// 4:2:2 packed.
    Yuyv,
    /// Motion JPEG.
    Mjpeg,
}

/// One way a camera can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Pixel format.
    pub format: PixelFormat,
}

/// A camera as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// Id to open it by (the platform's index, e.g. `0` for /dev/video0).
    pub id: String,
    /// Human-readable name (also accepted when opening).
    pub name: String,
}

/// Orders the modes worth trying for a wanted size and rate, best first: formats we can
/// read, closest in size (preferring not to upscale), then at least the wanted rate, then
/// the preferred pixel format. The first is opened; the rest are fallbacks.
pub fn choose_mode(available: &[Mode], width: u32, height: u32, fps: u32) -> Vec<Mode> {
    let want_area = i64::from(width) * i64::from(height);
    let mut modes: Vec<Mode> = available.to_vec();
    modes.sort_by_key(|m| {
        let area = i64::from(m.width) * i64::from(m.height);
        let too_small = area < want_area;
        let size_miss = (area - want_area).abs();
        let slow = m.fps < fps;
        let fps_miss = (i64::from(m.fps) - i64::from(fps)).abs();
        let pref = FORMATS
            .iter()
            .position(|f| *f == m.format)
            .unwrap_or(FORMATS.len());
        (too_small, size_miss, slow, fps_miss, pref)
    });
    modes.dedup();
    modes
}

fn pixel_format(f: FrameFormat) -> Option<PixelFormat> {
    match f {
        FrameFormat::NV12 => Some(PixelFormat::Nv12),
        FrameFormat::YUYV => Some(PixelFormat::Yuyv),
        FrameFormat::MJPEG => Some(PixelFormat::Mjpeg),
        _ => None,
    }
}

fn frame_format(f: PixelFormat) -> FrameFormat {
    match f {
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
    }
}

/// Turns nokhwa's errors into what a user can act on.
fn explain(what: &str, e: &nokhwa::NokhwaError) -> Error {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let why = if lower.contains("busy") {
        "it is in use by another application"
    } else if lower.contains("permission") || lower.contains("denied") {
        "no permission to use it (on Linux: add your user to the video group)"
    } else if lower.contains("no such") || lower.contains("not found") {
        "it is not connected"
    } else {
        "the device refused"
    };
    Error::Device(format!("{what}: {why} ({text})"))
}

/// Cameras on this machine (empty when there are none: that is not an error).
pub fn cameras() -> Result<Vec<CameraInfo>> {
    let found = match nokhwa::query(ApiBackend::Auto) {
        Ok(found) => found,
        // No video subsystem at all (a server, a container): no cameras.
        Err(nokhwa::NokhwaError::UnsupportedOperationError(_)) => Vec::new(),
        Err(e) => return Err(explain("listing cameras", &e)),
    };
    Ok(found
        .into_iter()
        .map(|c| CameraInfo {
            id: c.index().to_string(),
            name: c.human_name(),
        })
        .collect())
}

/// Finds a camera by id or name.
fn find(selector: &str) -> Result<CameraInfo> {
    let all = cameras()?;
    all.iter()
        .find(|c| c.id == selector)
        .or_else(|| all.iter().find(|c| c.name == selector))
        .cloned()
        .ok_or_else(|| {
            Error::Device(if all.is_empty() {
                format!("no camera {selector:?}: this machine has no camera (use the test pattern or a file)")
            } else {
                let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
                format!("no camera {selector:?} (found: {})", names.join(", "))
            })
        })
}

fn index_of(info: &CameraInfo) -> CameraIndex {
    info.id
        .parse::<u32>()
        .map_or_else(|_| CameraIndex::String(info.id.clone()), CameraIndex::Index)
}

/// Opens `info` in the best mode it accepts; returns the camera and that mode.
fn open_camera(info: &CameraInfo, want: (u32, u32, u32)) -> Result<(nokhwa::Camera, Mode)> {
    const READABLE: [FrameFormat; 3] = [FrameFormat::NV12, FrameFormat::YUYV, FrameFormat::MJPEG];
    let what = format!("camera {:?}", info.name);
    let probe =
        RequestedFormat::with_formats(RequestedFormatType::AbsoluteHighestFrameRate, &READABLE);
    let mut camera = nokhwa::Camera::new(index_of(info), probe).map_err(|e| explain(&what, &e))?;
    let modes: Vec<Mode> = camera
        .compatible_camera_formats()
        .map_err(|e| explain(&what, &e))?
        .into_iter()
        .filter_map(|f| {
            Some(Mode {
                width: f.width(),
                height: f.height(),
                fps: f.frame_rate(),
                format: pixel_format(f.format())?,
            })
        })
        .collect();
    let candidates = choose_mode(&modes, want.0, want.1, want.2);
    let mut refused = Vec::new();
    for mode in candidates.iter().take(4) {
        let format =
            CameraFormat::new_from(mode.width, mode.height, frame_format(mode.format), mode.fps);
        let request = RequestedFormat::with_formats(RequestedFormatType::Exact(format), &READABLE);
        match camera
            .set_camera_requset(request)
            .and_then(|_| camera.open_stream())
        {
            Ok(()) => return Ok((camera, *mode)),
            Err(e) => refused.push(format!(
                "{}x{}@{} {:?}: {e}",
                mode.width, mode.height, mode.fps, mode.format
            )),
        }
    }
    Err(Error::Device(if candidates.is_empty() {
        format!("{what}: offers no format Confer reads (NV12, YUYV or MJPEG)")
    } else {
        format!(
            "{what}: refused every format tried ({})",
            refused.join("; ")
        )
    }))
}

fn convert(mode: Mode, data: &[u8]) -> Result<VideoFrame> {
    let (w, h) = (mode.width, mode.height);
    match mode.format {
        PixelFormat::Nv12 => crate::convert::nv12_to_i420(data, w, h, 0),
        PixelFormat::Yuyv => crate::convert::yuyv_to_i420(data, w, h, 0),
        PixelFormat::Mjpeg => crate::convert::mjpeg_to_i420(data, w, h, 0),
    }
}

struct Shared {
    queue: DropOldest<VideoFrame>,
    stop: AtomicBool,
    /// Why no frames come (unplugged, …), cleared when they flow again.
    problem: Mutex<Option<String>>,
}

/// A camera as a [`VideoSource`].
pub struct CameraSource {
    info: CameraInfo,
    mode: Mode,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CameraSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraSource")
            .field("info", &self.info)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// How often a vanished camera is looked for.
const REPLUG_POLL: Duration = Duration::from_millis(500);

impl CameraSource {
    /// Opens the camera `selector` names (id or name) near `width`×`height` at `fps`.
    pub fn open(selector: &str, width: u32, height: u32, fps: u32) -> Result<Self> {
        let info = find(selector)?;
        let shared = Arc::new(Shared {
            queue: DropOldest::new(2),
            stop: AtomicBool::new(false),
            problem: Mutex::new(None),
        });
        let (opened_tx, opened_rx) = mpsc::channel();
        let worker = Arc::clone(&shared);
        let thread_info = info.clone();
        let thread = std::thread::Builder::new()
            .name("confer-camera".into())
            .spawn(move || run(thread_info, (width, height, fps), &worker, &opened_tx))
            .map_err(|e| Error::Device(format!("camera thread: {e}")))?;
        let mode = opened_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| Error::Device(format!("camera {:?} did not open", info.name)))??;
        Ok(Self {
            info,
            mode,
            shared,
            thread: Some(thread),
        })
    }

    /// The camera.
    pub fn info(&self) -> &CameraInfo {
        &self.info
    }

    /// The mode it runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

fn set_problem(shared: &Shared, problem: Option<String>) {
    *shared.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
}

/// The camera thread: open, read, convert, hand over; on failure re-enumerate and reopen.
fn run(
    info: CameraInfo,
    want: (u32, u32, u32),
    shared: &Shared,
    opened: &mpsc::Sender<Result<Mode>>,
) {
    let mut first = Some(opened);
    while !shared.stop.load(Ordering::Relaxed) {
        let (mut camera, mode) = match open_camera(&info, want) {
            Ok(ok) => ok,
            Err(e) => {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                set_problem(shared, Some(e.to_string()));
                std::thread::sleep(REPLUG_POLL);
                continue;
            }
        };
        if let Some(tx) = first.take() {
            let _ = tx.send(Ok(mode));
        }
        set_problem(shared, None);
        while !shared.stop.load(Ordering::Relaxed) {
            let frame = camera
                .frame_raw()
                .map_err(|e| explain(&format!("camera {:?}", info.name), &e))
                .and_then(|data| convert(mode, &data));
            match frame {
                Ok(frame) => {
                    set_problem(shared, None);
                    shared.queue.push(frame);
                }
                Err(e) => {
                    let gone = find(&info.id).is_err() && find(&info.name).is_err();
                    set_problem(
                        shared,
                        Some(if gone {
                            format!("camera {:?} was unplugged", info.name)
                        } else {
                            e.to_string()
                        }),
                    );
                    if gone {
                        break; // reopen once it is back
                    }
                }
            }
        }
        let _ = camera.stop_stream();
    }
}

impl VideoSource for CameraSource {
    fn size(&self) -> (u32, u32) {
        (self.mode.width, self.mode.height)
    }

    fn fps(&self) -> f64 {
        f64::from(self.mode.fps)
    }

    /// The newest frame not yet taken (waiting up to a second), stamped `capture_us`; an
    /// error saying why when none comes (unplugged, busy, …).
    fn next_frame(&mut self, capture_us: u64) -> Result<VideoFrame> {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(mut frame) = self.shared.queue.pop(Duration::from_millis(50)) {
                frame.capture_us = capture_us;
                return Ok(frame);
            }
            let problem = self
                .shared
                .problem
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(problem) = problem {
                return Err(Error::Device(problem));
            }
            if Instant::now() >= deadline {
                return Err(Error::Device(format!(
                    "camera {:?} delivers no frames",
                    self.info.name
                )));
            }
        }
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.queue.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u32, height: u32, fps: u32, format: PixelFormat) -> Mode {
        Mode {
            width,
            height,
            fps,
            format,
        }
    }

    #[test]
    fn the_wanted_size_and_rate_win_then_the_cheaper_format() {
        use PixelFormat::*;
        // A typical USB webcam: YUYV only fast at small sizes, MJPEG fast at all sizes.
        let cam = [
            mode(640, 480, 30, Yuyv),
            mode(1280, 720, 10, Yuyv),
            mode(1280, 720, 30, Mjpeg),
            mode(1920, 1080, 30, Mjpeg),
            mode(640, 480, 30, Mjpeg),
            mode(320, 240, 30, Nv12),
        ];
        let order = choose_mode(&cam, 1280, 720, 30);
        assert_eq!(
            order[0],
            mode(1280, 720, 30, Mjpeg),
            "720p30 needs MJPEG here"
        );
        assert_eq!(
            order[1],
            mode(1280, 720, 10, Yuyv),
            "then the same size, slower"
        );
        // 640x480 at 30: YUYV before MJPEG (no JPEG decoding).
        assert_eq!(choose_mode(&cam, 640, 480, 30)[0], mode(640, 480, 30, Yuyv));
        // Nothing that big: the largest rather than upscaling a small one.
        assert_eq!(
            choose_mode(&cam, 3840, 2160, 30)[0],
            mode(1920, 1080, 30, Mjpeg)
        );
        // Larger is preferred to smaller when the exact size is missing.
        assert_eq!(
            choose_mode(&cam, 960, 540, 30)[0],
            mode(1280, 720, 30, Mjpeg)
        );
        assert!(choose_mode(&[], 640, 480, 30).is_empty());
    }

    #[test]
    fn without_a_camera_opening_one_says_so_clearly() {
        // This machine (and CI) has no camera: nokhwa's listing is empty, and opening names
        // what to do instead.
        let list = cameras().expect("listing works without cameras");
        if !list.is_empty() {
            return; // a developer machine with a webcam: nothing to check here
        }
        let err = CameraSource::open("0", 640, 480, 30).expect_err("no camera");
        let text = err.to_string();
        assert!(
            text.contains("no camera") && text.contains("pattern"),
            "{text}"
        );
    }
}
