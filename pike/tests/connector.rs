//! The connector over real loopback sockets; a plain `TcpStream` plays the
//! peer. The first part ports every test of the Python original's
//! `tornado_connector_test.py`, including those it skipped or left empty.

mod util;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::error::{ConnectError, DisconnectReason, ProtocolError, RejectReason};
use pike::{Connector, Delivery, DisconnectMode, Event, RecvTimeoutError, ShutdownMode};
use util::*;

fn s(x: &str) -> String {
    x.to_owned()
}

// ----- ported from the original suite -------------------------------------------

#[test]
fn not_listening_refuses_a_raw_connect() {
    let c = client(StringConverter::new());
    assert_eq!(c.local_addr(), None);
    let addr = dead_address();
    assert!(TcpStream::connect_timeout(&addr, WAIT).is_err());
    c.shutdown(ShutdownMode::Now);
}

over_transports! {
    fn listening_gives_remote_connect_then_shutdown_closes_it(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let closer = {
            let c = c.clone();
            std::thread::spawn(move || c.shutdown(ShutdownMode::FinishQueue))
        };
        assert_eq!(read_to_eof(&mut peer), b"");
        drop(peer);
        match next(&c) {
            Event::FinishDisconnect(f) => {
                assert_eq!(f.connection, conn);
                assert!(f.incomplete.is_none() && f.queued.is_empty() && f.reason.is_none());
            }
            other => panic!("{other:?}"),
        }
        closer.join().unwrap();
        assert!(c.recv_timeout(WAIT).is_err(), "no event after the last");
        assert!(c.is_stopped());
        // The listener is closed.
        assert!(raw_connect_addr(&c.local_address().unwrap()).is_err());
    }
}

