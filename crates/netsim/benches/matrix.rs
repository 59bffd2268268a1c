//! Calls over a bad network, Confer next to Chromium through the same impairment (issue 5).
//!
//! `cargo bench -p confer-netsim --bench matrix [-- --seconds 8 --cuts 3]`; `--loss 10`,
//! `--delay 100` or `--cap 300` (0: unlimited) run only the cells with that value, and
//! `--cells 0` none (only the cuts); `--cuts 0` no cuts; `--trace 1` prints each Confer
//! side's call stats once a second (to stderr); `--repeat 3` makes each cell three calls of
//! each (another loss pattern each time) and shows each figure's median over them.
//!
//! Every cell of loss (0/5/10/20%, random, both ways) × one-way delay (0/100/300 ms, both
//! ways) × link cap (300 kbit/s, 1 Mbit/s, unlimited; 500 ms drop-tail queue) is one call
//! between two Confer peers and one between two headless Chromium pages (the peer page, which
//! speaks Confer's signaling), both through confer-signal behind `SignalProxy`, every media
//! packet through the user-space `Relay` with the cell's impairment. 640x360 at 30 fps, VP8,
//! 600 kbit/s of video at most, for both.
//!
//! Each call is measured for `--seconds` after 4 s of settling, from the marks both senders
//! draw into every frame (frame id, capture time), as read at the receivers (Confer: the
//! decoded frame; Chromium: the presented one):
//! - delivered: distinct frames received per second, both directions' median;
//! - freezes: jumps of more than 15 frame ids (500 ms at 30 fps) between consecutive frames
//!   received, summed over both directions (the same definition for both);
//! - glass-to-glass p95: capture to decoded (Confer) or presented (Chromium), ms;
//! - audio concealed: the share of the received audio made up by concealment (Confer's
//!   `audio_concealed` ticks; Chromium's `concealedSamples`);
//! - audio bursts: both send Confer's tone bursts (100 ms of 1 kHz every 500 ms; the peer page
//!   makes them with Web Audio) and the received audio goes through the same burst detector
//!   (Confer: the played-out audio; Chromium: the remote track as Web Audio gets it): bursts
//!   found as a share of the bursts sent in the window, the directions' median.
//!
//! Then `--cuts` times, on a clean path: both directions cut for 5 s, then restored; the time
//! from the restore to the first new frame at both receivers (the later of the two).

use std::time::{Duration, Instant};

use confer_browser::{Chromium, PeerPage};
use confer_call::call::{CallEvent, CallHandle};
use confer_media::mark;
use confer_media::tone::{self, BurstDetector};
use confer_netsim::{Impairment, Loss};
use confer_protocol::Role;
use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../../media/benches/stats.rs"]
mod stats;
use stats::{arg, median, p95};

const SETTLE: Duration = Duration::from_secs(4);
const CUT: Duration = Duration::from_secs(5);
const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FPS: u32 = 30;
const KBPS: u32 = 600;

#[derive(Debug, Clone, Copy)]
struct Cell {
    loss_pct: u32,
    delay_ms: u32,
    cap_kbps: Option<u32>,
}

impl Cell {
    fn impairment(self) -> Impairment {
        Impairment {
            loss: if self.loss_pct == 0 {
                Loss::None
            } else {
                Loss::Random(f64::from(self.loss_pct) / 100.0)
            },
            delay_ms: self.delay_ms,
            rate_kbps: self.cap_kbps,
            queue_ms: 500,
            ..Impairment::default()
        }
    }

    fn name(self) -> String {
        format!(
            "{:>2}% {:>3} ms {:>9}",
            self.loss_pct,
            self.delay_ms,
            self.cap_kbps
                .map_or("unlimited".to_owned(), |k| format!("{k} kbit/s"))
        )
    }
}

/// What one direction received in the window: (frame id, glass-to-glass ms) per frame.
#[derive(Debug, Default)]
struct Received {
    frames: Vec<(u32, f64)>,
    concealed_pct: f64,
    bursts_pct: f64,
}

/// One call's figures.
#[derive(Debug, Default)]
struct Figures {
    fps: f64,
    freezes: usize,
    g2g_p95: f64,
    concealed_pct: f64,
    bursts_pct: f64,
}

/// Tone bursts found in `audio` (48 kHz mono) as a share of those sent in `seconds`: onsets
/// less than 250 ms apart are one burst (concealment in the middle of one splits it).
fn bursts_pct(audio: &[f32], seconds: f64) -> f64 {
    let mut detector = BurstDetector::new(1000.0, 0.005);
    for window in audio.chunks_exact(tone::FRAME_10MS) {
        detector.push(window);
    }
    let mut bursts = 0;
    let mut current: Option<usize> = None;
    for &onset in detector.onsets() {
        if current.is_none_or(|start| onset - start >= tone::SAMPLE_RATE as usize / 4) {
            bursts += 1;
            current = Some(onset);
        }
    }
    (f64::from(bursts) / (seconds / 0.5) * 100.0).min(100.0)
}

