//! The file converter's thread pool, counted: alone in its test binary, so
//! that no other test's pool threads are in the count.

mod util;

use std::time::Duration;

use pike::converters::FileConverter;
use pike::error::{DisconnectReason, ProtocolError};
use pike::{Delivery, Event, RecvTimeoutError};
use util::*;

/// The threads of this process whose name starts with `prefix`.
#[cfg(target_os = "linux")]
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
#[cfg(target_os = "linux")]
fn stalled_uploads_hold_slots_not_threads_and_the_rest_wait_their_turn() {
    let dst = TempDir::new("stalled");
    let rx = listening(FileConverter::new(dst.path()).with_pool(2, 4));
    let addr = rx.local_addr().unwrap();
    // Twelve uploads start and stall: four hold the transfer slots, the
    // rest wait for one, and two threads serve them all.
    let mut stalled = Vec::new();
    for i in 0..12 {
        let mut peer = raw_connect(addr);
        accept(&rx, Delivery::Merged);
        let name = format!("stalled{i:02}.bin");
        write_all(&mut peer, format!("{} {name}4 1000", name.len()).as_bytes());
        write_all(&mut peer, &[1; 10]);
        stalled.push(peer);
    }
    // One more, complete: it must wait for a slot.
    let mut late = raw_connect(addr);
    accept(&rx, Delivery::Merged);
    write_all(&mut late, b"8 late.bin1 5hello");
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(RecvTimeoutError::Timeout)
    ));
    assert!(
        threads_named("pike-file-io") <= 2,
        "one thread per transfer?"
    );
    // The stalled peers give up: their partial files go, and the late one
    // gets its turn.
    stalled.clear();
    let mut saved = None;
    while saved.is_none() {
        match next(&rx) {
            Event::RemoteDisconnect(r) => assert!(
                matches!(
                    r.reason,
                    DisconnectReason::Peer(pike::PeerFault::Protocol(ProtocolError::UnexpectedEof))
                ),
                "{:?}",
                r.reason
            ),
            Event::MessageReceived(m) => saved = Some(m.message),
            other => panic!("{other:?}"),
        }
    }
    let saved = saved.unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), b"hello");
    // Eventually only the late file is left (the stalled ones still
    // closing are removed as their end is reported).
    for _ in 0..12 - stalled.len() {
        if dst.names() == ["late.bin"] {
            break;
        }
        let _ = rx.recv_timeout(Duration::from_millis(500));
    }
    assert_eq!(dst.names(), ["late.bin"]);
}
