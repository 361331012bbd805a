//! The `pike` binary over TLS: listen and connect, mutual TLS, files, and
//! one-line errors for certificates that cannot be used. Certificates are
//! made here (no key is committed).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use testkit::Proc;

fn run_pike(args: &[&str]) -> Proc {
    Proc::spawn(env!("CARGO_BIN_EXE_pike"), args)
}

/// PEM files in a directory of their own, removed at the end.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// A CA, a server certificate for localhost/127.0.0.1 and a client
    /// certificate signed by it; a second CA and a certificate of it.
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pike-cli-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            (params.self_signed(&key).unwrap(), key)
        };
        let leaf = |ca: &(rcgen::Certificate, KeyPair), names: &[&str]| {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca.0, &ca.1)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let trusted = ca("test CA");
        let rogue = ca("rogue CA");
        write("ca.pem", &trusted.0.pem());
        let (cert, key) = leaf(&trusted, &["localhost", "127.0.0.1"]);
        write("server.pem", &cert);
        write("server.key", &key);
        let (cert, key) = leaf(&trusted, &["client.test"]);
        write("client.pem", &cert);
        write("client.key", &key);
        let (cert, key) = leaf(&rogue, &["localhost", "127.0.0.1"]);
        write("rogue.pem", &cert);
        write("rogue.key", &key);
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn listen_and_connect_over_tls_with_and_without_a_client_certificate() {
    let c = Certs::new("lc");
    let mut server = run_pike(&[
        "listen",
        "127.0.0.1:0",
        "--quiet-ids",
        "--tls-cert",
        &c.path("server.pem"),
        "--tls-key",
        &c.path("server.key"),
    ]);
    let addr = server.listening_addr().to_string();
    let mut client = run_pike(&["connect", &addr, "--tls-ca", &c.path("ca.pem")]);
    client.stderr_line_with("connected to");
    client.type_line("encrypted");
    assert_eq!(server.stdout_line(), "encrypted");
    server.stderr_line_with("connected from");
    server.type_line("and back");
    assert_eq!(client.stdout_line(), "and back");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    server.signal("INT");
    assert_eq!(server.wait(), 0);

    // Mutual TLS: a client certificate of the CA is required.
    let mut server = run_pike(&[
        "listen",
        "127.0.0.1:0",
        "--quiet-ids",
        "--tls-cert",
        &c.path("server.pem"),
        "--tls-key",
        &c.path("server.key"),
        "--tls-client-ca",
        &c.path("ca.pem"),
    ]);
    let addr = server.listening_addr().to_string();
    let mut client = run_pike(&[
        "connect",
        &addr,
        "--tls-ca",
        &c.path("ca.pem"),
        "--tls-cert",
        &c.path("client.pem"),
        "--tls-key",
        &c.path("client.key"),
        "--tls-server-name",
        "localhost",
    ]);
    client.stderr_line_with("connected to");
    client.type_line("signed");
    assert_eq!(server.stdout_line(), "signed");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    // Without one, the server refuses the handshake and says why.
    let mut client = run_pike(&["connect", &addr, "--tls-ca", &c.path("ca.pem")]);
    client.close_stdin();
    client.wait();
    // (Its id is not the first client's; which it is, is the server's
    // business: the first one's place may be reused.)
    let why = loop {
        let l = server.stderr_line_with(" disconnected");
        if l.contains("TLS") {
            break l;
        }
    };
    assert!(why.contains("certificate"), "{why}");
    server.signal("INT");
    assert_eq!(server.wait(), 0);
}

#[test]
fn an_untrusted_server_is_a_one_line_error() {
    let c = Certs::new("untrusted");
    let mut server = run_pike(&[
        "listen",
        "127.0.0.1:0",
        "--tls-cert",
        &c.path("rogue.pem"),
        "--tls-key",
        &c.path("rogue.key"),
    ]);
    let addr = server.listening_addr().to_string();
    let mut client = run_pike(&["connect", &addr, "--tls-ca", &c.path("ca.pem")]);
    assert_eq!(client.wait(), 1);
    let err = client.rest_of_stderr();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("pike: error: cannot connect") && err[0].contains("UnknownIssuer"),
        "{err:?}"
    );
    server.signal("INT");
    server.wait();
}

/// Runs `pike` with `args`, expects exit status 1 and one line on stderr
/// containing every one of `needles`.
fn one_line_error(args: &[&str], needles: &[&str]) {
    let mut pike = run_pike(args);
    assert_eq!(pike.wait(), 1, "{args:?}");
    let err = pike.rest_of_stderr();
    assert_eq!(err.len(), 1, "{err:?}");
    for n in needles {
        assert!(err[0].contains(n), "{n:?} missing: {err:?}");
    }
}

