//! 10% random loss both ways and 50 ms ± 10 ms of delay, from the first packet on (ICE and
//! DTLS included): the call connects, at least 95% of the frames are decoded, no freeze
//! reaches 500 ms, and every tone burst is heard. The relay's own counters must agree with
//! what the peers saw.

mod common;

use std::time::Duration;

use confer_netsim::{Direction, Impairment, Loss};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_and_50_ms_of_delay_both_ways() {
    let net = common::net(10).await;
    net.relay.set_both(Impairment {
        loss: Loss::Random(0.10),
        delay_ms: 50,
        jitter_ms: 10,
        ..Impairment::default()
    });
    let (mut host, mut guest) = net.call("lossy").await;
    // Settle (the first keyframe may have lost packets), then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(8);
    let (at_host, at_guest) = tokio::join!(
        common::watch(&mut host, window),
        common::watch(&mut guest, window)
    );
    for (who, w) in [("host", &at_host), ("guest", &at_guest)] {
        let last = w.stats.last().expect("stats");
        eprintln!(
            "{who}: {} frames, {:.1}% of those captured, longest gap {:?}, {} bursts; \
             loss seen {:.1}%, rtt {:?} ms, playout delay {:.0} ms, packets given up {}",
            w.ids.len(),
            100.0 * w.delivered_ratio(),
            w.longest_gap,
            w.bursts,
            last.loss_pct,
            last.rtt_ms,
            last.video_playout_delay_ms,
            last.video_packets_given_up
        );
    }
    for d in Direction::BOTH {
        let s = net.relay.stats(d);
        eprintln!("relay {d:?}: {s:?}");
        let c = s.shaper;
        assert_eq!(
            c.passed + c.lost + c.queue_drops + c.cut_drops,
            c.packets_in,
            "every packet accounted for"
        );
        assert_eq!(s.delivered + s.in_flight, c.passed);
        let rate = c.lost as f64 / c.packets_in as f64;
        assert!(c.packets_in > 1000, "the call went through the relay");
        assert!((0.08..0.12).contains(&rate), "{d:?} lost {rate:.3}");
    }
    for (who, w) in [("host", &at_host), ("guest", &at_guest)] {
        assert!(
            w.stats.iter().any(|s| s.loss_pct > 0.0),
            "{who}'s stats saw the loss"
        );
        assert!(
            w.delivered_ratio() >= 0.95,
            "{who} decoded {:.1}% of the frames",
            100.0 * w.delivered_ratio()
        );
        assert!(
            w.longest_gap < Duration::from_millis(500),
            "{who} froze for {:?}",
            w.longest_gap
        );
        // A burst every 500 ms: 16 in 8 s (one may straddle an edge of the window).
        assert!(w.bursts >= 15, "{who} heard {} of 16 bursts", w.bursts);
    }
    tokio::join!(common::end(host), common::end(guest));
}
