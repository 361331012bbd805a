//! Receives files into a directory and prints where each was saved. `quit`
//! or the end of input shuts it down, letting transfers under way finish;
//! Ctrl-C (or SIGTERM) cuts them off, and their partial files are removed.
//! Partial files an earlier run left behind are removed at start.
//!
//! ```text
//! cargo run --example filecopy_server -- --port 3453 --directory received
//! ```
//!
//! `--unix PATH` listens on a Unix socket instead (give the client the
//! same `--unix PATH`); `--tls-cert CERT --tls-key KEY` serves TLS (with
//! the `tls` feature; the client then takes `--tls-ca CA`).

use std::io::BufRead;
use std::path::PathBuf;

use clap::Parser;

#[path = "common/tls.rs"]
mod tls;
use pike::converters::FileConverter;
use pike::{Address, Connector, Delivery, Event, ShutdownMode};

#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3453)]
    port: u16,
    /// Listen on a Unix socket at PATH instead of the TCP port.
    #[arg(long, value_name = "PATH")]
    unix: Option<std::path::PathBuf>,
    /// Where received files are saved (created if missing).
    #[arg(long, default_value = ".")]
    directory: PathBuf,
    #[command(flatten)]
    tls: tls::ServerFlags,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let files = FileConverter::new(&args.directory);
    let server = args
        .tls
        .listen(
            Connector::builder(files.clone()),
            match &args.unix {
                Some(path) => Address::unix(path),
                None => ("0.0.0.0", args.port).into(),
            },
        )?
        .build()?;
    std::fs::create_dir_all(&args.directory)?;
    let stale = files.remove_stale_parts()?;
    if stale > 0 {
        eprintln!("removed {stale} partial files of an earlier run");
    }
    server.spawn()?;
    eprintln!(
        "listening on {}",
        server.local_address().expect("listening")
    );
    {
        let server = server.clone();
        ctrlc::set_handler(move || server.shutdown(ShutdownMode::Now))
            .map_err(std::io::Error::other)?;
    }
    {
        let server = server.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim() == "quit" {
                    break;
                }
            }
            server.shutdown(ShutdownMode::FinishQueue);
        });
    }
    while let Ok(event) = server.recv() {
        match event {
            Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
            Event::MessageReceived(m) => println!("{}", m.message.display()),
            Event::RemoteDisconnect(r)
                if !matches!(r.reason, pike::DisconnectReason::PeerClosed) =>
            {
                eprintln!("{}: {}", r.connection, r.reason);
            }
            _ => {}
        }
    }
    Ok(())
}
