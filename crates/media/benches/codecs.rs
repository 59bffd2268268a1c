//! Video encode and decode per frame on one core, side by side with ffmpeg (Debian's package)
//! doing the same job on the same frames, in one run. VP8: Confer's libvpx wrapper against
//! ffmpeg's libvpx (the same library: the ratio is the wrapper's cost). H.264: Confer's
//! OpenH264 against ffmpeg's libx264 (ultrafast, zerolatency) and ffmpeg's own H.264 decoder —
//! different implementations, shown as a reference point (Debian's ffmpeg has no OpenH264).
//!
//! Run: `cargo bench -p confer-media --bench codecs [-- --frames 300 --rounds 3]`
//! (needs `ffmpeg`: `apt-get install ffmpeg`; without it only Confer's side is measured).
//!
//! Both sides: realtime deadline, fixed speed 6 (`cpu-used -6`), one thread, no lag, CBR at the
//! same bitrate, quantizer 2..56, error resilient. Confer's figure is the time of each
//! `encode`/`decode` call (median and p95); ffmpeg's is its CPU time (`-benchmark`, user +
//! system)
//! divided by the frame count, which also includes reading the Y4M and writing IVF, so the
//! ratio slightly favours Confer for encode. Decoding uses libvpx on both sides
//! (`-c:v libvpx`, not ffmpeg's own VP8 decoder).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "stats.rs"]
mod stats;
use stats::{arg, median, p95};

use confer_media::h264::{H264Config, H264Decoder, H264Encoder};
use confer_media::pattern::PatternSource;
use confer_media::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
use confer_media::{VideoDecoder, VideoEncoder, VideoFrame};

fn write_y4m(path: &Path, frames: &[VideoFrame]) {
    let (w, h) = (frames[0].width as usize, frames[0].height as usize);
    let file = std::fs::File::create(path).expect("create y4m");
    let mut enc = y4m::EncoderBuilder::new(w, h, y4m::Ratio::new(30, 1))
        .with_colorspace(y4m::Colorspace::C420jpeg)
        .write_header(std::io::BufWriter::new(file))
        .expect("y4m header");
    for f in frames {
        enc.write_frame(&y4m::Frame::new([&f.y, &f.u, &f.v], None))
            .expect("y4m frame");
    }
}

/// Runs ffmpeg with `-benchmark`; returns its CPU seconds (user + system).
fn ffmpeg_utime(args: &[&str]) -> Option<f64> {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "info",
            "-benchmark",
            "-y",
        ])
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let field =
        |name: &str| -> Option<f64> { text.split(name).nth(1)?.split('s').next()?.parse().ok() };
    Some(field("utime=")? + field("stime=")?)
}

struct Row {
    label: String,
    enc: f64,
    enc_p95: f64,
    dec: f64,
    ff_enc: Option<f64>,
    ff_dec: Option<f64>,
    kbps: f64,
    ff_kbps: Option<f64>,
}

