//! `pike-overload`: Pike servers under attack, measured from outside as an
//! attacker would, each server in its own process.
//!
//! ```text
//! cargo build --release -p pike --examples --features pike/postcard
//! cargo run --release -p pike-compare --bin pike-overload [--quick]
//! ```
//!
//! The servers are this program run again as `pike-overload serve KIND`
//! (all with default settings unless a row says otherwise):
//!
//! * `doubler`: the doubler example (float converter, 10 workers in
//!   `recv`, replying with twice each number); `echo` is the same with the
//!   string converter, echoing;
//! * `jobs`: the job queue's message type (postcard), its application slow
//!   to take events (one each 20 ms, as when its stdout is a full pipe);
//! * `tls-echo`, `mtls-echo`: the echo over TLS, without and with client
//!   certificates;
//!
//! and, where built (the first command above), the `chat_server` example
//! and the `pike` command themselves. For each attack the driver reports
//! the server's peak RSS (from `VmHWM`, reset before the attack through
//! `clear_refs`), its RSS after the attack is over, the slowest reply a
//! well-behaved client (one request every 100 ms) got while the attack ran,
//! and what else the row is about.
//!
//! `PIKE_OVERLOAD_ROWS=f,j` runs only those rows; `PIKE_OVERLOAD_STATS=1`
//! has the built-in servers print their stats and, as it rises, glibc's
//! count of the heap in use and free in its arenas (beside what Pike
//! counts); `PIKE_OVERLOAD_WRAP="heaptrack"` runs them under a tool.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pike::converters::serde::PostcardConverter;
use pike::converters::{FloatConverter, StringConverter};
use pike::tls::rustls;
use pike::tls::{ServerTls, rustls::pki_types};
use pike::{Connector, Delivery, Event};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

type Result<T> = std::result::Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outcome = match args.get(1).map(String::as_str) {
        Some("serve") => serve(&args[2..]),
        _ => drive(args.iter().any(|a| a == "--quick")),
    };
    if let Err(e) = outcome {
        eprintln!("pike-overload: {e}");
        std::process::exit(1);
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ----- the servers ---------------------------------------------------------------

/// The job queue's message type.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Msg {
    Job {
        id: u64,
        name: String,
        payload: Vec<f64>,
    },
    Done {
        id: u64,
        sum: f64,
    },
}

fn serve(args: &[String]) -> Result<()> {
    let kind = args.first().map_or("doubler", String::as_str);
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match kind {
        "doubler" => serve_with(Connector::builder(FloatConverter), |x: f64| x * 2.0),
        "echo" => serve_with(Connector::builder(StringConverter::new()), |s: String| s),
        "tls-echo" | "mtls-echo" => {
            let mut tls = ServerTls::from_pem_files(arg(1), arg(2)).map_err(err)?;
            if kind == "mtls-echo" {
                tls = tls.with_client_ca_file(arg(3)).map_err(err)?;
            }
            let mut builder =
                Connector::builder(StringConverter::new()).listen_tls("127.0.0.1:0", tls);
            if let Some(ms) = args.iter().position(|a| a == "--message-timeout-ms") {
                let ms: u64 = arg(ms + 1).parse().map_err(err)?;
                builder = builder.message_timeout(Duration::from_millis(ms));
            }
            serve_on(builder, |s: String| s)
        }
        "jobs" => serve_jobs(),
        other => Err(format!("unknown server {other}")),
    }
}

fn serve_with<C: pike::Converter>(
    builder: pike::ConnectorBuilder<C>,
    reply: fn(C::Message) -> C::Message,
) -> Result<()> {
    serve_on(builder.listen("127.0.0.1:0"), reply)
}

