//! VP8 (Debian's libvpx) and H.264 (OpenH264) through the same traits, with the synthetic
//! pattern: quality, the frame mark at 300 kbit/s, forced keyframes, runtime bitrate changes
//! measured on the output, bad input. Every test runs for both codecs.

use confer_media::h264::{H264Config, H264Decoder, H264Encoder};
use confer_media::mark;
use confer_media::pattern::PatternSource;
use confer_media::quality::psnr_y;
use confer_media::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
use confer_media::{Error, VideoDecoder, VideoEncoder};

#[derive(Debug, Clone, Copy)]
enum Codec {
    Vp8,
    H264,
}

const CODECS: [Codec; 2] = [Codec::Vp8, Codec::H264];

fn encoder(codec: Codec, w: u32, h: u32, kbps: u32) -> Box<dyn VideoEncoder> {
    match codec {
        Codec::Vp8 => Box::new(Vp8Encoder::new(Vp8Config::new(w, h, kbps)).expect("VP8 encoder")),
        Codec::H264 => {
            Box::new(H264Encoder::new(H264Config::new(w, h, kbps)).expect("H.264 encoder"))
        }
    }
}

fn decoder(codec: Codec) -> Box<dyn VideoDecoder> {
    match codec {
        Codec::Vp8 => Box::new(Vp8Decoder::new().expect("VP8 decoder")),
        Codec::H264 => Box::new(H264Decoder::new().expect("H.264 decoder")),
    }
}

