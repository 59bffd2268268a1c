//! Picture quality: PSNR of the luma plane.

use crate::VideoFrame;

/// Luma PSNR in dB between two frames of the same size (`f64::INFINITY` when identical).
pub fn psnr_y(a: &VideoFrame, b: &VideoFrame) -> f64 {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "frames differ in size"
    );
    let sse: u64 =
        a.y.iter()
            .zip(&b.y)
            .map(|(&x, &y)| {
                let d = i64::from(x) - i64::from(y);
                (d * d) as u64
            })
            .sum();
    if sse == 0 {
        return f64::INFINITY;
    }
    let mse = sse as f64 / a.y.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}
