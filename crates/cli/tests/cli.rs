//! The `confer` binary as a user runs it: `confer host` creates a room on a real confer-signal,
//! two `confer call` processes call each other with its links and report what they received;
//! bad links and unreachable servers get clear errors.

use std::process::Output;

use confer_signal::{Config, Server};
use serde_json::Value;
use tokio::process::Command;

const API_KEY: &str = "cli-test-api-key-0123456789";

fn confer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_confer"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_guest_call_each_other_from_the_command_line() {
    let server = Server::bind(Config {
        api_key: Some(API_KEY.into()),
        ..Config::loopback()
    })
    .await
    .expect("bind");
    let handle = server.handle();
    tokio::spawn(server.serve());
    let base = format!("http://{}", handle.local_addr());

    let out = confer()
        .args([
            "host",
            "--server",
            &base,
            "--api-key",
            API_KEY,
            "--name",
            "Dr. Ada",
        ])
        .output()
        .await
        .expect("confer host");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let link_after = |label: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{label} in {stdout}"))
            .to_owned()
    };
    let host_link = link_after("host link (keep it to yourself):");
    let guest_link = link_after("guest invite link:");

    let dir = std::env::temp_dir().join(format!("confer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (host_json, guest_json) = (dir.join("host.json"), dir.join("guest.json"));
    let attachment = dir.join("notes.txt");
    std::fs::write(&attachment, "blood pressure 120/80\n".repeat(2000)).expect("attachment");
    let saved = dir.join("saved");
    std::fs::create_dir_all(&saved).expect("saved dir");
    let run = |link: &str, json: &std::path::Path, admit: bool| {
        let mut c = confer();
        c.args(["call", link, "--duration", "3s", "--stats-json"])
            .arg(json);
        if admit {
            c.args(["--admit", "--say", "hello from the host", "--send-file"])
                .arg(&attachment);
        } else {
            c.arg("--save-files").arg(&saved);
        }
        c.output()
    };
    let (host_out, guest_out) = tokio::join!(
        run(&host_link, &host_json, true),
        run(&guest_link, &guest_json, false)
    );
    let (host_out, guest_out) = (host_out.expect("host call"), guest_out.expect("guest call"));
    assert!(host_out.status.success(), "{}", text(&host_out));
    assert!(guest_out.status.success(), "{}", text(&guest_out));
    let read = |p: &std::path::Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(p).expect("stats file")).expect("json")
    };
    let (host_stats, guest_stats) = (read(&host_json), read(&guest_json));
    for (side, s) in [("host", &host_stats), ("guest", &guest_stats)] {
        let n = |k: &str| {
            s[k].as_u64()
                .unwrap_or_else(|| panic!("{side}: {k} in {s}"))
        };
        assert!(n("frames_marked") >= 60, "{side}: {s}");
        assert_eq!(n("frames_marked"), n("frames_decoded"), "{side}: {s}");
        assert_eq!(
            (n("frames_out_of_order"), n("frames_repeated")),
            (0, 0),
            "{side}: {s}"
        );
        assert!(
            n("frames_missing") * 20 <= n("frames_marked"),
            "{side}: {s}"
        );
        assert!(n("tone_bursts_detected") >= 4, "{side}: {s}");
        assert!(s["glass_to_glass_p50_ms"].as_f64().is_some(), "{side}: {s}");
    }
    assert_eq!(guest_stats["chat_received"], 1, "{guest_stats}");
    assert_eq!(guest_stats["files_received"], 1, "{guest_stats}");
    assert_eq!(host_stats["files_delivered"], 1, "{host_stats}");
    assert_eq!(
        std::fs::read(saved.join("notes.txt")).expect("saved by --save-files"),
        std::fs::read(&attachment).expect("attachment")
    );
    assert_eq!(host_stats["chat_delivered"], 1, "{host_stats}");
    assert_eq!(
        host_stats["verification_code"], guest_stats["verification_code"],
        "the same code on both sides"
    );
    assert!(host_stats["verification_code"].is_string());
    let _ = std::fs::remove_dir_all(&dir);
    handle.shutdown().await;
}

/// Runs `confer args…`, expects it to fail, and returns what it said.
async fn fails(args: &[&str]) -> String {
    let out = confer().args(args).output().await.expect("confer");
    assert!(!out.status.success(), "{args:?} succeeded");
    text(&out)
}

#[tokio::test]
async fn bad_links_and_unreachable_servers_are_explained() {
    let said = fails(&["call", "http://127.0.0.1:1/rooms/x", "--duration", "1s"]).await;
    assert!(said.contains("not a Confer link"), "{said}");

    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let link = format!("http://127.0.0.1:{port}/join/r#t");
    let said = fails(&["call", &link, "--duration", "1s"]).await;
    assert!(said.contains("cannot reach the signaling server"), "{said}");

    let server = format!("http://127.0.0.1:{port}");
    let said = fails(&["host", "--server", &server, "--api-key", "k"]).await;
    assert!(said.contains("cannot reach"), "{said}");
}
