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
                // The README's test command's features: the job queue
                // example needs `postcard`.
                "--features",
                "pike/postcard,pike/json,pike/msgpack,pike/metrics,pike/tls,pike/tls-webpki-roots",
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
    assert_eq!(alice.stdout_line(), "nickname: joined as alice");
    assert_eq!(server.stdout_line(), "alice joined");
    let mut bob = example("chat_client", &["--host", "127.0.0.1", "--port", &port]);
    // Taken names are refused, as the original server refuses them, and
    // the client asks again.
    bob.type_line("hub");
    assert_eq!(bob.stdout_line(), "nickname: nickname taken by server");
    bob.type_line("alice");
    assert_eq!(
        bob.stdout_line(),
        "nickname: nickname taken by another user"
    );
    bob.type_line("bob");
    assert_eq!(bob.stdout_line(), "nickname: joined as bob");
    assert_eq!(server.stdout_line(), "bob joined");
    alice.type_line("hello bob");
    assert_eq!(server.stdout_line(), "alice says: hello bob");
    assert_eq!(bob.stdout_line(), "alice says: hello bob");
    server.type_line("welcome, both");
    assert_eq!(alice.stdout_line(), "hub says: welcome, both");
    assert_eq!(bob.stdout_line(), "hub says: welcome, both");
    bob.type_line("quit");
    assert_eq!(bob.wait(), 0);
    assert_eq!(server.stdout_line(), "bob left");
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
    assert_eq!(alice.stdout_line(), "the server closed the chat");
    assert_eq!(alice.wait(), 0);
}

#[test]
fn chat_server_speaks_the_original_protocol_on_the_wire() {
    // A raw peer playing the original Python chat client.
    let mut server = example("chat_server", &["--port", "0", "--server-nickname", "hub"]);
    let port = port_of(&server);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut first = raw_connect(addr);
    write_all(&mut first, &wire(&["ann"]));
    assert_eq!(read_exactly(&mut first, 4), wire(&["ok"]));
    let mut second = raw_connect(addr);
    write_all(&mut second, &wire(&["ann"]));
    let taken = wire(&["nickname taken by another user"]);
    assert_eq!(read_exactly(&mut second, taken.len()), taken);
    write_all(&mut second, &wire(&["ben"]));
    assert_eq!(read_exactly(&mut second, 4), wire(&["ok"]));
    assert_eq!(server.stdout_line(), "ann joined");
    assert_eq!(server.stdout_line(), "ben joined");
    write_all(&mut first, &wire(&["hi"]));
    let relayed = wire(&["ann says: hi"]);
    assert_eq!(read_exactly(&mut second, relayed.len()), relayed);
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
}

/// A raw chat user that has joined as `nick`.
fn chat_user(addr: std::net::SocketAddr, nick: &str) -> std::net::TcpStream {
    let mut s = raw_connect(addr);
    write_all(&mut s, &wire(&[nick]));
    assert_eq!(read_exactly(&mut s, 4), wire(&["ok"]), "{nick} not taken");
    s
}

#[test]
fn chat_server_serves_thousands_of_silent_connections_without_a_thread_each() {
    let mut server = example("chat_server", &["--port", "0", "--server-nickname", "hub"]);
    let port = port_of(&server);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let threads_before = server.status_field("Threads");
    let silent: Vec<_> = (0..3000).map(|_| raw_connect(addr)).collect();
    // A real user still joins and talks meanwhile.
    let mut ann = chat_user(addr, "ann");
    let mut ben = chat_user(addr, "ben");
    write_all(&mut ann, &wire(&["still here"]));
    let relayed = wire(&["ann says: still here"]);
    assert_eq!(read_exactly(&mut ben, relayed.len()), relayed);
    let threads = server.status_field("Threads");
    assert!(
        threads <= threads_before + 4,
        "{threads} threads with 3,000 connections waiting ({threads_before} before)"
    );
    drop(silent);
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
}

#[test]
fn chat_server_refuses_bad_nicknames_and_lines_over_the_limit() {
    let mut server = example("chat_server", &["--port", "0", "--server-nickname", "hub"]);
    let port = port_of(&server);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut mallory = raw_connect(addr);
    let refused = wire(&["nickname refused: 1 to 32 characters, no control characters"]);
    for bad in [
        "n".repeat(1 << 20),
        "eve\nhub says: trust me".to_owned(),
        String::new(),
    ] {
        write_all(&mut mallory, &wire(&[&bad]));
        assert_eq!(
            read_exactly(&mut mallory, refused.len()),
            refused,
            "{:.40}",
            bad
        );
    }
    write_all(&mut mallory, &wire(&["mallory"]));
    assert_eq!(read_exactly(&mut mallory, 4), wire(&["ok"]));
    assert_eq!(server.stdout_line(), "mallory joined");
    // A real client, which enforces the 1 MiB limit on what it receives.
    let mut bob = example("chat_client", &["--host", "127.0.0.1", "--port", &port]);
    bob.type_line("bob");
    assert_eq!(bob.stdout_line(), "nickname: joined as bob");
    assert_eq!(server.stdout_line(), "bob joined");
    // A line of the whole limit is not relayed (with its prefix it would
    // pass the limit and throw every real client out); its sender is told.
    write_all(&mut mallory, &wire(&[&"l".repeat(1 << 20)]));
    let notice = wire(&["hub says: your line of 1048576 bytes was not relayed (at most 4096)"]);
    assert_eq!(read_exactly(&mut mallory, notice.len()), notice);
    // A line with a newline cannot forge one from the server.
    write_all(&mut mallory, &wire(&["hi\nhub says: fake"]));
    assert_eq!(bob.stdout_line(), "mallory says: hi\u{fffd}hub says: fake");
    // Bob is still in.
    bob.type_line("still here");
    let relayed = wire(&["bob says: still here"]);
    assert_eq!(read_exactly(&mut mallory, relayed.len()), relayed);
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
    assert_eq!(bob.stdout_line(), "the server closed the chat");
}