fn figures(directions: &[Received], seconds: f64) -> Figures {
    let mut fps = Vec::new();
    let mut freezes = 0;
    let mut g2g = Vec::new();
    let mut concealed = Vec::new();
    let mut bursts = Vec::new();
    for d in directions {
        let mut ids: Vec<u32> = d.frames.iter().map(|(id, _)| *id).collect();
        freezes += d
            .frames
            .windows(2)
            .filter(|w| w[1].0.saturating_sub(w[0].0) > FPS / 2)
            .count();
        ids.sort_unstable();
        ids.dedup();
        fps.push(ids.len() as f64 / seconds);
        g2g.extend(d.frames.iter().map(|(_, ms)| *ms));
        concealed.push(d.concealed_pct);
        bursts.push(d.bursts_pct);
    }
    Figures {
        fps: median(&mut fps),
        freezes,
        g2g_p95: if g2g.is_empty() {
            f64::NAN
        } else {
            p95(&mut g2g)
        },
        concealed_pct: median(&mut concealed),
        bursts_pct: median(&mut bursts),
    }
}

/// Confer's side of one direction, for `window`.
async fn confer_receive(call: &mut CallHandle, window: Duration) -> Received {
    let mut got = Received::default();
    let mut audio = Vec::new();
    let (mut first, mut last) = (None, None);
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        match event {
            CallEvent::RemoteVideo(frame) => {
                if let Some(m) = mark::read(&frame) {
                    let age = mark::age_us(m.capture_us, mark::wall_clock_us());
                    got.frames.push((m.frame_id, age as f64 / 1e3));
                }
            }
            CallEvent::RemoteAudio(samples) => audio.extend_from_slice(&samples),
            CallEvent::Stats(s) => {
                if arg("--trace", 0) != 0 {
                    eprintln!(
                        "  sending {:.0} kbit/s (estimate {:.0}; queue {:.0} ms, cuts {} delay {} loss) \
                         at {:.0} fps; receiving {}x{} at \
                         {:.0} fps, {:.1}% lost; audio: {} ticks concealed, {} late, {} FEC, \
                         {} ms buffered, {:.0} ms inserted, {:.0} removed",
                        s.send_kbps,
                        s.bandwidth_estimate_kbps,
                        s.send_queue_ms.unwrap_or(f64::NAN),
                        s.rate_cuts_delay,
                        s.rate_cuts_loss,
                        s.fps_sent,
                        s.width,
                        s.height,
                        s.fps_received,
                        s.loss_pct,
                        s.audio_concealed,
                        s.audio_late,
                        s.audio_fec_recovered,
                        s.audio_buffer_ms,
                        s.audio_inserted_ms,
                        s.audio_removed_ms
                    );
                }
                first.get_or_insert(s.audio_concealed);
                last = Some(s.audio_concealed);
            }
            CallEvent::Ended(why) => panic!("ended: {why}"),
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (first, last) {
        // 20 ms ticks over the window (stats come once a second: one fewer interval).
        let span_ms = (window.as_secs_f64() - 1.0).max(1.0) * 1e3;
        got.concealed_pct = (b - a) as f64 * 20.0 / span_ms * 100.0;
    }
    got.bursts_pct = bursts_pct(&audio, window.as_secs_f64());
    got
}

async fn drain(call: &mut CallHandle, window: Duration) {
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        if let CallEvent::Ended(why) = event {
            panic!("ended: {why}");
        }
    }
}

async fn confer_cell(cell: Cell, n: u64, seconds: u64) -> Figures {
    let net = common::net(n).await;
    net.relay.set_both(cell.impairment());
    let (mut host, mut guest) = net.call(&format!("matrix-{n}")).await;
    tokio::join!(drain(&mut host, SETTLE), drain(&mut guest, SETTLE));
    let window = Duration::from_secs(seconds);
    let (h, g) = tokio::join!(
        confer_receive(&mut host, window),
        confer_receive(&mut guest, window)
    );
    tokio::join!(common::end(host), common::end(guest));
    figures(&[h, g], seconds as f64)
}

/// Time from `restored` until a frame captured after it arrives, ms.
async fn confer_first_new_frame(call: &mut CallHandle, restored: Instant) -> f64 {
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(event)) = tokio::time::timeout_at(end, call.next_event()).await {
        if let CallEvent::RemoteVideo(frame) = event
            && let Some(m) = mark::read(&frame)
            && mark::age_us(m.capture_us, mark::wall_clock_us())
                < restored.elapsed().as_micros() as u64
        {
            return restored.elapsed().as_secs_f64() * 1e3;
        }
    }
    f64::NAN
}

