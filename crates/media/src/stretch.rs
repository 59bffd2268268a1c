//! Lengthening or shortening one decoded packet by a pitch period, so the jitter buffer can
//! change its depth without a gap or a skip (NetEq's preemptive expand and accelerate).
//!
//! Voiced speech and tones repeat every pitch period: inserting one more period, or taking one
//! out, changes the duration by 2.5-10 ms and is not heard, where concealing a whole 20 ms
//! packet (the buffer's other way to deepen) or dropping one (its other way to catch up) is.
//! The period is found by normalised cross-correlation; the joint is a linear cross-fade over
//! the whole period, so both ends meet the original samples. A segment with no clear period
//! (noise, unvoiced speech) is left alone unless it is quiet, where any length is inaudible.
//!
//! Written here rather than taken from a crate: the time-stretch crates on crates.io stretch a
//! stream to a tempo through a window of their own (latency, and no say in where a packet
//! ends); this needs one period in or out of the packet just decoded, now, or nothing.

use crate::tone::SAMPLE_RATE;

/// Shortest period tried: 2.5 ms (400 Hz).
const MIN_LAG: usize = SAMPLE_RATE as usize / 400;
/// Longest period tried: 10 ms (100 Hz).
const MAX_LAG: usize = SAMPLE_RATE as usize / 100;
/// How alike the two periods must be for the joint to be inaudible.
const MIN_CORRELATION: f32 = 0.9;
/// Below this level (about -50 dBFS) a segment is quiet enough to stretch however it sounds.
const QUIET_RMS: f32 = 0.003;

/// The period, in samples, at which the segments `x[a..a + lag]` and `x[b..b + lag]`
/// (`(a, b) = at(lag)`) are most alike, if alike enough to splice there; for quiet audio the
/// longest.
fn period(x: &[f32], at: impl Fn(usize) -> (usize, usize)) -> Option<usize> {
    if crate::tone::rms(x) < QUIET_RMS {
        return Some(MAX_LAG);
    }
    let mut best = None;
    let mut best_corr = MIN_CORRELATION;
    for lag in MIN_LAG..=MAX_LAG {
        let (a, b) = at(lag);
        let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
        for (&p, &q) in x[a..a + lag].iter().zip(&x[b..b + lag]) {
            ab += p * q;
            aa += p * p;
            bb += q * q;
        }
        let corr = ab / (aa * bb).sqrt().max(f32::MIN_POSITIVE);
        if corr > best_corr {
            best_corr = corr;
            best = Some(lag);
        }
    }
    best
}

/// `a` fading out into `b` fading in, sample by sample.
fn cross_fade(a: &[f32], b: &[f32]) -> impl Iterator<Item = f32> {
    let n = a.len() as f32;
    a.iter().zip(b).enumerate().map(move |(i, (&p, &q))| {
        let w = (i as f32 + 0.5) / n;
        p * (1.0 - w) + q * w
    })
}

/// `x` one pitch period longer, or `None` when it has no period to repeat (or is shorter than
/// two of the longest). The period is repeated in the middle of the packet: its start and end
/// are untouched, so it joins its neighbours as before.
pub fn expand(x: &[f32]) -> Option<Vec<f32>> {
    if x.len() < 2 * MAX_LAG {
        return None;
    }
    // The period before the splice point against the one after it.
    let splice = x.len() / 2;
    let lag = period(x, |lag| (splice - lag, splice))?;
    let mut out = Vec::with_capacity(x.len() + lag);
    out.extend_from_slice(&x[..splice]);
    // x[s..s + lag] fading into x[s - lag..s]: begins as what follows x[s - 1] and ends as
    // what precedes x[s], then x[s..] again: one period played twice.
    out.extend(cross_fade(
        &x[splice..splice + lag],
        &x[splice - lag..splice],
    ));
    out.extend_from_slice(&x[splice..]);
    Some(out)
}

/// `x` one pitch period shorter, or `None` when it has no period to take out.
pub fn accelerate(x: &[f32]) -> Option<Vec<f32>> {
    if x.len() < 2 * MAX_LAG {
        return None;
    }
    let lag = period(x, |lag| (0, lag))?;
    // x[..lag] fading into x[lag..2 lag], then x[2 lag..]: two periods played as one.
    let mut out = Vec::with_capacity(x.len() - lag);
    out.extend(cross_fade(&x[..lag], &x[lag..2 * lag]));
    out.extend_from_slice(&x[2 * lag..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opus::FRAME_SAMPLES;
    use crate::tone::sine;

    /// Largest difference from the same tone played without a break.
    fn off_a_continuous_tone(out: &[f32], hz: f64) -> f32 {
        let tone = sine(hz, 0.3, 0, out.len());
        out.iter()
            .zip(&tone)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_period_of_a_tone_goes_in_or_out_without_a_seam() {
        for hz in [200.0, 1000.0, 150.0] {
            let packet = sine(hz, 0.3, 0, FRAME_SAMPLES);
            let period = (f64::from(SAMPLE_RATE) / hz) as usize;

            let longer = expand(&packet).expect("a tone has a period");
            let added = longer.len() - packet.len();
            assert!((MIN_LAG..=MAX_LAG).contains(&added), "{hz} Hz: +{added}");
            assert_eq!(added % period, 0, "{hz} Hz: whole periods, +{added}");
            let off = off_a_continuous_tone(&longer, hz);
            assert!(off < 0.01, "{hz} Hz expanded: {off} off the tone");

            let shorter = accelerate(&packet).expect("a tone has a period");
            let taken = packet.len() - shorter.len();
            assert_eq!(taken % period, 0, "{hz} Hz: whole periods, -{taken}");
            let off = off_a_continuous_tone(&shorter, hz);
            assert!(off < 0.01, "{hz} Hz accelerated: {off} off the tone");
        }
    }

    #[test]
    fn loud_noise_is_left_alone_and_silence_stretches_the_most() {
        let mut state = 0x2545_f491u32;
        let noise: Vec<f32> = (0..FRAME_SAMPLES)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect();
        assert_eq!(expand(&noise), None);
        assert_eq!(accelerate(&noise), None);

        let silence = vec![0.0; FRAME_SAMPLES];
        assert_eq!(
            expand(&silence).map(|s| s.len()),
            Some(FRAME_SAMPLES + MAX_LAG)
        );
        assert_eq!(
            accelerate(&silence).map(|s| s.len()),
            Some(FRAME_SAMPLES - MAX_LAG)
        );
        // Too short to hold two periods: untouched.
        assert_eq!(expand(&silence[..MAX_LAG]), None);
    }
}
