//! confer-signal: the Confer signaling server, as a library and a binary.
//!
//! Rooms of two with a waiting room the host admits from; in-order relay of opaque `signal`
//! payloads (SDP, ICE) between the two admitted participants; resume within a grace period
//! with nothing lost and nothing duplicated; short-lived TURN credentials. Media and chat never
//! pass through it. The contract is docs/protocol.md (types in `confer-protocol`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let server = confer_signal::Server::bind(confer_signal::Config::loopback()).await?;
//! println!("listening on {}", server.local_addr());
//! let handle = server.handle();
//! tokio::spawn(server.serve());
//! // ... later
//! handle.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`room`] is the room state machine (plain data, time injected), `registry` holds
//! the rooms and the channels to their connections, `conn` runs one socket, `http` the routes.

#![forbid(unsafe_code)]

mod config;
mod conn;
mod guest;
mod http;
mod metrics;
pub mod ratelimit;
mod registry;
pub mod room;
mod tls;
pub mod token;
pub mod turn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use config::{Config, LogFormat};
pub use metrics::Metrics;
pub use tls::Identity;
pub use token::{Claims, TokenError, TokenIssuer};
pub use turn::IceServerIssuer;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rand::Rng;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A setting is not acceptable.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// State shared by every task of one server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) tokens: TokenIssuer,
    pub(crate) ice: IceServerIssuer,
    pub(crate) registry: Arc<registry::Registry>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) api_key: String,
    pub(crate) public_url: String,
    /// Served over TLS (`https://`, `wss://`).
    secure: bool,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
    next_conn: AtomicU64,
    /// Set when `serve` starts.
    serving: std::sync::atomic::AtomicBool,
    /// Set and notified when `serve` has returned.
    stopped: (std::sync::atomic::AtomicBool, tokio::sync::Notify),
}

impl Shared {
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

/// A cloneable front for a running server: its address, secrets for local use, and shutdown.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listen address (port 0 picks a free port) and prepares TLS and secrets.
    pub async fn bind(config: Config) -> Result<Server> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        Self::bind_with(config, tls).await
    }

    /// As [`Server::bind`], serving `https://` and `wss://` with `identity` (the certificate
    /// files of `config`, if any, are not read).
    pub async fn bind_with_identity(config: Config, identity: &Identity) -> Result<Server> {
        Self::bind_with(config, Some(identity.acceptor()?)).await
    }

    async fn bind_with(config: Config, tls: Option<TlsAcceptor>) -> Result<Server> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let secret = match &config.token_secret {
            Some(s) if s.len() < 32 => {
                return Err(Error::Config(
                    "the token secret must be at least 32 bytes".into(),
                ));
            }
            Some(s) => s.clone(),
            None => random_id(48),
        };
        if !config.turn_urls.is_empty() && config.turn_secret.is_none() {
            return Err(Error::Config(
                "TURN URLs need --turn-secret (coturn static-auth-secret)".into(),
            ));
        }
        let api_key = config.api_key.clone().unwrap_or_else(|| random_id(32));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let limits = room::RoomLimits {
            grace: config.grace(),
            lobby: config.lobby_size,
            ..room::RoomLimits::default()
        };
        let registry = Arc::new(registry::Registry::new(
            limits,
            Arc::clone(&metrics),
            shutdown.clone(),
        ));
        let ice = IceServerIssuer::new(
            config.stun_urls.clone(),
            config.turn_urls.clone(),
            config.turn_secret.clone(),
            config.turn_ttl_s,
        );
        let shared = Arc::new(Shared {
            tokens: TokenIssuer::new(secret.as_bytes()),
            ice,
            registry,
            metrics,
            api_key,
            public_url,
            secure: tls.is_some(),
            shutdown,
            tracker: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
            serving: Default::default(),
            stopped: Default::default(),
            config,
        });
        Ok(Server {
            listener,
            tls,
            shared,
            addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to stop the server and read what it issued.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::clone(&self.shared),
            addr: self.addr,
        }
    }

    /// Serves until [`ServerHandle::shutdown`] is called. Then it stops accepting, sends
    /// `bye{reason:"server-shutdown"}` to every participant, closes their sockets and returns
    /// once they are closed (or after `--shutdown-grace`).
    pub async fn serve(self) {
        self.shared.serving.store(true, Ordering::SeqCst);
        let addr = self.addr;
        let Server {
            listener,
            tls,
            shared,
            ..
        } = self;
        let router = http::router(Arc::clone(&shared));
        let graceful = GracefulShutdown::new();
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10));
        let builder = Arc::new(builder);
        tracing::info!(%addr, tls = tls.is_some(), "serving");
        loop {
            let stream = tokio::select! {
                () = shared.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let builder = Arc::clone(&builder);
            let watcher = graceful.watcher();
            let tls = tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    None => {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        let Ok(Ok(stream)) = handshake.await else {
                            tracing::debug!("TLS handshake failed");
                            return;
                        };
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "http connection ended with an error");
                }
            });
        }
        drop(listener);
        let grace = Duration::from_secs(shared.config.shutdown_grace_s);
        shared.tracker.close();
        let closing = async {
            tokio::join!(graceful.shutdown(), shared.tracker.wait());
        };
        if tokio::time::timeout(grace, closing).await.is_err() {
            tracing::warn!("some connections did not close within the shutdown grace");
        }
        tracing::info!("stopped");
        shared.stopped.0.store(true, Ordering::SeqCst);
        shared.stopped.1.notify_waiters();
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://` or `wss://` URL of the WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        let scheme = if self.shared.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.addr, confer_protocol::WS_PATH)
    }

    /// The API key `POST /v1/rooms` requires (generated when not configured).
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The issuer of this server's room tokens (for tests and an embedding app).
    pub fn tokens(&self) -> &TokenIssuer {
        &self.shared.tokens
    }

    /// Live rooms.
    pub fn rooms(&self) -> usize {
        self.shared.registry.len()
    }

    /// Starts the shutdown and waits until [`Server::serve`] has returned (at once if it was
    /// never started; a `serve` started later returns immediately).
    pub async fn shutdown(&self) {
        let (stopped, notify) = &self.shared.stopped;
        let done = notify.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        self.shared.shutdown.cancel();
        if self.shared.serving.load(Ordering::SeqCst) && !stopped.load(Ordering::SeqCst) {
            done.await;
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random id of `len` characters from a 32-symbol alphabet (5 bits each).
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Display names and reasons: control characters removed, at most 64 characters.
pub(crate) fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned()
}
