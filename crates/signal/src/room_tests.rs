//! Room logic with injected time and a recording [`Deliver`]: no sockets, no sleeping.

use super::*;
use serde_json::json;
use std::collections::HashSet;

#[derive(Default)]
struct Rec {
    sent: Vec<(ConnId, ServerMessage)>,
    closed: Vec<(ConnId, u16)>,
    refuse: HashSet<ConnId>,
}

impl Deliver for Rec {
    fn deliver(&mut self, conn: ConnId, msg: &ServerMessage) -> bool {
        if self.refuse.contains(&conn) {
            return false;
        }
        self.sent.push((conn, msg.clone()));
        true
    }
    fn close(&mut self, conn: ConnId, code: u16, _reason: &'static str) {
        self.closed.push((conn, code));
    }
}

impl Rec {
    /// Takes what `conn` received so far.
    fn take(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(c, _)| *c == conn);
        self.sent = rest;
        mine.into_iter().map(|(_, m)| m).collect()
    }
}

fn no_ice(_: &str) -> Vec<IceServer> {
    Vec::new()
}

fn req(conn: ConnId, role: Role, resume: Option<(String, Option<u64>)>) -> JoinRequest {
    JoinRequest {
        conn,
        role,
        name: Some(format!("n{conn}")),
        resume,
        fresh_peer: format!("p{conn}"),
        fresh_resume: format!("secret{conn}"),
    }
}

fn welcome_of(msgs: &[ServerMessage]) -> &Welcome {
    match msgs.first() {
        Some(ServerMessage::Welcome(w)) => w,
        other => panic!("expected welcome first, got {other:?}"),
    }
}

fn payload(n: u64) -> SignalPayload {
    match json!({ "n": n }) {
        serde_json::Value::Object(m) => SignalPayload::from_object(m),
        _ => unreachable!(),
    }
}

struct World {
    room: Room,
    out: Rec,
    t: Instant,
}

impl World {
    fn new(auto_admit: bool) -> Self {
        Self {
            room: Room::new("r", auto_admit, RoomLimits::default()),
            out: Rec::default(),
            t: Instant::now(),
        }
    }
    fn join(&mut self, conn: ConnId, role: Role) -> Result<Joined, Rejection> {
        self.room
            .join(req(conn, role, None), &no_ice, &mut self.out, self.t)
    }
    fn resume(&mut self, conn: ConnId, role: Role, secret: &str, last: Option<u64>) -> Joined {
        let r = req(conn, role, Some((secret.to_owned(), last)));
        self.room
            .join(r, &no_ice, &mut self.out, self.t)
            .expect("resume")
    }
    fn signal(&mut self, from: &str, n: u64) -> Result<(), Rejection> {
        self.room.signal(from, payload(n), &mut self.out, self.t)
    }
    /// Host p1 on conn 1 and guest p2 on conn 2, admitted, inboxes emptied.
    fn in_call() -> Self {
        let mut w = Self::new(false);
        w.join(1, Role::Host).expect("host");
        w.join(2, Role::Guest).expect("guest");
        w.room.admit("p1", "p2", &mut w.out, w.t).expect("admit");
        w.out.sent.clear();
        w
    }
}

#[test]
fn host_admits_guest_and_exactly_one_initiator() {
    let mut w = World::new(false);
    assert!(w.join(1, Role::Host).expect("host").peer == "p1");
    let host = w.out.take(1);
    assert_eq!(welcome_of(&host).state, ParticipantState::Admitted);

    w.join(2, Role::Guest).expect("guest");
    let guest = w.out.take(2);
    assert_eq!(welcome_of(&guest).state, ParticipantState::Waiting);
    assert_eq!(
        w.out.take(1),
        vec![ServerMessage::Knock {
            peer: "p2".into(),
            name: Some("n2".into()),
            seq: 1
        }]
    );

    w.room.admit("p1", "p2", &mut w.out, w.t).expect("admit");
    let guest = w.out.take(2);
    let host = w.out.take(1);
    assert_eq!(guest[0], ServerMessage::Admitted { seq: 1 });
    let ready = |msgs: &[ServerMessage]| -> (String, bool) {
        let found = msgs.iter().find_map(|m| match m {
            ServerMessage::CallReady {
                peer, initiator, ..
            } => Some((peer.clone(), *initiator)),
            _ => None,
        });
        found.expect("call-ready")
    };
    let (gp, gi) = ready(&guest);
    let (hp, hi) = ready(&host);
    assert_eq!((gp.as_str(), hp.as_str()), ("p1", "p2"));
    assert!(gi ^ hi, "exactly one initiator");

    w.signal("p2", 7).expect("signal");
    assert!(matches!(
        &w.out.take(1)[..],
        [ServerMessage::Signal { from, seq: 3, .. }] if from == "p2"
    ));
}

