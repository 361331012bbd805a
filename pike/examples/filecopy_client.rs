//! Sends one file to the filecopy server and waits until it is written.
//!
//! ```text
//! cargo run --example filecopy_client -- --host 127.0.0.1 --port 3453 --filename notes.txt
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[path = "common/tls.rs"]
mod tls;
use pike::converters::FileConverter;
use pike::{Address, Connector, Delivery, DisconnectMode, Event, ShutdownMode};

#[derive(Debug, Parser)]
struct Args {
    /// Server host.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 3453)]
    port: u16,
    /// Connect to the Unix socket at PATH instead of HOST:PORT.
    #[arg(long, value_name = "PATH")]
    unix: Option<std::path::PathBuf>,
    /// The file to send.
    #[arg(long)]
    filename: PathBuf,
    #[command(flatten)]
    tls: tls::ClientFlags,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = args
        .tls
        .apply(Connector::builder(FileConverter::new(".")))?
        .spawn()?;
    let addr = match &args.unix {
        Some(path) => Address::unix(path),
        None => format!("{}:{}", args.host, args.port).into(),
    };
    let conn = client
        .connect_timeout(&addr, Delivery::Merged, Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    client.send(&conn, args.filename.clone())?;
    client.disconnect(&conn, DisconnectMode::FinishQueue);
    let outcome = loop {
        match client.recv() {
            Ok(Event::RejectedMessage(r)) => break Err(format!("cannot send: {}", r.reason)),
            Ok(Event::FinishDisconnect(f)) => match f.reason {
                None => break Ok(()),
                Some(e) => break Err(format!("cut short: {e}")),
            },
            Ok(Event::RemoteDisconnect(r)) => {
                break Err(format!("server disconnected: {}", r.reason));
            }
            Ok(_) => {}
            Err(e) => break Err(e.to_string()),
        }
    };
    client.shutdown(ShutdownMode::Now);
    outcome?;
    eprintln!("sent {}", args.filename.display());
    Ok(())
}
