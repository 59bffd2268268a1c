//! Call links: `http(s)://server/join/<room>#<token>`, the shape of confer-signal's invite
//! links (the token rides in the fragment, which is never sent to a server). A link is all a
//! participant needs to join: [`Link::ws_url`] and [`Link::token`] go into a `CallConfig`.

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
}

fn bad(link: &str, why: &str) -> String {
    format!(
        "{link:?} is not a Confer link ({why}); it looks like http://server/join/<room>#<token>"
    )
}

/// A server's base URL (`http://host:port`, `https://host`) as (TLS, `host:port`).
pub fn split_server(server: &str) -> Result<(bool, &str), String> {
    let (secure, rest) = if let Some(rest) = server.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = server.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad(server, "it must start with http:// or https://"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad(server, "no server address"));
    }
    Ok((secure, authority))
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
        let (path, token) = link
            .split_once('#')
            .ok_or_else(|| bad(link, "no #token at the end"))?;
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
        })
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
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_to_the_websocket_and_back() {
        let l = Link::parse("http://127.0.0.1:8443/join/abc123#eyJ.tok.en").expect("link");
        assert_eq!(l.ws_url(), "ws://127.0.0.1:8443/v1/ws");
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
