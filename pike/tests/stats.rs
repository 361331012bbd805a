//! The numbers of `Connector::stats` and `connection_stats`, checked
//! against traffic whose every byte is known.

mod util;

use pike::converters::StringConverter;
use pike::stats::Ending;
use pike::{Connection, Delivery, DisconnectMode, Event, ShutdownMode};
use util::*;

over_transports! {
    fn counters_match_known_traffic_exactly(net: Net) {
        let c = listening_on(net, StringConverter::new());
        let before = c.stats();
        assert_eq!(before.connections_open, 0);
        assert_eq!(before.traffic, Default::default());

        // A peer sends three messages and gets two back.
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let sent = wire(&["one", "two", "three!"]);
        write_all(&mut peer, &sent);
        for _ in 0..3 {
            assert!(matches!(next(&c), Event::MessageReceived(_)));
        }
        c.send(&conn, "hello".to_owned()).unwrap();
        c.send(&conn, "world!!".to_owned()).unwrap();
        let replies = wire(&["hello", "world!!"]);
        assert_eq!(read_exactly(&mut peer, replies.len()), replies);

        let one = c.connection_stats(&conn).expect("open");
        assert_eq!(one.traffic.messages_in, 3);
        assert_eq!(one.traffic.bytes_in, sent.len() as u64);
        assert_eq!(one.traffic.messages_out, 2);
        assert_eq!(one.traffic.bytes_out, replies.len() as u64);
        assert_eq!((one.queued_messages, one.queued_bytes), (0, 0));
        assert_eq!(one.ending, None);
        let open = c.stats();
        assert_eq!((open.connections_open, open.accepted), (1, 1));
        assert_eq!(open.traffic, one.traffic);
        assert_eq!(open.closed.total(), 0);

        // A send to a connection that never was comes back.
        c.send(&Connection::from_id(9_999), "nobody".to_owned()).unwrap();
        assert!(matches!(next(&c), Event::RejectedMessage(_)));

        // A second peer breaks the protocol.
        let mut bad = raw_connect_to(&c);
        accept(&c, Delivery::Merged);
        write_all(&mut bad, b"x?");
        assert!(matches!(next(&c), Event::RemoteDisconnect(_)));

        // The first peer closes.
        drop(peer);
        match next(&c) {
            Event::RemoteDisconnect(r) => assert_eq!(r.connection, conn),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.connection_stats(&conn), None, "closed");
        let after = c.stats();
        assert_eq!(after.connections_open, 0);
        assert_eq!(after.accepted, 2);
        assert_eq!(after.closed.get(Ending::PeerClosed), 1);
        assert_eq!(after.closed.get(Ending::ProtocolError), 1);
        assert_eq!(after.closed.total(), 2);
        assert_eq!(after.protocol_errors, 1);
        assert_eq!(after.handed_back.closed, 1);
        assert_eq!(after.handed_back.total(), 1);
        assert_eq!(after.traffic.messages_in, 3);
        assert_eq!(after.traffic.bytes_in, sent.len() as u64 + 2);
        assert_eq!(after.traffic.messages_out, 2);
        assert_eq!(after.traffic.bytes_out, replies.len() as u64);
        assert_eq!(after.undelivered_events, 0);
        c.shutdown(ShutdownMode::Now);
    }
}

over_transports! {
    fn outgoing_connections_count_connects_queues_and_what_comes_back(net: Net) {
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let _peer = l.accept();
        assert_eq!(connected(&c), conn);
        // A failed connect.
        let dead = c.connect(net.dead_address(), Delivery::Merged).unwrap();
        c.send(&dead, "lost".to_owned()).unwrap();
        // It comes back with the failure, or after it as rejected (a Unix
        // connect fails at once, possibly before the send).
        let at_close = match next(&c) {
            Event::FinishConnect(f) if f.queued.len() == 1 => 1,
            Event::FinishConnect(f) if f.queued.is_empty() => {
                assert!(matches!(next(&c), Event::RejectedMessage(_)));
                0
            }
            other => panic!("{other:?}"),
        };
        c.disconnect(&conn, DisconnectMode::Now);
        assert!(matches!(next(&c), Event::FinishDisconnect(_)));
        let s = c.stats();
        assert_eq!((s.connected, s.accepted, s.connections_open), (1, 0, 0));
        assert_eq!(s.closed.get(Ending::ConnectFailed), 1);
        assert_eq!(s.closed.get(Ending::Local), 1);
        assert_eq!(s.handed_back.at_close, at_close);
        assert_eq!(s.handed_back.total(), 1);
    }
}

