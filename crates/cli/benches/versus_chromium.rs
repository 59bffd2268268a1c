//! Confer next to Chromium, the same calls in one run (docs/BENCHMARKS.md).
//!
//! `cargo bench -p confer-cli --bench versus_chromium [-- --calls 20 --seconds 15]`
//!
//! Both make one-to-one calls through the same confer-signal on loopback, VP8, same size, frame
//! rate and bitrate cap:
//! - set-up: join to the first remote frame on both sides, over `--calls` calls. Confer: two
//!   `CallHandle`s in this process. Chromium: two headless instances, the peer page reloaded
//!   for every call (a new `RTCPeerConnection`, as a new call in a browser tab).
//! - calls at 640x360 and 1280x720, 30 fps, measured for `--seconds` after a warm-up: CPU per
//!   peer (all threads, all processes of a browser instance) and memory (PSS, summed over the
//!   instance's processes). Confer peers are two `confer call` processes; Chromium peers send
//!   their fake camera.
//! - glass-to-glass: capture to decoded (Confer, read by the receiving process) or to presented
//!   (Chromium, read by the page in `requestVideoFrameCallback`), from the frame mark both draw
//!   with the wall-clock time of capture. Chromium's pages draw the mark on a canvas source for
//!   this (a separate run, so the canvas does not count in its CPU figure).

use std::time::{Duration, Instant};

use confer_browser::{Chromium, PeerPage};
use confer_call::call::CallHandle;
use confer_protocol::Role;
use confer_signal::{Config, ServerHandle};
use serde_json::Value;

#[path = "../../call/tests/common/mod.rs"]
mod common;
use common::token;
#[path = "../../media/benches/stats.rs"]
mod stats;
use stats::{arg, median, p95};

/// The call both make: size, bitrate cap (kbit/s), 30 fps; measured for `seconds` after
/// `warm_up`.
#[derive(Debug, Clone, Copy)]
struct Spec {
    size: (u32, u32),
    kbps: u32,
    warm_up: Duration,
    seconds: u64,
}

/// CPU use in percent of a core between two readings `elapsed` seconds apart.
fn cpu_pct(before: &[f64], after: &[f64], elapsed: f64) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| (a - b) / elapsed * 100.0)
        .collect()
}

/// One call's figures for one implementation.
#[derive(Debug, Default)]
struct Sample {
    cpu_pct: Vec<f64>,
    pss_mib: Vec<f64>,
    g2g_p50: f64,
    g2g_p95: f64,
    fps: Vec<f64>,
    kbps: Vec<f64>,
    note: String,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

async fn confer_setup(handle: &ServerHandle, calls: u64) -> Vec<f64> {
    let mut ms = Vec::new();
    for n in 0..calls {
        let room = format!("confer-setup-{n}");
        let started = Instant::now();
        let (host, guest) = tokio::join!(
            CallHandle::join(common::call_config(handle, &room, Role::Host)),
            CallHandle::join(common::call_config(handle, &room, Role::Guest))
        );
        let (mut host, mut guest) = (host.expect("host"), guest.expect("guest"));
        tokio::join!(
            common::first_frame(&mut host),
            common::first_frame(&mut guest)
        );
        ms.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::join!(common::end(host), common::end(guest));
    }
    ms
}

/// A call between two `confer call` processes, measured like the browsers.
async fn confer_call(handle: &ServerHandle, spec: Spec) -> Sample {
    let (w, h) = spec.size;
    let room = format!("confer-{w}x{h}");
    let dir = std::env::temp_dir().join(format!("confer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let total = spec.warm_up + Duration::from_secs(spec.seconds);
    let mut children = Vec::new();
    for role in [Role::Host, Role::Guest] {
        let link = format!(
            "http://{}/join/{room}#{}",
            handle.local_addr(),
            token(handle, &room, role)
        );
        let json = dir.join(format!("{role:?}.json"));
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_confer"));
        command.args(["call", &link, "--video", &format!("pattern:{w}x{h}")]);
        if role == Role::Host {
            command.arg("--admit");
        }
        let child = command
            .args(["--video-kbps", &spec.kbps.to_string(), "--audio", "tone"])
            .args(["--duration", &format!("{}ms", total.as_millis())])
            .arg("--stats-json")
            .arg(&json)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("confer call");
        children.push((child, json));
    }
    let pids: Vec<u32> = children
        .iter()
        .map(|(c, _)| c.id().expect("running"))
        .collect();
    tokio::time::sleep(spec.warm_up).await;
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|&p| confer_browser::cpu_seconds(p))
        .collect();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(spec.seconds) - Duration::from_millis(500)).await;
    let cpu1: Vec<f64> = pids
        .iter()
        .map(|&p| confer_browser::cpu_seconds(p))
        .collect();
    let mut sample = Sample {
        cpu_pct: cpu_pct(&cpu0, &cpu1, t0.elapsed().as_secs_f64()),
        pss_mib: pids.iter().map(|&p| confer_browser::pss_mib(p)).collect(),
        ..Sample::default()
    };
    let mut p50 = Vec::new();
    let mut p95s = Vec::new();
    for (mut child, json) in children {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("confer call ends on time")
            .expect("confer call ends");
        assert!(status.success(), "confer call failed");
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).expect("stats json"))
                .expect("stats JSON");
        p50.push(report["glass_to_glass_p50_ms"].as_f64().unwrap_or(f64::NAN));
        p95s.push(report["glass_to_glass_p95_ms"].as_f64().unwrap_or(f64::NAN));
        let last = &report["last_second"];
        sample
            .fps
            .push(last["fps_received"].as_f64().unwrap_or(0.0));
        sample.kbps.push(last["send_kbps"].as_f64().unwrap_or(0.0));
    }
    let _ = std::fs::remove_dir_all(&dir);
    sample.g2g_p50 = mean(&p50);
    sample.g2g_p95 = mean(&p95s);
    sample.note =
        "glass-to-glass over the whole call, each receiver's p50/p95, mean of the two".into();
    sample
}

