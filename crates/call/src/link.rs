//! Call links: `http(s)://server/join/<room>#<token>`, the shape of confer-signal's invite
//! links (the token rides in the fragment, which is never sent to a server). A link is all a
//! participant needs to join: [`Link::ws_url`], [`Link::token`] and [`Link::trust`] go into a
//! `CallConfig`.
//!
//! A server whose certificate no CA signed (the app's own on a LAN) is named in the link
//! itself: `#<token>&cert=<SHA-256 of its certificate, base64url>`. The link is what lets
//! anyone into the room, so it is already passed on privately; the hash in it lets the app
//! check that it reached that server and no other (a browser cannot use it, and shows its
//! warning page for such a certificate). Other `&key=value` parts are ignored.

use std::fmt;

/// A parsed call link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// `http` or `https`.
    secure: bool,
    /// `host:port`.
    authority: String,
    /// Room id.
    pub room: String,
    /// Room token.
    pub token: String,
    /// The SHA-256 of the server's certificate, when the link names it (`&cert=`).
    pub server_sha256: Option<[u8; 32]>,
}

fn bad(link: &str, why: &str) -> String {
    format!(
        "{link:?} is not a Confer link ({why}); it looks like http://server/join/<room>#<token>"
    )
}

/// A server's base URL (`http://host:port`, `https://host`) as (TLS, `host:port`).
pub fn split_server(server: &str) -> Result<(bool, &str), String> {
    split_url(server, "http").map_err(|why| bad(server, &why))
}

/// A signaling URL (`ws://host:port/v1/ws`, `wss://host/v1/ws`) as (TLS, `host:port`).
pub fn split_signaling(url: &str) -> Result<(bool, &str), String> {
    split_url(url, "ws").map_err(|why| format!("{url:?} is not a signaling address ({why})"))
}

/// `<scheme>://` or `<scheme>s://` (TLS) and the authority after it.
fn split_url<'a>(url: &'a str, scheme: &str) -> Result<(bool, &'a str), String> {
    let (secure, rest) = match url.split_once("://") {
        Some((s, rest)) if s == scheme => (false, rest),
        Some((s, rest)) if s.strip_suffix('s') == Some(scheme) => (true, rest),
        _ => return Err(format!("it must start with {scheme}:// or {scheme}s://")),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("no server address".into());
    }
    Ok((secure, authority))
}

/// The host and port of `authority` (`host:port`, `[v6]:port` or a bare host; without a
/// port, 443 with TLS and 80 without).
pub fn host_and_port(authority: &str, secure: bool) -> (&str, u16) {
    let default = if secure { 443 } else { 80 };
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host, port.unwrap_or(default));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) if !host.contains(':') => (host, port),
            _ => (authority, default),
        },
        None => (authority, default),
    }
}

