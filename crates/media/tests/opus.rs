//! Opus round trips with synthetic tones: the tone survives at the right frequency and level,
//! FEC rebuilds a lost frame that concealment could only guess, DTX empties silence, bitrate
//! changes show in the packet sizes, bad input gets clear errors.

use confer_media::opus::{FRAME_SAMPLES, OpusConfig, OpusDecoder, OpusEncoder};
use confer_media::tone::{power_at, rms, sine};

fn frames(hz: f64, amplitude: f32, count: usize) -> Vec<Vec<f32>> {
    (0..count)
        .map(|i| sine(hz, amplitude, i * FRAME_SAMPLES, FRAME_SAMPLES))
        .collect()
}

#[test]
fn a_tone_comes_back_at_its_frequency_and_level() {
    let mut enc = OpusEncoder::new(OpusConfig::default()).expect("encoder");
    let mut dec = OpusDecoder::new().expect("decoder");
    let mut out = Vec::new();
    for f in frames(1000.0, 0.25, 50) {
        let p = enc.encode(&f).expect("encode");
        out.extend(dec.decode(&p.data).expect("decode"));
    }
    // Past the codec's start-up (the first 100 ms).
    let steady = &out[5 * FRAME_SAMPLES..];
    let total = f64::from(rms(steady)).powi(2);
    let at_tone = power_at(steady, 1000.0);
    let level_db = 20.0 * (rms(steady) / (0.25 / 2f32.sqrt())).log10();
    eprintln!(
        "1 kHz: {:.1}% of energy at the tone, level {level_db:+.2} dB",
        100.0 * at_tone / total
    );
    assert!(at_tone / total > 0.95, "the tone dominates");
    assert!(level_db.abs() < 1.0, "level within 1 dB: {level_db:+.2}");
}

#[test]
fn fec_rebuilds_a_lost_frame_that_concealment_cannot() {
    // 600 Hz, then from frame 30 on 1500 Hz; frame 30 is lost. Concealment can only continue
    // what it heard (600 Hz); FEC carried in frame 31 knows frame 30 was 1500 Hz.
    let config = OpusConfig {
        expected_loss_pct: 20,
        ..OpusConfig::default()
    };
    let mut enc = OpusEncoder::new(config).expect("encoder");
    let mut signal = frames(600.0, 0.3, 30);
    signal.extend((30..40).map(|i| sine(1500.0, 0.3, i * FRAME_SAMPLES, FRAME_SAMPLES)));
    let packets: Vec<Vec<u8>> = signal
        .iter()
        .map(|f| enc.encode(f).expect("encode").data)
        .collect();

    let mut with_fec = OpusDecoder::new().expect("decoder");
    let mut concealed = OpusDecoder::new().expect("decoder");
    for p in &packets[..30] {
        with_fec.decode(p).expect("decode");
        concealed.decode(p).expect("decode");
    }
    let rebuilt = with_fec.recover(&packets[31]).expect("recover");
    let guessed = concealed.conceal().expect("conceal");
    assert_eq!(
        (rebuilt.len(), guessed.len()),
        (FRAME_SAMPLES, FRAME_SAMPLES)
    );
    // Skip the first quarter: the decoder's overlap still holds the end of frame 29.
    let (r, g) = (&rebuilt[240..], &guessed[240..]);
    let (r_new, r_old) = (power_at(r, 1500.0), power_at(r, 600.0));
    let (g_new, g_old) = (power_at(g, 1500.0), power_at(g, 600.0));
    eprintln!(
        "rebuilt: 1500 Hz {r_new:.4} / 600 Hz {r_old:.4}; concealed: {g_new:.4} / {g_old:.4}"
    );
    assert!(r_new > 4.0 * r_old, "FEC brings back the new tone");
    assert!(g_new < g_old, "concealment (without FEC) could not know it");
    // Both decoders carry on with the next packet.
    assert_eq!(
        with_fec.decode(&packets[31]).expect("decode").len(),
        FRAME_SAMPLES
    );
}

#[test]
fn dtx_shrinks_silence_and_not_speech() {
    let mut enc = OpusEncoder::new(OpusConfig {
        dtx: true,
        ..OpusConfig::default()
    })
    .expect("encoder");
    let mut sizes = Vec::new();
    let mut flagged = 0;
    for f in frames(440.0, 0.3, 20) {
        sizes.push(enc.encode(&f).expect("encode").data.len());
    }
    let silence = vec![0f32; FRAME_SAMPLES];
    let mut silent_sizes = Vec::new();
    for _ in 0..50 {
        let p = enc.encode(&silence).expect("encode");
        flagged += usize::from(p.dtx);
        silent_sizes.push(p.data.len());
    }
    let tone_mean = sizes[5..].iter().sum::<usize>() as f64 / 15.0;
    let tail = &silent_sizes[25..];
    eprintln!("tone packets {tone_mean:.0} bytes; silent packets after 0.5 s: {tail:?}");
    // DTX packets are 1-3 bytes, with a small comfort-noise update every 400 ms.
    let tiny = tail.iter().filter(|&&s| s <= 3).count();
    assert!(tiny * 10 >= tail.len() * 9, "{tiny} of {} tiny", tail.len());
    assert!(tail.iter().all(|&s| s < 30), "updates stay small");
    assert!(tone_mean > 40.0);
    assert!(flagged >= 20, "the encoder reports DTX");
}

