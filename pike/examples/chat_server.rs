//! A chat server speaking the original Pike chat protocol. Each client
//! first sends nicknames on a separate queue (the handshake) until one is
//! answered `ok`; the answer is `nickname taken by server` for the
//! server's own nickname, `nickname taken by another user` for one in use,
//! and `nickname refused: …` for one that is too long or holds control
//! characters. The connection is then merged into the main queue. Every
//! line a client sends is shown here and relayed to every other user as
//! `<nickname> says: <message>`; lines typed here are relayed the same
//! way. `quit` or the end of input shuts the server down.
//!
//! ```text
//! cargo run --example chat_server -- --port 3453 --server-nickname server
//! ```
//!
//! `--unix PATH` listens on a Unix socket instead (give the client the
//! same `--unix PATH`).
//!
//! Written to face users who do not play by the rules:
//!
//! * handshakes are tasks on one thread (a tokio runtime), not a thread
//!   each: ten thousand silent connections cost memory, not threads, and
//!   each is dropped if it names itself within [`NICKNAME_WAIT`];
//! * a nickname is 1 to [`MAX_NICKNAME`] characters with no control
//!   characters, so that nobody forges a `server says:` line;
//! * a line longer than [`MAX_LINE`] is not relayed (its sender is told),
//!   so that a relayed line never passes the message limit every client
//!   enforces, and control characters in a line are replaced;
//! * a user whose queue is full (who does not read) is dropped with a
//!   reason, not left to hold memory; the connector's memory budget
//!   bounds the rest;
//! * `quit` lets what is queued go out for at most [`QUIT_WAIT`].

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use pike::converters::StringConverter;
use pike::{
    Address, Connection, Connector, Delivery, DisconnectMode, Event, RejectReason, ShutdownMode,
    TrySendError,
};

/// The longest nickname, in characters.
const MAX_NICKNAME: usize = 32;
/// The longest line relayed, in bytes.
const MAX_LINE: usize = 4096;
/// How long a new user has to pick a nickname.
const NICKNAME_WAIT: Duration = Duration::from_secs(30);
/// How long `quit` lets what is queued for users go out.
const QUIT_WAIT: Duration = Duration::from_secs(5);

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

type Chat = Connector<StringConverter>;

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
    eprintln!("listening on {}", chat.local_address().expect("listening"));
    let clients: Clients = Arc::default();

    // The handshakes run as tasks on one thread of their own.
    let handshakes = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let spawner = handshakes.handle().clone();
    std::thread::spawn(move || handshakes.block_on(std::future::pending::<()>()));

    // Lines typed here go to everybody.
    {
        let (chat, clients, nick) = (chat.clone(), clients.clone(), args.server_nickname.clone());
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if line.trim() == "quit" {
                    break;
                }
                if line.len() > MAX_LINE {
                    eprintln!(
                        "not sent: a line of {} bytes (at most {MAX_LINE})",
                        line.len()
                    );
                    continue;
                }
                broadcast(&chat, &clients, None, &format!("{nick} says: {line}"));
            }
            chat.shutdown_timeout(ShutdownMode::FinishQueue, QUIT_WAIT);
        });
    }

    while let Ok(event) = chat.recv() {
        match event {
            Event::RemoteConnect(remote) => {
                let conn = remote.connection;
                remote.finish_accept(Delivery::Separate);
                let (chat, clients, nick) =
                    (chat.clone(), clients.clone(), args.server_nickname.clone());
                spawner.spawn(async move { handshake(&chat, &clients, conn, &nick).await });
            }
            Event::MessageReceived(m) => {
                let nick = clients.lock().unwrap().get(&m.connection).cloned();
                let Some(nick) = nick else { continue };
                if m.message.len() > MAX_LINE {
                    println!("{nick}: a line of {} bytes not relayed", m.message.len());
                    let notice = format!(
                        "{} says: your line of {} bytes was not relayed (at most {MAX_LINE})",
                        args.server_nickname,
                        m.message.len()
                    );
                    send_or_drop(&chat, &clients, m.connection, notice);
                    continue;
                }
                let line = format!("{nick} says: {}", printable(&m.message));
                println!("{line}");
                broadcast(&chat, &clients, Some(m.connection), &line);
            }
            // A plain send past the connector's budget comes back: that
            // user is not reading.
            Event::RejectedMessage(r) if matches!(r.reason, RejectReason::QueueFull) => {
                drop_user(&chat, &clients, r.connection);
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
/// `ok`, then merges the connection into the main queue. A client that
/// names itself too late, or leaves, is dropped.
async fn handshake(chat: &Chat, clients: &Clients, conn: Connection, server: &str) {
    loop {
        let next = tokio::time::timeout(NICKNAME_WAIT, chat.recv_connection_async(&conn)).await;
        let Ok(Ok(Event::MessageReceived(m))) = next else {
            // No nickname in time, or gone: drop the connection.
            chat.disconnect(&conn, DisconnectMode::Now);
            return;
        };
        let nick = m.message;
        let answer = if let Err(why) = valid_nickname(&nick) {
            why
        } else {
            // Checked and taken under one lock: two clients cannot both
            // get the same nickname.
            let mut clients = clients.lock().unwrap();
            if nick == server {
                "nickname taken by server".to_owned()
            } else if clients.values().any(|n| *n == nick) {
                "nickname taken by another user".to_owned()
            } else {
                clients.insert(conn, nick.clone());
                "ok".to_owned()
            }
        };
        let joined = answer == "ok";
        let _ = chat.send(&conn, answer);
        if joined {
            println!("{nick} joined");
            // Quick: the network thread moves the queue over.
            chat.merge_connection(&conn);
            return;
        }
    }
}

/// A nickname is 1 to [`MAX_NICKNAME`] characters, none of them control
/// characters (a newline in one would let its owner forge lines).
fn valid_nickname(nick: &str) -> Result<(), String> {
    let chars = nick.chars().count();
    if chars == 0 || chars > MAX_NICKNAME || nick.chars().any(char::is_control) {
        return Err(format!(
            "nickname refused: 1 to {MAX_NICKNAME} characters, no control characters"
        ));
    }
    Ok(())
}

/// A line as relayed: control characters (a newline that would start a
/// forged line) replaced.
fn printable(line: &str) -> String {
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn broadcast(chat: &Chat, clients: &Clients, except: Option<Connection>, line: &str) {
    let to: Vec<Connection> = clients.lock().unwrap().keys().copied().collect();
    for conn in to {
        if Some(conn) != except {
            send_or_drop(chat, clients, conn, line.to_owned());
        }
    }
}

/// Sends without waiting; a user whose queue is full does not read, and is
/// dropped.
fn send_or_drop(chat: &Chat, clients: &Clients, conn: Connection, line: String) {
    if let Err(TrySendError::Full(_)) = chat.try_send(&conn, line) {
        drop_user(chat, clients, conn);
    }
}

fn drop_user(chat: &Chat, clients: &Clients, conn: Connection) {
    if let Some(nick) = clients.lock().unwrap().remove(&conn) {
        println!("{nick} dropped: not reading (its queue is full)");
    }
    chat.disconnect(&conn, DisconnectMode::Now);
}
