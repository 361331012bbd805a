//! Transports: the byte streams connections run over.
//!
//! A transport moves bytes and nothing else; the connection's
//! [`Endpoint`](crate::endpoint::Endpoint) decides what to write, what to
//! read and when to close. Each transport is one file implementing
//! [`Transport`] for its connections and [`Listener`] for accepting them:
//! [`tcp`], [`unix`] (Unix domain sockets) and `tls` (TLS over either,
//! feature `tls`); the crate's tests add `memory`, an in-memory network
//! for testing the loop without sockets. The network loop and the
//! senders see only `Box<dyn Transport>`; the dynamic call is nothing
//! beside the system call behind it.
//!
//! # Invariants
//!
//! * Every transport is non-blocking and registered with `mio` once, for
//!   reading and writing, edge-triggered.
//! * `read` returning `Ok(0)` means the peer's end of stream; `WouldBlock`
//!   means no data now (a new readiness event follows when there is).
//! * A transport with output of its own (TLS records, `close_notify`)
//!   says so ([`Transport::has_pending_output`]) and is flushed whenever
//!   the socket is writable; one with a handshake takes application bytes
//!   only once it is done ([`Transport::ready_for_data`]).
//! * A transport is owned by its connection's slot
//!   ([`reactor::conn`](crate::reactor::conn)) and used only under its
//!   lock.

mod dial;
#[cfg(test)]
pub(crate) mod memory;
pub(crate) mod tcp;
#[cfg(feature = "tls")]
pub(crate) mod tls;
#[cfg(unix)]
pub(crate) mod unix;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use mio::{Registry, Token};

use crate::address::{Address, PeerAddr, Target, UnixAddr};
pub(crate) use tcp::SocketOptions;

/// A connected (or connecting) byte stream.
pub(crate) trait Transport: io::Read + io::Write + Send + fmt::Debug {
    /// Registers for reading and writing, edge-triggered.
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()>;
    /// Undoes [`register`](Self::register).
    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
    /// Shuts the write side down: the peer reads end of stream after the
    /// last byte written.
    fn shutdown_write(&mut self) -> io::Result<()>;
    /// Takes the pending socket error (`SO_ERROR`), if any.
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// Whether a non-blocking connect has completed: `Ok(false)` while it
    /// is still in progress, an error if it failed.
    fn is_connected(&self) -> io::Result<bool>;
    /// Applies the connector's socket options (for TCP: no-delay,
    /// keepalive, user timeout); called once connected.
    fn configure(&self, _options: &SocketOptions) {}
    /// Once connected, drives a handshake of the transport's own (TLS),
    /// reading at most `read_limit` bytes of it from the socket.
    fn handshake(&mut self, read_limit: usize) -> io::Result<Handshake> {
        let _ = read_limit;
        Ok(Handshake::Done)
    }
    /// Whether it takes application bytes yet (not during a handshake).
    fn ready_for_data(&self) -> bool {
        true
    }
    /// Whether it holds output of its own for the socket, sent by `flush`.
    fn has_pending_output(&self) -> bool {
        false
    }
    /// The memory it holds of the connection's data, in bytes (TLS: what
    /// it read and has not decrypted or handed out yet, the handshake, and
    /// records not yet sent), for the connector's budget. Plain sockets
    /// hold nothing.
    fn held_bytes(&self) -> usize {
        0
    }
    /// Whether bytes came from the socket since the last call that the
    /// transport may not have handed out yet (TLS: parts of records), and
    /// if so whether it now holds part of a record: `Some(mid_record)`.
    /// The endpoint's idle and message timers count these bytes, which the
    /// application's bytes alone would not show. Plain sockets hand out
    /// every byte they read: `None`.
    fn take_wire_input(&mut self) -> Option<bool> {
        None
    }
}

/// How far [`Transport::handshake`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) enum Handshake {
    /// Done: application bytes may flow.
    Done,
    /// It waits for the socket (it read until `WouldBlock`).
    Waiting,
    /// It stopped at its read limit: the socket may have more.
    Paused,
}

/// TLS settings of an outgoing connection; without the `tls` feature
/// there are none (the type is empty).
#[cfg(feature = "tls")]
pub(crate) type ClientTls = crate::tls::ClientTls;
/// TLS settings of an outgoing connection; without the `tls` feature
/// there are none (the type is empty).
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub(crate) enum ClientTls {}

pub(crate) use dial::{Dial, Layer};

/// A socket that accepts connections.
pub(crate) trait Listener: Send + fmt::Debug {
    /// Accepts one connection, or `WouldBlock`.
    fn accept(&mut self) -> io::Result<(Box<dyn Transport>, PeerAddr)>;
    /// Registers for readability.
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()>;
    /// Undoes [`register`](Self::register).
    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
}

/// One address to try connecting to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    Inet(SocketAddr),
    Unix(UnixAddr),
}

/// TLS over `transport`, connecting to `peer`: the server's certificate
/// is checked against `host`, or else the peer's IP address.
fn tls_client(
    transport: Box<dyn Transport>,
    peer: &Peer,
    tls: &ClientTls,
    host: &Option<String>,
) -> io::Result<Box<dyn Transport>> {
    #[cfg(feature = "tls")]
    {
        use rustls::pki_types::ServerName;
        let name = match (host, peer) {
            (Some(host), _) => ServerName::try_from(host.to_owned()).ok(),
            (None, Peer::Inet(addr)) => Some(ServerName::IpAddress(addr.ip().into())),
            (None, Peer::Unix(_)) => None,
        };
        tls::client(transport, tls, name)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (transport, peer, host);
        match *tls {}
    }
}

fn plain_connect(peer: &Peer) -> io::Result<Box<dyn Transport>> {
    match peer {
        Peer::Inet(addr) => tcp::connect(*addr),
        #[cfg(unix)]
        Peer::Unix(addr) => unix::connect(addr),
        #[cfg(not(unix))]
        Peer::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix domain sockets need a Unix system",
        )),
    }
}

/// Binds a listener on `address` (a name is resolved here, blocking) and
/// returns it with the address peers connect to (port 0 resolved to the
/// port picked).
pub(crate) fn bind(address: &Address) -> io::Result<(Box<dyn Listener>, Address)> {
    match &address.0 {
        Target::Addrs(addrs) => tcp::bind(addrs),
        Target::Name(name) => {
            use std::net::ToSocketAddrs;
            let addrs: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
            tcp::bind(&addrs)
        }
        #[cfg(unix)]
        Target::Unix(addr) => unix::bind(addr),
        #[cfg(not(unix))]
        Target::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "Unix domain sockets need a Unix system",
        )),
    }
}