fn main() {
    let n = arg("--frames", 300);
    let rounds = arg("--rounds", 3);
    let dir = std::env::temp_dir().join(format!("confer-vp8-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let mut rows = Vec::new();
    let cases = [
        ("VP8", 640u32, 360u32, 600u32),
        ("VP8", 1280, 720, 1500),
        ("H.264", 640, 360, 600),
        ("H.264", 1280, 720, 1500),
    ];
    for (codec, w, h, kbps) in cases {
        let vp8 = codec == "VP8";
        let src = PatternSource::new(w, h).expect("pattern");
        let frames: Vec<VideoFrame> = (0..n as u32)
            .map(|i| src.frame(i, u64::from(i) * 33_333))
            .collect();
        let y4m = dir.join(format!("{w}x{h}.y4m"));
        let ivf = dir.join(format!("{w}x{h}.{}", if vp8 { "ivf" } else { "h264" }));
        write_y4m(&y4m, &frames);
        let (mut enc_med, mut enc_p95, mut dec_med) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ff_enc, mut ff_dec, mut sizes, mut ff_sizes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut enc: Box<dyn VideoEncoder> = if vp8 {
                Box::new(Vp8Encoder::new(Vp8Config::new(w, h, kbps)).expect("encoder"))
            } else {
                Box::new(H264Encoder::new(H264Config::new(w, h, kbps)).expect("encoder"))
            };
            let mut encoded = Vec::with_capacity(n);
            let mut times = Vec::with_capacity(n);
            for f in &frames {
                let t = Instant::now();
                let out = enc.encode(f, false).expect("encode");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                encoded.extend(out);
            }
            sizes.push(encoded.iter().map(|e| e.data.len()).sum::<usize>() as f64);
            enc_med.push(median(&mut times));
            enc_p95.push(p95(&mut times));
            let mut dec: Box<dyn VideoDecoder> = if vp8 {
                Box::new(Vp8Decoder::new().expect("decoder"))
            } else {
                Box::new(H264Decoder::new().expect("decoder"))
            };
            let mut times = Vec::with_capacity(n);
            for e in &encoded {
                let t = Instant::now();
                let pic = dec.decode(&e.data, e.pts_us).expect("decode");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(pic.is_some());
            }
            dec_med.push(median(&mut times));

            let rate = format!("{kbps}k");
            let (y4m_s, ivf_s) = (y4m.to_string_lossy(), ivf.to_string_lossy());
            #[rustfmt::skip]
            let vp8_args = [
                "-f", "yuv4mpegpipe", "-i", &y4m_s,
                "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "-6", "-threads", "1",
                "-lag-in-frames", "0", "-error-resilient", "default", "-auto-alt-ref", "0",
                "-b:v", &rate, "-minrate", &rate, "-maxrate", &rate,
                "-qmin", "2", "-qmax", "56", "-undershoot-pct", "100", "-overshoot-pct", "15",
                "-f", "ivf", &ivf_s,
            ];
            #[rustfmt::skip]
            let x264_args = [
                "-f", "yuv4mpegpipe", "-i", &y4m_s,
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-threads", "1", "-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate,
                "-f", "h264", &ivf_s,
            ];
            let enc_args: &[&str] = if vp8 { &vp8_args } else { &x264_args };
            if let Some(u) = ffmpeg_utime(enc_args) {
                ff_enc.push(u * 1000.0 / n as f64);
                let size = std::fs::metadata(&ivf).map(|m| m.len()).unwrap_or(0);
                // IVF: 32-byte file header and 12 bytes per frame; raw H.264 has none.
                let framing = if vp8 { 32 + 12 * n as u64 } else { 0 };
                ff_sizes.push(size.saturating_sub(framing) as f64);
                let decoder = if vp8 { "libvpx" } else { "h264" };
                #[rustfmt::skip]
                let dec_args = ["-threads", "1", "-c:v", decoder, "-i", &ivf_s, "-f", "null", "-"];
                if let Some(u) = ffmpeg_utime(&dec_args) {
                    ff_dec.push(u * 1000.0 / n as f64);
                }
            }
        }
        let secs = n as f64 / 30.0;
        let to_kbps = |bytes: f64| bytes * 8.0 / secs / 1000.0;
        rows.push(Row {
            label: format!("{codec} {w}x{h} @ {kbps} kbit/s"),
            enc: median(&mut enc_med),
            enc_p95: median(&mut enc_p95),
            dec: median(&mut dec_med),
            ff_enc: (!ff_enc.is_empty()).then(|| median(&mut ff_enc)),
            ff_dec: (!ff_dec.is_empty()).then(|| median(&mut ff_dec)),
            kbps: to_kbps(median(&mut sizes)),
            ff_kbps: (!ff_sizes.is_empty()).then(|| to_kbps(median(&mut ff_sizes))),
        });
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{n} frames of the moving pattern, {rounds} rounds, medians over rounds; ms per frame on one core"
    );
    println!(
        "| | Confer encode median / p95 | ffmpeg encode | ratio ffmpeg/Confer | Confer decode median | ffmpeg decode | ratio | bitrate Confer / ffmpeg |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let opt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
    for r in rows {
        println!(
            "| {} | {:.2} / {:.2} | {} | {} | {:.2} | {} | {} | {:.0} / {} kbit/s |",
            r.label,
            r.enc,
            r.enc_p95,
            opt(r.ff_enc),
            opt(r.ff_enc.map(|f| f / r.enc)),
            r.dec,
            opt(r.ff_dec),
            opt(r.ff_dec.map(|f| f / r.dec)),
            r.kbps,
            r.ff_kbps.map_or("n/a".into(), |k| format!("{k:.0}")),
        );
    }
}
