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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Confer,
    /// PeerJS server (npm `peer`), same load shape in its own protocol.
    PeerJs,
}

struct Args {
    held: usize,
    workers: usize,
    seconds: u64,
    target: Target,
    peerjs_dir: String,
}

fn args() -> Args {
    let mut a = Args {
        held: 10_000,
        workers: 16,
        seconds: 20,
        target: Target::Confer,
        peerjs_dir: String::new(),
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
    if let Some(i) = argv.iter().position(|x| x == "--peerjs") {
        a.target = Target::PeerJs;
        a.peerjs_dir = argv.get(i + 1).cloned().unwrap_or_default();
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

/// Starts `node <dir>/node_modules/peer/dist/bin/peerjs.js` on a free loopback port.
async fn start_peerjs(dir: &str) -> Result<ServerProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let script = format!("{dir}/node_modules/peer/dist/bin/peerjs.js");
    let child = Command::new("node")
        .arg(&script)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--concurrent_limit", "1000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning node {script}"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(ServerProcess { child, addr });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("PeerJS server did not start on {addr}")
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
async fn connect(addr: SocketAddr, path: &str) -> Result<Ws> {
    let n = SOURCE.fetch_add(1, Ordering::Relaxed);
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 200) as u8));
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(src, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}{path}");
    let (ws, _) = client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<()> {
    ws.send(Message::text(serde_json::to_string(msg)?)).await?;
    Ok(())
}

/// The fields of a received message the load generator looks at; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<Stamp>,
}

#[derive(serde::Deserialize)]
struct Stamp {
    #[serde(default)]
    t: Option<u64>,
}

async fn recv<T: serde::de::DeserializeOwned>(ws: &mut Ws) -> Result<T> {
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
    target: Target,
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
            consent: None,
        };
        (
            self.issuer.issue(&claims(Role::Host)),
            self.issuer.issue(&claims(Role::Guest)),
        )
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// One relayed message in the target's protocol, stamped with its send time.
    fn signal(&self, kind: &str, body: &str, dst: &str) -> Message {
        let payload = json!({ "kind": kind, "t": self.now_ns(), "body": body });
        let text = match self.target {
            Target::Confer => serde_json::to_string(&ClientMessage::Signal {
                payload: SignalPayload::from_object(
                    payload.as_object().cloned().unwrap_or_default(),
                ),
            }),
            Target::PeerJs => serde_json::to_string(&json!({
                "type": kind.to_uppercase(),
                "dst": dst,
                "payload": payload,
            })),
        };
        Message::text(text.unwrap_or_default())
    }
}

/// Two connected participants ready to exchange offer/answer: (a, b, a's id, b's id, a is
/// the initiator).
struct Pair {
    a: Ws,
    b: Ws,
    a_id: String,
    b_id: String,
}

/// Confer: joins a pair into a fresh auto-admit room and waits for `call-ready` on both; the
/// initiator becomes `a`. PeerJS: registers two ids and waits for `OPEN` on both.
async fn pair(env: &Env) -> Result<Pair> {
    match env.target {
        Target::Confer => {
            let (ht, gt) = env.tokens();
            let mut host = connect(env.addr, "/v1/ws").await?;
            send(&mut host, &hello(ht)).await?;
            let mut guest = connect(env.addr, "/v1/ws").await?;
            send(&mut guest, &hello(gt)).await?;
            let mut host_initiates = false;
            for (ws, is_host) in [(&mut host, true), (&mut guest, false)] {
                loop {
                    let msg: ServerMessage = recv(ws).await?;
                    match msg {
                        ServerMessage::Welcome(_) => {}
                        ServerMessage::CallReady { initiator, .. } => {
                            host_initiates |= is_host && initiator;
                            break;
                        }
                        other => bail!("unexpected {other:?}"),
                    }
                }
            }
            let (a, b) = if host_initiates {
                (host, guest)
            } else {
                (guest, host)
            };
            Ok(Pair {
                a,
                b,
                a_id: String::new(),
                b_id: String::new(),
            })
        }
        Target::PeerJs => {
            let n = env.rooms.fetch_add(1, Ordering::Relaxed);
            let (a_id, b_id) = (format!("bench{n}a"), format!("bench{n}b"));
            let mut out = Vec::new();
            for id in [&a_id, &b_id] {
                let path = format!("/peerjs?key=peerjs&id={id}&token=t{n}");
                let mut ws = connect(env.addr, &path).await?;
                let open: Incoming = recv(&mut ws).await?;
                if open.kind != "OPEN" {
                    bail!("unexpected {}", open.kind);
                }
                out.push(ws);
            }
            let b = out.pop().context("b")?;
            let a = out.pop().context("a")?;
            Ok(Pair { a, b, a_id, b_id })
        }
    }
}

