//! The `pike` binary as a person uses it: spawned as a process, talked to
//! over loopback sockets. Every wait has a timeout; children are killed on
//! drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use testkit::{Proc, WAIT};

/// Runs the `pike` binary.
fn run_pike(args: &[&str]) -> Proc {
    Proc::spawn(env!("CARGO_BIN_EXE_pike"), args)
}

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn listen_prints_messages_and_broadcasts_stdin() {
    let mut pike = run_pike(&["listen", "127.0.0.1:0"]);
    let addr = pike.listening_addr();
    let mut peer = raw(addr);
    let id = pike.stderr_line_with("connected from");
    let id = id.split_whitespace().next().unwrap().to_owned();
    peer.write_all(b"5 hello9 hi, pike!").unwrap();
    assert_eq!(pike.stdout_line(), format!("{id}: hello"));
    assert_eq!(pike.stdout_line(), format!("{id}: hi, pike!"));
    pike.type_line("back at you");
    assert_eq!(read_exactly(&mut peer, 14), b"11 back at you");
    // The end of stdin does not stop a listener: peers still come.
    pike.close_stdin();
    let mut late = raw(addr);
    pike.stderr_line_with("connected from");
    late.write_all(b"4 late").unwrap();
    assert!(pike.stdout_line().ends_with(": late"));
    // Ctrl-C does: every peer gets what was sent, then EOF.
    pike.signal("INT");
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(peer);
    drop(late);
    assert_eq!(pike.wait(), 0);
}

#[test]
fn listen_with_limits_and_quiet_ids() {
    let mut pike = run_pike(&[
        "listen",
        "127.0.0.1:0",
        "--quiet-ids",
        "--max-connections",
        "1",
        "--idle-timeout",
        "400ms",
        "--max-message-size",
        "8",
    ]);
    let addr = pike.listening_addr();
    let mut first = raw(addr);
    pike.stderr_line_with("connected from");
    first.write_all(b"2 hi").unwrap();
    assert_eq!(pike.stdout_line(), "hi");
    // A second peer is over the limit: closed at once.
    let mut second = raw(addr);
    let mut buf = [0; 8];
    assert_eq!(second.read(&mut buf).unwrap_or(0), 0);
    // Too large a message ends that peer's connection.
    first.write_all(b"9 123456789").unwrap();
    assert!(
        pike.stderr_line_with("disconnected")
            .contains("exceeds the limit")
    );
    // A quiet peer is let go after the idle timeout.
    let mut quiet = raw(addr);
    pike.stderr_line_with("connected from");
    assert!(
        pike.stderr_line_with("disconnected")
            .contains("idle timeout")
    );
    assert_eq!(quiet.read(&mut buf).unwrap_or(0), 0);
    pike.signal("TERM");
    assert_eq!(pike.wait(), 0);
}

#[test]
fn connect_sends_stdin_lines_and_prints_messages() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut pike = run_pike(&["connect", &addr]);
    let (mut peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    pike.stderr_line_with("connected to");
    pike.type_line("hello");
    assert_eq!(read_exactly(&mut peer, 7), b"5 hello");
    peer.write_all(b"3 abc").unwrap();
    assert_eq!(pike.stdout_line(), "abc");
    pike.type_line("bye");
    pike.close_stdin();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"3 bye");
    drop(peer);
    assert_eq!(pike.wait(), 0);
}

#[test]
fn connect_with_reconnect_waits_for_a_listener_started_later() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut client = run_pike(&[
        "connect",
        &addr,
        "--reconnect-min",
        "5ms",
        "--reconnect-max",
        "50ms",
    ]);
    client.stderr_line_with("trying again");
    client.type_line("typed before the server was up");
    let mut server = run_pike(&["listen", &addr, "--quiet-ids"]);
    client.stderr_line_with("connected to");
    assert_eq!(server.stdout_line(), "typed before the server was up");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    server.signal("INT");
    assert_eq!(server.wait(), 0);
}

#[test]
fn connect_with_reconnect_rides_out_a_listener_restart() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = run_pike(&["listen", &addr, "--quiet-ids"]);
    server.stderr_line_with("listening on");
    let mut client = run_pike(&["connect", &addr, "--reconnect-min", "5ms"]);
    client.stderr_line_with("connected to");
    client.type_line("to the first");
    assert_eq!(server.stdout_line(), "to the first");
    server.signal("INT");
    assert_eq!(server.wait(), 0);
    assert!(
        client
            .stderr_line_with("link lost")
            .contains("dialing again")
    );
    let mut server = run_pike(&["listen", &addr, "--quiet-ids"]);
    client.stderr_line_with("link back");
    client.type_line("to the second");
    assert_eq!(server.stdout_line(), "to the second");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    server.signal("INT");
    assert_eq!(server.wait(), 0);
}