/// The doubler example's server: workers in `recv`, a reply per message;
/// prints its port, runs until stdin ends.
fn serve_on<C: pike::Converter>(
    builder: pike::ConnectorBuilder<C>,
    reply: fn(C::Message) -> C::Message,
) -> Result<()> {
    let server = builder.spawn().map_err(err)?;
    println!("{}", server.local_addr().expect("listening").port());
    if std::env::var_os("PIKE_OVERLOAD_STATS").is_some() {
        let server = server.clone();
        std::thread::spawn(move || {
            // glibc's own count of its heap: what the allocator holds
            // beside what Pike counts (`memory` in the stats).
            #[repr(C)]
            struct MallInfo2 {
                /// arena, ordblks, smblks, hblks, hblkhd, usmblks,
                /// fsmblks, uordblks, fordblks, keepcost
                f: [usize; 10],
            }
            #[allow(unsafe_code)]
            unsafe extern "C" {
                fn mallinfo2() -> MallInfo2;
            }
            let mut peak = 0;
            let mut ticks = 0u32;
            while !server.is_stopped() {
                std::thread::sleep(Duration::from_millis(10));
                // SAFETY: mallinfo2 takes nothing and returns a plain struct.
                #[allow(unsafe_code)]
                let m = unsafe { mallinfo2() };
                let in_use = m.f[7] + m.f[4];
                if in_use > peak + (1 << 20) {
                    peak = in_use;
                    eprintln!(
                        "heap peak {} MiB in use, {} MiB free in arenas of {} MiB | {}",
                        in_use >> 20,
                        m.f[8] >> 20,
                        m.f[0] >> 20,
                        server.stats()
                    );
                }
                ticks += 1;
                if ticks.is_multiple_of(50) {
                    eprintln!("stats: {}", server.stats());
                }
            }
        });
    }
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || {
                while let Ok(event) = server.recv() {
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

/// The job queue's server side, its application slow: one event each
/// 20 ms, a job's `Done` answered with `Done`.
fn serve_jobs() -> Result<()> {
    let server = Connector::builder(PostcardConverter::<Msg>::new())
        .listen("127.0.0.1:0")
        .spawn()
        .map_err(err)?;
    println!("{}", server.local_addr().expect("listening").port());
    let app = {
        let server = server.clone();
        std::thread::spawn(move || {
            while let Ok(event) = server.recv() {
                match event {
                    Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                    Event::MessageReceived(m) => {
                        if let Msg::Job { id, .. } = m.message {
                            let _ = server.send(&m.connection, Msg::Done { id, sum: 0.0 });
                        } else {
                            let _ = server.send(&m.connection, m.message);
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    _ => {}
                }
            }
        })
    };
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    server.shutdown(pike::ShutdownMode::Now);
    let _ = app.join();
    Ok(())
}

// ----- certificates --------------------------------------------------------------

/// PEM files of a run: a CA, a server certificate for `localhost` and
/// 127.0.0.1 and a client certificate, both signed by it.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("pike-overload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(err)?;
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "overload CA");
        let ca = params.self_signed(&ca_key).map_err(err)?;
        let pki = Self { dir, ca, ca_key };
        pki.write("ca.pem", &pki.ca.pem())?;
        for (name, names) in [
            ("server", vec!["localhost", "127.0.0.1"]),
            ("client", vec!["client.test"]),
        ] {
            let key = KeyPair::generate().map_err(err)?;
            let names = names.into_iter().map(str::to_owned).collect::<Vec<_>>();
            let cert = CertificateParams::new(names)
                .map_err(err)?
                .signed_by(&key, &pki.ca, &pki.ca_key)
                .map_err(err)?;
            pki.write(&format!("{name}.pem"), &cert.pem())?;
            pki.write(&format!("{name}.key"), &key.serialize_pem())?;
        }
        Ok(pki)
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.dir.join(name), text).map_err(err)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A rustls client trusting the CA, presenting `identity` if given.
    fn client_config(
        &self,
        identity: Option<(
            Vec<pki_types::CertificateDer<'static>>,
            pki_types::PrivateKeyDer<'static>,
        )>,
    ) -> Arc<rustls::ClientConfig> {
        let roots = pike::tls::load_roots(self.path("ca.pem")).expect("the CA");
        let builder = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        Arc::new(match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).expect("identity"),
        })
    }

    /// The client certificate of the CA.
    fn client_identity(
        &self,
    ) -> (
        Vec<pki_types::CertificateDer<'static>>,
        pki_types::PrivateKeyDer<'static>,
    ) {
        (
            pike::tls::load_certs(self.path("client.pem")).expect("client certificate"),
            pike::tls::load_key(self.path("client.key")).expect("client key"),
        )
    }

    /// A certificate followed by `n` self-issued intermediates that all
    /// bear its issuer's name, none leading to the CA.
    fn hostile_chain(
        n: usize,
    ) -> (
        Vec<pki_types::CertificateDer<'static>>,
        pki_types::PrivateKeyDer<'static>,
    ) {
        let cas: Vec<(rcgen::Certificate, KeyPair)> = (0..n.max(1))
            .map(|_| {
                let key = KeyPair::generate().expect("key");
                let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.distinguished_name.push(DnType::CommonName, "evil");
                (params.self_signed(&key).expect("cert"), key)
            })
            .collect();
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["client.test".to_owned()])
            .expect("params")
            .signed_by(&key, &cas[0].0, &cas[0].1)
            .expect("leaf");
        let mut chain = vec![leaf.der().clone()];
        chain.extend(cas.iter().take(n).map(|c| c.0.der().clone()));
        (
            chain,
            pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A stream to a server: TCP, or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A blocking TLS client of `addr`, its handshake done.
fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<Box<dyn Stream>> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let name = pki_types::ServerName::try_from("localhost").expect("a name");
    let conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Box::new(s))
}

