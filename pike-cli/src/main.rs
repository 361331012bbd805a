//! `pike`: talk to Pike peers from the command line, move files, and
//! benchmark the library.

mod bench;
mod cert;
mod counting;
mod message;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pike::converter::Converter;
use pike::converters::{
    BoolConverter, BytesConverter, DEFAULT_MAX_MESSAGE_SIZE, FileConverter, FloatConverter,
    IntConverter, StringConverter,
};
use pike::tls::{ClientTls, ServerTls};
use pike::{
    ConnectOptions, Connection, Connector, ConnectorBuilder, Delivery, DisconnectMode, Event,
    Reconnect, ShutdownMode,
};

use counting::Counting;
use message::LineMessage;

/// How long `connect` and friends wait for the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "pike",
    version,
    about = "Message-oriented sockets from the command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Limits of a listening command.
#[derive(Debug, Clone, clap::Args)]
struct Limits {
    /// Most peers connected at once; more are closed at once.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Disconnect a peer that sends nothing for this long (e.g. 30s,
    /// 500ms, 5m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    idle_timeout: Option<Duration>,
    /// Disconnect a peer whose message (or file) takes longer than this
    /// from first byte to last.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    message_timeout: Option<Duration>,
    /// Largest message (or file) accepted, in bytes; a peer announcing
    /// more is disconnected before anything is allocated.
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<u64>,
    /// On SIGINT or SIGTERM, how long what is queued for peers may take
    /// to go out before the rest is cut off (a second signal cuts it off
    /// at once).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    stop_timeout: Duration,
}

impl Limits {
    fn apply<C: Converter>(&self, mut b: ConnectorBuilder<C>) -> ConnectorBuilder<C> {
        if let Some(n) = self.max_connections {
            b = b.max_connections(n);
        }
        if let Some(t) = self.idle_timeout {
            b = b.idle_timeout(t);
        }
        if let Some(t) = self.message_timeout {
            b = b.message_timeout(t);
        }
        b
    }

    /// The maximum message size for the length-prefixed formats.
    fn message_size(&self) -> usize {
        self.max_message_size.map_or(DEFAULT_MAX_MESSAGE_SIZE, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        })
    }
}

/// TLS of a listening command.
#[derive(Debug, Clone, Default, clap::Args)]
struct ServerTlsArgs {
    /// Serve TLS with this certificate chain (PEM, leaf first; needs
    /// --tls-key).
    #[arg(long, value_name = "CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require every client to present a certificate signed by this CA
    /// (PEM): mutual TLS.
    #[arg(long, value_name = "CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// The TLS settings asked for, if any (a one-line error naming the
    /// file otherwise).
    fn settings(&self) -> Result<Option<ServerTls>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut tls = ServerTls::from_pem_files(cert, key).map_err(|e| e.to_string())?;
        if let Some(ca) = &self.tls_client_ca {
            tls = tls.with_client_ca_file(ca).map_err(|e| e.to_string())?;
        }
        Ok(Some(tls))
    }

    /// Listens on `addr`, with TLS if asked.
    fn listen<C: Converter>(
        &self,
        b: ConnectorBuilder<C>,
        addr: &str,
    ) -> Result<ConnectorBuilder<C>, String> {
        Ok(match self.settings()? {
            Some(tls) => b.listen_tls(addr, tls),
            None => b.listen(addr),
        })
    }
}

/// TLS of a connecting command.
#[derive(Debug, Clone, Default, clap::Args)]
struct ClientTlsArgs {
    /// Connect with TLS, trusting the certificate authorities of this PEM
    /// file.
    #[arg(long, value_name = "CA")]
    tls_ca: Option<PathBuf>,
    /// Present this client certificate (PEM; needs --tls-key and
    /// --tls-ca), for servers that require one.
    #[arg(long, value_name = "CERT", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Check the server's certificate against NAME rather than the host
    /// connected to (needed over a Unix socket).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    /// The TLS settings asked for, if any.
    fn settings(&self) -> Result<Option<ClientTls>, String> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let mut tls = ClientTls::from_ca_file(ca).map_err(|e| e.to_string())?;
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls
                .with_client_cert_files(cert, key)
                .map_err(|e| e.to_string())?;
        }
        if let Some(name) = &self.tls_server_name {
            tls = tls.with_server_name(name).map_err(|e| e.to_string())?;
        }
        Ok(Some(tls))
    }
}

