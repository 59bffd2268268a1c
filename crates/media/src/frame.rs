//! Raw video frames: planar I420 (BT.601 limited range), tightly packed.

/// One raw frame: I420, luma `width × height`, each chroma plane half that in both directions
/// (rounded up).
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl VideoFrame {
    /// A black frame.
    pub fn black(width: u32, height: u32) -> Self {
        let (cw, ch) = Self::chroma_size(width, height);
        Self {
            width,
            height,
            y: vec![16; (width * height) as usize],
            u: vec![128; (cw * ch) as usize],
            v: vec![128; (cw * ch) as usize],
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
            let mut out = Vec::with_capacity(pw * ph);
            for row in 0..ph {
                out.extend_from_slice(&p.data[row * p.stride..row * p.stride + pw]);
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
