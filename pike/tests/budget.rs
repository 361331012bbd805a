//! One budget for everything a peer can make a connector hold, each case
//! against a peer (or an application) that pushes past it: received
//! messages counted by the bytes read for them whatever the converter
//! reports, serde messages by the memory they hold, and the unsent side
//! (queues and write buffers across every connection) within the same
//! budget: reading pauses, `try_send` says `Full`, a blocking sender waits
//! and is let go when the budget frees, a plain send past it comes back.

mod util;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pike::converter::Converter;
use pike::converters::StringConverter;
use pike::converters::codec::{Codec, CodecConverter};
use pike::error::{ProtocolError, SerializeError};
use pike::{Connection, Connector, Delivery, DisconnectMode, Event, RejectReason, ShutdownMode};
use util::*;

/// What one read may add past a bound: a read's worth of input held back
/// undecoded, plus the one message whose event crossed the bound.
const ONE_READ: usize = 256 * 1024 + 64 * 1024;

/// Length-prefixed byte blobs whose codec reports nothing of their size
/// (the default `message_size`: a `Vec`'s 24 bytes).
struct Blobs;

impl Codec for Blobs {
    type Message = Vec<u8>;

    fn encode(&self, m: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), SerializeError> {
        out.extend_from_slice(&(m.len() as u32).to_be_bytes());
        out.extend_from_slice(m);
        Ok(())
    }

    fn decode(&self, buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
        let Some(len) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(len.try_into().unwrap()) as usize;
        Ok(buf.get(4..4 + len).map(|body| (body.to_vec(), 4 + len)))
    }
}

fn blob_wire(n: usize, fill: u8) -> Vec<u8> {
    let mut out = Vec::new();
    Blobs.encode(&vec![fill; n], &mut out).unwrap();
    out
}