impl Link {
    /// Parses a link: an invite link as the server makes it, or the same as a deep link that
    /// opens the desktop app (`confer://host/join/<room>#<token>` for an https server,
    /// `confer+http://host:port/join/<room>#<token>` for a plain-http one, such as the app's
    /// embedded server on a LAN).
    pub fn parse(link: &str) -> Result<Self, String> {
        let trimmed = link.trim();
        let normalized = if let Some(rest) = trimmed.strip_prefix("confer+http://") {
            format!("http://{rest}")
        } else if let Some(rest) = trimmed.strip_prefix("confer://") {
            format!("https://{rest}")
        } else {
            trimmed.to_owned()
        };
        let link = normalized.as_str();
        let (secure, authority) = split_server(link)?;
        let (path, fragment) = link
            .split_once('#')
            .ok_or_else(|| bad(link, "no #token at the end"))?;
        let mut parts = fragment.split('&');
        let token = parts.next().unwrap_or_default();
        let mut server_sha256 = None;
        for part in parts {
            if let Some(hash) = part.strip_prefix("cert=") {
                server_sha256 = Some(
                    crate::tls::decode_fingerprint(hash)
                        .ok_or_else(|| bad(link, "the certificate hash after cert= is damaged"))?,
                );
            }
        }
        let room = path
            .rsplit_once("/join/")
            .map(|(_, room)| room.trim_end_matches('/'))
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| bad(link, "no /join/<room>"))?;
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(bad(link, "the token is empty or broken"));
        }
        Ok(Self {
            secure,
            authority: authority.to_owned(),
            room: room.to_owned(),
            token: token.to_owned(),
            server_sha256,
        })
    }

    /// The link for `token` in `room` on `server`.
    pub fn for_token(server: &str, room: &str, token: &str) -> Result<Self, String> {
        let (secure, authority) = split_server(server)?;
        Ok(Self {
            secure,
            authority: authority.to_owned(),
            room: room.to_owned(),
            token: token.to_owned(),
            server_sha256: None,
        })
    }

    /// The same link naming the server's certificate by its SHA-256.
    pub fn with_certificate(self, sha256: [u8; 32]) -> Self {
        Self {
            server_sha256: Some(sha256),
            ..self
        }
    }

    /// What the server's certificate is checked against: the one the link names, or else the
    /// system's roots and `ca_pem`.
    pub fn trust(&self, ca_pem: Option<String>) -> crate::tls::Trust {
        crate::tls::Trust {
            ca_pem,
            server_sha256: self.server_sha256,
        }
    }

    /// The server's base URL (`https://host:port`).
    pub fn server(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }

    /// The signaling WebSocket URL.
    pub fn ws_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority, confer_protocol::WS_PATH)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(
            f,
            "{scheme}://{}/join/{}#{}",
            self.authority, self.room, self.token
        )?;
        if let Some(sha256) = &self.server_sha256 {
            write!(f, "&cert={}", crate::tls::encode_fingerprint(sha256))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_tls_and_where_and_authorities_into_host_and_port() {
        assert_eq!(split_server("https://h:8443/x"), Ok((true, "h:8443")));
        assert_eq!(split_server("http://h"), Ok((false, "h")));
        assert!(
            split_server("ws://h")
                .unwrap_err()
                .contains("http:// or https://")
        );
        assert!(
            split_server("https:///join")
                .unwrap_err()
                .contains("no server address")
        );
        assert_eq!(split_signaling("wss://h/v1/ws"), Ok((true, "h")));
        assert_eq!(
            split_signaling("ws://127.0.0.1:9/v1/ws"),
            Ok((false, "127.0.0.1:9"))
        );
        assert!(split_signaling("https://h").is_err());
        assert!(split_signaling("wsss://h").is_err());
        assert_eq!(
            host_and_port("example.org:8443", true),
            ("example.org", 8443)
        );
        assert_eq!(host_and_port("example.org", true), ("example.org", 443));
        assert_eq!(host_and_port("example.org", false), ("example.org", 80));
        assert_eq!(
            host_and_port("192.168.1.5:40000", false),
            ("192.168.1.5", 40000)
        );
        assert_eq!(host_and_port("[fe80::1]:443", false), ("fe80::1", 443));
        assert_eq!(host_and_port("[fe80::1]", false), ("fe80::1", 80));
        assert_eq!(host_and_port("fe80::1", true), ("fe80::1", 443));
    }

    #[test]
    fn links_parse_to_the_websocket_and_back() {
        let l = Link::parse("http://127.0.0.1:8443/join/abc123#eyJ.tok.en").expect("link");
        assert_eq!(l.ws_url(), "ws://127.0.0.1:8443/v1/ws");
        assert_eq!(l.server(), "http://127.0.0.1:8443");
        assert_eq!(
            (l.room.as_str(), l.token.as_str()),
            ("abc123", "eyJ.tok.en")
        );
        assert_eq!(
            l.to_string(),
            "http://127.0.0.1:8443/join/abc123#eyJ.tok.en"
        );
        let s = Link::parse("https://confer.example/join/r#t").expect("link");
        assert_eq!(s.ws_url(), "wss://confer.example/v1/ws");
        // Deep links name the same thing.
        assert_eq!(Link::parse("confer://confer.example/join/r#t"), Ok(s));
        assert_eq!(
            Link::parse(" confer+http://127.0.0.1:8443/join/abc123#eyJ.tok.en\n"),
            Ok(l)
        );
        // A link naming the server's certificate keeps it, through a deep link too.
        let hash = [7u8; 32];
        let pinned = Link::parse("http://192.168.1.5:40000/join/r#t")
            .expect("link")
            .with_certificate(hash);
        let text = pinned.to_string();
        assert!(
            text.ends_with("#t&cert=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"),
            "{text}"
        );
        assert_eq!(Link::parse(&text), Ok(pinned.clone()));
        assert_eq!(pinned.trust(None).server_sha256, Some(hash));
        assert_eq!(pinned.token, "t");
        assert_eq!(
            Link::parse(&text.replace("http://", "confer+http://")),
            Ok(pinned)
        );
        // Other parts after the token are for someone else.
        assert_eq!(
            Link::parse("https://h/join/r#t&later=1").map(|l| (l.token, l.server_sha256)),
            Ok(("t".to_owned(), None))
        );
        let damaged = Link::parse("https://h/join/r#t&cert=BwcH").unwrap_err();
        assert!(damaged.contains("certificate hash"), "{damaged}");
        for bad in [
            "127.0.0.1:8443/join/r#t",
            "http://127.0.0.1:8443/join/r",
            "http://127.0.0.1:8443/rooms/r#t",
            "http:///join/r#t",
            "http://h/join/#t",
            "http://h/join/r#",
        ] {
            let err = Link::parse(bad).expect_err(bad);
            assert!(err.contains("not a Confer link"), "{bad}: {err}");
        }
    }
}
