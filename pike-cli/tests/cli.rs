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
    pike.stderr_line_with("connected from");
    peer.write_all(b"5 hello9 hi, pike!").unwrap();
    assert_eq!(pike.stdout_line(), "hello");
    assert_eq!(pike.stdout_line(), "hi, pike!");
    pike.type_line("back at you");
    assert_eq!(read_exactly(&mut peer, 14), b"11 back at you");
    pike.close_stdin();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop(peer);
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
