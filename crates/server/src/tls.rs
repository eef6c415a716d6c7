//! TLS for Eddy's listeners: a certificate chain and key in PEM make a
//! `TlsAcceptor` (rustls, ring, TLS 1.2 and 1.3) that the native and the
//! HTTP listener wrap around each accepted socket.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::{Result, ServerError};

/// A TLS acceptor for the certificate chain `cert_pem` (the server's
/// certificate first, then intermediates) and its private key `key_pem`
/// (PKCS#8, PKCS#1 or SEC1). Fails with [`ServerError::Tls`] saying what is
/// wrong with either.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor> {
    let bad = |what: &str, e: &dyn std::fmt::Display| ServerError::Tls(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad("the certificate file is not PEM", &e))?;
    if chain.is_empty() {
        return Err(ServerError::Tls(
            "the certificate file holds no `BEGIN CERTIFICATE` block".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| bad("the key file holds no private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad("the certificate and key do not make a TLS identity", &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