#[test]
fn queued_messages_and_undelivered_events_are_gauges() {
    let c = listening_on(Net::Tcp, StringConverter::new());
    let mut peer = raw_connect_to(&c);
    // The RemoteConnect waits in the queue, not taken: undelivered.
    let deadline = std::time::Instant::now() + WAIT;
    while c.stats().undelivered_events != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no RemoteConnect queued"
        );
        std::thread::yield_now();
    }
    let remote = match next(&c) {
        Event::RemoteConnect(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(c.stats().undelivered_events, 0);
    // Not accepted yet: what is sent waits in its queue.
    c.send(&remote.connection, "abc".to_owned()).unwrap();
    c.send(&remote.connection, "defg".to_owned()).unwrap();
    let one = c.connection_stats(&remote.connection).unwrap();
    assert_eq!(one.queued_messages, 2);
    let string_bytes = |n: usize| (std::mem::size_of::<String>() + n) as u64;
    assert_eq!(one.queued_bytes, string_bytes(3) + string_bytes(4));
    let all = c.stats();
    assert_eq!(
        (all.queued_messages, all.queued_bytes),
        (2, one.queued_bytes)
    );
    let conn = remote.connection;
    remote.finish_accept(Delivery::Merged);
    let expected = wire(&["abc", "defg"]);
    assert_eq!(read_exactly(&mut peer, expected.len()), expected);
    let one = c.connection_stats(&conn).unwrap();
    assert_eq!((one.queued_messages, one.queued_bytes), (0, 0));
    assert_eq!(one.traffic.messages_out, 2);
}

#[cfg(feature = "metrics")]
#[test]
fn a_snapshot_goes_to_the_metrics_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let c = listening_on(Net::Tcp, StringConverter::new());
    let mut peer = raw_connect_to(&c);
    let conn = accept(&c, Delivery::Merged);
    write_all(&mut peer, &wire(&["a", "bc"]));
    for _ in 0..2 {
        assert!(matches!(next(&c), Event::MessageReceived(_)));
    }
    c.send(&conn, "x".to_owned()).unwrap();
    assert_eq!(read_exactly(&mut peer, 3), b"1 x");
    let stats = c.stats();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || stats.record_metrics("test"));
    let got: Vec<(String, Vec<String>, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let find = |name: &str, label: &str| {
        got.iter()
            .find(|(n, labels, _)| n == name && labels.iter().any(|l| l == label))
            .map(|(_, _, v)| v)
            .unwrap_or_else(|| panic!("{name} {{{label}}} not recorded: {got:?}"))
    };
    assert_eq!(
        find("pike_messages_in_total", "connector=test"),
        &DebugValue::Counter(2)
    );
    assert_eq!(
        find("pike_bytes_in_total", "connector=test"),
        &DebugValue::Counter(7)
    );
    assert_eq!(
        find("pike_messages_out_total", "connector=test"),
        &DebugValue::Counter(1)
    );
    assert_eq!(
        find("pike_accepted_total", "connector=test"),
        &DebugValue::Counter(1)
    );
    assert_eq!(
        find("pike_closed_total", "ending=peer_closed"),
        &DebugValue::Counter(0)
    );
    assert_eq!(
        find("pike_handed_back_total", "reason=queue_full"),
        &DebugValue::Counter(0)
    );
    assert_eq!(
        find("pike_connections_open", "connector=test"),
        &DebugValue::Gauge(1.0.into())
    );
}

#[test]
fn a_connection_closed_while_its_events_are_held_is_counted_once() {
    let (l, addr) = raw_listener_on(Net::Tcp);
    let c = client(StringConverter::new());
    let conn = c
        .connect_timeout_with(addr, Delivery::Merged, WAIT, |conn| {
            c.disconnect(&conn, DisconnectMode::Now);
            // A round trip through the network thread: the connection is
            // closed, its events held for this callback, before it returns.
            c.merge_connection(&conn);
        })
        .unwrap();
    drop(l.accept());
    assert!(matches!(next(&c), Event::FinishDisconnect(f) if f.connection == conn));
    let s = c.stats();
    assert_eq!(s.connected, 1);
    assert_eq!(s.closed.total(), 1, "{:?}", s.closed);
    assert_eq!(s.closed.get(Ending::Local), 1);
}
