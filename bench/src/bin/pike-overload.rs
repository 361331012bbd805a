//! `pike-overload`: a Pike server under the attacks of the overload issue,
//! measured from outside as an attacker would, in its own process.
//!
//! ```text
//! cargo run --release -p pike-compare --bin pike-overload
//! ```
//!
//! The server is this program run again as `pike-overload serve KIND`:
//! `doubler` is the doubler example (float converter, 10 workers in `recv`,
//! replying with twice each number); `echo` is the same with the string
//! converter, echoing. Both use the default settings. For each attack the
//! driver reports the server's peak RSS (from `VmHWM`, reset before the
//! attack through `clear_refs`), its RSS after the attack is over, and the
//! slowest reply a well-behaved client (one request every 100 ms) got
//! while the attack ran.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pike::converters::{FloatConverter, StringConverter};
use pike::{Connector, Delivery, Event};

type Result<T> = std::result::Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outcome = match args.get(1).map(String::as_str) {
        Some("serve") => serve(args.get(2).map_or("doubler", String::as_str)),
        _ => drive(args.iter().any(|a| a == "--quick")),
    };
    if let Err(e) = outcome {
        eprintln!("pike-overload: {e}");
        std::process::exit(1);
    }
}

// ----- the server ----------------------------------------------------------------

fn serve(kind: &str) -> Result<()> {
    match kind {
        "doubler" => serve_with(FloatConverter, |x: f64| x * 2.0),
        "echo" => serve_with(StringConverter::new(), |s: String| s),
        other => Err(format!("unknown server {other}")),
    }
}

