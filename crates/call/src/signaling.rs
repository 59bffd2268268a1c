//! The signaling client: one WebSocket to confer-signal speaking docs/protocol.md, kept alive
//! across network trouble.
//!
//! A background task owns the socket. When it drops (not when the server or the user ends the
//! session) the task reconnects with exponential back-off and `hello{resume, last_seq}`, so the
//! seat, the peer id and every room event survive: the server replays what came after the
//! last `seq` we processed, and events already seen are skipped. Signals sent while
//! disconnected are queued and sent after the new `welcome`.

use std::collections::VecDeque;
use std::time::Duration;

use confer_protocol::{
    ByeReason, ClientMessage, ErrorCode, Hello, IceServer, LeaveReason, PROTOCOL_VERSION,
    ParticipantState, PeerId, Role, ServerMessage, SignalPayload,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::tls::Trust;

/// Why the session could not start or had to end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The server could not be reached (the first connection).
    #[error("cannot reach the signaling server at {url}: {detail}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The server refused the token.
    #[error("the server refused this link: {0}")]
    Refused(String),
    /// The server spoke something else than protocol 1.
    #[error("unexpected answer from the signaling server: {0}")]
    Protocol(String),
}

/// What the session reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalEvent {
    /// Joined (or re-joined after a reconnect): our seat.
    Joined {
        /// Our peer id.
        peer: PeerId,
        /// Host or guest.
        role: Role,
        /// Waiting in the lobby or admitted.
        state: ParticipantState,
        /// STUN/TURN servers with fresh credentials.
        ice_servers: Vec<IceServer>,
        /// Whether this took our earlier seat back (false: a fresh seat).
        resumed: bool,
    },
    /// Host: a guest is waiting.
    Knock {
        /// The guest.
        peer: PeerId,
        /// Its name.
        name: Option<String>,
    },
    /// Guest: the host let us in.
    Admitted,
    /// Both admitted: start the call; the initiator offers.
    CallReady {
        /// The other participant.
        peer: PeerId,
        /// Whether we send the offer.
        initiator: bool,
    },
    /// A message from the other participant.
    Signal {
        /// Sender.
        from: PeerId,
        /// The payload, byte for byte as sent.
        payload: SignalPayload,
    },
    /// The other participant's connection dropped; its seat is held.
    PeerReconnecting(PeerId),
    /// It came back.
    PeerResumed(PeerId),
    /// It left or timed out.
    PeerLeft {
        /// Who.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// Our connection dropped; reconnecting (attempt counts from 1).
    Reconnecting {
        /// Attempt number.
        attempt: u32,
        /// Why the last connection ended or the last attempt failed.
        reason: String,
    },
    /// The server rejected one of our messages; the session goes on.
    Rejected {
        /// Error code.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
    /// The session is over (left, denied, replaced by another connection, refused); nothing
    /// follows.
    Ended(String),
}

/// Reconnection back-off.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (1-based): doubling, capped, with ±25% jitter so
    /// clients cut off together do not return together.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let base = self.initial.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
        let capped = base.min(self.max.as_secs_f64());
        Duration::from_secs_f64(capped * (0.75 + 0.5 * jitter.clamp(0.0, 1.0)))
    }
}

enum Command {
    Send(ClientMessage),
    Leave,
    /// Test hook: drop the socket as a network failure would.
    Drop,
}

/// A signaling session.
#[derive(Debug)]
pub struct SignalClient {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<SignalEvent>,
}

type Socket = tokio_tungstenite::WebSocketStream<Box<dyn crate::tls::Stream>>;