/// Trying a connect again when it fails (any of these asks for it).
#[derive(Debug, Clone, Default, clap::Args)]
struct ReconnectArgs {
    /// Try again when connecting fails, waiting at first this long
    /// (`100ms`, `2s`, …; doubling each time, with a random part).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    reconnect_min: Option<Duration>,
    /// Try again when connecting fails, waiting at most this long between
    /// attempts.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    reconnect_max: Option<Duration>,
    /// Try again when connecting fails, giving up this long after the
    /// first attempt (default: keep trying).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    give_up_after: Option<Duration>,
}

impl ReconnectArgs {
    /// The policy asked for, if any.
    fn policy(&self) -> Option<Reconnect> {
        if self.reconnect_min.is_none()
            && self.reconnect_max.is_none()
            && self.give_up_after.is_none()
        {
            return None;
        }
        let mut policy = Reconnect::new();
        if let Some(d) = self.reconnect_min {
            policy = policy.min(d);
        }
        if let Some(d) = self.reconnect_max {
            policy = policy.max(d);
        }
        if let Some(d) = self.give_up_after {
            policy = policy.give_up_after(d);
        }
        Some(policy)
    }
}

/// `30s`, `500ms`, `5m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 30s, 500ms, 5m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen on ADDR: print every message received (with the id of the
    /// connection it came from), send every stdin line to every connected
    /// peer. Runs until interrupted (Ctrl-C, SIGTERM), also after the end
    /// of stdin.
    Listen {
        /// Address to listen on: 127.0.0.1:3453 (port 0 picks one), or a
        /// Unix socket, unix:/path/to.sock (Linux: unix:@name).
        addr: String,
        /// Wire format of the messages.
        #[arg(long, value_enum, default_value_t = Format::String)]
        converter: Format,
        /// Print messages alone, without the connection id in front.
        #[arg(long)]
        quiet_ids: bool,
        /// Print the connector's numbers on stderr once a second
        /// (connections, messages and bytes in and out, queues, memory).
        #[arg(long)]
        stats: bool,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        tls: ServerTlsArgs,
    },
    /// Connect to ADDR: send every stdin line, print every message received.
    /// Ends at the end of stdin (after sending everything) or when the peer
    /// disconnects.
    Connect {
        /// Address to connect to: 127.0.0.1:3453, localhost:3453, or
        /// unix:/path/to.sock.
        addr: String,
        /// Wire format of the messages.
        #[arg(long, value_enum, default_value_t = Format::String)]
        converter: Format,
        #[command(flatten)]
        tls: ClientTlsArgs,
        #[command(flatten)]
        reconnect: ReconnectArgs,
    },
    /// Send files to a `pike recv-files` peer at ADDR.
    SendFile {
        /// Address of the receiver (host:port or unix:/path).
        addr: String,
        /// Files to send.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        tls: ClientTlsArgs,
    },
    /// Listen on ADDR and save received files into DIR; print each saved
    /// path. On Ctrl-C or SIGTERM, transfers under way are cut off and
    /// their partial files removed.
    RecvFiles {
        /// Address to listen on (port 0 picks one), or unix:/path.
        addr: String,
        /// Directory to save into (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Stop after this many files (default: run until interrupted).
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        limits: Limits,
        #[command(flatten)]
        tls: ServerTlsArgs,
    },
    /// Write a development CA and a server certificate it signs (and a
    /// client certificate, with --client) as PEM files: ca.pem for
    /// --tls-ca (and --tls-client-ca), server.pem and server.key for
    /// --tls-cert and --tls-key. For development and tests; ca.key is
    /// written too (readable by its owner only): keep it private.
    TlsCert(cert::Request),
    /// Benchmark Pike over loopback in this process and print a table.
    Bench {
        /// A short run (a tenth of the messages), for a quick look.
        #[arg(long)]
        quick: bool,
        /// Connections in the many-connections test.
        #[arg(long, default_value_t = 400)]
        connections: usize,
    },
}