#[test]
fn connect_with_a_give_up_limit_fails_in_one_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut client = run_pike(&[
        "connect",
        &addr,
        "--reconnect-min",
        "5ms",
        "--give-up-after",
        "100ms",
    ]);
    assert_ne!(client.wait(), 0);
    let said = client.rest_of_stderr();
    assert!(
        said.iter()
            .any(|l| l.starts_with("pike: error: cannot connect to")),
        "{said:?}"
    );
}

#[test]
fn connect_with_the_int_converter_skips_bad_lines() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut pike = run_pike(&["connect", &addr, "--converter", "int"]);
    let (mut peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    pike.type_line("x");
    assert!(pike.stderr_line_with("skipped").contains("not an integer"));
    pike.type_line("-42");
    assert_eq!(read_exactly(&mut peer, 4), b"-42 ");
    peer.write_all(b"7 ").unwrap();
    assert_eq!(pike.stdout_line(), "7");
}

#[test]
fn a_refused_connection_is_a_one_line_error() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut pike = run_pike(&["connect", &addr]);
    assert_eq!(pike.wait(), 1);
    let err = pike.rest_of_stderr();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("pike: error: cannot connect") && err[0].contains("refused"),
        "{err:?}"
    );
}

#[test]
fn an_address_in_use_is_a_one_line_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut pike = run_pike(&["listen", &addr]);
    assert_eq!(pike.wait(), 1);
    let err = pike.rest_of_stderr();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].contains("cannot listen") && err[0].contains("in use"),
        "{err:?}"
    );
}

#[test]
fn bad_arguments_exit_with_usage() {
    let mut pike = run_pike(&["connect"]);
    assert_eq!(pike.wait(), 2);
    let mut pike = run_pike(&["listen", "127.0.0.1:0", "--converter", "yaml"]);
    assert_eq!(pike.wait(), 2);
    let mut pike = run_pike(&["send-file", "127.0.0.1:1", "/no/such/file"]);
    assert_eq!(pike.wait(), 1);
    assert!(pike.rest_of_stderr()[0].contains("cannot read /no/such/file"));
}

#[test]
fn send_file_to_recv_files() {
    let base = std::env::temp_dir().join(format!("pike-cli-test-{}", std::process::id()));
    let (src, dst) = (base.join("src"), base.join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let a = src.join("a.txt");
    let b = src.join("b.bin");
    std::fs::write(&a, b"first file").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&b, &big).unwrap();

    let mut recv = run_pike(&[
        "recv-files",
        "127.0.0.1:0",
        "--dir",
        dst.to_str().unwrap(),
        "--count",
        "2",
    ]);
    let addr = recv.listening_addr().to_string();
    let mut send = run_pike(&["send-file", &addr, a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(send.wait(), 0, "{:?}", send.rest_of_stderr());
    let saved = [recv.stdout_line(), recv.stdout_line()];
    assert_eq!(recv.wait(), 0);
    assert_eq!(saved[0], dst.join("a.txt").to_str().unwrap());
    assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"first file");
    assert_eq!(std::fs::read(dst.join("b.bin")).unwrap(), big);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn recv_files_that_cannot_listen_creates_nothing() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("pike-cli-nodir-{}", std::process::id()));
    let mut pike = run_pike(&["recv-files", &addr, "--dir", dir.to_str().unwrap()]);
    assert_eq!(pike.wait(), 1);
    assert!(pike.rest_of_stderr()[0].contains("cannot listen"));
    assert!(!dir.exists(), "created {}", dir.display());
}

#[test]
fn recv_files_interrupted_mid_transfer_leaves_no_partial_file_and_cleans_old_ones() {
    let dir = std::env::temp_dir().join(format!("pike-cli-int-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // What a receiver killed earlier left behind (a pid that cannot run).
    std::fs::write(dir.join(".pike-part.4194305.0"), b"stale").unwrap();
    let mut pike = run_pike(&["recv-files", "127.0.0.1:0", "--dir", dir.to_str().unwrap()]);
    assert!(pike.stderr_line_with("removed").contains("1 partial"));
    let addr = pike.listening_addr();
    let mut peer = raw(addr);
    peer.write_all(b"7 big.bin8 10000000").unwrap();
    peer.write_all(&[5; 300_000]).unwrap();
    // Wait until the partial file exists, then press Ctrl-C.
    let deadline = std::time::Instant::now() + WAIT;
    let names = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    while names().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no partial file appeared"
        );
        std::thread::park_timeout(Duration::from_millis(20));
    }
    pike.signal("INT");
    assert_eq!(pike.wait(), 0, "{:?}", pike.rest_of_stderr());
    assert!(names().is_empty(), "left behind: {:?}", names());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn send_file_sends_a_file_whose_size_is_not_known_up_front() {
    let dir = std::env::temp_dir().join(format!("pike-cli-proc-{}", std::process::id()));
    let mut recv = run_pike(&[
        "recv-files",
        "127.0.0.1:0",
        "--dir",
        dir.to_str().unwrap(),
        "--count",
        "1",
    ]);
    let addr = recv.listening_addr().to_string();
    let mut send = run_pike(&["send-file", &addr, "/proc/version"]);
    assert_eq!(send.wait(), 0, "{:?}", send.rest_of_stderr());
    let saved = recv.stdout_line();
    assert_eq!(recv.wait(), 0);
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read("/proc/version").unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_without_enough_file_descriptors_says_so_in_one_line() {
    let pike_path = env!("CARGO_BIN_EXE_pike");
    let mut pike = Proc::spawn(
        "sh",
        &[
            "-c",
            &format!("ulimit -n 200 && exec {pike_path} bench --quick --connections 400"),
        ],
    );
    assert_eq!(pike.wait(), 1);
    let err = pike.rest_of_stderr();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].contains("ulimit -n") && err[0].contains("400 connections"),
        "{err:?}"
    );
}

