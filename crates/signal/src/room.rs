//! One room as plain data: seats, lobby, admission, relay order and resume.
//!
//! No sockets and no clocks here: every method takes `now`, and messages leave through a
//! [`Deliver`] the caller provides (the server's is a map of connection channels; tests record).
//! The connection tasks only move messages in and out.
//!
//! Invariants:
//! - At most two seats are admitted. The host admits itself; guests wait unless auto-admit.
//! - Every room event for a seat gets the seat's next `seq` and is kept in the seat's replay log
//!   (bounded by [`RoomLimits::replay`]); on resume the events after the client's `last_seq`
//!   (or after the last one written to the old socket) are delivered again, in order, once.
//! - `call-ready` goes out once per pair of admitted seats, never again on resume.
//! - A dropped socket keeps its seat for [`RoomLimits::grace`]; `leave` gives it up at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use confer_protocol::{
    ByeReason, ErrorCode, IceServer, LeaveReason, ParticipantState, PeerId, Role, ServerMessage,
    SignalPayload, Welcome,
};

/// Identifies one WebSocket connection (a seat outlives its connections).
pub type ConnId = u64;

/// WebSocket close codes the room asks for.
pub mod close {
    /// Normal closure (after `leave` or `denied`).
    pub const NORMAL: u16 = 1000;
    /// Policy violation.
    pub const POLICY: u16 = 1008;
}

/// Where the room's outbound messages go.
pub trait Deliver {
    /// Queue `msg` for connection `conn`. Returns false when the connection cannot take it
    /// (gone or too slow); the room then treats the connection as dropped.
    fn deliver(&mut self, conn: ConnId, msg: &ServerMessage) -> bool;
    /// Close connection `conn` after what was queued before.
    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str);
}

/// Per-room limits.
#[derive(Debug, Clone)]
pub struct RoomLimits {
    /// How long a dropped seat is held for resume.
    pub grace: Duration,
    /// How many guests may wait in the lobby.
    pub lobby: usize,
    /// How many past events each seat keeps for replay.
    pub replay: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            lobby: 8,
            replay: 512,
        }
    }
}

/// A rejected request, answered to its sender with `error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// What a connection asks for in `hello`, after its token was verified.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The connection joining.
    pub conn: ConnId,
    /// Role from the token.
    pub role: Role,
    /// Display name (from `hello` or the token).
    pub name: Option<String>,
    /// `hello.resume` and `hello.last_seq`.
    pub resume: Option<(String, Option<u64>)>,
    /// New peer id and resume secret to use if a new seat is made (random, from the caller).
    pub fresh_peer: PeerId,
    /// See `fresh_peer`.
    pub fresh_resume: String,
}

/// The seat a connection holds after joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Seat id.
    pub peer: PeerId,
    /// Whether an existing seat was taken back.
    pub resumed: bool,
}

#[derive(Debug)]
struct Seat {
    peer: PeerId,
    role: Role,
    name: Option<String>,
    state: ParticipantState,
    conn: Option<ConnId>,
    resume: String,
    dropped_at: Option<Instant>,
    next_seq: u64,
    log: VecDeque<ServerMessage>,
    written_upto: u64,
}

/// One room. See the module documentation for the invariants.
#[derive(Debug)]
pub struct Room {
    id: String,
    auto_admit: bool,
    limits: RoomLimits,
    /// In arrival order, so the lobby is first come, first served.
    seats: Vec<Seat>,
    /// The admitted pair `call-ready` was sent for.
    pair: Option<(PeerId, PeerId)>,
}

impl Room {
    /// An empty room.
    pub fn new(id: impl Into<String>, auto_admit: bool, limits: RoomLimits) -> Self {
        Self {
            id: id.into(),
            auto_admit,
            limits,
            seats: Vec::new(),
            pair: None,
        }
    }

    /// The room id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// No seats left: the room can be dropped.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// Number of seats (admitted and waiting).
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Number of admitted seats.
    pub fn admitted(&self) -> usize {
        self.seats
            .iter()
            .filter(|s| s.state == ParticipantState::Admitted)
            .count()
    }

