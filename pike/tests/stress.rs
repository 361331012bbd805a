//! Many threads, many connections, random failures: exactly-once delivery,
//! whole messages, read backpressure and the nothing-lost rule.

mod util;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pike::converters::StringConverter;
use pike::{Connection, Delivery, DisconnectMode, Event, ShutdownMode};
use util::*;

over_transports! {
    fn eight_receivers_four_peers_exactly_once_in_order(net: Net) {
        const PEERS: usize = 4;
        const EACH: usize = 10_000;
        let c = listening_on(net, StringConverter::new());
        let addr = c.local_address().unwrap();
        let total = Arc::new(AtomicUsize::new(0));
        let receivers: Vec<_> = (0..8)
            .map(|_| {
                let (c, total) = (c.clone(), total.clone());
                std::thread::spawn(move || {
                    let mut seen: Vec<(Connection, String)> = Vec::new();
                    let deadline = Instant::now() + WAIT;
                    while total.load(Ordering::SeqCst) < PEERS * EACH {
                        assert!(Instant::now() < deadline, "messages missing");
                        match c.recv_timeout(Duration::from_millis(20)) {
                            Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
                            Ok(Event::MessageReceived(m)) => {
                                seen.push((m.connection, m.message));
                                total.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(other) => panic!("{other:?}"),
                            Err(_) => {}
                        }
                    }
                    seen
                })
            })
            .collect();
        let peers: Vec<_> = (0..PEERS)
            .map(|p| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let mut s = raw_connect_addr(&addr).unwrap();
                    let msgs: Vec<String> = (0..EACH).map(|i| format!("{p}:{i}")).collect();
                    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
                    write_all(&mut s, &wire(&refs));
                    s
                })
            })
            .collect();
        let _streams: Vec<RawPeer> = peers.into_iter().map(|p| p.join().unwrap()).collect();
        let mut all = HashSet::new();
        for r in receivers {
            // Each taker sees each connection's messages in increasing order.
            let mut last: HashMap<Connection, usize> = HashMap::new();
            for (conn, m) in r.join().unwrap() {
                let (_, seq) = m.split_once(':').unwrap();
                let seq: usize = seq.parse().unwrap();
                if let Some(prev) = last.insert(conn, seq) {
                    assert!(prev < seq, "{conn}: {seq} after {prev}");
                }
                assert!(all.insert(m), "delivered twice");
            }
        }
        assert_eq!(all.len(), PEERS * EACH);
    }
}

over_transports! {
    fn eight_senders_on_one_connection_never_interleave(net: Net) {
        const THREADS: usize = 8;
        const EACH: usize = 2_000;
        let (l, addr) = raw_listener_on(net);
        let c = client_on(net, StringConverter::new());
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let mut peer = l.accept();
        let expected_bytes: usize = (0..THREADS)
            .flat_map(|t| (0..EACH).map(move |i| format!("{t}:{i}:{}", "p".repeat(i % 50))))
            .map(|m| wire(&[&m]).len())
            .sum();
        let reader = std::thread::spawn(move || read_exactly(&mut peer, expected_bytes));
        let senders: Vec<_> = (0..THREADS)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        c.send(&conn, format!("{t}:{i}:{}", "p".repeat(i % 50)))
                            .unwrap();
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let (messages, partial) = decode_strings(&reader.join().unwrap());
        assert_eq!((messages.len(), partial), (THREADS * EACH, 0));
        let mut next = [0usize; THREADS];
        for m in messages {
            let mut parts = m.split(':');
            let t: usize = parts.next().unwrap().parse().unwrap();
            let i: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(
                parts.next().unwrap(),
                "p".repeat(i % 50),
                "message cut or mixed"
            );
            assert_eq!(i, next[t], "thread {t}'s messages out of order");
            next[t] += 1;
        }
    }
}

