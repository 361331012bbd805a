//! Certificates made for a test run (no key is committed): a CA, a
//! server certificate for `localhost` and 127.0.0.1 signed by it, a client
//! certificate signed by it, and a second CA nobody trusts. Written as PEM
//! files for the CLI and the examples; loaded for the library.

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
        let (server_cert, server_key) = leaf(&trusted, &["localhost", "127.0.0.1", "::1"], "server");
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
    /// peers.
    pub fn raw_server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    pike::tls::load_certs(&self.server_cert).unwrap(),
                    pike::tls::load_key(&self.server_key).unwrap(),
                )
                .unwrap(),
        )
    }
}

/// A blocking TLS stream of a raw (non-Pike) peer.
pub type RawTls<C> = rustls::StreamOwned<C, TcpStream>;

/// A raw TLS client connected to `addr`, with read/write timeouts.
pub fn raw_tls_connect(addr: std::net::SocketAddr) -> RawTls<rustls::ClientConnection> {
    let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(pki().raw_client_config(), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// A raw TLS server side of an accepted `tcp`, with read/write timeouts.
pub fn raw_tls_accept(tcp: TcpStream) -> RawTls<rustls::ServerConnection> {
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let conn = rustls::ServerConnection::new(pki().raw_server_config()).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}
