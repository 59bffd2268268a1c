//! TURN when UDP is blocked: a real coturn (Debian's turnserver) started with no UDP listener,
//! as a network that lets only TCP out sees it.
//! - Offered only over UDP, the relay cannot be reached, and the error says UDP is blocked.
//! - Offered over TCP, and over TLS (a certificate of our own, trusted through the call's
//!   configuration), a relay-only call connects through it: webrtc-rs speaks TURN over UDP to
//!   Confer's local bridge, which carries it to the server on a stream.

mod common;

use std::time::Duration;

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_call::tls::Trust;
use confer_netsim::coturn::{Coturn, Listeners};
use confer_protocol::Role;
use confer_signal::Config;

const SECRET: &str = "the shared secret of the TURN-over-TCP tests";

fn server_config(turn: &Coturn, url: String) -> Config {
    Config {
        turn_urls: vec![url],
        turn_secret: Some(turn.secret().into()),
        turn_ttl_s: 600,
        ..Config::loopback()
    }
}

/// A relay-only call through `url`; both sides must see frames arrive over the relay.
async fn relayed_call(turn: &Coturn, url: String, ca: Option<String>, room: &str) {
    let (server, _task) = common::start(server_config(turn, url)).await;
    let config = |role| CallConfig {
        trust: Trust {
            ca_pem: ca.clone(),
            ..Trust::default()
        },
        ..common::call_config(&server, room, role)
    };
    common::relay_only_call(config(Role::Host), config(Role::Guest)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_over_tcp_gets_through_when_udp_is_blocked() {
    let turn = Coturn::start_with(SECRET, &Listeners::tcp_only()).expect("coturn");
    relayed_call(&turn, turn.turn_tcp_url(), None, "over-tcp").await;
    assert!(
        turn.log().contains("TCP"),
        "the allocation was made over TCP: {}",
        turn.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_over_tls_gets_through_with_the_servers_certificate_checked() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let turn = Coturn::start_with(
        SECRET,
        &Listeners {
            no_udp: true,
            tls: Some((cert.cert.pem(), cert.signing_key.serialize_pem())),
        },
    )
    .expect("coturn");
    let url = turn.turns_url().expect("TLS listener");
    relayed_call(&turn, url.clone(), Some(cert.cert.pem()), "over-tls").await;

    // Not trusted (another certificate as the only extra root): no relay, and the error says
    // the TLS handshake failed.
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let (server, _task) = common::start(server_config(&turn, url)).await;
    let config = |role| CallConfig {
        relay_only: true,
        trust: Trust {
            ca_pem: Some(stranger.cert.pem()),
            ..Trust::default()
        },
        ..common::call_config(&server, "untrusted", role)
    };
    let error = first_error(config(Role::Host), config(Role::Guest)).await;
    assert!(
        error.contains("TLS handshake failed"),
        "the error names the cause: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_only_turn_on_a_network_that_blocks_udp_is_a_clear_error() {
    let turn = Coturn::start_with(SECRET, &Listeners::tcp_only()).expect("coturn");
    let (server, _task) = common::start(server_config(&turn, turn.turn_url())).await;
    let config = |role| CallConfig {
        relay_only: true,
        ..common::call_config(&server, "udp-blocked", role)
    };
    let error = first_error(config(Role::Host), config(Role::Guest)).await;
    assert!(
        error.contains("UDP to it is blocked") && error.contains("turns:"),
        "the error names the cause and the way out: {error}"
    );
}

/// Joins both and returns the first error either reports (failing on a connection).
async fn first_error(host: CallConfig, guest: CallConfig) -> String {
    let mut host = CallHandle::join(host).await.expect("host");
    let mut guest = CallHandle::join(guest).await.expect("guest");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let error = loop {
        let event = tokio::select! {
            e = host.next_event() => e,
            e = guest.next_event() => e,
            () = tokio::time::sleep_until(deadline) => panic!("no error within 30 s"),
        };
        match event {
            Some(CallEvent::Error(why)) => break why,
            Some(CallEvent::Connected) => panic!("connected without a reachable relay"),
            Some(other) => eprintln!("event: {other:?}"),
            None => panic!("the call ended without an error"),
        }
    };
    eprintln!("error: {error}");
    tokio::join!(common::end(host), common::end(guest));
    error
}
