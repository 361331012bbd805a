//! One vocabulary: every call that meets a stopped connector says
//! `Stopped`, a connection's own queue that ended says `Closed`, every
//! blocking call has its `try_`/`_timeout`/`_deadline` forms, and the old
//! names keep working.

mod util;

use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::{
    ConnectError, Delivery, Event, RecvError, RecvTimeoutError, ShutdownMode, StartError,
    TryRecvError, TrySendError,
};
use util::*;

#[test]
fn every_call_on_a_stopped_connector_says_stopped() {
    let c = client(StringConverter::new());
    let conn = c.connect(dead_address(), Delivery::Separate).unwrap();
    c.shutdown(ShutdownMode::Now);
    // The main queue: the attempt's end, then Stopped in every form.
    let mut events = Vec::new();
    while let Ok(e) = c.recv_timeout(WAIT) {
        events.push(e);
    }
    assert_eq!(c.recv().unwrap_err(), RecvError::Stopped);
    assert_eq!(c.try_recv().unwrap_err(), TryRecvError::Stopped);
    assert_eq!(c.recv_timeout(WAIT).unwrap_err(), RecvTimeoutError::Stopped);
    assert_eq!(
        c.recv_deadline(Instant::now() + WAIT).unwrap_err(),
        RecvTimeoutError::Stopped
    );
    let mut out = Vec::new();
    assert_eq!(c.recv_batch(&mut out, 8, WAIT), Err(RecvError::Stopped));
    assert_eq!(c.try_recv_batch(&mut out, 8), Err(RecvError::Stopped));
    // The separate connection's queue, once its last event was taken.
    while c.recv_connection_timeout(&conn, WAIT).is_ok() {}
    assert_eq!(c.recv_connection(&conn).unwrap_err(), RecvError::Stopped);
    assert_eq!(
        c.recv_connection_batch(&conn, &mut out, 8, WAIT),
        Err(RecvError::Stopped)
    );
    // Sends and connects.
    assert!(matches!(
        c.try_send(&conn, "x".to_owned()),
        Err(TrySendError::Stopped(m)) if m == "x"
    ));
    assert!(matches!(
        c.try_send_batch(&conn, ["a".to_owned(), "b".to_owned()]),
        Err(TrySendError::Stopped(all)) if all == ["a", "b"]
    ));
    assert!(c.connect(dead_address(), Delivery::Merged).is_err());
    assert!(matches!(
        c.connect_timeout(dead_address(), Delivery::Merged, WAIT),
        Err(ConnectError::Stopped)
    ));
    assert!(matches!(
        c.connect_deadline(dead_address(), Delivery::Merged, Instant::now() + WAIT),
        Err(ConnectError::Stopped)
    ));
}

