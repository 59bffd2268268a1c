//! Raw video frames: planar I420 (BT.601 limited range), tightly packed.

use std::sync::Mutex;

/// Planes of frames that were dropped, kept for the next frame of the same size. A 720p
/// pipeline at 30 frames/s makes and drops a dozen planes of up to 900 KB a frame (capture,
/// scaling, decoding, the views); freed to malloc, they either stay in its arenas (its
/// threshold for giving large blocks their own mapping rises as they are freed) or, with
/// that threshold fixed, cost a fresh zeroed mapping each time.
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Planes smaller than this are left to malloc.
const POOLED_FROM: usize = 64 * 1024;
/// The most the pool keeps, bytes (about six 720p frames).
const POOL_BYTES: usize = 8 << 20;

/// A plane of `len` bytes, from the pool when one of that size is there (its contents are
/// whatever the last frame left: the caller writes every byte).
pub(crate) fn plane(len: usize) -> Vec<u8> {
    if len >= POOLED_FROM {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = pool.iter().position(|p| p.len() == len) {
            return pool.swap_remove(at);
        }
    }
    vec![0; len]
}

/// Gives a plane back to the pool (or to malloc, when it is small or the pool is full).
fn recycle(plane: Vec<u8>) {
    if plane.len() < POOLED_FROM || plane.capacity() != plane.len() {
        return;
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let held: usize = pool.iter().map(Vec::len).sum();
    if held + plane.len() <= POOL_BYTES {
        pool.push(plane);
    }
}

/// A copy of `src` in a plane from the pool.
pub(crate) fn plane_copy(src: &[u8]) -> Vec<u8> {
    let mut out = plane(src.len());
    out.copy_from_slice(src);
    out
}

/// One raw frame: I420, luma `width × height`, each chroma plane half that in both directions
/// (rounded up). Its planes go back to a pool when it is dropped, for the next frame of the
/// same size.
#[derive(Debug, PartialEq, Eq)]
pub struct VideoFrame {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Luma plane, `width × height` bytes.
    pub y: Vec<u8>,
    /// Cb plane.
    pub u: Vec<u8>,
    /// Cr plane.
    pub v: Vec<u8>,
    /// Capture time in microseconds on the capturing clock.
    pub capture_us: u64,
}

impl Drop for VideoFrame {
    fn drop(&mut self) {
        for p in [&mut self.y, &mut self.u, &mut self.v] {
            recycle(std::mem::take(p));
        }
    }
}

impl Clone for VideoFrame {
    fn clone(&self) -> Self {
        Self {
            width: self.width,
            height: self.height,
            y: plane_copy(&self.y),
            u: plane_copy(&self.u),
            v: plane_copy(&self.v),
            capture_us: self.capture_us,
        }
    }
}

impl VideoFrame {
    /// A black frame.
    pub fn black(width: u32, height: u32) -> Self {
        let (cw, ch) = Self::chroma_size(width, height);
        let filled = |len: u32, value: u8| {
            let mut p = plane(len as usize);
            p.fill(value);
            p
        };
        Self {
            width,
            height,
            y: filled(width * height, 16),
            u: filled(cw * ch, 128),
            v: filled(cw * ch, 128),
            capture_us: 0,
        }
    }

    /// Size of each chroma plane.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// Whether the plane sizes agree with the dimensions.
    pub fn is_consistent(&self) -> bool {
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        self.y.len() == (self.width * self.height) as usize
            && self.u.len() == (cw * ch) as usize
            && self.v.len() == (cw * ch) as usize
    }
}

/// One plane of a decoder's picture: its bytes and the distance between rows.
pub(crate) struct Strided<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) stride: usize,
}

impl VideoFrame {
    /// Copies a decoder's strided I420 planes into a tightly packed frame. Each plane must
    /// hold its rows at `stride` apart (the last row may end right after its pixels).
    pub(crate) fn from_strided(
        width: u32,
        height: u32,
        [y, u, v]: [Strided<'_>; 3],
        capture_us: u64,
    ) -> Self {
        let (cw, ch) = Self::chroma_size(width, height);
        let copy = |p: Strided<'_>, pw: u32, ph: u32| {
            let (pw, ph) = (pw as usize, ph as usize);
            let mut out = plane(pw * ph);
            for (row, dst) in out.chunks_exact_mut(pw.max(1)).take(ph).enumerate() {
                dst.copy_from_slice(&p.data[row * p.stride..row * p.stride + pw]);
            }
            out
        };
        Self {
            width,
            height,
            y: copy(y, width, height),
            u: copy(u, cw, ch),
            v: copy(v, cw, ch),
            capture_us,
        }
    }

    /// Checks that this frame can go to an encoder opened for `width × height`.
    pub(crate) fn check_size(&self, width: u32, height: u32) -> crate::Result<()> {
        if (self.width, self.height) != (width, height) || !self.is_consistent() {
            return Err(crate::Error::Invalid(format!(
                "a {}x{} frame for a {width}x{height} encoder",
                self.width, self.height
            )));
        }
        Ok(())
    }
}

/// Checks an encoder's picture size: both sides even and non-zero.
pub(crate) fn check_encoder_size(codec: &str, width: u32, height: u32) -> crate::Result<()> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(crate::Error::Invalid(format!(
            "{codec} encoder {width}x{height}: sides must be even and non-zero"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_frames_planes_serve_the_next_frame_of_its_size() {
        // A size no other test uses (the pool is shared by the tests running alongside).
        let (w, h) = (642, 362);
        let first = VideoFrame::black(w, h);
        let (y, u) = (first.y.as_ptr(), first.u.as_ptr());
        drop(first);
        let next = VideoFrame::black(w, h);
        assert_eq!(
            (next.y.as_ptr(), next.u.as_ptr()),
            (y, u),
            "the same planes"
        );
        assert!(next.y.iter().all(|&b| b == 16) && next.u.iter().all(|&b| b == 128));
        // A copy has planes of its own, equal to the original's.
        let copy = next.clone();
        assert_ne!(copy.y.as_ptr(), next.y.as_ptr());
        assert_eq!(copy, next);
    }

    #[test]
    fn the_pool_keeps_a_bounded_amount() {
        let frames: Vec<VideoFrame> = (0..40)
            .map(|i| VideoFrame::black(646 + 2 * i, 364))
            .collect();
        drop(frames);
        let held: usize = POOL.lock().unwrap().iter().map(Vec::len).sum();
        assert!(held <= POOL_BYTES, "{held} bytes held");
    }
}
