//! The rooms of this server and the channels to their connections.
//!
//! Lock order: the registry map, then one room. No lock is held across an `.await`; a room's
//! lock covers its state and the `try_send`s of its messages, so other rooms never wait on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use confer_protocol::{IceServer, ServerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::room::{ConnId, Deliver, JoinRequest, Joined, Rejection, Room, RoomLimits};

/// What a connection task writes to its socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A serialized server message; `relayed_from` is when the `signal` it relays arrived.
    Text {
        text: String,
        relayed_from: Option<Instant>,
    },
    /// Close the socket with this code.
    Close { code: u16, reason: &'static str },
}

/// The room's [`Deliver`]: one bounded channel per attached connection.
#[derive(Debug, Default)]
pub(crate) struct Senders {
    map: HashMap<ConnId, mpsc::Sender<Outgoing>>,
    /// Arrival time of the `signal` being relayed, for the latency histogram.
    origin: Option<Instant>,
}

impl Deliver for Senders {
    fn deliver(&mut self, conn: ConnId, msg: &ServerMessage) -> bool {
        let Some(tx) = self.map.get(&conn) else {
            return false;
        };
        let text = serde_json::to_string(msg).expect("server messages always serialize");
        let relayed_from = match msg {
            ServerMessage::Signal { .. } => self.origin,
            _ => None,
        };
        if tx.try_send(Outgoing::Text { text, relayed_from }).is_ok() {
            true
        } else {
            // Full (a client too slow to read its signaling) or gone: detach it. Dropping the
            // only sender ends the connection task, and the client resumes.
            self.map.remove(&conn);
            false
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &'static str) {
        if let Some(tx) = self.map.remove(&conn) {
            let _ = tx.try_send(Outgoing::Close { code, reason });
        }
    }
}

#[derive(Debug)]
pub(crate) struct RoomEntry {
    pub(crate) room: Room,
    pub(crate) senders: Senders,
    closed: bool,
}

/// One room behind its own lock.
#[derive(Debug)]
pub(crate) struct RoomCell(Mutex<RoomEntry>);

impl RoomCell {
    fn lock(&self) -> MutexGuard<'_, RoomEntry> {
        // Room methods do not panic; if one ever did, the data is still consistent enough to
        // serve the other seat and be cleaned up, so a poisoned lock is not fatal.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// All rooms.
#[derive(Debug)]
pub(crate) struct Registry {
    rooms: Mutex<HashMap<String, Arc<RoomCell>>>,
    limits: RoomLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Registry {
    pub(crate) fn new(
        limits: RoomLimits,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            rooms: Mutex::default(),
            limits,
            metrics,
            shutdown,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<RoomCell>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of live rooms.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// Joins (or resumes into) room `room_id`, creating it if needed.
    pub(crate) fn join(
        &self,
        room_id: &str,
        auto_admit: bool,
        tx: mpsc::Sender<Outgoing>,
        req: JoinRequest,
        ice: &dyn Fn(&str) -> Vec<IceServer>,
    ) -> Result<(Arc<RoomCell>, Joined), Rejection> {
        loop {
            let cell = {
                let mut map = self.map();
                let before = map.len();
                let cell = map
                    .entry(room_id.to_owned())
                    .or_insert_with(|| {
                        Arc::new(RoomCell(Mutex::new(RoomEntry {
                            room: Room::new(room_id, auto_admit, self.limits.clone()),
                            senders: Senders::default(),
                            closed: false,
                        })))
                    })
                    .clone();
                if map.len() > before {
                    self.metrics.rooms.inc();
                }
                cell
            };
            let mut entry = cell.lock();
            if entry.closed {
                // Emptied and removed between the two locks: look it up again.
                continue;
            }
            let conn = req.conn;
            entry.senders.map.insert(conn, tx.clone());
            let e = &mut *entry;
            let result = e.room.join(req, ice, &mut e.senders, Instant::now());
            if result.is_err() {
                e.senders.map.remove(&conn);
            }
            drop(entry);
            return match result {
                Ok(joined) => Ok((cell, joined)),
                Err(rejection) => {
                    self.cleanup(room_id, &cell);
                    Err(rejection)
                }
            };
        }
    }

    /// Runs `f` on the room if `conn` still holds seat `peer`; `None` when it does not (the
    /// seat was resumed elsewhere, left, or expired). Removes the room if it ends up empty.
    pub(crate) fn with_seat<R>(
        &self,
        cell: &Arc<RoomCell>,
        peer: &str,
        conn: ConnId,
        origin: Option<Instant>,
        f: impl FnOnce(&mut Room, &mut Senders, Instant) -> R,
    ) -> Option<R> {
        let mut entry = cell.lock();
        if !entry.room.holds(peer, conn) {
            return None;
        }
        let e = &mut *entry;
        e.senders.origin = origin;
        let out = f(&mut e.room, &mut e.senders, Instant::now());
        e.senders.origin = None;
        let empty = e.room.is_empty();
        let id = e.room.id().to_owned();
        drop(entry);
        if empty {
            self.cleanup(&id, cell);
        }
        Some(out)
    }

    /// The socket of `conn` is gone: hold its seat for the grace period, then expire it.
    pub(crate) fn drop_conn(self: &Arc<Self>, cell: &Arc<RoomCell>, peer: &str, conn: ConnId) {
        let mut entry = cell.lock();
        entry.senders.map.remove(&conn);
        let e = &mut *entry;
        let deadline = e.room.drop_conn(peer, conn, &mut e.senders, Instant::now());
        drop(entry);
        if let Some(deadline) = deadline {
            let registry = Arc::clone(self);
            let cell = Arc::clone(cell);
            let peer = peer.to_owned();
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => registry.expire(&cell, &peer),
                    () = registry.shutdown.cancelled() => {}
                }
            });
        }
    }

    fn expire(&self, cell: &Arc<RoomCell>, peer: &str) {
        let mut entry = cell.lock();
        let e = &mut *entry;
        if e.room.expire(peer, &mut e.senders, Instant::now()) {
            tracing::info!(room = %e.room.id(), %peer, "seat expired after the grace period");
        }
        let (empty, id) = (e.room.is_empty(), e.room.id().to_owned());
        drop(entry);
        if empty {
            self.cleanup(&id, cell);
        }
    }

    /// Removes `cell` from the map if it is empty (registry lock first, then the room).
    fn cleanup(&self, id: &str, cell: &Arc<RoomCell>) {
        let mut map = self.map();
        let mut entry = cell.lock();
        if entry.room.is_empty() && !entry.closed {
            entry.closed = true;
            if map.get(id).is_some_and(|c| Arc::ptr_eq(c, cell)) {
                map.remove(id);
                self.metrics.rooms.dec();
            }
        }
    }
}