async fn confer_cut(n: u64) -> f64 {
    let net = common::net(1000 + n).await;
    let (mut host, mut guest) = net.call(&format!("cut-{n}")).await;
    tokio::join!(drain(&mut host, SETTLE), drain(&mut guest, SETTLE));
    net.relay.set_both(Impairment {
        cut: true,
        ..Impairment::default()
    });
    tokio::join!(drain(&mut host, CUT), drain(&mut guest, CUT));
    net.relay.set_both(Impairment::default());
    let restored = Instant::now();
    let (h, g) = tokio::join!(
        confer_first_new_frame(&mut host, restored),
        confer_first_new_frame(&mut guest, restored)
    );
    tokio::join!(common::end(host), common::end(guest));
    h.max(g)
}

/// Two Chromium pages, reloaded for every call.
struct Browsers {
    a: Chromium,
    b: Chromium,
    /// The peer page's origin, which the server must allow.
    origin: String,
}

impl Browsers {
    async fn launch(page: &PeerPage) -> Self {
        let (a, b) = confer_browser::launch_pair(page).await.expect("chromium");
        Self {
            a,
            b,
            origin: page.origin(),
        }
    }

    /// A server, relay and proxy that let the pages in.
    async fn net(&self, seed: u64) -> common::Net {
        common::net_with(
            seed,
            confer_signal::Config {
                allowed_origins: vec![self.origin.clone()],
                ..confer_signal::Config::loopback()
            },
        )
        .await
    }