#[test]
fn host_joining_late_hears_every_waiting_guest() {
    let mut w = World::new(false);
    w.join(2, Role::Guest).expect("guest");
    w.join(3, Role::Guest).expect("guest");
    w.join(1, Role::Host).expect("host");
    let host = w.out.take(1);
    let knocks: Vec<&str> = host
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Knock { peer, .. } => Some(peer.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(knocks, ["p2", "p3"]);
}

#[test]
fn deny_disconnects_the_guest_and_frees_the_lobby() {
    let mut w = World::new(false);
    w.join(1, Role::Host).expect("host");
    w.join(2, Role::Guest).expect("guest");
    w.out.sent.clear();
    w.room
        .deny("p1", "p2", Some("not now".into()), &mut w.out)
        .expect("deny");
    assert_eq!(
        w.out.take(2),
        vec![ServerMessage::Denied {
            reason: Some("not now".into())
        }]
    );
    assert_eq!(w.out.closed, vec![(2, close::NORMAL)]);
    assert_eq!(w.room.len(), 1);
    let err = w.room.deny("p1", "p2", None, &mut w.out).expect_err("gone");
    assert_eq!(err.code, ErrorCode::UnknownPeer);
}

#[test]
fn guests_cannot_host_and_waiting_guests_cannot_signal() {
    let mut w = World::new(false);
    w.join(1, Role::Host).expect("host");
    w.join(2, Role::Guest).expect("guest");
    w.join(3, Role::Guest).expect("guest");
    let err = w
        .room
        .admit("p2", "p3", &mut w.out, w.t)
        .expect_err("guest admit");
    assert_eq!(err.code, ErrorCode::NotAllowed);
    assert_eq!(
        w.signal("p2", 1).expect_err("waiting").code,
        ErrorCode::NotAllowed
    );
    // The host alone has nobody to relay to.
    assert_eq!(
        w.signal("p1", 1).expect_err("alone").code,
        ErrorCode::NotAllowed
    );
    let err = w
        .room
        .admit("p1", "nope", &mut w.out, w.t)
        .expect_err("unknown");
    assert_eq!(err.code, ErrorCode::UnknownPeer);
}

#[test]
fn two_admitted_at_most_and_the_lobby_is_bounded() {
    let mut w = World::in_call();
    w.join(3, Role::Guest).expect("third waits");
    let err = w.room.admit("p1", "p3", &mut w.out, w.t).expect_err("full");
    assert_eq!(err.code, ErrorCode::RoomFull);
    assert_eq!(w.room.admitted(), 2);
    for conn in 4..=10 {
        w.join(conn, Role::Guest).expect("lobby has room for 8");
    }
    let err = w.join(11, Role::Guest).expect_err("lobby full");
    assert_eq!(err.code, ErrorCode::RoomFull);

    // After the guest leaves, the third can be admitted and a new call-ready goes out.
    w.room.leave("p2", &mut w.out, w.t);
    w.out.sent.clear();
    w.room
        .admit("p1", "p3", &mut w.out, w.t)
        .expect("admit third");
    assert!(w.out.take(3).iter().any(|m| matches!(
        m,
        ServerMessage::CallReady { peer, .. } if peer == "p1"
    )));
}

#[test]
fn resume_delivers_queued_events_once_in_order() {
    let mut w = World::in_call();
    let deadline = w.room.drop_conn("p2", 2, &mut w.out, w.t).expect("held");
    assert_eq!(deadline, w.t + Duration::from_secs(30));
    assert!(matches!(
        &w.out.take(1)[..],
        [ServerMessage::PeerReconnecting { peer, .. }] if peer == "p2"
    ));
    for n in 0..3 {
        w.signal("p1", n).expect("queued while away");
    }
    assert!(w.out.take(2).is_empty());

    w.t += Duration::from_secs(10);
    let joined = w.resume(20, Role::Guest, "secret2", None);
    assert_eq!(
        joined,
        Joined {
            peer: "p2".into(),
            resumed: true
        }
    );
    let got = w.out.take(20);
    let welcome = welcome_of(&got);
    assert!(welcome.resumed);
    assert_eq!(welcome.peer, "p2");
    let ns: Vec<u64> = got[1..]
        .iter()
        .map(|m| match m {
            ServerMessage::Signal { payload, .. } => payload.to_object()["n"].as_u64().expect("n"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ns, [0, 1, 2], "all three, in order, no call-ready again");
    assert!(matches!(
        &w.out.take(1)[..],
        [ServerMessage::PeerResumed { peer, .. }] if peer == "p2"
    ));

    // A second resume with nothing new delivers nothing twice.
    w.room.drop_conn("p2", 20, &mut w.out, w.t);
    w.out.sent.clear();
    w.resume(21, Role::Guest, "secret2", None);
    assert_eq!(w.out.take(21).len(), 1, "welcome only");
}

#[test]
fn resume_with_last_seq_replays_what_the_client_never_saw() {
    let mut w = World::in_call();
    for n in 0..4 {
        w.signal("p1", n).expect("signal");
    }
    let seqs: Vec<u64> = w
        .out
        .take(2)
        .iter()
        .filter_map(ServerMessage::seq)
        .collect();
    // The socket died after the client processed the second of these.
    w.room.drop_conn("p2", 2, &mut w.out, w.t);
    w.resume(22, Role::Guest, "secret2", Some(seqs[1]));
    let replayed: Vec<u64> = w
        .out
        .take(22)
        .iter()
        .filter_map(ServerMessage::seq)
        .collect();
    assert_eq!(replayed, seqs[2..].to_vec());
}

#[test]
fn resume_while_the_old_socket_is_open_replaces_it() {
    let mut w = World::in_call();
    w.resume(30, Role::Guest, "secret2", None);
    assert_eq!(
        w.out.take(2),
        vec![ServerMessage::Bye {
            reason: ByeReason::Replaced
        }]
    );
    assert_eq!(w.out.closed, vec![(2, close::NORMAL)]);
    assert!(w.room.holds("p2", 30) && !w.room.holds("p2", 2));
    // The other side never saw the seat drop, so it hears nothing.
    assert!(w.out.take(1).is_empty());
    // A stale drop of the old connection does not touch the seat.
    assert_eq!(w.room.drop_conn("p2", 2, &mut w.out, w.t), None);
}

#[test]
fn wrong_or_unknown_resume_secret_makes_a_new_seat() {
    let mut w = World::in_call();
    w.room.drop_conn("p2", 2, &mut w.out, w.t);
    let joined = w.resume(40, Role::Guest, "guessed", None);
    assert_eq!(
        joined,
        Joined {
            peer: "p40".into(),
            resumed: false
        }
    );
    // A host token cannot take a guest seat even with its secret.
    let joined = w.resume(41, Role::Host, "secret2", None);
    assert!(!joined.resumed);
}

#[test]
fn grace_expiry_frees_the_seat() {
    let mut w = World::in_call();
    w.room.drop_conn("p2", 2, &mut w.out, w.t);
    w.out.sent.clear();
    assert!(
        !w.room
            .expire("p2", &mut w.out, w.t + Duration::from_secs(29))
    );
    assert!(
        w.room
            .expire("p2", &mut w.out, w.t + Duration::from_secs(30))
    );
    assert!(matches!(
        &w.out.take(1)[..],
        [ServerMessage::PeerLeft { peer, reason: LeaveReason::Timeout, .. }] if peer == "p2"
    ));
    assert_eq!(w.room.admitted(), 1);
    // Resumed seats are not expired by a stale timer.
    let mut w = World::in_call();
    w.room.drop_conn("p2", 2, &mut w.out, w.t);
    w.resume(50, Role::Guest, "secret2", None);
    assert!(
        !w.room
            .expire("p2", &mut w.out, w.t + Duration::from_secs(60))
    );
}

#[test]
fn leave_is_immediate() {
    let mut w = World::in_call();
    w.room.leave("p2", &mut w.out, w.t);
    assert!(matches!(
        &w.out.take(1)[..],
        [ServerMessage::PeerLeft {
            reason: LeaveReason::Left,
            ..
        }]
    ));
    assert_eq!(w.out.closed, vec![(2, close::NORMAL)]);
    w.room.leave("p1", &mut w.out, w.t);
    assert!(w.room.is_empty());
}

#[test]
fn auto_admit_fills_free_seats_first_come_first_served() {
    let mut w = World::new(true);
    w.join(1, Role::Guest).expect("a");
    w.join(2, Role::Guest).expect("b");
    w.join(3, Role::Guest).expect("c");
    assert_eq!(welcome_of(&w.out.take(2)).state, ParticipantState::Admitted);
    assert_eq!(welcome_of(&w.out.take(3)).state, ParticipantState::Waiting);
    w.room.leave("p1", &mut w.out, w.t);
    let third = w.out.take(3);
    assert!(third.contains(&ServerMessage::Admitted { seq: 1 }));
    assert!(
        third
            .iter()
            .any(|m| matches!(m, ServerMessage::CallReady { .. }))
    );
}

#[test]
fn a_slow_connection_counts_as_dropped_and_loses_nothing() {
    let mut w = World::in_call();
    w.out.refuse.insert(2);
    w.signal("p1", 1).expect("signal");
    assert_eq!(w.out.closed, vec![(2, close::POLICY)]);
    assert!(matches!(
        &w.out.take(1)[..],
        [ServerMessage::PeerReconnecting { .. }]
    ));
    w.out.refuse.clear();
    w.resume(60, Role::Guest, "secret2", None);
    let got = w.out.take(60);
    assert!(matches!(&got[1..], [ServerMessage::Signal { .. }]));
}

#[test]
fn a_new_host_connection_replaces_the_old_host_seat() {
    let mut w = World::in_call();
    w.join(9, Role::Host).expect("host again");
    assert!(w.out.take(1).contains(&ServerMessage::Bye {
        reason: ByeReason::Replaced
    }));
    let guest = w.out.take(2);
    assert!(guest.iter().any(|m| matches!(
        m,
        ServerMessage::PeerLeft { peer, reason: LeaveReason::Left, .. } if peer == "p1"
    )));
    assert!(guest.iter().any(|m| matches!(
        m,
        ServerMessage::CallReady { peer, .. } if peer == "p9"
    )));
    assert_eq!(w.room.admitted(), 2);
}

mod properties {
    //! Arbitrary operation sequences against one room: whatever happens, at most two are
    //! admitted, every connection sees strictly increasing `seq`s, every `call-ready` pair has
    //! exactly one initiator, and nothing panics.

    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Join { conn: u8, host: bool },
        Resume { conn: u8, of: u8 },
        Admit { by: u8, target: u8 },
        Deny { by: u8, target: u8 },
        Signal { from: u8 },
        Leave { who: u8 },
        Drop { who: u8 },
        Wait { secs: u8 },
        Refuse { conn: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, any::<bool>()).prop_map(|(conn, host)| Op::Join { conn, host }),
            (0u8..8, 0u8..8).prop_map(|(conn, of)| Op::Resume { conn, of }),
            (0u8..8, 0u8..8).prop_map(|(by, target)| Op::Admit { by, target }),
            (0u8..8, 0u8..8).prop_map(|(by, target)| Op::Deny { by, target }),
            (0u8..8).prop_map(|from| Op::Signal { from }),
            (0u8..8).prop_map(|who| Op::Leave { who }),
            (0u8..8).prop_map(|who| Op::Drop { who }),
            (0u8..40).prop_map(|secs| Op::Wait { secs }),
            (0u8..8).prop_map(|conn| Op::Refuse { conn }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn invariants_hold(ops in proptest::collection::vec(op(), 1..80), auto in any::<bool>()) {
            let mut room = Room::new("r", auto, RoomLimits { lobby: 3, ..RoomLimits::default() });
            let mut out = Rec::default();
            let mut t = Instant::now();
            let mut next_conn: ConnId = 100;
            // slot -> (peer, conn, secret, role)
            let mut slots: HashMap<u8, (String, ConnId, String, Role)> = HashMap::new();
            let mut all_dropped: Vec<(String, Instant)> = Vec::new();
            for op in ops {
                match op {
                    Op::Join { conn, host } => {
                        next_conn += 1;
                        let role = if host { Role::Host } else { Role::Guest };
                        let mut r = req(next_conn, role, None);
                        r.fresh_peer = format!("p{next_conn}");
                        r.fresh_resume = format!("s{next_conn}");
                        if let Ok(j) = room.join(r, &no_ice, &mut out, t) {
                            slots.insert(conn, (j.peer, next_conn, format!("s{next_conn}"), role));
                        }
                    }
                    Op::Resume { conn, of } => {
                        if let Some((_, _, secret, role)) = slots.get(&of).cloned() {
                            next_conn += 1;
                            let r = req(next_conn, role, Some((secret.clone(), None)));
                            if let Ok(j) = room.join(r, &no_ice, &mut out, t) {
                                let secret = if j.resumed { secret } else { format!("secret{next_conn}") };
                                slots.insert(conn, (j.peer, next_conn, secret, role));
                            }
                        }
                    }
                    Op::Admit { by, target } => {
                        if let (Some(a), Some(b)) = (slots.get(&by), slots.get(&target)) {
                            let _ = room.admit(&a.0.clone(), &b.0.clone(), &mut out, t);
                        }
                    }
                    Op::Deny { by, target } => {
                        if let (Some(a), Some(b)) = (slots.get(&by), slots.get(&target)) {
                            let _ = room.deny(&a.0.clone(), &b.0.clone(), None, &mut out);
                        }
                    }
                    Op::Signal { from } => {
                        if let Some(a) = slots.get(&from) {
                            let _ = room.signal(&a.0.clone(), payload(1), &mut out, t);
                        }
                    }
                    Op::Leave { who } => {
                        if let Some(a) = slots.remove(&who)
                            && room.holds(&a.0, a.1)
                        {
                            room.leave(&a.0, &mut out, t);
                        }
                    }
                    Op::Drop { who } => {
                        if let Some(a) = slots.get(&who)
                            && room.drop_conn(&a.0.clone(), a.1, &mut out, t).is_some()
                        {
                            all_dropped.push((a.0.clone(), t));
                        }
                    }
                    Op::Wait { secs } => {
                        t += Duration::from_secs(u64::from(secs));
                        for (peer, _) in &all_dropped {
                            room.expire(peer, &mut out, t);
                        }
                    }
                    Op::Refuse { conn } => {
                        if let Some(a) = slots.get(&conn) {
                            out.refuse.insert(a.1);
                        }
                    }
                }
                prop_assert!(room.admitted() <= 2);
                prop_assert!(room.seats.iter().filter(|s| s.role == Role::Host).count() <= 1);
                if let Some((a, b)) = room.pair.clone() {
                    let initiator = |me: &str, other: &str| {
                        room.seat(me).and_then(|s| {
                            s.log.iter().rev().find_map(|m| match m {
                                ServerMessage::CallReady { peer, initiator, .. } if peer == other => {
                                    Some(*initiator)
                                }
                                _ => None,
                            })
                        })
                    };
                    let (ia, ib) = (initiator(&a, &b), initiator(&b, &a));
                    prop_assert!(ia.is_some() && ib.is_some(), "both told: {ia:?} {ib:?}");
                    prop_assert!(ia != ib, "exactly one initiator");
                }
            }
            // Per connection, seqs strictly increase.
            let mut last: HashMap<ConnId, u64> = HashMap::new();
            for (conn, msg) in &out.sent {
                if let Some(seq) = msg.seq() {
                    let prev = last.insert(*conn, seq).unwrap_or(0);
                    prop_assert!(seq > prev, "conn {conn}: seq {seq} after {prev}");
                }
            }
        }
    }
}
