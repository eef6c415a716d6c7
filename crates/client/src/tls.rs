//! TLS for the client: the trusted roots and server name of
//! [`ClientTls`], and the addresses that name their host ([`ServerAddr`]),
//! so that the name to verify can default to it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;

use eddy_bus::{BusError, Result};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::ToSocketAddrs;
use tokio_rustls::TlsConnector;

/// TLS settings of a [`Client`](crate::Client): the certificates it trusts
/// and the name the server's certificate must carry.
///
/// The name defaults to the host of the address given to
/// [`Client::connect`](crate::Client::connect) — a DNS name, or an IP
/// address, which the certificate must then list as an IP address. A
/// server reached by IP whose certificate names a host (say `localhost`
/// for `127.0.0.1`) needs [`with_server_name`](ClientTls::with_server_name).
///
/// Only the given roots are trusted (not the system's), and the client
/// presents no certificate of its own. TLS 1.2 and 1.3, rustls with ring.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientTls {
    roots: Vec<CertificateDer<'static>>,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("roots", &self.roots.len())
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn invalid(what: &'static str, reason: impl std::fmt::Display) -> BusError {
    BusError::InvalidArgument {
        what,
        reason: reason.to_string(),
    }
}

impl ClientTls {
    /// Trusts the certificates in `pem` (one or more `BEGIN CERTIFICATE`
    /// blocks: CA certificates, or a server's self-signed certificate);
    /// other PEM blocks are skipped. Fails with `InvalidArgument` if `pem`
    /// is not PEM, holds no certificate, or a certificate cannot be a
    /// trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<ClientTls> {
        let roots = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| invalid("TLS roots", format!("not valid PEM: {e}")))?;
        if roots.is_empty() {
            return Err(invalid(
                "TLS roots",
                "the PEM holds no `BEGIN CERTIFICATE` block",
            ));
        }
        root_store(&roots)?;
        Ok(ClientTls {
            roots,
            server_name: None,
        })
    }

    /// Verifies the server's certificate for `name` (a DNS name or an IP
    /// address) instead of the host of the address connected to.
    pub fn with_server_name(mut self, name: impl Into<String>) -> ClientTls {
        self.server_name = Some(name.into());
        self
    }

    /// The name set by [`with_server_name`](ClientTls::with_server_name).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The connector and the name to verify, for a server at `host`.
    pub(crate) fn connector(&self, host: &str) -> Result<Tls> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| {
            invalid(
                "TLS server name",
                format!(
                    "`{name}` is neither a DNS name nor an IP address ({e}); \
                     set one with `ClientTls::with_server_name`"
                ),
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("TLS versions", e))?
            .with_root_certificates(root_store(&self.roots)?)
            .with_no_client_auth();
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for (i, cert) in roots.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            invalid(
                "TLS roots",
                format!("certificate {} cannot be a trust anchor: {e}", i + 1),
            )
        })?;
    }
    Ok(store)
}

/// What a connection needs to do its TLS handshake.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) connector: TlsConnector,
    pub(crate) server_name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// An address to connect to: anything Tokio resolves
/// ([`ToSocketAddrs`]), which also says what host it names — the default
/// TLS server name. Implemented for the same types as `ToSocketAddrs`:
/// `"host:port"` strings, `(host, port)` pairs, socket addresses.
pub trait ServerAddr: ToSocketAddrs {
    /// The host part, as written: a DNS name, or an IP address without
    /// brackets.
    fn host(&self) -> String;
}

impl<T: ServerAddr + ?Sized> ServerAddr for &T {
    fn host(&self) -> String {
        (**self).host()
    }
}

impl ServerAddr for str {
    /// `"host:port"` → `host`; `"[::1]:7420"` → `::1`.
    fn host(&self) -> String {
        if let Some(rest) = self.strip_prefix('[')
            && let Some((host, _)) = rest.split_once(']')
        {
            return host.to_string();
        }
        self.rsplit_once(':')
            .map_or(self, |(host, _port)| host)
            .to_string()
    }
}

impl ServerAddr for String {
    fn host(&self) -> String {
        self.as_str().host()
    }
}

impl ServerAddr for (&str, u16) {
    fn host(&self) -> String {
        self.0.to_string()
    }
}

impl ServerAddr for (String, u16) {
    fn host(&self) -> String {
        self.0.clone()
    }
}

impl ServerAddr for SocketAddr {
    fn host(&self) -> String {
        self.ip().to_string()
    }
}

impl ServerAddr for SocketAddrV4 {
    fn host(&self) -> String {
        self.ip().to_string()
    }
}

impl ServerAddr for SocketAddrV6 {
    fn host(&self) -> String {
        self.ip().to_string()
    }
}

impl ServerAddr for (IpAddr, u16) {
    fn host(&self) -> String {
        self.0.to_string()
    }
}

impl ServerAddr for (Ipv4Addr, u16) {
    fn host(&self) -> String {
        self.0.to_string()
    }
}

impl ServerAddr for (Ipv6Addr, u16) {
    fn host(&self) -> String {
        self.0.to_string()
    }
}

impl ServerAddr for &[SocketAddr] {
    /// The first address's IP.
    fn host(&self) -> String {
        self.first().map(|a| a.ip().to_string()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_the_address_without_its_port() {
        assert_eq!("eddy.example.com:7420".host(), "eddy.example.com");
        assert_eq!("127.0.0.1:7420".host(), "127.0.0.1");
        assert_eq!("[::1]:7420".host(), "::1");
        assert_eq!(String::from("localhost:1").host(), "localhost");
        assert_eq!(("eddy.example.com", 7420).host(), "eddy.example.com");
        let addr: SocketAddr = "[::1]:7420".parse().expect("addr");
        assert_eq!(addr.host(), "::1");
    }

    #[test]
    fn bad_pem_is_refused_with_a_reason() {
        let refused = |pem: &[u8]| match ClientTls::from_pem(pem) {
            Err(BusError::InvalidArgument { what, reason }) => format!("{what}: {reason}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert!(refused(b"").contains("no `BEGIN CERTIFICATE`"));
        assert!(refused(b"hello").contains("no `BEGIN CERTIFICATE`"));
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(
            refused(broken).contains("not valid PEM"),
            "{}",
            refused(broken)
        );
        let not_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(
            refused(not_der).contains("cannot be a trust anchor"),
            "{}",
            refused(not_der)
        );
    }

    #[test]
    fn server_name_must_be_a_name_or_an_address() {
        // Any DER will do to build a connector only if it is a valid
        // anchor, so check the name before the roots: an empty host.
        let tls = ClientTls {
            roots: Vec::new(),
            server_name: None,
        };
        match tls.connector("") {
            Err(BusError::InvalidArgument { what, .. }) => assert_eq!(what, "TLS server name"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert!(tls.connector("localhost").is_ok());
        assert!(tls.connector("127.0.0.1").is_ok());
    }
}
