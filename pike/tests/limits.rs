//! The connector's bounds and timeouts, each against a peer that breaks
//! it: the memory budget (a flood of small messages, many partly sent
//! large ones), the unsent queue (a peer that never reads), the idle,
//! message and connect timeouts, the connection limit. Each checks that
//! the connection ends with its own reason, or that memory stays bounded,
//! and that other connections are served meanwhile.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::error::SerializeError;
use pike::{
    ConnectError, Connection, Connector, Delivery, DisconnectMode, DisconnectReason, Event,
    RejectReason, ShutdownMode,
};
use util::*;

/// What one read may add past a bound: a read's worth of input held back
/// undecoded, plus the one message whose event crossed the bound.
const ONE_READ: usize = 256 * 1024 + 64 * 1024;

over_transports! {
    fn one_connection_stops_at_its_share(net: Net) {
        const SHARE: usize = 64 * 1024;
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .connection_share(SHARE)
            .spawn()
            .unwrap();
        let peer = raw_connect_to(&c);
        accept(&c, Delivery::Merged);
        let (written, writer) = flood(peer, wire(&["s"]).repeat(4096), 1024);
        let stalled_at = until_stalled(&written);
        assert!(stalled_at < 1024, "reading never paused");
        let held = c.memory_in_use();
        assert!(
            held <= SHARE + ONE_READ,
            "{held} held against a share of {SHARE}"
        );
        let got = take_messages(&c, stalled_at.max(1) * 4096);
        assert!(got.iter().all(|(_, m)| m == "s"));
        drop(writer);
    }
}

/// A thread that writes `chunk` to `s` over and over (up to `times`),
/// counting the writes, until the connection fails.
fn flood(
    mut s: RawPeer,
    chunk: Vec<u8>,
    times: usize,
) -> (Arc<AtomicUsize>, std::thread::JoinHandle<RawPeer>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let handle = std::thread::spawn(move || {
        for _ in 0..times {
            if s.write_all(&chunk).is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
        s
    });
    (written, handle)
}

/// A listening connector whose only bound on received data is a budget of
/// `bytes` (a connection's share is all of it).
fn held_to_budget(net: Net, bytes: usize) -> Connector<StringConverter> {
    builder_on(net, StringConverter::new())
        .listen_on(net)
        .memory_budget(bytes)
        .connection_share(bytes)
        .spawn()
        .unwrap()
}

/// Takes `n` messages of the main queue, accepting connections on the way.
fn take_messages(c: &Connector<StringConverter>, n: usize) -> Vec<(Connection, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        match next(c) {
            Event::MessageReceived(m) => got.push((m.connection, m.message)),
            Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
            other => panic!("{other:?}"),
        }
    }
    got
}