/// A thread that writes `chunks` to `s` in turn, counting them, until the
/// connection fails.
fn write_chunks(
    mut s: RawPeer,
    chunks: Vec<Vec<u8>>,
) -> (Arc<AtomicUsize>, std::thread::JoinHandle<RawPeer>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let handle = std::thread::spawn(move || {
        for chunk in chunks {
            if s.write_all(&chunk).is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
        s
    });
    (written, handle)
}

fn undelivered<C: Converter>(c: &Connector<C>) -> u64 {
    c.stats().undelivered_events
}

over_transports! {
    fn a_converter_that_reports_no_size_is_counted_by_the_bytes_read(net: Net) {
        const SHARE: usize = 256 * 1024;
        const BLOB: usize = 64 * 1024;
        let c = builder_on(net, CodecConverter::new(Blobs))
            .listen_on(net)
            .connection_share(SHARE)
            .spawn()
            .unwrap();
        let peer = raw_connect_to(&c);
        let conn = accept(&c, Delivery::Merged);
        let chunks: Vec<Vec<u8>> = (0..200).map(|i| blob_wire(BLOB, i as u8)).collect();
        let (written, writer) = write_chunks(peer, chunks);
        let stalled_at = until_stalled(&written);
        assert!(stalled_at < 200, "reading never paused");
        // Counted as 24 bytes each, 256 KiB of share would have let some
        // 2,000 of them (128 MiB) in.
        let held = c.memory_in_use();
        assert!(held <= SHARE + ONE_READ, "{held} held against a share of {SHARE}");
        let events = undelivered(&c) as usize;
        assert!(
            events * BLOB <= SHARE + ONE_READ,
            "{events} messages of {BLOB} bytes queued against a share of {SHARE}"
        );
        // Nothing lost: every blob arrives, in order, once taken.
        for i in 0..200 {
            match next(&c) {
                Event::MessageReceived(m) => {
                    assert_eq!(m.connection, conn);
                    assert_eq!(m.message.len(), BLOB);
                    assert!(m.message.iter().all(|&b| b == i as u8), "blob {i}");
                }
                other => panic!("{other:?}"),
            }
        }
        drop(writer.join().unwrap());
        assert!(matches!(next(&c), Event::RemoteDisconnect(_)));
        assert_eq!(c.memory_in_use(), 0, "everything given back");
    }
}

#[cfg(feature = "postcard")]
mod serde_flood {
    use super::*;
    use pike::converters::serde::PostcardConverter;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    enum Msg {
        Job { id: u64, name: String },
        Done { id: u64 },
    }

    fn job_wire(c: &PostcardConverter<Msg>, id: u64, len: usize) -> Vec<u8> {
        encode_with_room(
            c,
            &Msg::Job {
                id,
                name: "j".repeat(len),
            },
            1 << 20,
        )
    }

    over_transports! {
        /// The job queue's case: peers send large jobs to an application
        /// that does not keep up; the budget (not the share) is the bound.
        fn large_serde_messages_stay_within_the_budget_against_a_slow_application(net: Net) {
            const BUDGET: usize = 2 << 20;
            const JOB: usize = 128 * 1024;
            const PEERS: usize = 4;
            const JOBS: u64 = 60;
            let converter = PostcardConverter::<Msg>::new();
            let c = builder_on(net, converter)
                .listen_on(net)
                .memory_budget(BUDGET)
                .connection_share(64 << 20)
                .spawn()
                .unwrap();
            // All connected and accepted first: no message comes before the
            // last `RemoteConnect`.
            let peers: Vec<RawPeer> = (0..PEERS).map(|_| raw_connect_to(&c)).collect();
            for _ in 0..PEERS {
                accept(&c, Delivery::Merged);
            }
            let writers: Vec<_> = peers
                .into_iter()
                .map(|peer| {
                    let chunks = (0..JOBS).map(|id| job_wire(&converter, id, JOB)).collect();
                    write_chunks(peer, chunks)
                })
                .collect();
            for (written, _) in &writers {
                until_stalled(written);
            }
            let held = c.memory_in_use();
            assert!(
                held <= BUDGET + PEERS * ONE_READ,
                "{held} held against a budget of {BUDGET}"
            );
            let queued = undelivered(&c) as usize;
            assert!(
                queued * JOB <= BUDGET + PEERS * ONE_READ,
                "{queued} jobs of {JOB} bytes queued against a budget of {BUDGET}"
            );
            // The application catches up: every job arrives, in order per peer.
            let mut next_id: std::collections::HashMap<Connection, u64> = Default::default();
            let mut got = 0;
            while got < PEERS as u64 * JOBS {
                match next(&c) {
                    Event::MessageReceived(m) => {
                        let Msg::Job { id, name } = m.message else { panic!("not a job") };
                        let want = next_id.entry(m.connection).or_default();
                        assert_eq!(id, *want);
                        assert_eq!(name.len(), JOB);
                        *want += 1;
                        got += 1;
                    }
                    other => panic!("not a job: {:?}", other.connection()),
                }
            }
            for (_, writer) in writers {
                drop(writer.join().unwrap());
            }
            c.shutdown(ShutdownMode::Now);
        }
    }

    #[test]
    fn a_serde_message_counts_the_memory_it_holds_in_the_unsent_queue() {
        let (l, addr) = raw_listener_on(Net::Tcp);
        // Room for a body of 1 MiB and a little (a message over the limit
        // is refused at `send`).
        let converter = PostcardConverter::<Msg>::new().with_max_message_size(2 << 20);
        let job = || Msg::Job {
            id: 1,
            name: "n".repeat(1 << 20),
        };
        assert!(converter.message_size(&job()) >= 1 << 20);
        let c = client_on(Net::Tcp, converter);
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let _peer = l.accept(); // never reads
        connected(&c);
        for _ in 0..16 {
            c.send(&conn, job()).unwrap();
        }
        // What the socket did not take waits, counted at what it holds.
        let q = c.queued(&conn).unwrap();
        assert!(q.messages > 0, "the socket took 16 MiB");
        assert!(q.bytes >= q.messages << 20, "{q:?}");
        assert!(
            c.memory_in_use() >= q.messages << 20,
            "{}",
            c.memory_in_use()
        );
        c.shutdown(ShutdownMode::Now);
    }
}

/// A server whose application answers every request with a reply ten
/// times its size (plain `send`), counting replies and the ones handed
/// back.
fn replier(
    c: &Connector<StringConverter>,
) -> (std::thread::JoinHandle<(usize, usize)>, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let c = c.clone();
    let handle = std::thread::spawn(move || {
        let (mut replied, mut handed_back) = (0, 0);
        while let Ok(event) = c.recv() {
            match event {
                Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                Event::MessageReceived(m) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    c.send(&m.connection, m.message.repeat(10)).unwrap();
                    replied += 1;
                }
                Event::RejectedMessage(r) => {
                    assert!(matches!(r.reason, RejectReason::QueueFull), "{}", r.reason);
                    handed_back += 1;
                }
                Event::RemoteDisconnect(r) => {
                    handed_back += r.queued.len() + r.incomplete.iter().count()
                }
                Event::FinishDisconnect(f) => {
                    handed_back += f.queued.len() + f.incomplete.iter().count()
                }
                other => panic!("{other:?}"),
            }
        }
        (replied, handed_back)
    });
    (handle, requests)
}

