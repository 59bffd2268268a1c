//! The running desktop app (release build) against headless Chromium, in the same call:
//! memory as the total PSS of all the app's processes (the app and its WebKit web and network
//! processes) and CPU, on the home screen (camera preview on) and during a 720p30 call whose
//! other party is Debian's headless Chromium (the peer page of confer-browser, its fake
//! camera at 1280x720), measured the same way over its own process group. Also the video the
//! app puts on screen: frames drawn per second and capture-to-drawn latency.
//!
//! `cargo bench --profile release -p confer-desktop --bench desktop [-- --seconds 20]`: the
//! release profile, so the app measured is the one `scripts/run` and the package build (with
//! link-time optimisation; the bench profile leaves it off to keep the other benches' builds
//! short). Under Xvfb (started here), without a GPU: the page draws video on a 2D canvas, as
//! it does on any machine without one (`CONFER_VIDEO_DRAWING=webgl` forces WebGL, which then
//! runs on Mesa's software GL).

#[path = "../tests/common/process.rs"]
mod process;
#[path = "../tests/common/webdriver.rs"]
mod webdriver;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use confer_browser::{Chromium, PeerPage, cpu_seconds, group_processes, pss_mib};
use process::{Started, free_port, start_xvfb, wait_listening};
use serde_json::json;
use webdriver::Session;

/// The processes of the app: everything in the driver's process group but the driver.
fn app_processes(driver: u32) -> Vec<u32> {
    group_processes(driver)
        .into_iter()
        .filter(|&p| p != driver)
        .collect()
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_seconds(p)).sum()
}

fn pss_of(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| pss_mib(p)).sum()
}

