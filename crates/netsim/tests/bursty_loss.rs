//! Bursty loss both ways (Gilbert-Elliott: 5% on average, in bursts of 5 packets on
//! average) and 30 ms of delay: the audio stays intelligible (every tone burst heard; the
//! losses are rebuilt from FEC or concealed, and counted), and video recovers from each burst
//! (NACK repair or a keyframe) with no gap of 1 s.

mod common;

use std::time::Duration;

use confer_netsim::{Direction, Impairment, Loss};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_loss_are_repaired_or_concealed() {
    let net = common::net(77).await;
    net.relay.set_both(Impairment {
        loss: Loss::bursts(0.05, 5.0),
        delay_ms: 30,
        ..Impairment::default()
    });
    let (mut host, mut guest) = net.call("bursty").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = Duration::from_secs(8);
    let (at_host, at_guest) = tokio::join!(
        common::watch(&mut host, window),
        common::watch(&mut guest, window)
    );
    for d in Direction::BOTH {
        let c = net.relay.stats(d).shaper;
        let rate = c.lost as f64 / c.packets_in as f64;
        eprintln!("relay {d:?}: lost {rate:.3} of {}", c.packets_in);
        assert!((0.02..0.09).contains(&rate), "{d:?}: {rate}");
    }
    for (who, w) in [("host", &at_host), ("guest", &at_guest)] {
        let last = w.stats.last().expect("stats");
        eprintln!(
            "{who}: {:.1}% of frames, longest gap {:?}, {} bursts heard; audio FEC {} \
             concealed {} late {}; video packets given up {}",
            100.0 * w.delivered_ratio(),
            w.longest_gap,
            w.bursts,
            last.audio_fec_recovered,
            last.audio_concealed,
            last.audio_late,
            last.video_packets_given_up
        );
        assert!(w.bursts >= 15, "{who} heard {} of 16 bursts", w.bursts);
        assert!(
            last.audio_fec_recovered + last.audio_concealed > 0,
            "{who}: the audio losses were rebuilt or concealed, and counted"
        );
        assert!(
            w.longest_gap < Duration::from_secs(1),
            "{who}: video stopped for {:?}",
            w.longest_gap
        );
        assert!(
            w.delivered_ratio() >= 0.9,
            "{who} showed {:.1}% of the frames",
            100.0 * w.delivered_ratio()
        );
    }
    tokio::join!(common::end(host), common::end(guest));
}
