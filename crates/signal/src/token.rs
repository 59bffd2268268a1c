//! Room tokens: JWTs signed with HS256 over the server secret (raw UTF-8 bytes).
//!
//! Claims follow docs/protocol.md: `room`, `role`, `exp`, `name?`, `jti`; Confer adds
//! `auto_admit` so that a room needs no server-side record to exist: any node holding the
//! secret can serve it, and a restarted server accepts the tokens it issued before.

use confer_protocol::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// Claims of a room token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Room id.
    pub room: String,
    /// Host or guest.
    pub role: Role,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Token id (names the token for revocation and logs).
    pub jti: String,
    /// Guests skip the lobby while a seat is free.
    #[serde(default)]
    pub auto_admit: bool,
    /// A guest token's consent line: the guest page asks the guest to agree to it first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Signature, format or claims are wrong.
    #[error("the room token is not valid")]
    Invalid,
    /// `exp` has passed.
    #[error("the room token has expired")]
    Expired,
}

/// Signs and verifies room tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenIssuer { .. }")
    }
}

impl TokenIssuer {
    /// An issuer for `secret` (used as raw bytes).
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Verifies signature and expiry (against the system clock, 5 s leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            room: "r1".into(),
            role: Role::Guest,
            exp,
            name: Some("Pat".into()),
            jti: "j1".into(),
            auto_admit: false,
            consent: None,
        }
    }

    fn now() -> u64 {
        crate::unix_now()
    }

    #[test]
    fn round_trip() {
        let issuer = TokenIssuer::new(b"secret");
        let c = claims(now() + 60);
        assert_eq!(issuer.verify(&issuer.issue(&c)), Ok(c));
    }

    #[test]
    fn expired_and_forged_are_refused() {
        let issuer = TokenIssuer::new(b"secret");
        let expired = issuer.issue(&claims(now() - 120));
        assert_eq!(issuer.verify(&expired), Err(TokenError::Expired));
        let forged = TokenIssuer::new(b"other").issue(&claims(now() + 60));
        assert_eq!(issuer.verify(&forged), Err(TokenError::Invalid));
        assert_eq!(issuer.verify("not.a.jwt"), Err(TokenError::Invalid));
        // alg=none must never pass.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb29tIjoicjEiLCJyb2xlIjoiaG9zdCIsImV4cCI6OTk5OTk5OTk5OSwianRpIjoiaiJ9.";
        assert_eq!(issuer.verify(none), Err(TokenError::Invalid));
    }
}