/// Where we are in the room, carried across reconnects.
struct Session {
    url: String,
    token: String,
    name: Option<String>,
    resume: Option<String>,
    last_seq: u64,
    backoff: Backoff,
    /// Which certificate a `wss://` server may show.
    trust: Trust,
    /// Signals waiting for a connection.
    outbox: VecDeque<ClientMessage>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Session {
    fn hello(&self) -> ClientMessage {
        ClientMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            token: self.token.clone(),
            resume: self.resume.clone(),
            last_seq: self.resume.as_ref().map(|_| self.last_seq),
            name: self.name.clone(),
        })
    }

    /// Connects and says hello; returns the socket and the welcome as an event.
    async fn join(&mut self) -> Result<(Socket, SignalEvent), SignalError> {
        let unreachable = |detail: String| SignalError::Unreachable {
            url: self.url.clone(),
            detail,
        };
        let (secure, authority) = crate::link::split_signaling(&self.url).map_err(unreachable)?;
        let (mut ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let stream = crate::tls::connect_signaling(authority, secure, &self.trust)
                .await
                .map_err(|e| e.to_string())?;
            tokio_tungstenite::client_async(self.url.as_str(), stream)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|_| unreachable("timed out".into()))?
        .map_err(unreachable)?;
        let hello = serde_json::to_string(&self.hello()).expect("hello serializes");
        ws.send(Message::text(hello))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        loop {
            let msg = tokio::time::timeout(CONNECT_TIMEOUT, ws.next())
                .await
                .map_err(|_| unreachable("no answer to hello".into()))?;
            let text = match msg {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    return Err(unreachable(format!("closed: {frame:?}")));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(unreachable(e.to_string())),
                None => return Err(unreachable("closed".into())),
            };
            match serde_json::from_str::<ServerMessage>(&text) {
                Ok(ServerMessage::Welcome(w)) => {
                    if !w.resumed {
                        // A fresh seat: its events count from 1 again.
                        self.last_seq = 0;
                    }
                    self.resume = Some(w.resume);
                    return Ok((
                        ws,
                        SignalEvent::Joined {
                            peer: w.peer,
                            role: w.role,
                            state: w.state,
                            ice_servers: w.ice_servers,
                            resumed: w.resumed,
                        },
                    ));
                }
                Ok(ServerMessage::Error { code, message }) => {
                    return Err(SignalError::Refused(format!(
                        "{}: {message}",
                        code.as_str()
                    )));
                }
                Ok(other) => {
                    return Err(SignalError::Protocol(format!("{other:?} before welcome")));
                }
                Err(e) => return Err(SignalError::Protocol(e.to_string())),
            }
        }
    }
}

/// What the socket loop ended with.
enum Exit {
    /// The session is over.
    Ended(String),
    /// The connection dropped: reconnect.
    Dropped(String),
}

impl SignalClient {
    /// Connects to `url` (`ws://…/v1/ws` or `wss://…`, whose certificate is checked as `trust`
    /// says) with a room token. Fails with a clear error when the server is unreachable or
    /// refuses the token; after that, connection trouble is handled inside (see
    /// [`SignalEvent::Reconnecting`]).
    pub async fn connect(
        url: &str,
        token: &str,
        name: Option<&str>,
        trust: &Trust,
        backoff: Backoff,
    ) -> Result<Self, SignalError> {
        let mut session = Session {
            url: url.to_owned(),
            token: token.to_owned(),
            name: name.map(str::to_owned),
            resume: None,
            last_seq: 0,
            backoff,
            trust: trust.clone(),
            outbox: VecDeque::new(),
        };
        let (ws, joined) = session.join().await?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let _ = event_tx.send(joined);
        tokio::spawn(run(session, ws, command_rx, event_tx));
        Ok(Self { commands, events })
    }

    /// The next event; `None` after [`SignalEvent::Ended`].
    pub async fn next_event(&mut self) -> Option<SignalEvent> {
        self.events.recv().await
    }

    fn send(&self, msg: ClientMessage) {
        let _ = self.commands.send(Command::Send(msg));
    }

    /// Host: let a waiting guest in.
    pub fn admit(&self, peer: &str) {
        self.send(ClientMessage::Admit { peer: peer.into() });
    }

    /// Host: turn a waiting guest away.
    pub fn deny(&self, peer: &str, reason: Option<&str>) {
        self.send(ClientMessage::Deny {
            peer: peer.into(),
            reason: reason.map(str::to_owned),
        });
    }

    /// Sends a payload to the other participant (queued while reconnecting).
    pub fn signal(&self, payload: SignalPayload) {
        self.send(ClientMessage::Signal { payload });
    }

    /// Gives the seat up; the session ends.
    pub fn leave(&self) {
        let _ = self.commands.send(Command::Leave);
    }

    /// Drops the socket as a network failure would, to exercise reconnection in tests and in
    /// the app's "reconnect now" action.
    pub fn drop_connection(&self) {
        let _ = self.commands.send(Command::Drop);
    }
}