/// Receives one relayed signal and returns its one-way latency in µs.
async fn relayed(env: &Env, ws: &mut Ws) -> Result<u64> {
    let msg: Incoming = recv(ws).await?;
    let relayed = match env.target {
        Target::Confer => msg.kind == "signal",
        Target::PeerJs => ["OFFER", "ANSWER", "CANDIDATE"].contains(&msg.kind.as_str()),
    };
    if !relayed {
        bail!("expected a relayed signal, got {}", msg.kind);
    }
    let t = msg.payload.and_then(|p| p.t).context("send time")?;
    Ok(env.now_ns().saturating_sub(t) / 1000)
}

const CANDIDATES: usize = 20;

async fn cycle(env: &Env, sdp: &str, lat: &mut Vec<u64>) -> Result<()> {
    let Pair {
        mut a,
        mut b,
        a_id,
        b_id,
    } = pair(env).await?;
    a.send(env.signal("offer", sdp, &b_id)).await?;
    lat.push(relayed(env, &mut b).await?);
    b.send(env.signal("answer", sdp, &a_id)).await?;
    lat.push(relayed(env, &mut a).await?);
    let cand = "candidate:842163049 1 udp 1677729535 192.0.2.10 61234 typ srflx raddr 10.0.0.5 rport 61234 generation 0";
    for _ in 0..CANDIDATES {
        a.send(env.signal("candidate", cand, &b_id)).await?;
        b.send(env.signal("candidate", cand, &a_id)).await?;
    }
    for _ in 0..CANDIDATES {
        lat.push(relayed(env, &mut b).await?);
        lat.push(relayed(env, &mut a).await?);
    }
    for ws in [&mut a, &mut b] {
        match env.target {
            Target::Confer => send(ws, &ClientMessage::Leave).await?,
            // PeerJS clients leave by closing their socket.
            Target::PeerJs => ws.close(None).await?,
        }
    }
    for ws in [&mut a, &mut b] {
        // Read to the end of the close handshake, skipping the other side's notices.
        while let Some(Ok(frame)) = ws.next().await {
            if frame.is_close() {
                break;
            }
        }
    }
    Ok(())
}

