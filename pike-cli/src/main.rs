//! `pike`: talk to Pike peers from the command line, move files, and
//! benchmark the library.

mod bench;
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
    BoolConverter, BytesConverter, FileConverter, FloatConverter, IntConverter, StringConverter,
};
use pike::{Connection, Connector, Delivery, DisconnectMode, Event, ShutdownMode};

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen on ADDR: print every message received, send every stdin line
    /// to every connected peer. Ends at the end of stdin.
    Listen {
        /// Address to listen on, e.g. 127.0.0.1:3453 (port 0 picks one).
        addr: String,
        /// Wire format of the messages.
        #[arg(long, value_enum, default_value_t = Format::String)]
        converter: Format,
    },
    /// Connect to ADDR: send every stdin line, print every message received.
    /// Ends at the end of stdin (after sending everything) or when the peer
    /// disconnects.
    Connect {
        /// Address to connect to, e.g. 127.0.0.1:3453 or localhost:3453.
        addr: String,
        /// Wire format of the messages.
        #[arg(long, value_enum, default_value_t = Format::String)]
        converter: Format,
    },
    /// Send files to a `pike recv-files` peer at ADDR.
    SendFile {
        /// Address of the receiver.
        addr: String,
        /// Files to send.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Listen on ADDR and save received files into DIR; print each saved path.
    RecvFiles {
        /// Address to listen on (port 0 picks one).
        addr: String,
        /// Directory to save into (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Stop after this many files (default: run until interrupted).
        #[arg(long)]
        count: Option<usize>,
    },
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
        Command::Listen { addr, converter } => with_format(converter, Mode::Listen, &addr),
        Command::Connect { addr, converter } => with_format(converter, Mode::Connect, &addr),
        Command::SendFile { addr, files } => send_files(&addr, &files),
        Command::RecvFiles { addr, dir, count } => recv_files(&addr, &dir, count),
        Command::Bench { quick, connections } => bench::run(quick, connections),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pike: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Listen,
    Connect,
}

fn with_format(format: Format, mode: Mode, addr: &str) -> Result<(), String> {
    fn go<C: Converter>(converter: C, mode: Mode, addr: &str) -> Result<(), String>
    where
        C::Message: LineMessage + std::fmt::Debug,
    {
        match mode {
            Mode::Listen => listen(converter, addr),
            Mode::Connect => connect(converter, addr),
        }
    }
    match format {
        Format::String => go(StringConverter::new(), mode, addr),
        Format::Bytes => go(BytesConverter::new(), mode, addr),
        Format::Int => go(IntConverter, mode, addr),
        Format::Float => go(FloatConverter, mode, addr),
        Format::Bool => go(BoolConverter, mode, addr),
    }
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

fn listen<C: Converter>(converter: C, addr: &str) -> Result<(), String>
where
    C::Message: LineMessage + std::fmt::Debug,
{
    let c = Connector::builder(converter)
        .listen(addr)
        .spawn()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("listening on {}", c.local_addr().expect("listening"));
    let peers: Arc<Mutex<Vec<Connection>>> = Arc::default();
    {
        let (c, c2, peers) = (c.clone(), c.clone(), peers.clone());
        read_stdin(
            move |line| {
                if let Some(m) = parse_or_warn::<C::Message>(&line) {
                    for p in peers.lock().unwrap().iter() {
                        let _ = c.send(p, m.clone());
                    }
                }
            },
            move || c2.shutdown(ShutdownMode::FinishQueues),
        );
    }
    while let Some(event) = c.recv() {
        match event {
            Event::RemoteConnect(r) => {
                eprintln!("{} connected from {}", r.connection, r.peer);
                peers.lock().unwrap().push(r.connection);
                r.finish_accept(Delivery::Merged);
            }
            Event::MessageReceived(m) => println!("{}", m.message.show()),
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
fn connect_to<C: Converter>(
    converter: C,
    addr: &str,
) -> Result<(Connector<C>, Connection), String> {
    let c = Connector::builder(converter)
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let (conn, result) = c
        .connect_waiting(addr, Delivery::Merged, CONNECT_TIMEOUT)
        .map_err(|e| e.to_string())?;
    result.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    Ok((c, conn))
}

fn connect<C: Converter>(converter: C, addr: &str) -> Result<(), String>
where
    C::Message: LineMessage + std::fmt::Debug,
{
    let (c, conn) = connect_to(converter, addr)?;
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
    while let Some(event) = c.recv() {
        match event {
            Event::MessageReceived(m) => println!("{}", m.message.show()),
            Event::FinishDisconnect(_) => break,
            Event::RemoteDisconnect(r) => {
                eprintln!("disconnected: {}", r.reason);
                break;
            }
            Event::RejectedMessage(r) => eprintln!("not sent: {}", r.reason),
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

fn send_files(addr: &str, files: &[PathBuf]) -> Result<(), String> {
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
    let (c, conn) = connect_to(converter, addr)?;
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
            Ok(Event::FinishDisconnect(f)) => match f.error {
                None => break Ok(()),
                Some(e) => break Err(format!("transfer cut short: {e}")),
            },
            Ok(Event::RemoteDisconnect(r)) => {
                break Err(format!("receiver disconnected: {}", r.reason));
            }
            Ok(_) | Err(pike::RecvTimeoutError::Timeout) => {}
            Err(pike::RecvTimeoutError::Disconnected) => break Err("connector stopped".into()),
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

fn recv_files(addr: &str, dir: &std::path::Path, count: Option<usize>) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let converter = Counting::new(FileConverter::new(dir));
    let received = converter.received.clone();
    let c = Connector::builder(converter)
        .listen(addr)
        .spawn()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    eprintln!("listening on {}", c.local_addr().expect("listening"));
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
            Err(pike::RecvTimeoutError::Disconnected) => break,
        }
    }
    bar.finish_and_clear();
    c.shutdown(ShutdownMode::FinishQueues);
    Ok(())
}
