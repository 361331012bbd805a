//! Reconnect with backoff, over real sockets: a connect that fails is
//! tried again with the same connection and its unsent queue, until it
//! connects or the policy gives up.

mod util;

use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::{
    Address, ConnectError, ConnectOptions, Connector, Delivery, Event, Reconnect, ShutdownMode,
};
use util::*;

fn quick() -> Reconnect {
    Reconnect::new()
        .min(Duration::from_millis(5))
        .max(Duration::from_millis(40))
}

/// Waits until `done` holds, checking every millisecond, failing after
/// [`WAIT`].
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

/// A loopback port nothing listens on now (bound, then let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Takes the server's events until it has `n` messages; accepts peers.
fn messages(server: &Connector<StringConverter>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match next(server) {
            Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
            Event::MessageReceived(m) => got.push(m.message),
            other => panic!("{other:?}"),
        }
    }
    got
}

/// The client's connect is retried until a server comes up at `addr`,
/// started by `start` once the client has failed twice.
fn connects_once_the_server_is_up(
    addr: Address,
    start: impl FnOnce() -> Connector<StringConverter>,
) {
    let client = client(StringConverter::new());
    let conn = client
        .connect(&addr, ConnectOptions::new().reconnect(quick()))
        .unwrap();
    for m in ["sent", "while", "down"] {
        client.send(&conn, m.to_owned()).unwrap();
    }
    until("the client failed twice", || {
        client.stats().connect_retries >= 2
    });
    let server = start();
    // One FinishConnect, a success, for the same connection.
    match next(&client) {
        Event::FinishConnect(f) => {
            assert!(f.success(), "{:?}", f.reason);
            assert_eq!(f.connection, conn);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(messages(&server, 3), ["sent", "while", "down"]);
    client.send(&conn, "after".to_owned()).unwrap();
    assert_eq!(messages(&server, 1), ["after"]);
    assert_eq!(client.stats().connected, 1);
    client.shutdown(ShutdownMode::Now);
    server.shutdown(ShutdownMode::Now);
}

#[test]
fn a_tcp_client_started_before_its_server_connects_once_it_is_up() {
    let port = free_port();
    connects_once_the_server_is_up(Address::from(("127.0.0.1", port)), || {
        Connector::builder(StringConverter::new())
            .listen(("127.0.0.1", port))
            .spawn()
            .expect("the port is still free")
    });
}

#[test]
fn a_unix_client_started_before_its_server_connects_once_it_is_up() {
    let path = unique_socket_path();
    let at = Address::unix(&path);
    connects_once_the_server_is_up(at.clone(), || {
        Connector::builder(StringConverter::new())
            .listen(at)
            .spawn()
            .unwrap()
    });
}

#[test]
fn a_name_is_resolved_again_for_every_attempt() {
    let port = free_port();
    connects_once_the_server_is_up(Address::from(format!("localhost:{port}")), || {
        Connector::builder(StringConverter::new())
            .listen(("127.0.0.1", port))
            .spawn()
            .expect("the port is still free")
    });
}

#[test]
fn the_blocking_connect_waits_through_the_retries() {
    let port = free_port();
    let client = client(StringConverter::new());
    let starter = {
        let client = client.clone();
        std::thread::spawn(move || {
            until("the client failed", || client.stats().connect_retries >= 1);
            Connector::builder(StringConverter::new())
                .listen(("127.0.0.1", port))
                .spawn()
                .unwrap()
        })
    };
    let conn = client
        .connect_timeout(
            ("127.0.0.1", port),
            ConnectOptions::new().reconnect(quick()),
            WAIT,
        )
        .expect("connected on a later attempt");
    let server = starter.join().unwrap();
    client.send(&conn, "hello".to_owned()).unwrap();
    assert_eq!(messages(&server, 1), ["hello"]);
    server.shutdown(ShutdownMode::Now);
}

#[test]
fn it_gives_up_after_the_limit_and_hands_every_message_back() {
    let client = client(StringConverter::new());
    let policy = quick().give_up_after(Duration::from_millis(150));
    let started = Instant::now();
    let conn = client
        .connect(dead_address(), ConnectOptions::new().reconnect(policy))
        .unwrap();
    client.send(&conn, "a".to_owned()).unwrap();
    client.send(&conn, "b".to_owned()).unwrap();
    match next(&client) {
        Event::FinishConnect(f) => {
            assert!(
                matches!(f.reason, Some(ConnectError::Io(_))),
                "{:?}",
                f.reason
            );
            assert_eq!(f.queued, ["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Tried again, and never faster than the shortest wait allows.
    let retries = client.stats().connect_retries;
    let most = started.elapsed().as_millis() as u64 / 5 + 1;
    assert!((2..=most).contains(&retries), "{retries} retries");
}

#[test]
fn disconnect_and_shutdown_end_the_retries() {
    let client = client(StringConverter::new());
    let policy = Reconnect::new()
        .min(Duration::from_secs(3600))
        .max(Duration::from_secs(3600));
    let conn = client
        .connect(dead_address(), ConnectOptions::new().reconnect(policy))
        .unwrap();
    client.send(&conn, "x".to_owned()).unwrap();
    until("its first attempt failed", || {
        client
            .connection_stats(&conn)
            .is_some_and(|s| s.connect_failures == 1)
    });
    assert_eq!(client.stats().connect_retries, 0, "an hour to wait");
    client.disconnect(&conn, pike::DisconnectMode::FinishQueue);
    match next(&client) {
        Event::FinishConnect(f) => {
            assert!(
                matches!(f.reason, Some(ConnectError::Cancelled)),
                "{:?}",
                f.reason
            );
            assert_eq!(f.queued, ["x"]);
        }
        other => panic!("{other:?}"),
    }
    // A shutdown does not wait for an hour-long backoff either.
    let other = client
        .connect(dead_address(), ConnectOptions::new().reconnect(policy))
        .unwrap();
    assert!(client.shutdown_timeout(ShutdownMode::FinishQueue, WAIT));
    match next(&client) {
        Event::FinishConnect(f) => {
            assert_eq!(f.connection, other);
            assert!(matches!(
                f.reason,
                Some(ConnectError::Cancelled) | Some(ConnectError::Io(_))
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_connector_wide_policy_applies_unless_a_connect_says_no() {
    let client = Connector::builder(StringConverter::new())
        .default_reconnect(quick().give_up_after(Duration::from_millis(100)))
        .spawn()
        .unwrap();
    let retried = client.connect(dead_address(), Delivery::Merged).unwrap();
    let once = client
        .connect(dead_address(), ConnectOptions::new().no_reconnect())
        .unwrap();
    let mut ended = Vec::new();
    while ended.len() < 2 {
        match next(&client) {
            Event::FinishConnect(f) => {
                assert!(!f.success());
                ended.push(f.connection);
            }
            other => panic!("{other:?}"),
        }
    }
    // The one that does not retry ends first.
    assert_eq!(ended, [once, retried]);
    assert!(client.stats().connect_retries >= 1);
}

/// The client's next `LinkDown`, skipping nothing else.
fn link_down(client: &Connector<StringConverter>) -> pike::event::LinkDown {
    match next(client) {
        Event::LinkDown(d) => d,
        other => panic!("expected LinkDown, got {other:?}"),
    }
}

#[test]
fn a_link_the_server_drops_comes_back_and_the_connection_goes_on() {
    let server = listening(StringConverter::new());
    let client = client(StringConverter::new());
    let conn = client
        .connect_timeout(
            server.local_addr().unwrap(),
            ConnectOptions::new().reconnect(quick()),
            WAIT,
        )
        .unwrap();
    client.send(&conn, "first".to_owned()).unwrap();
    let first = accept(&server, Delivery::Merged);
    assert!(matches!(next(&server), Event::MessageReceived(m) if m.message == "first"));
    // The server drops it: the client hears that the link is down, not
    // that the connection ended.
    server.disconnect(&first, pike::DisconnectMode::Now);
    assert!(matches!(next(&server), Event::FinishDisconnect(_)));
    let down = link_down(&client);
    assert_eq!(down.connection, conn);
    assert!(
        matches!(down.reason, pike::DisconnectReason::PeerClosed),
        "{:?}",
        down.reason
    );
    client.send(&conn, "second".to_owned()).unwrap();
    match next(&client) {
        Event::LinkUp(u) => assert_eq!(u.connection, conn),
        other => panic!("expected LinkUp, got {other:?}"),
    }
    // A new connection for the server (no session), the same for the client.
    let again = accept(&server, Delivery::Merged);
    assert_ne!(again, first);
    assert!(matches!(next(&server), Event::MessageReceived(m) if m.message == "second"));
    server.send(&again, "reply".to_owned()).unwrap();
    assert!(matches!(next(&client), Event::MessageReceived(m) if m.connection == conn));
}

#[test]
fn a_server_restarted_on_its_port_gets_what_was_sent_while_it_was_down() {
    let port = free_port();
    let start = || {
        Connector::builder(StringConverter::new())
            .listen(("127.0.0.1", port))
            .spawn()
            .expect("the port is free")
    };
    let server = start();
    let client = client(StringConverter::new());
    let conn = client
        .connect_timeout(
            ("127.0.0.1", port),
            ConnectOptions::new().reconnect(quick()),
            WAIT,
        )
        .unwrap();
    client.send(&conn, "before".to_owned()).unwrap();
    assert_eq!(messages(&server, 1), ["before"]);
    server.shutdown(ShutdownMode::Now);
    let _ = link_down(&client);
    for m in ["while", "down"] {
        client.send(&conn, m.to_owned()).unwrap();
    }
    until("the client tried again", || {
        client.stats().connect_retries >= 2
    });
    let server = start();
    match next(&client) {
        Event::LinkUp(u) => assert_eq!(u.connection, conn),
        other => panic!("expected LinkUp, got {other:?}"),
    }
    assert_eq!(messages(&server, 2), ["while", "down"]);
    server.shutdown(ShutdownMode::Now);
}

#[test]
fn giving_up_on_a_lost_link_ends_the_connection_with_what_waited() {
    let server = listening(StringConverter::new());
    let client = client(StringConverter::new());
    let policy = quick().give_up_after(Duration::from_millis(100));
    let conn = client
        .connect_timeout(
            server.local_addr().unwrap(),
            ConnectOptions::new().reconnect(policy),
            WAIT,
        )
        .unwrap();
    let _ = accept(&server, Delivery::Merged);
    server.shutdown(ShutdownMode::Now);
    let _ = link_down(&client);
    client.send(&conn, "never delivered".to_owned()).unwrap();
    match next(&client) {
        Event::RemoteDisconnect(r) => {
            assert_eq!(r.connection, conn);
            assert_eq!(r.queued, ["never delivered"]);
        }
        other => panic!("expected RemoteDisconnect, got {other:?}"),
    }
    // It is gone: a send to it comes back.
    client.send(&conn, "after".to_owned()).unwrap();
    assert!(matches!(next(&client), Event::RejectedMessage(r) if r.message == "after"));
}
