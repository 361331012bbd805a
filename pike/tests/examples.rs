//! Each example run as a process and talked to over a socket, as a person
//! would use it. (`cargo test` builds the examples next to the tests.)

mod util;

use std::io::Write;
use std::path::PathBuf;

use testkit::Proc;
use util::*;

/// Runs a cargo example of this crate, built (once per run, so never stale)
/// by the cargo that runs this test, into the same target directory. Built
/// for the whole workspace, as the README's test command builds: the same
/// feature set, so under `cargo test --workspace` this finds them built.
fn example(name: &str, args: &[&str]) -> Proc {
    static BUILT: std::sync::Once = std::sync::Once::new();
    // target/<profile>/deps/<test> -> target/<profile>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
    BUILT.call_once(|| {
        let target_dir = profile_dir.parent().unwrap();
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--examples",
                "--target-dir",
            ])
            .arg(target_dir)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the examples failed");
    });
    let path: PathBuf = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} not built at {}",
        path.display()
    );
    Proc::spawn(path, args)
}

fn port_of(p: &Proc) -> String {
    p.listening_addr().port().to_string()
}

#[test]
fn chat_server_and_clients() {
    let mut server = example("chat_server", &["--port", "0", "--server-nickname", "hub"]);
    let port = port_of(&server);
    let mut alice = example("chat_client", &["--host", "127.0.0.1", "--port", &port]);
    alice.type_line("alice");
    assert_eq!(alice.stdout_line(), "nickname: connected to hub");
    assert_eq!(server.stdout_line(), "alice joined");
    let mut bob = example("chat_client", &["--host", "127.0.0.1", "--port", &port]);
    bob.type_line("bob");
    assert_eq!(bob.stdout_line(), "nickname: connected to hub");
    assert_eq!(server.stdout_line(), "bob joined");
    assert_eq!(alice.stdout_line(), "bob joined");
    alice.type_line("hello bob");
    assert_eq!(server.stdout_line(), "alice says: hello bob");
    assert_eq!(bob.stdout_line(), "alice says: hello bob");
    server.type_line("welcome, both");
    assert_eq!(alice.stdout_line(), "hub says: welcome, both");
    assert_eq!(bob.stdout_line(), "hub says: welcome, both");
    bob.type_line("quit");
    assert_eq!(bob.wait(), 0);
    assert_eq!(server.stdout_line(), "bob left");
    assert_eq!(alice.stdout_line(), "bob left");
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
    assert_eq!(alice.stdout_line(), "the server closed the chat");
    assert_eq!(alice.wait(), 0);
}

#[test]
fn doubler_server_and_client() {
    let mut server = example("doubler_server", &["--port", "0", "--num-threads", "3"]);
    let port = port_of(&server);
    // A raw peer speaking the float wire format.
    let mut raw = raw_connect(format!("127.0.0.1:{port}").parse().unwrap());
    write_all(&mut raw, b"2.5 -1e+16 ");
    // Three workers take the two requests, so the answers may come back in
    // either order.
    let answers = read_exactly(&mut raw, 11);
    let mut answers: Vec<&[u8]> = answers.split_inclusive(|&b| b == b' ').collect();
    answers.sort();
    assert_eq!(answers, [&b"-2e+16 "[..], &b"5.0 "[..]]);
    let mut client = example("doubler_client", &["--host", "127.0.0.1", "--port", &port]);
    client.type_line("1.5");
    assert_eq!(client.stdout_line(), "3.0");
    client.type_line("oops");
    assert!(client.stderr_line_with("not a number").contains("oops"));
    client.type_line("0.1");
    assert_eq!(client.stdout_line(), "0.2");
    client.type_line("quit");
    assert_eq!(client.wait(), 0);
    drop(raw);
    server.close_stdin();
    assert_eq!(server.wait(), 0);
}

#[test]
fn filecopy_server_and_client() {
    let src = TempDir::new("filecopy-src");
    let dst = TempDir::new("filecopy-dst");
    let file = src.path().join("notes.txt");
    let mut f = std::fs::File::create(&file).unwrap();
    for i in 0..50_000 {
        writeln!(f, "line {i}").unwrap();
    }
    drop(f);
    let mut server = example(
        "filecopy_server",
        &["--port", "0", "--directory", dst.path().to_str().unwrap()],
    );
    let port = port_of(&server);
    for expected in ["notes.txt", "notes_(1).txt"] {
        let mut client = example(
            "filecopy_client",
            &[
                "--host",
                "127.0.0.1",
                "--port",
                &port,
                "--filename",
                file.to_str().unwrap(),
            ],
        );
        assert_eq!(client.wait(), 0, "{:?}", client.rest_of_stderr());
        let saved = PathBuf::from(server.stdout_line());
        assert_eq!(saved, dst.path().join(expected));
        assert_eq!(file_digest(&saved), file_digest(&file));
    }
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
}