// ----- the driver ----------------------------------------------------------------

/// A server process, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Its output lines (the examples print on stdout and stderr).
    lines: Option<crossbeam_channel::Receiver<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Result<Self> {
        let exe = std::env::current_exe().map_err(err)?;
        // PIKE_OVERLOAD_WRAP runs the server under a tool (heaptrack, perf).
        let wrap = std::env::var("PIKE_OVERLOAD_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut child = match wrap.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(wrap).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = child
            .arg("serve")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(err)?;
        // The first line that is a number (a wrapping tool may print first).
        let port = BufReader::new(child.stdout.take().expect("piped"))
            .lines()
            .map_while(std::result::Result::ok)
            .find_map(|l| l.trim().parse::<u16>().ok())
            .ok_or("no port from the server")?;
        Ok(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            lines: None,
        })
    }

    /// A program of the workspace (an example or `pike`) that prints
    /// `listening on ADDR` on stderr.
    fn program(path: &Path, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        for out in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(out)
                    .lines()
                    .map_while(std::result::Result::ok)
                {
                    let _ = tx.send(l);
                }
            });
        }
        let addr = loop {
            let l = rx
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| format!("{} did not start", path.display()))?;
            if let Some(a) = l.strip_prefix("listening on ") {
                break a.replace("0.0.0.0", "127.0.0.1").parse().map_err(err)?;
            }
        };
        Ok(Self {
            child,
            addr,
            lines: Some(rx),
        })
    }

    /// The next output line containing `needle`, within `wait`.
    fn line_with(&self, needle: &str, wait: Duration) -> Option<String> {
        let rx = self.lines.as_ref()?;
        let deadline = Instant::now() + wait;
        loop {
            let l = rx.recv_deadline(deadline).ok()?;
            if l.contains(needle) {
                return Some(l);
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        if let Some(stdin) = &mut self.child.stdin {
            let _ = writeln!(stdin, "{line}");
        }
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

    /// Sends a signal by name (`TERM`, `INT`).
    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status();
    }

    /// Waits up to `wait` for the process to exit: its status and when.
    fn exited_within(&mut self, wait: Duration) -> Option<(i32, Duration)> {
        let started = Instant::now();
        while started.elapsed() < wait {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status.code().unwrap_or(-1), started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A well-behaved client: one round every 100 ms, timing each.
struct Probe {
    stop: Arc<AtomicBool>,
    worst_us: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One round of a probe: a request and its reply.
type Round = Box<dyn FnMut() -> std::io::Result<()> + Send>;

impl Probe {
    /// A probe whose rounds `setup` makes (once connected).
    fn spawn(setup: impl FnOnce() -> std::io::Result<Round> + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let worst_us = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, worst_us, failed) = (stop.clone(), worst_us.clone(), failed.clone());
            std::thread::spawn(move || {
                let run = || -> std::io::Result<()> {
                    let mut round = setup()?;
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        round()?;
                        worst_us.fetch_max(started.elapsed().as_micros() as u64, Ordering::SeqCst);
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

    /// A request and reply of fixed bytes over `connect`'s stream.
    fn echo(
        connect: impl FnOnce() -> std::io::Result<Box<dyn Stream>> + Send + 'static,
        request: &'static [u8],
        reply_len: usize,
    ) -> Self {
        Self::spawn(move || {
            let mut s = connect()?;
            let mut reply = vec![0; reply_len];
            Ok(Box::new(move || {
                s.write_all(request)?;
                s.flush()?;
                s.read_exact(&mut reply)
            }))
        })
    }

    fn tcp(addr: SocketAddr, request: &'static [u8], reply_len: usize) -> Self {
        Self::echo(
            move || {
                let s = TcpStream::connect(addr)?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                Ok(Box::new(s))
            },
            request,
            reply_len,
        )
    }

    /// Two chat users: one says `ping`, the other waits to read it.
    fn chat(addr: SocketAddr) -> Self {
        // Nicknames of their own: the last probe's may not be free yet.
        static PROBES: AtomicUsize = AtomicUsize::new(0);
        let n = PROBES.fetch_add(1, Ordering::Relaxed);
        Self::spawn(move || {
            let (a_nick, b_nick) = (format!("probe{n}a"), format!("probe{n}b"));
            let mut a = chat_join(addr, &a_nick)?;
            // Both users read all the time (the server drops one that does
            // not): the first throws away what it gets.
            let mut a_in = a.try_clone()?;
            std::thread::spawn(move || {
                let mut sink = vec![0; 1 << 16];
                while matches!(a_in.read(&mut sink), Ok(n) if n > 0) {}
            });
            let mut b = BufReader::new(chat_join(addr, &b_nick)?);
            let said = format!("{a_nick} says: ping");
            let want = format!("{} {said}", said.len()).into_bytes();
            // Each `ping` the second sees is passed on.
            let (seen, pings) = crossbeam_channel::unbounded();
            std::thread::spawn(move || {
                while read_until_message(&mut b, &want).is_ok() && seen.send(()).is_ok() {}
            });
            Ok(Box::new(move || {
                a.write_all(b"4 ping")?;
                pings
                    .recv_timeout(Duration::from_secs(30))
                    .map_err(|_| std::io::Error::other("no ping within 30 s"))
            }))
        })
    }

    /// No probe: for a row whose server stops.
    fn none(_addr: SocketAddr) -> Self {
        Self::spawn(|| Ok(Box::new(|| Ok(()))))
    }

    /// The slowest round, or why there was none.
    fn finish(mut self) -> String {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let worst = self.worst_us.load(Ordering::SeqCst);
        if self.failed.load(Ordering::SeqCst) {
            "FAILED (no reply within 30 s)".to_owned()
        } else if worst == 0 {
            "n/a".to_owned()
        } else {
            format!(
                "{:.1} ms",
                self.worst_us.load(Ordering::SeqCst) as f64 / 1000.0
            )
        }
    }

    fn finish_after(self, d: Duration) {
        std::thread::sleep(d);
        let _ = self.finish();
    }
}

/// A raw chat user that has joined as `nick` (the original protocol).
fn chat_join(addr: SocketAddr, nick: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("{} {nick}", nick.len()).as_bytes())?;
    let mut ok = [0u8; 4];
    s.read_exact(&mut ok)?;
    if &ok != b"2 ok" {
        return Err(std::io::Error::other("nickname refused"));
    }
    Ok(s)
}

/// Reads string messages until one is `want` (in its wire form).
fn read_until_message(r: &mut BufReader<TcpStream>, want: &[u8]) -> std::io::Result<()> {
    loop {
        let mut len = Vec::new();
        r.read_until(b' ', &mut len)?;
        let n: usize = std::str::from_utf8(&len[..len.len().saturating_sub(1)])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| std::io::Error::other("not the string format"))?;
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        len.extend_from_slice(&body);
        if len == want {
            return Ok(());
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
    /// What else the row measures.
    outcome: String,
}

/// Where the workspace's release programs are (beside this one).
fn release_program(name: &str) -> Option<PathBuf> {
    let dir = std::env::current_exe().ok()?.parent()?.to_owned();
    [dir.join(name), dir.join("examples").join(name)]
        .into_iter()
        .find(|p| p.exists())
}

fn drive(quick: bool) -> Result<()> {
    let seconds = if quick { 3 } else { 10 };
    let pki = Pki::new()?;
    let mut rows = vec![
        measure(
            Server::start(&["doubler"])?,
            "a. 4 threads flooding `1.0 ` requests",
            doubler_probe,
            |s| flood(s.addr, 4, seconds),
        )?,
        measure(
            Server::start(&["echo"])?,
            "b. 200 connections, 3/4 of a 1 MiB string each",
            echo_probe,
            |s| partial_messages(s.addr, 200, 1 << 20, seconds),
        )?,
        measure(
            Server::start(&["echo"])?,
            "b'. 200 connections announcing 16 MiB strings",
            echo_probe,
            |s| partial_messages(s.addr, 200, 16 << 20, seconds),
        )?,
        measure(
            Server::start(&["doubler"])?,
            "c. one client that never reads",
            doubler_probe,
            |s| never_reads(s.addr, seconds),
        )?,
        measure(
            Server::start(&["doubler"])?,
            "d. 1,000 slowloris connections",
            doubler_probe,
            |s| slowloris(s.addr, 1000, seconds),
        )?,
        measure(
            Server::start(&["jobs"])?,
            "e. 1 MiB postcard jobs, slow application",
            jobs_probe,
            |s| serde_flood(s.addr, seconds),
        )?,
        measure(
            Server::start(&["doubler"])?,
            "f. connections sending 200 KB, never reading",
            doubler_probe,
            |s| send_and_leave(s.addr, 2, 2),
        )?,
    ];
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let tls_client = pki.client_config(None);
    let mtls_client = pki.client_config(Some(pki.client_identity()));
    rows.push(measure(
        Server::start(&["tls-echo", &cert, &key])?,
        "g. 2,500 TLS connections, 64 KiB of a ClientHello",
        |a| tls_probe(a, &tls_client),
        |s| unfinished_hellos(s.addr, 2500, seconds),
    )?);
    rows.push(measure(
        Server::start(&["tls-echo", &cert, &key, "--message-timeout-ms", "3000"])?,
        "h. 100 TLS peers trickling a record, 3 s timeout",
        |a| tls_probe(a, &tls_client),
        |s| trickled_records(s.addr, 100, &tls_client),
    )?);
    rows.push(measure(
        Server::start(&["mtls-echo", &cert, &key, &ca])?,
        "i. mutual TLS, 12 at a time: 40-intermediate chains",
        |a| tls_probe(a, &mtls_client),
        |s| hostile_chains(s.addr, 12, 40, seconds, &pki),
    )?);
    rows.push(measure(
        Server::start(&["mtls-echo", &cert, &key, &ca])?,
        "i'. the same with 4 (the most allowed)",
        |a| tls_probe(a, &mtls_client),
        |s| hostile_chains(s.addr, 12, 4, seconds, &pki),
    )?);
    match release_program("chat_server") {
        Some(chat) => {
            let start = || Server::program(&chat, &["--port", "0", "--server-nickname", "hub"]);
            rows.push(measure(
                start()?,
                "j. chat: 12 never read, one chats 25 MB",
                Probe::chat,
                |s| chat_never_readers(s, 12),
            )?);
            rows.push(measure(
                start()?,
                "k. chat: `quit` with never-readers",
                Probe::none,
                chat_quit,
            )?);
            rows.push(measure(
                start()?,
                "l. chat: 10,000 silent connections",
                Probe::chat,
                |s| silent(s, 10_000),
            )?);
            rows.push(measure(
                start()?,
                "m. chat: 150 users with 1 MiB nicknames",
                Probe::chat,
                |s| chat_nicknames(s, 150),
            )?);
        }
        None => eprintln!(
            "chat rows skipped: build the examples first (cargo build --release -p pike --examples --features pike/postcard)"
        ),
    }
    match release_program("pike") {
        Some(pike) => {
            let args = [
                "listen",
                "127.0.0.1:0",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ];
            rows.push(measure(
                Server::program(&pike, &args)?,
                "n. pike listen: SIGTERM, a TLS peer stuck",
                Probe::none,
                stop_with_stuck_peer,
            )?);
        }
        None => {
            eprintln!("the pike row skipped: build it first (cargo build --release -p pike-cli)")
        }
    }
    println!();
    println!(
        "{:<52} {:>8} {:>8} {:>9} {:>7}  {:<16} outcome",
        "attack (server: default settings, 64 MiB budget)",
        "base MiB",
        "peak MiB",
        "after MiB",
        "after/b",
        "worst reply"
    );
    for r in rows.iter().filter(|r| r.worst_reply != "skipped") {
        println!(
            "{:<52} {:>8.1} {:>8.1} {:>9.1} {:>7.2}  {:<16} {}",
            r.attack,
            r.baseline_kib as f64 / 1024.0,
            r.peak_kib as f64 / 1024.0,
            r.after_kib as f64 / 1024.0,
            r.after_kib as f64 / r.baseline_kib.max(1) as f64,
            r.worst_reply,
            r.outcome
        );
    }
    Ok(())
}

fn doubler_probe(addr: SocketAddr) -> Probe {
    Probe::tcp(addr, b"1.5 ", 4) // "3.0 "
}

fn echo_probe(addr: SocketAddr) -> Probe {
    Probe::tcp(addr, b"4 ping", 6)
}

/// A `Job` sent, its `Done` read (postcard framing).
fn jobs_probe(addr: SocketAddr) -> Probe {
    let c = PostcardConverter::<Msg>::new();
    let frame = |m: &Msg| {
        let mut out = Vec::new();
        assert!(pike::Converter::write_whole(
            &c,
            m,
            &mut pike::WriteBuf::new(&mut out, 1 << 16)
        ));
        out
    };
    let job = frame(&Msg::Job {
        id: 7,
        name: "probe".into(),
        payload: vec![],
    });
    let done = frame(&Msg::Done { id: 7, sum: 0.0 });
    Probe::spawn(move || {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reply = vec![0; done.len()];
        Ok(Box::new(move || {
            s.write_all(&job)?;
            s.read_exact(&mut reply)
        }))
    })
}

fn tls_probe(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> Probe {
    let config = config.clone();
    Probe::echo(move || tls_connect(addr, &config), b"4 ping", 6)
}

/// Warms `server` with a probe, measures its baseline, runs `attack` with
/// a probe beside it, and reads the figures.
fn measure(
    mut server: Server,
    attack: &str,
    probe: impl Fn(SocketAddr) -> Probe,
    run: impl FnOnce(&mut Server) -> Result<String>,
) -> Result<Row> {
    // `PIKE_OVERLOAD_ROWS=f,j` runs those rows only.
    if let Ok(only) = std::env::var("PIKE_OVERLOAD_ROWS")
        && !only
            .split(',')
            .any(|r| attack.split('.').next() == Some(r.trim()))
    {
        return Ok(Row {
            attack: attack.to_owned(),
            baseline_kib: 0,
            peak_kib: 0,
            after_kib: 0,
            worst_reply: "skipped".to_owned(),
            outcome: String::new(),
        });
    }
    eprintln!("{attack} ...");
    // Warm up: a few rounds, so that the baseline is a server that has
    // served.
    probe(server.addr).finish_after(Duration::from_millis(500));
    let baseline_kib = server.settled_rss();
    server.reset_peak();
    let p = probe(server.addr);
    let outcome = run(&mut server)?;
    let worst_reply = p.finish();
    let peak_kib = server.peak();
    let after_kib = server.settled_rss();
    Ok(Row {
        attack: attack.to_owned(),
        baseline_kib,
        peak_kib,
        after_kib,
        worst_reply,
        outcome,
    })
}

/// `threads` connections writing `1.0 ` requests as fast as they can for
/// `seconds`, each with a thread reading its replies.
fn flood(addr: SocketAddr, threads: usize, seconds: u64) -> Result<String> {
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
    Ok(String::new())
}

/// `n` connections each announcing a string of `size` bytes and sending
/// three quarters of it, held for `seconds`, then closed.
fn partial_messages(addr: SocketAddr, n: usize, size: usize, seconds: u64) -> Result<String> {
    let body = vec![b'p'; 64 * 1024];
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        let _ = s.write_all(format!("{size} ").as_bytes());
        conns.push((s, size * 3 / 4));
    }
    write_round_robin(&mut conns, &body, Duration::from_secs(seconds));
    Ok(String::new())
}

/// Writes what each socket takes, round after round, until `time` is up
/// (a server that stops reading leaves the rest unsent).
fn write_round_robin(conns: &mut [(TcpStream, usize)], body: &[u8], time: Duration) {
    let until = Instant::now() + time;
    while Instant::now() < until {
        let mut progress = false;
        for (s, left) in conns.iter_mut() {
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
}

/// One client writing requests for `seconds` and never reading a reply.
fn never_reads(addr: SocketAddr, seconds: u64) -> Result<String> {
    let mut s = TcpStream::connect(addr).map_err(err)?;
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .map_err(err)?;
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
    Ok(format!("{requests} requests got in before reading paused"))
}

/// `n` connections sending one byte of a request each second.
fn slowloris(addr: SocketAddr, n: usize, seconds: u64) -> Result<String> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(TcpStream::connect(addr).map_err(err)?);
    }
    let request = b"12345678901234567890.5 ";
    for second in 0..seconds as usize {
        for s in &mut conns {
            let _ = s.write_all(&request[second % (request.len() - 1)..][..1]);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(String::new())
}

/// One connection sending 1 MiB `Job`s (postcard, the body a whole 1 MiB
/// message) as fast as the server reads them, for `seconds`.
fn serde_flood(addr: SocketAddr, seconds: u64) -> Result<String> {
    let c = PostcardConverter::<Msg>::new();
    let job = Msg::Job {
        id: 1,
        name: "j".repeat((1 << 20) - 64),
        payload: vec![],
    };
    let mut frame = Vec::new();
    assert!(pike::Converter::write_whole(
        &c,
        &job,
        &mut pike::WriteBuf::new(&mut frame, 2 << 20)
    ));
    let mut s = TcpStream::connect(addr).map_err(err)?;
    let mut r = s.try_clone().map_err(err)?;
    std::thread::spawn(move || {
        let mut buf = vec![0; 1 << 16];
        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    });
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .map_err(err)?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    let mut at = 0;
    while Instant::now() < until {
        match s.write(&frame[at..]) {
            Ok(k) => {
                at += k;
                if at == frame.len() {
                    at = 0;
                    sent += 1;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("serde flood: {e}")),
        }
    }
    Ok(format!("{sent} jobs of 1 MiB got in"))
}

/// `threads` threads, for `seconds`, opening connections that each send
/// 200 KB of requests and close without reading a reply.
fn send_and_leave(addr: SocketAddr, threads: usize, seconds: u64) -> Result<String> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let opened = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(b"1.0 ".repeat(50_000));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (opened, requests) = (opened.clone(), requests.clone());
            std::thread::spawn(move || {
                while Instant::now() < until {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
                    let _ = s.write_all(&requests);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(format!("{} connections", opened.load(Ordering::Relaxed)))
}

/// TLS records of the handshake type carrying `total` bytes of a client
/// hello that never ends.
fn endless_client_hello(total: usize) -> Vec<u8> {
    let mut body = vec![1u8, 0x00, 0xff, 0xff, 0x03, 0x03];
    body.resize(total, 0x41);
    let mut out = Vec::new();
    for chunk in body.chunks(16 * 1024) {
        out.extend_from_slice(&[22, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// `n` connections each sending 64 KiB of a ClientHello that never ends,
/// held for `seconds`.
fn unfinished_hellos(addr: SocketAddr, n: usize, seconds: u64) -> Result<String> {
    let hello = endless_client_hello(64 * 1024);
    let mut conns = Vec::new();
    for _ in 0..n {
        let s = TcpStream::connect(addr).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        conns.push((s, hello.len()));
    }
    let mut at = vec![0usize; n];
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let mut progress = false;
        for ((s, left), at) in conns.iter_mut().zip(&mut at) {
            if *left == 0 {
                continue;
            }
            match s.write(&hello[*at..]) {
                Ok(k) => {
                    *left -= k;
                    *at += k;
                    progress = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => *left = 0,
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let refused = conns
        .iter()
        .filter(|(s, _)| s.peek(&mut [0]).is_ok_and(|n| n == 0))
        .count();
    Ok(format!("{refused} closed by the server"))
}

/// `n` TLS peers, each handshaken, trickling one byte of a record a
/// second; how many the server closed within 8 s.
fn trickled_records(
    addr: SocketAddr,
    n: usize,
    config: &Arc<rustls::ClientConfig>,
) -> Result<String> {
    let mut peers = Vec::new();
    for _ in 0..n {
        let tcp = TcpStream::connect(addr).map_err(err)?;
        let name = pki_types::ServerName::try_from("localhost").expect("a name");
        let conn = rustls::ClientConnection::new(config.clone(), name).map_err(err)?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock).map_err(err)?;
        }
        s.conn.writer().write_all(b"4 slow").map_err(err)?;
        let mut record = Vec::new();
        while s.conn.wants_write() {
            s.conn.write_tls(&mut record).map_err(err)?;
        }
        s.sock.set_nonblocking(true).map_err(err)?;
        peers.push((s.sock, record, 0usize, false));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        for (sock, record, at, closed) in &mut peers {
            if *closed {
                continue;
            }
            if sock.peek(&mut [0]).is_ok_and(|k| k == 0)
                || sock
                    .peek(&mut [0])
                    .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock)
            {
                *closed = true;
                continue;
            }
            if *at + 1 < record.len() && sock.write(&record[*at..*at + 1]).is_ok() {
                *at += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let closed = peers.iter().filter(|p| p.3).count();
    Ok(format!("{closed}/{n} closed within 8 s"))
}

/// `at_once` threads, for `seconds`, each handshaking over and over with
/// a client certificate followed by `intermediates` hostile ones.
fn hostile_chains(
    addr: SocketAddr,
    at_once: usize,
    intermediates: usize,
    seconds: u64,
    pki: &Pki,
) -> Result<String> {
    let config = pki.client_config(Some(Pki::hostile_chain(intermediates)));
    let until = Instant::now() + Duration::from_secs(seconds);
    let handshakes = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..at_once)
        .map(|_| {
            let (config, handshakes) = (config.clone(), handshakes.clone());
            std::thread::spawn(move || {
                while Instant::now() < until {
                    if let Ok(mut s) = tls_connect(addr, &config) {
                        // The server's verdict comes with the first read.
                        let _ = s.read(&mut [0u8; 1]);
                    }
                    handshakes.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(format!(
        "{} refused handshakes",
        handshakes.load(Ordering::Relaxed)
    ))
}

/// `deaf` chat users who never read while another sends 25 MB of lines.
fn chat_never_readers(s: &mut Server, deaf: usize) -> Result<String> {
    let deaf: Vec<TcpStream> = (0..deaf)
        .map(|i| chat_join(s.addr, &format!("deaf{i}")).map_err(err))
        .collect::<Result<_>>()?;
    let mut talker = chat_join(s.addr, "talker").map_err(err)?;
    let line = format!("4000 {}", "t".repeat(4000));
    let mut sent = 0;
    for _ in 0..6250 {
        if talker.write_all(line.as_bytes()).is_err() {
            break;
        }
        sent += line.len();
    }
    let mut dropped = 0;
    while dropped < deaf.len()
        && s.line_with("dropped: not reading", Duration::from_secs(5))
            .is_some()
    {
        dropped += 1;
    }
    Ok(format!(
        "{} MB sent, {dropped}/{} never-readers dropped",
        sent / 1_000_000,
        deaf.len()
    ))
}

/// `quit` typed while users who never read have lines queued.
fn chat_quit(s: &mut Server) -> Result<String> {
    let _deaf: Vec<TcpStream> = (0..4)
        .map(|i| chat_join(s.addr, &format!("deaf{i}")).map_err(err))
        .collect::<Result<_>>()?;
    let mut talker = chat_join(s.addr, "talker").map_err(err)?;
    for _ in 0..100 {
        let _ = talker.write_all(format!("4000 {}", "t".repeat(4000)).as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    s.type_line("quit");
    Ok(match s.exited_within(Duration::from_secs(15)) {
        Some((status, took)) => format!("exited {status} after {:.1} s", took.as_secs_f64()),
        None => "still running 15 s later".to_owned(),
    })
}

/// `n` connections that never send a byte; the server's thread count.
fn silent(s: &mut Server, n: usize) -> Result<String> {
    let before = s.status("Threads:");
    let conns: Vec<TcpStream> = (0..n)
        .filter_map(|_| TcpStream::connect(s.addr).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let threads = s.status("Threads:");
    Ok(format!(
        "{} connected: {threads} threads ({before} before)",
        conns.len()
    ))
}

/// `n` users each sending a 1 MiB nickname, then a nickname with a newline.
fn chat_nicknames(s: &mut Server, n: usize) -> Result<String> {
    let nick = format!("{} {}", 1 << 20, "n".repeat(1 << 20));
    let mut conns = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        let mut c = TcpStream::connect(s.addr).map_err(err)?;
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(err)?;
        c.write_all(nick.as_bytes()).map_err(err)?;
        let mut answer = [0u8; 20];
        if c.read(&mut answer)
            .is_ok_and(|k| answer[..k].windows(7).any(|w| w == b"refused"))
        {
            refused += 1;
        }
        conns.push(c);
    }
    let mut forger = TcpStream::connect(s.addr).map_err(err)?;
    forger
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    let forged_nick = "eve\nhub says: hi!";
    forger
        .write_all(format!("{} {forged_nick}", forged_nick.len()).as_bytes())
        .map_err(err)?;
    let mut answer = [0u8; 20];
    let forged = !forger
        .read(&mut answer)
        .is_ok_and(|k| answer[..k].windows(7).any(|w| w == b"refused"));
    Ok(format!(
        "{refused}/{n} refused; a newline in a nickname {}",
        if forged { "TAKEN" } else { "refused" }
    ))
}

/// `pike listen` with a line queued for a TLS peer stuck before its
/// ClientHello: SIGTERM, and how long it takes to exit.
fn stop_with_stuck_peer(s: &mut Server) -> Result<String> {
    let _stuck = TcpStream::connect(s.addr).map_err(err)?;
    let _ = s.line_with("connected from", Duration::from_secs(5));
    s.type_line("a line for a peer that never handshakes");
    std::thread::sleep(Duration::from_millis(200));
    s.signal("TERM");
    Ok(match s.exited_within(Duration::from_secs(30)) {
        Some((status, took)) => {
            format!("exited {status} {:.1} s after SIGTERM", took.as_secs_f64())
        }
        None => "still running 30 s after SIGTERM".to_owned(),
    })
}
