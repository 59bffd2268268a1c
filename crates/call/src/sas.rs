//! The verification code both people read aloud (a short authentication string, as in ZRTP
//! and Signal's safety numbers).
//!
//! DTLS checks the other side's certificate against the fingerprint in the SDP it received
//! through signaling. A man in the middle — a malicious signaling server included — has to
//! swap those fingerprints for its own, and then the two sides hash different pairs: the codes
//! differ. The code is SHA-256 over a label and both fingerprints in sorted order (so both
//! sides compute the same string), cut to 6 decimal digits shown as `123 456`: a 1 in 10⁶
//! chance that an attacker matches it blindly.

use sha2::{Digest, Sha256};

/// The `a=fingerprint:` value of an SDP (algorithm and hex), normalised to upper case.
pub fn fingerprint(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=fingerprint:"))
        .map(|f| f.trim().to_ascii_uppercase())
        .filter(|f| f.contains(' '))
}

/// The code for a pair of fingerprints (order does not matter).
pub fn code(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha256::new();
    hash.update(b"confer-sas-v1\0");
    hash.update(lo.as_bytes());
    hash.update(b"\0");
    hash.update(hi.as_bytes());
    let digest = hash.finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

/// The code for a call, from the local and the remote SDP.
pub fn from_sdp(local: &str, remote: &str) -> Option<String> {
    Some(code(&fingerprint(local)?, &fingerprint(remote)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(fp: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\na=fingerprint:sha-256 {fp}\r\nm=audio 9\r\n"
        )
    }

    #[test]
    fn both_sides_read_the_same_code_and_a_man_in_the_middle_changes_it() {
        let alice = "AA:11:22";
        let bob = "BB:33:44";
        let mallory = "CC:55:66";
        let at_alice = from_sdp(&sdp(alice), &sdp(bob)).expect("code");
        let at_bob = from_sdp(&sdp(bob), &sdp(alice)).expect("code");
        assert_eq!(at_alice, at_bob);
        assert_eq!(at_alice.len(), 7, "{at_alice}");
        // Mallory relays with her own certificate to each side.
        let alice_sees = from_sdp(&sdp(alice), &sdp(mallory)).expect("code");
        let bob_sees = from_sdp(&sdp(bob), &sdp(mallory)).expect("code");
        assert_ne!(alice_sees, bob_sees);
        assert_ne!(alice_sees, at_alice);
        // Case and spacing in the SDP do not change it.
        assert_eq!(
            from_sdp(&sdp("aa:11:22"), &sdp(bob)).expect("code"),
            at_alice.clone()
        );
        assert_eq!(
            from_sdp("v=0\r\n", &sdp(bob)),
            None,
            "no fingerprint, no code"
        );
    }

    /// The same vector is in the browser guest page's test (`ui/guest/sas.test.ts`): both
    /// must read the same code from the same pair.
    #[test]
    fn the_code_matches_the_guest_page() {
        assert_eq!(code("SHA-256 AA:BB:CC", "SHA-256 11:22:33"), "925 296");
    }
}