#[test]
fn chat_server_drops_users_who_never_read_and_quits_in_time() {
    let mut server = example("chat_server", &["--port", "0", "--server-nickname", "hub"]);
    let port = port_of(&server);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deaf: Vec<_> = (0..4)
        .map(|i| chat_user(addr, &format!("deaf{i}")))
        .collect();
    let mut talker = chat_user(addr, "talker");
    let line = "t".repeat(4000);
    // 25 MB of chat: far more than the sockets of the deaf users hold.
    let writer = std::thread::spawn(move || {
        for _ in 0..6000 {
            if talker.write_all(&wire(&[&line])).is_err() {
                break;
            }
        }
        talker
    });
    let mut dropped = 0;
    while dropped < 4 {
        let l = server.stdout_line();
        if l.ends_with("dropped: not reading (its queue is full)") {
            dropped += 1;
        }
    }
    let _talker = writer.join().unwrap();
    let peak_kib = server.status_field("VmHWM");
    assert!(peak_kib < 200 * 1024, "peak RSS {peak_kib} KiB");
    // A quit with users who never read ends within its wait.
    let started = std::time::Instant::now();
    server.type_line("quit");
    assert_eq!(server.wait(), 0);
    assert!(started.elapsed() < WAIT);
    drop(deaf);
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
fn doubler_over_a_unix_socket() {
    let path = unique_socket_path();
    let path = path.to_str().unwrap();
    let mut server = example("doubler_server", &["--unix", path, "--num-threads", "2"]);
    assert!(
        server
            .stderr_line_with("listening on ")
            .ends_with(&format!("unix:{path}"))
    );
    let mut client = example("doubler_client", &["--unix", path]);
    client.type_line("21");
    assert_eq!(client.stdout_line(), "42.0");
    client.type_line("quit");
    assert_eq!(client.wait(), 0);
    server.close_stdin();
    assert_eq!(server.wait(), 0);
    assert!(
        !std::path::Path::new(path).exists(),
        "the socket file is removed at shutdown"
    );
}

#[cfg(feature = "tls")]
#[test]
fn doubler_and_filecopy_over_tls() {
    let p = pki();
    let (cert, key, ca) = (
        p.server_cert.to_str().unwrap(),
        p.server_key.to_str().unwrap(),
        p.ca.to_str().unwrap(),
    );
    let tls_server = ["--tls-cert", cert, "--tls-key", key];
    let mut args = vec!["--port", "0", "--num-threads", "2"];
    args.extend(tls_server);
    let mut server = example("doubler_server", &args);
    let port = port_of(&server);
    let mut client = example(
        "doubler_client",
        &["--host", "localhost", "--port", &port, "--tls-ca", ca],
    );
    client.type_line("21");
    assert_eq!(client.stdout_line(), "42.0");
    client.type_line("quit");
    assert_eq!(client.wait(), 0);
    // A client that does not speak TLS gets no answer: it cannot connect.
    let mut plain = example("doubler_client", &["--host", "127.0.0.1", "--port", &port]);
    plain.type_line("1");
    assert_ne!(plain.wait(), 0);
    server.close_stdin();
    assert_eq!(server.wait(), 0);

    let dir = TempDir::new("tls-files");
    let src = dir.path().join("src.bin");
    generate_file(&src, 3 << 20, 7);
    let dst = dir.path().join("dst");
    let mut args = vec!["--port", "0", "--directory", dst.to_str().unwrap()];
    args.extend(tls_server);
    let mut server = example("filecopy_server", &args);
    let port = port_of(&server);
    let mut client = example(
        "filecopy_client",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--filename",
            src.to_str().unwrap(),
            "--tls-ca",
            ca,
            "--tls-server-name",
            "localhost",
        ],
    );
    assert_eq!(client.wait(), 0);
    assert!(server.stdout_line().ends_with("src.bin"));
    server.close_stdin();
    assert_eq!(server.wait(), 0);
    assert_eq!(file_digest(&dst.join("src.bin")), file_digest(&src));
}