    /// The state of a seat, if it exists.
    pub fn seat_state(&self, peer: &str) -> Option<ParticipantState> {
        self.seat(peer).map(|s| s.state)
    }

    /// Whether `conn` currently holds the seat `peer`.
    pub fn holds(&self, peer: &str, conn: ConnId) -> bool {
        self.seat(peer).is_some_and(|s| s.conn == Some(conn))
    }

    fn seat(&self, peer: &str) -> Option<&Seat> {
        self.seats.iter().find(|s| s.peer == peer)
    }

    fn index(&self, peer: &str) -> Option<usize> {
        self.seats.iter().position(|s| s.peer == peer)
    }

    fn host_index(&self) -> Option<usize> {
        self.seats.iter().position(|s| s.role == Role::Host)
    }

    /// Handles a verified `hello`: resumes the seat named by `resume`, or makes a new one.
    /// The welcome (built with `ice` for the seat's peer id) is delivered first, then any
    /// replayed or new events.
    pub fn join(
        &mut self,
        req: JoinRequest,
        ice: &dyn Fn(&str) -> Vec<IceServer>,
        out: &mut dyn Deliver,
        now: Instant,
    ) -> Result<Joined, Rejection> {
        if let Some((secret, last_seq)) = &req.resume {
            let found = self
                .seats
                .iter()
                .position(|s| &s.resume == secret && s.role == req.role);
            if let Some(i) = found {
                return Ok(self.resume(i, req.conn, *last_seq, ice, out, now));
            }
        }
        self.join_fresh(req, ice, out, now)
    }

    fn resume(
        &mut self,
        i: usize,
        conn: ConnId,
        last_seq: Option<u64>,
        ice: &dyn Fn(&str) -> Vec<IceServer>,
        out: &mut dyn Deliver,
        now: Instant,
    ) -> Joined {
        let was_dropped = self.seats[i].dropped_at.is_some();
        if let Some(old) = self.seats[i].conn.take() {
            say_replaced(out, old);
        }
        let seat = &mut self.seats[i];
        seat.conn = Some(conn);
        seat.dropped_at = None;
        let peer = seat.peer.clone();
        let welcome = welcome(&self.id, seat, ice(&peer), true, self.limits.grace);
        if !out.deliver(conn, &welcome) {
            self.drop_conn(&peer, conn, out, now);
            return Joined {
                peer,
                resumed: true,
            };
        }
        let seat = &mut self.seats[i];
        let from = last_seq.unwrap_or(seat.written_upto);
        let replay: Vec<ServerMessage> = seat
            .log
            .iter()
            .filter(|m| m.seq().is_some_and(|s| s > from))
            .cloned()
            .collect();
        if let Some(first) = seat.log.front().and_then(ServerMessage::seq)
            && first > from + 1
        {
            tracing::warn!(
                room = %self.id, %peer, from, first,
                "resume asked for events older than the replay log holds"
            );
        }
        for msg in replay {
            if !self.write(i, msg, out, now) {
                return Joined {
                    peer,
                    resumed: true,
                };
            }
        }
        if was_dropped && self.seats[i].state == ParticipantState::Admitted {
            self.notify_admitted_except(&peer, out, now, |seq| ServerMessage::PeerResumed {
                peer: peer.clone(),
                seq,
            });
        }
        Joined {
            peer,
            resumed: true,
        }
    }

