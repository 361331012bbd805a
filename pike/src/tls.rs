//! TLS settings (feature `tls`): encrypted, authenticated connections
//! with [rustls](https://docs.rs/rustls) and its *ring* crypto provider.
//!
//! TLS is a transport over TCP or a Unix socket, set per listener
//! ([`ConnectorBuilder::listen_tls`](crate::ConnectorBuilder::listen_tls))
//! and per connection ([`ConnectOptions::tls`](crate::ConnectOptions::tls),
//! or for every connect of a connector
//! [`ConnectorBuilder::default_client_tls`](crate::ConnectorBuilder::default_client_tls)):
//! one connector may listen with TLS and connect without, or the reverse.
//!
//! * A server needs its certificate chain and key ([`ServerTls`]); with
//!   [`ServerTls::with_client_ca_file`] it requires every client to
//!   present a certificate signed by that authority (mutual TLS).
//! * A client needs the authorities it trusts ([`ClientTls`]); it checks
//!   the server's certificate against the host name it connects to (or
//!   [`ClientTls::with_server_name`]), and may present a certificate of its
//!   own.
//! * Anything rustls can do is open through
//!   [`ServerTls::from_config`]/[`ClientTls::from_config`].
//!
//! # What changes under TLS
//!
//! Every guarantee of the connector holds. A client's `FinishConnect`
//! comes once the handshake has completed (the connect timeout covers it);
//! a failed handshake ends it with [`ConnectError::Tls`](crate::ConnectError::Tls),
//! whose [`TlsError::kind`](crate::TlsError::kind) says what failed. A
//! server's connections are offered (`RemoteConnect`) when accepted and
//! handshake once taken; a failed handshake ends them with
//! [`DisconnectReason::Tls`](crate::DisconnectReason::Tls).
//!
//! **Written** means, under TLS, encrypted *and* handed to the socket: the
//! TLS layer takes at most 64 KiB of a connection's bytes at a time, and a
//! message counts as written (for the messages a disconnect hands back)
//! only once every TLS record carrying it has gone to the socket. A local
//! disconnect that lets messages finish sends TLS's `close_notify` after
//! the last byte; the peer reads every byte of every completed message,
//! then the end of the stream.
//!
//! # Bounds
//!
//! * **Memory**: what rustls holds of a connection is counted in the
//!   connector's memory budget
//!   ([`Connector::memory_in_use`](crate::Connector::memory_in_use)):
//!   during the handshake, what the peer sent of it (at most
//!   [`DEFAULT_MAX_HANDSHAKE_SIZE`], 32 KiB, in all, past which the
//!   handshake fails with [`TlsErrorKind::HandshakeTooLarge`]); then the
//!   part of a record not yet decrypted (at most one record, 16 KiB), the
//!   decrypted bytes not yet handed out, and the records of at most 64 KiB
//!   being written. Past the budget, a handshake that holds anything
//!   stops reading until there is room.
//! * **Time**: a handshake must end within the connector's
//!   [`handshake_timeout`](crate::ConnectorBuilder::handshake_timeout)
//!   (10 s by default), or the connection ends with
//!   [`TlsErrorKind::HandshakeTimedOut`]; the idle and message timeouts
//!   count the bytes of records as they arrive, not only what they
//!   decrypt to, so a peer trickling a record byte by byte is caught.
//! * **Work**: a certificate chain may carry at most
//!   [`DEFAULT_MAX_INTERMEDIATES`] (4) certificates besides the peer's own,
//!   past which it is refused ([`TlsErrorKind::ChainTooLong`]) before
//!   anything is verified, so that no handshake holds the network thread
//!   for long building paths through a hostile chain.
//!   [`ServerTls::with_max_intermediates`] and
//!   [`ClientTls::with_max_intermediates`] change it. (A configuration
//!   given whole with `from_config` verifies as it says.)
//!
//! [`TlsErrorKind::HandshakeTooLarge`]: crate::TlsErrorKind::HandshakeTooLarge
//! [`TlsErrorKind::HandshakeTimedOut`]: crate::TlsErrorKind::HandshakeTimedOut
//! [`TlsErrorKind::ChainTooLong`]: crate::TlsErrorKind::ChainTooLong
//!
//! # Examples
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use pike::converters::StringConverter;
//! use pike::tls::{ClientTls, ServerTls};
//! use pike::{ConnectOptions, Connector};
//!
//! let server = Connector::builder(StringConverter::new())
//!     .listen_tls("127.0.0.1:0", ServerTls::from_pem_files("cert.pem", "key.pem")?)
//!     .spawn()?;
//! let client = Connector::builder(StringConverter::new()).spawn()?;
//! let tls = ClientTls::from_ca_file("ca.pem")?.with_server_name("localhost")?;
//! let addr = server.local_addr().unwrap();
//! let conn =
//!     client.connect_timeout(addr, ConnectOptions::new().tls(&tls), Duration::from_secs(5))?;
//! client.send(&conn, "hello over TLS".to_owned())?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// The rustls version Pike is built with, for building configurations to
/// pass to [`ServerTls::from_config`] and [`ClientTls::from_config`].
pub use rustls;