    /// A call through `net`'s proxy (so through its relay), connected.
    async fn call(&self, net: &common::Net, room: &str) {
        confer_browser::reload_peer_pages(&[&self.a, &self.b])
            .await
            .expect("pages reloaded");
        let join = |role| {
            format!(
                "peer.join({{url: {:?}, token: {:?}, width: {WIDTH}, height: {HEIGHT}, \
                 fps: {FPS}, kbps: {KBPS}, codec: 'VP8', source: 'mark', readMarks: true, \
                 tones: true}})",
                net.proxy.ws_url(),
                common::token(&net.server, room, role)
            )
        };
        let (ja, jb) = (join(Role::Host), join(Role::Guest));
        let joined = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(self.a.eval(&ja), self.b.eval(&jb))
        })
        .await;
        let Ok((a, b)) = joined else {
            let mut logs = Vec::new();
            for page in [&self.a, &self.b] {
                logs.push(
                    page.eval("JSON.stringify({log: peer.state.log, error: peer.state.error, ws: peer.state.ws && peer.state.ws.readyState, url: peer.state.ws && peer.state.ws.url, pc: !!peer.state.pc})")
                        .await
                        .unwrap_or_default(),
                );
            }
            panic!("the browsers did not connect within 60 s: {logs:#?}");
        };
        a.expect("a joins");
        b.expect("b joins");
    }

    async fn take_marks(browser: &Chromium) -> Vec<(u32, f64)> {
        let v = browser.eval("peer.takeMarks()").await.expect("marks");
        v["marks"]
            .as_array()
            .map(|marks| {
                marks
                    .iter()
                    .filter_map(|m| Some((m["frameId"].as_u64()? as u32, m["ageMs"].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn audio(browser: &Chromium) -> (f64, f64) {
        let s: Value = browser.eval("peer.stats()").await.expect("stats");
        (
            s["audioConcealedSamples"].as_f64().unwrap_or(0.0),
            s["audioSamplesReceived"].as_f64().unwrap_or(0.0),
        )
    }

    async fn measure(&self, seconds: u64) -> Vec<Received> {
        for b in [&self.a, &self.b] {
            Self::take_marks(b).await;
        }
        let before = [Self::audio(&self.a).await, Self::audio(&self.b).await];
        for b in [&self.a, &self.b] {
            b.take_peer_audio().await.expect("recorded audio");
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let mut out = Vec::new();
        for (b, (c0, t0)) in [&self.a, &self.b].into_iter().zip(before) {
            let frames = Self::take_marks(b).await;
            let audio = b.take_peer_audio().await.expect("recorded audio");
            let (c1, t1) = Self::audio(b).await;
            let concealed_pct = if t1 > t0 {
                (c1 - c0) / (t1 - t0) * 100.0
            } else {
                100.0
            };
            out.push(Received {
                frames,
                concealed_pct,
                bursts_pct: bursts_pct(&audio, seconds as f64),
            });
        }
        out
    }

    async fn hang_up(&self) {
        for browser in [&self.a, &self.b] {
            let _ = browser.eval("peer.hangUp()").await;
        }
    }

    /// Time from `restored` until both pages have presented a frame captured after it, ms.
    async fn first_new_frames(&self, restored: Instant) -> f64 {
        let mut done = [None, None];
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.iter().any(Option::is_none) && Instant::now() < deadline {
            for (i, b) in [&self.a, &self.b].into_iter().enumerate() {
                let marks = Self::take_marks(b).await;
                let since_ms = restored.elapsed().as_secs_f64() * 1e3;
                if done[i].is_none() && marks.iter().any(|(_, age)| *age < since_ms) {
                    done[i] = Some(since_ms);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done.iter()
            .map(|d| d.unwrap_or(f64::NAN))
            .fold(0.0, f64::max)
    }
}

async fn chromium_cell(browsers: &Browsers, cell: Cell, n: u64, seconds: u64) -> Figures {
    let net = browsers.net(n).await;
    net.relay.set_both(cell.impairment());
    browsers.call(&net, &format!("chromium-{n}")).await;
    tokio::time::sleep(SETTLE).await;
    let received = browsers.measure(seconds).await;
    browsers.hang_up().await;
    figures(&received, seconds as f64)
}

async fn chromium_cut(browsers: &Browsers, n: u64) -> f64 {
    let net = browsers.net(2000 + n).await;
    browsers.call(&net, &format!("chromium-cut-{n}")).await;
    tokio::time::sleep(SETTLE).await;
    net.relay.set_both(Impairment {
        cut: true,
        ..Impairment::default()
    });
    tokio::time::sleep(CUT).await;
    for b in [&browsers.a, &browsers.b] {
        Browsers::take_marks(b).await;
    }
    net.relay.set_both(Impairment::default());
    let restored = Instant::now();
    let ms = browsers.first_new_frames(restored).await;
    browsers.hang_up().await;
    ms
}

/// Each figure's median over `runs` (calls of one cell).
fn medians(runs: &[Figures]) -> Figures {
    let of = |f: fn(&Figures) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    Figures {
        fps: of(|r| r.fps),
        freezes: of(|r| r.freezes as f64).round() as usize,
        g2g_p95: of(|r| r.g2g_p95),
        concealed_pct: of(|r| r.concealed_pct),
        bursts_pct: of(|r| r.bursts_pct),
    }
}

fn show(f: &Figures) -> String {
    format!(
        "{:>5.1} {:>3} {:>6.0} {:>5.1} {:>5.0}",
        f.fps, f.freezes, f.g2g_p95, f.concealed_pct, f.bursts_pct
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = arg("--seconds", 8) as u64;
    let repeat = arg("--repeat", 1).max(1) as u64;
    let cuts = arg("--cuts", 3) as u64;
    let page = PeerPage::serve().await.expect("peer page");
    let browsers = Browsers::launch(&page).await;

    println!(
        "cell                 | Confer: fps frz  g2g95 conc% bursts% | Chromium: fps frz  g2g95 conc% bursts%"
    );
    let only = |name: &str, value: u32| {
        arg(name, usize::MAX) == usize::MAX || arg(name, 0) == value as usize
    };
    let mut n = 0;
    let cells = arg("--cells", 1) != 0;
    for loss_pct in [0, 5, 10, 20].into_iter().filter(|_| cells) {
        for delay_ms in [0, 100, 300] {
            for cap_kbps in [Some(300), Some(1000), None] {
                n += 1;
                if !(only("--loss", loss_pct)
                    && only("--delay", delay_ms)
                    && only("--cap", cap_kbps.unwrap_or(0)))
                {
                    continue;
                }
                let cell = Cell {
                    loss_pct,
                    delay_ms,
                    cap_kbps,
                };
                let (mut confer, mut chromium) = (Vec::new(), Vec::new());
                for run in 0..repeat {
                    // Another seed (loss pattern) for each run.
                    let seed = n + 100 * run;
                    confer.push(confer_cell(cell, seed, seconds).await);
                    chromium.push(chromium_cell(&browsers, cell, seed, seconds).await);
                }
                let (confer, chromium) = (medians(&confer), medians(&chromium));
                println!("{} | {} | {}", cell.name(), show(&confer), show(&chromium));
            }
        }
    }

    if cuts == 0 {
        return;
    }
    let (mut confer, mut chromium) = (Vec::new(), Vec::new());
    for n in 0..cuts {
        confer.push(confer_cut(n).await);
        chromium.push(chromium_cut(&browsers, n).await);
    }
    println!(
        "recovery after a 5 s cut, restore → first new frame at both ends, ms: \
         Confer {confer:.0?} (median {:.0}), Chromium {chromium:.0?} (median {:.0})",
        median(&mut confer.clone()),
        median(&mut chromium.clone())
    );
}
