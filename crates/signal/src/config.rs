//! Server configuration: command-line flags, each also an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// confer-signal: the Confer signaling server.
///
/// Rooms of two with a waiting room, SDP/ICE relay and TURN credentials. Media never passes
/// through it. Every flag can also be set by the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "confer-signal", version, about, long_about)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "CONFER_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Public base URL of this server, used in invite links (for example
    /// https://signal.example.org). Default: derived from --listen.
    #[arg(long, env = "CONFER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Secret that signs room tokens (HS256, raw UTF-8 bytes, at least 32 bytes). Every node
    /// of a deployment needs the same one. Default: a random secret for this run only, so
    /// tokens die with the process.
    #[arg(long, env = "CONFER_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// API key that `POST /v1/rooms` requires as `Authorization: Bearer <key>`.
    /// Default: a random key printed once at start.
    #[arg(long, env = "CONFER_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// STUN server URL handed to clients (repeatable).
    #[arg(long = "stun-url", env = "CONFER_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Vec<String>,

    /// TURN server URL handed to clients (repeatable), for example
    /// turn:turn.example.org:3478?transport=udp. Needs --turn-secret.
    #[arg(long = "turn-url", env = "CONFER_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,

    /// coturn `static-auth-secret` (use-auth-secret) for short-lived TURN credentials.
    #[arg(long, env = "CONFER_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Lifetime of TURN credentials, seconds.
    #[arg(
        long = "turn-ttl",
        value_name = "SECONDS",
        env = "CONFER_TURN_TTL",
        default_value_t = 3600
    )]
    pub turn_ttl_s: u64,

    /// PEM certificate chain for wss:// (with --tls-key). Without it the server speaks ws://,
    /// for use behind a TLS-terminating proxy or on loopback.
    #[arg(long, env = "CONFER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "CONFER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Browser origins allowed to open the WebSocket (repeatable; `*` allows any). Requests
    /// without an Origin header (native clients) are always allowed. Default: same origin only.
    #[arg(
        long = "allowed-origin",
        env = "CONFER_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Seconds a dropped participant's seat is held for resume.
    #[arg(
        long = "grace",
        value_name = "SECONDS",
        env = "CONFER_GRACE",
        default_value_t = 30
    )]
    pub grace_s: u64,

    /// Guests that may wait in one room's lobby.
    #[arg(long, env = "CONFER_LOBBY_SIZE", default_value_t = 8)]
    pub lobby_size: usize,

    /// Seconds a new connection has to send `hello`.
    #[arg(
        long = "hello-timeout",
        value_name = "SECONDS",
        env = "CONFER_HELLO_TIMEOUT",
        default_value_t = 10
    )]
    pub hello_timeout_s: u64,

    /// Seconds of silence (no frame, no pong) after which a client is considered gone.
    #[arg(
        long = "idle-timeout",
        value_name = "SECONDS",
        env = "CONFER_IDLE_TIMEOUT",
        default_value_t = 30
    )]
    pub idle_timeout_s: u64,

    /// Seconds between WebSocket pings sent by the server.
    #[arg(
        long = "ping-interval",
        value_name = "SECONDS",
        env = "CONFER_PING_INTERVAL",
        default_value_t = 10
    )]
    pub ping_interval_s: u64,

    /// Messages a connection may send in a burst.
    #[arg(long, env = "CONFER_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,

    /// Messages per second a connection may send sustained.
    #[arg(long, env = "CONFER_RATE_PER_SEC", default_value_t = 20)]
    pub rate_per_sec: u32,

    /// Most WebSocket connections held at once; more get HTTP 503.
    #[arg(long, env = "CONFER_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Default lifetime of a room's tokens, seconds.
    #[arg(long = "room-ttl", value_name = "SECONDS", env = "CONFER_ROOM_TTL", default_value_t = 4 * 3600)]
    pub room_ttl_s: u64,

    /// Longest lifetime a room may ask for, seconds.
    #[arg(long = "room-ttl-max", value_name = "SECONDS", env = "CONFER_ROOM_TTL_MAX", default_value_t = 7 * 24 * 3600)]
    pub room_ttl_max_s: u64,

    /// Seconds connections get to close after SIGTERM/Ctrl-C.
    #[arg(
        long = "shutdown-grace",
        value_name = "SECONDS",
        env = "CONFER_SHUTDOWN_GRACE",
        default_value_t = 5
    )]
    pub shutdown_grace_s: u64,

    /// Log format. The level comes from RUST_LOG (default `info`).
    #[arg(long, env = "CONFER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Default for Config {
    /// The defaults of the flags, without reading the environment.
    fn default() -> Self {
        Self::parse_from_defaults()
    }
}

impl Config {
    fn parse_from_defaults() -> Self {
        let mut cmd = <Self as clap::CommandFactory>::command();
        // Ignore the environment: library users (the desktop app, tests) get the documented
        // defaults whatever the process environment holds.
        let args: Vec<clap::Arg> = cmd.get_arguments().cloned().collect();
        for arg in args {
            let id = arg.get_id().clone();
            cmd = cmd.mut_arg(id, |a| a.env(None::<&str>));
        }
        let matches = cmd
            .try_get_matches_from(["confer-signal"])
            .expect("defaults parse");
        <Self as clap::FromArgMatches>::from_arg_matches(&matches).expect("defaults are valid")
    }

    /// A configuration for tests and embedding: listen on loopback port 0.
    pub fn loopback() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::default()
        }
    }

    pub(crate) fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let c = Config::default();
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.grace_s, 30);
        assert!(c.rate_burst >= 100 && c.rate_per_sec >= 20);
        assert!(c.allowed_origins.is_empty());
        assert!(c.token_secret.is_none() && c.api_key.is_none());
    }

    #[test]
    fn flags_parse() {
        let c = Config::try_parse_from([
            "confer-signal",
            "--listen",
            "0.0.0.0:9000",
            "--turn-url",
            "turn:a:3478",
            "--turn-url",
            "turn:b:3478",
            "--allowed-origin",
            "https://a.example,https://b.example",
        ])
        .expect("parse");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.turn_urls.len(), 2);
        assert_eq!(c.allowed_origins.len(), 2);
        assert!(Config::try_parse_from(["confer-signal", "--tls-cert", "x.pem"]).is_err());
    }
}