    fn join_fresh(
        &mut self,
        req: JoinRequest,
        ice: &dyn Fn(&str) -> Vec<IceServer>,
        out: &mut dyn Deliver,
        now: Instant,
    ) -> Result<Joined, Rejection> {
        let admitted = self.admitted();
        let state = match req.role {
            Role::Host => {
                // A new host connection replaces an earlier host seat (the host token is the
                // credential; reopening the app must not lock the host out for the grace period).
                let old_host = self.host_index().map(|i| self.seats[i].peer.clone());
                let freed = old_host
                    .as_deref()
                    .and_then(|p| self.seat_state(p))
                    .is_some_and(|s| s == ParticipantState::Admitted);
                if admitted - usize::from(freed) >= 2 {
                    return Err(reject(
                        ErrorCode::RoomFull,
                        "two participants are already in this call",
                    ));
                }
                if let Some(old) = old_host {
                    if let Some(conn) = self.seat(&old).and_then(|s| s.conn) {
                        say_replaced(out, conn);
                    }
                    // The new host takes the old host's seat: no waiting guest may fill it.
                    self.remove(&old, LeaveReason::Left, false, out, now);
                }
                ParticipantState::Admitted
            }
            Role::Guest => {
                if self.auto_admit && admitted < 2 {
                    ParticipantState::Admitted
                } else {
                    let waiting = self.seats.len() - admitted;
                    if waiting >= self.limits.lobby {
                        return Err(reject(ErrorCode::RoomFull, "the waiting room is full"));
                    }
                    ParticipantState::Waiting
                }
            }
        };
        let seat = Seat {
            peer: req.fresh_peer.clone(),
            role: req.role,
            name: req.name,
            state,
            conn: Some(req.conn),
            resume: req.fresh_resume,
            dropped_at: None,
            next_seq: 1,
            log: VecDeque::new(),
            written_upto: 0,
        };
        let peer = seat.peer.clone();
        let welcome = welcome(&self.id, &seat, ice(&peer), false, self.limits.grace);
        self.seats.push(seat);
        if !out.deliver(req.conn, &welcome) {
            self.drop_conn(&peer, req.conn, out, now);
            return Ok(Joined {
                peer,
                resumed: false,
            });
        }
        match (req.role, state) {
            (Role::Host, _) => {
                // The host learns about everyone already waiting.
                let waiting: Vec<(PeerId, Option<String>)> = self
                    .seats
                    .iter()
                    .filter(|s| s.state == ParticipantState::Waiting)
                    .map(|s| (s.peer.clone(), s.name.clone()))
                    .collect();
                let host = self.seats.len() - 1;
                for (peer, name) in waiting {
                    self.push(
                        host,
                        |seq| ServerMessage::Knock { peer, name, seq },
                        out,
                        now,
                    );
                }
            }
            (Role::Guest, ParticipantState::Waiting) => {
                if let Some(host) = self.host_index() {
                    let name = self.seats.last().and_then(|s| s.name.clone());
                    let peer = peer.clone();
                    self.push(
                        host,
                        |seq| ServerMessage::Knock { peer, name, seq },
                        out,
                        now,
                    );
                }
            }
            (Role::Guest, ParticipantState::Admitted) => {}
        }
        self.maybe_call_ready(out, now);
        Ok(Joined {
            peer,
            resumed: false,
        })
    }

    /// `admit` from `from`.
    pub fn admit(
        &mut self,
        from: &str,
        target: &str,
        out: &mut dyn Deliver,
        now: Instant,
    ) -> Result<(), Rejection> {
        self.require_host(from)?;
        let i = self.waiting_index(target)?;
        if self.admitted() >= 2 {
            return Err(reject(
                ErrorCode::RoomFull,
                "two participants are already in this call",
            ));
        }
        self.seats[i].state = ParticipantState::Admitted;
        self.push(i, |seq| ServerMessage::Admitted { seq }, out, now);
        self.maybe_call_ready(out, now);
        Ok(())
    }

    /// `deny` from `from`: the guest gets `denied`, its connection closes, its seat is gone.
    pub fn deny(
        &mut self,
        from: &str,
        target: &str,
        reason: Option<String>,
        out: &mut dyn Deliver,
    ) -> Result<(), Rejection> {
        self.require_host(from)?;
        let i = self.waiting_index(target)?;
        let seat = self.seats.remove(i);
        if let Some(conn) = seat.conn {
            out.deliver(conn, &ServerMessage::Denied { reason });
            out.close(conn, close::NORMAL, "denied");
        }
        Ok(())
    }