/// The two browsers and the page they run.
struct Browsers {
    a: Chromium,
    b: Chromium,
}

impl Browsers {
    async fn launch(page: &PeerPage) -> Self {
        let (a, b) = confer_browser::launch_pair(page).await.expect("chromium");
        Self { a, b }
    }

    /// Reloads both pages (a new call, new peer connections) and joins `room`; returns the
    /// later of the two pages' join → first remote frame times, ms.
    async fn call(&self, handle: &ServerHandle, room: &str, options: &str) -> f64 {
        confer_browser::reload_peer_pages(&[&self.a, &self.b])
            .await
            .expect("pages reloaded");
        let join = |role| {
            format!(
                "peer.join({{url: {:?}, token: {:?}, {options}}})",
                handle.ws_url(),
                token(handle, room, role)
            )
        };
        let (ja, jb) = (join(Role::Host), join(Role::Guest));
        let (fa, fb) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(self.a.eval(&ja), self.b.eval(&jb))
        })
        .await
        .expect("browsers connect within 30 s");
        let (fa, fb) = (fa.expect("a joins"), fb.expect("b joins"));
        fa.as_f64()
            .unwrap_or(f64::NAN)
            .max(fb.as_f64().unwrap_or(f64::NAN))
    }

    async fn hang_up(&self) {
        for browser in [&self.a, &self.b] {
            let _ = browser.eval("peer.hangUp()").await;
        }
    }
}

async fn chromium_setup(browsers: &Browsers, handle: &ServerHandle, calls: u64) -> Vec<f64> {
    let mut ms = Vec::new();
    for n in 0..calls {
        let room = format!("chromium-setup-{n}");
        ms.push(
            browsers
                .call(
                    handle,
                    &room,
                    "width: 640, height: 360, fps: 30, kbps: 600, source: 'camera'",
                )
                .await,
        );
        browsers.hang_up().await;
    }
    ms
}

/// A browser call at `w`x`h`: CPU and memory with the fake camera, then glass-to-glass with
/// the marked canvas.
async fn chromium_call(browsers: &Browsers, handle: &ServerHandle, spec: Spec) -> Sample {
    let (w, h) = spec.size;
    let options = format!("width: {w}, height: {h}, fps: 30, kbps: {}", spec.kbps);
    let mut sample = Sample::default();
    let room = format!("chromium-{w}x{h}");
    browsers
        .call(handle, &room, &format!("{options}, source: 'camera'"))
        .await;
    tokio::time::sleep(spec.warm_up).await;
    let peers = [&browsers.a, &browsers.b];
    let cpu0: Vec<f64> = peers.iter().map(|b| b.cpu_seconds()).collect();
    let bytes0 = sent_bytes(&peers).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(spec.seconds)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let bytes1 = sent_bytes(&peers).await;
    let cpu1: Vec<f64> = peers.iter().map(|b| b.cpu_seconds()).collect();
    sample.cpu_pct = cpu_pct(&cpu0, &cpu1, elapsed);
    for (i, browser) in peers.iter().enumerate() {
        sample.pss_mib.push(browser.pss_mib());
        let stats = browser.eval("peer.stats()").await.expect("stats");
        sample
            .fps
            .push(stats["fpsReceived"].as_f64().unwrap_or(0.0));
        sample
            .kbps
            .push((bytes1[i] - bytes0[i]) * 8.0 / 1e3 / elapsed);
        if stats["sentWidth"].as_u64() != Some(u64::from(w)) {
            sample.note = format!(
                "Chromium sent {}x{}",
                stats["sentWidth"], stats["sentHeight"]
            );
        }
    }
    browsers.hang_up().await;

    let room = format!("chromium-g2g-{w}x{h}");
    browsers
        .call(
            handle,
            &room,
            &format!("{options}, source: 'mark', readMarks: true"),
        )
        .await;
    tokio::time::sleep(spec.warm_up).await;
    for browser in peers {
        browser.eval("peer.takeMarks()").await.expect("marks");
    }
    tokio::time::sleep(Duration::from_secs(spec.seconds)).await;
    let mut p50 = Vec::new();
    let mut p95s = Vec::new();
    for browser in peers {
        let marks = browser.eval("peer.takeMarks()").await.expect("marks");
        let mut ages: Vec<f64> = marks["marks"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["ageMs"].as_f64()).collect())
            .unwrap_or_default();
        p50.push(median(&mut ages.clone()));
        p95s.push(p95(&mut ages));
    }
    browsers.hang_up().await;
    sample.g2g_p50 = mean(&p50);
    sample.g2g_p95 = mean(&p95s);
    sample
}

