//! One WebSocket connection: reads frames, enforces limits, drives its seat, writes replies.
//!
//! The task owns the socket. Room events arrive on a bounded channel filled by the room (see
//! [`crate::registry`]); replies to this connection's own requests (`error`, `pong`) are written
//! directly. Nothing here blocks another connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confer_protocol::{
    ByeReason, ClientMessage, ErrorCode, Hello, MAX_FRAME_BYTES, PROTOCOL_VERSION, ServerMessage,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{
    self, Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::Shared;
use crate::metrics::Direction;
use crate::ratelimit::TokenBucket;
use crate::registry::{Outgoing, RoomCell};
use crate::room::{ConnId, JoinRequest, close};
use crate::token::TokenError;

/// Queued room events per connection before it counts as too slow.
const OUTBOX: usize = 256;
/// Violations (bad frames, forbidden messages, rate-limit errors) tolerated before 1008.
const MAX_VIOLATIONS: u32 = 10;
/// Close code for a frame over the hard limit.
const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the server stops.
const CLOSE_GOING_AWAY: u16 = 1001;

/// How a connection ended.
enum End {
    /// The socket failed or went silent: the seat is held for resume.
    Dropped,
    /// The client closed the socket without `leave`: answer its close, hold the seat.
    ClientClosed,
    /// The room closed this connection (left, denied, replaced, too slow).
    Closed,
    /// Closed by us with this code and reason.
    CloseWith(u16, &'static str),
    /// The server is shutting down.
    Shutdown,
}

struct Session {
    cell: Arc<RoomCell>,
    peer: String,
}

struct Conn<S> {
    id: ConnId,
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    session: Option<Session>,
    bucket: TokenBucket,
    violations: u32,
    dropped: u64,
    last_rate_error: Option<Instant>,
}

/// Serves one upgraded WebSocket until it ends.
pub(crate) async fn run<S>(ws: WebSocketStream<S>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = shared.next_conn_id();
    let span = info_span!("conn", conn = id);
    shared.metrics.connections.inc();
    let now = Instant::now();
    let conn = Conn {
        id,
        ws,
        bucket: TokenBucket::new(shared.config.rate_burst, shared.config.rate_per_sec, now),
        shared: Arc::clone(&shared),
        session: None,
        violations: 0,
        dropped: 0,
        last_rate_error: None,
    };
    conn.run().instrument(span).await;
    shared.metrics.connections.dec();
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(mut self) {
        debug!("connection opened");
        let cfg = &self.shared.config;
        let idle = Duration::from_secs(cfg.idle_timeout_s);
        let every = Duration::from_secs(cfg.ping_interval_s.max(1));
        let hello_deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.hello_timeout_s);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let shutdown = self.shared.shutdown.clone();
        let (tx, mut rx) = mpsc::channel::<Outgoing>(OUTBOX);
        let mut tx = Some(tx);
        let mut last_seen = Instant::now();

        let end = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break End::Shutdown,
                out = rx.recv(), if self.session.is_some() => {
                    match self.write_batch(out, &mut rx).await {
                        Ok(None) => {}
                        Ok(Some(end)) => break end,
                        Err(_) => break End::Dropped,
                    }
                }
                frame = self.ws.next() => {
                    last_seen = Instant::now();
                    match frame {
                        None => break End::Dropped,
                        Some(Err(tungstenite::Error::Capacity(e))) => {
                            debug!(error = %e, "frame over the hard limit");
                            self.shared.metrics.error(ErrorCode::TooLarge);
                            break End::CloseWith(CLOSE_TOO_BIG, "frame too large");
                        }
                        Some(Err(e)) => {
                            debug!(error = %e, "socket error");
                            break End::Dropped;
                        }
                        Some(Ok(msg)) => {
                            if let Some(end) = self.on_frame(msg, &mut tx).await {
                                break end;
                            }
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() > idle {
                        debug!("idle timeout");
                        break End::Dropped;
                    }
                    if self.ws.send(Message::Ping(Default::default())).await.is_err() {
                        break End::Dropped;
                    }
                }
                () = tokio::time::sleep_until(hello_deadline), if self.session.is_none() => {
                    self.send_error(ErrorCode::Unauthorized, "no hello within the time limit").await;
                    break End::CloseWith(close::POLICY, "no hello");
                }
            }
        };
        self.finish(end).await;
    }

    /// Writes `first` and whatever else is already queued (up to a batch) with one flush, so a
    /// burst of candidates costs one syscall rather than one each.
    async fn write_batch(
        &mut self,
        first: Option<Outgoing>,
        rx: &mut mpsc::Receiver<Outgoing>,
    ) -> Result<Option<End>, tungstenite::Error> {
        const BATCH: u64 = 64;
        let mut next = first;
        let mut written = 0u64;
        let mut end = None;
        let mut relayed = Vec::new();
        while let Some(out) = next.take() {
            match out {
                Outgoing::Text { text, relayed_from } => {
                    self.ws.feed(Message::text(text)).await?;
                    written += 1;
                    relayed.extend(relayed_from);
                }
                Outgoing::Close { code, reason } => {
                    end = Some(End::CloseWith(code, reason));
                    break;
                }
            }
            if written < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if written == 0 && end.is_none() {
            // The room dropped our sender: this connection no longer holds a seat.
            return Ok(Some(End::Closed));
        }
        self.ws.flush().await?;
        let metrics = &self.shared.metrics;
        metrics.messages(Direction::Out, written);
        for at in relayed {
            metrics.relay_latency.observe(at.elapsed().as_secs_f64());
        }
        Ok(end)
    }

    async fn finish(mut self, end: End) {
        match end {
            End::Shutdown => {
                self.send(&ServerMessage::Bye {
                    reason: ByeReason::ServerShutdown,
                })
                .await;
                self.close(CLOSE_GOING_AWAY, "server shutdown").await;
                // The process is stopping: the seat goes with it, nobody to notify.
                return;
            }
            End::CloseWith(code, reason) => {
                if code == close::POLICY {
                    self.shared.metrics.policy_closes.inc();
                }
                self.close(code, reason).await;
            }
            End::Closed => self.close(close::NORMAL, "closed").await,
            End::ClientClosed => {
                // tungstenite queued the close reply when it read the close; send it.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.flush()).await;
            }
            End::Dropped => {}
        }
        if let Some(session) = self.session.take() {
            // A no-op unless this connection still holds the seat (then the seat is held for
            // the grace period and the other side hears `peer-reconnecting`).
            self.shared
                .registry
                .drop_conn(&session.cell, &session.peer, self.id);
            debug!(peer = %session.peer, "connection closed");
        }
    }

    /// Handles one frame. Returns how the connection ends, if it does.
    async fn on_frame(
        &mut self,
        msg: Message,
        tx: &mut Option<mpsc::Sender<Outgoing>>,
    ) -> Option<End> {
        let text = match msg {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self
                    .violation(
                        ErrorCode::BadMessage,
                        "binary frames are not part of the protocol",
                    )
                    .await;
            }
            Message::Close(_) => return Some(End::ClientClosed),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return None,
        };
        self.shared.metrics.messages(Direction::In, 1);
        let now = Instant::now();
        if !self.bucket.take(now) {
            return self.rate_limited(now).await;
        }
        if text.len() > MAX_FRAME_BYTES {
            let msg = format!("frames are limited to {MAX_FRAME_BYTES} bytes");
            return self.violation(ErrorCode::TooLarge, &msg).await;
        }
        let parsed = match confer_protocol::parse_client(text.as_str()) {
            Ok(parsed) => parsed,
            Err(e) => {
                let msg = format!("not a valid message: {e}");
                return self.violation(ErrorCode::BadMessage, &msg).await;
            }
        };
        match (&self.session, parsed) {
            (None, ClientMessage::Hello(hello)) => self.hello(hello, tx).await,
            (None, ClientMessage::Ping { t }) => {
                self.send(&ServerMessage::Pong { t }).await;
                None
            }
            (None, _) => {
                self.send_error(ErrorCode::Unauthorized, "hello must be the first message")
                    .await;
                Some(End::CloseWith(close::POLICY, "no hello"))
            }
            (Some(_), msg) => self.in_room(msg, now).await,
        }
    }

    async fn hello(
        &mut self,
        hello: Hello,
        tx: &mut Option<mpsc::Sender<Outgoing>>,
    ) -> Option<End> {
        if hello.protocol != PROTOCOL_VERSION {
            let msg = format!("this server speaks protocol {PROTOCOL_VERSION}");
            self.send_error(ErrorCode::UnsupportedVersion, &msg).await;
            return Some(End::CloseWith(close::POLICY, "unsupported version"));
        }
        let claims = match self.shared.tokens.verify(&hello.token) {
            Ok(claims) => claims,
            Err(e) => {
                let code = match e {
                    TokenError::Expired => ErrorCode::TokenExpired,
                    TokenError::Invalid => ErrorCode::Unauthorized,
                };
                self.send_error(code, &e.to_string()).await;
                return Some(End::CloseWith(close::POLICY, "bad token"));
            }
        };
        let name = hello
            .name
            .or(claims.name)
            .map(|n| crate::clean_name(&n))
            .filter(|n| !n.is_empty());
        let req = JoinRequest {
            conn: self.id,
            role: claims.role,
            name,
            resume: hello.resume.map(|r| (r, hello.last_seq)),
            fresh_peer: crate::random_id(12),
            fresh_resume: crate::random_id(32),
        };
        let sender = tx.take().expect("hello is handled once");
        let ice = |peer: &str| self.shared.ice.ice_servers(peer, crate::unix_now());
        let joined = self
            .shared
            .registry
            .join(&claims.room, claims.auto_admit, sender, req, &ice);
        match joined {
            Ok((cell, joined)) => {
                info!(
                    room = %claims.room, peer = %joined.peer, role = ?claims.role,
                    resumed = joined.resumed, jti = %claims.jti, "joined"
                );
                self.session = Some(Session {
                    cell,
                    peer: joined.peer,
                });
                None
            }
            Err(rejection) => {
                self.send_error(rejection.code, &rejection.message).await;
                Some(End::CloseWith(close::NORMAL, "not joined"))
            }
        }
    }

    async fn in_room(&mut self, msg: ClientMessage, received: Instant) -> Option<End> {
        let Some(session) = &self.session else {
            return None;
        };
        let (cell, peer) = (Arc::clone(&session.cell), session.peer.clone());
        let (cell, peer) = (&cell, peer.as_str());
        let shared = Arc::clone(&self.shared);
        let registry = &shared.registry;
        let result = match msg {
            ClientMessage::Hello(_) => {
                return self
                    .violation(ErrorCode::NotAllowed, "already joined")
                    .await;
            }
            ClientMessage::Ping { t } => {
                self.send(&ServerMessage::Pong { t }).await;
                return None;
            }
            ClientMessage::Leave => {
                registry.with_seat(cell, peer, self.id, None, |room, out, now| {
                    room.leave(peer, out, now);
                });
                info!(peer = %peer, "left");
                self.session = None;
                return Some(End::CloseWith(close::NORMAL, "left"));
            }
            ClientMessage::Admit { peer: target } => {
                registry.with_seat(cell, peer, self.id, None, |room, out, now| {
                    room.admit(peer, &target, out, now)
                })
            }
            ClientMessage::Deny {
                peer: target,
                reason,
            } => registry.with_seat(cell, peer, self.id, None, |room, out, _| {
                room.deny(peer, &target, reason.map(|r| crate::clean_name(&r)), out)
            }),
            ClientMessage::Signal { payload } => {
                registry.with_seat(cell, peer, self.id, Some(received), |room, out, now| {
                    room.signal(peer, payload, out, now)
                })
            }
        };
        match result {
            // The seat is no longer ours (resumed elsewhere or expired): the room already
            // queued our close, or will not talk to us again.
            None => Some(End::Closed),
            Some(Ok(())) => None,
            Some(Err(r)) => {
                if matches!(r.code, ErrorCode::NotAllowed) {
                    self.violation(r.code, &r.message).await
                } else {
                    self.send_error(r.code, &r.message).await;
                    None
                }
            }
        }
    }

    async fn rate_limited(&mut self, now: Instant) -> Option<End> {
        self.dropped += 1;
        let due = self
            .last_rate_error
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if due {
            self.last_rate_error = Some(now);
            return self
                .violation(ErrorCode::RateLimited, "too many messages: dropped")
                .await;
        }
        // A client that keeps flooding long past its limits is cut off without waiting for
        // ten one-per-second errors.
        if self.dropped > 10 * u64::from(self.shared.config.rate_burst) {
            warn!("closing a flooding connection");
            return Some(End::CloseWith(close::POLICY, "flooding"));
        }
        None
    }

    async fn violation(&mut self, code: ErrorCode, message: &str) -> Option<End> {
        self.violations += 1;
        self.send_error(code, message).await;
        if self.violations > MAX_VIOLATIONS {
            warn!(
                violations = self.violations,
                "closing after repeated violations"
            );
            Some(End::CloseWith(close::POLICY, "too many violations"))
        } else {
            None
        }
    }

    async fn send_error(&mut self, code: ErrorCode, message: &str) {
        self.shared.metrics.error(code);
        self.send(&ServerMessage::error(code, message)).await;
    }

    async fn send(&mut self, msg: &ServerMessage) {
        let text = serde_json::to_string(msg).expect("server messages always serialize");
        if self.ws.send(Message::text(text)).await.is_ok() {
            self.shared.metrics.messages(Direction::Out, 1);
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
        // Give the client a moment to answer the close handshake, never long.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}
