//! The async front end on two executors: the `futures` crate's
//! `block_on` and tokio's multi-thread runtime. No runtime is a
//! dependency of the library.

mod util;

use std::io::Read;

use futures::{FutureExt, StreamExt};

use pike::converters::StringConverter;
use pike::{Delivery, Event, ShutdownMode};
use util::*;

over_transports! {
    fn events_stream_on_the_futures_executor(net: Net) {
        let server = listening_on(net, StringConverter::new());
        let client = client_on(net, StringConverter::new());
        let conn = client
            .connect(server.local_address().unwrap(), Delivery::Merged)
            .unwrap();
        // (A disconnect while still connecting would cancel the connect.)
        connected(&client);
        for i in 0..100 {
            client.send(&conn, format!("m{i}")).unwrap();
        }
        client.disconnect(&conn, pike::DisconnectMode::FinishQueue);
        // On a thread of its own, so that a hang fails the test in time.
        let (done, got) = crossbeam_channel::bounded(1);
        let mut events = server.events();
        std::thread::spawn(move || {
            let got: Vec<String> = futures::executor::block_on(async {
                let mut got = Vec::new();
                while let Some(event) = events.next().await {
                    match event {
                        Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                        Event::MessageReceived(m) => got.push(m.message),
                        Event::RemoteDisconnect(_) => break,
                        other => panic!("{other:?}"),
                    }
                }
                got
            });
            let _ = done.send(got);
        });
        let got = got
            .recv_timeout(WAIT)
            .expect("the stream delivered in time");
        assert_eq!(got, (0..100).map(|i| format!("m{i}")).collect::<Vec<_>>());
        // The stream ends once the connector has stopped.
        server.shutdown(ShutdownMode::Now);
        assert!(futures::executor::block_on(server.recv_async()).unwrap_err() == pike::RecvError::Stopped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_tasks_on_tokio() {
    let server = listening(StringConverter::new());
    let echo = {
        let server = server.clone();
        tokio::spawn(async move {
            while let Ok(event) = server.recv_async().await {
                match event {
                    Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                    Event::MessageReceived(m) => {
                        server.send_async(&m.connection, m.message).await.unwrap();
                    }
                    _ => {}
                }
            }
        })
    };
    let client = client(StringConverter::new());
    let conn = client
        .connect(server.local_addr().unwrap(), Delivery::Separate)
        .unwrap();
    let connected = tokio::time::timeout(WAIT, client.recv_connection_async(&conn))
        .await
        .expect("in time");
    assert!(matches!(connected, Ok(Event::FinishConnect(f)) if f.success()));
    for i in 0..50 {
        client.send_async(&conn, format!("ping {i}")).await.unwrap();
        match tokio::time::timeout(WAIT, client.recv_connection_async(&conn))
            .await
            .expect("in time")
        {
            Ok(Event::MessageReceived(m)) => assert_eq!(m.message, format!("ping {i}")),
            other => panic!("{other:?}"),
        }
    }
    server.shutdown(ShutdownMode::Now);
    tokio::time::timeout(WAIT, echo)
        .await
        .expect("the echo task ends with the connector")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_async_waits_for_room_without_blocking() {
    let (l, addr) = raw_listener();
    let client = pike::Connector::builder(StringConverter::new())
        .send_high_water(64 * 1024)
        .spawn()
        .unwrap();
    let conn = client.connect(addr, Delivery::Merged).unwrap();
    let mut peer = raw_accept(&l);
    connected(&client);
    let big = "a".repeat(32 * 1024);
    // Fill until a send has to wait: the sockets full, the queue past its mark.
    let mut sent = 0;
    let waiting = loop {
        let mut send = Box::pin(client.send_async(&conn, big.clone()));
        match (&mut send).now_or_never() {
            Some(result) => {
                result.unwrap();
                sent += 1;
            }
            None => break send,
        }
        assert!(sent < 10_000, "never had to wait");
        tokio::task::yield_now().await;
    };
    // The peer reads; the waiting send completes.
    let reader = std::thread::spawn(move || {
        let mut total = 0;
        let mut buf = vec![0; 1 << 16];
        while let Ok(n) = peer.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("room came")
        .unwrap();
    client.disconnect(&conn, pike::DisconnectMode::FinishQueue);
    let total = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let one = format!("{} ", big.len()).len() + big.len();
    assert_eq!(total, (sent + 1) * one);
}

/// Runs `f` to completion on a thread of its own with the `futures`
/// executor, failing the test if it takes longer than [`WAIT`].
fn on_executor<T: Send + 'static>(f: impl std::future::Future<Output = T> + Send + 'static) -> T {
    let (done, got) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = done.send(futures::executor::block_on(f));
    });
    got.recv_timeout(WAIT)
        .expect("the future completed in time")
}

over_transports! {
    fn an_awaited_connect_ends_with_its_outcome_and_an_awaited_shutdown_with_the_loop(net: Net) {
        let server = listening_on(net, StringConverter::new());
        let client = client_on(net, StringConverter::new());
        let addr = server.local_address().unwrap();
        let (c, s) = (client.clone(), server.clone());
        let got = on_executor(async move {
            let conn = c.connect_async(addr, Delivery::Merged).await.expect("connected");
            c.send_async(&conn, "hello".to_owned()).await.expect("running");
            let mut got = Vec::new();
            while got.is_empty() {
                match s.recv_async().await.expect("running") {
                    Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                    Event::MessageReceived(m) => got.push(m.message),
                    other => panic!("{other:?}"),
                }
            }
            // Written out, then closed: the server hears the close.
            assert!(c.shutdown_async(ShutdownMode::FinishQueue).await);
            match s.recv_async().await.expect("running") {
                Event::RemoteDisconnect(r) => assert!(r.queued.is_empty()),
                other => panic!("{other:?}"),
            }
            // The shutdown's own disconnect, then the end.
            match c.recv_async().await {
                Ok(Event::FinishDisconnect(f)) => assert!(f.queued.is_empty() && f.reason.is_none()),
                other => panic!("{other:?}"),
            }
            assert!(c.recv_async().await.unwrap_err() == pike::RecvError::Stopped, "stopped: no event left");
            got
        });
        // (The FinishConnect was the future's, not an event.)
        assert_eq!(got, ["hello"]);
    }
}

over_transports! {
    fn an_awaited_connect_that_fails_says_why(net: Net) {
        let client = client_on(net, StringConverter::new());
        let c = client.clone();
        let outcome = on_executor(async move {
            c.connect_async(net.dead_address(), Delivery::Merged).await
        });
        assert!(matches!(outcome, Err(pike::ConnectError::Io(_))), "{outcome:?}");
        // Nothing about it in the queue.
        client.shutdown(ShutdownMode::Now);
        assert!(client.recv().unwrap_err() == pike::RecvError::Stopped);
    }
}

#[test]
fn an_awaited_connect_given_up_is_never_reported_as_connected() {
    let server = listening(StringConverter::new());
    let client = util::client(StringConverter::new());
    // Dropped at once: abandoned (closed without an event), or, had it
    // connected meanwhile, closed with a FinishDisconnect.
    for _ in 0..20 {
        drop(client.connect_async(server.local_addr().unwrap(), Delivery::Merged));
    }
    let stopped = client.clone();
    assert!(on_executor(async move {
        stopped.shutdown_async(ShutdownMode::Now).await
    }));
    while let Ok(event) = client.recv() {
        assert!(matches!(event, Event::FinishDisconnect(_)), "{event:?}");
    }
    // A connector already stopped: the connect says so.
    let c = client.clone();
    assert!(
        on_executor(async move { c.connect_async("127.0.0.1:9", Delivery::Merged).await }).is_err()
    );
}
