//! After `shutdown` returns, no thread of the connector is left running.
//! (A file of its own: it counts the threads of the whole test process.)
//! Linux only: it reads `/proc`.
#![cfg(target_os = "linux")]

mod util;

use pike::converters::StringConverter;
use pike::{Delivery, Event, ShutdownMode};
use util::*;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn shutdown_leaves_no_thread_running() {
    let before = threads();
    let server = listening(StringConverter::new());
    let client = client(StringConverter::new());
    // A name to resolve starts a helper thread too.
    let name = format!("localhost:{}", server.local_addr().unwrap().port());
    client.connect(name.as_str(), Delivery::Merged).unwrap();
    assert!(matches!(next(&server), Event::RemoteConnect(_)));
    assert!(matches!(next(&client), Event::FinishConnect(_)));
    assert!(threads() > before);
    client.shutdown(ShutdownMode::Now);
    server.shutdown(ShutdownMode::Now);
    // Every thread is joined by now; the kernel takes a thread's entry out
    // of /proc/self/task a moment after the join returns, so the count is
    // looked at until it is back, for at most WAIT.
    let deadline = std::time::Instant::now() + WAIT;
    while threads() != before && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(threads(), before);
}
