//! The `confer-signal` binary: flags/environment → [`confer_signal::Server`], stopped cleanly
//! by SIGTERM or Ctrl-C.

use anyhow::Context;
use clap::Parser;
use confer_signal::{Config, LogFormat, Server};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    // Every participant is a socket: use all the descriptors the system allows this process.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }

    let generated_key = config.api_key.is_none();
    let ephemeral_secret = config.token_secret.is_none();
    let server = Server::bind(config)
        .await
        .context("starting confer-signal")?;
    let handle = server.handle();
    let addr = server.local_addr();
    let http = handle
        .ws_url()
        .replacen("ws", "http", 1)
        .replace("/v1/ws", "");

    eprintln!(
        "confer-signal listening on {addr} (WebSocket {})",
        handle.ws_url()
    );
    if ephemeral_secret {
        eprintln!(
            "  token secret: random for this run (set CONFER_TOKEN_SECRET to keep tokens valid across restarts)"
        );
    }
    if generated_key {
        eprintln!(
            "  API key (generated; set CONFER_API_KEY to choose one): {}",
            handle.api_key()
        );
    }
    eprintln!("  create a room:");
    eprintln!(
        "    curl -s -X POST -H 'Authorization: Bearer {}' -d '{{\"host_name\":\"Dr. Ada\"}}' {http}/v1/rooms",
        if generated_key {
            handle.api_key()
        } else {
            "$CONFER_API_KEY"
        }
    );
    eprintln!("  health: {http}/healthz   metrics: {http}/metrics");

    let serving = tokio::spawn(server.serve());
    shutdown_signal().await;
    eprintln!("shutting down: telling participants to reconnect");
    handle.shutdown().await;
    serving.await.context("server task")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
