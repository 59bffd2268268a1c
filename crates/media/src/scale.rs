//! Scaling I420 frames to a ladder rung (each plane resized on its own with a bilinear filter
//! by `fast_image_resize`; chroma planes keep their half size).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::{Error, Result, VideoFrame};

/// Resizes I420 frames; keeps its buffers between calls.
#[derive(Debug, Default)]
pub struct Scaler {
    resizer: Resizer,
}

impl Scaler {
    /// A scaler.
    pub fn new() -> Self {
        Self::default()
    }

    /// `frame` at `width × height` (even); a copy when the size already matches.
    pub fn scale(&mut self, frame: &VideoFrame, width: u32, height: u32) -> Result<VideoFrame> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(Error::Invalid(format!(
                "scale to {width}x{height}: sides must be even"
            )));
        }
        if !frame.is_consistent() {
            return Err(Error::Invalid("inconsistent frame planes".into()));
        }
        if (frame.width, frame.height) == (width, height) {
            return Ok(frame.clone());
        }
        let (scw, sch) = VideoFrame::chroma_size(frame.width, frame.height);
        let (dcw, dch) = VideoFrame::chroma_size(width, height);
        Ok(VideoFrame {
            width,
            height,
            y: self.plane(&frame.y, frame.width, frame.height, width, height)?,
            u: self.plane(&frame.u, scw, sch, dcw, dch)?,
            v: self.plane(&frame.v, scw, sch, dcw, dch)?,
            capture_us: frame.capture_us,
        })
    }

    fn plane(&mut self, src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32) -> Result<Vec<u8>> {
        let invalid = |e: &dyn std::fmt::Display| Error::Invalid(format!("scaling a plane: {e}"));
        let src = ImageRef::new(sw, sh, src, PixelType::U8).map_err(|e| invalid(&e))?;
        let buffer = crate::frame::plane(dw as usize * dh as usize);
        let mut dst = Image::from_vec_u8(dw, dh, buffer, PixelType::U8).map_err(|e| invalid(&e))?;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| invalid(&e))?;
        Ok(dst.into_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mark;
    use crate::pattern::PatternSource;

    #[test]
    fn down_the_ladder_keeps_the_picture_and_the_mark() {
        let src = PatternSource::new(1280, 720)
            .expect("pattern")
            .frame(42, 1_400_000);
        let mut s = Scaler::new();
        for (w, h) in [(960, 540), (640, 360), (320, 180)] {
            let small = s.scale(&src, w, h).expect("scale");
            assert!(small.is_consistent());
            assert_eq!(
                (small.width, small.height, small.capture_us),
                (w, h, 1_400_000)
            );
            // The mark's blocks scale with the width, so it still reads back.
            assert_eq!(mark::read(&small).map(|m| m.frame_id), Some(42), "{w}x{h}");
        }
        assert!(s.scale(&src, 641, 360).is_err());
        assert_eq!(s.scale(&src, 1280, 720).expect("same"), src);
    }
}