/// The default limit on what a peer may send of a handshake, in all:
/// 32 KiB, room for a client hello and a chain of
/// [`DEFAULT_MAX_INTERMEDIATES`] certificates many times over.
pub const DEFAULT_MAX_HANDSHAKE_SIZE: usize = 32 * 1024;
/// The default limit on the certificates a peer's chain may carry besides
/// its own: 4 (public authorities use one or two).
pub const DEFAULT_MAX_INTERMEDIATES: usize = 4;

/// A certificate chain longer than its limit, refused before verifying.
#[derive(Debug)]
pub(crate) struct ChainTooLong {
    pub(crate) intermediates: usize,
    pub(crate) limit: usize,
}

impl fmt::Display for ChainTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the certificate chain carries {} certificates besides the peer's own, over the limit of {}",
            self.intermediates, self.limit
        )
    }
}

impl std::error::Error for ChainTooLong {}

/// Refuses a chain with more than `limit` intermediates, before verifying
/// anything of it.
fn check_chain(intermediates: &[CertificateDer<'_>], limit: usize) -> Result<(), rustls::Error> {
    if intermediates.len() <= limit {
        return Ok(());
    }
    Err(rustls::Error::InvalidCertificate(
        rustls::CertificateError::Other(rustls::OtherError(Arc::new(ChainTooLong {
            intermediates: intermediates.len(),
            limit,
        }))),
    ))
}

/// The signature checks of a verifier that only adds a check of the
/// chain: its inner verifier's.
macro_rules! signatures_by_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// A client certificate verifier that refuses long chains first.
#[derive(Debug)]
struct LimitedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    max_intermediates: usize,
}

impl ClientCertVerifier for LimitedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_chain(intermediates, self.max_intermediates)?;
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    signatures_by_inner!();
}

/// A server certificate verifier that refuses long chains first.
#[derive(Debug)]
struct LimitedServerVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    max_intermediates: usize,
}

impl ServerCertVerifier for LimitedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_chain(intermediates, self.max_intermediates)?;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    signatures_by_inner!();
}

/// A TLS setting that could not be made: a file that cannot be read or
/// holds no certificate or key, a key that does not match its
/// certificate, an invalid server name. Its text is one line naming the
/// file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsConfigError(String);

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path)
        .map_err(|e| TlsConfigError(format!("cannot read {what} {}: {e}", path.display())))
}

/// The certificates of a PEM file, in order (a chain: the leaf first).
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let path = path.as_ref();
    let pem = read_file(path, "certificate file")?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsConfigError(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let path = path.as_ref();
    let pem = read_file(path, "key file")?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| TlsConfigError(format!("{}: no private key in it: {e}", path.display())))
}

/// The certificate authorities of a PEM file, as trust roots.
pub fn load_roots(path: impl AsRef<Path>) -> Result<RootCertStore, TlsConfigError> {
    let path = path.as_ref();
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| {
            TlsConfigError(format!(
                "{}: not a usable CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The crypto provider: *ring* (it builds with only a C compiler, in
/// about a third of the time aws-lc-rs takes), chosen explicitly so that
/// another provider enabled elsewhere in a program does not make rustls's
/// default ambiguous.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(e: rustls::Error) -> TlsConfigError {
    TlsConfigError(format!("TLS configuration: {e}"))
}

/// A listener's TLS: its certificate chain and key, and optionally the
/// authority client certificates must be signed by (mutual TLS) and the
/// ALPN protocols it offers. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    /// What the config was made of, to make it again with a change
    /// (`None` for one given whole).
    parts: Option<Arc<ServerParts>>,
    max_handshake_size: usize,
}

struct ServerParts {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<Arc<RootCertStore>>,
    alpn: Vec<Vec<u8>>,
    max_intermediates: usize,
}

impl Clone for ServerParts {
    fn clone(&self) -> Self {
        Self {
            certs: self.certs.clone(),
            key: self.key.clone_key(),
            client_roots: self.client_roots.clone(),
            alpn: self.alpn.clone(),
            max_intermediates: self.max_intermediates,
        }
    }
}

/// What a configuration was made of, to make it again with a change; an
/// error for one given whole (`from_config`).
fn parts_of<'a, T>(parts: &'a Option<Arc<T>>, owner: &str) -> Result<&'a T, TlsConfigError> {
    parts.as_deref().ok_or_else(|| {
        TlsConfigError(format!(
            "set this on the rustls configuration given to {owner}::from_config"
        ))
    })
}

