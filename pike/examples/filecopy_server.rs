//! Receives files into a directory and prints where each was saved. `quit`
//! or the end of input shuts it down.
//!
//! ```text
//! cargo run --example filecopy_server -- --port 3453 --directory received
//! ```

use std::io::BufRead;
use std::path::PathBuf;

use clap::Parser;
use pike::converters::FileConverter;
use pike::{Connector, Delivery, Event, ShutdownMode};

#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3453)]
    port: u16,
    /// Where received files are saved (created if missing).
    #[arg(long, default_value = ".")]
    directory: PathBuf,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.directory)?;
    let server = Connector::builder(FileConverter::new(&args.directory))
        .listen(("0.0.0.0", args.port))
        .spawn()?;
    eprintln!("listening on {}", server.local_addr().expect("listening"));
    {
        let server = server.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim() == "quit" {
                    break;
                }
            }
            server.shutdown(ShutdownMode::FinishQueues);
        });
    }
    while let Some(event) = server.recv() {
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
