//! Certificates made for a test run (no key is committed): a CA, a
//! server certificate for `localhost` and 127.0.0.1 signed by it, a client
//! certificate signed by it, and a second CA nobody trusts. Written as PEM
//! files for the CLI and the examples; loaded for the library.

use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use pike::tls::rustls;
use pike::tls::{ClientTls, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::ServerName;

use super::{TempDir, WAIT};

/// PEM files of one test run's certificates.
pub struct Pki {
    _dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A server certificate for `localhost` signed by a CA nobody trusts.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
    /// That CA.
    pub rogue_ca: PathBuf,
    /// The test CA's key (with `ca`: a CA certificate where a server's
    /// belongs).
    pub ca_key: PathBuf,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn leaf(ca: &Ca, names: &[&str], cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// This process's certificates (made once).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = TempDir::new("pki");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let trusted = ca("pike test CA");
        let rogue = ca("rogue CA");
        let (server_cert, server_key) =
            leaf(&trusted, &["localhost", "127.0.0.1", "::1"], "server");
        let (client_cert, client_key) = leaf(&trusted, &["client.test"], "client");
        let (rogue_cert, rogue_key) = leaf(&rogue, &["localhost", "127.0.0.1"], "rogue");
        Pki {
            ca: write("ca.pem", &trusted.cert.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            rogue_cert: write("rogue.pem", &rogue_cert),
            rogue_key: write("rogue.key", &rogue_key),
            rogue_ca: write("rogue-ca.pem", &rogue.cert.pem()),
            ca_key: write("ca.key", &trusted.key.serialize_pem()),
            _dir: dir,
        }
    })
}

impl Pki {
    /// The server's TLS: its certificate, no client certificates asked.
    pub fn server(&self) -> ServerTls {
        ServerTls::from_pem_files(&self.server_cert, &self.server_key).unwrap()
    }

    /// The server's TLS requiring client certificates of the test CA.
    pub fn server_mutual(&self) -> ServerTls {
        self.server().with_client_ca_file(&self.ca).unwrap()
    }

    /// A client trusting the test CA, checking the name `localhost`
    /// (which also works over Unix sockets, which have no host).
    pub fn client(&self) -> ClientTls {
        ClientTls::from_ca_file(&self.ca)
            .unwrap()
            .with_server_name("localhost")
            .unwrap()
    }

    /// A client of the test CA presenting its client certificate.
    pub fn client_with_cert(&self) -> ClientTls {
        self.client()
            .with_client_cert_files(&self.client_cert, &self.client_key)
            .unwrap()
    }

    /// A rustls client configuration trusting the test CA, for raw peers.
    pub fn raw_client_config(&self) -> Arc<rustls::ClientConfig> {
        let roots = pike::tls::load_roots(&self.ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A rustls server configuration with the server certificate, for raw
    /// peers. It sends no session tickets: nothing arrives after the
    /// handshake that the test did not write.
    pub fn raw_server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                pike::tls::load_certs(&self.server_cert).unwrap(),
                pike::tls::load_key(&self.server_key).unwrap(),
            )
            .unwrap();
        config.send_tls13_tickets = 0;
        Arc::new(config)
    }
}

/// A blocking TLS stream of a raw (non-Pike) peer.
pub type RawTls<C> = rustls::StreamOwned<C, TcpStream>;

/// A raw TLS client connected to `addr`, its handshake done, with
/// read/write timeouts.
pub fn raw_tls_connect(addr: std::net::SocketAddr) -> io::Result<RawTls<rustls::ClientConnection>> {
    let tcp = TcpStream::connect_timeout(&addr, WAIT)?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(pki().raw_client_config(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    match handshake(&mut s) {
        // Closed by the server before the handshake ended (a connection
        // past a limit, say): as over TCP, the connect itself succeeded,
        // and reading gives the end of the stream. A server that closes
        // with our ClientHello unread resets the connection instead.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            Ok(s)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(s),
    }
}

/// A raw TLS server side of an accepted `tcp`, its handshake done, with
/// read/write timeouts.
pub fn raw_tls_accept(tcp: TcpStream) -> RawTls<rustls::ServerConnection> {
    raw_tls_handshake_accepted(tcp).expect("TLS handshake of a raw peer")
}

/// [`raw_tls_accept`], failing if the handshake does.
pub fn raw_tls_handshake_accepted(tcp: TcpStream) -> io::Result<RawTls<rustls::ServerConnection>> {
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_write_timeout(Some(WAIT))?;
    let conn = rustls::ServerConnection::new(pki().raw_server_config()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    handshake(&mut s)?;
    Ok(s)
}

/// Completes the handshake now, as a TCP connection is complete once
/// connected: tests then go on as over TCP.
fn handshake<C, D>(s: &mut RawTls<C>) -> io::Result<()>
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    Ok(())
}

/// A hostile client identity: a certificate followed by `n` self-issued
/// intermediates that all bear the name its issuer has, none of which
/// leads to a trusted authority, so that a verifier building paths tries
/// each of them at every step. `p384` picks the slower curve to verify.
pub fn hostile_chain(
    n: usize,
    p384: bool,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let alg = if p384 {
        &rcgen::PKCS_ECDSA_P384_SHA384
    } else {
        &rcgen::PKCS_ECDSA_P256_SHA256
    };
    let cas: Vec<Ca> = (0..n.max(1))
        .map(|_| {
            let key = KeyPair::generate_for(alg).unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, "evil");
            let cert = params.self_signed(&key).unwrap();
            Ca { cert, key }
        })
        .collect();
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "client");
    let leaf = params.signed_by(&key, &cas[0].cert, &cas[0].key).unwrap();
    let mut chain = vec![leaf.der().clone()];
    chain.extend(cas.iter().take(n).map(|ca| ca.cert.der().clone()));
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (chain, key)
}

/// A raw rustls client presenting `chain` and `key`, connected to `addr`:
/// the outcome of its handshake, and how long it took.
pub fn raw_tls_connect_with(
    addr: std::net::SocketAddr,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> (io::Result<()>, std::time::Duration) {
    let roots = pike::tls::load_roots(&pki().ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let started = std::time::Instant::now();
    let mut result = handshake(&mut s);
    // TLS 1.3: the client's side ends before the server has checked its
    // certificate; the server's verdict comes with the first read.
    if result.is_ok() {
        let mut byte = [0u8; 1];
        result = std::io::Read::read(&mut s, &mut byte).map(drop);
    }
    (result, started.elapsed())
}