impl ServerParts {
    fn build(self, max_handshake_size: usize) -> Result<ServerTls, TlsConfigError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?;
        let builder = match &self.client_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                        .build()
                        .map_err(|e| TlsConfigError(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(Arc::new(LimitedClientVerifier {
                    inner: verifier,
                    max_intermediates: self.max_intermediates,
                }))
            }
        };
        let mut config = builder
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| TlsConfigError(format!("certificate and key: {e}")))?;
        config.alpn_protocols = self.alpn.clone();
        // No TLS 1.3 session tickets: they arrive after the handshake, and
        // a client that only sends and then closes leaves them unread, so
        // its socket resets the connection, which can destroy the last
        // messages it sent before the server read them. (Resumption is
        // open through `from_config`.)
        config.send_tls13_tickets = 0;
        Ok(ServerTls {
            config: Arc::new(config),
            parts: Some(Arc::new(self)),
            max_handshake_size,
        })
    }
}

impl ServerTls {
    /// A server with this certificate chain (leaf first) and its key.
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsConfigError> {
        ServerParts {
            certs,
            key,
            client_roots: None,
            alpn: Vec::new(),
            max_intermediates: DEFAULT_MAX_INTERMEDIATES,
        }
        .build(DEFAULT_MAX_HANDSHAKE_SIZE)
    }

    /// A server with the certificate chain and key of two PEM files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        Self::new(load_certs(cert_chain)?, load_key(key)?)
    }

    /// A server with a rustls configuration made by the caller (built with
    /// [`rustls`] as re-exported here).
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self {
            config,
            parts: None,
            max_handshake_size: DEFAULT_MAX_HANDSHAKE_SIZE,
        }
    }

    fn change(&self, f: impl FnOnce(&mut ServerParts)) -> Result<Self, TlsConfigError> {
        let mut parts = parts_of(&self.parts, "ServerTls")?.clone();
        f(&mut parts);
        parts.build(self.max_handshake_size)
    }

    /// The most a client may send of its handshake, in all, before it is
    /// refused with [`TlsErrorKind::HandshakeTooLarge`](crate::TlsErrorKind::HandshakeTooLarge).
    /// Default [`DEFAULT_MAX_HANDSHAKE_SIZE`]; raise it for clients with
    /// long certificate chains.
    pub fn with_max_handshake_size(mut self, bytes: usize) -> Self {
        self.max_handshake_size = bytes.max(1);
        self
    }

    /// The most certificates a client's chain may carry besides its own
    /// (mutual TLS), past which it is refused before it is verified
    /// ([`TlsErrorKind::ChainTooLong`](crate::TlsErrorKind::ChainTooLong)).
    /// Default [`DEFAULT_MAX_INTERMEDIATES`].
    pub fn with_max_intermediates(self, certificates: usize) -> Result<Self, TlsConfigError> {
        self.change(|p| p.max_intermediates = certificates)
    }

    pub(crate) fn max_handshake_size(&self) -> usize {
        self.max_handshake_size
    }

    /// Requires every client to present a certificate signed by one of
    /// `roots` (mutual TLS); a client without one is refused in the
    /// handshake.
    pub fn with_client_roots(self, roots: RootCertStore) -> Result<Self, TlsConfigError> {
        self.change(|p| p.client_roots = Some(Arc::new(roots)))
    }

    /// [`with_client_roots`](Self::with_client_roots) with the authorities
    /// of a PEM file.
    pub fn with_client_ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        self.with_client_roots(load_roots(path)?)
    }

    /// The ALPN protocols offered, most preferred first. A client that
    /// asks for others is refused.
    pub fn with_alpn<P: Into<Vec<u8>>>(
        self,
        protocols: impl IntoIterator<Item = P>,
    ) -> Result<Self, TlsConfigError> {
        let alpn: Vec<Vec<u8>> = protocols.into_iter().map(Into::into).collect();
        self.change(|p| p.alpn = alpn)
    }

    pub(crate) fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "client_auth",
                &self.parts.as_ref().map(|p| p.client_roots.is_some()),
            )
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

/// A connection's TLS as a client: the authorities it trusts, optionally a
/// certificate of its own (for servers that require one), the name the
/// server's certificate must be valid for (default: the host connected
/// to), and the ALPN protocols it asks for. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    parts: Option<Arc<ClientParts>>,
    max_handshake_size: usize,
}

struct ClientParts {
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: Vec<Vec<u8>>,
    max_intermediates: usize,
}