over_transports! {
    /// The doubler's case: many connections send requests and never read
    /// the replies. Each connection's own bounds (a 1 MiB mark, a 16 MiB
    /// cap) are far above its share of the budget: the budget holds them
    /// all together, and a well-behaved client is still answered.
    fn peers_that_never_read_their_replies_hold_no_more_than_the_budget(net: Net) {
        const BUDGET: usize = 1 << 20;
        const PEERS: usize = 12;
        let c = builder_on(net, StringConverter::new())
            .listen_on(net)
            .memory_budget(BUDGET)
            .spawn()
            .unwrap();
        let (replier, requests) = replier(&c);
        let request = wire(&[&"r".repeat(100)]).repeat(100);
        let mut floods = Vec::new();
        for _ in 0..PEERS {
            let peer = raw_connect_to(&c);
            floods.push(write_chunks(peer, vec![request.clone(); 20_000]));
        }
        for (written, _) in &floods {
            let stalled_at = until_stalled(written);
            assert!(stalled_at < 20_000, "reading from a greedy peer never paused");
        }
        until_stalled(&requests);
        let stats = c.stats();
        // Queued replies across connections: the budget, one small reply
        // to each connection's empty queue, and what a read in flight made.
        let slack = PEERS * 8 * 1024 + 10 * ONE_READ;
        assert!(
            stats.queued_bytes as usize <= BUDGET + slack,
            "{} bytes queued over {PEERS} connections, budget {BUDGET}",
            stats.queued_bytes
        );
        let held = c.memory_in_use();
        assert!(held <= 2 * BUDGET + slack, "{held} held, budget {BUDGET}");
        // A client that reads its replies is answered meanwhile.
        let mut polite = raw_connect_to(&c);
        for _ in 0..3 {
            write_all(&mut polite, &wire(&["hi"]));
            let want = wire(&[&"hi".repeat(10)]);
            assert_eq!(read_exactly(&mut polite, want.len()), want);
        }
        drop(polite);
        // Nothing lost: every request was answered or its reply handed back.
        c.shutdown(ShutdownMode::Now);
        let (replied, handed_back) = replier.join().unwrap();
        assert_eq!(replied, requests.load(Ordering::SeqCst));
        assert!(handed_back > 0, "the greedy peers' replies came back");
        drop(floods);
    }
}

/// `try_send`s `message` to `conn` until it says `Full`, in rounds until
/// `enough` holds of what is queued then (at most 1,000): between a `Full`
/// and the look at the queue the network loop may have moved what was
/// queued into a socket that still had room (TCP grows its buffers), so a
/// round tells only once the socket is full too. Returns how many went, and
/// the queue after the last round.
fn send_until_full(
    c: &Connector<StringConverter>,
    conn: Connection,
    message: &str,
    enough: impl Fn(pike::Queued) -> bool,
) -> (usize, pike::Queued) {
    let mut sent = 0;
    let mut q = c.queued(&conn).unwrap();
    for _ in 0..1000 {
        while c.try_send(&conn, message.to_owned()).is_ok() {
            sent += 1;
            assert!(sent < 100_000, "try_send never said Full");
        }
        q = c.queued(&conn).unwrap();
        if enough(q) {
            break;
        }
    }
    (sent, q)
}

/// A client connector connected to `n` raw peers that never read.
fn never_readers(
    net: Net,
    builder: pike::ConnectorBuilder<StringConverter>,
    n: usize,
) -> (Connector<StringConverter>, Vec<(Connection, RawPeer)>) {
    let c = builder.spawn().unwrap();
    let mut conns = Vec::new();
    for _ in 0..n {
        let (l, addr) = raw_listener_on(net);
        let conn = c.connect(&addr, Delivery::Merged).unwrap();
        let peer = l.accept();
        connected(&c);
        conns.push((conn, peer));
    }
    (c, conns)
}

