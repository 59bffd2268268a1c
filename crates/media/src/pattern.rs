//! The synthetic video source: a moving test pattern with the frame mark (see [`crate::mark`])
//! in its top-left corner. Deterministic: frame `n` is always the same picture, so tests can
//! compare what the far side decoded with what was sent.

use crate::VideoFrame;
use crate::mark::{self, Mark};

/// Generates frames of a moving pattern.
#[derive(Debug, Clone)]
pub struct PatternSource {
    width: u32,
    height: u32,
    next_id: u32,
}

impl PatternSource {
    /// A source of `width × height` frames (even, at least 320 × 180).
    pub fn new(width: u32, height: u32) -> crate::Result<Self> {
        if width < 320 || height < 180 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(crate::Error::Invalid(format!(
                "pattern size {width}x{height}: needs even sides of at least 320x180"
            )));
        }
        Ok(Self {
            width,
            height,
            next_id: 0,
        })
    }

    /// Picture size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Frame `n` of the pattern, stamped with `capture_us`.
    pub fn frame(&self, n: u32, capture_us: u64) -> VideoFrame {
        let (w, h) = (self.width, self.height);
        let mut f = VideoFrame::black(w, h);
        let t = n as i64;
        // A diagonal ramp scrolling right (whole-picture motion, like a panning camera) with
        // soft stripes: about as hard to code as a webcam picture, not as hard as noise.
        for y in 0..h {
            for x in 0..w {
                let g = (x as i64 + y as i64 / 2 + 3 * t).rem_euclid(256) as u32;
                let stripe = ((y / 24) % 2) * 12;
                f.y[(y * w + x) as usize] = (40 + g * 150 / 256 + stripe) as u8;
            }
        }
        let (cw, ch) = VideoFrame::chroma_size(w, h);
        for y in 0..ch {
            for x in 0..cw {
                // The same ramp as the luma (sampled at the co-sited luma pixel), so all
                // three planes move together as a real pan does.
                let i = (y * cw + x) as usize;
                let g = (2 * x as i64 + y as i64 + 3 * t).rem_euclid(256) as u32;
                f.u[i] = (96 + g / 4) as u8;
                f.v[i] = (160 - g / 4) as u8;
            }
        }
        // A bright box bouncing across the picture.
        let size = h / 5;
        let span = (w - size) as i64;
        let bx = ((t * 9) % (2 * span) - span).unsigned_abs() as u32;
        let by = h / 2 - size / 2;
        for y in by..by + size {
            let row = (y * w) as usize;
            f.y[row + bx as usize..row + (bx + size) as usize].fill(220);
        }
        mark::draw(
            &mut f,
            Mark {
                frame_id: n,
                capture_us,
            },
        );
        f.capture_us = capture_us;
        f
    }

    /// The next frame, stamped with `capture_us`.
    pub fn next_frame(&mut self, capture_us: u64) -> VideoFrame {
        let f = self.frame(self.next_id, capture_us);
        self.next_id = self.next_id.wrapping_add(1);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_move_carry_their_mark_and_repeat_exactly() {
        let mut src = PatternSource::new(640, 360).expect("size");
        let a = src.next_frame(1_000);
        let b = src.next_frame(34_333);
        assert!(a.is_consistent() && b.is_consistent());
        assert_ne!(a.y, b.y, "the picture moves");
        assert_eq!(
            mark::read(&b),
            Some(Mark {
                frame_id: 1,
                capture_us: 34_333
            })
        );
        assert_eq!(src.frame(1, 34_333), b, "deterministic");
        assert!(PatternSource::new(100, 100).is_err());
    }
}
