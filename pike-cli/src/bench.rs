//! `pike bench`: an in-process loopback benchmark of the library.
//!
//! Every run checks what arrived (count and sizes); a run that does not
//! add up is an error, not a figure.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use pike::converters::BytesConverter;
use pike::{Connection, Connector, Delivery, Event, ShutdownMode};

/// The longest any wait inside the benchmark may take.
const WAIT: Duration = Duration::from_secs(30);

/// One line of the results table.
struct Row {
    test: String,
    messages: usize,
    seconds: f64,
    bytes: usize,
}

pub(crate) fn run(quick: bool, connections: usize) -> Result<(), String> {
    // Found out before minutes of other runs, not after.
    if open_file_limit().is_some_and(|l| l < 2 * connections as u64 + 64) {
        return Err(too_many_open_files(connections));
    }
    let scale = if quick { 10 } else { 1 };
    let steps = 5;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new(steps).with_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}")
                .expect("a valid template"),
        )
    } else {
        ProgressBar::hidden()
    };
    bar.enable_steady_tick(Duration::from_millis(100));
    let mut rows = Vec::new();
    for (size, count) in [(16, 2_000_000), (256, 1_000_000), (64 * 1024, 20_000)] {
        bar.set_message(format!("throughput, {} messages", human_size(size)));
        rows.push(throughput(size, count / scale, 1)?);
        if size < 1024 {
            rows.push(throughput(size, count / scale, BATCH)?);
        }
        bar.inc(1);
    }
    bar.set_message("round-trip latency, 16 B");
    let latency = latency(20_000 / scale)?;
    bar.inc(1);
    bar.set_message(format!("{connections} connections"));
    rows.push(many_connections(connections, 100)?);
    bar.inc(1);
    bar.finish_and_clear();

    println!(
        "pike bench (loopback, one process; {} mode)",
        if quick { "quick" } else { "full" }
    );
    println!();
    println!(
        "{:<44} {:>10} {:>9} {:>14} {:>11}",
        "test", "messages", "seconds", "messages/s", "MB/s"
    );
    for r in &rows {
        println!(
            "{:<44} {:>10} {:>9.3} {:>14.0} {:>11.1}",
            r.test,
            r.messages,
            r.seconds,
            r.messages as f64 / r.seconds,
            r.bytes as f64 / r.seconds / 1e6
        );
    }
    println!();
    println!(
        "round trip, 16 B, {} samples: p50 {:.1} µs, p99 {:.1} µs",
        latency.0, latency.1, latency.2
    );
    Ok(())
}

fn human_size(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn converter() -> BytesConverter {
    BytesConverter::new().with_max_message_size(1 << 20)
}

/// A listening connector, a client connector, and the listening address.
fn server_and_client() -> Result<
    (
        Connector<BytesConverter>,
        Connector<BytesConverter>,
        std::net::SocketAddr,
    ),
    String,
> {
    let server = Connector::builder(converter())
        .listen("127.0.0.1:0")
        .spawn()
        .map_err(|e| format!("cannot listen: {e}"))?;
    let client = Connector::builder(converter())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let addr = server.local_addr().expect("listening");
    Ok((server, client, addr))
}

/// A listening connector and a client connected to it: (server, client,
/// the client's connection, the server's connection).
fn connected_pair() -> Result<
    (
        Connector<BytesConverter>,
        Connector<BytesConverter>,
        Connection,
        Connection,
    ),
    String,
> {
    let (server, client, addr) = server_and_client()?;
    let conn = client
        .connect_timeout(addr, Delivery::Merged, WAIT)
        .map_err(|e| format!("cannot connect: {e}"))?;
    let remote = match server.recv_timeout(WAIT) {
        Ok(Event::RemoteConnect(r)) => {
            let id = r.connection;
            r.finish_accept(Delivery::Merged);
            id
        }
        other => return Err(format!("expected a connection, got {other:?}")),
    };
    Ok((server, client, conn, remote))
}

/// "Too many open files".
const EMFILE: i32 = 24;

/// Messages per `send_batch`/`recv_batch` in the batched rows.
const BATCH: usize = 256;

/// One connection, `count` messages of `size` bytes one way, sent with
/// `send` (batch 1) or `send_batch` and taken with `recv` or `recv_batch`.
/// The sender keeps a bounded window of messages in flight, as an
/// application would.
fn throughput(size: usize, count: usize, batch: usize) -> Result<Row, String> {
    let (server, client, conn, _) = connected_pair()?;
    let received = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let (server, received) = (server.clone(), received.clone());
        std::thread::spawn(move || -> Result<Instant, String> {
            let mut events = Vec::with_capacity(batch);
            let mut got = 0;
            while got < count {
                events.clear();
                let n = server
                    .recv_batch(&mut events, batch, WAIT)
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("no message in time".into());
                }
                for event in events.drain(..) {
                    match event {
                        Event::MessageReceived(m) if m.message.len() == size => got += 1,
                        other => return Err(format!("unexpected {other:?}")),
                    }
                }
                received.store(got, Ordering::Relaxed);
            }
            Ok(Instant::now())
        })
    };
    let payload = Bytes::from(vec![b'p'; size]);
    // In flight: under the unsent queue's cap (16 MiB by default), past
    // which a `send_batch` would be handed back.
    let window = ((8 << 20) / (size + 64)).clamp(64.max(batch * 4), 65_536);
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        while sent - received.load(Ordering::Relaxed) >= window {
            if start.elapsed() > WAIT * 4 {
                return Err("the receiver stopped making progress".into());
            }
            std::thread::yield_now();
        }
        let n = batch.min(count - sent);
        if n == 1 {
            client
                .send_waiting_for_room(&conn, payload.clone())
                .map_err(|e| e.to_string())?;
        } else {
            client
                .send_batch(&conn, std::iter::repeat_n(payload.clone(), n))
                .map_err(|e| e.to_string())?;
        }
        sent += n;
    }
    let end = receiver
        .join()
        .map_err(|_| "the receiver panicked".to_string())??;
    client.shutdown(ShutdownMode::Now);
    server.shutdown(ShutdownMode::Now);
    let how = if batch == 1 {
        "one by one".to_owned()
    } else {
        format!("batches of {batch}")
    };
    Ok(Row {
        test: format!("throughput, {}, {how}", human_size(size)),
        messages: count,
        seconds: (end - start).as_secs_f64(),
        bytes: count * size,
    })
}

