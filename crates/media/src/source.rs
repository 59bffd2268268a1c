//! Video sources behind one trait, chosen by a config string: `pattern` (the synthetic moving
//! pattern), `file:<path>` (a looping Y4M file) or `camera[:<id or name>]` (nokhwa, see
//! [`crate::camera`]).
//!
//! Sources are pulled: `next_frame(capture_us)` returns the next picture stamped with the
//! caller's clock, so a capture thread can pace them and tests can run faster than real time.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::pattern::PatternSource;
use crate::{Error, Result, VideoFrame};

/// A source of raw video frames.
pub trait VideoSource: Send {
    /// Picture size.
    fn size(&self) -> (u32, u32);
    /// Nominal frame rate (frames per second).
    fn fps(&self) -> f64;
    /// The next frame, stamped `capture_us`.
    fn next_frame(&mut self, capture_us: u64) -> Result<VideoFrame>;
}

impl VideoSource for PatternSource {
    fn size(&self) -> (u32, u32) {
        PatternSource::size(self)
    }

    fn fps(&self) -> f64 {
        30.0
    }

    fn next_frame(&mut self, capture_us: u64) -> Result<VideoFrame> {
        Ok(PatternSource::next_frame(self, capture_us))
    }
}

/// Opens the source a config string names: `pattern[:WxH]`, `file:<path.y4m>`, `camera`
/// (the first camera) or `camera:<id or name>` (cameras run at up to 1280x720, 30 fps).
pub fn open(spec: &str) -> Result<Box<dyn VideoSource>> {
    if let Some(path) = spec.strip_prefix("file:") {
        return Ok(Box::new(Y4mSource::open(path)?));
    }
    if spec == "camera" || spec.starts_with("camera:") {
        let selector = match spec.strip_prefix("camera:") {
            Some(selector) => selector.to_owned(),
            None => crate::camera::cameras()?
                .into_iter()
                .next()
                .map(|c| c.id)
                .ok_or_else(|| {
                    Error::Device(
                        "this machine has no camera (use the test pattern or a file)".into(),
                    )
                })?,
        };
        return Ok(Box::new(crate::camera::CameraSource::open(
            &selector, 1280, 720, 30,
        )?));
    }
    if let Some(rest) = spec.strip_prefix("pattern") {
        let (w, h) = match rest.strip_prefix(':') {
            None if rest.is_empty() => (1280, 720),
            Some(size) => size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .ok_or_else(|| Error::Invalid(format!("video source {spec:?}: size is WxH")))?,
            None => return Err(Error::Invalid(format!("unknown video source {spec:?}"))),
        };
        return Ok(Box::new(PatternSource::new(w, h)?));
    }
    Err(Error::Invalid(format!(
        "unknown video source {spec:?}: use camera, camera:<id>, pattern, pattern:WxH or \
         file:<path.y4m>"
    )))
}

/// Opens `spec`, or the test pattern at 1280x720 when that fails (no camera, camera busy):
/// the call still has video, and the error says why it is not the camera.
pub fn open_or_pattern(spec: &str) -> (Box<dyn VideoSource>, Option<Error>) {
    match open(spec) {
        Ok(source) => (source, None),
        Err(e) => {
            let pattern = PatternSource::new(1280, 720).expect("1280x720 is a valid pattern size");
            (Box::new(pattern), Some(e))
        }
    }
}

/// A Y4M file (4:2:0, 8-bit), played in a loop.
pub struct Y4mSource {
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    size: (u32, u32),
    fps: f64,
}

impl std::fmt::Debug for Y4mSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mSource")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("fps", &self.fps)
            .finish_non_exhaustive()
    }
}

fn y4m_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {e}", path.display()))
}

