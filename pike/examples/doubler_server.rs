//! Doubles every float it receives and sends it back, with several worker
//! threads all taking events from the same queue. `quit` or the end of input
//! shuts it down.
//!
//! ```text
//! cargo run --example doubler_server -- --port 3453 --num-threads 10
//! ```
//!
//! `--unix PATH` listens on a Unix socket instead (give the client the
//! same `--unix PATH`); `--tls-cert CERT --tls-key KEY` serves TLS (with
//! the `tls` feature; the client then takes `--tls-ca CA`).

use std::io::BufRead;
use std::time::Duration;

use clap::Parser;

#[path = "common/tls.rs"]
mod tls;
use pike::converters::FloatConverter;
use pike::{Address, Connector, Delivery, Event, ShutdownMode};

#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3453)]
    port: u16,
    /// Listen on a Unix socket at PATH instead of the TCP port.
    #[arg(long, value_name = "PATH")]
    unix: Option<std::path::PathBuf>,
    /// Worker threads, all calling `recv`.
    #[arg(long, default_value_t = 10)]
    num_threads: usize,
    #[command(flatten)]
    tls: tls::ServerFlags,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let doubler = args
        .tls
        .listen(
            Connector::builder(FloatConverter),
            match &args.unix {
                Some(path) => Address::unix(path),
                None => ("0.0.0.0", args.port).into(),
            },
        )?
        .spawn()?;
    eprintln!(
        "listening on {}",
        doubler.local_address().expect("listening")
    );
    let workers: Vec<_> = (0..args.num_threads.max(1))
        .map(|_| {
            let doubler = doubler.clone();
            std::thread::spawn(move || {
                while let Ok(event) = doubler.recv() {
                    match event {
                        Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
                        Event::MessageReceived(m) => {
                            let _ = doubler.send(&m.connection, m.message * 2.0);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        if line.trim() == "quit" {
            break;
        }
    }
    // Replies still queued go out, for a few seconds at most: a client
    // that never reads cannot hold the server up.
    doubler.shutdown_timeout(ShutdownMode::FinishQueue, Duration::from_secs(5));
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