impl Clone for ClientParts {
    fn clone(&self) -> Self {
        Self {
            roots: self.roots.clone(),
            identity: self
                .identity
                .as_ref()
                .map(|(c, k)| (c.clone(), k.clone_key())),
            alpn: self.alpn.clone(),
            max_intermediates: self.max_intermediates,
        }
    }
}

impl ClientParts {
    fn build(
        self,
        server_name: Option<ServerName<'static>>,
        max_handshake_size: usize,
    ) -> Result<ClientTls, TlsConfigError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| TlsConfigError(format!("trusted authorities: {e}")))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LimitedServerVerifier {
                inner: verifier,
                max_intermediates: self.max_intermediates,
            }));
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(|e| TlsConfigError(format!("client certificate and key: {e}")))?,
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
            parts: Some(Arc::new(self)),
            max_handshake_size,
        })
    }
}

impl ClientTls {
    /// A client trusting `roots`.
    pub fn new(roots: RootCertStore) -> Self {
        ClientParts {
            roots: Arc::new(roots),
            identity: None,
            alpn: Vec::new(),
            max_intermediates: DEFAULT_MAX_INTERMEDIATES,
        }
        .build(None, DEFAULT_MAX_HANDSHAKE_SIZE)
        .expect("a client configuration without a certificate always builds")
    }

    /// A client trusting the authorities of a PEM file.
    pub fn from_ca_file(path: impl AsRef<Path>) -> Result<Self, TlsConfigError> {
        Ok(Self::new(load_roots(path)?))
    }

    /// A client trusting the Mozilla root certificates built into the
    /// `webpki-roots` crate (feature `tls-webpki-roots`), as a browser does.
    #[cfg(feature = "tls-webpki-roots")]
    pub fn with_webpki_roots() -> Self {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::new(roots)
    }

    /// A client with a rustls configuration made by the caller.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        Self {
            config,
            server_name: None,
            parts: None,
            max_handshake_size: DEFAULT_MAX_HANDSHAKE_SIZE,
        }
    }

    fn change(&self, f: impl FnOnce(&mut ClientParts)) -> Result<Self, TlsConfigError> {
        let mut parts = parts_of(&self.parts, "ClientTls")?.clone();
        f(&mut parts);
        parts.build(self.server_name.clone(), self.max_handshake_size)
    }

    /// The most a server may send of its handshake, in all, before it is
    /// refused with [`TlsErrorKind::HandshakeTooLarge`](crate::TlsErrorKind::HandshakeTooLarge).
    /// Default [`DEFAULT_MAX_HANDSHAKE_SIZE`].
    pub fn with_max_handshake_size(mut self, bytes: usize) -> Self {
        self.max_handshake_size = bytes.max(1);
        self
    }

    /// The most certificates a server's chain may carry besides its own,
    /// past which it is refused before it is verified
    /// ([`TlsErrorKind::ChainTooLong`](crate::TlsErrorKind::ChainTooLong)).
    /// Default [`DEFAULT_MAX_INTERMEDIATES`].
    pub fn with_max_intermediates(self, certificates: usize) -> Result<Self, TlsConfigError> {
        self.change(|p| p.max_intermediates = certificates)
    }

    pub(crate) fn max_handshake_size(&self) -> usize {
        self.max_handshake_size
    }

    /// Presents this certificate chain (leaf first) and key to servers
    /// that ask for one (mutual TLS).
    pub fn with_client_cert(
        self,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsConfigError> {
        self.change(|p| p.identity = Some((certs, key)))
    }

    /// [`with_client_cert`](Self::with_client_cert) from two PEM files.
    pub fn with_client_cert_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsConfigError> {
        self.with_client_cert(load_certs(cert_chain)?, load_key(key)?)
    }

    /// The name (DNS name or IP address) the server's certificate must be
    /// valid for, instead of the host connected to. Needed over a Unix
    /// socket, which has no host.
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsConfigError> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| TlsConfigError(format!("invalid server name {name:?}: {e}")))?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// The ALPN protocols asked for, most preferred first.
    pub fn with_alpn<P: Into<Vec<u8>>>(
        self,
        protocols: impl IntoIterator<Item = P>,
    ) -> Result<Self, TlsConfigError> {
        let alpn: Vec<Vec<u8>> = protocols.into_iter().map(Into::into).collect();
        self.change(|p| p.alpn = alpn)
    }

    pub(crate) fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    pub(crate) fn server_name(&self) -> Option<&ServerName<'static>> {
        self.server_name.as_ref()
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field(
                "client_cert",
                &self.parts.as_ref().map(|p| p.identity.is_some()),
            )
            .field("alpn_protocols", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}
