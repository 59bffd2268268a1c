//! Load generator for confer-signal: real WebSocket clients on loopback against the release
//! `confer-signal` binary running as its own process (so its RSS and CPU are its own).
//!
//! 1. Warm-up cycles.
//! 2. Opens `--held` idle connections in pairs (auto-admit rooms, both admitted, `call-ready`
//!    received) and keeps them answering pings: server RSS per idle connection.
//! 3. While they are held, `--workers` tasks run full call cycles for `--seconds`: join →
//!    call-ready → offer/answer (2 KB SDP) → 20 candidates each way → leave. Every relayed
//!    payload carries its send time: relay latency p50/p99 as the receiving client sees it.
//!    Cycles/s and the server's CPU time over the phase.
//! 4. Checks that the held connections are all still open.
//!
//! Run: `cargo bench -p confer-signal --bench load -- --held 10000 --workers 64 --seconds 20`
//! (root raises the open-file limit itself; otherwise `ulimit -n` must allow it). Tokens are
//! minted locally with the server's secret, so room creation over HTTP is not in the cycle.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use confer_protocol::{ClientMessage, Hello, Role, ServerMessage, SignalPayload};
use confer_signal::{Claims, TokenIssuer};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

type Ws = WebSocketStream<tokio::net::TcpStream>;

struct Args {
    held: usize,
    workers: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        held: 10_000,
        workers: 64,
        seconds: 20,
    };
    let argv: Vec<String> = std::env::args().collect();
    let get = |name: &str| {
        argv.iter()
            .position(|x| x == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    if let Some(v) = get("--held") {
        a.held = v;
    }
    if let Some(v) = get("--workers") {
        a.workers = v;
    }
    if let Some(v) = get("--seconds") {
        a.seconds = v as u64;
    }
    a
}

struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(secret: &str) -> Result<ServerProcess> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confer-signal"))
        .env("CONFER_LISTEN", "127.0.0.1:0")
        .env("CONFER_TOKEN_SECRET", secret)
        .env("CONFER_API_KEY", "bench")
        .env("CONFER_MAX_CONNECTIONS", "100000")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("spawning confer-signal")?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(tokio::process::ChildStderr::from_std(stderr)?).lines();
    let addr = loop {
        let Some(line) = lines.next_line().await? else {
            bail!("confer-signal exited before listening");
        };
        if let Some(rest) = line.strip_prefix("confer-signal listening on ") {
            let addr = rest.split_whitespace().next().context("address")?;
            break addr.parse()?;
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[server] {line}");
        }
    });
    Ok(ServerProcess { child, addr })
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident set size in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status", "VmRSS:")
}

/// User + system CPU time in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields after the command: state is [0], utime is [11], stime is [12] (clock ticks, 100/s).
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

static SOURCE: AtomicUsize = AtomicUsize::new(0);

/// Connects from one of 127.0.0.2..=127.0.0.201, so closed connections in TIME_WAIT do not
/// exhaust one source address's ephemeral ports.
async fn connect(addr: SocketAddr) -> Result<Ws> {
    let n = SOURCE.fetch_add(1, Ordering::Relaxed);
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 200) as u8));
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/v1/ws");
    let (ws, _) = client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<()> {
    ws.send(Message::text(serde_json::to_string(msg)?)).await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> Result<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no message within 10 s")?
            .context("connection ended")??;
        if let Message::Text(t) = frame {
            return Ok(serde_json::from_str(t.as_str())?);
        }
    }
}

fn hello(token: String) -> ClientMessage {
    ClientMessage::Hello(Hello {
        protocol: 1,
        token,
        resume: None,
        last_seq: None,
        name: None,
    })
}

struct Env {
    addr: SocketAddr,
    issuer: TokenIssuer,
    epoch: Instant,
    rooms: AtomicU64,
}

