//! Camera pixel formats straight to I420, never through RGB: YUYV (4:2:2 packed), NV12
//! (4:2:0 with interleaved chroma) and MJPEG (decoded to YCbCr by zune-jpeg, then chroma
//! averaged 2×2). Cameras deliver one of these three almost always.

use crate::{Error, Result, VideoFrame};

fn check(format: &str, data: &[u8], expected: usize, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
        return Err(Error::Invalid(format!(
            "{format} {width}x{height}: sides must be even and non-zero"
        )));
    }
    if data.len() < expected {
        return Err(Error::Invalid(format!(
            "{format} {width}x{height}: {} bytes, need {expected}",
            data.len()
        )));
    }
    Ok(())
}

/// YUYV (Y0 U Y1 V per pixel pair), as UVC cameras send uncompressed frames.
pub fn yuyv_to_i420(data: &[u8], width: u32, height: u32, capture_us: u64) -> Result<VideoFrame> {
    let (w, h) = (width as usize, height as usize);
    check("YUYV", data, w * h * 2, width, height)?;
    let mut frame = VideoFrame::black(width, height);
    frame.capture_us = capture_us;
    let stride = w * 2;
    for row in 0..h {
        let line = &data[row * stride..(row + 1) * stride];
        for (x, px) in line.chunks_exact(4).enumerate() {
            frame.y[row * w + 2 * x] = px[0];
            frame.y[row * w + 2 * x + 1] = px[2];
        }
    }
    let cw = w / 2;
    for crow in 0..h / 2 {
        let top = &data[2 * crow * stride..(2 * crow + 1) * stride];
        let bottom = &data[(2 * crow + 1) * stride..(2 * crow + 2) * stride];
        for x in 0..cw {
            let avg = |i: usize| {
                (u16::from(top[4 * x + i]) + u16::from(bottom[4 * x + i])).div_ceil(2) as u8
            };
            frame.u[crow * cw + x] = avg(1);
            frame.v[crow * cw + x] = avg(3);
        }
    }
    Ok(frame)
}

/// NV12 (the Y plane, then U and V interleaved at half resolution).
pub fn nv12_to_i420(data: &[u8], width: u32, height: u32, capture_us: u64) -> Result<VideoFrame> {
    let (w, h) = (width as usize, height as usize);
    check("NV12", data, w * h * 3 / 2, width, height)?;
    let mut frame = VideoFrame::black(width, height);
    frame.capture_us = capture_us;
    frame.y.copy_from_slice(&data[..w * h]);
    for (i, uv) in data[w * h..w * h * 3 / 2].chunks_exact(2).enumerate() {
        frame.u[i] = uv[0];
        frame.v[i] = uv[1];
    }
    Ok(frame)
}

/// MJPEG (one baseline JPEG per frame), decoded to YCbCr, chroma averaged to 4:2:0.
pub fn mjpeg_to_i420(data: &[u8], width: u32, height: u32, capture_us: u64) -> Result<VideoFrame> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    check("MJPEG", data, 2, width, height)?;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(data), options);
    let ycbcr = decoder
        .decode()
        .map_err(|e| Error::Invalid(format!("MJPEG frame: {e}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| Error::Invalid("MJPEG frame: no header".into()))?;
    if (u32::from(info.width), u32::from(info.height)) != (width, height) {
        return Err(Error::Invalid(format!(
            "MJPEG frame is {}x{}, the camera said {width}x{height}",
            info.width, info.height
        )));
    }
    let (w, h) = (width as usize, height as usize);
    if ycbcr.len() != w * h * 3 {
        return Err(Error::Invalid(format!(
            "MJPEG frame decoded to {} bytes, not YCbCr {width}x{height}",
            ycbcr.len()
        )));
    }
    let mut frame = VideoFrame::black(width, height);
    frame.capture_us = capture_us;
    for (y, px) in frame.y.iter_mut().zip(ycbcr.chunks_exact(3)) {
        *y = px[0];
    }
    let cw = w / 2;
    for crow in 0..h / 2 {
        for x in 0..cw {
            let at = |dy: usize, dx: usize, c: usize| {
                u16::from(ycbcr[((2 * crow + dy) * w + 2 * x + dx) * 3 + c])
            };
            let avg =
                |c: usize| ((at(0, 0, c) + at(0, 1, c) + at(1, 0, c) + at(1, 1, c) + 2) / 4) as u8;
            frame.u[crow * cw + x] = avg(1);
            frame.v[crow * cw + x] = avg(2);
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mark;
    use crate::pattern::PatternSource;
    use crate::quality::psnr_y;

    fn pattern() -> VideoFrame {
        PatternSource::new(320, 180).expect("pattern").frame(42, 7)
    }

    #[test]
    fn yuyv_and_nv12_round_trip_the_pattern_exactly_where_they_can() {
        let f = pattern();
        let (w, cw) = (320usize, 160usize);
        // Build YUYV from I420 (chroma repeated on both rows, so the average gives it back).
        let mut yuyv = Vec::with_capacity(w * 180 * 2);
        for row in 0..180 {
            for x in 0..cw {
                let c = (row / 2) * cw + x;
                yuyv.extend_from_slice(&[
                    f.y[row * w + 2 * x],
                    f.u[c],
                    f.y[row * w + 2 * x + 1],
                    f.v[c],
                ]);
            }
        }
        let back = yuyv_to_i420(&yuyv, 320, 180, 99).expect("yuyv");
        assert_eq!(
            (back.y == f.y, back.u == f.u, back.v == f.v),
            (true, true, true)
        );
        assert_eq!(back.capture_us, 99);

        let mut nv12 = f.y.clone();
        for (u, v) in f.u.iter().zip(&f.v) {
            nv12.extend_from_slice(&[*u, *v]);
        }
        let back = nv12_to_i420(&nv12, 320, 180, 5).expect("nv12");
        let mut expected = f.clone();
        expected.capture_us = 5;
        assert_eq!(back, expected);

        // Short buffers and odd sizes are refused, not read past.
        assert!(yuyv_to_i420(&yuyv[..100], 320, 180, 0).is_err());
        assert!(nv12_to_i420(&nv12, 321, 180, 0).is_err());
    }

    #[test]
    fn mjpeg_decodes_to_the_picture_and_keeps_the_mark() {
        let f = pattern();
        // A camera-style JPEG made from YCbCr directly (4:2:0, quality 85).
        let mut ycbcr = Vec::with_capacity(320 * 180 * 3);
        for row in 0..180usize {
            for col in 0..320usize {
                let c = (row / 2) * 160 + col / 2;
                ycbcr.extend_from_slice(&[f.y[row * 320 + col], f.u[c], f.v[c]]);
            }
        }
        let mut jpeg = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut jpeg, 85);
        enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        enc.encode(&ycbcr, 320, 180, jpeg_encoder::ColorType::Ycbcr)
            .expect("encode");
        let back = mjpeg_to_i420(&jpeg, 320, 180, 1).expect("mjpeg");
        let psnr = psnr_y(&f, &back);
        assert!(psnr > 35.0, "PSNR {psnr:.1} dB");
        assert_eq!(mark::read(&back).expect("mark").frame_id, 42);
        assert!(mjpeg_to_i420(&jpeg, 640, 360, 0).is_err(), "size mismatch");
        assert!(mjpeg_to_i420(b"not a jpeg", 320, 180, 0).is_err());
    }
}