over_transports! {
    fn reading_pauses_while_the_application_falls_behind(net: Net) {
        const TOTAL: usize = 64 * 1024; // 64 MB of 1 KiB messages
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .connection_share(64 * 1024)
            .spawn()
            .unwrap();
        let mut peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let written = Arc::new(AtomicUsize::new(0));
        let writer = {
            let written = written.clone();
            std::thread::spawn(move || {
                let msg = wire(&[&"w".repeat(1018)]);
                let batch: Vec<u8> = msg.iter().copied().cycle().take(msg.len() * 64).collect();
                for _ in 0..TOTAL / 64 {
                    write_all(&mut peer, &batch);
                    written.fetch_add(64, Ordering::SeqCst);
                }
                peer
            })
        };
        // Let the flood run into the pause: wait until the writer stalls.
        let stalled_at = until_stalled(&written);
        assert!(
            stalled_at < TOTAL / 2,
            "the peer wrote {stalled_at} of {TOTAL} messages: reading did not pause"
        );
        // Taking events resumes reading until everything has arrived.
        let mut got = 0;
        while got < TOTAL {
            match next(&c) {
                Event::MessageReceived(m) => {
                    assert_eq!((m.connection, m.message.len()), (conn, 1018));
                    got += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        let _peer = writer.join().unwrap();
    }
}

/// How a stress peer behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Peer {
    /// Reads until EOF.
    ReadAll,
    /// Reads this many bytes, then closes.
    CloseAfter(usize),
    /// Reads this many bytes, then resets the connection.
    ResetAfter(usize),
}

fn run_peer(mut s: RawPeer, behaviour: Peer) -> Vec<u8> {
    use std::io::Read;
    let limit = match behaviour {
        Peer::ReadAll => usize::MAX,
        Peer::CloseAfter(n) | Peer::ResetAfter(n) => n,
    };
    let mut got = Vec::new();
    let mut buf = vec![0; 8192];
    while got.len() < limit {
        let want = buf.len().min(limit - got.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("peer read: {e}"),
        }
    }
    if let Peer::ResetAfter(_) = behaviour {
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    got
}

/// One round of the nothing-lost stress test.
/// The messages an event hands back to the application (the partly
/// written one first), or the event itself if it is not one that does.
fn handed_back<M>(event: Event<M>) -> Result<Vec<M>, Event<M>> {
    match event {
        Event::FinishConnect(f) => Ok(f.queued),
        Event::FinishDisconnect(f) => Ok(f.incomplete.into_iter().chain(f.queued).collect()),
        Event::RemoteDisconnect(r) => Ok(r.incomplete.into_iter().chain(r.queued).collect()),
        Event::RejectedMessage(r) => Ok(vec![r.message]),
        other => Err(other),
    }
}

fn nothing_lost_round(net: Net, seed: u64) {
    let mut rng = Rng::new(seed);
    let (l, addr) = raw_listener_on(net);
    // Small unsent-queue bounds, so that `Full`, timeouts and `QueueFull`
    // rejections happen too.
    let high_water = 1 + rng.below(256 * 1024);
    let mut builder = builder_on(net, StringConverter::new())
        .write_buffer_size(1 + rng.below(64 * 1024))
        .send_high_water(high_water)
        .send_queue_cap(high_water + rng.below(512 * 1024));
    if rng.below(3) == 0 {
        // The peers never send: idle connections end with their own
        // reason, and hand back what they did not write.
        builder = builder.idle_timeout(Duration::from_millis(20 + rng.below(200) as u64));
    }
    let c = builder.spawn().unwrap();
    let k = 1 + rng.below(4);
    let behaviours: Vec<Peer> = (0..k)
        .map(|_| match rng.below(4) {
            0 => Peer::CloseAfter(rng.below(200_000)),
            1 => Peer::ResetAfter(rng.below(200_000)),
            _ => Peer::ReadAll,
        })
        .collect();
    let mut conns = Vec::new();
    let mut peers = Vec::new();
    for &b in &behaviours {
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let s = l.accept();
        // The peer learns which connection it is from its first message.
        peers.push(std::thread::spawn(move || run_peer(s, b)));
        conns.push(conn);
    }
    let mut sent: HashMap<Connection, Vec<String>> = HashMap::new();
    let mut back: HashMap<Connection, Vec<String>> = HashMap::new();
    let n = 50 + rng.below(300);
    for id in 0..n {
        let i = rng.below(k);
        let m = format!("{id}:{}", "x".repeat(rng.below(5000)));
        // The four ways to send; those that can hand the message straight
        // back count it as handed back.
        let refused = match rng.below(4) {
            0 => c.try_send(&conns[i], m.clone()).err().map(|e| {
                assert!(e.is_full(), "seed {seed}: {e}");
                e.into_inner()
            }),
            1 => c
                .send_timeout(
                    &conns[i],
                    m.clone(),
                    Duration::from_millis(rng.below(3) as u64),
                )
                .err()
                .map(|e| {
                    assert!(e.is_timeout(), "seed {seed}: {e}");
                    e.into_inner()
                }),
            _ => {
                c.send(&conns[i], m.clone()).unwrap();
                None
            }
        };
        if let Some(m) = refused {
            back.entry(conns[i]).or_default().push(m);
        }
        sent.entry(conns[i]).or_default().push(m);
        if rng.below(60) == 0 {
            let mode = [
                DisconnectMode::Now,
                DisconnectMode::FinishMessage,
                DisconnectMode::FinishQueue,
            ][rng.below(3)];
            c.disconnect(&conns[rng.below(k)], mode);
        }
    }
    let mode = [
        ShutdownMode::Now,
        ShutdownMode::FinishMessage,
        ShutdownMode::FinishQueue,
    ][rng.below(3)];
    c.shutdown(mode);

    let mut finals: HashMap<Connection, usize> = HashMap::new();
    while let Ok(event) = c.recv() {
        let conn = event.connection();
        *finals.entry(conn).or_default() += usize::from(event.is_final());
        match handed_back(event) {
            Ok(messages) => back.entry(conn).or_default().extend(messages),
            Err(other) => panic!("seed {seed}: {other:?}"),
        }
    }
    for (i, peer) in peers.into_iter().enumerate() {
        let conn = conns[i];
        let (read, _) = decode_strings(&peer.join().unwrap());
        let sent = sent.remove(&conn).unwrap_or_default();
        let back = back.remove(&conn).unwrap_or_default();
        assert_eq!(finals.get(&conn), Some(&1), "seed {seed}: one final event");
        let mut seen = HashSet::new();
        for m in read.iter().chain(&back) {
            assert!(
                seen.insert(m),
                "seed {seed}: a message both read and returned, or twice"
            );
        }
        let sent_set: HashSet<&String> = sent.iter().collect();
        assert!(
            seen.iter().all(|m| sent_set.contains(m)),
            "seed {seed}: unknown message"
        );
        if behaviours[i] == Peer::ReadAll {
            // Nothing can be lost in the network: every message was read by
            // the peer or handed back.
            assert_eq!(seen.len(), sent.len(), "seed {seed}: {behaviours:?}");
        }
    }
}

over_transports! {
    fn nothing_is_lost_under_random_disconnects_shutdowns_and_peer_failures(net: Net) {
        for seed in 0..40 {
            nothing_lost_round(net, seed);
        }
    }
}

over_transports! {
    /// Sends are written on the sending thread; accepting and disconnecting are
    /// too, so a `finish_accept` racing a stream of sends, then a disconnect,
    /// keep their order: the peer reads every message, in order.
    fn sends_racing_finish_accept_keep_their_order(net: Net) {
        const N: usize = 2_000;
        for round in 0..20 {
            let c = listening_on(net, StringConverter::new());
            let mut peer = raw_connect_to(&c);
            let remote = match next(&c) {
                Event::RemoteConnect(r) => r,
                other => panic!("{other:?}"),
            };
            let conn = remote.connection;
            let progress = Arc::new(AtomicUsize::new(0));
            let accepted = Arc::new(AtomicUsize::new(0));
            let sender = {
                let (c, progress, accepted) = (c.clone(), progress.clone(), accepted.clone());
                std::thread::spawn(move || {
                    for i in 0..N {
                        c.send(&conn, i.to_string()).unwrap();
                        progress.store(i + 1, Ordering::Release);
                    }
                    // Disconnecting before the accept would reject the
                    // connection; that is not what this test is about.
                    let deadline = Instant::now() + WAIT;
                    while accepted.load(Ordering::Acquire) == 0 {
                        assert!(Instant::now() < deadline, "never accepted");
                        std::thread::yield_now();
                    }
                    c.disconnect(&conn, DisconnectMode::FinishQueue);
                })
            };
            // Accept somewhere in the middle of the stream, differently each round.
            let at = round * N / 20;
            let deadline = Instant::now() + WAIT;
            while progress.load(Ordering::Acquire) < at {
                assert!(Instant::now() < deadline, "the sender stalled");
                std::thread::yield_now();
            }
            remote.finish_accept(Delivery::Merged);
            accepted.store(1, Ordering::Release);
            let (read, partial) = decode_strings(&read_to_eof(&mut peer));
            sender.join().unwrap();
            let expected: Vec<String> = (0..N).map(|i| i.to_string()).collect();
            assert_eq!(partial, 0, "round {round}");
            assert!(
                read == expected,
                "round {round}: {} messages read, not 0..{N} in order",
                read.len()
            );
            assert!(matches!(next(&c), Event::FinishDisconnect(f) if f.queued.is_empty()));
        }
    }
}

over_transports! {
    /// Senders on several threads keep sending while another thread shuts the
    /// connector down: every message is read by the peer or handed back (as
    /// `send`'s error or in an event), exactly once, and each sender's messages
    /// arrive in order.
    fn sends_racing_shutdown_lose_nothing(net: Net) {
        for seed in 0..12u64 {
            let (l, addr) = raw_listener_on(net);
            let c = client_on(net, StringConverter::new());
            let conn = c.connect(&addr, Delivery::Merged).unwrap();
            let mut s = l.accept();
            let peer = std::thread::spawn(move || read_to_eof(&mut s));
            let started = Arc::new(AtomicUsize::new(0));
            let senders: Vec<_> = (0..3)
                .map(|t| {
                    let (c, started) = (c.clone(), started.clone());
                    std::thread::spawn(move || {
                        let mut sent = 0usize;
                        loop {
                            let m = format!("{t}:{sent}");
                            sent += 1;
                            started.fetch_add(1, Ordering::Relaxed);
                            if let Err(e) = c.send(&conn, m) {
                                return (sent, e.0);
                            }
                        }
                    })
                })
                .collect();
            let deadline = Instant::now() + WAIT;
            while started.load(Ordering::Relaxed) < 3_000 * (1 + seed as usize % 4) {
                assert!(Instant::now() < deadline, "the senders stalled");
                std::thread::yield_now();
            }
            let mode = [
                ShutdownMode::Now,
                ShutdownMode::FinishMessage,
                ShutdownMode::FinishQueue,
            ][seed as usize % 3];
            c.shutdown(mode);
            let mut back: Vec<String> = Vec::new();
            while let Ok(event) = c.recv() {
                match handed_back(event) {
                    Ok(messages) => back.extend(messages),
                    Err(other) => panic!("seed {seed}: {other:?}"),
                }
            }
            let mut total = 0;
            for sender in senders {
                let (sent, refused) = sender.join().unwrap();
                total += sent;
                back.push(refused);
            }
            let (read, _) = decode_strings(&peer.join().unwrap());
            let mut last = [None::<usize>; 3];
            for m in &read {
                let (t, i) = m.split_once(':').unwrap();
                let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
                assert!(last[t] < Some(i), "seed {seed}: {m} out of order");
                last[t] = Some(i);
            }
            let mut seen = HashSet::new();
            for m in read.iter().chain(&back) {
                assert!(
                    seen.insert(m),
                    "seed {seed}: {m} read and returned, or twice"
                );
            }
            assert_eq!(
                seen.len(),
                total,
                "seed {seed} ({mode:?}): a message was lost"
            );
        }
    }
}
