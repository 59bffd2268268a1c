//! `confer`: a real call participant without a window, for tests, benchmarks, bots and demos.
//!
//! ```text
//! confer host --server http://127.0.0.1:8443 [--api-key KEY] [--name "Dr. Ada"]
//! confer call <link> [--video pattern|pattern:WxH|file:x.y4m|camera:<id>]
//!                    [--audio tone|speech|file:x.wav|mic[:<id>]] [--speaker default|<id>]
//!                    [--raw-mic] [--admit]
//!                    [--duration 30s] [--stats-json out.json]
//! ```

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde::Serialize;

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_call::signaling::SignalEvent;
use confer_media::apm::ProcessingConfig;
use confer_media::tone::BurstDetector;
use confer_media::{VideoCodec, mark};

use confer_call::link::Link;
use confer_call::tls::Trust;

#[derive(Parser)]
#[command(
    name = "confer",
    version,
    about = "Confer without a window: host rooms, join calls"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run and matched straight away: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Creates a room and prints the host's link and the guest's invite link.
    Host {
        /// The signaling server (http://host:port or https://host).
        #[arg(long, default_value = "http://127.0.0.1:8443")]
        server: String,
        /// The server's API key.
        #[arg(long, env = "CONFER_API_KEY")]
        api_key: String,
        /// The host's display name.
        #[arg(long)]
        name: Option<String>,
        /// CA certificates (a PEM file) to trust for an https server, besides the system's.
        #[arg(long, value_name = "PEM")]
        ca: Option<std::path::PathBuf>,
    },
    /// Joins a call from a link and takes part until the duration is over.
    Call {
        /// A link from `confer host` or an invite link.
        link: String,
        /// Video source.
        #[arg(long, default_value = "pattern:640x360")]
        video: String,
        /// Video bitrate, kbit/s.
        #[arg(long, default_value_t = 600)]
        video_kbps: u32,
        /// Video codec to offer first: vp8 or h264 (the caller's offer decides).
        #[arg(long, default_value = "vp8")]
        codec: VideoCodec,
        /// Audio source.
        #[arg(long, default_value = "tone")]
        audio: String,
        /// Play the other side on an output device: `default`, or a device's id or name;
        /// without it nothing is played.
        #[arg(long)]
        speaker: Option<String>,
        /// Send the microphone as captured: no echo cancellation, noise suppression or gain.
        #[arg(long)]
        raw_mic: bool,
        /// Media only through the server's TURN relay: the other side never learns this
        /// machine's IP addresses.
        #[arg(long)]
        relay_only: bool,
        /// CA certificates (a PEM file) to trust for the signaling server (wss://) and the
        /// server's TURN over TLS, besides the system's.
        #[arg(long = "ca", alias = "turn-ca", value_name = "PEM")]
        ca: Option<std::path::PathBuf>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// As host: let in whoever knocks.
        #[arg(long)]
        admit: bool,
        /// A chat message to send once connected (repeatable).
        #[arg(long)]
        say: Vec<String>,
        /// A file to send once connected.
        #[arg(long)]
        send_file: Option<std::path::PathBuf>,
        /// Save received files (verified ones only) into this folder; without it nothing is
        /// written to disk.
        #[arg(long)]
        save_files: Option<std::path::PathBuf>,
        /// How long to stay once connected (e.g. 30s, 2m).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Write what was received to this file as JSON.
        #[arg(long)]
        stats_json: Option<std::path::PathBuf>,
        /// Address to gather ICE candidates on.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        bind: IpAddr,
    },
}

/// What `confer call` reports.
#[derive(Debug, Default, Serialize)]
struct Stats {
    connected_after_ms: Option<f64>,
    verification_code: Option<String>,
    frames_decoded: u64,
    frames_marked: u64,
    frames_out_of_order: u64,
    frames_repeated: u64,
    frames_missing: u64,
    glass_to_glass_p50_ms: Option<f64>,
    glass_to_glass_p95_ms: Option<f64>,
    audio_ms_played: u64,
    tone_bursts_detected: u64,
    chat_received: u64,
    chat_delivered: u64,
    files_received: u64,
    files_delivered: u64,
    /// The call's last one-second stats (bitrates, loss, RTT, path, …).
    last_second: Option<confer_call::call::CallStats>,
    warnings: Vec<String>,
    ended: Option<String>,
}

