//! Call-level figures for two Confer peers in one process on loopback through a real
//! confer-signal (set-up time, and the same figures next to Chromium's, are in confer-cli's
//! `versus_chromium` bench):
//!
//! 1. Glass-to-glass before display: for every frame the call hands to its reader (decoded,
//!    then released by the playout clock), the wall-clock time since its capture (the stamp
//!    travels in the frame mark), p50/p95, at 640x360 and 1280x720, 30 fps.
//! 2. CPU per peer: the process's user+system CPU over the measuring window, halved (both peers
//!    and the signaling server run in this process; the server's share is negligible).
//!
//! Run: `cargo bench -p confer-call --bench call [-- --seconds 10]`

use std::time::{Duration, Instant};

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_media::mark;
use confer_protocol::Role;
use confer_signal::{Config, ServerHandle};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../media/benches/stats.rs"]
mod stats;
use stats::{arg, median, p95};

fn config(handle: &ServerHandle, room: &str, role: Role, video: &str, kbps: u32) -> CallConfig {
    CallConfig {
        video: video.into(),
        video_kbps: kbps,
        ..common::call_config(handle, room, role)
    }
}

fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks (100 per second here).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn glass_to_glass(handle: &ServerHandle, video: &str, kbps: u32, seconds: u64) {
    let room = format!("g2g-{video}");
    let mut host = CallHandle::join(config(handle, &room, Role::Host, video, kbps))
        .await
        .expect("host");
    let mut guest = CallHandle::join(config(handle, &room, Role::Guest, video, kbps))
        .await
        .expect("guest");
    tokio::join!(
        common::first_frame(&mut host),
        common::first_frame(&mut guest)
    );
    // A call starts at 400 kbit/s and climbs: measure once both sides receive the source's
    // full size, and the encoder's rate control has had a second more to settle.
    let width: u32 = video
        .split_once(':')
        .and_then(|(_, size)| size.split_once('x'))
        .and_then(|(w, _)| w.parse().ok())
        .expect("pattern:WxH");
    let mut full = [false, false];
    let climbed = tokio::time::Instant::now() + Duration::from_secs(15);
    while full != [true, true] {
        let (side, event) = tokio::time::timeout_at(climbed, async {
            tokio::select! { e = host.next_event() => (0, e), e = guest.next_event() => (1, e) }
        })
        .await
        .expect("both sides at full size within 15 s");
        if let Some(CallEvent::RemoteVideo(frame)) = event {
            full[side] |= frame.width == width;
        }
    }
    let settle = tokio::time::Instant::now() + Duration::from_secs(1);
    while tokio::time::timeout_at(settle, async {
        tokio::select! { _ = host.next_event() => {}, _ = guest.next_event() => {} }
    })
    .await
    .is_ok()
    {}
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut ages = Vec::new();
    let mut frames = 0u64;
    loop {
        let event = tokio::time::timeout_at(end, async {
            tokio::select! { e = host.next_event() => e, e = guest.next_event() => e }
        })
        .await;
        let Ok(event) = event else { break };
        if let Some(CallEvent::RemoteVideo(frame)) = event {
            frames += 1;
            if let Some(m) = mark::read(&frame) {
                ages.push(mark::age_us(m.capture_us, mark::wall_clock_us()) as f64 / 1e3);
            }
        }
    }
    let cpu = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64();
    println!(
        "{video} @ {kbps} kbit/s, {seconds} s: glass-to-glass (capture → handed to the reader) p50 {:.1} ms, p95 {:.1} ms; \
         {:.1} frames/s received per peer; CPU per peer {:.0}% of a core; RSS {:.0} MiB (both peers + server)",
        median(&mut ages.clone()),
        p95(&mut ages),
        frames as f64 / 2.0 / seconds as f64,
        cpu * 100.0 / 2.0,
        rss_mib()
    );
    tokio::join!(common::end(host), common::end(guest));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (handle, _server) = common::start(Config::loopback()).await;
        let seconds = arg("--seconds", 10) as u64;
        glass_to_glass(&handle, "pattern:640x360", 600, seconds).await;
        glass_to_glass(&handle, "pattern:1280x720", 1500, seconds).await;
        handle.shutdown().await;
    });
}
