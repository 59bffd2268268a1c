//! Noticing that this machine's network changed: Wi-Fi to Ethernet, a VPN coming up, a new
//! DHCP lease, a laptop moving between rooms. The candidate pair in use may still work for a
//! while, or may already be dead without ICE having noticed; either way the call restarts ICE at
//! once (webrtc-rs re-enumerates the interfaces when it rebinds), instead of waiting for the
//! path to go quiet.
//!
//! The interfaces are read with webrtc-rs's own enumeration (`getifaddrs`) four times a
//! second; that is a few microseconds each, and it needs no netlink socket or platform
//! notification API. With the restart's rebind (see `peer.rs`), a handover to another address
//! costs about a third of a second of video (`a_handover_to_another_address_keeps_the_call`).

use std::collections::BTreeSet;
use std::net::IpAddr;

/// The addresses host candidates could be made of now: every interface address but loopback,
/// link-local, multicast and unspecified ones.
pub fn usable_addresses() -> BTreeSet<IpAddr> {
    match rtc::shared::ifaces::ifaces() {
        Ok(interfaces) => interfaces
            .into_iter()
            .filter_map(|i| i.addr.map(|a| a.ip()))
            .filter(|ip| usable(*ip))
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Whether a peer could reach us at `ip`.
pub fn usable(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_broadcast(),
        // fe80::/10; without its scope id it means nothing to the other side.
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_a_peer_could_reach_count() {
        for ip in ["10.0.0.7", "192.168.1.20", "2001:db8::1", "fd00::5"] {
            assert!(usable(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "169.254.3.4",
            "fe80::1",
            "224.0.0.251",
            "255.255.255.255",
        ] {
            assert!(!usable(ip.parse().unwrap()), "{ip}");
        }
    }
}