fn percentile(v: &mut [f64], p: usize) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[(v.len() * p / 100).min(v.len() - 1)])
}

/// The PEM file `--ca` names, read.
fn read_ca(path: Option<&std::path::Path>) -> Result<Option<String>, String> {
    path.map(|path| {
        std::fs::read_to_string(path).map_err(|e| format!("--ca {}: {e}", path.display()))
    })
    .transpose()
}

async fn host(
    server: &str,
    api_key: &str,
    name: Option<String>,
    ca: Option<&std::path::Path>,
) -> Result<(), String> {
    let trust = Trust {
        ca_pem: read_ca(ca)?,
        server_sha256: None,
    };
    let room = confer_call::rooms::create_room(server, api_key, name.as_deref(), &trust).await?;
    let host_link = Link::for_token(server, &room.room, &room.host_token)?;
    println!("room {}", room.room);
    println!("host link (keep it to yourself): {host_link}");
    println!("guest invite link: {}", room.guest_url);
    Ok(())
}

/// What `confer call` sends.
struct Media {
    video: String,
    video_kbps: u32,
    codec: VideoCodec,
    audio: String,
    speaker: Option<String>,
    raw_mic: bool,
    relay_only: bool,
    ca: Option<std::path::PathBuf>,
}

/// What `confer call` does besides sending media.
struct Actions {
    admit: bool,
    say: Vec<String>,
    send_file: Option<std::path::PathBuf>,
    save_files: Option<std::path::PathBuf>,
}