/// Turns a server message into an event; `Err` ends or drops the connection.
fn event_of(msg: ServerMessage) -> Result<Option<SignalEvent>, Exit> {
    Ok(Some(match msg {
        ServerMessage::Knock { peer, name, .. } => SignalEvent::Knock { peer, name },
        ServerMessage::Admitted { .. } => SignalEvent::Admitted,
        ServerMessage::Denied { reason } => {
            return Err(Exit::Ended(format!(
                "the host did not let you in{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            )));
        }
        ServerMessage::CallReady {
            peer, initiator, ..
        } => SignalEvent::CallReady { peer, initiator },
        ServerMessage::Signal { from, payload, .. } => SignalEvent::Signal { from, payload },
        ServerMessage::PeerReconnecting { peer, .. } => SignalEvent::PeerReconnecting(peer),
        ServerMessage::PeerResumed { peer, .. } => SignalEvent::PeerResumed(peer),
        ServerMessage::PeerLeft { peer, reason, .. } => SignalEvent::PeerLeft { peer, reason },
        ServerMessage::Error { code, message } => SignalEvent::Rejected { code, message },
        ServerMessage::Bye {
            reason: ByeReason::Replaced,
        } => {
            return Err(Exit::Ended(
                "this seat was taken over by another connection".into(),
            ));
        }
        ServerMessage::Bye {
            reason: ByeReason::ServerShutdown,
        } => return Err(Exit::Dropped("the server is restarting".into())),
        ServerMessage::Welcome(_) | ServerMessage::Pong { .. } | ServerMessage::Unknown => {
            return Ok(None);
        }
    }))
}

async fn run(
    mut session: Session,
    mut ws: Socket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<SignalEvent>,
) {
    loop {
        let exit = serve(&mut session, &mut ws, &mut commands, &events).await;
        let reason = match exit {
            Exit::Ended(reason) => {
                let _ = events.send(SignalEvent::Ended(reason));
                return;
            }
            Exit::Dropped(reason) => reason,
        };
        let _ = ws.close(None).await;
        let mut attempt = 0u32;
        let mut reason = reason;
        ws = loop {
            attempt += 1;
            let _ = events.send(SignalEvent::Reconnecting {
                attempt,
                reason: reason.clone(),
            });
            let wait = session.backoff.delay(attempt, rand::random::<f64>());
            // Commands that arrive meanwhile: queue signals, honour leave.
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    cmd = commands.recv() => match cmd {
                        Some(Command::Send(msg)) => session.outbox.push_back(msg),
                        Some(Command::Drop) => {}
                        Some(Command::Leave) | None => {
                            let _ = events.send(SignalEvent::Ended("left".into()));
                            return;
                        }
                    },
                }
            }
            match session.join().await {
                Ok((ws, joined)) => {
                    let _ = events.send(joined);
                    break ws;
                }
                Err(SignalError::Refused(why)) => {
                    let _ = events.send(SignalEvent::Ended(why));
                    return;
                }
                Err(e) => reason = e.to_string(),
            }
        };
    }
}

/// Runs one connection until it ends or drops.
async fn serve(
    session: &mut Session,
    ws: &mut Socket,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    events: &mpsc::UnboundedSender<SignalEvent>,
) -> Exit {
    while let Some(msg) = session.outbox.pop_front() {
        let text = serde_json::to_string(&msg).expect("client messages serialize");
        if let Err(e) = ws.send(Message::text(text)).await {
            session.outbox.push_front(msg);
            return Exit::Dropped(e.to_string());
        }
    }
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Send(msg)) => {
                    let text = serde_json::to_string(&msg).expect("client messages serialize");
                    if let Err(e) = ws.send(Message::text(text)).await {
                        session.outbox.push_back(msg);
                        return Exit::Dropped(e.to_string());
                    }
                }
                Some(Command::Drop) => return Exit::Dropped("dropped on request".into()),
                Some(Command::Leave) | None => {
                    let text = serde_json::to_string(&ClientMessage::Leave).expect("serializes");
                    let _ = ws.send(Message::text(text)).await;
                    let _ = ws.close(None).await;
                    return Exit::Ended("left".into());
                }
            },
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Exit::Dropped("the connection closed".into()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Exit::Dropped(e.to_string()),
                };
                let msg = match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(msg) => msg,
                    // Unknown additions are ignored (protocol rule); broken JSON is the
                    // server's bug, not a reason to drop the call.
                    Err(_) => continue,
                };
                if let Some(seq) = msg.seq() {
                    if seq <= session.last_seq {
                        continue; // already processed before a reconnect
                    }
                    session.last_seq = seq;
                }
                match event_of(msg) {
                    Ok(Some(event)) => {
                        let _ = events.send(event);
                    }
                    Ok(None) => {}
                    Err(exit) => return exit,
                }
            }
        }
    }
}
