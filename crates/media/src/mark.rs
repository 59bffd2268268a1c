//! A machine-readable mark drawn into video frames: frame id and capture time in big
//! black-and-white blocks that survive lossy coding at 300 kbit/s, read back on the far side of
//! a call by tests and latency benchmarks.
//!
//! Layout: 88 bits in a grid of 22 × 4 blocks at the top-left corner, row by row, most
//! significant bit first: 8 sync bits `10110010`, the 32-bit frame id, 40 bits of capture time
//! (µs, wraps after 12.7 days), and a CRC-8 (polynomial 0x07) over the 9 payload bytes. A block
//! is `width / 40` pixels square (at least 8); bit 1 is luma 235, bit 0 luma 16, chroma neutral.
//! The reader averages the middle half of each block and thresholds at 126, so ringing at block
//! edges and quantisation noise do not flip bits; sync and CRC reject anything else.

use crate::VideoFrame;

const COLS: u32 = 22;
const ROWS: u32 = 4;
const SYNC: u8 = 0b1011_0010;
const TS_BITS: u32 = 40;

/// Microseconds since the Unix epoch: the capture stamp peers on one machine (tests,
/// benchmarks) can compare across processes. Only its low 40 bits travel in the mark.
pub fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How long ago, in µs, a mark stamped `capture_us` (modulo 2^40) was taken, at `now_us`.
pub fn age_us(capture_us: u64, now_us: u64) -> u64 {
    let mask = (1u64 << TS_BITS) - 1;
    (now_us & mask).wrapping_sub(capture_us & mask) & mask
}

/// What a mark carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Frame counter at the source.
    pub frame_id: u32,
    /// Capture time in microseconds, modulo 2^40.
    pub capture_us: u64,
}

/// Side of one block in pixels for a frame `width` wide.
pub fn block_size(width: u32) -> u32 {
    (width / 40).max(8)
}

/// The mark's rectangle (width, height) in pixels.
pub fn area(width: u32) -> (u32, u32) {
    let b = block_size(width);
    (COLS * b, ROWS * b)
}

fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &byte in bytes {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn bits_of(mark: Mark) -> [bool; (COLS * ROWS) as usize] {
    let ts = mark.capture_us & ((1 << TS_BITS) - 1);
    let mut payload = [0u8; 9];
    payload[..4].copy_from_slice(&mark.frame_id.to_be_bytes());
    payload[4..].copy_from_slice(&ts.to_be_bytes()[3..]);
    let mut bytes = [0u8; 11];
    bytes[0] = SYNC;
    bytes[1..10].copy_from_slice(&payload);
    bytes[10] = crc8(&payload);
    let mut bits = [false; (COLS * ROWS) as usize];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    bits
}

/// Draws `mark` into the top-left corner of `frame`. The frame must hold the whole mark
/// (at least 320 pixels wide and 32 high).
pub fn draw(frame: &mut VideoFrame, mark: Mark) {
    let b = block_size(frame.width);
    let (w, h) = area(frame.width);
    assert!(
        w <= frame.width && h <= frame.height,
        "frame too small for a mark"
    );
    let bits = bits_of(mark);
    let (cw, _) = VideoFrame::chroma_size(frame.width, frame.height);
    for (i, &bit) in bits.iter().enumerate() {
        let (bx, by) = ((i as u32 % COLS) * b, (i as u32 / COLS) * b);
        let luma = if bit { 235 } else { 16 };
        for y in by..by + b {
            let row = (y * frame.width) as usize;
            frame.y[row + bx as usize..row + (bx + b) as usize].fill(luma);
        }
        for y in by / 2..(by + b) / 2 {
            let row = (y * cw) as usize;
            let (x0, x1) = (row + (bx / 2) as usize, row + ((bx + b) / 2) as usize);
            frame.u[x0..x1].fill(128);
            frame.v[x0..x1].fill(128);
        }
    }
}

/// Reads the mark back, or `None` when there is none (sync or CRC do not match).
pub fn read(frame: &VideoFrame) -> Option<Mark> {
    let b = block_size(frame.width);
    let (w, h) = area(frame.width);
    if w > frame.width || h > frame.height {
        return None;
    }
    let mut bytes = [0u8; 11];
    for i in 0..(COLS * ROWS) as usize {
        let (bx, by) = ((i as u32 % COLS) * b, (i as u32 / COLS) * b);
        let (x0, x1, y0, y1) = (bx + b / 4, bx + 3 * b / 4, by + b / 4, by + 3 * b / 4);
        let mut sum = 0u32;
        for y in y0..y1 {
            let row = (y * frame.width) as usize;
            sum += frame.y[row + x0 as usize..row + x1 as usize]
                .iter()
                .map(|&p| u32::from(p))
                .sum::<u32>();
        }
        let mean = sum / ((x1 - x0) * (y1 - y0));
        if mean > 126 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    if bytes[0] != SYNC || crc8(&bytes[1..10]) != bytes[10] {
        return None;
    }
    let frame_id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let mut ts = [0u8; 8];
    ts[3..].copy_from_slice(&bytes[5..10]);
    Some(Mark {
        frame_id,
        capture_us: u64::from_be_bytes(ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_wrap_with_the_stamp() {
        let mask = (1u64 << TS_BITS) - 1;
        assert_eq!(age_us(1_000, 1_750), 750);
        // The stamp wrapped between capture and now.
        assert_eq!(age_us(mask - 9, (1 << 40) + 20), 30);
        assert!(wall_clock_us() > 1_700_000_000_000_000);
    }

    #[test]
    fn round_trips_exactly_and_rejects_what_is_not_a_mark() {
        for (w, h) in [(320, 180), (640, 360), (1280, 720)] {
            let mut f = VideoFrame::black(w, h);
            assert_eq!(read(&f), None, "a black frame carries no mark");
            let mark = Mark {
                frame_id: 0xDEAD_BEEF,
                capture_us: (1 << 40) - 3,
            };
            draw(&mut f, mark);
            assert_eq!(read(&f), Some(mark));
            // Flip one block (column 5 of row 1, inside the frame id): the CRC catches it.
            let b = block_size(w) as usize;
            let (x0, y0) = (5 * b, b);
            let v = f.y[(y0 + b / 2) * w as usize + x0 + b / 2];
            let flipped = if v > 128 { 16 } else { 235 };
            for y in y0..y0 + b {
                let r = y * w as usize;
                f.y[r + x0..r + x0 + b].fill(flipped);
            }
            assert_eq!(read(&f), None, "{w}x{h}");
        }
    }

    #[test]
    fn survives_noise_below_the_threshold_margin() {
        let mut f = VideoFrame::black(640, 360);
        let mark = Mark {
            frame_id: 7,
            capture_us: 123_456_789,
        };
        draw(&mut f, mark);
        // ±80 of deterministic noise on every pixel: block means stay on their side.
        let mut s = 12345u32;
        for p in f.y.iter_mut() {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = (s >> 16) % 161;
            *p = (i32::from(*p) + n as i32 - 80).clamp(0, 255) as u8;
        }
        assert_eq!(read(&f), Some(mark));
    }
}
