//! A call between two Confer peers whose signaling goes through the proxy and whose media
//! goes through the relay, and what one side sees of it.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::time::{Duration, Instant};

use confer_call::call::{CallConfig, CallEvent, CallHandle, CallStats};
use confer_media::mark;
use confer_media::tone::BurstDetector;
use confer_netsim::{Relay, SignalProxy};
use confer_protocol::Role;
use confer_signal::{Config, ServerHandle};

#[path = "../../../call/tests/common/mod.rs"]
mod call_common;
pub use call_common::{call_config, end, start, token, wait_connected};

/// The server, the relay and the proxy of one call.
pub struct Net {
    pub server: ServerHandle,
    pub relay: Relay,
    pub proxy: SignalProxy,
    _task: tokio::task::JoinHandle<()>,
}

/// A server, a relay with perfect paths (impair them with `net.relay`) and a proxy.
pub async fn net(seed: u64) -> Net {
    net_with(seed, Config::loopback()).await
}

/// As [`net`], with the server configured as `config` says (the origins of browser pages).
pub async fn net_with(seed: u64, config: Config) -> Net {
    let (server, task) = call_common::start(config).await;
    let relay = Relay::new(seed);
    let proxy = SignalProxy::start(&server.ws_url(), relay.clone())
        .await
        .expect("proxy");
    Net {
        server,
        relay,
        proxy,
        _task: task,
    }
}

impl Net {
    /// Host and guest of `room` through the proxy (signaling) and the relay (media),
    /// connected.
    pub async fn call(&self, room: &str) -> (CallHandle, CallHandle) {
        self.call_with(room, confer_media::VideoCodec::Vp8).await
    }

    /// As [`Net::call`], with both sides offering `codec` first (so it is what they send).
    pub async fn call_with(
        &self,
        room: &str,
        codec: confer_media::VideoCodec,
    ) -> (CallHandle, CallHandle) {
        let config = |role| CallConfig {
            url: self.proxy.ws_url(),
            video_codec: codec,
            ..call_common::call_config(&self.server, room, role)
        };
        let mut host = CallHandle::join(config(Role::Host))
            .await
            .expect("host joins");
        let mut guest = CallHandle::join(config(Role::Guest))
            .await
            .expect("guest joins");
        let (h, g) = tokio::join!(wait_connected(&mut host), wait_connected(&mut guest));
        assert_eq!(h, g, "the relay does not touch DTLS: the codes match");
        (host, guest)
    }
}

/// What one side received in a window.
#[derive(Debug, Default)]
pub struct Watched {
    /// Frame ids of the decoded frames, in arrival order.
    pub ids: Vec<u32>,
    /// Longest time without a new frame (from the window's start).
    pub longest_gap: Duration,
    /// Tone bursts heard: onsets closer than 250 ms count once (concealment can split a
    /// burst; the bursts themselves are 500 ms apart).
    pub bursts: usize,
    /// Audio received, ms.
    pub audio_ms: usize,
    /// Stats reports.
    pub stats: Vec<CallStats>,
}

impl Watched {
    /// Distinct frames decoded, over the frames captured between the first and the last.
    pub fn delivered_ratio(&self) -> f64 {
        let (Some(first), Some(last)) = (self.ids.iter().min(), self.ids.iter().max()) else {
            return 0.0;
        };
        let mut ids = self.ids.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len() as f64 / f64::from(last - first + 1)
    }
}

/// Watches `call` for `window`.
pub async fn watch(call: &mut CallHandle, window: Duration) -> Watched {
    let mut got = Watched::default();
    let mut bursts = BurstDetector::new(1000.0, 0.005);
    let mut last = Instant::now();
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(frame) => {
                got.longest_gap = got.longest_gap.max(last.elapsed());
                last = Instant::now();
                got.ids.extend(mark::read(&frame).map(|m| m.frame_id));
            }
            CallEvent::RemoteAudio(samples) => {
                got.audio_ms += 10;
                bursts.push(&samples);
            }
            CallEvent::Stats(s) => got.stats.push(*s),
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    got.longest_gap = got.longest_gap.max(last.elapsed());
    let mut last_onset: Option<usize> = None;
    for &onset in bursts.onsets() {
        if last_onset.is_none_or(|last| onset - last >= 48_000 / 4) {
            got.bursts += 1;
            last_onset = Some(onset);
        }
    }
    got
}

/// A relay-only call between `host` and `guest` (their configurations), connected: both must
/// see 60 frames or more in 3 s, over the relay. Ends it.
pub async fn relay_only_call(host: CallConfig, guest: CallConfig) {
    let mut host = CallHandle::join(CallConfig {
        relay_only: true,
        ..host
    })
    .await
    .expect("host");
    let mut guest = CallHandle::join(CallConfig {
        relay_only: true,
        ..guest
    })
    .await
    .expect("guest");
    tokio::join!(wait_connected(&mut host), wait_connected(&mut guest));
    let (h, g) = tokio::join!(
        watch(&mut host, Duration::from_secs(3)),
        watch(&mut guest, Duration::from_secs(3))
    );
    for (who, w) in [("host", &h), ("guest", &g)] {
        let last = w.stats.last().expect("stats");
        eprintln!("{who}: {} frames, path {:?}", w.ids.len(), last.path);
        assert!(w.ids.len() >= 60, "{who}: {} frames in 3 s", w.ids.len());
        assert_eq!(
            last.path.as_deref(),
            Some("relay"),
            "{who} goes through TURN"
        );
    }
    tokio::join!(end(host), end(guest));
}
