//! A certificate for `localhost` and the CA that signed it, made once per
//! run, for the TLS rows: rustls configurations for tokio-rustls and Pike's
//! settings built from the same certificate.

use std::sync::{Arc, OnceLock};

use pike::tls::rustls;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Certs {
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).expect("a CA");
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("a certificate");
        Certs {
            ca: ca.der().clone(),
            cert: cert.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs().ca.clone()).expect("a usable CA");
    roots
}

/// The server's rustls configuration (as Pike's own: no session tickets).
pub(crate) fn server_config() -> Arc<rustls::ServerConfig> {
    let c = certs();
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![c.cert.clone()],
            PrivateKeyDer::Pkcs8(c.key.clone_key()),
        )
        .expect("certificate and key");
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// The client's rustls configuration, trusting the CA.
pub(crate) fn client_config() -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots())
            .with_no_client_auth(),
    )
}

/// Pike's server settings for the same certificate.
pub(crate) fn pike_server() -> pike::tls::ServerTls {
    let c = certs();
    pike::tls::ServerTls::new(
        vec![c.cert.clone()],
        PrivateKeyDer::Pkcs8(c.key.clone_key()),
    )
    .expect("Pike server TLS")
}

/// Pike's client settings trusting the CA, checking `localhost`.
pub(crate) fn pike_client() -> pike::tls::ClientTls {
    pike::tls::ClientTls::new(roots())
        .with_server_name("localhost")
        .expect("a valid name")
}
