//! The media engine's per-call costs on one core.
//!
//! 1. Audio chain per 10 ms, send side: echo cancellation + noise suppression + automatic
//!    gain (sonora) on the microphone frame, the far-end reference through the canceller, and
//!    Opus encoding (one 20 ms packet per two frames, amortised). Receive side: jitter buffer
//!    and Opus decoding through `Playout`. Speech-like signals on both ends, echo through a
//!    simulated room, so the canceller works as in a call. Target: under 0.5 ms per 10 ms.
//! 2. Capture to encoded: the test pattern captured on its own paced thread (30 fps) and
//!    handed over the drop-oldest queue to a VP8 encoder thread; the latency of each frame
//!    from its capture stamp to the end of its `encode` call, at 640x360 and 1280x720.
//!
//! Run: `cargo bench -p confer-media --bench pipeline [-- --seconds 10 --frames 300]`

#[path = "stats.rs"]
mod stats;
use stats::{arg, median, p95};

use std::time::{Duration, Instant};

use confer_media::VideoEncoder;
use confer_media::apm::{AudioProcessor, ProcessingConfig};
use confer_media::audio::SpeechSource;
use confer_media::capture::Capture;
use confer_media::jitter::{JitterConfig, Playout};
use confer_media::opus::{FRAME_SAMPLES, OpusConfig, OpusEncoder};
use confer_media::pattern::PatternSource;
use confer_media::tone::FRAME_10MS;
use confer_media::vp8::{Vp8Config, Vp8Encoder};

fn audio(seconds: usize) {
    let frames = seconds * 100;
    let mut apm = AudioProcessor::new(ProcessingConfig::default());
    let mut enc = OpusEncoder::new(OpusConfig::default()).expect("opus");
    let mut playout = Playout::new(JitterConfig::default()).expect("playout");
    let mut far = SpeechSource::new(1);
    let mut near = SpeechSource::new(2);
    let (mut send_us, mut recv_us) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    let mut echo = vec![0.0f32; 48 * 60];
    let mut pending: Vec<f32> = Vec::with_capacity(FRAME_SAMPLES);
    let mut seq = 0u16;
    for k in 0..frames {
        let far_frame = far.next_samples(FRAME_10MS);
        let talk = near.next_samples(FRAME_10MS);
        echo.extend_from_slice(&far_frame);
        let delayed = &echo[echo.len() - FRAME_10MS - 48 * 50..echo.len() - 48 * 50];
        let mut mic: Vec<f32> = delayed
            .iter()
            .zip(&talk)
            .map(|(e, t)| 0.4 * e + if k % 400 < 150 { *t } else { 0.0 })
            .collect();
        if echo.len() > 48_000 {
            echo.drain(..echo.len() - 48 * 60);
        }

        let t = Instant::now();
        apm.render(&far_frame).expect("render");
        apm.capture(&mut mic).expect("capture");
        pending.extend_from_slice(&mic);
        let packet = if pending.len() == FRAME_SAMPLES {
            let p = enc.encode(&pending).expect("encode");
            pending.clear();
            Some(p)
        } else {
            None
        };
        send_us.push(t.elapsed().as_secs_f64() * 1e6);

        if let Some(p) = packet {
            playout.push(seq, p.data, k as u64 * 10_000);
            seq = seq.wrapping_add(1);
        }
        let t = Instant::now();
        let out = playout.next_10ms(k as u64 * 10_000);
        recv_us.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(out.len(), FRAME_10MS);
    }
    // Opus works on 20 ms, so every other 10 ms carries the codec: the mean is the cost per
    // 10 ms of audio, the p95 the worst frames.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (send, recv) = (mean(&send_us), mean(&recv_us));
    println!(
        "audio per 10 ms ({frames} frames): send (AEC+NS+AGC + Opus encode) mean {send:.0} µs, \
         median {:.0} µs, p95 {:.0} µs; receive (jitter buffer + Opus decode) mean {recv:.0} µs, \
         p95 {:.0} µs; both {:.0} µs = {:.1}% of real time",
        median(&mut send_us),
        p95(&mut send_us),
        p95(&mut recv_us),
        send + recv,
        (send + recv) / 100.0
    );
    if let Some(erle) = apm.stats().erle_db {
        println!("  (the canceller's own ERLE estimate at the end: {erle:.1} dB)");
    }
}

fn capture_to_encoded(width: u32, height: u32, frames: usize) {
    let epoch = Instant::now();
    let capture = Capture::start(
        Box::new(PatternSource::new(width, height).expect("pattern")),
        epoch,
    );
    let kbps = if width >= 1280 { 1500 } else { 600 };
    let mut enc = Vp8Encoder::new(Vp8Config::new(width, height, kbps)).expect("vp8");
    let mut latency_ms = Vec::with_capacity(frames);
    let mut encode_ms = Vec::with_capacity(frames);
    while latency_ms.len() < frames {
        let frame = capture
            .next(Duration::from_secs(2))
            .expect("the capture thread delivers");
        let t = Instant::now();
        enc.encode(&frame, false).expect("encode");
        encode_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let done_us = epoch.elapsed().as_micros() as u64;
        latency_ms.push((done_us - frame.capture_us) as f64 / 1e3);
    }
    let stats = capture.stats();
    println!(
        "capture → encoded, VP8 {width}x{height} at 30 fps ({frames} frames): median {:.2} ms, p95 {:.2} ms \
         (encode alone median {:.2} ms; {} of {} captured frames dropped by the hand-off)",
        median(&mut latency_ms),
        p95(&mut latency_ms),
        median(&mut encode_ms),
        stats.dropped,
        stats.captured
    );
}

fn main() {
    audio(arg("--seconds", 10));
    let frames = arg("--frames", 300);
    capture_to_encoded(640, 360, frames);
    capture_to_encoded(1280, 720, frames);
}