const FRAME_US: u64 = 33_333;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Encodes frames `range` of the pattern; returns (encoded bytes per frame, PSNR per frame,
/// frames whose mark read back exactly).
fn run(
    enc: &mut dyn VideoEncoder,
    dec: &mut dyn VideoDecoder,
    src: &PatternSource,
    range: std::ops::Range<u32>,
) -> (Vec<usize>, Vec<f64>, usize) {
    let (mut sizes, mut psnrs, mut marks) = (Vec::new(), Vec::new(), 0);
    for n in range {
        let frame = src.frame(n, u64::from(n) * FRAME_US);
        let encoded = enc
            .encode(&frame, false)
            .expect("encode")
            .expect("no drops configured");
        sizes.push(encoded.data.len());
        let decoded = dec
            .decode(&encoded.data, encoded.pts_us)
            .expect("decode")
            .expect("a picture");
        assert_eq!((decoded.width, decoded.height), (frame.width, frame.height));
        assert_eq!(decoded.capture_us, frame.capture_us);
        psnrs.push(psnr_y(&frame, &decoded));
        if mark::read(&decoded)
            == Some(mark::Mark {
                frame_id: n,
                capture_us: frame.capture_us,
            })
        {
            marks += 1;
        }
    }
    (sizes, psnrs, marks)
}

fn kbps(sizes: &[usize]) -> f64 {
    sizes.iter().sum::<usize>() as f64 * 8.0 / (sizes.len() as f64 / 30.0) / 1000.0
}

#[test]
fn round_trip_quality_at_1_mbps() {
    let src = PatternSource::new(640, 360).expect("pattern");
    for codec in CODECS {
        let (mut enc, mut dec) = (encoder(codec, 640, 360, 1000), decoder(codec));
        let (_, psnrs, marks) = run(&mut *enc, &mut *dec, &src, 0..60);
        let p = median(psnrs);
        eprintln!("{codec:?} 640x360 @ 1000 kbit/s: median luma PSNR {p:.1} dB");
        assert!(p > 30.0, "{codec:?}: median PSNR {p:.1} dB");
        assert_eq!(marks, 60, "{codec:?}: every frame's mark reads back");
    }
}

#[test]
fn the_mark_survives_300_kbps() {
    // The sizes the resolution ladder picks at 300 kbit/s. (720p30 of a full-picture pan needs
    // about 750 kbit/s at VP8's coarsest quantizer: a 720p sender at 300 kbit/s must step down.)
    for codec in CODECS {
        for (w, h) in [(640, 360), (320, 180)] {
            let src = PatternSource::new(w, h).expect("pattern");
            let (mut enc, mut dec) = (encoder(codec, w, h, 300), decoder(codec));
            let (sizes, psnrs, marks) = run(&mut *enc, &mut *dec, &src, 0..90);
            let out = kbps(&sizes[30..]);
            eprintln!(
                "{codec:?} {w}x{h} @ 300 kbit/s: {out:.0} kbit/s out, median PSNR {:.1} dB, {marks}/90 marks",
                median(psnrs)
            );
            assert!(
                (225.0..=375.0).contains(&out),
                "{codec:?} {w}x{h}: {out:.0} kbit/s for a 300 target"
            );
            assert_eq!(
                marks, 90,
                "{codec:?} {w}x{h}: every mark survives 300 kbit/s"
            );
        }
    }
}

#[test]
fn round_trip_720p() {
    let src = PatternSource::new(1280, 720).expect("pattern");
    for codec in CODECS {
        let (mut enc, mut dec) = (encoder(codec, 1280, 720, 1500), decoder(codec));
        let (sizes, psnrs, marks) = run(&mut *enc, &mut *dec, &src, 0..45);
        let (out, p) = (kbps(&sizes[15..]), median(psnrs));
        eprintln!("{codec:?} 1280x720 @ 1500 kbit/s: {out:.0} kbit/s out, median PSNR {p:.1} dB");
        assert!(p > 32.0, "{codec:?}: median PSNR {p:.1} dB");
        assert!(out < 1500.0 * 1.25, "{codec:?}: {out:.0} kbit/s");
        assert_eq!(marks, 45, "{codec:?}");
    }
}

#[test]
fn keyframes_come_first_and_on_request_only() {
    let src = PatternSource::new(640, 360).expect("pattern");
    for codec in CODECS {
        let mut enc = encoder(codec, 640, 360, 800);
        let mut encoded = Vec::new();
        for n in 0..40 {
            let force = n == 25;
            let f = enc
                .encode(&src.frame(n, u64::from(n) * FRAME_US), force)
                .expect("encode")
                .expect("frame");
            encoded.push(f);
        }
        let keys: Vec<usize> = (0..40).filter(|&i| encoded[i].keyframe).collect();
        assert_eq!(keys, [0, 25], "{codec:?}");
        // A decoder that joins at the forced keyframe (as after a PLI) decodes from there on.
        let mut late = decoder(codec);
        for (i, f) in encoded.iter().enumerate().skip(25) {
            let pic = late
                .decode(&f.data, f.pts_us)
                .expect("decode")
                .expect("picture");
            assert_eq!(
                mark::read(&pic).map(|m| m.frame_id),
                Some(i as u32),
                "{codec:?}"
            );
        }
    }
}

#[test]
fn bitrate_changes_take_effect_on_the_output() {
    let src = PatternSource::new(640, 360).expect("pattern");
    for codec in CODECS {
        let (mut enc, mut dec) = (encoder(codec, 640, 360, 1200), decoder(codec));
        let (high, _, _) = run(&mut *enc, &mut *dec, &src, 0..90);
        enc.set_bitrate_kbps(250).expect("set bitrate");
        assert_eq!(enc.bitrate_kbps(), 250);
        let (low, _, marks) = run(&mut *enc, &mut *dec, &src, 90..180);
        // Skip the first second of each phase: the rate controller's buffer settles.
        let (hi, lo) = (kbps(&high[30..]), kbps(&low[30..]));
        eprintln!("{codec:?}: 1200 kbit/s target → {hi:.0} out; 250 kbit/s target → {lo:.0} out");
        assert!(
            lo < hi * 0.5,
            "{codec:?}: output fell from {hi:.0} to {lo:.0} kbit/s only"
        );
        assert!(
            (190.0..=310.0).contains(&lo),
            "{codec:?}: 250 kbit/s target gave {lo:.0}"
        );
        assert!(
            (900.0..=1440.0).contains(&hi),
            "{codec:?}: 1200 kbit/s target gave {hi:.0}"
        );
        assert_eq!(
            marks, 90,
            "{codec:?}: the picture stays readable after the change"
        );
        assert!(enc.set_bitrate_kbps(0).is_err());
    }
}

#[test]
fn the_bitrate_holds_when_fewer_frames_are_taken() {
    // The call's frame-rate reduction takes 2 of every 3 frames of a 30 fps source (20 fps at
    // 100 kbit/s on the 180p rung), or 3 of 5 (18 fps), so frames come 33 and 67 ms apart:
    // the output must stay near the target. Before the encoders followed the rate frames come
    // at, OpenH264 gave 100 and 90 kbit/s here (it budgets by the rate it was told) and VP8
    // 202 and 261 (a fixed duration made each 67 ms gap look like a drop to 15 fps). Not
    // every other frame: the pattern's even frames alone are easy enough for OpenH264 to
    // reach its finest quantiser at 80 kbit/s, whatever the target.
    let (w, h) = (320, 180);
    let src = PatternSource::new(w, h).expect("pattern");
    for codec in CODECS {
        for (taken, of) in [(2u32, 3u32), (3, 5)] {
            let mut enc = encoder(codec, w, h, 150);
            let frames: Vec<u32> = (0..240).filter(|n| n % of < taken).collect();
            let mut bytes = Vec::new();
            for &n in &frames {
                let frame = src.frame(n, 1_000_000 + u64::from(n) * FRAME_US);
                let encoded = enc.encode(&frame, false).expect("encode");
                bytes.push(encoded.map_or(0, |e| e.data.len()));
            }
            // After the first second (the rate controller's buffer settles).
            let fps = 30.0 * f64::from(taken) / f64::from(of);
            let settled = &bytes[fps as usize..];
            let out =
                settled.iter().sum::<usize>() as f64 * 8.0 / (settled.len() as f64 / fps) / 1e3;
            eprintln!("{codec:?} {w}x{h} at {fps:.0} fps, 150 kbit/s target: {out:.0} out");
            assert!(
                (120.0..=190.0).contains(&out),
                "{codec:?} at {fps:.0} fps: {out:.0} kbit/s for a 150 target"
            );
        }
    }
}

#[test]
fn bad_input_gets_clear_errors_and_breaks_nothing() {
    let src = PatternSource::new(640, 360).expect("pattern");
    let wrong = PatternSource::new(320, 180).expect("pattern").frame(0, 0);
    assert!(Vp8Encoder::new(Vp8Config::new(641, 360, 500)).is_err());
    assert!(H264Encoder::new(H264Config::new(641, 360, 500)).is_err());
    for codec in CODECS {
        let mut enc = encoder(codec, 640, 360, 500);
        let err = enc.encode(&wrong, false).expect_err("wrong size");
        assert!(
            matches!(err, Error::Invalid(ref m) if m.contains("320x180")),
            "{err}"
        );
        let mut dec = decoder(codec);
        // Random bytes: either refused with an error or no picture, never a crash.
        let garbage: Vec<u8> = (0..64u32).map(|i| (i * 97 + 13) as u8).collect();
        if let Ok(Some(pic)) = dec.decode(&garbage, 0) {
            panic!(
                "{codec:?} made a {}x{} picture out of garbage",
                pic.width, pic.height
            );
        }
        assert!(dec.decode(&[], 0).is_err());
        // Both still work afterwards.
        let key = enc
            .encode(&src.frame(0, 0), true)
            .expect("encode")
            .expect("frame");
        let pic = dec.decode(&key.data, 0).expect("decode").expect("picture");
        assert_eq!(mark::read(&pic).map(|m| m.frame_id), Some(0), "{codec:?}");
    }
}