over_transports! {
    fn connect_to_nothing_fails(net: Net) {
        let c = client_on(net, StringConverter::new());
        let conn = c.connect(net.dead_address(), Delivery::Merged).unwrap();
        c.send(&conn, s("lost?")).unwrap();
        match next(&c) {
            Event::FinishConnect(f) => {
                assert_eq!(f.connection, conn);
                assert!(!f.success());
                assert!(
                    matches!(f.reason, Some(ConnectError::Io(ref e)) if e.kind() == std::io::ErrorKind::ConnectionRefused)
                );
                // Sent while connecting: it comes back with the failure,
                // or (if the failure came first: a Unix connect fails at
                // once) as rejected.
                if f.queued.is_empty() {
                    match next(&c) {
                        Event::RejectedMessage(r) => {
                            assert_eq!((r.connection, r.message), (conn, s("lost?")))
                        }
                        other => panic!("{other:?}"),
                    }
                } else {
                    assert_eq!(f.queued, vec![s("lost?")]);
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn connect_then_disconnect(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let mut peer = l.accept();
        assert_eq!(connected(&c), conn);
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        assert_eq!(read_to_eof(&mut peer), b"");
        drop(peer);
        match next(&c) {
            Event::FinishDisconnect(f) => {
                assert!(f.incomplete.is_none() && f.queued.is_empty() && f.reason.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn connect_waiting_succeeds(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c.connect_timeout(addr, Delivery::Merged, WAIT).unwrap();
        let mut peer = l.accept();
        c.send(&conn, s("hi")).unwrap();
        assert_eq!(read_exactly(&mut peer, 4), b"2 hi");
        // No FinishConnect for it.
        assert!(matches!(
            c.recv_timeout(Duration::from_millis(100)),
            Err(RecvTimeoutError::Timeout)
        ));
    }
}

over_transports! {
    fn recv_deadline_times_out_delivers_and_ends(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        assert!(matches!(
            c.recv_deadline(deadline),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(Instant::now() >= deadline);
        let _peer = raw_connect_to(&c);
        assert!(matches!(
            c.recv_deadline(Instant::now() + WAIT),
            Ok(Event::RemoteConnect(_))
        ));
        c.shutdown(ShutdownMode::Now);
        assert!(matches!(
            c.recv_deadline(Instant::now() + WAIT),
            Err(RecvTimeoutError::Stopped)
        ));
    }
}

over_transports! {
    fn connect_waiting_fails(net: Net) {
        let c = client_on(net, StringConverter::new());
        let result = c
            .connect_timeout(net.dead_address(), Delivery::Merged, WAIT);
        assert!(matches!(result, Err(ConnectError::Io(_))));
        assert!(matches!(
            c.recv_timeout(Duration::from_millis(100)),
            Err(RecvTimeoutError::Timeout)
        ));
    }
}

#[test]
fn connect_waiting_times_out() {
    // A listener whose accept queue is full drops further SYNs, so a connect
    // to it hangs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&any_local_address().into()).unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let filler = |fillers: &mut Vec<TcpStream>| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s.into());
    };
    for _ in 0..4 {
        filler(&mut fillers);
    }
    let c = client(StringConverter::new());
    let started = std::time::Instant::now();
    let result = c.connect_timeout(addr, Delivery::Merged, Duration::from_millis(300));
    assert!(matches!(result, Err(ConnectError::TimedOut)), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The abandoned attempt produces no event, and shutdown does not wait on it.
    assert!(matches!(
        c.recv_timeout(Duration::from_millis(100)),
        Err(RecvTimeoutError::Timeout)
    ));
    c.shutdown(ShutdownMode::Now);
    assert!(c.recv_timeout(WAIT).is_err());
}

over_transports! {
    fn connect_waiting_runs_the_callback_before_any_event(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let peer_thread = std::thread::spawn(move || {
            let mut peer = l.accept();
            write_all(&mut peer, &wire(&["early"]));
            peer
        });
        let mut kept_peer = None;
        let conn = c
            .connect_timeout_with(addr, Delivery::Merged, WAIT, |conn| {
                // The peer has sent its message; it must not be delivered yet.
                kept_peer = Some(peer_thread.join().unwrap());
                assert!(matches!(
                    c.recv_timeout(Duration::from_millis(200)),
                    Err(RecvTimeoutError::Timeout)
                ));
                c.send(&conn, s("from the callback")).unwrap();
            })
            .unwrap();
        let mut peer = kept_peer.expect("the callback ran");
        let expected = wire(&["from the callback"]);
        assert_eq!(read_exactly(&mut peer, expected.len()), expected);
        match next(&c) {
            Event::MessageReceived(m) => {
                assert_eq!(m.connection, conn);
                assert_eq!(m.message, "early");
            }
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn three_strings_from_a_raw_peer_then_close(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        write_all(&mut peer, &wire(&["plango", "", "hi mom!"]));
        drop(peer);
        for expected in ["plango", "", "hi mom!"] {
            match next(&c) {
                Event::MessageReceived(m) => {
                    assert_eq!((m.connection, m.message.as_str()), (conn, expected));
                }
                other => panic!("{other:?}"),
            }
        }
        match next(&c) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(r.connection, conn);
                assert!(matches!(r.reason, DisconnectReason::PeerClosed));
                assert!(r.incomplete.is_none() && r.queued.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn three_strings_sent_then_disconnect(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        // Sent while connecting: written once connected.
        for m in ["plango", "", "hi mom!"] {
            c.send(&conn, s(m)).unwrap();
        }
        let mut peer = l.accept();
        // (A disconnect before the connect completes would cancel it.)
        assert_eq!(connected(&c), conn);
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        assert_eq!(read_to_eof(&mut peer), wire(&["plango", "", "hi mom!"]));
        drop(peer);
        assert!(
            matches!(next(&c), Event::FinishDisconnect(f) if f.queued.is_empty() && f.incomplete.is_none())
        );
    }
}

/// `ONE` has written `abc` (read by the peer) and waits for its callback;
/// `TWO` is queued behind it.
fn paused_mid_message(
    net: Net,
) -> (
    Connector<Pausing>,
    pike::Connection,
    RawPeer,
    crossbeam_channel::Receiver<std::task::Waker>,
) {
    let (l, addr) = raw_listener_on(net);
    let (converter, wakers) = Pausing::new();
    let c = client_on(net, converter);
    let conn = c.connect(&addr, Delivery::Merged).unwrap();
    let mut peer = l.accept();
    assert_eq!(connected(&c), conn);
    c.send(&conn, s("ONE")).unwrap();
    c.send(&conn, s("TWO")).unwrap();
    assert_eq!(read_exactly(&mut peer, 3), b"abc");
    (c, conn, peer, wakers)
}

over_transports! {
    fn disconnect_now_mid_message(net: Net) {
        let (c, conn, mut peer, _wakers) = paused_mid_message(net);
        c.disconnect(&conn, DisconnectMode::Now);
        match next(&c) {
            Event::FinishDisconnect(f) => {
                assert_eq!((f.incomplete, f.queued), (Some(s("ONE")), vec![s("TWO")]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read_to_eof(&mut peer), b"");
    }
}

over_transports! {
    fn disconnect_finish_message_mid_message(net: Net) {
        let (c, conn, mut peer, wakers) = paused_mid_message(net);
        c.disconnect(&conn, DisconnectMode::FinishMessage);
        wake_next(&wakers);
        assert_eq!(read_to_eof(&mut peer), b"ONE123");
        drop(peer);
        match next(&c) {
            Event::FinishDisconnect(f) => assert_eq!((f.incomplete, f.queued), (None, vec![s("TWO")])),
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn disconnect_finish_queue_mid_message(net: Net) {
        let (c, conn, mut peer, wakers) = paused_mid_message(net);
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        wake_next(&wakers); // ONE
        wake_next(&wakers); // TWO
        assert_eq!(read_to_eof(&mut peer), b"ONE123abcTWO123");
        drop(peer);
        match next(&c) {
            Event::FinishDisconnect(f) => assert_eq!((f.incomplete, f.queued), (None, vec![])),
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn recv_connection_gets_a_separate_connections_events(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Separate);
        write_all(&mut peer, &wire(&["to the side"]));
        match next_of(&c, &conn) {
            Event::MessageReceived(m) => assert_eq!(m.message, "to the side"),
            other => panic!("{other:?}"),
        }
        // Nothing of it reaches the main queue.
        assert!(matches!(
            c.recv_timeout(Duration::from_millis(100)),
            Err(RecvTimeoutError::Timeout)
        ));
        drop(peer);
        assert!(matches!(next_of(&c, &conn), Event::RemoteDisconnect(_)));
        // After its final event, recv_connection returns None at once.
        assert!(c.recv_connection(&conn).unwrap_err() == pike::RecvError::Closed);
    }
}

over_transports! {
    fn merge_connection_moves_queued_events_in_order(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Separate);
        // One write: the network thread reads all three in one go, so once the
        // first is taken the others are queued before any merge is handled.
        write_all(&mut peer, &wire(&["a", "b", "c"]));
        match next_of(&c, &conn) {
            Event::MessageReceived(m) => assert_eq!(m.message, "a"),
            other => panic!("{other:?}"),
        }
        // A thread blocked on the (otherwise empty) queue is released by merge.
        let blocked = {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Ok(e) = c.recv_connection(&conn) {
                    got.push(e);
                }
                got.len()
            })
        };
        c.merge_connection(&conn);
        let taken_by_blocked = blocked.join().unwrap();
        let mut rest = Vec::new();
        for _ in 0..(2 - taken_by_blocked) {
            match next(&c) {
                Event::MessageReceived(m) => rest.push(m.message),
                other => panic!("{other:?}"),
            }
        }
        if taken_by_blocked == 0 {
            assert_eq!(rest, vec![s("b"), s("c")]);
        }
        assert!(c.recv_connection(&conn).unwrap_err() == pike::RecvError::Closed);
        // Later events go to the main queue.
        write_all(&mut peer, &wire(&["d"]));
        assert!(matches!(next(&c), Event::MessageReceived(m) if m.message == "d"));
    }
}

over_transports! {
    fn merge_connection_with_nothing_blocked_moves_everything(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Separate);
        write_all(&mut peer, &wire(&["a", "b", "c"]));
        drop(peer);
        assert!(matches!(next_of(&c, &conn), Event::MessageReceived(m) if m.message == "a"));
        c.merge_connection(&conn);
        let mut got = Vec::new();
        loop {
            match next(&c) {
                Event::MessageReceived(m) => got.push(m.message),
                Event::RemoteDisconnect(_) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, vec![s("b"), s("c")]);
        assert!(c.recv_connection(&conn).unwrap_err() == pike::RecvError::Closed);
    }
}

over_transports! {
    fn a_separate_outgoing_connection(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c.connect(&addr, Delivery::Separate).unwrap();
        let mut peer = l.accept();
        assert!(matches!(next_of(&c, &conn), Event::FinishConnect(f) if f.success()));
        write_all(&mut peer, &wire(&["x"]));
        assert!(matches!(next_of(&c, &conn), Event::MessageReceived(m) if m.message == "x"));
        assert!(matches!(
            c.recv_timeout(Duration::from_millis(100)),
            Err(RecvTimeoutError::Timeout)
        ));
    }
}

/// What became of one connection's messages.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Messages the peer read in full.
    read: Vec<String>,
    /// Bytes of a trailing partial message the peer read.
    partial: usize,
    incomplete: Option<String>,
    queued: Vec<String>,
}

/// Several connections with messages in flight; the peers read everything
/// until EOF. Returns, per connection, what the peer read and what came
/// back.
fn shutdown_with_traffic(net: Net, mode: ShutdownMode) -> Vec<Outcome> {
    let (l, addr) = raw_listener_on(net);
    let c = builder_on(net, StringConverter::new())
        .write_buffer_size(16 * 1024)
        .spawn()
        .unwrap();
    let big = "z".repeat(50_000);
    let mut conns = Vec::new();
    for i in 0..3 {
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        for j in 0..40 {
            c.send(&conn, format!("{i}-{j}-{big}")).unwrap();
        }
        conns.push(conn);
    }
    let peers: Vec<_> = (0..3).map(|_| l.accept()).collect();
    // Connected first: a shutdown cancels connections still connecting.
    for _ in 0..3 {
        connected(&c);
    }
    // Peers start reading only after the shutdown started: messages are in
    // flight.
    let closer = {
        let c = c.clone();
        std::thread::spawn(move || c.shutdown(mode))
    };
    let readers: Vec<_> = peers
        .into_iter()
        .map(|mut p| std::thread::spawn(move || read_to_eof(&mut p)))
        .collect();
    let mut results = vec![Outcome::default(); 3];
    let received: Vec<Vec<u8>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    closer.join().unwrap();
    let mut finished = 0;
    while let Ok(event) = c.recv_timeout(WAIT) {
        let i = conns.iter().position(|x| *x == event.connection()).unwrap();
        match event {
            Event::FinishDisconnect(f) => {
                finished += 1;
                results[i].incomplete = f.incomplete;
                results[i].queued = f.queued;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(finished, 3);
    // The peers may have connected in any order: match them by content.
    for bytes in received {
        let (messages, partial) = decode_strings(&bytes);
        let i: usize = match messages.first() {
            Some(m) => m[..1].parse().unwrap(),
            None => continue,
        };
        results[i].read = messages;
        results[i].partial = partial;
    }
    results
}

over_transports! {
    fn shutdown_finish_queues_writes_everything(net: Net) {
        for o in shutdown_with_traffic(net, ShutdownMode::FinishQueue) {
            assert_eq!(o.read.len(), 40);
            assert_eq!((o.partial, o.incomplete, o.queued.len()), (0, None, 0));
        }
    }
}

over_transports! {
    fn shutdown_finish_messages_completes_the_partial_one(net: Net) {
        for o in shutdown_with_traffic(net, ShutdownMode::FinishMessage) {
            assert_eq!(o.partial, 0, "no partial message on the wire");
            assert!(o.incomplete.is_none());
            // Each message read or returned, in order.
            let seq = |m: &String| -> usize { m.split('-').nth(1).unwrap().parse().unwrap() };
            let all: Vec<usize> = o.read.iter().chain(&o.queued).map(seq).collect();
            assert_eq!(all, (0..40).collect::<Vec<_>>());
        }
    }
}

over_transports! {
    fn shutdown_now_returns_what_was_not_written(net: Net) {
        for o in shutdown_with_traffic(net, ShutdownMode::Now) {
            let incomplete = usize::from(o.incomplete.is_some());
            assert_eq!(o.read.len() + incomplete + o.queued.len(), 40);
            // A partial message on the wire is exactly the incomplete one.
            assert_eq!(o.partial > 0, o.incomplete.is_some());
        }
    }
}

// ----- beyond the original --------------------------------------------------------

over_transports! {
    fn a_remote_connect_dropped_is_rejected(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        match next(&c) {
            Event::RemoteConnect(r) => drop(r),
            other => panic!("{other:?}"),
        }
        let mut buf = Vec::new();
        // EOF or reset, but nothing else and no hang.
        let _ = std::io::Read::read_to_end(&mut peer, &mut buf);
        assert!(buf.is_empty());
    }
}

over_transports! {
    fn send_to_an_unknown_connection_is_rejected(net: Net) {
        let c = client_on(net, StringConverter::new());
        let (l, addr) = raw_listener_on(net);
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let mut peer = l.accept();
        connected(&c);
        c.disconnect(&conn, DisconnectMode::Now);
        assert!(matches!(next(&c), Event::FinishDisconnect(_)));
        assert_eq!(read_to_eof(&mut peer), b"");
        c.send(&conn, s("too late")).unwrap();
        match next(&c) {
            Event::RejectedMessage(r) => {
                assert_eq!(r.message, "too late");
                assert!(matches!(r.reason, RejectReason::Closed));
            }
            other => panic!("{other:?}"),
        }
        c.shutdown(ShutdownMode::Now);
        // Fully stopped: the message comes straight back.
        let back = c.send(&conn, s("after stop")).unwrap_err();
        assert_eq!(back.0, "after stop");
        assert!(c.recv().unwrap_err() == pike::RecvError::Stopped);
    }
}

over_transports! {
    fn a_peer_breaking_the_protocol_closes_only_its_connection(net: Net) {
        let c = listening_on(net, StringConverter::new().with_max_message_size(1024));
        let mut bad = raw_connect_to(&c);
        let bad_conn = accept(&c, Delivery::Merged);
        let mut good = raw_connect_to(&c);
        let good_conn = accept(&c, Delivery::Merged);
        write_all(&mut bad, b"1 a99999999999999999999 ");
        assert!(matches!(next(&c), Event::MessageReceived(m) if m.connection == bad_conn));
        match next(&c) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(r.connection, bad_conn);
                assert!(matches!(
                    r.reason,
                    DisconnectReason::Peer(pike::PeerFault::Protocol(ProtocolError::TooLarge { .. }))
                ));
            }
            other => panic!("{other:?}"),
        }
        c.send(&good_conn, s("still here")).unwrap();
        let expected = wire(&["still here"]);
        assert_eq!(read_exactly(&mut good, expected.len()), expected);
        write_all(&mut good, &wire(&["me too"]));
        assert!(matches!(next(&c), Event::MessageReceived(m) if m.message == "me too"));
    }
}

#[test]
fn a_reset_is_reported_with_its_reason() {
    let c = listening(StringConverter::new());
    let peer = raw_connect(c.local_addr().unwrap());
    let conn = accept(&c, Delivery::Merged);
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer); // RST
    match next(&c) {
        Event::RemoteDisconnect(r) => {
            assert_eq!(r.connection, conn);
            assert!(
                matches!(r.reason, DisconnectReason::Socket(pike::SocketFailure::Io(ref e)) if e.kind() == std::io::ErrorKind::ConnectionReset),
                "{:?}",
                r.reason
            );
        }
        other => panic!("{other:?}"),
    }
}

over_transports! {
    fn a_panicking_serializer_closes_only_its_connection(net: Net) {
        let (converter, _wakers) = Pausing::new();
        let c = listening_on(net, converter);
        let mut p1 = raw_connect_to(&c);
        let c1 = accept(&c, Delivery::Merged);
        let mut p2 = raw_connect_to(&c);
        let c2 = accept(&c, Delivery::Merged);
        c.send(&c1, s("panic")).unwrap();
        match next(&c) {
            Event::RemoteDisconnect(r) => {
                assert_eq!(r.connection, c1);
                assert!(matches!(r.reason, DisconnectReason::Converter(pike::ConverterFault::SerializerPanicked(_))));
                assert_eq!(r.queued, vec![s("panic")]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read_to_eof(&mut p1), b"");
        // The other connection and the network thread carry on.
        write_all(&mut p2, &wire(&["alive"]));
        assert!(matches!(next(&c), Event::MessageReceived(m) if m.connection == c2));
    }
}

#[test]
fn ipv6_loopback() {
    let c = match Connector::builder(StringConverter::new())
        .listen("[::1]:0")
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("no IPv6 loopback here ({e}): skipping");
            return;
        }
    };
    let port = c.local_addr().unwrap().port();
    let cl = client(StringConverter::new());
    let conn = cl.connect(("::1", port), Delivery::Merged).unwrap();
    accept(&c, Delivery::Merged);
    assert_eq!(connected(&cl), conn);
}

/// Apart from the IPv6 test, so that it runs where there is no IPv6.
#[test]
fn run_after_a_shutdown_that_came_first_returns_at_once() {
    let c = Connector::builder(StringConverter::new()).build().unwrap();
    c.shutdown(ShutdownMode::Now);
    assert!(c.is_stopped());
    assert_eq!(c.run(), Ok(()), "nothing to run");
    assert!(c.spawn().is_ok());
    assert!(c.recv().unwrap_err() == pike::RecvError::Stopped);
}

#[test]
fn names_are_resolved_off_the_network_thread() {
    let cl = client(StringConverter::new());
    let v4 = listening(StringConverter::new());
    let name = format!("localhost:{}", v4.local_addr().unwrap().port());
    let conn = cl.connect(name.as_str(), Delivery::Merged).unwrap();
    match next(&cl) {
        // localhost may resolve to ::1 first, where nothing listens on this
        // port; the next address is tried.
        Event::FinishConnect(f) => assert!(f.success(), "{:?}", f.reason),
        other => panic!("{other:?}"),
    }
    let _ = conn;
    accept(&v4, Delivery::Merged);
    let bad = cl
        .connect("no-such-host.invalid:1", Delivery::Merged)
        .unwrap();
    match next(&cl) {
        Event::FinishConnect(f) => {
            assert_eq!(f.connection, bad);
            assert!(matches!(f.reason, Some(ConnectError::Resolve(_))));
        }
        other => panic!("{other:?}"),
    }
}

over_transports! {
    fn dropping_the_last_handle_shuts_down(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let addr = c.local_address().unwrap();
        let c2 = c.clone();
        drop(c);
        // Still running through the clone.
        let _p = raw_connect_addr(&addr).unwrap();
        drop(c2);
        // Shut down and joined: the listener is gone.
        assert!(raw_connect_addr(&addr).is_err());
    }
}

over_transports! {
    fn run_blocks_the_calling_thread_until_shutdown(net: Net) {
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .build()
            .unwrap();
        let runner = {
            let c = c.clone();
            std::thread::spawn(move || c.run())
        };
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        c.send(&conn, s("ran")).unwrap();
        assert_eq!(read_exactly(&mut peer, 5), b"3 ran");
        c.shutdown(ShutdownMode::Now);
        runner.join().unwrap().unwrap();
        assert_eq!(c.run(), Err(pike::UsageError::AlreadyStarted), "a connector runs once");
        assert!(matches!(
            c.spawn(),
            Err(pike::StartError::Usage(pike::UsageError::AlreadyStarted))
        ));
    }
}

// A writer thread and a reader share the raw peer: not over TLS.
over_plain_transports! {
    fn a_graceful_close_delivers_everything_despite_unread_input(net: Net) {
        // The peer sends a lot that the connector never reads (its application
        // takes no events, so reading pauses), and reads nothing until the
        // connector has closed. A plain close() with unread input would send a
        // reset and destroy data still in flight.
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .connection_share(4 * 1024)
            .spawn()
            .unwrap();
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let mut writer = peer.try_clone().unwrap();
        let flood = std::thread::spawn(move || {
            let chunk = wire(&[&"u".repeat(1000)]);
            // Stops when the connector closes; errors are expected then.
            for _ in 0..4000 {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = writer.shutdown(Shutdown::Write);
        });
        let body = "d".repeat(10_000);
        let n = 300; // 3 MB, more than the socket buffers hold
        for i in 0..n {
            c.send(&conn, format!("{i:04}{body}")).unwrap();
        }
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        let got = read_to_eof(&mut peer);
        let (messages, partial) = decode_strings(&got);
        assert_eq!((messages.len(), partial), (n, 0));
        drop(peer);
        flood.join().unwrap();
        loop {
            match next(&c) {
                Event::FinishDisconnect(f) => {
                    assert!(
                        f.queued.is_empty() && f.incomplete.is_none(),
                        "{:?}",
                        f.reason
                    );
                    break;
                }
                Event::MessageReceived(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}

over_transports! {
    fn events_of_a_connection_closed_inside_the_callback_are_not_lost(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c
            .connect_timeout_with(addr, Delivery::Merged, WAIT, |conn| {
                c.disconnect(&conn, DisconnectMode::Now);
                c.send(&conn, s("after the disconnect")).unwrap();
                // A round trip through the network thread: both commands above
                // are done (the connection is closed) before this returns.
                c.merge_connection(&conn);
            })
            .unwrap();
        drop(l.accept());
        assert!(matches!(next(&c), Event::FinishDisconnect(f) if f.connection == conn));
        match next(&c) {
            Event::RejectedMessage(r) => assert_eq!(r.message, "after the disconnect"),
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn a_panicking_callback_still_releases_the_connection(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let mut conn = None;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.connect_timeout_with(addr, Delivery::Merged, WAIT, |cn| {
                conn = Some(cn);
                panic!("callback panics on purpose");
            })
        }));
        assert!(outcome.is_err());
        let conn = conn.expect("the callback ran");
        let mut peer = l.accept();
        write_all(&mut peer, &wire(&["still delivered"]));
        match next(&c) {
            Event::MessageReceived(m) => assert_eq!(
                (m.connection, m.message.as_str()),
                (conn, "still delivered")
            ),
            other => panic!("{other:?}"),
        }
    }
}

over_transports! {
    fn send_batch_and_recv_batch(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let batch: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
        c.send_batch(&conn, batch.clone()).unwrap();
        c.send_batch(&conn, Vec::new()).unwrap();
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let expected = wire(&refs);
        assert_eq!(read_exactly(&mut peer, expected.len()), expected);

        // Many events, taken in a few batches, in order, never more than max.
        write_all(&mut peer, &expected);
        let mut got = Vec::new();
        let mut events = Vec::new();
        while got.len() < 500 {
            events.clear();
            let n = c.recv_batch(&mut events, 64, WAIT).unwrap();
            assert!((1..=64).contains(&n) && n == events.len());
            for e in events.drain(..) {
                match e {
                    Event::MessageReceived(m) => got.push(m.message),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(got, batch);
        assert_eq!(
            c.recv_batch(&mut events, 64, Duration::from_millis(20)),
            Ok(0)
        );

        // To an unknown connection: each message comes back.
        let stranger = pike::Connection::from_id(999_999);
        c.send_batch(&stranger, vec![s("x"), s("y")]).unwrap();
        for expected in ["x", "y"] {
            assert!(matches!(next(&c), Event::RejectedMessage(r) if r.message == expected));
        }
        // After stopping: all come straight back, and recv_batch says stopped.
        c.shutdown(ShutdownMode::Now);
        let back = c.send_batch(&conn, vec![s("a"), s("b")]).unwrap_err();
        assert_eq!(back.0, vec![s("a"), s("b")]);
        let mut rest = Vec::new();
        while let Ok(n) = c.recv_batch(&mut rest, 16, WAIT) {
            assert!(n > 0, "a stopped connector does not time out");
        }
    }
}

over_transports! {
    fn shutdown_now_cuts_a_finishing_shutdown_short(net: Net) {
        let (l, addr) = raw_listener_on(net);
        // Room for all 30 MB in the unsent queue (it holds 16 MiB by default).
        let c = builder_on(net, StringConverter::new())
            .send_queue_cap(64 << 20)
            .spawn()
            .unwrap();
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let _peer = l.accept(); // never reads
        connected(&c);
        let big = "q".repeat(100_000);
        for _ in 0..300 {
            c.send(&conn, big.clone()).unwrap(); // 30 MB: more than the sockets hold
        }
        let (done_tx, done) = crossbeam_channel::bounded(1);
        {
            let c = c.clone();
            std::thread::spawn(move || {
                c.shutdown(ShutdownMode::FinishQueue);
                let _ = done_tx.send(());
            });
        }
        c.shutdown(ShutdownMode::Now);
        done.recv_timeout(WAIT)
            .expect("the finishing shutdown returned too");
        match next(&c) {
            Event::FinishDisconnect(f) => {
                let back = usize::from(f.incomplete.is_some()) + f.queued.len();
                assert!(back > 0, "a peer that never reads cannot have taken 30 MB");
            }
            other => panic!("{other:?}"),
        }
    }
}

// ----- who runs the network loop ------------------------------------------------
//
// A thread blocked in `recv` runs the network loop itself while it waits
// (see `reactor::lead`). These check that the loop still runs for everyone
// else when that thread goes away, and that waiting threads are released.

over_transports! {
    fn the_loop_runs_on_after_the_thread_that_ran_it_stops_calling_recv(net: Net) {
        let server = listening_on(net, StringConverter::new());
        let (l, addr) = raw_listener_on(net);
        let client = client_on(net, StringConverter::new());
        // This recv runs the loop, gets the connection, and never comes back.
        let mut peer = raw_connect_to(&server);
        let conn = match next(&server) {
            Event::RemoteConnect(r) => {
                let conn = r.connection;
                r.finish_accept(Delivery::Separate);
                conn
            }
            other => panic!("{other:?}"),
        };
        // Reading, writing and connecting all go on without a thread in recv.
        write_all(&mut peer, &wire(&["in"]));
        match next_of(&server, &conn) {
            Event::MessageReceived(m) => assert_eq!(m.message, "in"),
            other => panic!("{other:?}"),
        }
        server.send(&conn, s("out")).unwrap();
        assert_eq!(read_exactly(&mut peer, 5), b"3 out");
        let result = client
            .connect_timeout(addr, Delivery::Merged, WAIT);
        result.unwrap();
        drop(l.accept());
    }
}

over_transports! {
    fn shutdown_releases_a_thread_blocked_in_recv(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let (started, waiting) = crossbeam_channel::bounded(1);
        let blocked = {
            let c = c.clone();
            std::thread::spawn(move || {
                started.send(()).unwrap();
                // No timeout: only the shutdown can end this.
                c.recv().unwrap_err() == pike::RecvError::Stopped
            })
        };
        waiting.recv_timeout(WAIT).unwrap();
        c.shutdown(ShutdownMode::Now);
        assert!(blocked.join().unwrap(), "recv returns None after shutdown");
    }
}

over_transports! {
    fn recv_timeout_returns_in_time_while_running_the_loop(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let started = std::time::Instant::now();
        assert!(matches!(
            c.recv_timeout(Duration::from_millis(50)),
            Err(RecvTimeoutError::Timeout)
        ));
        assert!(started.elapsed() < WAIT);
        // The loop still answers afterwards.
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        c.send(&conn, s("ok")).unwrap();
        assert_eq!(read_exactly(&mut peer, 4), b"2 ok");
    }
}

over_transports! {
    fn sends_in_quick_succession_are_all_written_while_nobody_is_in_recv(net: Net) {
        // One by one and back to back, the sends after the first are left for
        // the network loop to write together; the loop is parked idle after the
        // recv below, so this also checks that a send wakes its home thread.
        let c = listening_on(net, StringConverter::new());
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let n = 5_000;
        for i in 0..n {
            c.send(&conn, i.to_string()).unwrap();
        }
        c.disconnect(&conn, DisconnectMode::FinishQueue);
        let (read, partial) = decode_strings(&read_to_eof(&mut peer));
        assert_eq!(partial, 0);
        let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert!(
            read == expected,
            "{} messages read, not 0..{n} in order",
            read.len()
        );
        assert!(matches!(next(&c), Event::FinishDisconnect(f) if f.queued.is_empty()));
    }
}

/// The body of message `i` in the shared-buffer test: its size and bytes
/// both depend on `i`, so a body overwritten by a later read shows.
fn shared_test_body(i: usize) -> Vec<u8> {
    let len = (i * 7919) % 1500;
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}

over_transports! {
    fn shared_read_buffers_never_overwrite_a_message_still_held(net: Net) {
        use bytes::Bytes;
        use pike::converters::BytesConverter;
        const N: usize = 6_000;
        // Small reads, so that the loop goes through many buffers, reusing
        // those no message holds and leaving the others alone.
        let server = builder_on(net, BytesConverter::new().with_shared_read_buffer(true))
            .listen_on(net)
            .read_chunk(4096)
            .spawn()
            .unwrap();
        let mut peer = raw_connect_to(&server);
        let conn = accept(&server, Delivery::Merged);
        let writer = std::thread::spawn(move || {
            let mut wire = Vec::new();
            for i in 0..N {
                let body = shared_test_body(i);
                wire.extend_from_slice(format!("{} ", body.len()).as_bytes());
                wire.extend_from_slice(&body);
            }
            // In uneven pieces, so that messages straddle reads.
            for piece in wire.chunks(3001) {
                peer.write_all(piece).unwrap();
            }
            peer
        });
        // Keep every other message (their buffers stay alive), drop the rest
        // at once (theirs can be reused); check all of them at the end.
        let mut kept: Vec<(usize, Bytes)> = Vec::new();
        for i in 0..N {
            match next(&server) {
                Event::MessageReceived(m) => {
                    assert_eq!(m.connection, conn);
                    if i % 2 == 0 {
                        kept.push((i, m.message));
                    } else {
                        assert_eq!(m.message, shared_test_body(i), "message {i}");
                    }
                }
                other => panic!("expected message {i}, got {other:?}"),
            }
        }
        for (i, message) in &kept {
            assert_eq!(message[..], shared_test_body(*i)[..], "kept message {i}");
        }
        drop(writer.join().unwrap());
        server.shutdown(ShutdownMode::Now);
    }
}

// ----- Unix domain sockets -------------------------------------------------------

#[test]
fn a_unix_listener_replaces_a_stale_file_and_removes_its_own_at_shutdown() {
    let path = unique_socket_path();
    // A process that died left its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let c = Connector::builder(StringConverter::new())
        .listen(format!("unix:{}", path.display()))
        .spawn()
        .unwrap();
    assert_eq!(c.local_addr(), None);
    assert_eq!(c.local_address(), Some(pike::Address::unix(&path)));
    let mut peer = raw_connect_to(&c);
    match next(&c) {
        Event::RemoteConnect(r) => {
            assert!(
                matches!(r.peer, pike::PeerAddr::Unix(None)),
                "an unbound client has no name: {:?}",
                r.peer
            );
            r.finish_accept(Delivery::Merged);
        }
        other => panic!("{other:?}"),
    }
    write_all(&mut peer, &wire(&["over unix"]));
    assert!(matches!(next(&c), Event::MessageReceived(m) if m.message == "over unix"));
    // A second connector cannot take a live socket over. (Its probe, a
    // connect, reaches the first one as a connection.)
    let err = Connector::builder(StringConverter::new())
        .listen(pike::Address::unix(&path))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, pike::StartError::Listen(e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "{err}"
    );
    assert!(matches!(next(&c), Event::RemoteConnect(_)));
    c.shutdown(ShutdownMode::Now);
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[cfg(target_os = "linux")]
#[test]
fn an_abstract_unix_name_connects_connector_to_connector() {
    let name = format!("unix:@pike-test-{}", std::process::id());
    let server = Connector::builder(StringConverter::new())
        .listen(name.as_str())
        .spawn()
        .unwrap();
    assert_eq!(server.local_address().unwrap().to_string(), name);
    let cl = client(StringConverter::new());
    let conn = cl.connect(name.as_str(), Delivery::Merged).unwrap();
    let remote = accept(&server, Delivery::Merged);
    assert_eq!(connected(&cl), conn);
    cl.send(&conn, s("abstract")).unwrap();
    match next(&server) {
        Event::MessageReceived(m) => {
            assert_eq!((m.connection, m.message.as_str()), (remote, "abstract"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn connecting_to_a_missing_unix_socket_fails_with_not_found() {
    let c = client(StringConverter::new());
    let path = unique_socket_path();
    let conn = c
        .connect(pike::Address::unix(&path), Delivery::Merged)
        .unwrap();
    match next(&c) {
        Event::FinishConnect(f) => {
            assert_eq!(f.connection, conn);
            assert!(
                matches!(f.reason, Some(ConnectError::Io(ref e)) if e.kind() == std::io::ErrorKind::NotFound),
                "{:?}",
                f.reason
            );
        }
        other => panic!("{other:?}"),
    }
}
