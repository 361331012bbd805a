//! TLS (feature `tls`): handshakes both ways, mutual TLS, each failure
//! with its reason, plaintext peers, byte-exact disconnects with
//! `close_notify`, and a peer that is not Pike (rustls on its own, and
//! Python's `ssl` module).
#![cfg(feature = "tls")]

mod util;

use std::io::{Read, Write};
use std::net::TcpListener;

use pike::converters::StringConverter;
use pike::error::ProtocolError;
use pike::{
    ConnectError, ConnectOptions, Connector, Delivery, DisconnectMode, DisconnectReason, Event,
    ShutdownMode, TlsErrorKind,
};
use util::*;

/// A spawned connector listening with the test server certificate.
fn tls_listening(net: Net) -> Connector<StringConverter> {
    Connector::builder(StringConverter::new())
        .listen_tls(net.address(), pki().server())
        .spawn()
        .unwrap()
}

/// Accepts the next connection and returns its first event after that,
/// skipping nothing.
fn accepted_then(c: &Connector<StringConverter>) -> Event<String> {
    let _ = accept(c, Delivery::Merged);
    next(c)
}

// TLS explicitly, over TCP and Unix sockets (`Net::Tls` would add nothing).
over_plain_transports! {
    fn messages_go_both_ways_over_tls(net: Net) {
        let server = tls_listening(net);
        let client = util::client(StringConverter::new());
        let addr = server.local_address().unwrap();
        let conn = client
            .connect_timeout(addr, ConnectOptions::new().tls(&pki().client()), WAIT).expect("handshake");
        client.send(&conn, "hello".to_owned()).unwrap();
        let at_server = accept(&server, Delivery::Merged);
        match next(&server) {
            Event::MessageReceived(m) => assert_eq!(m.message, "hello"),
            other => panic!("{other:?}"),
        }
        server.send(&at_server, "and back".to_owned()).unwrap();
        match next(&client) {
            Event::MessageReceived(m) => assert_eq!(m.message, "and back"),
            other => panic!("{other:?}"),
        }
        // A local FinishQueue disconnect reaches the peer as its end.
        client.disconnect(&conn, DisconnectMode::FinishQueue);
        assert!(matches!(next(&client), Event::FinishDisconnect(f) if f.queued.is_empty()));
        match next(&server) {
            Event::RemoteDisconnect(r) => {
                assert!(matches!(r.reason, DisconnectReason::PeerClosed), "{:?}", r.reason)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn connect_tls_reports_success_in_finish_connect_and_the_name_defaults_to_the_host() {
    let server = tls_listening(Net::Tcp);
    let client = util::client(StringConverter::new());
    let port = server.local_addr().unwrap().port();
    // No server name set: "localhost" of the address is checked.
    let tls = pike::tls::ClientTls::from_ca_file(&pki().ca).unwrap();
    let conn = client
        .connect(format!("localhost:{port}"), ConnectOptions::new().tls(&tls))
        .unwrap();
    client
        .send(&conn, "queued before the handshake".to_owned())
        .unwrap();
    match next(&client) {
        Event::FinishConnect(f) => assert!(f.reason.is_none(), "{:?}", f.reason),
        other => panic!("{other:?}"),
    }
    let _ = accept(&server, Delivery::Merged);
    match next(&server) {
        Event::MessageReceived(m) => assert_eq!(m.message, "queued before the handshake"),
        other => panic!("{other:?}"),
    }
    // An IP address is checked as one (the certificate names 127.0.0.1).
    let result = client.connect_timeout(
        server.local_addr().unwrap(),
        ConnectOptions::new().tls(&tls),
        WAIT,
    );
    result.expect("the certificate is valid for 127.0.0.1");
}

fn tls_kind(e: &ConnectError) -> TlsErrorKind {
    match e {
        ConnectError::Tls(t) => t.kind(),
        other => panic!("not a TLS failure: {other:?}"),
    }
}

fn reason_kind(r: &DisconnectReason) -> TlsErrorKind {
    match r {
        DisconnectReason::Tls(t) => t.kind(),
        other => panic!("not a TLS failure: {other:?}"),
    }
}

#[test]
fn an_untrusted_certificate_fails_the_connect_and_the_server_hears_why() {
    let p = pki();
    let server = Connector::builder(StringConverter::new())
        .listen_tls(
            "127.0.0.1:0",
            pike::tls::ServerTls::from_pem_files(&p.rogue_cert, &p.rogue_key).unwrap(),
        )
        .spawn()
        .unwrap();
    let client = util::client(StringConverter::new());
    let result = client.connect_timeout(
        server.local_addr().unwrap(),
        ConnectOptions::new().tls(&p.client()),
        WAIT,
    );
    let e = result.expect_err("an untrusted certificate");
    assert_eq!(tls_kind(&e), TlsErrorKind::UntrustedCertificate, "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    match accepted_then(&server) {
        Event::RemoteDisconnect(r) => {
            assert_eq!(
                reason_kind(&r.reason),
                TlsErrorKind::RefusedByPeer,
                "{}",
                r.reason
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_ca_certificate_as_the_servers_is_refused_with_what_to_do_instead() {
    // What `openssl req -x509` makes: a self-signed certificate marked a
    // CA, here the trusted CA's own.
    let tls = pike::tls::ServerTls::from_pem_files(&pki().ca, &pki().ca_key).unwrap();
    let server = Connector::builder(StringConverter::new())
        .listen_tls(tls_local_address(), tls)
        .spawn()
        .unwrap();
    let client = util::client(StringConverter::new());
    client
        .connect(
            server.local_addr().unwrap(),
            ConnectOptions::new().tls(&pki().client()),
        )
        .unwrap();
    match next(&client) {
        Event::FinishConnect(f) => {
            let e = f.reason.expect("refused");
            assert_eq!(tls_kind(&e), TlsErrorKind::UntrustedCertificate, "{e}");
            let said = e.to_string();
            assert!(
                said.contains("CA certificate") && said.contains("pike tls-cert"),
                "{said}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_name_mismatch_fails_the_connect() {
    let server = tls_listening(Net::Tcp);
    let client = util::client(StringConverter::new());
    let tls = pike::tls::ClientTls::from_ca_file(&pki().ca)
        .unwrap()
        .with_server_name("elsewhere.example")
        .unwrap();
    let result = client.connect_timeout(
        server.local_addr().unwrap(),
        ConnectOptions::new().tls(&tls),
        WAIT,
    );
    let e = result.expect_err("the certificate is not for elsewhere.example");
    assert_eq!(tls_kind(&e), TlsErrorKind::NameMismatch, "{e}");
}

#[test]
fn mutual_tls_takes_a_client_with_a_certificate_and_refuses_one_without() {
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server_mutual())
        .spawn()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let client = util::client(StringConverter::new());
    // With a certificate: messages go through.
    let conn = client
        .connect_timeout(
            addr,
            ConnectOptions::new().tls(&pki().client_with_cert()),
            WAIT,
        )
        .expect("mutual handshake");
    client.send(&conn, "signed".to_owned()).unwrap();
    let _ = accept(&server, Delivery::Merged);
    match next(&server) {
        Event::MessageReceived(m) => assert_eq!(m.message, "signed"),
        other => panic!("{other:?}"),
    }
    // Without one: the server refuses it. TLS 1.3 finishes the client's
    // side of the handshake first, so the client learns it as the end of
    // the connection, with the server's alert.
    let result = client.connect_timeout(addr, ConnectOptions::new().tls(&pki().client()), WAIT);
    let refused = |r: &DisconnectReason| reason_kind(r) == TlsErrorKind::NoClientCertificate;
    match result {
        Err(e) => assert_eq!(tls_kind(&e), TlsErrorKind::NoClientCertificate, "{e}"),
        Ok(_) => match next(&client) {
            Event::RemoteDisconnect(r) => assert!(refused(&r.reason), "{}", r.reason),
            other => panic!("{other:?}"),
        },
    }
    match accepted_then(&server) {
        Event::RemoteDisconnect(r) => assert!(refused(&r.reason), "{}", r.reason),
        other => panic!("{other:?}"),
    }
}

// A plaintext raw peer, over TCP and Unix sockets.
over_plain_transports! {
    fn a_plaintext_peer_is_refused_by_a_tls_listener(net: Net) {
        let server = tls_listening(net);
        let mut peer = raw_connect_to(&server);
        write_all(&mut peer, &wire(&["hello"]));
        match accepted_then(&server) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(reason_kind(&r.reason), TlsErrorKind::ProtocolMismatch, "{}", r.reason);
                assert!(r.incomplete.is_none() && r.queued.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}

// A plaintext Pike client, over TCP and Unix sockets.
over_plain_transports! {
    fn a_plaintext_client_of_a_tls_listener_hears_that_the_peer_speaks_tls(net: Net) {
        let server = tls_listening(net);
        let client = client_on(net, StringConverter::new());
        let conn = client
            .connect(server.local_address().unwrap(), Delivery::Merged)
            .unwrap();
        assert_eq!(connected(&client), conn);
        client.send(&conn, "hello".to_owned()).unwrap();
        // The server's TLS refuses the plaintext and says so in an alert;
        // the client reads the alert as what it is.
        match next(&client) {
            Event::RemoteDisconnect(r) => assert!(
                matches!(
                    r.reason,
                    DisconnectReason::Peer(pike::PeerFault::Protocol(ProtocolError::PeerSpeaksTls))
                ),
                "{}",
                r.reason
            ),
            other => panic!("{other:?}"),
        }
        match accepted_then(&server) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(reason_kind(&r.reason), TlsErrorKind::ProtocolMismatch, "{}", r.reason)
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_tls_client_is_refused_by_a_plaintext_listener() {
    let server = listening(StringConverter::new());
    let client = util::client(StringConverter::new());
    client
        .connect(
            server.local_addr().unwrap(),
            ConnectOptions::new().tls(&pki().client()),
        )
        .unwrap();
    // The server takes the connection and cannot read a TLS hello as a
    // length: it says the peer speaks TLS, and the client's handshake
    // fails.
    match accepted_then(&server) {
        Event::RemoteDisconnect(r) => {
            assert!(
                matches!(
                    r.reason,
                    DisconnectReason::Peer(pike::PeerFault::Protocol(ProtocolError::PeerSpeaksTls))
                ),
                "{}",
                r.reason
            )
        }
        other => panic!("{other:?}"),
    }
    match next(&client) {
        Event::FinishConnect(f) => {
            let e = f.reason.expect("not a TLS server");
            assert_eq!(tls_kind(&e), TlsErrorKind::ProtocolMismatch, "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_connector_listens_with_tls_and_connects_without() {
    let server = tls_listening(Net::Tcp);
    let plain = listening(StringConverter::new());
    // The TLS listener's connector opens a plaintext connection.
    let conn = server
        .connect_timeout(plain.local_addr().unwrap(), Delivery::Merged, WAIT)
        .unwrap();
    server.send(&conn, "in the clear".to_owned()).unwrap();
    let _ = accept(&plain, Delivery::Merged);
    match next(&plain) {
        Event::MessageReceived(m) => assert_eq!(m.message, "in the clear"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn finish_queue_sends_every_byte_then_close_notify_to_a_rustls_peer() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (tcp, _) = l.accept().unwrap();
        let mut peer = raw_tls_accept(tcp);
        let mut got = Vec::new();
        // `read_to_end` ends cleanly only at `close_notify`; a bare EOF is
        // an `UnexpectedEof` error.
        peer.read_to_end(&mut got).map(|_| got)
    });
    let client = util::client(StringConverter::new());
    let conn = client
        .connect(addr, ConnectOptions::new().tls(&pki().client()))
        .unwrap();
    match next(&client) {
        Event::FinishConnect(f) => assert!(f.reason.is_none(), "{:?}", f.reason),
        other => panic!("{other:?}"),
    }
    let messages: Vec<String> = (0..2_000)
        .map(|i| format!("{i}:{}", "x".repeat(i % 300)))
        .collect();
    for m in &messages {
        client.send(&conn, m.clone()).unwrap();
    }
    client.disconnect(&conn, DisconnectMode::FinishQueue);
    let got = peer.join().unwrap().expect("every byte, then close_notify");
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    assert_eq!(got, wire(&refs));
    assert!(matches!(next(&client), Event::FinishDisconnect(f) if f.queued.is_empty()));
}

#[test]
fn a_rustls_client_speaks_the_string_wire_format_with_a_pike_server() {
    let server = tls_listening(Net::Tcp);
    let mut peer = raw_tls_connect(server.local_addr().unwrap()).unwrap();
    peer.write_all(&wire(&["from rustls", "twice"])).unwrap();
    let conn = accept(&server, Delivery::Merged);
    for expected in ["from rustls", "twice"] {
        match next(&server) {
            Event::MessageReceived(m) => assert_eq!(m.message, expected),
            other => panic!("{other:?}"),
        }
    }
    server.send(&conn, "from pike".to_owned()).unwrap();
    server.disconnect(&conn, DisconnectMode::FinishQueue);
    let mut got = Vec::new();
    peer.read_to_end(&mut got)
        .expect("bytes, then close_notify");
    assert_eq!(got, wire(&["from pike"]));
}

/// Python's `ssl` module as the peer (a TLS stack that is neither Pike's
/// nor rustls's), speaking the string wire format by hand. `mode` is
/// `client PORT` or `server`; the script prints what it read.
const PYTHON_PEER: &str = r#"
import socket, ssl, sys
mode, ca, cert, key = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def read_all(s):
    # `suppress_ragged_eofs=False`: an end without close_notify raises.
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
if mode == "client":
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", int(sys.argv[5])), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    s.sendall(b"6 python3 ssl")
    print(read_all(s).decode(), flush=True)
else:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    l = socket.create_server(("127.0.0.1", 0))
    print(l.getsockname()[1], flush=True)
    l.settimeout(20)
    raw, _ = l.accept()
    raw.settimeout(20)
    s = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
    got = read_all(s)
    s.sendall(b"4 done")
    s.unwrap()
    print(got.decode(), flush=True)
"#;

fn python_peer(args: &[&str]) -> std::process::Child {
    let p = pki();
    std::process::Command::new("python3")
        .args(["-c", PYTHON_PEER])
        .args(args.iter().take(1))
        .args([&p.ca, &p.server_cert, &p.server_key])
        .args(args.iter().skip(1))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (the tests need it)")
}

#[test]
fn python_ssl_as_a_client_of_a_pike_server() {
    let server = tls_listening(Net::Tcp);
    let port = server.local_addr().unwrap().port().to_string();
    let python = python_peer(&["client", &port]);
    let conn = accept(&server, Delivery::Merged);
    match next(&server) {
        Event::MessageReceived(m) => assert_eq!(m.message, "python"),
        other => panic!("{other:?}"),
    }
    // " ssl" after the message is the start of a next one; a FinishQueue
    // disconnect ends with close_notify, which Python reads as a clean end.
    server.send(&conn, "from pike".to_owned()).unwrap();
    server.disconnect(&conn, DisconnectMode::FinishQueue);
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9 from pike");
}

#[test]
fn a_pike_client_of_a_python_ssl_server() {
    let mut python = python_peer(&["server"]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(python.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let client = util::client(StringConverter::new());
    let conn = client
        .connect_timeout(
            ("127.0.0.1", port),
            ConnectOptions::new().tls(&pki().client()),
            WAIT,
        )
        .expect("handshake with Python");
    client.send(&conn, "to python".to_owned()).unwrap();
    client.disconnect(&conn, DisconnectMode::FinishQueue);
    // Python reads to our close_notify (or fails), answers, and closes.
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "9 to python");
    assert!(matches!(next(&client), Event::FinishDisconnect(f) if f.queued.is_empty()));
}

#[test]
fn the_connect_timeout_covers_a_handshake_that_never_ends() {
    // A listener that accepts (the kernel does) and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Connector::builder(StringConverter::new())
        .connect_timeout(std::time::Duration::from_millis(300))
        .spawn()
        .unwrap();
    let result = client.connect_timeout(
        l.local_addr().unwrap(),
        ConnectOptions::new().tls(&pki().client()),
        WAIT,
    );
    assert!(matches!(result, Err(ConnectError::TimedOut)), "{result:?}");
}

#[test]
fn a_server_idle_timeout_closes_a_client_that_never_handshakes() {
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server())
        .idle_timeout(std::time::Duration::from_millis(300))
        .spawn()
        .unwrap();
    let _silent = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
    match accepted_then(&server) {
        Event::RemoteDisconnect(r) => {
            assert!(
                matches!(
                    r.reason,
                    DisconnectReason::Peer(pike::PeerFault::IdleTimeout(_))
                ),
                "{}",
                r.reason
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn alpn_protocols_must_match() {
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server().with_alpn(["pike/1"]).unwrap())
        .spawn()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let client = util::client(StringConverter::new());
    let result = client.connect_timeout(
        addr,
        ConnectOptions::new().tls(&pki().client().with_alpn(["pike/1"]).unwrap()),
        WAIT,
    );
    result.expect("a protocol in common");
    let result = client.connect_timeout(
        addr,
        ConnectOptions::new().tls(&pki().client().with_alpn(["other"]).unwrap()),
        WAIT,
    );
    let e = result.expect_err("no protocol in common");
    assert_eq!(tls_kind(&e), TlsErrorKind::RefusedByPeer, "{e}");
}

#[test]
fn settings_given_whole_are_not_changed_piecemeal() {
    let whole = pike::tls::ClientTls::from_config(pki().raw_client_config());
    let e = whole.with_alpn(["x"]).unwrap_err();
    assert!(e.to_string().contains("ClientTls::from_config"), "{e}");
    let whole = pike::tls::ServerTls::from_config(pki().raw_server_config());
    let e = whole.with_client_ca_file(&pki().ca).unwrap_err();
    assert!(e.to_string().contains("ServerTls::from_config"), "{e}");
}

#[test]
fn a_long_client_chain_is_refused_before_it_is_verified_and_a_short_one_is_verified() {
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server_mutual())
        .spawn()
        .unwrap();
    let addr = server.local_addr().unwrap();
    for (n, want) in [
        (40, TlsErrorKind::ChainTooLong),
        (4, TlsErrorKind::UntrustedCertificate),
    ] {
        let (chain, key) = hostile_chain(n, false);
        let (result, _) = raw_tls_connect_with(addr, chain, key);
        assert!(result.is_err(), "a chain of {n} was taken");
        match accepted_then(&server) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(reason_kind(&r.reason), want, "{n}: {}", r.reason)
            }
            other => panic!("{other:?}"),
        }
    }
    // The limit is the server's to set.
    let lenient = Connector::builder(StringConverter::new())
        .listen_tls(
            "127.0.0.1:0",
            pki().server_mutual().with_max_intermediates(64).unwrap(),
        )
        .spawn()
        .unwrap();
    let (chain, key) = hostile_chain(40, false);
    let (result, _) = raw_tls_connect_with(lenient.local_addr().unwrap(), chain, key);
    assert!(result.is_err());
    match accepted_then(&lenient) {
        Event::RemoteDisconnect(r) => assert_eq!(
            reason_kind(&r.reason),
            TlsErrorKind::UntrustedCertificate,
            "{}",
            r.reason
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_handshake_that_stalls_ends_at_the_handshake_timeout_on_either_side() {
    let quick = std::time::Duration::from_millis(300);
    // A client that connects and never says a word: no idle timeout set.
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server())
        .handshake_timeout(quick)
        .spawn()
        .unwrap();
    let _silent = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
    match accepted_then(&server) {
        Event::RemoteDisconnect(r) => {
            assert_eq!(
                reason_kind(&r.reason),
                TlsErrorKind::HandshakeTimedOut,
                "{}",
                r.reason
            )
        }
        other => panic!("{other:?}"),
    }
    // A server that accepts (the kernel does) and never answers: no
    // connect timeout set.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = Connector::builder(StringConverter::new())
        .handshake_timeout(quick)
        .spawn()
        .unwrap();
    let result = client.connect_timeout(
        l.local_addr().unwrap(),
        ConnectOptions::new().tls(&pki().client()),
        WAIT,
    );
    match result {
        Err(e) => assert_eq!(tls_kind(&e), TlsErrorKind::HandshakeTimedOut, "{e}"),
        Ok(_) => panic!("connected to a silent server"),
    }
}

/// TLS records of the handshake type carrying `total` bytes of a client
/// hello that never ends (its header claims 64 KiB).
fn endless_client_hello(total: usize) -> Vec<u8> {
    let mut body = vec![1u8, 0x00, 0xff, 0xff, 0x03, 0x03];
    body.resize(total, 0x41);
    let mut out = Vec::new();
    for chunk in body.chunks(16 * 1024) {
        out.extend_from_slice(&[22, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn a_handshake_larger_than_its_limit_is_refused() {
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server())
        .spawn()
        .unwrap();
    let mut peer = raw_connect(server.local_addr().unwrap());
    let _ = peer.write_all(&endless_client_hello(40 * 1024));
    match accepted_then(&server) {
        Event::RemoteDisconnect(r) => {
            assert_eq!(
                reason_kind(&r.reason),
                TlsErrorKind::HandshakeTooLarge,
                "{}",
                r.reason
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unfinished_handshakes_count_in_the_budget_and_stop_at_it() {
    const BUDGET: usize = 1 << 20;
    const PEERS: usize = 120;
    const EACH: usize = 30 * 1024;
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server())
        .memory_budget(BUDGET)
        .handshake_timeout(std::time::Duration::from_secs(3))
        .spawn()
        .unwrap();
    let addr = server.local_addr().unwrap();
    let hello = endless_client_hello(EACH);
    let peers: Vec<std::net::TcpStream> = (0..PEERS)
        .map(|_| {
            let mut s = raw_connect(addr);
            s.set_nonblocking(true).unwrap();
            let _ = s.write(&hello);
            s
        })
        .collect();
    for _ in 0..PEERS {
        let _ = accept(&server, Delivery::Merged);
    }
    // Held: counted, and bounded by the budget plus a small read each.
    let deadline = std::time::Instant::now() + WAIT;
    let mut held = server.memory_in_use();
    while held < BUDGET && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        held = server.memory_in_use();
    }
    assert!(held >= BUDGET, "unfinished handshakes not counted: {held}");
    let stall = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while std::time::Instant::now() < stall {
        let now = server.memory_in_use();
        assert!(
            now <= BUDGET + PEERS * 4096 + EACH,
            "{now} held by {PEERS} handshakes against a budget of {BUDGET}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Each ends at the handshake timeout, and everything is given back.
    for _ in 0..PEERS {
        match next(&server) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(
                    reason_kind(&r.reason),
                    TlsErrorKind::HandshakeTimedOut,
                    "{}",
                    r.reason
                )
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(server.memory_in_use(), 0);
    drop(peers);
}

#[test]
fn a_record_trickled_a_byte_at_a_time_hits_the_message_timeout() {
    let server = Connector::builder(StringConverter::new())
        .listen_tls("127.0.0.1:0", pki().server())
        .message_timeout(std::time::Duration::from_millis(500))
        .spawn()
        .unwrap();
    let mut peer = raw_tls_connect(server.local_addr().unwrap()).unwrap();
    let _ = accept(&server, Delivery::Merged);
    // A whole message first: it comes through.
    peer.write_all(&wire(&["whole"])).unwrap();
    peer.flush().unwrap();
    match next(&server) {
        Event::MessageReceived(m) => assert_eq!(m.message, "whole"),
        other => panic!("{other:?}"),
    }
    // Then one record, a byte every 100 ms: nothing of it decrypts before
    // its last byte, so only the bytes on the wire show it under way.
    peer.conn.writer().write_all(&wire(&["slow"])).unwrap();
    let mut record = Vec::new();
    while peer.conn.wants_write() {
        peer.conn.write_tls(&mut record).unwrap();
    }
    let started = std::time::Instant::now();
    let trickler = std::thread::spawn(move || {
        for byte in &record[..record.len() - 1] {
            if peer.sock.write_all(std::slice::from_ref(byte)).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        peer
    });
    match next(&server) {
        Event::RemoteDisconnect(r) => assert!(
            matches!(
                r.reason,
                DisconnectReason::Peer(pike::PeerFault::MessageTimeout(_))
            ),
            "{}",
            r.reason
        ),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    drop(trickler.join().unwrap());
}

#[test]
fn connect_options_choose_tls_per_connection_over_the_connectors_default() {
    let tls_server = tls_listening(Net::Tcp);
    let plain_server = listening(StringConverter::new());
    // TLS by default: the options say plaintext for one connection.
    let client = Connector::builder(StringConverter::new())
        .default_client_tls(pki().client())
        .spawn()
        .unwrap();
    let conn = client
        .connect_timeout(tls_server.local_addr().unwrap(), Delivery::Merged, WAIT)
        .expect("the default: TLS");
    client.send(&conn, "secret".to_owned()).unwrap();
    let plain = client
        .connect_timeout(
            plain_server.local_addr().unwrap(),
            ConnectOptions::new()
                .plaintext()
                .delivery(Delivery::Separate),
            WAIT,
        )
        .expect("plaintext, as asked");
    client.send(&plain, "in the clear".to_owned()).unwrap();
    for (server, expected) in [(&tls_server, "secret"), (&plain_server, "in the clear")] {
        let _ = accept(server, Delivery::Merged);
        match next(server) {
            Event::MessageReceived(m) => assert_eq!(m.message, expected),
            other => panic!("{other:?}"),
        }
    }
    // Separate, as the options said: the server's close comes to its own queue.
    plain_server.shutdown(ShutdownMode::Now);
    assert!(matches!(
        next_of(&client, &plain),
        Event::RemoteDisconnect(_)
    ));
}

#[test]
#[allow(deprecated)]
fn the_deprecated_tls_forms_still_work() {
    let server = tls_listening(Net::Tcp);
    let client = util::client(StringConverter::new());
    let addr = server.local_addr().unwrap();
    let (_, result) = client
        .connect_waiting_tls(addr, Delivery::Merged, WAIT, &pki().client())
        .unwrap();
    result.unwrap();
    client
        .connect_tls(addr, Delivery::Merged, &pki().client())
        .unwrap();
    assert!(matches!(next(&client), Event::FinishConnect(f) if f.success()));
    let builder = Connector::builder(StringConverter::new()).tls_connect(pki().client());
    let c = builder.spawn().unwrap();
    let result = c.connect_timeout(addr, Delivery::Merged, WAIT);
    result.unwrap();
}

#[test]
fn a_reconnecting_tls_client_gives_up_at_once_on_an_untrusted_certificate() {
    let p = pki();
    let server = Connector::builder(StringConverter::new())
        .listen_tls(
            "127.0.0.1:0",
            pike::tls::ServerTls::from_pem_files(&p.rogue_cert, &p.rogue_key).unwrap(),
        )
        .spawn()
        .unwrap();
    let client = util::client(StringConverter::new());
    let forever = pike::Reconnect::new().min(std::time::Duration::from_millis(5));
    let conn = client
        .connect(
            server.local_addr().unwrap(),
            ConnectOptions::new().tls(&p.client()).reconnect(forever),
        )
        .unwrap();
    match next(&client) {
        Event::FinishConnect(f) => {
            let e = f.reason.expect("refused");
            assert!(e.is_permanent(), "{e}");
            assert_eq!(tls_kind(&e), TlsErrorKind::UntrustedCertificate, "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.stats().connect_retries, 0);
    assert!(client.connection_stats(&conn).is_none(), "closed");
}

#[test]
fn a_reconnecting_tls_client_connects_once_its_server_is_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = util::client(StringConverter::new());
    let retry = pike::Reconnect::new()
        .min(std::time::Duration::from_millis(5))
        .max(std::time::Duration::from_millis(40));
    let conn = client
        .connect(
            ("127.0.0.1", port),
            ConnectOptions::new().tls(&pki().client()).reconnect(retry),
        )
        .unwrap();
    client
        .send(&conn, "over TLS, in the end".to_owned())
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while client.stats().connect_retries < 2 {
        assert!(std::time::Instant::now() < deadline, "no retry");
        std::thread::park_timeout(std::time::Duration::from_millis(1));
    }
    let server = Connector::builder(StringConverter::new())
        .listen_tls(("127.0.0.1", port), pki().server())
        .spawn()
        .unwrap();
    match next(&client) {
        Event::FinishConnect(f) => assert!(f.success(), "{:?}", f.reason),
        other => panic!("{other:?}"),
    }
    let _ = accept(&server, Delivery::Merged);
    match next(&server) {
        Event::MessageReceived(m) => assert_eq!(m.message, "over TLS, in the end"),
        other => panic!("{other:?}"),
    }
}