#[test]
fn bench_prints_a_table() {
    let mut pike = run_pike(&["bench", "--quick", "--connections", "20"]);
    let mut out = Vec::new();
    while let Ok(l) = pike.stdout.recv_timeout(Duration::from_secs(120)) {
        out.push(l);
    }
    assert_eq!(pike.wait(), 0, "{:?}", pike.rest_of_stderr());
    let text = out.join("\n");
    for needle in [
        "throughput, 16 B",
        "throughput, 256 B",
        "throughput, 64 KiB",
        "20 connections",
        "round trip, 16 B",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn listen_and_connect_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("pike-cli-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let addr = format!("unix:{}", path.display());
    let mut server = run_pike(&["listen", &addr, "--quiet-ids"]);
    assert_eq!(
        server.stderr_line_with("listening on "),
        format!("listening on {addr}")
    );
    let mut client = run_pike(&["connect", &addr]);
    client.stderr_line_with("connected to");
    client.type_line("over unix");
    assert_eq!(server.stdout_line(), "over unix");
    server.stderr_line_with("connected from");
    server.type_line("and back");
    assert_eq!(client.stdout_line(), "and back");
    client.close_stdin();
    assert_eq!(client.wait(), 0);
    server.signal("INT");
    assert_eq!(server.wait(), 0);
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[test]
fn listen_with_stats_prints_the_numbers_each_second() {
    let mut pike = run_pike(&["listen", "127.0.0.1:0", "--stats"]);
    let addr = pike.listening_addr();
    let mut peer = raw(addr);
    pike.stderr_line_with("connected from");
    peer.write_all(b"5 hello").unwrap();
    assert!(pike.stdout_line().ends_with(": hello"));
    // Within a few seconds a line shows the message and its 7 bytes.
    let line = loop {
        let line = pike.stderr_line_with("stats: ");
        if line.contains("in 1 msgs 7 B") {
            break line;
        }
    };
    assert!(line.contains("open 1 accepted 1"), "{line}");
    pike.signal("INT");
    drop(peer);
    assert_eq!(pike.wait(), 0);
}

/// `pike listen` on a Unix socket with 8 MiB of stdin lines queued for a
/// peer that never reads, stopped by `signals`; returns the exit status
/// and how long the stop took.
fn stop_with_a_peer_that_never_reads(
    stop_timeout: &str,
    signals: &[&str],
) -> (i32, std::time::Duration) {
    let path = std::env::temp_dir().join(format!(
        "pike-cli-stop-{}-{}.sock",
        std::process::id(),
        signals.len()
    ));
    let _ = std::fs::remove_file(&path);
    let addr = format!("unix:{}", path.display());
    let mut pike = run_pike(&["listen", &addr, "--stop-timeout", stop_timeout]);
    pike.stderr_line_with("listening on");
    let mut peer = std::os::unix::net::UnixStream::connect(&path).unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    pike.stderr_line_with("connected from");
    // One line read, so that the peer is known to be on the list; then it
    // reads no more.
    pike.type_line("hello");
    let mut first = [0u8; 7];
    peer.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"5 hello");
    let line = "x".repeat(10_000);
    for _ in 0..800 {
        pike.type_line(&line);
    }
    let started = std::time::Instant::now();
    for s in signals {
        pike.signal(s);
        // Each signal is seen before the next is sent (two at once could
        // arrive as one).
        pike.stderr_line_with("stopping");
    }
    let status = pike.wait();
    (status, started.elapsed())
}

#[test]
fn a_stop_ends_within_its_timeout_though_a_peer_never_reads() {
    let (status, took) = stop_with_a_peer_that_never_reads("1s", &["TERM"]);
    assert_eq!(status, 0);
    assert!(
        took >= Duration::from_millis(900),
        "{took:?}: it did not wait"
    );
    assert!(took < WAIT);
}

#[test]
fn a_second_signal_stops_at_once_with_status_130() {
    let (status, took) = stop_with_a_peer_that_never_reads("10m", &["TERM", "TERM"]);
    assert_eq!(status, 130);
    assert!(took < WAIT);
}
