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