    /// `signal` from `from`: relayed to the other admitted seat, in order.
    pub fn signal(
        &mut self,
        from: &str,
        payload: SignalPayload,
        out: &mut dyn Deliver,
        now: Instant,
    ) -> Result<(), Rejection> {
        match self.seat_state(from) {
            Some(ParticipantState::Admitted) => {}
            Some(ParticipantState::Waiting) => {
                return Err(reject(
                    ErrorCode::NotAllowed,
                    "signal is only allowed once admitted",
                ));
            }
            None => return Err(reject(ErrorCode::UnknownPeer, "no such seat")),
        }
        let Some(to) = self
            .seats
            .iter()
            .position(|s| s.state == ParticipantState::Admitted && s.peer != from)
        else {
            return Err(reject(
                ErrorCode::NotAllowed,
                "nobody to relay to yet: wait for call-ready",
            ));
        };
        let from = from.to_owned();
        self.push(
            to,
            |seq| ServerMessage::Signal { from, payload, seq },
            out,
            now,
        );
        Ok(())
    }

    /// `leave` from `peer`: its seat is gone at once and its connection closes.
    pub fn leave(&mut self, peer: &str, out: &mut dyn Deliver, now: Instant) {
        if let Some(conn) = self.seat(peer).and_then(|s| s.conn) {
            out.close(conn, close::NORMAL, "left");
        }
        self.remove(peer, LeaveReason::Left, true, out, now);
    }

    /// The socket of `conn` dropped (or timed out). If it still holds `peer`'s seat, the seat is
    /// held for the grace period. Returns the deadline to call [`Room::expire`] at.
    pub fn drop_conn(
        &mut self,
        peer: &str,
        conn: ConnId,
        out: &mut dyn Deliver,
        now: Instant,
    ) -> Option<Instant> {
        let i = self.index(peer)?;
        if self.seats[i].conn != Some(conn) {
            return None;
        }
        self.seats[i].conn = None;
        self.seats[i].dropped_at = Some(now);
        if self.seats[i].state == ParticipantState::Admitted {
            let peer = peer.to_owned();
            self.notify_admitted_except(&peer.clone(), out, now, |seq| {
                ServerMessage::PeerReconnecting {
                    peer: peer.clone(),
                    seq,
                }
            });
        }
        Some(now + self.limits.grace)
    }

    /// Removes `peer`'s seat if it is still dropped and its grace period has run out.
    /// Returns whether it was removed.
    pub fn expire(&mut self, peer: &str, out: &mut dyn Deliver, now: Instant) -> bool {
        let due = self
            .seat(peer)
            .and_then(|s| s.dropped_at)
            .is_some_and(|at| now >= at + self.limits.grace);
        if due {
            self.remove(peer, LeaveReason::Timeout, true, out, now);
        }
        due
    }

    fn require_host(&self, from: &str) -> Result<(), Rejection> {
        match self.seat(from) {
            Some(s) if s.role == Role::Host => Ok(()),
            Some(_) => Err(reject(ErrorCode::NotAllowed, "only the host may do this")),
            None => Err(reject(ErrorCode::UnknownPeer, "no such seat")),
        }
    }

    fn waiting_index(&self, target: &str) -> Result<usize, Rejection> {
        match self.index(target) {
            Some(i) if self.seats[i].state == ParticipantState::Waiting => Ok(i),
            _ => Err(reject(
                ErrorCode::UnknownPeer,
                format!("{target} is not waiting in this room"),
            )),
        }
    }

    /// Removes a seat and tells whom it concerns. With `refill`, an auto-admit room lets the
    /// first waiting guest into a freed seat.
    fn remove(
        &mut self,
        peer: &str,
        reason: LeaveReason,
        refill: bool,
        out: &mut dyn Deliver,
        now: Instant,
    ) {
        let Some(i) = self.index(peer) else { return };
        let seat = self.seats.remove(i);
        if self
            .pair
            .as_ref()
            .is_some_and(|(a, b)| a == peer || b == peer)
        {
            self.pair = None;
        }
        let left = |seq| ServerMessage::PeerLeft {
            peer: seat.peer.clone(),
            reason,
            seq,
        };
        match seat.state {
            ParticipantState::Admitted => self.notify_admitted_except(peer, out, now, left),
            ParticipantState::Waiting => {
                if let Some(host) = self.host_index() {
                    self.push(host, left, out, now);
                }
            }
        }
        let next_waiting = self
            .seats
            .iter()
            .position(|s| s.state == ParticipantState::Waiting);
        if let (true, ParticipantState::Admitted, Some(next)) =
            (self.auto_admit && refill, seat.state, next_waiting)
        {
            self.seats[next].state = ParticipantState::Admitted;
            self.push(next, |seq| ServerMessage::Admitted { seq }, out, now);
        }
        self.maybe_call_ready(out, now);
    }