#[test]
fn unusable_certificate_files_are_one_line_errors() {
    let c = Certs::new("errors");
    let missing = c.path("missing.pem");
    one_line_error(
        &[
            "listen",
            "127.0.0.1:0",
            "--tls-cert",
            &missing,
            "--tls-key",
            &c.path("server.key"),
        ],
        &["cannot read certificate file", &missing],
    );
    // The key of another certificate.
    one_line_error(
        &[
            "listen",
            "127.0.0.1:0",
            "--tls-cert",
            &c.path("server.pem"),
            "--tls-key",
            &c.path("client.key"),
        ],
        &["certificate and key"],
    );
    // A key where the certificate should be.
    one_line_error(
        &["connect", "127.0.0.1:1", "--tls-ca", &c.path("server.key")],
        &["no certificate", "server.key"],
    );
    one_line_error(
        &[
            "recv-files",
            "127.0.0.1:0",
            "--dir",
            &c.path("d"),
            "--tls-cert",
            &c.path("ca.pem"),
            "--tls-key",
            &c.path("ca.pem"),
        ],
        &["no private key", "ca.pem"],
    );
    assert!(!Path::new(&c.path("d")).exists());
    // --tls-key without --tls-cert is a usage error.
    let mut pike = run_pike(&["listen", "127.0.0.1:0", "--tls-key", &c.path("server.key")]);
    assert_eq!(pike.wait(), 2);
}

#[test]
fn send_file_to_recv_files_over_tls() {
    let c = Certs::new("files");
    let (src, dst) = (c.dir.join("src"), c.dir.join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("data.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let mut recv = run_pike(&[
        "recv-files",
        "127.0.0.1:0",
        "--dir",
        dst.to_str().unwrap(),
        "--count",
        "1",
        "--tls-cert",
        &c.path("server.pem"),
        "--tls-key",
        &c.path("server.key"),
    ]);
    let addr = recv.listening_addr().to_string();
    let mut send = run_pike(&[
        "send-file",
        &addr,
        file.to_str().unwrap(),
        "--tls-ca",
        &c.path("ca.pem"),
    ]);
    assert_eq!(send.wait(), 0, "{:?}", send.rest_of_stderr());
    assert_eq!(recv.stdout_line(), dst.join("data.bin").to_str().unwrap());
    assert_eq!(recv.wait(), 0);
    assert_eq!(std::fs::read(dst.join("data.bin")).unwrap(), data);
}

#[test]
fn a_stop_ends_though_a_peer_never_finishes_its_handshake() {
    let c = Certs::new("stuck");
    let mut server = run_pike(&[
        "listen",
        "127.0.0.1:0",
        "--stop-timeout",
        "1s",
        "--tls-cert",
        &c.path("server.pem"),
        "--tls-key",
        &c.path("server.key"),
    ]);
    let addr = server.listening_addr();
    // Connected, and never a ClientHello: a line for it waits behind the
    // handshake.
    let _stuck = std::net::TcpStream::connect(addr).unwrap();
    server.stderr_line_with("connected from");
    server.type_line("queued for a peer that never handshakes");
    let started = std::time::Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait(), 0);
    assert!(started.elapsed() < testkit::WAIT);
}

#[test]
fn tls_cert_writes_a_ca_and_certificates_that_listen_and_connect_take() {
    let dir = std::env::temp_dir().join(format!("pike-cli-tls-cert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap().to_owned();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let mut made = run_pike(&["tls-cert", "--dir", &d, "--client", "me.test"]);
    assert!(made.stdout_line().starts_with("wrote "));
    assert_eq!(made.wait(), 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "server.key", "client.key"] {
            let mode = std::fs::metadata(path(key)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
        }
    }
    // It does not overwrite what is there, unless told to.
    let mut again = run_pike(&["tls-cert", "--dir", &d]);
    assert_ne!(again.wait(), 0);
    assert!(again.rest_of_stderr().iter().any(|l| l.contains("--force")));

    // Mutual TLS to 127.0.0.1, one of the default names.
    let mut server = run_pike(&[
        "listen",
        "127.0.0.1:0",
        "--quiet-ids",
        "--tls-cert",
        &path("server.pem"),
        "--tls-key",
        &path("server.key"),
        "--tls-client-ca",
        &path("ca.pem"),
    ]);
    let addr = server.listening_addr().to_string();
    let mut client = run_pike(&[
        "connect",
        &addr,
        "--tls-ca",
        &path("ca.pem"),
        "--tls-cert",
        &path("client.pem"),
        "--tls-key",
        &path("client.key"),
    ]);
    client.stderr_line_with("connected to");
    client.type_line("made here");
    assert_eq!(server.stdout_line(), "made here");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    server.signal("INT");
    assert_eq!(server.wait(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
