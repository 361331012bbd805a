//! Sends each number typed to the doubler server and prints the answer.
//! `quit` or the end of input leaves.
//!
//! ```text
//! cargo run --example doubler_client -- --host 127.0.0.1 --port 3453
//! ```

use std::io::BufRead;
use std::time::Duration;

use clap::Parser;

#[path = "common/tls.rs"]
mod tls;
use pike::converters::FloatConverter;
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
    #[command(flatten)]
    tls: tls::ClientFlags,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let doubler = args
        .tls
        .apply(Connector::builder(FloatConverter))?
        .spawn()?;
    let addr = match &args.unix {
        Some(path) => Address::unix(path),
        None => format!("{}:{}", args.host, args.port).into(),
    };
    let conn = doubler
        .connect_timeout(&addr, Delivery::Merged, Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let line = line.trim();
        if line == "quit" {
            break;
        }
        let Ok(x) = line.parse::<f64>() else {
            eprintln!("not a number: {line:?}");
            continue;
        };
        doubler.send(&conn, x)?;
        match doubler.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::MessageReceived(m)) => println!("{:?}", m.message),
            other => return Err(format!("no answer: {other:?}").into()),
        }
    }
    doubler.disconnect(&conn, DisconnectMode::FinishQueue);
    doubler.shutdown(ShutdownMode::FinishQueue);
    Ok(())
}
