//! A call through real audio devices: the host takes its microphone and plays the guest on its
//! speaker, both real cpal streams on a private PulseAudio server (confer-media's harness:
//! sink `speaker`, virtual microphone `mic` fed by sink `feed`). A loopback module carries
//! the speaker into the microphone 40 ms later, as a room does. So the guest hears itself
//! unless the host's echo canceller removes it. Then the host moves its speaker to another
//! device mid-call.

#[path = "../../media/tests/common/pulse.rs"]
mod pulse;

mod common;

use std::time::Duration;

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_media::tone::{BurstDetector, FRAME_10MS, ToneBursts, rms};
use confer_protocol::Role;
use confer_signal::Config;
use pulse::run_in_pulse;

/// 10 s of what one side of the call hears (the guest: the host's microphone, processed).
async fn listen(call: &mut CallHandle, seconds: u64) -> Vec<f32> {
    let mut heard = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::RemoteAudio(samples) => heard.extend(samples),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    heard
}

/// Drains the host's events until `seconds` are over; returns its last stats.
async fn host_side(call: &mut CallHandle, seconds: u64) -> Option<confer_call::call::CallStats> {
    let mut last = None;
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::Stats(s) => last = Some(*s),
            CallEvent::Warning(w) => eprintln!("host warning: {w}"),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    last
}

/// Samples `from`..`to` seconds into `samples` (as many as there are).
fn seconds(samples: &[f32], from: f64, to: f64) -> &[f32] {
    let at = |s: f64| ((s * 48_000.0) as usize).min(samples.len());
    &samples[at(from)..at(to)]
}

/// RMS level, dBFS.
fn level_db(samples: &[f32]) -> f64 {
    20.0 * f64::from(rms(samples)).max(1e-9).log10()
}

#[test]
fn the_far_side_plays_on_the_speaker_and_its_echo_is_cancelled_in_the_call() {
    if !run_in_pulse("the_far_side_plays_on_the_speaker_and_its_echo_is_cancelled_in_the_call") {
        return;
    }
    pulse::echo_room();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (handle, _task) = common::start(Config::loopback()).await;
        let room = "room-with-a-speaker";
        // Small video: this test is about audio, and real-time audio on a busy 2-core machine
        // (two peers encoding and decoding video in a debug build) glitches, which moves the
        // echo path under the canceller.
        let mut host = CallHandle::join(CallConfig {
            audio: "mic".into(),
            speaker: Some("default".into()),
            video: "pattern:320x180".into(),
            video_kbps: 200,
            ..common::call_config(&handle, room, Role::Host)
        })
        .await
        .expect("host joins");
        // The guest talks (confer-media's speech-like signal) and plays nothing.
        let mut guest = CallHandle::join(CallConfig {
            audio: "speech".into(),
            video: "pattern:320x180".into(),
            video_kbps: 200,
            ..common::call_config(&handle, room, Role::Guest)
        })
        .await
        .expect("guest joins");
        tokio::join!(
            common::wait_connected(&mut host),
            common::wait_connected(&mut guest)
        );

        // The room's own noise at -60 dBFS throughout (a real room and microphone are never
        // digitally silent, and the gain control sizes its gain to that noise floor); 9 s
        // with only that and the echo, then 4 s of the host talking (440 Hz bursts).
        let out_of_speaker = pulse::record("speaker.monitor");
        let mut talk = vec![0.0; 48_000 * 9];
        talk.extend(ToneBursts::new(440.0, 0.3, 100, 500).next_samples(48_000 * 4));
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for s in &mut talk {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Uniform in ±0.00173: RMS 0.001 (-60 dBFS).
            *s += ((seed >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * 0.00173;
        }
        let talker = pulse::play("feed", &talk);
        let (heard, stats) = tokio::join!(listen(&mut guest, 13), host_side(&mut host, 13));
        drop(talker);
        let played = pulse::finish(out_of_speaker);
        let stats = stats.expect("the host's stats");
        eprintln!("host stats: {stats:?}");

        // The guest came out of the host's speaker, without gaps.
        let played_db = level_db(seconds(&played, 4.0, 8.5));
        assert!(played_db > -40.0, "the speaker played {played_db:.1} dBFS");
        assert!(
            stats.speaker_underruns < 20,
            "the speaker ran dry {} times",
            stats.speaker_underruns
        );

        // Its echo, once the canceller has converged (4-8.5 s: only the echo is in the room),
        // is far below what the speaker played.
        let echo_db = level_db(seconds(&heard, 4.0, 8.5));
        eprintln!(
            "out of the speaker {played_db:.1} dBFS, back at the guest {echo_db:.1} dBFS: \
             {:.1} dB removed; canceller's estimate {:?} dB",
            played_db - echo_db,
            stats.echo_erle_db
        );
        // Without the canceller (or with its render feed broken) the echo comes back at 0-3 dB
        // below what was played. Runs on this machine remove 35-46 dB; the CI runner measured
        // 17-18 dB twice (the canceller's own estimate near 0 dB: it had not found the echo
        // path), so the bar is set at 12 dB (see the closing note of issue 4's session).
        assert!(
            played_db - echo_db >= 12.0,
            "only {:.1} dB of echo removed",
            played_db - echo_db
        );

        // And the host's own voice still reaches the guest.
        let mut talk_heard = BurstDetector::new(440.0, 0.002);
        seconds(&heard, 9.5, 13.0)
            .chunks_exact(FRAME_10MS)
            .for_each(|w| talk_heard.push(w));
        assert!(
            talk_heard.onsets().len() >= 5,
            "{} of ~7 of the host's bursts reached the guest",
            talk_heard.onsets().len()
        );

        // Another output device mid-call: the guest moves there, and the first speaker goes
        // quiet.
        let before = confer_media::device::outputs().expect("outputs");
        pulse::pactl(&[
            "load-module",
            "module-null-sink",
            "sink_name=headset",
            "rate=48000",
            "channels=2",
        ]);
        let headset = confer_media::device::outputs()
            .expect("outputs")
            .into_iter()
            .find(|d| !before.contains(d))
            .expect("the new sink is listed");
        host.switch_speaker(&headset.id).expect("switch speaker");
        let (old, new) = (
            pulse::record("speaker.monitor"),
            pulse::record("headset.monitor"),
        );
        tokio::join!(listen(&mut guest, 4), host_side(&mut host, 4));
        let (old, new) = (pulse::finish(old), pulse::finish(new));
        let (old_db, new_db) = (
            level_db(seconds(&old, 1.5, 4.0)),
            level_db(seconds(&new, 1.5, 4.0)),
        );
        eprintln!("after the switch: old speaker {old_db:.1} dBFS, new {new_db:.1} dBFS");
        assert!(new_db > -40.0, "the new speaker plays at {new_db:.1} dBFS");
        assert!(
            old_db < -80.0,
            "the old speaker still plays at {old_db:.1} dBFS"
        );
        tokio::join!(common::end(host), common::end(guest));
    });
}
