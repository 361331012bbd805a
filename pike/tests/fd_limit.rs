//! Running out of file descriptors while accepting: the network thread backs
//! off instead of spinning, and accepts the waiting peers once descriptors
//! are free again. The connector runs in a child process (this same test
//! binary) under `prlimit`; the peers connect from this process.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::{Event, ShutdownMode};
use util::*;

const PEERS: usize = 100;

/// User + system CPU time of this process, in milliseconds, read from an
/// already open `/proc/self/stat` (no descriptor may be left to open it).
fn cpu_ms(stat: &mut std::fs::File) -> u64 {
    use std::io::{Read, Seek};
    stat.rewind().unwrap();
    let mut stat_text = String::new();
    stat.read_to_string(&mut stat_text).unwrap();
    let stat = stat_text;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10 // USER_HZ is 100 on Linux
}

#[test]
fn accept_backs_off_when_out_of_file_descriptors() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("prlimit not found: skipping");
        return;
    }
    let mut child = Command::new("prlimit")
        .arg("--nofile=48:48")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_under_fd_limit",
            "--ignored",
            "--nocapture",
        ])
        .env("PIKE_FD_LIMIT_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's lines arrive through a channel so that every wait for
    // them has a timeout; a hung child is killed and the test fails.
    let (tx, rx) = crossbeam_channel::unbounded();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = l.strip_prefix("CHILD ") {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let line = |child: &mut std::process::Child| match rx.recv_timeout(WAIT) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!("the child did not answer in time (a spinning network thread?)");
        }
    };
    let port: u16 = line(&mut child).parse().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let peers: Vec<_> = (0..PEERS).map(|_| raw_connect(addr)).collect();
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let result = line(&mut child);
    drop(peers);
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {result}");
    let (accepted, cpu) = result.split_once(' ').unwrap();
    assert_eq!(
        accepted.parse::<usize>().unwrap(),
        PEERS,
        "every peer accepted in the end"
    );
    let cpu: u64 = cpu.parse().unwrap();
    assert!(
        cpu < 300,
        "{cpu} ms of CPU in 1 s while out of descriptors: spinning"
    );
}

#[test]
#[ignore = "run by accept_backs_off_when_out_of_file_descriptors in a child process"]
fn child_under_fd_limit() {
    if std::env::var_os("PIKE_FD_LIMIT_CHILD").is_none() {
        return;
    }
    let mut stat = std::fs::File::open("/proc/self/stat").unwrap();
    let c = listening(StringConverter::new());
    println!("CHILD {}", c.local_addr().unwrap().port());
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    // The peers are connected; accepting them exhausts the descriptors.
    // Measure the CPU used meanwhile: a network thread spinning on a
    // listener that stays readable would use most of it.
    let before = cpu_ms(&mut stat);
    std::thread::park_timeout(Duration::from_secs(1));
    let cpu = cpu_ms(&mut stat) - before;
    // Reject each connection (freeing its descriptor) until all are seen.
    let deadline = Instant::now() + WAIT;
    let mut accepted = 0;
    while accepted < PEERS && Instant::now() < deadline {
        if let Ok(Event::RemoteConnect(r)) = c.recv_timeout(Duration::from_millis(100)) {
            r.reject();
            accepted += 1;
        }
    }
    c.shutdown(ShutdownMode::Now);
    println!("CHILD {accepted} {cpu}");
}