over_transports! {
    /// The chat server's case: users who never read, and an application
    /// that sends to everyone. `try_send` says `Full` once the budget is
    /// reached, even far below each connection's own high-water mark; a
    /// queue that is empty still takes a message; a blocking sender waits
    /// and is let go when another connection gives its share back.
    fn try_send_is_full_and_a_blocking_sender_waits_at_the_budget(net: Net) {
        const BUDGET: usize = 1 << 20;
        let big = "b".repeat(32 * 1024);
        let builder = builder_on(net, StringConverter::new())
            .memory_budget(BUDGET)
            .send_high_water(64 << 20)
            .send_queue_cap(256 << 20);
        let (c, peers) = never_readers(net, builder, 2);
        let (hog, other) = (peers[0].0, peers[1].0);
        // The hog fills its socket, then the budget.
        let (sent, q) = send_until_full(&c, hog, &big, |q| q.bytes >= BUDGET / 2);
        assert!(q.bytes <= BUDGET + big.len() + 8192, "{q:?}");
        assert!(q.bytes >= BUDGET / 2, "{q:?}: Full before the budget");
        // The other fills its socket; its queue then holds one message and
        // is full: the budget is reached.
        let (_, q) = send_until_full(&c, other, &big, |q| q.messages >= 1);
        assert!(q.messages >= 1, "{q:?}");
        let waiter = {
            let (c, big) = (c.clone(), big.clone());
            std::thread::spawn(move || c.send_timeout(&other, big, WAIT))
        };
        // The hog goes: its queue is handed back, the budget frees, and the
        // waiting sender goes on although its own peer still reads nothing.
        c.disconnect(&hog, DisconnectMode::Now);
        waiter.join().unwrap().expect("let go once the budget freed");
        match next(&c) {
            Event::FinishDisconnect(f) => {
                assert_eq!(f.connection, hog);
                // (Its socket may have taken more meanwhile: TCP grows its
                // buffers.)
                let back = f.queued.len() + f.incomplete.iter().count();
                assert!(back <= sent, "{back} of {sent} handed back");
            }
            other => panic!("{other:?}"),
        }
        c.shutdown(ShutdownMode::Now);
    }
}

over_transports! {
    /// Plain `send` never waits: past the budget of unsent data across the
    /// connector it hands messages back (`QueueFull`), far below the
    /// connection's own cap; a small message to another connection whose
    /// queue is empty still goes.
    fn plain_sends_past_the_budget_come_back_and_small_ones_still_go(net: Net) {
        const BUDGET: usize = 1 << 20;
        let big = "p".repeat(64 * 1024);
        let builder = builder_on(net, StringConverter::new()).memory_budget(BUDGET);
        let (c, peers) = never_readers(net, builder, 2);
        let (hog, other) = (peers[0].0, peers[1].0);
        const SENT: usize = 400; // 25 MiB: past the sockets and the budget
        for _ in 0..SENT {
            c.send(&hog, big.clone()).unwrap();
        }
        let q = c.queued(&hog).unwrap();
        assert!(q.bytes <= BUDGET + big.len(), "{q:?}");
        c.send(&other, "small".to_owned()).unwrap();
        let mut back = 0;
        loop {
            match c.recv_timeout(Duration::from_millis(500)) {
                Ok(Event::RejectedMessage(r)) => {
                    assert_eq!(r.connection, hog, "the small message was refused");
                    assert!(matches!(r.reason, RejectReason::QueueFull));
                    back += 1;
                }
                Err(pike::RecvTimeoutError::Timeout) => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(back > 0, "nothing came back");
        c.disconnect(&hog, DisconnectMode::Now);
        let unsent = match next(&c) {
            Event::FinishDisconnect(f) => f.queued.len() + f.incomplete.iter().count(),
            other => panic!("{other:?}"),
        };
        // Each message was refused, handed back, or written (the socket
        // may take more meanwhile: TCP grows its buffers).
        assert!(back + unsent <= SENT);
        c.shutdown(ShutdownMode::Now);
        drop(peers);
    }
}

#[test]
fn a_peer_that_resets_while_its_reading_is_paused_is_let_go_at_once() {
    const BUDGET: usize = 1 << 20;
    let c = Connector::builder(StringConverter::new())
        .listen(any_local_address())
        .memory_budget(BUDGET)
        .connection_share(BUDGET)
        .spawn()
        .unwrap();
    let mut peer = raw_connect(c.local_addr().unwrap());
    accept(&c, Delivery::Merged);
    // Nobody takes events: reading pauses at the budget.
    peer.set_nonblocking(true).unwrap();
    let chunk = wire(&["x"]).repeat(4096);
    let deadline = std::time::Instant::now() + WAIT;
    while c.memory_in_use() < BUDGET / 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the budget never filled"
        );
        let _ = peer.write(&chunk);
    }
    // A reset (SO_LINGER 0): the connection ends although nothing reads
    // it, and gives back what it held undecoded.
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    while c.stats().connections_open > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a reset connection was kept"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its messages decoded before the reset are all there, then its end.
    loop {
        match next(&c) {
            Event::MessageReceived(m) => assert_eq!(m.message, "x"),
            Event::RemoteDisconnect(r) => {
                assert!(
                    matches!(
                        r.reason,
                        pike::DisconnectReason::Socket(pike::SocketFailure::Io(_))
                    ),
                    "{}",
                    r.reason
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(c.memory_in_use(), 0);
}