/// Ping-pong of 16-byte messages: samples, p50 and p99 in microseconds.
fn latency(samples: usize) -> Result<(usize, f64, f64), String> {
    let (server, client, conn, _) = connected_pair()?;
    let echo = {
        let server = server.clone();
        std::thread::spawn(move || {
            while let Ok(event) = server.recv() {
                if let Event::MessageReceived(m) = event {
                    let _ = server.send(&m.connection, m.message);
                }
            }
        })
    };
    let payload = Bytes::from_static(b"0123456789abcdef");
    let mut rtts = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        client
            .send(&conn, payload.clone())
            .map_err(|e| e.to_string())?;
        match client.recv_timeout(WAIT) {
            Ok(Event::MessageReceived(m)) if m.message == payload => rtts.push(start.elapsed()),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    client.shutdown(ShutdownMode::Now);
    server.shutdown(ShutdownMode::Now);
    let _ = echo.join();
    rtts.sort();
    let at =
        |q: f64| rtts[((rtts.len() as f64 * q) as usize).min(rtts.len() - 1)].as_secs_f64() * 1e6;
    Ok((samples, at(0.50), at(0.99)))
}

/// The soft limit on open files, where the system tells it.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One line for a lack of file descriptors, with what to do about it.
fn too_many_open_files(n: usize) -> String {
    let limit = open_file_limit().map_or_else(String::new, |l| format!(" (the limit is {l})"));
    format!(
        "{n} connections need about {} file descriptors{limit}: raise the limit with `ulimit -n` or lower --connections",
        2 * n + 64
    )
}

/// `n` connections each sending `each` 16-byte messages, interleaved.
fn many_connections(n: usize, each: usize) -> Result<Row, String> {
    let (server, client, addr) = server_and_client()?;
    let total = n * each;
    let receiver = {
        let server = server.clone();
        std::thread::spawn(move || -> Result<Instant, String> {
            let mut per_conn = std::collections::HashMap::new();
            let mut got = 0;
            while got < total {
                match server.recv_timeout(WAIT) {
                    Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
                    Ok(Event::MessageReceived(m)) if m.message.len() == 16 => {
                        *per_conn.entry(m.connection).or_insert(0) += 1;
                        got += 1;
                    }
                    other => return Err(format!("unexpected {other:?}")),
                }
            }
            if per_conn.len() != n || per_conn.values().any(|&c| c != each) {
                return Err("messages missing on some connection".into());
            }
            Ok(Instant::now())
        })
    };
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(
            client
                .connect(addr, Delivery::Merged)
                .map_err(|e| e.to_string())?,
        );
    }
    let mut connected = 0;
    while connected < n {
        match client.recv_timeout(WAIT) {
            Ok(Event::FinishConnect(f)) => match f.reason {
                None => connected += 1,
                Some(pike::ConnectError::Io(e)) if e.raw_os_error() == Some(EMFILE) => {
                    return Err(too_many_open_files(n));
                }
                Some(e) => return Err(format!("cannot connect: {e}")),
            },
            Ok(other) => return Err(format!("connecting: unexpected {other:?}")),
            Err(e) => return Err(format!("connecting: {e}")),
        }
    }
    let payload = Bytes::from_static(b"0123456789abcdef");
    for _ in 0..each {
        for conn in &conns {
            client
                .send(conn, payload.clone())
                .map_err(|e| e.to_string())?;
        }
    }
    let end = receiver
        .join()
        .map_err(|_| "the receiver panicked".to_string())??;
    client.shutdown(ShutdownMode::Now);
    server.shutdown(ShutdownMode::Now);
    Ok(Row {
        test: format!("{n} connections x {each}, 16 B (incl. connect)"),
        messages: total,
        seconds: (end - start).as_secs_f64(),
        bytes: total * 16,
    })
}