/// Keeps an idle connection alive the way each client does: Confer clients answer the
/// server's pings (tungstenite does when reading); PeerJS clients send a HEARTBEAT every 5 s.
async fn hold(ws: Ws, target: Target, alive: Arc<AtomicUsize>) {
    let (mut tx, mut rx) = ws.split();
    let heartbeat = async {
        if target == Target::PeerJs {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if tx
                    .send(Message::text(r#"{"type":"HEARTBEAT"}"#))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        } else {
            std::future::pending::<()>().await;
        }
    };
    let read = async {
        while let Some(Ok(frame)) = rx.next().await {
            if frame.is_close() {
                break;
            }
        }
    };
    tokio::select! {
        () = heartbeat => {}
        () = read => {}
    }
    alive.fetch_sub(1, Ordering::SeqCst);
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
    let mut reports = vec![(Target::Confer, rt.block_on(run(&args, Target::Confer))?)];
    if args.target == Target::PeerJs {
        // Let the first run's sockets leave TIME_WAIT behind before the second.
        std::thread::sleep(Duration::from_secs(5));
        reports.push((Target::PeerJs, rt.block_on(run(&args, Target::PeerJs))?));
    }
    print_reports(&args, &reports);
    Ok(())
}

/// What one run measured.
struct Report {
    held: usize,
    still_held: usize,
    open_secs: f64,
    rss_mib: [f64; 3],
    per_conn_kib: f64,
    cycles: u64,
    errors: u64,
    cycles_per_s: f64,
    relayed: usize,
    latency_ms: [f64; 3],
    cpu_pct: f64,
    cpu_us_per_cycle: f64,
    loadgen_cpu_pct: f64,
}

fn print_reports(args: &Args, reports: &[(Target, Report)]) {
    let names: Vec<String> = reports
        .iter()
        .map(|(t, _)| match t {
            Target::Confer => "confer-signal".to_owned(),
            Target::PeerJs => "PeerJS server 1.0.2 (node)".to_owned(),
        })
        .collect();
    println!(
        "held {} idle connections, {} workers cycling for {} s",
        args.held, args.workers, args.seconds
    );
    println!("| metric | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    let row = |name: &str, f: &dyn Fn(&Report) -> String| {
        let cells: Vec<String> = reports.iter().map(|(_, r)| f(r)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row(
        "idle connections held (opened / still open at the end)",
        &|r| format!("{} / {}", r.held, r.still_held),
    );
    row("time to open them", &|r| format!("{:.1} s", r.open_secs));
    row("server RSS before / holding them / peak", &|r| {
        format!(
            "{:.0} / {:.0} / {:.0} MiB",
            r.rss_mib[0], r.rss_mib[1], r.rss_mib[2]
        )
    });
    row("server RSS per idle connection", &|r| {
        format!("{:.1} KiB", r.per_conn_kib)
    });
    row("room cycles/s (completed, errors)", &|r| {
        format!("{:.0} ({}, {})", r.cycles_per_s, r.cycles, r.errors)
    });
    row("relay latency p50 / p99 / max", &|r| {
        format!(
            "{:.2} / {:.2} / {:.2} ms",
            r.latency_ms[0], r.latency_ms[1], r.latency_ms[2]
        )
    });
    row("relayed messages measured", &|r| r.relayed.to_string());
    row("server CPU during cycles", &|r| {
        format!(
            "{:.0}% of a core, {:.0} µs/cycle",
            r.cpu_pct, r.cpu_us_per_cycle
        )
    });
    row("load generator CPU", &|r| {
        format!("{:.0}% of a core", r.loadgen_cpu_pct)
    });
    if let [(_, c), (_, p)] = reports {
        println!();
        println!(
            "ratios (PeerJS / Confer): cycles/s {:.2}, p99 latency {:.2}, RSS per connection {:.2}, CPU per cycle {:.2}",
            p.cycles_per_s / c.cycles_per_s,
            p.latency_ms[1] / c.latency_ms[1],
            p.per_conn_kib / c.per_conn_kib,
            p.cpu_us_per_cycle / c.cpu_us_per_cycle
        );
    }
}

async fn run(args: &Args, target: Target) -> Result<Report> {
    let secret: String = (0..48).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let server = match target {
        Target::Confer => start_server(&secret).await?,
        Target::PeerJs => start_peerjs(&args.peerjs_dir).await?,
    };
    let pid = server.child.id();
    let env = Arc::new(Env {
        target,
        addr: server.addr,
        issuer: TokenIssuer::new(secret.as_bytes()),
        epoch: Instant::now(),
        rooms: AtomicU64::new(0),
    });
    let sdp: Arc<str> = "a".repeat(2048).into();
    eprintln!("{target:?} server pid {pid} on {}", server.addr);

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
                let Pair { a, b, .. } = pair(&env).await?;
                for ws in [a, b] {
                    let alive = Arc::clone(&alive);
                    alive.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(hold(ws, env.target, alive));
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
    Ok(Report {
        held,
        still_held,
        open_secs,
        rss_mib: [rss_before, rss_held, rss_peak].map(|k| k as f64 / 1024.0),
        per_conn_kib: per_conn,
        cycles: n,
        errors: errors.load(Ordering::Relaxed),
        cycles_per_s: n as f64 / secs,
        relayed: all.len(),
        latency_ms: [0.5, 0.99, 1.0].map(|p| percentile(&all, p) as f64 / 1000.0),
        cpu_pct: cpu / secs * 100.0,
        cpu_us_per_cycle: cpu / n.max(1) as f64 * 1e6,
        loadgen_cpu_pct: own / secs * 100.0,
    })
}
