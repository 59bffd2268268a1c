//! TLS for what a participant connects to: the signaling server (`wss://`, and `https://` for
//! room creation) and TURN over TLS.
//!
//! A server's certificate is checked against the system's roots plus any CA the call's
//! configuration adds (a private deployment's own), for the name in the URL. A link may instead
//! name the server's certificate itself ([`Trust::server_sha256`], from the `cert=` part of an
//! invite link's fragment): the app's server on a LAN has a certificate it made itself, which no
//! CA signed, and the link that carries the room's token carries the certificate's hash with it.
//! Then that certificate and no other is accepted (the handshake's signatures are still checked
//! against its key), as SSH checks a known host key.

use std::io;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

/// Which servers' certificates a participant accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// CA certificates (PEM) trusted besides the system's, for the signaling server and TURN
    /// over TLS (a private deployment's own CA).
    pub ca_pem: Option<String>,
    /// The SHA-256 of the signaling server's certificate (DER), when the link names it: that
    /// certificate is accepted, and no other, whoever signed it. TURN servers are still checked
    /// against the roots.
    pub server_sha256: Option<[u8; 32]>,
}

/// The SHA-256 of a certificate's DER encoding, as [`Trust::server_sha256`] holds it.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// A certificate hash as a link carries it: unpadded base64url (43 characters).
pub fn encode_fingerprint(sha256: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(sha256)
}

/// The hash [`encode_fingerprint`] wrote, or `None` for anything else.
pub fn decode_fingerprint(text: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// The system's CA certificates, read from disk once per process: every signaling connection
/// (each reconnect too), room creation and server check needs them.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Trust {
    /// The system's roots and [`Trust::ca_pem`]: what TURN servers (and a signaling server the
    /// link names no certificate for) are checked against.
    pub fn roots(&self) -> io::Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(native_roots().iter().cloned());
        if let Some(pem) = &self.ca_pem {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the extra CA certificates are not PEM: {e}"),
                    )
                })?;
            if certs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the extra CA certificates hold no certificate",
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("an extra CA certificate was refused: {e}"),
                    )
                })?;
            }
        } else if added == 0 {
            tracing::warn!("no system CA certificates: servers over TLS cannot be verified");
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// What the signaling server is checked against: its certificate by hash when the link
    /// names one, the roots otherwise.
    pub fn signaling(&self) -> io::Result<Arc<ClientConfig>> {
        let Some(sha256) = self.server_sha256 else {
            return self.roots();
        };
        let provider = provider();
        let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// Accepts the one certificate whose hash the link gave.
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

/// The certificate a server showed is not the one the link names.
#[derive(Debug)]
struct NotTheLinksCertificate;

impl std::fmt::Display for NotTheLinksCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the server's certificate is not the one named in the link \
             (someone may be in the middle, or the host restarted Confer: ask for a new link)",
        )
    }
}

impl std::error::Error for NotTheLinksCertificate {}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotTheLinksCertificate)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A byte stream to a server, over TLS or not.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens a stream to the signaling server at `authority` (`host:port`; without a port, 443
/// with TLS and 80 without), over TLS when `secure`, checked as [`Trust::signaling`] says.
pub async fn connect_signaling(
    authority: &str,
    secure: bool,
    trust: &Trust,
) -> io::Result<Box<dyn Stream>> {
    let (host, port) = crate::link::host_and_port(authority, secure);
    let tcp = TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    if !secure {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(host.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a server name or address"),
        )
    })?;
    let tls = TlsConnector::from(trust.signaling()?)
        .connect(name, tcp)
        .await
        .map_err(explain)?;
    Ok(Box::new(tls))
}

/// A failed handshake in words: rustls shows a refused certificate by its variant's name.
fn explain(e: io::Error) -> io::Error {
    let Some(rustls::Error::InvalidCertificate(why)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let text = match why {
        CertificateError::Other(other) => other.0.to_string(),
        CertificateError::UnknownIssuer => "the server's certificate is not signed by an \
            authority this computer trusts (a private CA can be added: --ca)"
            .to_owned(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is for another name".to_owned()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired".to_owned()
        }
        other => format!("the server's certificate was refused: {other:?}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_extra_roots_are_a_clear_error() {
        let trust = Trust {
            ca_pem: Some("not a certificate".into()),
            ..Trust::default()
        };
        let e = trust.roots().unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }
}
