//! Files over the data channel of a real call: 20 MB arrives whole and hash-verified with
//! progress on both sides; a file over the receiver's limit is refused; a transfer cancelled
//! by the sender stops on both sides.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use confer_call::call::{CallEvent, CallHandle};
use confer_signal::Config;

/// Deterministic bytes that do not compress to nothing.
fn content(len: usize) -> Bytes {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Waits for the first event `pick` accepts, within `secs` seconds.
async fn wait_for<T>(
    call: &mut CallHandle,
    secs: u64,
    mut pick: impl FnMut(CallEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let event = tokio::time::timeout_at(deadline, call.next_event())
            .await
            .expect("in time")
            .expect("call running");
        if let Some(t) = pick(event) {
            return t;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_arrive_verified_are_refused_over_the_limit_and_can_be_cancelled() {
    let (handle, _task) = common::start(Config::loopback()).await;
    let (mut host, mut guest) = common::join_pair(&handle, "files").await;
    tokio::join!(
        common::wait_connected(&mut host),
        common::wait_connected(&mut guest)
    );

    // 20 MB, host → guest.
    let file = content(20 * 1024 * 1024);
    let started = Instant::now();
    let id = host.send_file("scan.pdf", file.clone());
    let mut guest_progress = Vec::new();
    let received = wait_for(&mut guest, 120, |e| match e {
        CallEvent::TransferProgress {
            id: i,
            incoming: true,
            done,
            ..
        } if i == id => {
            guest_progress.push(done);
            None
        }
        CallEvent::FileReceived {
            id: i,
            name,
            data,
            verified,
        } if i == id => Some((name, data, verified)),
        _ => None,
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("20 MiB in {secs:.2} s ({:.1} MiB/s)", 20.0 / secs);
    assert_eq!(received.0, "scan.pdf");
    assert!(received.2, "hash verified");
    assert!(received.1 == file, "every byte");
    assert!(guest_progress.len() >= 10 && guest_progress.windows(2).all(|w| w[1] > w[0]));
    let mut host_progress = 0;
    let verified = wait_for(&mut host, 10, |e| match e {
        CallEvent::TransferProgress {
            id: i,
            incoming: false,
            ..
        } if i == id => {
            host_progress += 1;
            None
        }
        CallEvent::TransferDone { id: i, verified } if i == id => Some(verified),
        _ => None,
    })
    .await;
    assert!(
        verified && host_progress >= 10,
        "{host_progress} progress events"
    );

    // Over the receiver's limit: refused, and the sender is told why.
    guest.set_file_limit(1024 * 1024);
    let id = host.send_file("big.bin", content(2 * 1024 * 1024));
    let reason = wait_for(&mut host, 10, |e| match e {
        CallEvent::TransferCancelled { id: i, reason } if i == id => Some(reason),
        _ => None,
    })
    .await;
    assert!(reason.contains("more than"), "{reason}");

    // Cancelled by the sender mid-way: the receiver hears of it and gets no file.
    guest.set_file_limit(0);
    let id = host.send_file("long.bin", content(20 * 1024 * 1024));
    wait_for(&mut guest, 10, |e| match e {
        CallEvent::TransferProgress { id: i, done, .. } if i == id && done > 0 => Some(()),
        _ => None,
    })
    .await;
    host.cancel_transfer(id);
    let reason = wait_for(&mut guest, 10, |e| match e {
        CallEvent::TransferCancelled { id: i, reason } if i == id => Some(reason),
        CallEvent::FileReceived { id: i, .. } if i == id => panic!("a cancelled file arrived"),
        _ => None,
    })
    .await;
    assert_eq!(reason, "cancelled");
    host.hang_up();
    guest.hang_up();
    handle.shutdown().await;
}
