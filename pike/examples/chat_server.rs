//! A chat server speaking the original Pike chat protocol. Each client
//! first sends nicknames on a separate queue (the handshake) until one is
//! answered `ok`; the answer is `nickname taken by server` for the
//! server's own nickname and `nickname taken by another user` for one in
//! use. The connection is then merged into the main queue. Every line a
//! client sends is shown here and relayed to every other user as
//! `<nickname> says: <message>`; lines typed here are relayed the same
//! way. `quit` or the end of input shuts the server down.
//!
//! ```text
//! cargo run --example chat_server -- --port 3453 --server-nickname server
//! ```
//!
//! `--unix PATH` listens on a Unix socket instead (give the client the
//! same `--unix PATH`).

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use pike::converters::StringConverter;
use pike::{Address, Connection, Connector, Delivery, Event, ShutdownMode};

#[derive(Debug, Parser)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3453)]
    port: u16,
    /// Listen on a Unix socket at PATH instead of the TCP port.
    #[arg(long, value_name = "PATH")]
    unix: Option<std::path::PathBuf>,
    /// The name the server's own lines go out under.
    #[arg(long, default_value = "server")]
    server_nickname: String,
}

/// Nicknames of the clients that finished the handshake.
type Clients = Arc<Mutex<HashMap<Connection, String>>>;

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let chat = Connector::builder(StringConverter::new())
        .listen(match &args.unix {
            Some(path) => Address::unix(path),
            None => ("0.0.0.0", args.port).into(),
        })
        .spawn()?;
    eprintln!("listening on {}", chat.listen_address().expect("listening"));
    let clients: Clients = Arc::default();

    // Lines typed here go to everybody.
    {
        let (chat, clients, nick) = (chat.clone(), clients.clone(), args.server_nickname.clone());
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim() == "quit" {
                    break;
                }
                broadcast(&chat, &clients, None, &format!("{nick} says: {line}"));
            }
            chat.shutdown(ShutdownMode::FinishQueues);
        });
    }

    while let Some(event) = chat.recv() {
        match event {
            Event::RemoteConnect(remote) => {
                let conn = remote.connection;
                remote.finish_accept(Delivery::Separate);
                let (chat, clients, nick) =
                    (chat.clone(), clients.clone(), args.server_nickname.clone());
                std::thread::spawn(move || handshake(&chat, &clients, conn, &nick));
            }
            Event::MessageReceived(m) => {
                let nick = clients.lock().unwrap().get(&m.connection).cloned();
                if let Some(nick) = nick {
                    let line = format!("{nick} says: {}", m.message);
                    println!("{line}");
                    broadcast(&chat, &clients, Some(m.connection), &line);
                }
            }
            Event::RemoteDisconnect(r) => {
                if let Some(nick) = clients.lock().unwrap().remove(&r.connection) {
                    println!("{nick} left");
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Takes nicknames from the client's own queue until one is free, answers
/// `ok`, then merges the connection into the main queue.
fn handshake(chat: &Connector<StringConverter>, clients: &Clients, conn: Connection, server: &str) {
    loop {
        let Ok(Event::MessageReceived(m)) =
            chat.recv_connection_timeout(&conn, Duration::from_secs(60))
        else {
            // No nickname in time, or gone: drop the connection.
            chat.disconnect(&conn, pike::DisconnectMode::Now);
            return;
        };
        let nick = m.message;
        let answer = {
            // Checked and taken under one lock: two clients cannot both
            // get the same nickname.
            let mut clients = clients.lock().unwrap();
            if nick == server {
                "nickname taken by server"
            } else if clients.values().any(|n| *n == nick) {
                "nickname taken by another user"
            } else {
                clients.insert(conn, nick.clone());
                "ok"
            }
        };
        let _ = chat.send(&conn, answer.to_owned());
        if answer == "ok" {
            println!("{nick} joined");
            chat.merge_connection(&conn);
            return;
        }
    }
}

fn broadcast(
    chat: &Connector<StringConverter>,
    clients: &Clients,
    except: Option<Connection>,
    line: &str,
) {
    for conn in clients.lock().unwrap().keys() {
        if Some(*conn) != except {
            let _ = chat.send(conn, line.to_owned());
        }
    }
}
