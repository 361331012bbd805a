//! Pike-only figures: memory per idle connection, and the doubler pattern
//! (request/response through many connections with worker threads in `recv`).

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pike::converters::{BytesConverter, FloatConverter};
use pike::{Connector, Delivery, Event, ShutdownMode};

use crate::RUN_LIMIT;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// [`idle_connections`] in a fresh process (this binary with
/// `--idle-server`), so that what earlier runs left in the allocator does
/// not blur the figure.
pub(crate) fn idle_connections_in_child(n: usize) -> Result<f64, String> {
    let out = std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--idle-server", &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("idle server said {:?}: {e}", out.stdout))
}

/// `n` idle connections accepted by one connector; RSS growth per
/// connection in bytes. The clients are plain sockets in a child process
/// (this binary with `--idle-clients`), so only the connector's memory and
/// descriptors count here.
pub(crate) fn idle_connections(n: usize) -> Result<f64, String> {
    use std::process::{Command, Stdio};
    let server = Connector::builder(BytesConverter::new())
        .listen("127.0.0.1:0")
        .spawn()
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().ok_or("not listening")?;
    let mut accepted = 0;
    let mut accept_until = |target: usize| -> Result<(), String> {
        while accepted < target {
            match server.recv_timeout(RUN_LIMIT) {
                Ok(Event::RemoteConnect(r)) => {
                    r.finish_accept(Delivery::Merged);
                    accepted += 1;
                }
                other => return Err(format!("accepting: {other:?}")),
            }
        }
        Ok(())
    };
    let spawn = |count: usize| {
        Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args(["--idle-clients", &addr.to_string(), &count.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())
    };
    // Warm up the allocator and the tables with a first batch, then measure.
    let warm = n / 10;
    let mut warm_clients = spawn(warm)?;
    accept_until(warm)?;
    // Settle: let the network thread finish taking the accepts in.
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib();
    let mut clients = spawn(n - warm)?;
    accept_until(n)?;
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib();
    server.shutdown(ShutdownMode::Now);
    for c in [&mut warm_clients, &mut clients] {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    Ok((after.saturating_sub(before) * 1024) as f64 / (n - warm) as f64)
}

/// The child side of [`idle_connections`]: connects `n` sockets to `addr`
/// and holds them until its stdin closes.
pub(crate) fn hold_idle_clients(addr: &str, n: usize) {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        match TcpStream::connect(addr) {
            Ok(s) => socks.push(s),
            Err(e) => {
                eprintln!("idle client: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

/// The doubler pattern: `conns` client connections each with requests in
/// flight one at a time, `workers` threads in `recv` doubling floats.
/// Returns request/response pairs per second.
pub(crate) fn doubler(conns: usize, workers: usize, duration: Duration) -> Result<f64, String> {
    let server = Connector::builder(FloatConverter)
        .listen("127.0.0.1:0")
        .spawn()
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().ok_or("not listening")?;
    let worker_threads: Vec<_> = (0..workers)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || {
                while let Ok(e) = server.recv() {
                    match e {
                        Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                        Event::MessageReceived(m) => {
                            let _ = server.send(&m.connection, m.message * 2.0);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    // Clients: plain sockets speaking the float wire format, a few per
    // thread, each with one request in flight.
    let client_threads = 4.min(conns);
    let stop_at = Instant::now() + duration;
    let handles: Vec<_> = (0..client_threads)
        .map(|t| {
            let mine = conns / client_threads + usize::from(t < conns % client_threads);
            std::thread::spawn(move || -> Result<u64, String> {
                let mut socks = Vec::new();
                for _ in 0..mine {
                    let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                    s.set_nodelay(true).map_err(|e| e.to_string())?;
                    s.set_read_timeout(Some(RUN_LIMIT))
                        .map_err(|e| e.to_string())?;
                    let r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
                    socks.push((BufWriter::new(s), r));
                }
                let mut done = 0u64;
                let mut x = 1.0f64;
                while Instant::now() < stop_at {
                    for (w, _) in &mut socks {
                        write!(w, "{x:?} ").map_err(|e| e.to_string())?;
                        w.flush().map_err(|e| e.to_string())?;
                    }
                    for (_, r) in &mut socks {
                        let reply = read_field(r)?;
                        if reply != x * 2.0 {
                            return Err(format!("{x} doubled to {reply}"));
                        }
                        done += 1;
                    }
                    x += 1.0;
                }
                Ok(done)
            })
        })
        .collect();
    let start = Instant::now();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| "a client panicked".to_string())??;
    }
    let elapsed = start.elapsed();
    server.shutdown(ShutdownMode::Now);
    for w in worker_threads {
        let _ = w.join();
    }
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// Reads one space-terminated float.
fn read_field(r: &mut impl Read) -> Result<f64, String> {
    let mut text = Vec::new();
    let mut byte = [0u8];
    loop {
        r.read_exact(&mut byte).map_err(|e| e.to_string())?;
        if byte[0] == b' ' {
            break;
        }
        text.push(byte[0]);
    }
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| "bad float".to_string())
}
