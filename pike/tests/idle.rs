//! A quiet connector sleeps: with a thread blocked in `recv` (which runs
//! the loop itself), no thread of the connector wakes up over and over.
//! (A file of its own: it counts the context switches of the whole test
//! process.) Linux only: it reads `/proc`.
#![cfg(target_os = "linux")]

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::{Delivery, Event, ShutdownMode};
use util::*;

/// Context switches of every thread of this process so far.
fn context_switches() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status"));
        // A thread that ended meanwhile has no status left: skip it.
        for line in status.unwrap_or_default().lines() {
            if line.starts_with("voluntary_ctxt_switches")
                || line.starts_with("nonvoluntary_ctxt_switches")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn a_thread_blocked_in_recv_leaves_the_connector_asleep() {
    let server = listening(StringConverter::new());
    let mut peer = raw_connect(server.local_addr().unwrap());
    match next(&server) {
        Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
        other => panic!("expected a connection, got {other:?}"),
    }
    let receiver = {
        let server = server.clone();
        std::thread::spawn(move || server.recv_timeout(WAIT))
    };
    // Once the thread in `recv` has the loop, a quiet half second should
    // see (almost) no wake-ups; waking every 500 µs showed ~800 of them.
    // A noisy machine may add a few, so look for one quiet window.
    let deadline = Instant::now() + WAIT;
    let mut fewest = u64::MAX;
    while fewest > 10 {
        assert!(
            Instant::now() < deadline,
            "never quiet: at best {fewest} context switches in 500 ms"
        );
        let before = context_switches();
        std::thread::sleep(Duration::from_millis(500));
        fewest = fewest.min(context_switches() - before);
    }
    // And it still hears the peer at once.
    peer.write_all(b"5 hello").unwrap();
    match receiver.join().unwrap() {
        Ok(Event::MessageReceived(m)) => assert_eq!(m.message, "hello"),
        other => panic!("expected the message, got {other:?}"),
    }
    // The loop is back home: it reads while no thread waits in `recv`.
    peer.write_all(b"5 again").unwrap();
    match next(&server) {
        Event::MessageReceived(m) => assert_eq!(m.message, "again"),
        other => panic!("expected the message, got {other:?}"),
    }
    server.shutdown(ShutdownMode::Now);
}
