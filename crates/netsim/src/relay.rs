//! The UDP relay: every media packet of a call passes through it and through the impairment of
//! its direction.
//!
//! For each address a peer advertises as an ICE candidate, the relay opens a *front* socket
//! (advertised to the other side in its place) and a *back* socket (the relay's face toward
//! that peer). A packet arriving at the front goes on to the peer from the back socket; a
//! packet the peer sends to the back socket goes to whoever last wrote to the front, from the
//! front. Each peer sees the other only through relay addresses (learned as peer-reflexive
//! candidates), so no packet can skip the relay, and ICE's rule that an answer comes from the
//! address the request went to holds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::impair::{Counters, Impairment, Shaper};

/// A call's two participants, named by their room role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The host.
    Host,
    /// The guest.
    Guest,
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the host to the guest.
    ToGuest,
    /// From the guest to the host.
    ToHost,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Self; 2] = [Self::ToGuest, Self::ToHost];

    fn toward(side: Side) -> Self {
        match side {
            Side::Host => Self::ToHost,
            Side::Guest => Self::ToGuest,
        }
    }

    fn away_from(side: Side) -> Self {
        match side {
            Side::Host => Self::ToGuest,
            Side::Guest => Self::ToHost,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one direction did: the impairment's own counters, and what actually left the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathStats {
    /// The impairment's decisions.
    pub shaper: Counters,
    /// Packets the relay sent on (at their delivery time).
    pub delivered: u64,
    /// Let through but not yet due.
    pub in_flight: u64,
    /// Packets from a peer before anyone had written to its front (nowhere to send them).
    pub unroutable: u64,
    /// Packets dropped on purpose by [`Relay::drop_first`] or [`Relay::drop_next`] (before the
    /// impairment saw them).
    pub targeted: u64,
}

/// Says whether a datagram is one to act on ([`Relay::drop_first`], [`Relay::drop_next`]).
pub type PacketMatch = fn(&[u8]) -> bool;

/// A packet waiting for its delivery time.
#[derive(Debug)]
struct Due {
    at: Instant,
    order: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// One direction: its shaper and the queue of packets on their way.
#[derive(Debug)]
struct Path {
    shaper: Mutex<Shaper>,
    due: mpsc::UnboundedSender<Due>,
    order: AtomicU64,
    delivered: Arc<AtomicU64>,
    unroutable: AtomicU64,
    /// Packets to drop on purpose: which, and how many more.
    target: Mutex<Option<(PacketMatch, u32)>>,
    targeted: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    paths: [Path; 2],
    /// Real address → its front.
    fronts: tokio::sync::Mutex<HashMap<SocketAddr, SocketAddr>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The relay (cheap to clone; the sockets close when the last clone is dropped).
#[derive(Debug, Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl Relay {
    /// A relay with perfect paths; `seed` makes every random decision repeatable (each
    /// direction draws from its own stream).
    pub fn new(seed: u64) -> Self {
        let mut tasks = Vec::new();
        let paths = [0u64, 1].map(|i| {
            let (due, rx) = mpsc::unbounded_channel();
            let delivered = Arc::new(AtomicU64::new(0));
            tasks.push(tokio::spawn(deliver(rx, Arc::clone(&delivered))));
            Path {
                shaper: Mutex::new(Shaper::new(
                    Impairment::default(),
                    seed.wrapping_mul(2).wrapping_add(i),
                )),
                due,
                order: AtomicU64::new(0),
                delivered,
                unroutable: AtomicU64::new(0),
                target: Mutex::new(None),
                targeted: AtomicU64::new(0),
            }
        });
        Self {
            inner: Arc::new(Inner {
                paths,
                fronts: tokio::sync::Mutex::new(HashMap::new()),
                tasks: Mutex::new(tasks),
            }),
        }
    }

    fn path(&self, direction: Direction) -> &Path {
        &self.inner.paths[direction.index()]
    }

    /// Sets one direction's impairment, from the next packet on.
    pub fn set(&self, direction: Direction, impairment: Impairment) {
        self.path(direction)
            .shaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(impairment);
    }

    /// Sets both directions' impairment.
    pub fn set_both(&self, impairment: Impairment) {
        for d in Direction::BOTH {
            self.set(d, impairment);
        }
    }

    /// Drops the first packet in `direction` that `matches` (a loss aimed at one packet: "the
    /// one carrying X never arrives"), whatever the impairment; the rest go on as before.
    pub fn drop_first(&self, direction: Direction, matches: PacketMatch) {
        self.drop_next(direction, matches, 1);
    }

    /// Drops the next `count` packets in `direction` that `matches` (a burst aimed at one
    /// kind of packet), whatever the impairment; the rest go on as before.
    pub fn drop_next(&self, direction: Direction, matches: PacketMatch, count: u32) {
        *self
            .path(direction)
            .target
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (count > 0).then_some((matches, count));
    }

    /// What `direction` has done so far.
    pub fn stats(&self, direction: Direction) -> PathStats {
        let path = self.path(direction);
        let shaper = path
            .shaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counters();
        let delivered = path.delivered.load(Ordering::Relaxed);
        PathStats {
            shaper,
            delivered,
            in_flight: shaper.passed.saturating_sub(delivered),
            unroutable: path.unroutable.load(Ordering::Relaxed),
            targeted: path.targeted.load(Ordering::Relaxed),
        }
    }

    /// The address to advertise instead of `real`, a candidate of `owner`: opened on first
    /// use, the same afterwards.
    pub async fn front_for(&self, owner: Side, real: SocketAddr) -> std::io::Result<SocketAddr> {
        let mut fronts = self.inner.fronts.lock().await;
        if let Some(&front) = fronts.get(&real) {
            return Ok(front);
        }
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let front = Arc::new(UdpSocket::bind(loopback).await?);
        let back = Arc::new(UdpSocket::bind(loopback).await?);
        let front_addr = front.local_addr()?;
        // Whoever last wrote to the front: where the peer's packets go.
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let inbound = tokio::spawn({
            let (relay, front, back, client) = (
                self.clone_weak(),
                Arc::clone(&front),
                Arc::clone(&back),
                Arc::clone(&client),
            );
            async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().unwrap_or_else(|e| e.into_inner()) = Some(from);
                    let Some(relay) = relay.upgrade() else { break };
                    relay.pass(Direction::toward(owner), &buf[..n], &back, real);
                }
            }
        });
        let outbound = tokio::spawn({
            let relay = self.clone_weak();
            async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, _)) = back.recv_from(&mut buf).await {
                    let Some(relay) = relay.upgrade() else { break };
                    let to = *client.lock().unwrap_or_else(|e| e.into_inner());
                    let direction = Direction::away_from(owner);
                    match to {
                        Some(to) => relay.pass(direction, &buf[..n], &front, to),
                        None => {
                            relay
                                .path(direction)
                                .unroutable
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.push(inbound);
        tasks.push(outbound);
        fronts.insert(real, front_addr);
        Ok(front_addr)
    }

    fn clone_weak(&self) -> WeakRelay {
        WeakRelay(Arc::downgrade(&self.inner))
    }

    /// Runs a packet through `direction`'s impairment and queues it for delivery.
    fn pass(&self, direction: Direction, data: &[u8], socket: &Arc<UdpSocket>, to: SocketAddr) {
        let path = self.path(direction);
        {
            let mut target = path.target.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((matches, left)) = *target
                && matches(data)
            {
                *target = (left > 1).then_some((matches, left - 1));
                path.targeted.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let verdict = path
            .shaper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .offer(data.len(), Instant::now());
        if let Ok(at) = verdict {
            let _ = path.due.send(Due {
                at,
                order: path.order.fetch_add(1, Ordering::Relaxed),
                socket: Arc::clone(socket),
                to,
                data: data.to_vec(),
            });
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// The socket tasks hold the relay weakly, so dropping the last `Relay` stops them.
#[derive(Debug)]
struct WeakRelay(std::sync::Weak<Inner>);

impl WeakRelay {
    fn upgrade(&self) -> Option<Relay> {
        self.0.upgrade().map(|inner| Relay { inner })
    }
}

/// Sends each packet when it is due, earliest first (ties in the order they were let through).
async fn deliver(mut due: mpsc::UnboundedReceiver<Due>, delivered: Arc<AtomicU64>) {
    let mut waiting: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    loop {
        let next = waiting.peek().map(|Reverse(d)| d.at);
        tokio::select! {
            item = due.recv() => match item {
                Some(d) => waiting.push(Reverse(d)),
                None => break,
            },
            () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now).into()), if next.is_some() => {
                let now = Instant::now();
                while waiting.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    let Some(Reverse(d)) = waiting.pop() else { break };
                    if d.socket.send_to(&d.data, d.to).await.is_ok() {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_aimed_at_one_kind_of_packet_drops_that_many_of_them_and_nothing_else() {
        let relay = Relay::new(3);
        let host = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("host");
        let guest = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("guest");
        let front = relay
            .front_for(Side::Host, host.local_addr().expect("addr"))
            .await
            .expect("front");
        relay.drop_next(Direction::ToHost, |d| d.starts_with(b"a"), 2);
        for packet in ["a1", "b1", "a2", "b2", "a3", "b3"] {
            guest.send_to(packet.as_bytes(), front).await.expect("send");
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        for _ in 0..4 {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), host.recv(&mut buf))
                .await
                .expect("in time")
                .expect("recv");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got, ["b1", "b2", "a3", "b3"]);
        let stats = relay.stats(Direction::ToHost);
        assert_eq!(stats.targeted, 2);
        assert_eq!(
            stats.shaper.packets_in, 4,
            "the impairment never saw the two"
        );
        assert_eq!(relay.stats(Direction::ToGuest).targeted, 0);
    }
}