async fn call(
    link: &str,
    media: Media,
    name: Option<String>,
    actions: Actions,
    duration: Duration,
    bind: IpAddr,
) -> Result<Stats, String> {
    let Media {
        video,
        video_kbps,
        codec,
        audio,
        speaker,
        raw_mic,
        relay_only,
        ca,
    } = media;
    let ca_pem = read_ca(ca.as_deref())?;
    let Actions {
        admit,
        say,
        send_file,
        save_files,
    } = actions;
    let file = match &send_file {
        Some(path) => Some((
            path.file_name()
                .map_or("file".into(), |n| n.to_string_lossy().into_owned()),
            std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )),
        None => None,
    };
    let link = Link::parse(link)?;
    let started = Instant::now();
    let mut call = CallHandle::join(CallConfig {
        url: link.ws_url(),
        token: link.token.clone(),
        name,
        video,
        video_kbps,
        video_codec: codec,
        audio,
        speaker,
        relay_only,
        trust: link.trust(ca_pem),
        processing: if raw_mic {
            ProcessingConfig::OFF
        } else {
            ProcessingConfig::default()
        },
        bind_ip: bind,
        auto_admit: admit,
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut stats = Stats::default();
    let mut ages = Vec::new();
    let mut last_id: Option<u32> = None;
    let mut bursts = BurstDetector::new(1000.0, 0.005);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, call.next_event()).await {
                Ok(e) => e,
                Err(_) => {
                    call.hang_up();
                    deadline = None;
                    continue;
                }
            },
            None => call.next_event().await,
        };
        let Some(event) = next else { break };
        match event {
            CallEvent::Connected => {
                stats.connected_after_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                deadline = Some(tokio::time::Instant::now() + duration);
                for text in &say {
                    call.send_chat(text)?;
                }
                if let Some((name, data)) = &file {
                    call.send_file(name, data.clone().into());
                }
                eprintln!(
                    "connected after {:.0} ms",
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
            CallEvent::VerificationCode(code) => {
                eprintln!(
                    "verification code: {code} (read it aloud; it must match the other side)"
                );
                stats.verification_code = Some(code);
            }
            CallEvent::RemoteVideo(frame) => {
                stats.frames_decoded += 1;
                if let Some(m) = mark::read(&frame) {
                    stats.frames_marked += 1;
                    ages.push(mark::age_us(m.capture_us, mark::wall_clock_us()) as f64 / 1e3);
                    match last_id {
                        Some(last) if m.frame_id == last => stats.frames_repeated += 1,
                        Some(last) if m.frame_id < last => stats.frames_out_of_order += 1,
                        Some(last) => stats.frames_missing += u64::from(m.frame_id - last - 1),
                        None => {}
                    }
                    last_id = Some(last_id.map_or(m.frame_id, |l| l.max(m.frame_id)));
                }
            }
            CallEvent::LocalVideo(_) => {} // no self view without a window
            CallEvent::RemoteAudio(samples) => {
                stats.audio_ms_played += 10;
                bursts.push(&samples);
            }
            CallEvent::Signaling(SignalEvent::Joined { role, state, .. }) => {
                eprintln!("joined as {role:?}, {state:?}");
            }
            CallEvent::Signaling(SignalEvent::Knock { peer, name }) => {
                eprintln!(
                    "{} is waiting{}",
                    name.unwrap_or(peer),
                    if admit { "; admitting" } else { "" }
                );
            }
            CallEvent::Signaling(other) => eprintln!("{other:?}"),
            CallEvent::Chat { text, .. } => {
                eprintln!("chat: {text}");
                stats.chat_received += 1;
            }
            CallEvent::ChatDelivered { .. } => stats.chat_delivered += 1,
            CallEvent::PeerMedia { muted, camera } => {
                eprintln!(
                    "the other side: microphone {}, camera {}",
                    if muted { "muted" } else { "on" },
                    if camera { "on" } else { "off" }
                );
            }
            CallEvent::PeerHungUp(why) => eprintln!("the other side hung up: {why}"),
            CallEvent::TransferProgress { .. } => {}
            CallEvent::Stats(s) => stats.last_second = Some(*s),
            CallEvent::IceRestarted { .. } => eprintln!("ICE restarted"),
            CallEvent::FileReceived {
                name,
                data,
                verified,
                ..
            } => {
                eprintln!(
                    "file {name:?}: {} bytes, {}",
                    data.len(),
                    if verified {
                        "verified"
                    } else {
                        "HASH MISMATCH"
                    }
                );
                stats.files_received += 1;
                if let (Some(dir), true) = (&save_files, verified) {
                    // Only the name's last component: a sender cannot write outside `dir`.
                    let base = std::path::Path::new(&name)
                        .file_name()
                        .map(|n| n.to_os_string());
                    let target = dir.join(base.unwrap_or_else(|| "received.bin".into()));
                    std::fs::write(&target, &data)
                        .map_err(|e| format!("saving {}: {e}", target.display()))?;
                }
            }
            CallEvent::TransferDone { verified, .. } => {
                if verified {
                    stats.files_delivered += 1;
                }
            }
            CallEvent::TransferCancelled { reason, .. } => {
                eprintln!("file transfer stopped: {reason}")
            }
            CallEvent::Disconnected(why) => eprintln!("media disconnected: {why}"),
            CallEvent::Error(why) => {
                eprintln!("error: {why}");
                stats.warnings.push(why);
            }
            CallEvent::Reconnecting => {
                eprintln!("reconnecting: nothing arrives from the other side")
            }
            CallEvent::Reconnected => eprintln!("reconnected"),
            CallEvent::NetworkChanged => {
                eprintln!("this machine's network changed: restarting ICE")
            }
            CallEvent::Warning(w) => {
                eprintln!("warning: {w}");
                stats.warnings.push(w);
            }
            CallEvent::Ended(why) => {
                eprintln!("call ended: {why}");
                stats.ended = Some(why);
            }
        }
    }
    stats.glass_to_glass_p50_ms = percentile(&mut ages, 50);
    stats.glass_to_glass_p95_ms = percentile(&mut ages, 95);
    stats.tone_bursts_detected = bursts.onsets().len() as u64;
    Ok(stats)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Host {
            server,
            api_key,
            name,
            ca,
        } => host(&server, &api_key, name, ca.as_deref()).await,
        Command::Call {
            link,
            video,
            video_kbps,
            codec,
            audio,
            speaker,
            raw_mic,
            relay_only,
            ca,
            name,
            admit,
            say,
            send_file,
            save_files,
            duration,
            stats_json,
            bind,
        } => match call(
            &link,
            Media {
                video,
                video_kbps,
                codec,
                audio,
                speaker,
                raw_mic,
                relay_only,
                ca,
            },
            name,
            Actions {
                admit,
                say,
                send_file,
                save_files,
            },
            duration,
            bind,
        )
        .await
        {
            Ok(stats) => {
                let json = serde_json::to_string_pretty(&stats).expect("stats serialize");
                match stats_json {
                    Some(path) => std::fs::write(&path, json)
                        .map_err(|e| format!("writing {}: {e}", path.display())),
                    None => {
                        println!("{json}");
                        Ok(())
                    }
                }
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confer: {e}");
            ExitCode::FAILURE
        }
    }
}