#[test]
fn bitrate_changes_show_in_the_packets() {
    let mut enc = OpusEncoder::new(OpusConfig {
        bitrate_bps: 64_000,
        ..OpusConfig::default()
    })
    .expect("encoder");
    // A two-tone chord with a slow tremolo: not trivially compressible.
    let signal: Vec<Vec<f32>> = (0..100)
        .map(|i| {
            let a = sine(330.0, 0.2, i * FRAME_SAMPLES, FRAME_SAMPLES);
            let b = sine(2750.0, 0.1, i * FRAME_SAMPLES, FRAME_SAMPLES);
            let g = 0.6 + 0.4 * ((i as f32) * 0.3).sin();
            a.iter().zip(&b).map(|(x, y)| g * (x + y)).collect()
        })
        .collect();
    let mean = |enc: &mut OpusEncoder, part: &[Vec<f32>]| {
        let sizes: Vec<usize> = part
            .iter()
            .map(|f| enc.encode(f).expect("encode").data.len())
            .collect();
        sizes[10..].iter().sum::<usize>() as f64 * 8.0 / 0.02 / (sizes.len() - 10) as f64
    };
    let high = mean(&mut enc, &signal[..50]);
    enc.set_bitrate_bps(16_000).expect("set");
    let low = mean(&mut enc, &signal[50..]);
    eprintln!("64 kbit/s target → {high:.0} bit/s; 16 kbit/s target → {low:.0} bit/s");
    assert!(low < high * 0.5);
    assert!((10_000.0..=22_000.0).contains(&low), "{low:.0}");
    assert!(enc.set_bitrate_bps(1_000).is_err());
}

#[test]
fn bad_input_gets_clear_errors() {
    let mut enc = OpusEncoder::new(OpusConfig::default()).expect("encoder");
    let err = enc.encode(&[0.0; 480]).expect_err("10 ms");
    assert!(err.to_string().contains("960"), "{err}");
    let mut dec = OpusDecoder::new().expect("decoder");
    assert!(dec.decode(&[]).is_err());
    // A malformed packet (frame count code 3 with a zero count) is refused by libopus.
    assert!(dec.decode(&[0xff, 0x00]).is_err());
    // The decoder still works.
    let p = enc
        .encode(&sine(440.0, 0.3, 0, FRAME_SAMPLES))
        .expect("encode");
    assert_eq!(dec.decode(&p.data).expect("decode").len(), FRAME_SAMPLES);
}

#[test]
fn tone_bursts_survive_loss_with_fec() {
    use confer_media::tone::{BurstDetector, FRAME_10MS, ToneBursts};
    // 3 s of 100 ms bursts every 300 ms; 10% of packets lost mid-burst and, worse, the first
    // packet of every other burst. Lost frames are rebuilt from the next packet's FEC: every
    // burst is still found within one 10 ms window of where it was sent (the codec's fixed
    // delay). Concealment alone finds those bursts a whole packet late (checked by hand: 90 ms).
    let mut src = ToneBursts::new(1000.0, 0.3, 100, 300);
    let mut enc = OpusEncoder::new(OpusConfig::default()).expect("encoder");
    let mut dec = OpusDecoder::new().expect("decoder");
    let packets: Vec<Vec<u8>> = (0..150)
        .map(|_| {
            enc.encode(&src.next_samples(FRAME_SAMPLES))
                .expect("encode")
                .data
        })
        .collect();
    let lost = |i: usize| i % 10 == 7 || i % 30 == 15;
    let mut out = Vec::new();
    for i in 0..packets.len() {
        let pcm = if !lost(i) {
            dec.decode(&packets[i]).expect("decode")
        } else if let Some(next) = packets.get(i + 1) {
            dec.recover(next).expect("recover")
        } else {
            dec.conceal().expect("conceal")
        };
        out.extend(pcm);
    }
    let mut det = BurstDetector::new(1000.0, 0.005);
    for w in out.chunks(FRAME_10MS) {
        det.push(w);
    }
    let sent: Vec<usize> = (0..10).map(|k| src.onset(k)).collect();
    let found = det.onsets();
    eprintln!("sent {sent:?}\nfound {found:?}");
    assert_eq!(found.len(), sent.len(), "every burst found, no extra ones");
    for (s, f) in sent.iter().zip(found) {
        let late = *f as i64 - *s as i64;
        assert!(
            (0..=FRAME_10MS as i64).contains(&late),
            "onset {s} found at {f}"
        );
    }
}