/// CPU (% of one core) and PSS (MiB) of `pids()` over `seconds`, PSS sampled each second
/// (median); and the same per process, by name.
fn measure(pids: impl Fn() -> Vec<u32>, seconds: u64) -> (f64, f64, String) {
    let first = pids();
    let before: Vec<f64> = first.iter().map(|&p| cpu_seconds(p)).collect();
    let start = Instant::now();
    let mut pss = Vec::new();
    for _ in 0..seconds {
        std::thread::sleep(Duration::from_secs(1));
        pss.push(pss_of(&pids()));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = 100.0 * (cpu_of(&pids()) - before.iter().sum::<f64>()) / elapsed;
    pss.sort_by(f64::total_cmp);
    let each = first
        .iter()
        .zip(&before)
        .map(|(&p, &b)| {
            let name = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            format!(
                "{} {:.1}% {:.1} MiB",
                name.trim(),
                100.0 * (cpu_seconds(p) - b) / elapsed,
                pss_mib(p)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    (cpu, pss[pss.len() / 2], each)
}

fn drawn(session: &Session) -> u64 {
    session
        .script(
            "return Number(document.getElementById('remote-video').dataset.drawn || 0)",
            vec![],
        )
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20u64);
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if !confer_browser::available() {
        eprintln!("desktop bench: no Chromium here (scripts/setup installs it)");
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("confer-desktop-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // A virtual screen.
    let (_xvfb, display) = start_xvfb();

    // The signaling server both join (the browser's page needs its origin allowed), and the
    // browser with its peer page.
    let page = runtime.block_on(PeerPage::serve()).unwrap();
    let server = runtime
        .block_on(confer_signal::Server::bind(confer_signal::Config {
            allowed_origins: vec![page.origin()],
            api_key: Some("desktop-bench".into()),
            ..confer_signal::Config::loopback()
        }))
        .unwrap();
    let handle = server.handle();
    runtime.spawn(server.serve());
    let chromium = runtime
        .block_on(Chromium::launch(&page.url(), &[]))
        .expect("chromium");

    // The app, with its settings pointing at that server.
    let home = dir.join("home");
    let config = home.join(".config/org.confer.desktop");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("settings.json"),
        json!({
            "serverUrl": format!("http://{}", handle.local_addr()),
            "apiKey": "desktop-bench",
            "video": "pattern:1280x720",
            "audio": "tone",
            "speaker": "none",
        })
        .to_string(),
    )
    .unwrap();
    let port = free_port();
    let driver = Started::spawn(
        Command::new("WebKitWebDriver")
            .arg(format!("--port={port}"))
            .arg("--host=127.0.0.1")
            .env("TAURI_WEBVIEW_AUTOMATION", "true")
            .env("DISPLAY", &display)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "WebKitWebDriver (webkit2gtk-driver)",
    );
    let driver_pid = driver.pid();
    assert!(wait_listening(port), "WebKitWebDriver listens");
    let app = Session::start(port, env!("CARGO_BIN_EXE_confer-desktop")).expect("the app starts");
    app.wait_for(
        "ready",
        "return document.body.dataset.ready === 'true'",
        Duration::from_secs(30),
    )
    .unwrap();

    // Home screen, camera preview on.
    std::thread::sleep(Duration::from_secs(5));
    let (idle_cpu, idle_pss, idle_each) = measure(|| app_processes(driver_pid), seconds);
    let processes = app_processes(driver_pid).len();

    // The call: the app hosts, Chromium joins from the invite link, the app admits.
    app.fill("#display-name", "Bench host").unwrap();
    app.click("#start-call").unwrap();
    let link = app
        .wait_for(
            "invite link",
            "return document.getElementById('invite-link').value",
            Duration::from_secs(20),
        )
        .unwrap();
    let token = link
        .as_str()
        .unwrap()
        .rsplit_once('#')
        .unwrap()
        .1
        .to_owned();
    let join = format!(
        "peer.join({{url: {:?}, token: {token:?}, width: 1280, height: 720, fps: 30, kbps: 1500, \
         source: 'camera'}})",
        handle.ws_url()
    );
    let joined = {
        let chromium = &chromium;
        let app = &app;
        std::thread::scope(|scope| {
            let admitted = scope.spawn(move || {
                app.wait_for(
                    "the knock",
                    "return !!document.querySelector('#knocks li')",
                    Duration::from_secs(20),
                )
                .unwrap();
                app.click("#knocks li button.primary").unwrap();
            });
            let joined = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), chromium.eval(&join)).await
            });
            admitted.join().unwrap();
            joined
        })
    };
    joined.expect("Chromium joins within 30 s").expect("join");
    app.click("#btn-stats").unwrap();
    std::thread::sleep(Duration::from_secs(5));

    let chromium_pids = || group_processes(chromium.pid());
    let drawn_before = drawn(&app);
    let started = Instant::now();
    let ((app_cpu, app_pss, app_each), (chromium_cpu, chromium_pss, _)) =
        std::thread::scope(|scope| {
            let browser = scope.spawn(|| measure(chromium_pids, seconds));
            let native = measure(|| app_processes(driver_pid), seconds);
            (native, browser.join().unwrap())
        });
    let fps_drawn = (drawn(&app) - drawn_before) as f64 / started.elapsed().as_secs_f64();
    let to_screen = app
        .script(
            "const dt = [...document.querySelectorAll('#stats-list dt')].find(d => d.textContent === 'To screen');
             return dt ? dt.nextElementSibling.textContent : null",
            vec![],
        )
        .unwrap();
    let received = app
        .script(
            "const dt = [...document.querySelectorAll('#stats-list dt')].find(d => d.textContent === 'Receiving');
             return dt ? dt.nextElementSibling.textContent : null",
            vec![],
        )
        .unwrap();
    let browser_stats = runtime.block_on(chromium.eval("peer.stats()")).unwrap();

    println!("desktop app (release) vs headless Chromium, {seconds} s each, Xvfb + software GL:");
    println!(
        "  home screen, preview on: app CPU {idle_cpu:.1}%, PSS {idle_pss:.1} MiB ({processes} processes)"
    );
    println!(
        "  720p30 call:             app CPU {app_cpu:.1}%, PSS {app_pss:.1} MiB; Chromium CPU \
         {chromium_cpu:.1}%, PSS {chromium_pss:.1} MiB"
    );
    println!("    home, per process: {idle_each}");
    println!("    call, per process: {app_each}");
    println!(
        "  ratios app/Chromium:     CPU {:.2}, PSS {:.2}",
        app_cpu / chromium_cpu,
        app_pss / chromium_pss
    );
    println!(
        "  app screen: {fps_drawn:.1} frames/s drawn; to screen {}; receiving {}",
        to_screen.as_str().unwrap_or("?"),
        received.as_str().unwrap_or("?")
    );
    println!(
        "  Chromium received {} frames/s, sent {}x{}",
        browser_stats["fpsReceived"], browser_stats["sentWidth"], browser_stats["sentHeight"]
    );

    let _ = app.end();
    drop(chromium);
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
}