/// The wire formats of the primitive converters.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    String,
    Bytes,
    Int,
    Float,
    Bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Listen {
            addr,
            converter,
            quiet_ids,
            stats,
            limits,
            tls,
        } => with_format(
            converter,
            &Mode::Listen {
                quiet_ids,
                stats,
                limits,
                tls,
            },
            &addr,
        ),
        Command::Connect {
            addr,
            converter,
            tls,
            reconnect,
        } => with_format(converter, &Mode::Connect { tls, reconnect }, &addr),
        Command::SendFile { addr, files, tls } => send_files(&addr, &files, &tls),
        Command::RecvFiles {
            addr,
            dir,
            count,
            limits,
            tls,
        } => recv_files(&addr, &dir, count, &limits, &tls),
        Command::TlsCert(request) => cert::run(&request),
        Command::Bench { quick, connections } => bench::run(quick, connections),
    };
    match result {
        // Stopped by a second signal: the status says so, whichever thread
        // gets to exit first.
        Ok(()) if CUT_OFF.load(Ordering::SeqCst) => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pike: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone)]
enum Mode {
    Listen {
        quiet_ids: bool,
        stats: bool,
        limits: Limits,
        tls: ServerTlsArgs,
    },
    Connect {
        tls: ClientTlsArgs,
        reconnect: ReconnectArgs,
    },
}

fn with_format(format: Format, mode: &Mode, addr: &str) -> Result<(), String> {
    fn go<C: Converter>(converter: C, mode: &Mode, addr: &str) -> Result<(), String>
    where
        C::Message: LineMessage + std::fmt::Debug,
    {
        match mode {
            Mode::Listen {
                quiet_ids,
                stats,
                limits,
                tls,
            } => listen(converter, addr, *quiet_ids, *stats, limits, tls),
            Mode::Connect { tls, reconnect } => connect(converter, addr, tls, reconnect.policy()),
        }
    }
    let size = match mode {
        Mode::Listen { limits, .. } => limits.message_size(),
        Mode::Connect { .. } => DEFAULT_MAX_MESSAGE_SIZE,
    };
    match format {
        Format::String => go(
            StringConverter::new().with_max_message_size(size),
            mode,
            addr,
        ),
        Format::Bytes => go(
            BytesConverter::new().with_max_message_size(size),
            mode,
            addr,
        ),
        Format::Int => go(IntConverter, mode, addr),
        Format::Float => go(FloatConverter, mode, addr),
        Format::Bool => go(BoolConverter, mode, addr),
    }
}

/// A second signal cut the stop short: the exit status is 130.
static CUT_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// On SIGINT or SIGTERM, shuts `c` down in `mode` on a thread of its own,
/// within `timeout` (what is left then ends as with `Now`), so that the
/// handler never blocks; a second signal shuts it down `Now` and ends the
/// process with status 130.
fn on_signal<C: Converter>(
    c: &Connector<C>,
    mode: ShutdownMode,
    timeout: Duration,
) -> Result<(), String> {
    let c = c.clone();
    let once = std::sync::atomic::AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if once.swap(true, Ordering::SeqCst) {
            CUT_OFF.store(true, Ordering::SeqCst);
            eprintln!("stopping now: what is still queued is cut off");
            c.shutdown_timeout(ShutdownMode::Now, Duration::from_secs(1));
            std::process::exit(130);
        }
        if mode != ShutdownMode::Now {
            eprintln!(
                "stopping: what is queued goes out within {timeout:?} (a second signal cuts it off)"
            );
        }
        let c = c.clone();
        std::thread::spawn(move || c.shutdown_timeout(mode, timeout));
    })
    .map_err(|e| format!("cannot handle signals: {e}"))
}

/// Reads stdin lines on a thread; calls `line` for each, `end` at the end.
fn read_stdin(mut line: impl FnMut(String) + Send + 'static, end: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        for l in std::io::stdin().lock().lines() {
            match l {
                Ok(l) => line(l),
                Err(_) => break,
            }
        }
        end();
    });
}

fn parse_or_warn<M: LineMessage>(line: &str) -> Option<M> {
    M::parse(line)
        .map_err(|e| eprintln!("pike: skipped: {e}"))
        .ok()
}