    fn notify_admitted_except(
        &mut self,
        peer: &str,
        out: &mut dyn Deliver,
        now: Instant,
        msg: impl Fn(u64) -> ServerMessage,
    ) {
        let targets: Vec<usize> = (0..self.seats.len())
            .filter(|&i| {
                self.seats[i].state == ParticipantState::Admitted && self.seats[i].peer != peer
            })
            .collect();
        for i in targets {
            self.push(i, &msg, out, now);
        }
    }

    fn maybe_call_ready(&mut self, out: &mut dyn Deliver, now: Instant) {
        if self.pair.is_some() {
            return;
        }
        let admitted: Vec<usize> = (0..self.seats.len())
            .filter(|&i| self.seats[i].state == ParticipantState::Admitted)
            .collect();
        let &[first, second] = admitted.as_slice() else {
            return;
        };
        // The seat admitted most recently offers: it arrived knowing the other is there.
        let (a, b) = (
            self.seats[first].peer.clone(),
            self.seats[second].peer.clone(),
        );
        self.pair = Some((a.clone(), b.clone()));
        self.push(
            first,
            |seq| ServerMessage::CallReady {
                peer: b.clone(),
                initiator: false,
                seq,
            },
            out,
            now,
        );
        self.push(
            second,
            |seq| ServerMessage::CallReady {
                peer: a.clone(),
                initiator: true,
                seq,
            },
            out,
            now,
        );
    }

    /// Gives the event the seat's next `seq`, logs it for replay and writes it if attached.
    fn push(
        &mut self,
        i: usize,
        msg: impl FnOnce(u64) -> ServerMessage,
        out: &mut dyn Deliver,
        now: Instant,
    ) {
        let seat = &mut self.seats[i];
        let msg = msg(seat.next_seq);
        seat.next_seq += 1;
        seat.log.push_back(msg.clone());
        if seat.log.len() > self.limits.replay {
            seat.log.pop_front();
        }
        self.write(i, msg, out, now);
    }

    /// Writes a logged event to the seat's connection. A connection that cannot take it is
    /// treated as dropped (the event stays in the log for the resume).
    fn write(&mut self, i: usize, msg: ServerMessage, out: &mut dyn Deliver, now: Instant) -> bool {
        let Some(conn) = self.seats[i].conn else {
            return false;
        };
        if out.deliver(conn, &msg) {
            if let Some(seq) = msg.seq() {
                self.seats[i].written_upto = seq;
            }
            true
        } else {
            out.close(conn, close::POLICY, "too slow");
            let peer = self.seats[i].peer.clone();
            self.drop_conn(&peer, conn, out, now);
            false
        }
    }
}

/// Ends a connection whose seat was taken over by another connection.
fn say_replaced(out: &mut dyn Deliver, conn: ConnId) {
    let bye = ServerMessage::Bye {
        reason: ByeReason::Replaced,
    };
    out.deliver(conn, &bye);
    out.close(conn, close::NORMAL, "replaced");
}

fn welcome(
    room: &str,
    seat: &Seat,
    ice_servers: Vec<IceServer>,
    resumed: bool,
    grace: Duration,
) -> ServerMessage {
    ServerMessage::Welcome(Welcome {
        peer: seat.peer.clone(),
        room: room.to_owned(),
        role: seat.role,
        resume: seat.resume.clone(),
        ice_servers,
        state: seat.state,
        resumed,
        grace_s: grace.as_secs(),
    })
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
