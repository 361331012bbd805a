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
            .connect(server.listen_address().unwrap(), Delivery::Merged)
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
        assert!(futures::executor::block_on(server.recv_async()).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_with_tasks_on_tokio() {
    let server = listening(StringConverter::new());
    let echo = {
        let server = server.clone();
        tokio::spawn(async move {
            while let Some(event) = server.recv_async().await {
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
    assert!(matches!(connected, Some(Event::FinishConnect(f)) if f.success()));
    for i in 0..50 {
        client.send_async(&conn, format!("ping {i}")).await.unwrap();
        match tokio::time::timeout(WAIT, client.recv_connection_async(&conn))
            .await
            .expect("in time")
        {
            Some(Event::MessageReceived(m)) => assert_eq!(m.message, format!("ping {i}")),
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