fn listen<C: Converter>(
    converter: C,
    addr: &str,
    quiet_ids: bool,
    stats: bool,
    limits: &Limits,
    tls: &ServerTlsArgs,
) -> Result<(), String>
where
    C::Message: LineMessage + std::fmt::Debug,
{
    let c = limits
        .apply(tls.listen(Connector::builder(converter), addr)?)
        .spawn()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("listening on {}", c.local_address().expect("listening"));
    on_signal(&c, ShutdownMode::FinishQueue, limits.stop_timeout)?;
    if stats {
        let c = c.clone();
        std::thread::spawn(move || {
            while !c.is_stopped() {
                std::thread::sleep(Duration::from_secs(1));
                eprintln!("stats: {}", c.stats());
            }
        });
    }
    let peers: Arc<Mutex<Vec<Connection>>> = Arc::default();
    {
        let (c, peers) = (c.clone(), peers.clone());
        // The end of stdin ends nothing: peers may still come and talk.
        read_stdin(
            move |line| {
                if let Some(m) = parse_or_warn::<C::Message>(&line) {
                    for p in peers.lock().unwrap().iter() {
                        let _ = c.send(p, m.clone());
                    }
                }
            },
            || {},
        );
    }
    while let Ok(event) = c.recv() {
        match event {
            Event::RemoteConnect(r) => {
                // On the list before it is announced: a line typed once
                // "connected from" shows goes to this peer too.
                peers.lock().unwrap().push(r.connection);
                eprintln!("{} connected from {}", r.connection, r.peer);
                r.finish_accept(Delivery::Merged);
            }
            Event::MessageReceived(m) if quiet_ids => println!("{}", m.message.show()),
            Event::MessageReceived(m) => println!("{}: {}", m.connection, m.message.show()),
            Event::RemoteDisconnect(r) => {
                eprintln!("{} disconnected: {}", r.connection, r.reason);
                peers.lock().unwrap().retain(|p| *p != r.connection);
            }
            Event::RejectedMessage(r) => eprintln!("{}: not sent: {}", r.connection, r.reason),
            _ => {}
        }
    }
    Ok(())
}

/// Starts a connector and connects it to `addr`, or says why not.
/// With a reconnect policy it waits as long as the policy tries.
fn connect_to<C: Converter>(
    converter: C,
    addr: &str,
    tls: &ClientTlsArgs,
    reconnect: Option<Reconnect>,
) -> Result<(Connector<C>, Connection), String> {
    let mut builder = Connector::builder(converter);
    if let Some(tls) = tls.settings()? {
        builder = builder.default_client_tls(tls);
    }
    let c = builder.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let (options, wait) = match reconnect {
        None => (ConnectOptions::new(), CONNECT_TIMEOUT),
        Some(policy) => {
            eprintln!("connecting to {addr} (trying again while it fails)");
            (ConnectOptions::new().reconnect(policy), Duration::MAX)
        }
    };
    let conn = c
        .connect_timeout(addr, options, wait)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    Ok((c, conn))
}

fn connect<C: Converter>(
    converter: C,
    addr: &str,
    tls: &ClientTlsArgs,
    reconnect: Option<Reconnect>,
) -> Result<(), String>
where
    C::Message: LineMessage + std::fmt::Debug,
{
    let (c, conn) = connect_to(converter, addr, tls, reconnect)?;
    eprintln!("connected to {addr}");
    {
        let (c, c2) = (c.clone(), c.clone());
        read_stdin(
            move |line| {
                if let Some(m) = parse_or_warn::<C::Message>(&line) {
                    let _ = c.send(&conn, m);
                }
            },
            move || c2.disconnect(&conn, DisconnectMode::FinishQueue),
        );
    }
    while let Ok(event) = c.recv() {
        match event {
            Event::MessageReceived(m) => println!("{}", m.message.show()),
            Event::FinishDisconnect(_) => break,
            Event::RemoteDisconnect(r) => {
                eprintln!("disconnected: {}", r.reason);
                break;
            }
            Event::RejectedMessage(r) => eprintln!("not sent: {}", r.reason),
            Event::LinkDown(d) => eprintln!(
                "link lost ({}); dialing again; {} line(s) written to it unconfirmed",
                d.reason, d.unconfirmed
            ),
            Event::LinkUp(_) => eprintln!("link back to {addr}"),
            _ => {}
        }
    }
    c.shutdown(ShutdownMode::Now);
    Ok(())
}