/// The doubler example's server: workers in `recv`, a reply per message;
/// prints its port, runs until stdin ends.
fn serve_with<C: pike::Converter>(converter: C, reply: fn(C::Message) -> C::Message) -> Result<()> {
    let server = Connector::builder(converter)
        .listen("127.0.0.1:0")
        .spawn()
        .map_err(|e| e.to_string())?;
    println!("{}", server.local_addr().expect("listening").port());
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || {
                while let Some(event) = server.recv() {
                    match event {
                        Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                        Event::MessageReceived(m) => {
                            let _ = server.send(&m.connection, reply(m.message));
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    server.shutdown(pike::ShutdownMode::Now);
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

// ----- the driver ----------------------------------------------------------------

/// A server process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(kind: &str) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["serve", kind])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut port = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut port)
            .map_err(|e| e.to_string())?;
        let port: u16 = port.trim().parse().map_err(|_| "no port from the server")?;
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn status(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Resident memory now, in KiB.
    fn rss(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// Peak resident memory since the last reset, in KiB.
    fn peak(&self) -> u64 {
        self.status("VmHWM:")
    }

    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// Waits for RSS to settle (no change over 1 s, at most 10 s).
    fn settled_rss(&self) -> u64 {
        let mut last = self.rss();
        for _ in 0..10 {
            std::thread::sleep(Duration::from_secs(1));
            let now = self.rss();
            if now.abs_diff(last) < 256 {
                return now;
            }
            last = now;
        }
        last
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A well-behaved client: one request every 100 ms, timing each reply.
struct Probe {
    stop: Arc<AtomicBool>,
    worst_us: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn start(addr: SocketAddr, request: &'static [u8], reply_len: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let worst_us = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, worst_us, failed) = (stop.clone(), worst_us.clone(), failed.clone());
            std::thread::spawn(move || {
                let run = || -> std::io::Result<()> {
                    let mut s = TcpStream::connect(addr)?;
                    s.set_read_timeout(Some(Duration::from_secs(30)))?;
                    let mut reply = vec![0; reply_len];
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        s.write_all(request)?;
                        s.read_exact(&mut reply)?;
                        let us = started.elapsed().as_micros() as u64;
                        worst_us.fetch_max(us, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Ok(())
                };
                if run().is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
            })
        };
        Self {
            stop,
            worst_us,
            failed,
            thread: Some(thread),
        }
    }

    /// The slowest reply, or why there was none.
    fn finish(mut self) -> String {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.failed.load(Ordering::SeqCst) {
            "FAILED (no reply within 30 s)".to_owned()
        } else {
            format!(
                "{:.1} ms",
                self.worst_us.load(Ordering::SeqCst) as f64 / 1000.0
            )
        }
    }
}

/// One row of the report.
struct Row {
    attack: String,
    baseline_kib: u64,
    peak_kib: u64,
    after_kib: u64,
    worst_reply: String,
}

fn drive(quick: bool) -> Result<()> {
    let seconds = if quick { 3 } else { 10 };
    let rows = vec![
        measure("doubler", "a. 4 threads flooding `1.0 ` requests", |addr| {
            flood(addr, 4, seconds)
        })?,
        measure(
            "echo",
            "b. 200 connections, 3/4 of a 1 MiB string each",
            |addr| partial_messages(addr, 200, 1 << 20, seconds),
        )?,
        measure(
            "echo",
            "b'. 200 connections announcing 16 MiB strings",
            |addr| partial_messages(addr, 200, 16 << 20, seconds),
        )?,
        measure("doubler", "c. one client that never reads", |addr| {
            never_reads(addr, seconds)
        })?,
        measure("doubler", "d. 1,000 slowloris connections", |addr| {
            slowloris(addr, 1000, seconds)
        })?,
    ];
    println!();
    println!(
        "{:<50} {:>10} {:>10} {:>10} {:>10}  worst reply to a well-behaved client",
        "attack (server: default settings, 64 MiB budget)",
        "base MiB",
        "peak MiB",
        "after MiB",
        "after/base"
    );
    for r in &rows {
        println!(
            "{:<50} {:>10.1} {:>10.1} {:>10.1} {:>10.2}  {}",
            r.attack,
            r.baseline_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0,
            r.after_kib as f64 / 1024.0,
            r.after_kib as f64 / r.baseline_kib.max(1) as f64,
            r.worst_reply
        );
    }
    Ok(())
}

/// Starts a fresh server, warms it with a probe, runs `attack` with a
/// probe beside it, and reads the figures.
fn measure(kind: &str, attack: &str, run: impl FnOnce(SocketAddr) -> Result<()>) -> Result<Row> {
    eprintln!("{attack} ...");
    let server = Server::start(kind)?;
    let (request, reply_len): (&'static [u8], usize) = match kind {
        "doubler" => (b"1.5 ", 4), // "3.0 "
        _ => (b"4 ping", 6),
    };
    // Warm up: a few round trips, so that the baseline is a server that
    // has served.
    Probe::start(server.addr, request, reply_len).finish_after(Duration::from_millis(500));
    let baseline_kib = server.settled_rss();
    server.reset_peak();
    let probe = Probe::start(server.addr, request, reply_len);
    run(server.addr)?;
    let worst_reply = probe.finish();
    let peak_kib = server.peak();
    let after_kib = server.settled_rss();
    Ok(Row {
        attack: attack.to_owned(),
        baseline_kib,
        peak_kib,
        after_kib,
        worst_reply,
    })
}

impl Probe {
    fn finish_after(self, d: Duration) {
        std::thread::sleep(d);
        let _ = self.finish();
    }
}

/// `threads` connections writing `1.0 ` requests as fast as they can for
/// `seconds`, each with a thread reading its replies.
fn flood(addr: SocketAddr, threads: usize, seconds: u64) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let chunk = b"1.0 ".repeat(16 * 1024);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let chunk = chunk.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut s = TcpStream::connect(addr)?;
                let mut r = s.try_clone()?;
                let reader = std::thread::spawn(move || {
                    let mut buf = vec![0; 1 << 16];
                    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
                });
                while Instant::now() < until {
                    s.write_all(&chunk)?;
                }
                s.shutdown(std::net::Shutdown::Both)?;
                let _ = reader.join();
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| "a flooder panicked")?
            .map_err(|e| format!("flood: {e}"))?;
    }
    Ok(())
}

/// `n` connections each announcing a string of `size` bytes and sending
/// three quarters of it, held for `seconds`, then closed.
fn partial_messages(addr: SocketAddr, n: usize, size: usize, seconds: u64) -> Result<()> {
    let body = vec![b'p'; 64 * 1024];
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = s.write_all(format!("{size} ").as_bytes());
        conns.push((s, size * 3 / 4));
    }
    // Write what each socket takes, round after round, until the time is
    // up (a server that stops reading leaves the rest unsent).
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let mut progress = false;
        for (s, left) in &mut conns {
            if *left == 0 {
                continue;
            }
            match s.write(&body[..(*left).min(body.len())]) {
                Ok(k) => {
                    *left -= k;
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => *left = 0, // refused or closed by the server
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// One client writing requests for `seconds` and never reading a reply.
fn never_reads(addr: SocketAddr, seconds: u64) -> Result<()> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let chunk = b"1.0 ".repeat(16 * 1024);
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut requests = 0u64;
    while Instant::now() < until {
        match s.write(&chunk) {
            Ok(k) => requests += k as u64 / 4,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("never-reads: {e}")),
        }
    }
    eprintln!("   the client got {requests} requests in before the server stopped reading it");
    Ok(())
}

/// `n` connections sending one byte of a request each second.
fn slowloris(addr: SocketAddr, n: usize, seconds: u64) -> Result<()> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(TcpStream::connect(addr).map_err(|e| e.to_string())?);
    }
    let request = b"12345678901234567890.5 ";
    for second in 0..seconds as usize {
        for s in &mut conns {
            let _ = s.write_all(&request[second % (request.len() - 1)..][..1]);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}