/// Video bytes each browser has sent so far.
async fn sent_bytes(peers: &[&Chromium; 2]) -> Vec<f64> {
    let mut out = Vec::new();
    for browser in peers {
        let stats = browser.eval("peer.stats()").await.expect("stats");
        out.push(stats["bytesSent"].as_f64().unwrap_or(0.0));
    }
    out
}

fn report(size: &str, kbps: u32, confer: &Sample, chromium: &Sample) {
    let ratio = |a: f64, b: f64| a / b;
    println!("{size} @ {kbps} kbit/s cap, 30 fps:");
    for (name, s) in [("Confer", confer), ("Chromium", chromium)] {
        println!(
            "  {name:<8} CPU/peer {:>5.1}% ({:.1} / {:.1}); PSS/peer {:>6.1} MiB; glass-to-glass p50 {:>5.1} ms, p95 {:>5.1} ms; \
             {:.1} frames/s received; video sent {:.0} kbit/s {}",
            mean(&s.cpu_pct),
            s.cpu_pct[0],
            s.cpu_pct[1],
            mean(&s.pss_mib),
            s.g2g_p50,
            s.g2g_p95,
            mean(&s.fps),
            mean(&s.kbps),
            s.note
        );
    }
    println!(
        "  Confer/Chromium: CPU {:.2}, PSS {:.2}, glass-to-glass p50 {:.2}, p95 {:.2}",
        ratio(mean(&confer.cpu_pct), mean(&chromium.cpu_pct)),
        ratio(mean(&confer.pss_mib), mean(&chromium.pss_mib)),
        ratio(confer.g2g_p50, chromium.g2g_p50),
        ratio(confer.g2g_p95, chromium.g2g_p95),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert!(
            confer_browser::available(),
            "Chromium is missing: scripts/setup installs it"
        );
        let calls = arg("--calls", 20) as u64;
        let seconds = arg("--seconds", 15) as u64;
        let warm_up = Duration::from_secs(arg("--warm-up", 5) as u64);
        let page = PeerPage::serve().await.expect("page");
        let (handle, _server) = common::start(Config {
            allowed_origins: vec![page.origin()],
            ..Config::loopback()
        })
        .await;

        eprintln!("Confer set-up, {calls} calls");
        let mut confer = confer_setup(&handle, calls).await;
        let specs = [((640, 360), 600), ((1280, 720), 1500)].map(|(size, kbps)| Spec {
            size,
            kbps,
            warm_up,
            seconds,
        });
        let mut confer_calls = Vec::new();
        for spec in specs {
            eprintln!("Confer call {:?}", spec.size);
            confer_calls.push(confer_call(&handle, spec).await);
        }
        eprintln!("Chromium set-up, {calls} calls");
        let browsers = Browsers::launch(&page).await;
        let mut chromium = chromium_setup(&browsers, &handle, calls).await;
        let mut chromium_calls = Vec::new();
        for spec in specs {
            eprintln!("Chromium call {:?}", spec.size);
            chromium_calls.push(chromium_call(&browsers, &handle, spec).await);
        }
        drop(browsers);

        println!(
            "call set-up (join → first remote frame on both sides), {calls} calls each, p50 / p95:"
        );
        let (cm, cp) = (median(&mut confer.clone()), p95(&mut confer));
        let (bm, bp) = (median(&mut chromium.clone()), p95(&mut chromium));
        println!("  Confer   {cm:.0} ms / {cp:.0} ms");
        println!("  Chromium {bm:.0} ms / {bp:.0} ms");
        println!("  Confer/Chromium: p50 {:.2}, p95 {:.2}", cm / bm, cp / bp);
        for (i, spec) in specs.into_iter().enumerate() {
            let (w, h) = spec.size;
            report(
                &format!("{w}x{h}"),
                spec.kbps,
                &confer_calls[i],
                &chromium_calls[i],
            );
        }
        handle.shutdown().await;
    });
}