impl Env {
    fn tokens(&self) -> (String, String) {
        let room = format!("bench{}", self.rooms.fetch_add(1, Ordering::Relaxed));
        let claims = |role| Claims {
            room: room.clone(),
            role,
            exp: confer_signal::unix_now() + 3600,
            name: None,
            jti: "bench".into(),
            auto_admit: true,
        };
        (
            self.issuer.issue(&claims(Role::Host)),
            self.issuer.issue(&claims(Role::Guest)),
        )
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn payload(&self, kind: &str, extra: &str) -> SignalPayload {
        let v = json!({ "kind": kind, "t": self.now_ns(), "body": extra });
        SignalPayload(v.as_object().cloned().unwrap_or_default())
    }
}

/// Joins a pair into a fresh auto-admit room; returns (host, guest, host is initiator).
async fn pair(env: &Env) -> Result<(Ws, Ws, bool)> {
    let (ht, gt) = env.tokens();
    let mut host = connect(env.addr).await?;
    send(&mut host, &hello(ht)).await?;
    let mut guest = connect(env.addr).await?;
    send(&mut guest, &hello(gt)).await?;
    let mut host_initiates = None;
    for (ws, is_host) in [(&mut host, true), (&mut guest, false)] {
        loop {
            match recv(ws).await? {
                ServerMessage::Welcome(_) => {}
                ServerMessage::CallReady { initiator, .. } => {
                    if is_host {
                        host_initiates = Some(initiator);
                    }
                    break;
                }
                other => bail!("unexpected {other:?}"),
            }
        }
    }
    Ok((host, guest, host_initiates.unwrap_or(false)))
}

/// Receives one relayed signal and returns its one-way latency in µs.
async fn relayed(env: &Env, ws: &mut Ws) -> Result<u64> {
    match recv(ws).await? {
        ServerMessage::Signal { payload, .. } => {
            let t = payload.0.get("t").and_then(|v| v.as_u64()).unwrap_or(0);
            Ok(env.now_ns().saturating_sub(t) / 1000)
        }
        other => bail!("expected a signal, got {other:?}"),
    }
}

const CANDIDATES: usize = 20;

async fn cycle(env: &Env, sdp: &str, lat: &mut Vec<u64>) -> Result<()> {
    let (host, guest, host_initiates) = pair(env).await?;
    let (mut a, mut b) = if host_initiates {
        (host, guest)
    } else {
        (guest, host)
    };
    let signal = |kind: &str, body: &str| ClientMessage::Signal {
        payload: env.payload(kind, body),
    };
    send(&mut a, &signal("offer", sdp)).await?;
    lat.push(relayed(env, &mut b).await?);
    send(&mut b, &signal("answer", sdp)).await?;
    lat.push(relayed(env, &mut a).await?);
    let cand = "candidate:842163049 1 udp 1677729535 192.0.2.10 61234 typ srflx raddr 10.0.0.5 rport 61234 generation 0";
    for _ in 0..CANDIDATES {
        send(&mut a, &signal("candidate", cand)).await?;
        send(&mut b, &signal("candidate", cand)).await?;
    }
    for _ in 0..CANDIDATES {
        lat.push(relayed(env, &mut b).await?);
        lat.push(relayed(env, &mut a).await?);
    }
    for ws in [&mut a, &mut b] {
        send(ws, &ClientMessage::Leave).await?;
    }
    for ws in [&mut a, &mut b] {
        // Read to the server's close, skipping the other side's `peer-left`.
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                break;
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() -> Result<()> {
    let args = args();
    let want = (args.held as u64) * 2 + 4096;
    if rlimit::setrlimit(rlimit::Resource::NOFILE, want, want).is_err() {
        let _ = rlimit::increase_nofile_limit(want);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let secret: String = (0..48).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let server = start_server(&secret).await?;
    let pid = server.child.id();
    let env = Arc::new(Env {
        addr: server.addr,
        issuer: TokenIssuer::new(secret.as_bytes()),
        epoch: Instant::now(),
        rooms: AtomicU64::new(0),
    });
    let sdp: Arc<str> = "a".repeat(2048).into();
    eprintln!("confer-signal pid {pid} on {}", server.addr);

    // 1. Warm-up.
    let mut lat = Vec::new();
    for _ in 0..100 {
        cycle(&env, &sdp, &mut lat).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);

    // 2. Held connections.
    let t = Instant::now();
    let pairs = args.held / 2;
    let alive = Arc::new(AtomicUsize::new(0));
    let opened: Vec<Result<()>> = stream::iter(0..pairs)
        .map(|_| {
            let env = Arc::clone(&env);
            let alive = Arc::clone(&alive);
            async move {
                let (host, guest, _) = pair(&env).await?;
                for mut ws in [host, guest] {
                    let alive = Arc::clone(&alive);
                    alive.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        // Reading answers the server's pings.
                        while let Some(Ok(frame)) = ws.next().await {
                            if frame.is_close() {
                                break;
                            }
                        }
                        alive.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Ok(())
            }
        })
        .buffer_unordered(128)
        .collect()
        .await;
    let failed = opened.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = opened.iter().find(|r| r.is_err()) {
        eprintln!("first failure opening held connections: {e:#}");
    }
    let open_secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_held = rss_kib(pid);
    let held = alive.load(Ordering::SeqCst);
    eprintln!("held {held} connections ({failed} pairs failed) in {open_secs:.1} s");

    // 3. Cycles under that load.
    let cycles = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let cpu0 = cpu_secs(pid);
    let me = std::process::id();
    let own0 = cpu_secs(me);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.workers {
        let (env, sdp) = (Arc::clone(&env), Arc::clone(&sdp));
        let (cycles, errors) = (Arc::clone(&cycles), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut first_error = None;
            while Instant::now() < deadline {
                match cycle(&env, &sdp, &mut lat).await {
                    Ok(()) => cycles.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        first_error.get_or_insert(format!("{e:#}"));
                        errors.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            (lat, first_error)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let (lat, err) = t.await?;
        if let Some(e) = err {
            eprintln!("cycle error: {e}");
        }
        all.extend(lat);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    let own = cpu_secs(me) - own0;
    all.sort_unstable();
    let rss_peak = proc_field(pid, "status", "VmHWM:");
    let still_held = alive.load(Ordering::SeqCst);
    let n = cycles.load(Ordering::Relaxed);

    let per_conn = (rss_held.saturating_sub(rss_before) as f64) / held.max(1) as f64;
    println!("| metric | value |");
    println!("|---|---|");
    println!(
        "| idle connections held (opened / still open after the cycle phase) | {held} / {still_held} |"
    );
    println!("| time to open them | {open_secs:.1} s |");
    println!(
        "| server RSS before / with them held / peak | {} / {} / {} MiB |",
        rss_before / 1024,
        rss_held / 1024,
        rss_peak / 1024
    );
    println!("| server RSS per idle connection | {per_conn:.1} KiB |");
    println!("| workers running cycles | {} |", args.workers);
    println!(
        "| room cycles completed | {n} in {secs:.1} s ({:.0} cycles/s), {} errors |",
        n as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
    println!("| relayed messages measured | {} |", all.len());
    println!(
        "| relay latency p50 / p99 / max (client send → client receive) | {:.2} / {:.2} / {:.2} ms |",
        percentile(&all, 0.5) as f64 / 1000.0,
        percentile(&all, 0.99) as f64 / 1000.0,
        all.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    println!(
        "| server CPU during cycles | {:.0}% of one core ({cpu:.1} s over {secs:.1} s), {:.0} µs per cycle |",
        cpu / secs * 100.0,
        cpu / n.max(1) as f64 * 1e6
    );
    println!(
        "| load generator CPU (same machine) | {:.0}% of one core |",
        own / secs * 100.0
    );
    Ok(())
}
