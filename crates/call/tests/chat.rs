//! Chat over the data channel between two Confer peers on a real call: messages arrive in
//! order with their text, every one is acknowledged by a delivery receipt, messages sent
//! before the channel opened wait for it, and oversized ones are refused.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use confer_call::call::{CallEvent, CallHandle, MAX_CHAT_CHARS};
use confer_signal::Config;

/// Collects chat texts and receipts until `texts` messages and `receipts` receipts arrived.
async fn gather(
    call: &mut CallHandle,
    texts: usize,
    receipts: usize,
) -> (Vec<String>, HashSet<String>) {
    let (mut got, mut delivered) = (Vec::new(), HashSet::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < texts || delivered.len() < receipts {
        let event = tokio::time::timeout_at(deadline, call.next_event())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} texts, {} receipts by the deadline",
                    got.len(),
                    delivered.len()
                )
            })
            .expect("call running");
        match event {
            CallEvent::Chat { text, .. } => got.push(text),
            CallEvent::ChatDelivered { id } => {
                delivered.insert(id);
            }
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    (got, delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_arrives_in_order_with_receipts_both_ways() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let (mut host, mut guest) = common::join_pair(&handle, "chat").await;
    // Sent before anything is connected: must wait for the channel, not vanish.
    let early = host
        .send_chat("sent before the call connected")
        .expect("send");
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );

    let mut host_ids = vec![early];
    let mut guest_ids = Vec::new();
    for n in 0..20 {
        host_ids.push(
            host.send_chat(&format!("host {n} — ünïcödé"))
                .expect("send"),
        );
        guest_ids.push(guest.send_chat(&format!("guest {n}")).expect("send"));
    }
    let ((at_host, host_receipts), (at_guest, guest_receipts)) =
        tokio::join!(gather(&mut host, 20, 21), gather(&mut guest, 21, 20));
    let expect_at_guest: Vec<String> = std::iter::once("sent before the call connected".to_owned())
        .chain((0..20).map(|n| format!("host {n} — ünïcödé")))
        .collect();
    assert_eq!(at_guest, expect_at_guest, "in order, text intact");
    assert_eq!(
        at_host,
        (0..20).map(|n| format!("guest {n}")).collect::<Vec<_>>()
    );
    assert_eq!(host_receipts, host_ids.into_iter().collect::<HashSet<_>>());
    assert_eq!(
        guest_receipts,
        guest_ids.into_iter().collect::<HashSet<_>>()
    );

    let too_long = "x".repeat(MAX_CHAT_CHARS + 1);
    assert!(host.send_chat(&too_long).is_err());
    host.hang_up();
    guest.hang_up();
    handle.shutdown().await;
}