over_transports! {
    fn a_flood_of_small_messages_stays_within_the_budget_and_loses_nothing(net: Net) {
        const BUDGET: usize = 1 << 20;
        let c = held_to_budget(net, BUDGET);
        let peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        // 3 bytes a message on the wire, ~100 bytes an event: one 256 KiB read
        // would be 8 MiB of events if nothing stopped it mid-read.
        let chunk = wire(&["x"]).repeat(4096);
        let times = 1024; // 12 MiB: more than the sockets hold
        let (written, writer) = flood(peer, chunk, times);
        let stalled_at = until_stalled(&written);
        assert!(
            stalled_at < times,
            "reading never paused ({stalled_at} chunks written)"
        );
        let held = c.memory_in_use();
        assert!(
            held <= BUDGET + ONE_READ,
            "{held} bytes held against a budget of {BUDGET}"
        );
        assert!(held >= BUDGET / 2, "the budget was not used: {held}");
        // Taking events resumes reading; every message arrives.
        let got = take_messages(&c, times * 4096);
        assert!(got.iter().all(|(id, m)| *id == conn && m == "x"));
        drop(writer.join().unwrap());
        assert!(matches!(next(&c), Event::RemoteDisconnect(_)));
        assert_eq!(c.memory_in_use(), 0, "everything given back");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 12,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Peers with messages of any size, cut into any pieces, and an
    /// application that takes events in any rhythm: the memory held never
    /// passes the budget by more than one read's worth, and every message
    /// arrives.
    #[test]
    fn the_budget_holds_under_any_interleaving(
        budget in 16usize * 1024..512 * 1024,
        sizes in proptest::collection::vec(0usize..3000, 1..400),
        peers in 1usize..4,
        takes in proptest::collection::vec(1usize..300, 1..20),
    ) {
        let c = Connector::builder(StringConverter::new())
            .listen(any_local_address())
            .memory_budget(budget)
            .connection_share(budget / 2)
            .spawn()
            .unwrap();
        let addr = c.local_addr().unwrap();
        let mut writers = Vec::new();
        let texts: Vec<String> = sizes.iter().enumerate().map(|(i, &n)| format!("{i}:{}", "z".repeat(n))).collect();
        let total = texts.len() * peers;
        for _ in 0..peers {
            let mut s = raw_connect(addr);
            let wire = wire(&texts.iter().map(String::as_str).collect::<Vec<_>>());
            let cut = 1 + sizes[0] % 4096;
            writers.push(std::thread::spawn(move || {
                for piece in wire.chunks(cut) {
                    write_all(&mut s, piece);
                }
                s
            }));
        }
        let mut got = 0;
        let mut peak = 0;
        let mut rhythm = takes.iter().cycle();
        while got < total {
            peak = peak.max(c.memory_in_use());
            let mut batch = Vec::new();
            let want = *rhythm.next().unwrap();
            c.recv_batch(&mut batch, want, WAIT).unwrap();
            for event in batch {
                match event {
                    Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                    Event::MessageReceived(_) => got += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
        proptest::prop_assert!(peak <= budget + ONE_READ, "{} held, budget {}", peak, budget);
        for w in writers {
            drop(w.join().unwrap());
        }
    }
}

over_transports! {
    fn a_well_behaved_peer_is_served_while_a_flooder_holds_the_budget(net: Net) {
        const BUDGET: usize = 1 << 20;
        let c = held_to_budget(net, BUDGET);
        // The flooder's events go to a queue the application never reads.
        let flooder = raw_connect_to(&c);
        let flooder_conn = accept(&c, Delivery::Separate);
        let (written, _writer) = flood(flooder, wire(&["f"]).repeat(4096), 10_000);
        until_stalled(&written);
        assert!(c.memory_in_use() >= BUDGET / 2);
        // A newcomer is still heard, and answered.
        let mut good = raw_connect_to(&c);
        let good_conn = accept(&c, Delivery::Merged);
        for i in 0..20 {
            write_all(&mut good, &wire(&[&format!("ping {i}")]));
            match next(&c) {
                Event::MessageReceived(m) => {
                    assert_eq!((m.connection, m.message), (good_conn, format!("ping {i}")));
                    c.send(&good_conn, format!("pong {i}")).unwrap();
                }
                other => panic!("{other:?}"),
            }
            let reply = format!("pong {i}");
            let want = wire(&[&reply]);
            assert_eq!(read_exactly(&mut good, want.len()), want);
        }
        assert!(
            c.memory_in_use() <= BUDGET + ONE_READ,
            "{} held",
            c.memory_in_use()
        );
        c.shutdown(ShutdownMode::Now);
        let _ = flooder_conn;
    }
}

over_transports! {
    fn many_partly_sent_messages_stay_within_the_budget_and_all_complete(net: Net) {
        // Eight peers each announce a 200 KiB message and send most of it:
        // more than the budget in partial messages alone. Memory stays
        // bounded, and once they finish, every message arrives (one
        // connection at a time reads on, so the budget cannot deadlock).
        const BUDGET: usize = 1 << 20;
        const BODY: usize = 200 * 1024;
        let c = builder_on(net, StringConverter::new().with_max_message_size(BODY))
            .listen_on(net)
            .memory_budget(BUDGET)
            .spawn()
            .unwrap();
        let addr = c.local_address().unwrap();
        let mut peers = Vec::new();
        for i in 0..8u8 {
            let mut s = raw_connect_addr(&addr).unwrap();
            accept(&c, Delivery::Merged);
            let body = vec![b'a' + i; BODY];
            let mut bytes = format!("{BODY} ").into_bytes();
            bytes.extend_from_slice(&body);
            let first = bytes.len() * 3 / 4;
            s.write_all(&bytes[..first]).unwrap();
            peers.push((s, bytes[first..].to_vec()));
        }
        // The peers' sockets hold what is not read; wait until the connector
        // has read what it will.
        let deadline = Instant::now() + WAIT;
        let mut last = usize::MAX;
        loop {
            std::thread::park_timeout(Duration::from_millis(300));
            let now = c.memory_in_use();
            if now == last || Instant::now() > deadline {
                break;
            }
            last = now;
        }
        assert!(
            c.memory_in_use() <= BUDGET + ONE_READ,
            "{} held in partial messages",
            c.memory_in_use()
        );
        for (s, rest) in &mut peers {
            s.write_all(rest).unwrap();
        }
        let mut got: Vec<String> = take_messages(&c, 8).into_iter().map(|(_, m)| m).collect();
        got.sort();
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.len(), BODY);
            assert!(m.bytes().all(|b| b == b'a' + i as u8));
        }
    }
}

over_transports! {
    fn a_peer_that_never_reads_stops_being_read_and_the_queue_stays_bounded(net: Net) {
        const HIGH: usize = 64 * 1024;
        const CAP: usize = 256 * 1024;
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .send_high_water(HIGH)
            .send_queue_cap(CAP)
            .spawn()
            .unwrap();
        let greedy = raw_connect_to(&c);
        let greedy_conn = accept(&c, Delivery::Merged);
        // It sends requests and never reads a reply.
        let request = wire(&[&"r".repeat(100)]);
        let (written, _writer) = flood(greedy, request.repeat(100), 100_000);
        let replier = {
            let c = c.clone();
            std::thread::spawn(move || {
                let (mut replies, mut full) = (0usize, 0usize);
                while let Ok(event) = c.recv_timeout(Duration::from_secs(2)) {
                    match event {
                        Event::MessageReceived(m) => {
                            replies += 1;
                            c.send(&m.connection, m.message.repeat(10)).unwrap();
                        }
                        Event::RejectedMessage(r) if matches!(r.reason, RejectReason::QueueFull) => {
                            full += 1;
                        }
                        Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                        Event::RemoteDisconnect(_) => {}
                        other => panic!("{other:?}"),
                    }
                }
                (replies, full)
            })
        };
        let stalled_at = until_stalled(&written);
        assert!(
            stalled_at < 100_000,
            "reading from the greedy peer never paused"
        );
        let queued = c.queued(&greedy_conn).expect("still open");
        assert!(queued.bytes <= CAP, "{queued:?}");
        // Another peer is served meanwhile.
        let mut other = raw_connect_to(&c);
        write_all(&mut other, &wire(&["hi"]));
        let want = wire(&[&"hi".repeat(10)]);
        assert_eq!(read_exactly(&mut other, want.len()), want);
        drop(other);
        let (replies, _full) = replier.join().unwrap();
        assert!(replies > 0);
        assert!(c.memory_in_use() < 1 << 20);
    }
}

/// A client whose unsent queue's high-water mark is 64 KiB, connected to a
/// raw peer that reads only when the test does.
fn slow_peer(net: Net) -> (Connector<StringConverter>, Connection, RawPeer) {
    let (l, addr) = raw_listener_on(net);
    let c = builder_on(net, StringConverter::new())
        .send_high_water(64 * 1024)
        .spawn()
        .unwrap();
    let conn = c.connect(&addr, Delivery::Merged).unwrap();
    let peer = l.accept();
    connected(&c);
    (c, conn, peer)
}

over_transports! {
    fn try_send_and_send_timeout_hand_the_message_back_when_the_peer_is_slow(net: Net) {
        let (c, conn, mut peer) = slow_peer(net);
        let big = "b".repeat(32 * 1024);
        // Nobody reads: the queue fills past the mark once the sockets are
        // full. Until then the network thread drains it into them, so room
        // comes back; at last it does not.
        let mut sent = 0;
        let timeout = loop {
            let full = loop {
                match c.try_send(&conn, big.clone()) {
                    Ok(()) => sent += 1,
                    Err(e) => break e,
                }
            };
            assert!(full.is_full());
            assert_eq!(full.into_inner(), big);
            // (The network thread may drain the queue right after this
            // refusal while the sockets still take bytes: what it holds is
            // looked at once they are full, below.)
            let started = Instant::now();
            match c.send_timeout(&conn, big.clone(), Duration::from_millis(100)) {
                Ok(()) => sent += 1,
                Err(e) => {
                    assert!(started.elapsed() >= Duration::from_millis(100));
                    break e;
                }
            }
            assert!(sent < 10_000, "the queue never stayed full");
        };
        assert!(timeout.is_timeout());
        // The sockets are full and nobody reads: the queue stays above its
        // low-water mark (half the high-water mark), where it timed out.
        let q = c.queued(&conn).unwrap();
        assert!(q.bytes > 32 * 1024, "{q:?}");
        // The peer reads: a blocked sender goes on once the queue drains.
        let sender = {
            let (c, big) = (c.clone(), big.clone());
            std::thread::spawn(move || c.send_timeout(&conn, big, WAIT))
        };
        let mut reader = std::thread::spawn(move || {
            let mut n = 0;
            let mut buf = vec![0; 1 << 16];
            while let Ok(k) = peer.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k;
            }
            n
        });
        sender.join().unwrap().expect("room came");
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        match next(&c) {
            Event::FinishDisconnect(f) => assert!(f.queued.is_empty() && f.incomplete.is_none()),
            other => panic!("{other:?}"),
        }
        let header = format!("{} ", big.len()).len();
        let total = std::mem::replace(&mut reader, std::thread::spawn(|| 0))
            .join()
            .unwrap();
        assert_eq!(total, (sent + 1) * (header + big.len()));
    }
}

over_transports! {
    fn a_sender_waiting_for_room_is_released_by_a_disconnect(net: Net) {
        let (c, conn, _peer) = slow_peer(net); // never reads
        let big = "w".repeat(32 * 1024);
        // Fill until a sender has to wait (the sockets full, the queue past
        // its mark).
        while c
            .send_timeout(&conn, big.clone(), Duration::from_millis(100))
            .is_ok()
        {}
        let waiting = {
            let (c, big) = (c.clone(), big.clone());
            std::thread::spawn(move || c.send_timeout(&conn, big, WAIT))
        };
        // Nothing will drain the queue; a disconnect that waits to write it
        // all still lets the sender go (if the sender was not waiting yet, its
        // send finds the connection disconnecting; the outcome is the same).
        assert!(c.queued(&conn).is_some_and(|q| q.bytes > 32 * 1024));
        let started = Instant::now();
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        waiting
            .join()
            .unwrap()
            .expect("released, the message handed back by an event");
        assert!(started.elapsed() < WAIT);
        match next(&c) {
            Event::RejectedMessage(r) => {
                assert!(
                    matches!(r.reason, RejectReason::Disconnecting),
                    "{}",
                    r.reason
                );
                assert_eq!(r.message, big);
            }
            other => panic!("{other:?}"),
        }
        c.shutdown(ShutdownMode::Now);
    }
}

/// While `ends` is let go by a timeout, `busy` keeps sending whole
/// messages, every 50 ms, and is served: returns why `ends` ended, and
/// the messages of `ends` that came before.
fn busy_peer_served_until_the_other_ends(
    c: &Connector<StringConverter>,
    busy: &mut RawPeer,
    busy_conn: Connection,
    ends: Connection,
) -> (DisconnectReason, Vec<String>) {
    let mut served = 0;
    let mut before_the_end = Vec::new();
    loop {
        write_all(busy, &wire(&["busy"]));
        match next(c) {
            Event::MessageReceived(m) if m.connection == busy_conn => served += 1,
            Event::MessageReceived(m) if m.connection == ends => before_the_end.push(m.message),
            Event::RemoteDisconnect(r) if r.connection == ends => {
                assert!(served > 0, "the busy peer was not served meanwhile");
                return (r.reason, before_the_end);
            }
            other => panic!("{other:?}"),
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

over_transports! {
    fn an_idle_peer_is_disconnected_and_others_are_served(net: Net) {
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .idle_timeout(Duration::from_millis(300))
            .spawn()
            .unwrap();
        // Before the quiet peer exists, so before its idle clock can start
        // (over TLS it starts at the handshake, before `accept` returns).
        let started = Instant::now();
        let mut quiet = raw_connect_to(&c);
        let quiet_conn = accept(&c, Delivery::Merged);
        let mut chatty = raw_connect_to(&c);
        let chatty_conn = accept(&c, Delivery::Merged);
        let (reason, _) =
            busy_peer_served_until_the_other_ends(&c, &mut chatty, chatty_conn, quiet_conn);
        assert!(
            matches!(reason, DisconnectReason::Peer(pike::PeerFault::IdleTimeout(d)) if d == Duration::from_millis(300)),
            "{reason:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(
            quiet.read(&mut [0; 8]).unwrap_or(0),
            0,
            "the quiet peer sees the close"
        );
    }
}

over_transports! {
    fn a_trickled_message_hits_the_message_timeout(net: Net) {
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .message_timeout(Duration::from_millis(300))
            .spawn()
            .unwrap();
        let mut slow = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let mut brisk = raw_connect_to(&c);
        let brisk_conn = accept(&c, Delivery::Merged);
        write_all(&mut slow, b"2 ok100 a byte at a time");
        let (reason, before) = busy_peer_served_until_the_other_ends(&c, &mut brisk, brisk_conn, conn);
        assert!(
            matches!(reason, DisconnectReason::Peer(pike::PeerFault::MessageTimeout(_))),
            "{reason:?}"
        );
        assert_eq!(before, ["ok"]);
    }
}

#[test]
fn connect_gives_up_at_its_timeout() {
    // A listener whose backlog is full and that never accepts: the
    // kernel drops further connection requests, so connecting hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&any_local_address().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let _fill: Vec<TcpStream> = (0..4)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    let c = Connector::builder(StringConverter::new())
        .connect_timeout(Duration::from_millis(300))
        .spawn()
        .unwrap();
    let conn = c.connect(addr, Delivery::Merged).unwrap();
    c.send(&conn, "never sent".into()).unwrap();
    match next(&c) {
        Event::FinishConnect(f) => {
            assert!(
                matches!(f.reason, Some(ConnectError::TimedOut)),
                "{:?}",
                f.reason
            );
            assert_eq!(f.queued, ["never sent"]);
        }
        other => panic!("{other:?}"),
    }
    // connect_waiting reports its own error too.
    let result = c.connect_timeout(addr, Delivery::Merged, WAIT);
    assert!(matches!(result, Err(ConnectError::TimedOut)), "{result:?}");
}

over_transports! {
    fn connections_past_the_limit_are_closed_at_once(net: Net) {
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .max_connections(2)
            .spawn()
            .unwrap();
        let mut first = raw_connect_to(&c);
        let first_conn = accept(&c, Delivery::Merged);
        let _second = raw_connect_to(&c);
        accept(&c, Delivery::Merged);
        let mut third = raw_connect_to(&c);
        assert_eq!(third.read(&mut [0; 8]).unwrap_or(0), 0, "closed at once");
        // The others are served; once one leaves, a newcomer is taken.
        write_all(&mut first, &wire(&["still served"]));
        match next(&c) {
            Event::MessageReceived(m) => assert_eq!(m.connection, first_conn),
            other => panic!("{other:?}"),
        }
        first.shutdown(Shutdown::Both).unwrap();
        assert!(matches!(next(&c), Event::RemoteDisconnect(_)));
        let _fourth = raw_connect_to(&c);
        assert!(matches!(next(&c), Event::RemoteConnect(_)));
    }
}

over_transports! {
    fn shutdown_is_not_held_up_by_a_flood_of_sends_to_closed_connections(_net: Net) {
        let c = client(StringConverter::new());
        let gone = Connection::from_id(1_000_000);
        let n = 200_000;
        for i in 0..n {
            c.send(&gone, i.to_string()).unwrap();
        }
        c.shutdown(ShutdownMode::Now);
        // Each message still comes back exactly once.
        let mut back = 0;
        while let Ok(event) = c.recv() {
            match event {
                Event::RejectedMessage(r) => {
                    assert_eq!(r.message, back.to_string());
                    back += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, n);
    }
}

over_transports! {
    /// A shutdown that lets messages finish ends at its deadline even when
    /// a peer never reads them: what is left is handed back.
    fn a_shutdown_ends_at_its_deadline_with_what_is_left_handed_back(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = builder_on(net, StringConverter::new()).spawn().unwrap();
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let _peer = l.accept(); // never reads
        connected(&c);
        let big = "q".repeat(64 * 1024);
        const SENT: usize = 200; // 12.5 MiB: more than the sockets hold
        for _ in 0..SENT {
            c.send(&conn, big.clone()).unwrap();
        }
        let started = Instant::now();
        let whole = c.shutdown_timeout(ShutdownMode::FinishQueue, Duration::from_millis(300));
        assert!(!whole, "a peer that never reads cannot take it all");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(started.elapsed() < WAIT);
        let mut back = 0;
        while let Ok(event) = c.recv() {
            match event {
                Event::FinishDisconnect(f) => back += f.queued.len() + f.incomplete.iter().count(),
                Event::RejectedMessage(r) => {
                    assert!(matches!(r.reason, RejectReason::QueueFull));
                    back += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(back > 0 && back <= SENT, "{back} of {SENT} handed back");
    }
}

over_transports! {
    fn the_builders_shutdown_timeout_bounds_a_plain_shutdown(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = builder_on(net, StringConverter::new())
            .shutdown_timeout(Some(Duration::from_millis(200)))
            .spawn()
            .unwrap();
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let _peer = l.accept();
        connected(&c);
        for _ in 0..200 {
            c.send(&conn, "s".repeat(64 * 1024)).unwrap();
        }
        let started = Instant::now();
        c.shutdown(ShutdownMode::FinishQueue);
        assert!(started.elapsed() < WAIT);
        assert!(c.is_stopped());
        // A shutdown with nothing left to write finishes whole.
        let quiet = builder_on(net, StringConverter::new()).spawn().unwrap();
        assert!(quiet.shutdown_timeout(ShutdownMode::FinishQueue, WAIT));
    }
}

/// Numbered messages of about 1 KiB, so that an order kept can be seen.
fn numbered(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{i:06}{}", "n".repeat(1018)))
        .collect()
}

over_transports! {
    fn send_batch_blocking_goes_at_the_peers_pace_and_hands_nothing_back(net: Net) {
        let (c, conn, mut peer) = slow_peer(net);
        // 20 MB: far past the high-water mark and the sockets' buffers, so
        // the batch has to wait for the peer many times.
        let messages = numbered(20_000);
        let wire_len: usize = messages.iter().map(|m| wire(&[m]).len()).sum();
        let reader = std::thread::spawn(move || read_exactly(&mut peer, wire_len));
        c.send_batch_waiting_for_room(&conn, messages.clone())
            .expect("every message queued");
        let (got, rest) = decode_strings(&reader.join().unwrap());
        assert_eq!(rest, 0);
        assert!(got == messages, "every message, once, in order");
        assert_eq!(c.stats().handed_back.queue_full, 0, "nothing handed back");
        // The reader hung up once it had everything: that is the only
        // event, with nothing left unsent.
        match next(&c) {
            Event::RemoteDisconnect(r) => assert!(r.queued.is_empty() && r.incomplete.is_none()),
            other => panic!("nothing handed back: {other:?}"),
        }
    }
}

over_transports! {
    fn send_batch_timeout_hands_back_the_messages_it_could_not_queue(net: Net) {
        let (c, conn, mut peer) = slow_peer(net); // does not read until the end
        let messages = numbered(20_000);
        let started = Instant::now();
        let back = match c.send_batch_timeout(&conn, messages.clone(), Duration::from_millis(200)) {
            Err(pike::SendTimeoutError::Timeout(back)) => back,
            other => panic!("the sockets cannot take 20 MB: {other:?}"),
        };
        assert!(started.elapsed() >= Duration::from_millis(200));
        // What came back is the tail; the head is queued or written.
        let queued = messages.len() - back.len();
        assert!(queued > 0 && !back.is_empty(), "{queued} queued");
        assert!(back[..] == messages[queued..], "the tail, in order");
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        let (got, rest) = decode_strings(&read_to_eof(&mut peer));
        assert_eq!(rest, 0);
        assert!(got[..] == messages[..queued], "the head, once, in order");
        match next(&c) {
            Event::FinishDisconnect(f) => assert!(f.queued.is_empty() && f.incomplete.is_none()),
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn a_message_over_the_limit_is_handed_back_at_send_and_the_connection_goes_on(net: Net) {
        // The peer would refuse it by closing the connection (losing the
        // messages sent with it): `send` hands it back instead, with the
        // reason, and the messages around it arrive.
        const LIMIT: usize = 1000;
        let server = listening_on(net, StringConverter::new().with_max_message_size(LIMIT));
        let client = client_on(net, StringConverter::new().with_max_message_size(LIMIT));
        let conn = client
            .connect(server.local_address().unwrap(), Delivery::Merged)
            .unwrap();
        let peer = accept(&server, Delivery::Merged);
        assert_eq!(connected(&client), conn);
        let exact = "e".repeat(LIMIT);
        let over = "o".repeat(LIMIT + 1);
        client.send(&conn, "before".to_owned()).unwrap();
        client.send(&conn, over.clone()).unwrap();
        client.send(&conn, exact.clone()).unwrap();
        match next(&client) {
            Event::RejectedMessage(r) => {
                assert_eq!((r.connection, &r.message), (conn, &over));
                assert!(
                    matches!(
                        r.reason,
                        RejectReason::Serialize(SerializeError::TooLarge {
                            length: 1001,
                            limit: LIMIT
                        })
                    ),
                    "{}",
                    r.reason
                );
            }
            other => panic!("{other:?}"),
        }
        let got: Vec<String> = take_messages(&server, 2).into_iter().map(|(_, m)| m).collect();
        assert_eq!(got, ["before".to_owned(), exact]);
        // Still open both ways.
        server.send(&peer, "reply".to_owned()).unwrap();
        match next(&client) {
            Event::MessageReceived(m) => assert_eq!(m.message, "reply"),
            other => panic!("{other:?}"),
        }
        assert_eq!(client.stats().handed_back.serialize_failed, 1);
    }
}

over_transports! {
    fn the_deadline_forms_end_at_their_deadline(net: Net) {
        // send_batch_deadline: as send_batch_timeout, to an instant.
        let (c, conn, _peer) = slow_peer(net); // does not read
        let messages = numbered(20_000);
        let deadline = Instant::now() + Duration::from_millis(200);
        let back = match c.send_batch_deadline(&conn, messages.clone(), deadline) {
            Err(pike::SendTimeoutError::Timeout(back)) => back,
            other => panic!("the sockets cannot take 20 MB: {other:?}"),
        };
        assert!(Instant::now() >= deadline);
        assert!(!back.is_empty() && back[..] == messages[messages.len() - back.len()..]);
        // recv_batch_deadline: nothing by a deadline gone already.
        let mut events = Vec::new();
        assert_eq!(c.recv_batch_deadline(&mut events, 8, Instant::now()), Ok(0));
        // recv_connection_deadline: a separate connection's event, then
        // nothing by the deadline.
        let server = listening_on(net, StringConverter::new());
        let sep = c
            .connect(server.local_address().unwrap(), Delivery::Separate)
            .unwrap();
        match c.recv_connection_deadline(&sep, Instant::now() + WAIT) {
            Ok(Event::FinishConnect(f)) => assert!(f.success()),
            other => panic!("{other:?}"),
        }
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            c.recv_connection_deadline(&sep, soon).map(|_| ()),
            Err(pike::RecvTimeoutError::Timeout)
        );
        assert!(Instant::now() >= soon);
        c.shutdown(ShutdownMode::Now);
    }
}
