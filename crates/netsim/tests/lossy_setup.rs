//! Call set-up when DTLS handshake packets are lost. Before the fix carried in
//! `vendor/rtc-dtls` (see vendor/README.md) about one call in nine at 10% loss never
//! connected: a DTLS client whose flight 5 was lost never sent it again.
//!
//! - The exact case: the first Finished each way is dropped (the record that ends the
//!   client's flight 5, and the server's flight 6), nothing else lost. Without the fix this
//!   fails every time.
//! - Ten calls through 10% random loss and 100 ms each way (different seeds lose different
//!   packets): all connect within 15 s (DTLS resends a lost flight after 1 s, so most take
//!   1-3 s).

mod common;

use std::time::{Duration, Instant};

use confer_netsim::{Direction, Impairment, Loss};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_calls_through_ten_percent_loss_all_connect() {
    let mut took = Vec::new();
    for seed in 0..10u64 {
        let net = common::net(1_000 + seed).await;
        net.relay.set_both(Impairment {
            loss: Loss::Random(0.10),
            delay_ms: 100,
            ..Impairment::default()
        });
        let start = Instant::now();
        // Each side panics with "connected within 15 s" if it does not.
        let (host, guest) = net.call("setup").await;
        took.push(start.elapsed());
        tokio::join!(common::end(host), common::end(guest));
    }
    took.sort();
    eprintln!(
        "set-up through 10% loss and 100 ms each way: median {:?}, slowest {:?} ({took:?})",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(took.iter().all(|t| *t < Duration::from_secs(15)));
}

/// A datagram holding a DTLS handshake record of epoch 1: after ChangeCipherSpec, that is the
/// Finished message. Records are packed several to a datagram; each has a 13-byte header
/// (RFC 6347 4.1: content type, version, epoch, sequence number, length).
fn dtls_finished(packet: &[u8]) -> bool {
    // DTLS, not STUN or RTP (RFC 7983: first byte 20..=63).
    if !packet.first().is_some_and(|b| (20..=63).contains(b)) {
        return false;
    }
    let mut rest = packet;
    while rest.len() >= 13 {
        if rest[0] == 22 && rest[3..5] == [0, 1] {
            return true;
        }
        let length = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        rest = rest.get(13 + length..).unwrap_or_default();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_dtls_finished_is_sent_again() {
    let net = common::net(7).await;
    for d in Direction::BOTH {
        net.relay.drop_first(d, dtls_finished);
    }
    let start = Instant::now();
    // Each side panics with "connected within 15 s" if it does not.
    let (host, guest) = net.call("finished").await;
    eprintln!(
        "connected after losing each side's first Finished: {:?}",
        start.elapsed()
    );
    for d in Direction::BOTH {
        assert_eq!(
            net.relay.stats(d).targeted,
            1,
            "{d:?}: a Finished was dropped"
        );
    }
    tokio::join!(common::end(host), common::end(guest));
}
