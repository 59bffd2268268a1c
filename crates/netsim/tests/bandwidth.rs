//! The link's capacity changes during a call, 500 kbit/s → 250 kbit/s → 2 Mbit/s, both ways,
//! behind a 1 s drop-tail queue: the sender follows it down within 5 s (what it puts on the
//! link fits, and the queue stays under 400 ms) and back up within 15 s, through the
//! congestion controller's estimate, the encoder's bitrate and the resolution ladder.

mod common;

use std::time::{Duration, Instant};

use confer_call::call::{CallEvent, CallHandle, CallStats};
use confer_netsim::{Direction, Impairment, Relay};

fn cap(kbps: u32) -> Impairment {
    Impairment {
        rate_kbps: Some(kbps),
        queue_ms: 1000,
        delay_ms: 20,
        ..Impairment::default()
    }
}

/// What a phase looked like after the sender had `settle` to adapt.
#[derive(Debug, Default)]
struct Phase {
    /// Highest queue delay sampled after settling, ms (both directions).
    queue_ms: f64,
    /// Throughput let onto the link after settling, kbit/s (the busier direction).
    link_kbps: f64,
    /// The host's last stats.
    host: Option<CallStats>,
    guest: Option<CallStats>,
}

async fn drain_stats(
    call: &mut CallHandle,
    until: tokio::time::Instant,
    last: &mut Option<CallStats>,
) {
    while let Ok(Some(event)) = tokio::time::timeout_at(until, call.next_event()).await {
        match event {
            CallEvent::Stats(s) => *last = Some(*s),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
}

/// Runs a phase of `length`; measures from `settle` on.
async fn phase(
    relay: &Relay,
    host: &mut CallHandle,
    guest: &mut CallHandle,
    settle: Duration,
    length: Duration,
) -> Phase {
    let start = tokio::time::Instant::now();
    let mut p = Phase::default();
    let (mut host_stats, mut guest_stats) = (None, None);
    // Events are drained in slices so the relay can be sampled in between.
    let mut bytes_at_settle: Option<(Instant, [u64; 2])> = None;
    while start.elapsed() < length {
        let slice = tokio::time::Instant::now() + Duration::from_millis(250);
        tokio::join!(
            drain_stats(host, slice, &mut host_stats),
            drain_stats(guest, slice, &mut guest_stats)
        );
        if start.elapsed() >= settle {
            let stats = Direction::BOTH.map(|d| relay.stats(d).shaper);
            for s in &stats {
                p.queue_ms = p.queue_ms.max(s.queue_us as f64 / 1e3);
            }
            let bytes = stats.map(|s| s.bytes_passed);
            match bytes_at_settle {
                None => bytes_at_settle = Some((Instant::now(), bytes)),
                Some((at, before)) => {
                    let secs = at.elapsed().as_secs_f64();
                    p.link_kbps = (0..2)
                        .map(|i| (bytes[i] - before[i]) as f64 * 8.0 / 1e3 / secs)
                        .fold(0.0, f64::max);
                }
            }
        }
    }
    p.host = host_stats;
    p.guest = guest_stats;
    p
}

fn show(name: &str, p: &Phase) {
    for (who, s) in [("host", &p.host), ("guest", &p.guest)] {
        let s = s.as_ref().expect("stats");
        eprintln!(
            "{name} {who}: estimate {:.0} kbit/s, video target {} kbit/s at {}x{}, sent {:.0} kbit/s, \
             {:.0} fps received",
            s.bandwidth_estimate_kbps,
            s.video_target_kbps,
            s.sent_width,
            s.sent_height,
            s.send_kbps,
            s.fps_received
        );
    }
    eprintln!(
        "{name}: link {:.0} kbit/s, queue up to {:.0} ms",
        p.link_kbps, p.queue_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_follows_the_link_down_and_back_up() {
    let net = common::net(3).await;
    net.relay.set_both(cap(500));
    let (mut host, mut guest) = net.call("capped").await;

    // (link, time to adapt, phase length)
    let mut phases = Vec::new();
    for (kbps, settle, length) in [(500, 5, 8), (250, 5, 8), (2000, 15, 17)] {
        net.relay.set_both(cap(kbps));
        let p = phase(
            &net.relay,
            &mut host,
            &mut guest,
            Duration::from_secs(settle),
            Duration::from_secs(length),
        )
        .await;
        show(&format!("{kbps} kbit/s"), &p);
        phases.push(p);
    }
    let [down, lower, up] = <[Phase; 3]>::try_from(phases).expect("three phases");

    for (name, p, kbps) in [("500 kbit/s", &down, 500.0), ("250 kbit/s", &lower, 250.0)] {
        assert!(
            p.queue_ms < 400.0,
            "{name}: queue at {:.0} ms after 5 s",
            p.queue_ms
        );
        // What the shaper accepted, counted as packets enter its queue: over the 3 s window
        // a queue that grows by up to 300 ms (the bound above allows that much) shows as up
        // to 10% over the link's rate.
        assert!(
            p.link_kbps <= kbps * 1.1,
            "{name}: {:.0} kbit/s",
            p.link_kbps
        );
        for s in [&p.host, &p.guest] {
            let s = s.as_ref().expect("stats");
            // The estimate probes a little above the link (a queue must build before it can
            // be seen), then comes back under it.
            assert!(
                s.bandwidth_estimate_kbps <= kbps * 1.2,
                "{name}: the estimate stayed at {:.0}",
                s.bandwidth_estimate_kbps
            );
            assert!(
                s.send_queue_ms.is_some(),
                "{name}: the far side's transport-wide feedback drives the rate"
            );
            assert!(
                s.rate_cuts_delay > 0,
                "{name}: cut for the queue, not for loss"
            );
            assert!(
                s.fps_received >= 10.0,
                "{name}: video kept flowing ({:.0} fps)",
                s.fps_received
            );
        }
    }
    for s in [&up.host, &up.guest] {
        let s = s.as_ref().expect("stats");
        assert!(
            s.video_target_kbps >= 480,
            "back up within 15 s: video at {} kbit/s",
            s.video_target_kbps
        );
        assert_eq!((s.sent_width, s.sent_height), (640, 360), "full size again");
    }
    tokio::join!(common::end(host), common::end(guest));
}