impl Y4mSource {
    /// Opens `path`; refuses anything but 8-bit 4:2:0 with even sides.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let file = File::open(&path).map_err(|e| y4m_err(&path, e))?;
        let decoder = y4m::decode(BufReader::new(file)).map_err(|e| y4m_err(&path, e))?;
        let cs = decoder.get_colorspace();
        if !matches!(
            cs,
            y4m::Colorspace::C420
                | y4m::Colorspace::C420jpeg
                | y4m::Colorspace::C420paldv
                | y4m::Colorspace::C420mpeg2
        ) {
            return Err(y4m_err(
                &path,
                format!("colour space {cs:?}: only 8-bit 4:2:0"),
            ));
        }
        let (w, h) = (decoder.get_width() as u32, decoder.get_height() as u32);
        if !w.is_multiple_of(2) || !h.is_multiple_of(2) {
            return Err(y4m_err(&path, format!("{w}x{h}: sides must be even")));
        }
        let rate = decoder.get_framerate();
        let fps = if rate.den == 0 {
            30.0
        } else {
            rate.num as f64 / rate.den as f64
        };
        Ok(Self {
            path,
            decoder,
            size: (w, h),
            fps,
        })
    }

    fn rewind(&mut self) -> Result<()> {
        let file = File::open(&self.path).map_err(|e| y4m_err(&self.path, e))?;
        self.decoder = y4m::decode(BufReader::new(file)).map_err(|e| y4m_err(&self.path, e))?;
        Ok(())
    }
}

impl VideoSource for Y4mSource {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn fps(&self) -> f64 {
        self.fps
    }

    fn next_frame(&mut self, capture_us: u64) -> Result<VideoFrame> {
        for attempt in 0..2 {
            match self.decoder.read_frame() {
                Ok(frame) => {
                    let (w, h) = self.size;
                    return Ok(VideoFrame {
                        width: w,
                        height: h,
                        y: crate::frame::plane_copy(frame.get_y_plane()),
                        u: crate::frame::plane_copy(frame.get_u_plane()),
                        v: crate::frame::plane_copy(frame.get_v_plane()),
                        capture_us,
                    });
                }
                Err(y4m::Error::EOF) if attempt == 0 => self.rewind()?,
                Err(e) => return Err(y4m_err(&self.path, e)),
            }
        }
        Err(y4m_err(&self.path, "no frames"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mark;

    fn write_y4m(path: &Path, frames: &[VideoFrame]) {
        let file = File::create(path).expect("create");
        let (w, h) = (frames[0].width as usize, frames[0].height as usize);
        let mut enc = y4m::EncoderBuilder::new(w, h, y4m::Ratio::new(25, 1))
            .write_header(file)
            .expect("header");
        for f in frames {
            enc.write_frame(&y4m::Frame::new([&f.y, &f.u, &f.v], None))
                .expect("frame");
        }
    }

    #[test]
    fn a_y4m_file_loops_and_keeps_its_frames() {
        let dir = std::env::temp_dir().join(format!("confer-y4m-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("clip.y4m");
        let pattern = PatternSource::new(320, 180).expect("pattern");
        let frames: Vec<VideoFrame> = (0..3).map(|n| pattern.frame(n, 0)).collect();
        write_y4m(&path, &frames);

        let mut src = open(&format!("file:{}", path.display())).expect("open");
        assert_eq!((src.size(), src.fps()), ((320, 180), 25.0));
        let ids: Vec<u32> = (0..7)
            .map(|i| {
                let f = src.next_frame(1000 * i).expect("frame");
                assert_eq!(f.capture_us, 1000 * i, "stamped by the caller");
                mark::read(&f).expect("mark").frame_id
            })
            .collect();
        assert_eq!(ids, [0, 1, 2, 0, 1, 2, 0], "loops");
        std::fs::write(dir.join("bad.y4m"), b"not a y4m file").expect("write");
        let err = Y4mSource::open(dir.join("bad.y4m")).expect_err("bad file");
        assert!(err.to_string().contains("bad.y4m"), "{err}");
        assert!(Y4mSource::open(dir.join("missing.y4m")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn specs_choose_sources_and_bad_ones_are_explained() {
        assert_eq!(open("pattern").expect("pattern").size(), (1280, 720));
        assert_eq!(open("pattern:640x360").expect("pattern").size(), (640, 360));
        for bad in ["pattern:640", "webcam", "pattern640x360", "pattern:10x10"] {
            assert!(open(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_camera_falls_back_to_the_pattern_and_says_why() {
        // No camera here (nor in CI); a machine with one has no camera called this.
        let (source, err) = open_or_pattern("camera:Confer Test Camera 9000");
        assert_eq!(source.size(), (1280, 720));
        let err = err.expect("the reason");
        assert!(err.to_string().contains("Confer Test Camera 9000"), "{err}");
        let (source, err) = open_or_pattern("pattern:320x180");
        assert_eq!((source.size(), err.is_none()), ((320, 180), true));
    }
}