over_transports! {
    fn a_separate_queue_that_was_merged_says_closed_and_its_batches_come_whole(net: Net) {
        let server = listening_on(net, StringConverter::new());
        let client = client_on(net, StringConverter::new());
        let conn = client
            .connect_timeout(server.local_address().unwrap(), Delivery::Separate, WAIT)
            .expect("connected");
        client.send_batch(&conn, (0..5).map(|i| i.to_string())).unwrap();
        let at_server = accept(&server, Delivery::Separate);
        // The server takes them from its own queue of that connection.
        let mut got = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.len() < 5 {
            let mut out = Vec::new();
            let n = server
                .recv_connection_batch_deadline(&at_server, &mut out, 16, deadline)
                .unwrap();
            assert_eq!(n, out.len());
            assert!(n > 0, "timed out with {got:?}");
            for e in out {
                match e {
                    Event::MessageReceived(m) => got.push(m.message),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(got, ["0", "1", "2", "3", "4"]);
        // Nothing more yet: a zero wait returns at once, empty.
        let mut out = Vec::new();
        assert_eq!(
            server.recv_connection_batch(&at_server, &mut out, 16, Duration::ZERO),
            Ok(0)
        );
        assert_eq!(server.try_recv_connection_batch(&at_server, &mut out, 16), Ok(0));
        assert_eq!(server.try_recv_connection(&at_server).unwrap_err(), TryRecvError::Empty);
        // Merged: its queue is closed, in every form.
        server.merge_connection(&at_server);
        assert_eq!(server.recv_connection(&at_server).unwrap_err(), RecvError::Closed);
        assert_eq!(server.try_recv_connection(&at_server).unwrap_err(), TryRecvError::Closed);
        assert_eq!(
            server.recv_connection_timeout(&at_server, WAIT).unwrap_err(),
            RecvTimeoutError::Closed
        );
        assert_eq!(
            server.recv_connection_batch(&at_server, &mut out, 4, WAIT),
            Err(RecvError::Closed)
        );
        let closed = futures::executor::block_on(server.recv_connection_async(&at_server));
        assert_eq!(closed.unwrap_err(), RecvError::Closed);
        // Its events come to the main queue now.
        client.send(&conn, "merged".to_owned()).unwrap();
        match next(&server) {
            Event::MessageReceived(m) => assert_eq!(m.message, "merged"),
            other => panic!("{other:?}"),
        }
        let mut out = Vec::new();
        assert_eq!(server.try_recv_batch(&mut out, 4), Ok(0));
    }
}

#[test]
fn try_send_batch_queues_what_fits_and_hands_back_the_rest_in_order() {
    // A peer that does not read yet, and a small high-water mark.
    let (l, addr) = raw_listener();
    let c = pike::Connector::builder(StringConverter::new())
        .send_high_water(4096)
        .spawn()
        .unwrap();
    let conn = c.connect_timeout(addr, Delivery::Merged, WAIT).unwrap();
    let mut peer = with_timeouts(raw_accept(&l));
    let big = "x".repeat(1000);
    let mut accepted = Vec::new();
    let mut batches = 0;
    let rest = loop {
        assert!(batches < 100_000, "the queue never filled");
        let batch: Vec<String> = (0..8).map(|i| format!("{batches}.{i}.{big}")).collect();
        match c.try_send_batch(&conn, batch.clone()) {
            Ok(()) => accepted.extend(batch),
            Err(TrySendError::Full(rest)) => {
                // What came back is the batch's tail, in order; its head
                // was queued.
                assert!(!rest.is_empty(), "Full with nothing handed back");
                let head = batch.len() - rest.len();
                assert_eq!(rest, batch[head..]);
                accepted.extend_from_slice(&batch[..head]);
                break rest;
            }
            Err(TrySendError::Stopped(_)) => panic!("stopped"),
        }
        batches += 1;
    };
    assert!(rest.len() <= 8);
    // Everything accepted reaches the peer, in order, and nothing else.
    let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
    let expected = wire(&accepted);
    assert_eq!(read_exactly(&mut peer, expected.len()), expected);
    c.shutdown(ShutdownMode::FinishQueue);
    assert!(read_to_eof(&mut peer).is_empty());
}

#[test]
fn a_builder_that_cannot_listen_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = pike::Connector::builder(StringConverter::new())
        .listen(taken.local_addr().unwrap())
        .spawn()
        .unwrap_err();
    assert!(
        matches!(&err, StartError::Listen(e) if e.kind() == std::io::ErrorKind::AddrInUse),
        "{err}"
    );
    // It converts into an io::Error for `?` in io::Result code.
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
#[allow(deprecated)]
fn the_old_names_still_work() {
    let server = listening(StringConverter::new());
    let client = client(StringConverter::new());
    assert_eq!(server.listen_address(), server.local_address());
    let (conn, result) = client
        .connect_waiting(server.local_addr().unwrap(), Delivery::Merged, WAIT)
        .unwrap();
    result.unwrap();
    client.send_blocking(&conn, "one".to_owned()).unwrap();
    client
        .send_batch_blocking(&conn, ["two".to_owned()])
        .unwrap();
    let (_, result) = client
        .connect_waiting_with(server.local_addr().unwrap(), Delivery::Merged, WAIT, |_| {})
        .unwrap();
    result.unwrap();
    let at_server = accept(&server, Delivery::Merged);
    let mut got = Vec::new();
    while got.len() < 2 {
        match next(&server) {
            Event::MessageReceived(m) if m.connection == at_server => got.push(m.message),
            Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
            _ => {}
        }
    }
    assert_eq!(got, ["one", "two"]);
    // The old shutdown modes are the new ones, in patterns too.
    assert_eq!(ShutdownMode::FinishQueues, ShutdownMode::FinishQueue);
    assert!(matches!(
        ShutdownMode::FinishMessage,
        ShutdownMode::FinishMessages
    ));
    assert!(client.shutdown_timeout(ShutdownMode::FinishQueues, WAIT));
    server.shutdown(ShutdownMode::Now);
}
