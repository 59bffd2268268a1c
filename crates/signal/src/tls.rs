//! `wss://` through rustls (ring provider), from PEM files or a certificate made here.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

use crate::Error;

pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| Error::Tls(format!("certificate {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("no certificate in {}", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Tls(format!("private key {}: {e}", key.display())))?;
    acceptor_for(certs, key)
}

/// A certificate and its key, held in memory: what a server with no certificate from a CA
/// (the desktop app's on a LAN) serves https with.
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

impl Identity {
    /// A new self-signed certificate (ECDSA P-256) for `names` (host names or IP addresses),
    /// with a fresh key that never leaves memory.
    pub fn self_signed(names: Vec<String>) -> Result<Self, Error> {
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| Error::Tls(format!("cannot make a certificate: {e}")))?;
        Ok(Self {
            cert: made.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into()),
        })
    }

    /// The certificate, DER-encoded (what a client pins by its SHA-256).
    pub fn certificate_der(&self) -> &[u8] {
        self.cert.as_ref()
    }

    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, Error> {
        acceptor_for(vec![self.cert.clone()], self.key.clone_key())
    }
}

fn acceptor_for(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
