//! A private PulseAudio server for device tests: real cpal streams on virtual devices.
//!
//! Layout: sink `speaker` (where Confer plays; its monitor is what "came out of the speaker"),
//! sink `feed` (what tests play "into the room") and source `mic`, a remap of `feed.monitor`
//! (the virtual microphone). `speaker` and `mic` are the defaults.
//!
//! libpulse finds its server through the environment, and a test binary's tests share one
//! process, so each device test re-runs itself in a child process whose environment points at
//! the server this harness started ([`run_in_pulse`]). The harness owns the server's PID and
//! stops exactly that process.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_FLAG: &str = "CONFER_PULSE_CHILD";

/// A running private PulseAudio server.
pub struct Pulse {
    dir: PathBuf,
    daemon: Child,
    keepalive: Vec<Child>,
}

impl Pulse {
    fn env(&self) -> Vec<(String, String)> {
        Self::env_of(&self.dir)
    }

    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "confer-pulse-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        for sub in ["run", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("pulse dirs");
        }
        let log = std::fs::File::create(dir.join("pulse.log")).expect("log");
        let mut pulse = Self {
            daemon: Command::new("pulseaudio")
                .args([
                    "-n",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--use-pid-file=no",
                    "--log-target=stderr",
                    "-L",
                    "module-native-protocol-unix auth-anonymous=1",
                    "-L",
                    "module-null-sink sink_name=speaker rate=48000 channels=2",
                    "-L",
                    "module-null-sink sink_name=feed rate=48000 channels=2",
                    "-L",
                    "module-remap-source source_name=mic master=feed.monitor",
                ])
                .envs(Self::env_of(&dir))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("pulseaudio is installed (scripts/setup installs it)"),
            dir,
            keepalive: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pulse.pactl(&["info"]) {
            assert!(
                Instant::now() < deadline,
                "PulseAudio did not come up; log: {}",
                std::fs::read_to_string(pulse.dir.join("pulse.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(pulse.pactl(&["set-default-sink", "speaker"]));
        assert!(pulse.pactl(&["set-default-source", "mic"]));
        // An idle null sink renders in 2 s blocks: keep a silent stream playing into each.
        for sink in ["speaker", "feed"] {
            let child = pulse
                .command("pacat")
                .args([
                    "-p",
                    "--raw",
                    "--latency-msec=10",
                    &format!("--device={sink}"),
                ])
                .stdin(std::fs::File::open("/dev/zero").expect("/dev/zero"))
                .spawn()
                .expect("pacat");
            pulse.keepalive.push(child);
        }
        // Then it takes a moment to leave its idle timing (sink latency above a second).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let latencies = pulse.sink_latencies_us();
            if latencies.len() == 2 && latencies.iter().all(|&l| l < 100_000) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "null sinks never settled: {latencies:?} µs"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse
    }

    /// Current latency of each sink, microseconds (`pactl list sinks`).
    fn sink_latencies_us(&self) -> Vec<u64> {
        let out = self
            .command("pactl")
            .args(["list", "sinks"])
            .stdout(Stdio::piped())
            .output()
            .expect("pactl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Latency: "))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect()
    }

    fn env_of(dir: &Path) -> Vec<(String, String)> {
        let run = dir.join("run");
        vec![
            ("XDG_RUNTIME_DIR".into(), run.display().to_string()),
            ("HOME".into(), dir.join("home").display().to_string()),
            (
                "PULSE_SERVER".into(),
                format!("unix:{}", run.join("pulse/native").display()),
            ),
        ]
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn pactl(&self, args: &[&str]) -> bool {
        self.command("pactl")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        for child in &mut self.keepalive {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the test `name` (the calling test) again in a child process inside a fresh private
/// PulseAudio server, and returns `false`; inside that child it returns `true`, and the
/// caller runs the test body.
pub fn run_in_pulse(name: &str) -> bool {
    if std::env::var_os(CHILD_FLAG).is_some() {
        return true;
    }
    // One at a time: these tests run in real time on a 2-core machine, and a sound server
    // starved by a neighbour glitches (a gap shifts the echo path, a dropout lowers a level).
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pulse = Pulse::start();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .envs(pulse.env())
        .env(CHILD_FLAG, "1")
        .output()
        .expect("run the test in PulseAudio");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in PulseAudio failed:\n{text}"
    );
    eprintln!("{text}");
    false
}

/// Inside [`run_in_pulse`]: pactl against this test's server (the environment points at it).
pub fn pactl(args: &[&str]) -> String {
    let out = Command::new("pactl").args(args).output().expect("pactl");
    assert!(out.status.success(), "pactl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Inside [`run_in_pulse`]: makes a room of the devices. Whatever the speaker plays reaches
/// the microphone 40 ms later (plus the buffering on both sides). The loopback's adaptive
/// rate is off: it keeps shifting the echo delay, which a real room does not do.
pub fn echo_room() {
    pactl(&[
        "load-module",
        "module-loopback",
        "source=speaker.monitor",
        "sink=feed",
        "latency_msec=40",
        "adjust_time=0",
    ]);
}

/// Inside [`run_in_pulse`]: plays 48 kHz mono `f32` samples into `sink` (in the background).
pub fn play(sink: &str, samples: &[f32]) -> Child {
    let mut child = Command::new("pacat")
        .args([
            "-p",
            "--raw",
            "--format=float32le",
            "--rate=48000",
            "--channels=1",
            "--latency-msec=20",
            &format!("--device={sink}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("pacat");
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    child
}

/// A recording in progress.
pub struct Recording {
    child: Child,
    reader: std::thread::JoinHandle<Vec<u8>>,
}

/// Inside [`run_in_pulse`]: records `source` as 48 kHz mono `f32` until [`finish`]; a thread
/// drains the pipe so the recorder never blocks.
pub fn record(source: &str) -> Recording {
    let mut child = Command::new("parec")
        .args([
            "--raw",
            "--format=float32le",
            "--rate=48000",
            "--channels=1",
            "--latency-msec=20",
            &format!("--device={source}"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("parec");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut bytes);
        bytes
    });
    Recording { child, reader }
}

/// Stops a recording and returns its samples.
pub fn finish(mut rec: Recording) -> Vec<f32> {
    let _ = rec.child.kill();
    let _ = rec.child.wait();
    let bytes = rec.reader.join().expect("reader");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