#[test]
fn job_queue_survives_a_worker_killed_mid_job() {
    const JOBS: u64 = 20;
    let mut server = example("job_queue", &["serve", "0", &JOBS.to_string()]);
    let port = port_of(&server);
    // A worker that takes a minute per job: killed with two in hand.
    let slow = example("job_queue", &["work", &port, "60000"]);
    assert!(slow.stdout_line().starts_with("working on "));
    slow.signal("KILL");
    let mut fast = example("job_queue", &["work", &port, "0"]);
    let mut done = std::collections::BTreeMap::new();
    let mut redone = None;
    loop {
        let line = server.stdout_line();
        if let Some(rest) = line.strip_prefix("done ") {
            let id: u64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            *done.entry(id).or_insert(0) += 1;
        } else if line.contains(" left: ") {
            // "… left: N jobs back unsent, M to redo": the two in hand.
            let numbers: Vec<usize> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            let n = numbers.len();
            redone = Some(numbers[n - 2] + numbers[n - 1]);
        } else if line == format!("all {JOBS} jobs done") {
            break;
        }
    }
    assert_eq!(redone, Some(2), "the killed worker's two jobs went back");
    assert_eq!(done.len() as u64, JOBS);
    assert!(
        done.values().all(|&n| n == 1),
        "each job done once: {done:?}"
    );
    assert_eq!(server.wait(), 0);
    // The server's shutdown ends the worker.
    assert_eq!(fast.wait(), 0);
}

#[cfg(feature = "postcard")]
#[test]
fn job_queue_counts_only_results_for_jobs_it_handed_out() {
    use pike::converter::{Converter, WriteBuf};
    use pike::converters::serde::PostcardConverter;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Msg {
        Job {
            id: u64,
            name: String,
            payload: Vec<f64>,
        },
        Done {
            id: u64,
            sum: f64,
        },
    }

    const JOBS: u64 = 5;
    let mut server = example("job_queue", &["serve", "0", &JOBS.to_string()]);
    let port = port_of(&server);
    // A slow worker holds jobs 0 and 1.
    let slow = example("job_queue", &["work", &port, "60000"]);
    assert_eq!(slow.stdout_line(), "working on 0 (job-0)");
    // A worker (the liar) that gets jobs 2 and 3 and claims 0, 1 and 4 instead,
    // doing nothing.
    let liar = {
        let mut s = raw_connect(format!("127.0.0.1:{port}").parse().unwrap());
        let c = PostcardConverter::<Msg>::new();
        let mut out = Vec::new();
        for id in [0, 1, 4] {
            assert!(c.write_whole(
                &Msg::Done { id, sum: 0.0 },
                &mut WriteBuf::new(&mut out, 1 << 16)
            ));
        }
        write_all(&mut s, &out);
        s
    };
    let mut liar_id = None;
    for id in [0, 1, 4] {
        let l = server.stdout_line();
        let (who, what) = l.split_once(": ").unwrap_or_else(|| panic!("{l}"));
        assert_eq!(what, format!("done {id}, not a job it had; ignored"));
        assert!(liar_id.get_or_insert(who.to_owned()) == who, "{l}");
    }
    let liar_id = liar_id.expect("three lines");
    slow.signal("KILL");
    drop(liar);
    // A real worker does them all; nothing the liar said counted.
    let mut worker = example("job_queue", &["work", &port, "0"]);
    let mut done = 0;
    let mut worker_id = None;
    loop {
        let l = server.stdout_line();
        if l.starts_with("done ") {
            // "done <job> by <connection> (sum <sum>)": every job by the
            // real worker, none by the liar.
            let who = l.split(' ').nth(3).unwrap_or_else(|| panic!("{l}"));
            assert_ne!(who, liar_id, "{l}");
            assert!(worker_id.get_or_insert(who.to_owned()) == who, "{l}");
            done += 1;
        }
        if l == format!("all {JOBS} jobs done") {
            break;
        }
    }
    assert_eq!(done, JOBS);
    assert_eq!(server.wait(), 0);
    assert_eq!(worker.wait(), 0);
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

#[test]
fn filecopy_server_interrupted_mid_transfer_leaves_no_partial_file() {
    let dst = TempDir::new("filecopy-int");
    let mut server = example(
        "filecopy_server",
        &["--port", "0", "--directory", dst.path().to_str().unwrap()],
    );
    let port = port_of(&server);
    let mut peer = raw_connect(format!("127.0.0.1:{port}").parse().unwrap());
    write_all(&mut peer, b"7 big.bin8 10000000");
    write_all(&mut peer, &[5; 300_000]);
    let deadline = std::time::Instant::now() + WAIT;
    while dst.names().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no partial file appeared"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    server.signal("INT");
    assert_eq!(server.wait(), 0, "{:?}", server.rest_of_stderr());
    assert!(dst.names().is_empty(), "left behind: {:?}", dst.names());
}

#[test]
fn async_echo_runs_on_tokio() {
    let mut run = example("async_echo", &[]);
    for word in ["HELLO", "FROM", "ASYNC", "PIKE"] {
        assert_eq!(run.stdout_line(), word);
    }
    assert_eq!(run.wait(), 0, "{:?}", run.rest_of_stderr());
}