/// A byte progress bar on stderr when it is a terminal; hidden otherwise.
fn progress(total: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .expect("a valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} received, {bytes_per_sec} {msg}")
                .expect("a valid template"),
        ),
    }
}

fn send_files(addr: &str, files: &[PathBuf], tls: &ClientTlsArgs) -> Result<(), String> {
    let mut total = 0;
    for f in files {
        let meta = std::fs::metadata(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a file", f.display()));
        }
        total += meta.len();
    }
    let converter = Counting::new(FileConverter::new("."));
    let sent = converter.sent.clone();
    let (c, conn) = connect_to(converter, addr, tls, None)?;
    for f in files {
        c.send(&conn, f.clone()).map_err(|e| e.to_string())?;
    }
    c.disconnect(&conn, DisconnectMode::FinishQueue);
    let bar = progress(Some(total));
    let mut failed = 0;
    let outcome = loop {
        bar.set_position(sent.load(Ordering::Relaxed).min(total));
        match c.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::RejectedMessage(r)) => {
                bar.suspend(|| {
                    eprintln!("pike: cannot send {}: {}", r.message.display(), r.reason)
                });
                failed += 1;
            }
            Ok(Event::FinishDisconnect(f)) => match f.reason {
                None => break Ok(()),
                Some(e) => break Err(format!("transfer cut short: {e}")),
            },
            Ok(Event::RemoteDisconnect(r)) => {
                break Err(format!("receiver disconnected: {}", r.reason));
            }
            Ok(_) | Err(pike::RecvTimeoutError::Timeout) => {}
            Err(e) => break Err(e.to_string()),
        }
    };
    bar.finish_and_clear();
    c.shutdown(ShutdownMode::Now);
    outcome?;
    if failed > 0 {
        return Err(format!("{failed} of {} files not sent", files.len()));
    }
    let plural = if files.len() == 1 { "" } else { "s" };
    eprintln!("sent {} file{plural} ({total} bytes)", files.len());
    Ok(())
}

fn recv_files(
    addr: &str,
    dir: &std::path::Path,
    count: Option<usize>,
    limits: &Limits,
    tls: &ServerTlsArgs,
) -> Result<(), String> {
    let mut files = FileConverter::new(dir);
    if let Some(n) = limits.max_message_size {
        files = files.with_max_file_size(n);
    }
    let converter = Counting::new(files.clone());
    let received = converter.received.clone();
    // Bound first: a command that cannot listen leaves nothing behind.
    let c = limits
        .apply(tls.listen(Connector::builder(converter), addr)?)
        .build()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    match files.remove_stale_parts() {
        Ok(0) => {}
        Ok(n) => eprintln!("removed {n} partial files of an earlier run"),
        Err(e) => eprintln!(
            "pike: cannot look for partial files in {}: {e}",
            dir.display()
        ),
    }
    c.spawn().map_err(|e| format!("cannot start: {e}"))?;
    eprintln!("listening on {}", c.local_address().expect("listening"));
    // Transfers under way are cut off; their partial files go.
    on_signal(&c, ShutdownMode::Now, limits.stop_timeout)?;
    let bar = progress(None);
    let mut files = 0;
    while count.is_none_or(|n| files < n) {
        bar.set_position(received.load(Ordering::Relaxed));
        match c.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
            Ok(Event::MessageReceived(m)) => {
                files += 1;
                bar.suspend(|| println!("{}", m.message.display()));
            }
            Ok(Event::RemoteDisconnect(r)) => {
                if !matches!(r.reason, pike::DisconnectReason::PeerClosed) {
                    bar.suspend(|| eprintln!("pike: {}: {}", r.connection, r.reason));
                }
            }
            Ok(_) | Err(pike::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    bar.finish_and_clear();
    c.shutdown(ShutdownMode::FinishQueue);
    Ok(())
}
