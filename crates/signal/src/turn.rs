//! ICE servers for `welcome`, with TURN credentials in coturn's REST scheme
//! (coturn `use-auth-secret`, draft-uberti-behave-turn-rest-00): the username is
//! `<expiry unix seconds>:<peer>` and the password is base64(HMAC-SHA1(secret, username)).

use base64::Engine;
use confer_protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Issues the `ice_servers` list of `welcome`.
#[derive(Clone)]
pub struct IceServerIssuer {
    stun: Vec<String>,
    turn: Vec<String>,
    secret: Option<String>,
    ttl_s: u64,
}

impl std::fmt::Debug for IceServerIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServerIssuer")
            .field("stun", &self.stun)
            .field("turn", &self.turn)
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

impl IceServerIssuer {
    /// STUN URLs are handed out as they are; TURN URLs only with a shared secret.
    pub fn new(stun: Vec<String>, turn: Vec<String>, secret: Option<String>, ttl_s: u64) -> Self {
        Self {
            stun,
            turn,
            secret,
            ttl_s,
        }
    }

    /// The list for `peer`, with TURN credentials valid until `now_unix + ttl`.
    pub fn ice_servers(&self, peer: &str, now_unix: u64) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun.is_empty() {
            out.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        if let (false, Some(secret)) = (self.turn.is_empty(), &self.secret) {
            let (username, credential) = turn_credential(secret, peer, now_unix + self.ttl_s);
            out.push(IceServer {
                urls: self.turn.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        out
    }
}

/// coturn REST credentials for `peer`, valid until `expiry` (unix seconds).
pub fn turn_credential(secret: &str, peer: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{peer}");
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_sha1() {
        // Reference value from Python: base64(hmac.new(b"north", b"1700003600:p1", sha1).digest())
        let (user, pass) = turn_credential("north", "p1", 1_700_003_600);
        assert_eq!(user, "1700003600:p1");
        assert_eq!(pass, REFERENCE);
    }

    const REFERENCE: &str = include_str!("../tests/fixtures/turn-reference.txt").trim_ascii();

    #[test]
    fn turn_needs_a_secret() {
        let issuer = IceServerIssuer::new(vec!["stun:s".into()], vec!["turn:t".into()], None, 3600);
        assert_eq!(issuer.ice_servers("p", 0).len(), 1);
        let issuer = IceServerIssuer::new(vec![], vec!["turn:t".into()], Some("k".into()), 60);
        let list = issuer.ice_servers("p", 100);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].username.as_deref(), Some("160:p"));
    }
}
