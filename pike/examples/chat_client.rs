//! A chat client speaking the original Pike chat protocol: asks for a
//! nickname and sends it until the server answers `ok` (any other answer,
//! such as `nickname taken by another user`, is shown and the nickname
//! asked again), then sends every line typed and prints every line
//! received. `quit` or the end of input leaves.
//!
//! ```text
//! cargo run --example chat_client -- --host 127.0.0.1 --port 3453
//! ```

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::Parser;
use pike::converters::StringConverter;
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
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let chat = Connector::builder(StringConverter::new()).spawn()?;
    let addr = match &args.unix {
        Some(path) => Address::unix(path),
        None => format!("{}:{}", args.host, args.port).into(),
    };
    let conn = chat
        .connect_timeout(&addr, Delivery::Merged, Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;

    let mut lines = std::io::stdin().lock().lines();
    loop {
        print!("nickname: ");
        std::io::stdout().flush()?;
        let Some(Ok(nickname)) = lines.next() else {
            return Ok(());
        };
        chat.send(&conn, nickname.trim().to_owned())?;
        match chat.recv_timeout(Duration::from_secs(10)) {
            Ok(Event::MessageReceived(m)) if m.message == "ok" => {
                println!("joined as {}", nickname.trim());
                break;
            }
            Ok(Event::MessageReceived(m)) => println!("{}", m.message),
            other => return Err(format!("no answer from the server: {other:?}").into()),
        }
    }

    // Print what comes in while this thread reads what is typed.
    let printer = {
        let chat = chat.clone();
        std::thread::spawn(move || {
            while let Ok(event) = chat.recv() {
                match event {
                    Event::MessageReceived(m) => println!("{}", m.message),
                    Event::RemoteDisconnect(_) => {
                        println!("the server closed the chat");
                        std::process::exit(0);
                    }
                    Event::FinishDisconnect(_) => break,
                    _ => {}
                }
            }
        })
    };
    for line in lines.map_while(Result::ok) {
        if line.trim() == "quit" {
            break;
        }
        chat.send(&conn, line)?;
    }
    chat.disconnect(&conn, DisconnectMode::FinishQueue);
    let _ = printer.join();
    chat.shutdown(ShutdownMode::Now);
    Ok(())
}
