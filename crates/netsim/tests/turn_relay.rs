//! TURN through a real coturn (Debian's turnserver, started here on loopback with
//! `use-auth-secret`), with the short-lived credentials confer-signal issues:
//! - a relay-only call (the privacy mode) connects through the relay, and neither side ever
//!   sends a candidate other than a relay one, so neither learns the other's addresses;
//! - credentials that have expired give a clear error instead of a call that never connects.

mod common;

use std::time::Duration;

use confer_call::call::{CallConfig, CallEvent, CallHandle};
use confer_netsim::SignalProxy;
use confer_netsim::coturn::Coturn;
use confer_protocol::Role;
use confer_signal::Config;

const SECRET: &str = "the shared secret of the relay tests";

fn with_turn(turn: &Coturn, ttl_s: u64) -> Config {
    Config {
        turn_urls: vec![turn.turn_url()],
        turn_secret: Some(turn.secret().into()),
        turn_ttl_s: ttl_s,
        ..Config::loopback()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_call_goes_through_coturn_and_reveals_no_address() {
    let turn = Coturn::start(SECRET).expect("coturn");
    let (server, _task) = common::start(with_turn(&turn, 600)).await;
    let proxy = SignalProxy::observe(&server.ws_url()).await.expect("proxy");
    let config = |role| CallConfig {
        url: proxy.ws_url(),
        ..common::call_config(&server, "relayed", role)
    };
    common::relay_only_call(config(Role::Host), config(Role::Guest)).await;
    let sent = proxy.candidates();
    eprintln!("candidates sent: {sent:#?}");
    assert!(!sent.is_empty());
    for (side, line) in &sent {
        assert!(
            line.contains(" typ relay"),
            "{side:?} revealed a candidate that is not a relay: {line}"
        );
        // A relay candidate's related address is the machine's own (mapped) address: it is
        // blanked, as browsers do.
        assert!(
            !line.contains(" raddr ") || line.contains(" raddr 0.0.0.0 rport 0"),
            "{side:?} revealed its address in raddr: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_turn_credentials_are_a_clear_error() {
    let turn = Coturn::start(SECRET).expect("coturn");
    // Credentials for one second: the host's have expired by the time its guest arrives and
    // the host starts gathering.
    let (server, _task) = common::start(with_turn(&turn, 1)).await;
    let config = |role| CallConfig {
        relay_only: true,
        ..common::call_config(&server, "expired", role)
    };
    let mut host = CallHandle::join(config(Role::Host)).await.expect("host");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let guest = CallHandle::join(config(Role::Guest)).await.expect("guest");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let error = loop {
        match tokio::time::timeout_at(deadline, host.next_event()).await {
            Ok(Some(CallEvent::Error(why))) => break why,
            Ok(Some(CallEvent::Connected)) => panic!("connected with expired credentials"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("no error within 15 s"),
        }
    };
    eprintln!("host: {error}");
    assert!(
        error.contains("TURN credentials expired"),
        "the error names the cause: {error}"
    );
    tokio::join!(common::end(host), common::end(guest));
}
