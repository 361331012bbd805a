//! The connector: the handle application threads use.
//!
//! ```no_run
//! use std::time::Duration;
//! use pike::{Connector, Delivery, DisconnectMode, Event, ShutdownMode};
//! use pike::converters::StringConverter;
//!
//! # fn main() -> std::io::Result<()> {
//! let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
//! let client = Connector::builder(StringConverter::new()).spawn()?;
//! let addr = server.local_addr().expect("listening");
//!
//! let conn = client.connect(addr, Delivery::Merged).expect("running");
//! client.send(&conn, "hello".to_owned()).expect("running");
//! client.disconnect(&conn, DisconnectMode::FinishQueue);
//!
//! while let Some(event) = server.recv_timeout(Duration::from_secs(5)).ok() {
//!     match event {
//!         Event::RemoteConnect(remote) => remote.finish_accept(Delivery::Merged),
//!         Event::MessageReceived(m) => println!("{}: {}", m.connection, m.message),
//!         Event::RemoteDisconnect(_) => break,
//!         _ => {}
//!     }
//! }
//! server.shutdown(ShutdownMode::Now);
//! # Ok(())
//! # }
//! ```
//!
//! Decide every [`RemoteConnect`](crate::event::RemoteConnect) with
//! `finish_accept` or `reject`: one left to a catch-all arm is dropped,
//! which rejects the peer (with a warning in the log) after its connect
//! already succeeded.

mod async_io;
pub(crate) mod boundary;
pub(crate) mod budget;
pub(crate) mod channel;
pub(crate) mod command;
pub(crate) mod directory;
pub(crate) mod handle;
pub(crate) mod handshake;
mod options;
pub(crate) mod queues;
mod slab;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::converter::Converter;
use crate::error::{
    ConnectError, RecvError, RecvTimeoutError, SendError, SendTimeoutError, StartError,
    StoppedError, TryRecvError, TrySendError, UsageError,
};
use crate::event::{Connection, Event};
use crate::mode::{DisconnectMode, ShutdownMode};
use crate::reactor::{Config, Start};
use crate::reconnect::Reconnect;
use crate::stats::{ConnectionStats, Stats};
use crate::sync::{Mutex, Rank, lock};
use crate::transport;
pub(crate) use handle::SeparateQueue;
use handle::{Handle, Wait};

pub use async_io::{ConnectAsync, Events, Recv, RecvConnection, SendAsync, ShutdownAsync};
pub use budget::{DEFAULT_CONNECTION_SHARE, DEFAULT_MEMORY_BUDGET};
pub use options::ConnectOptions;

pub use crate::endpoint::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LINGER, DEFAULT_MAX_PENDING_INPUT, DEFAULT_SEND_HIGH_WATER,
    DEFAULT_SEND_QUEUE_CAP, DEFAULT_WRITE_BUFFER_SIZE,
};
/// The default time [`Connector::shutdown`] lets messages finish before
/// what is left ends as with `Now`: 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// The default limit on connections accepted from the listener and open
/// at once: 16,384.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16 * 1024;

/// Configures and starts a [`Connector`]. Every setting has a documented
/// default.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use pike::Connector;
/// use pike::converters::StringConverter;
///
/// let server = Connector::builder(StringConverter::new().with_max_message_size(64 << 10))
///     .listen("127.0.0.1:0") // or "unix:/run/app.sock"
///     .memory_budget(16 << 20) // everything received and not yet taken
///     .connection_share(128 << 10)
///     .send_high_water(256 << 10)
///     .max_connections(1000)
///     .idle_timeout(Duration::from_secs(60))
///     .message_timeout(Duration::from_secs(10))
///     .tcp_keepalive(Duration::from_secs(30))
///     .spawn()?;
/// assert!(server.local_addr().is_some());
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build`, `spawn` or a `run`"]
pub struct ConnectorBuilder<C> {
    converter: C,
    listen: Option<Address>,
    #[cfg(feature = "tls")]
    listen_tls: Option<crate::tls::ServerTls>,
    #[cfg(feature = "tls")]
    connect_tls: Option<crate::tls::ClientTls>,
    config: Config,
    shutdown_timeout: Option<Duration>,
    default_reconnect: Option<Reconnect>,
}

impl<C> fmt::Debug for ConnectorBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: Converter> ConnectorBuilder<C> {
    /// Listens on `addr`: a TCP address (port 0 picks a free port; see
    /// [`Connector::local_addr`]), a `host:port` name (resolved when the
    /// connector is built), or a Unix socket (`"unix:/path"`,
    /// `"unix:@name"`, [`Address::unix`]). A Unix socket file left by a
    /// process that died is replaced, one something listens on is not;
    /// the file is removed at shutdown. Default: not listening.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn listen(mut self, addr: impl Into<Address>) -> Self {
        self.listen = Some(addr.into());
        #[cfg(feature = "tls")]
        {
            self.listen_tls = None;
        }
        self
    }

    /// Listens on `addr` (as [`listen`](Self::listen)) with TLS: every
    /// connection accepted there handshakes with `tls` (feature `tls`; see
    /// [`crate::tls`]). Connections this connector opens are TLS or not
    /// as each `connect` says.
    ///
    /// Example: [`crate::tls`].
    #[cfg(feature = "tls")]
    pub fn listen_tls(mut self, addr: impl Into<Address>, tls: crate::tls::ServerTls) -> Self {
        self.listen = Some(addr.into());
        self.listen_tls = Some(tls);
        self
    }

    /// Every connect of this connector tries again as `policy` says when
    /// an attempt fails, unless its [`ConnectOptions`] say otherwise
    /// ([`reconnect`](ConnectOptions::reconnect),
    /// [`no_reconnect`](ConnectOptions::no_reconnect)). Default: a failed
    /// connect is final (see [`Reconnect`]).
    pub fn default_reconnect(mut self, policy: Reconnect) -> Self {
        self.default_reconnect = Some(policy);
        self
    }

    /// Every connect of this connector uses TLS with `tls` (feature
    /// `tls`) unless its [`ConnectOptions`] say otherwise
    /// ([`tls`](ConnectOptions::tls), [`plaintext`](ConnectOptions::plaintext)):
    /// for a program that speaks TLS to every peer. Default: no TLS.
    ///
    /// Example: [`crate::tls`].
    #[cfg(feature = "tls")]
    pub fn default_client_tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.connect_tls = Some(tls);
        self
    }

    /// [`default_client_tls`](Self::default_client_tls) (feature `tls`).
    #[cfg(feature = "tls")]
    #[deprecated(since = "0.2.0", note = "renamed `default_client_tls`")]
    pub fn tls_connect(self, tls: crate::tls::ClientTls) -> Self {
        self.default_client_tls(tls)
    }

    /// Bound of each connection's write buffer, in bytes. Default 256 KiB.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.config.endpoint.write_buffer_size = bytes.max(1);
        self
    }

    /// Bound on received bytes a deserializer may leave pending. Default 1 MiB.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn max_pending_input(mut self, bytes: usize) -> Self {
        self.config.endpoint.max_pending_input = bytes.max(1);
        self
    }

    /// The connector's memory budget, in bytes: everything a peer can make
    /// it hold, over all connections. Received: messages not yet taken by
    /// the application (each event's slot in its queue, plus the larger
    /// of the bytes read for its message and [`Converter::message_size`]),
    /// partly received messages, input read but not yet decoded. Unsent:
    /// every queue (messages by `message_size`), write buffer and
    /// transport buffer (TLS). Default [`DEFAULT_MEMORY_BUDGET`] (64 MiB).
    ///
    /// Past it, reading pauses on every connection that holds any of it
    /// (checked between the messages of each read) until the total is down
    /// to three quarters, or the connection holds nothing;
    /// [`Connector::try_send`] says `Full` for a queue that holds anything,
    /// [`Connector::send_waiting_for_room`] and `send_timeout` wait; and once unsent
    /// data alone reaches the budget, plain [`Connector::send`] hands
    /// messages back as `QueueFull` (a message of up to 4 KiB to an empty
    /// queue still goes).
    ///
    /// While others hold the budget, a connection that holds nothing may
    /// still make small reads (4 KiB), so that new and well-behaved peers
    /// are served; this can take the total past the budget by a small read,
    /// and what its messages and the replies to them hold, per connection
    /// ([`max_connections`](Self::max_connections)).
    /// If partly received messages alone hold the budget, one connection
    /// at a time reads on to complete its message. A peer that starts a
    /// message and never finishes it is best ended by a
    /// [`message_timeout`](Self::message_timeout).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.config.memory_budget = bytes.max(1);
        self
    }

    /// Each connection's share of the budget: the bytes of its received
    /// events not yet taken. Reading from it pauses there and resumes
    /// once the application has taken them down to half. Default
    /// [`DEFAULT_CONNECTION_SHARE`] (256 KiB).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn connection_share(mut self, bytes: usize) -> Self {
        self.config.connection_share = bytes.max(1);
        self
    }

    /// The most connections accepted from the listener and open at once;
    /// peers connecting beyond it are closed at once. Connections made
    /// with `connect` do not count. Default [`DEFAULT_MAX_CONNECTIONS`].
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.config.max_connections = connections;
        self
    }

    /// The high-water mark of each connection's unsent queue, in bytes of
    /// messages (by [`Converter::message_size`]). Past it
    /// [`Connector::try_send`] hands messages back
    /// ([`TrySendError::Full`]), [`Connector::send_timeout`] waits, and
    /// reading from that connection pauses, until the queue is down to half
    /// of it: a peer that sends requests and never reads the replies stops
    /// being read. Default
    /// [`DEFAULT_SEND_HIGH_WATER`]
    /// (1 MiB).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn send_high_water(mut self, bytes: usize) -> Self {
        self.config.endpoint.send_high_water = bytes.max(1);
        self
    }

    /// The hard cap of each connection's unsent queue: a plain
    /// [`send`](Connector::send), which never waits, hands a message back
    /// as [`RejectedMessage`](crate::event::RejectedMessage) with
    /// [`RejectReason::QueueFull`](crate::RejectReason::QueueFull) rather
    /// than queue past it (or past the [memory
    /// budget](Self::memory_budget), across connections). Default
    /// [`DEFAULT_SEND_QUEUE_CAP`]
    /// (16 MiB).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn send_queue_cap(mut self, bytes: usize) -> Self {
        self.config.endpoint.send_queue_cap = bytes.max(1);
        self
    }

    /// How long a `connect` may take, name resolution included, before it
    /// fails with [`ConnectError::TimedOut`]. Default: no limit of Pike's
    /// own (the operating system gives up after about two minutes).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.endpoint.connect_timeout = Some(timeout);
        self
    }

    /// How long an open connection may go without receiving a byte before
    /// it ends with [`PeerFault::IdleTimeout`](crate::PeerFault::IdleTimeout).
    /// Time during which Pike itself holds the connection's input back
    /// (the application is behind) does not count. Default: none.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.endpoint.idle_timeout = Some(timeout);
        self
    }

    /// How long a message may take from its first byte to its last before
    /// the connection ends with
    /// [`PeerFault::MessageTimeout`](crate::PeerFault::MessageTimeout):
    /// the defence against peers that trickle messages to hold a
    /// connection and its memory ("slowloris"). Set it well above the
    /// time the largest message needs at the slowest expected speed (for
    /// files, the whole file is one message). Default: none.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn message_timeout(mut self, timeout: Duration) -> Self {
        self.config.endpoint.message_timeout = Some(timeout);
        self
    }

    /// The longest [`Connector::shutdown`] in `FinishMessages` or
    /// `FinishQueue` waits for peers to take what is still to be written
    /// (and to close), before what is left ends as with `Now`, its
    /// messages handed back: a shutdown always ends, whatever a peer does.
    /// `None` waits for as long as the peers take. Default
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`] (30 s).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn shutdown_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a TLS handshake may take, from the moment the socket is
    /// accepted (or connected), before the connection ends with
    /// [`TlsErrorKind::HandshakeTimedOut`](crate::TlsErrorKind::HandshakeTimedOut)
    /// (a client's connect fails with it, or at its connect timeout if
    /// that comes first): so that stalled handshakes do not wait for an
    /// idle timeout. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]
    /// (10 s).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.endpoint.handshake_timeout = Some(timeout);
        self
    }

    /// Turns TCP keepalive on: after `idle` without traffic the operating
    /// system probes the peer (every third of `idle`, three times) and
    /// ends a connection whose peer is gone, with
    /// [`SocketFailure::Unresponsive`](crate::SocketFailure::Unresponsive).
    /// Default: off.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn tcp_keepalive(mut self, idle: Duration) -> Self {
        self.config.socket.keepalive = Some(idle);
        self
    }

    /// Sets `TCP_USER_TIMEOUT` (Linux): a connection whose sent data stays
    /// unacknowledged this long ends with
    /// [`SocketFailure::Unresponsive`](crate::SocketFailure::Unresponsive),
    /// which detects a dead peer while there is data to send (keepalive
    /// covers quiet connections). Ignored elsewhere. Default: the
    /// system's (many minutes).
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.socket.user_timeout = Some(timeout);
        self
    }

    /// How long a connection closed with `FinishMessage`/`FinishQueue`
    /// waits for its peer to close, so that no reset destroys data in
    /// flight. Default [`DEFAULT_LINGER`].
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.endpoint.linger = linger;
        self
    }

    /// Whether to disable Nagle's algorithm (`TCP_NODELAY`). Default true.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.config.socket.nodelay = nodelay;
        self
    }

    /// Size of the network thread's read buffer (one per connector, not per
    /// connection): the most one read system call takes. Default 256 KiB.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn read_chunk(mut self, bytes: usize) -> Self {
        self.config.read_chunk = bytes.max(1);
        self
    }

    /// Binds the listener, if any, and returns a connector that is not
    /// running yet: start it with [`Connector::run`] or [`Connector::spawn`].
    /// Commands given before that wait for it. Fails with
    /// [`StartError::Listen`] when the address cannot be bound, and
    /// [`StartError::Poll`] when the system will not give the loop its
    /// poller.
    ///
    /// Example: [`Connector::run`].
    pub fn build(self) -> Result<Connector<C>, StartError> {
        let (listener, local) = match &self.listen {
            None => (None, None),
            Some(addr) => {
                let (listener, local) = transport::bind(addr).map_err(StartError::Listen)?;
                #[cfg(feature = "tls")]
                let listener = match self.listen_tls {
                    Some(settings) => Box::new(transport::tls::TlsListener {
                        inner: listener,
                        settings,
                    }),
                    None => listener,
                };
                (Some(listener), Some(local))
            }
        };
        let handle = Handle::new(Arc::new(self.converter), self.config, listener)
            .map_err(StartError::Poll)?;
        Ok(Connector {
            inner: Arc::new(Inner {
                handle,
                shutdown_timeout: self.shutdown_timeout,
                thread: Mutex::new(Rank::Thread, None),
                local,
                #[cfg(feature = "tls")]
                default_tls: self.connect_tls,
                #[cfg(not(feature = "tls"))]
                default_tls: None,
                default_reconnect: self.default_reconnect,
            }),
        })
    }

    /// Builds the connector and starts its network thread in the
    /// background: [`build`](Self::build), then [`Connector::spawn`], with
    /// their errors.
    ///
    /// Example: [the builder example](ConnectorBuilder).
    pub fn spawn(self) -> Result<Connector<C>, StartError> {
        let connector = self.build()?;
        connector.spawn()?;
        Ok(connector)
    }
}

/// The hub through which connections are made and messages sent and
/// received. Cheap to clone, and `Send + Sync`: any number of threads may
/// use it at once.
///
/// Dropping the last handle of a running connector shuts it down
/// ([`ShutdownMode::Now`]) and joins its thread.
pub struct Connector<C: Converter> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: Converter> {
    /// Everything the connector asks of the network side goes through it.
    handle: Handle<C>,
    /// How long [`Connector::shutdown`] lets messages finish.
    shutdown_timeout: Option<Duration>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Where it listens, as peers connect to it.
    local: Option<Address>,
    /// TLS for every connect whose options do not say ([`ConnectorBuilder::default_client_tls`]).
    default_tls: Option<transport::ClientTls>,
    /// How connects whose options do not say try again
    /// ([`ConnectorBuilder::default_reconnect`]).
    default_reconnect: Option<Reconnect>,
}

impl<C: Converter> Clone for Connector<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Converter> fmt::Debug for Connector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("listening", &self.inner.local)
            .field("stopped", &self.inner.handle.is_stopped())
            .finish()
    }
}

impl<C: Converter> Connector<C> {
    /// Starts configuring a connector that speaks `converter`'s protocol.
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn builder(converter: C) -> ConnectorBuilder<C> {
        ConnectorBuilder {
            converter,
            listen: None,
            #[cfg(feature = "tls")]
            listen_tls: None,
            #[cfg(feature = "tls")]
            connect_tls: None,
            shutdown_timeout: Some(DEFAULT_SHUTDOWN_TIMEOUT),
            default_reconnect: None,
            config: Config::default(),
        }
    }

    /// The TCP address the connector listens on, if it listens on TCP
    /// (see [`local_address`](Self::local_address) for Unix sockets too).
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local.as_ref()?.as_socket_addr()
    }

    /// Where the connector listens, in the form peers connect to (TCP or
    /// Unix), if it listens. (The `_addr` methods give the standard
    /// library's `SocketAddr`, the `_address` ones Pike's [`Address`].)
    ///
    /// Example: [`Address`] (how it prints), and the module documentation.
    pub fn local_address(&self) -> Option<Address> {
        self.inner.local.clone()
    }

    /// The old name of [`local_address`](Self::local_address).
    #[deprecated(since = "0.2.0", note = "renamed `local_address`, beside `local_addr`")]
    pub fn listen_address(&self) -> Option<Address> {
        self.local_address()
    }

    /// Gives the calling thread to the network loop until shutdown
    /// completes (the blocking way to run a connector). A connector runs
    /// once: a second `run` or `spawn` is [`UsageError::AlreadyStarted`].
    /// After a shutdown that came before any start, it returns at once:
    /// there is nothing left to run.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// # #[allow(unused_imports)]
    /// use pike::{Connector, Delivery, Event, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// let wait = Duration::from_secs(5);
    /// # let _ = (&server, &client, wait);
    /// let blocking = Connector::builder(StringConverter::new()).build()?;
    /// let runner = {
    ///     let c = blocking.clone();
    ///     std::thread::spawn(move || c.run()) // returns once shut down
    /// };
    /// // … connect, send and receive from other threads …
    /// blocking.shutdown(ShutdownMode::Now);
    /// runner.join().unwrap()?;
    /// # Ok(()) }
    /// ```
    pub fn run(&self) -> Result<(), UsageError> {
        if self.start()? {
            (self.inner.handle.network_thread())();
        }
        Ok(())
    }

    /// Starts the network loop on a background thread and returns. A
    /// connector runs once: a second `run` or `spawn` is
    /// [`UsageError::AlreadyStarted`] (after a shutdown that came before
    /// any start, there is nothing to run, and it returns `Ok`).
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn spawn(&self) -> Result<(), StartError> {
        if !self.start()? {
            return Ok(());
        }
        let handle = std::thread::Builder::new()
            .name("pike-network".into())
            .spawn(self.inner.handle.network_thread())
            .map_err(StartError::Thread)?;
        *lock(&self.inner.thread) = Some(handle);
        Ok(())
    }

    /// Whether the caller is to run the loop: not if a shutdown came
    /// first (the connector is stopped, there is nothing to run).
    fn start(&self) -> Result<bool, UsageError> {
        match self.inner.handle.start() {
            Start::Go => Ok(true),
            Start::Stopped => Ok(false),
            Start::Twice => Err(UsageError::AlreadyStarted),
        }
    }

    /// Bytes counted against the memory budget now (see
    /// [`ConnectorBuilder::memory_budget`]): received events not yet taken,
    /// partly received messages, input read but not yet decoded, and what
    /// every connection holds for sending and in its transport.
    ///
    /// Example: [`stats`](Self::stats), which includes it.
    pub fn memory_in_use(&self) -> usize {
        self.inner.handle.memory_in_use()
    }

    /// A snapshot of the connector's counters and gauges: connections
    /// open, accepted, connected and closed (by how), messages and bytes
    /// in and out, messages handed back (by why), protocol errors, queued
    /// and undelivered messages, memory in use. Exact: every connection,
    /// open or closed, is counted once. See [`stats`](crate::stats).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use pike::Connector;
    /// use pike::converters::StringConverter;
    ///
    /// let c = Connector::builder(StringConverter::new()).spawn()?;
    /// println!("{}", c.stats()); // one line, as `pike listen --stats` prints it
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.handle.stats()
    }

    /// One open connection's counters and gauges; `None` once it is closed
    /// (its numbers are then in [`stats`](Self::stats)' totals).
    ///
    /// Example: [`stats`](Self::stats).
    pub fn connection_stats(&self, connection: &Connection) -> Option<ConnectionStats> {
        self.inner.handle.connection_stats(*connection)
    }

    /// Whether the connector has fully stopped (no event will come).
    ///
    /// Example: [`shutdown`](Self::shutdown).
    pub fn is_stopped(&self) -> bool {
        self.inner.handle.is_stopped()
    }

    // ----- connections ----------------------------------------------------------

    /// Starts connecting to `addr` as `options` say (a [`Delivery`](crate::Delivery), or
    /// [`ConnectOptions`] for TLS settings of its own) and returns the
    /// connection at once. The outcome arrives as a `FinishConnect` event
    /// (over TLS, once the handshake is done); messages sent meanwhile are
    /// written once connected, or come back in that event.
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn connect(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
    ) -> Result<Connection, StoppedError> {
        self.inner
            .handle
            .connect(self.dial(addr.into(), options.into()))
    }

    /// How `options` open a connection to `addr` from this connector.
    fn dial(&self, addr: Address, options: ConnectOptions) -> transport::Dial {
        let reconnect = options.reconnect_policy(self.inner.default_reconnect);
        let (delivery, tls) = options.resolve(self.inner.default_tls.as_ref());
        let mut dial = transport::Dial::new(addr.0, delivery, tls);
        dial.reconnect = reconnect;
        dial
    }

    /// [`connect`](Self::connect) with TLS (feature `tls`).
    #[cfg(feature = "tls")]
    #[deprecated(
        since = "0.2.0",
        note = "use `connect(addr, ConnectOptions::from(delivery).tls(tls))`"
    )]
    pub fn connect_tls(
        &self,
        addr: impl Into<Address>,
        delivery: crate::Delivery,
        tls: &crate::tls::ClientTls,
    ) -> Result<Connection, StoppedError> {
        self.connect(addr, ConnectOptions::from(delivery).tls(tls))
    }

    /// [`connect_waiting`](Self::connect_waiting) with TLS (feature
    /// `tls`).
    #[cfg(feature = "tls")]
    #[deprecated(
        since = "0.2.0",
        note = "use `connect_timeout(addr, ConnectOptions::from(delivery).tls(tls), timeout)`"
    )]
    pub fn connect_waiting_tls(
        &self,
        addr: impl Into<Address>,
        delivery: crate::Delivery,
        timeout: Duration,
        tls: &crate::tls::ClientTls,
    ) -> Result<(Connection, Result<(), ConnectError>), StoppedError> {
        #[allow(deprecated)]
        self.connect_waiting(addr, ConnectOptions::from(delivery).tls(tls), timeout)
    }

    /// Connects as `options` say (see [`connect`](Self::connect)),
    /// blocking until connected (over TLS: the handshake done), failed or
    /// `timeout`, and returns the connection, or why there is none
    /// ([`ConnectError::Stopped`] if the connector has stopped). No
    /// `FinishConnect` event is produced. On timeout the attempt is
    /// abandoned (and closed whenever it completes). The blocking form of
    /// [`connect`](Self::connect), as `TcpStream::connect_timeout` is of
    /// the standard library.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// # #[allow(unused_imports)]
    /// use pike::{Connector, Delivery, Event, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// let wait = Duration::from_secs(5);
    /// # let _ = (&server, &client, wait);
    /// // A ConnectError says why not.
    /// let conn = client.connect_timeout(server.local_addr().unwrap(), Delivery::Merged, wait)?;
    /// client.send(&conn, "connected".to_owned())?;
    /// # Ok(()) }
    /// ```
    pub fn connect_timeout(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        self.connect_until(addr, options, Wait::For(timeout), |_| {})
    }

    /// [`connect_timeout`](Self::connect_timeout), blocking until
    /// `deadline` at most.
    ///
    /// Example: [`connect_timeout`](Self::connect_timeout).
    pub fn connect_deadline(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
        deadline: Instant,
    ) -> Result<Connection, ConnectError> {
        self.connect_until(addr, options, Wait::Until(deadline), |_| {})
    }

    /// Like [`connect_timeout`](Self::connect_timeout), and on success runs
    /// `callback` on the calling thread before any event of the connection
    /// is delivered (to file the connection where the threads that take
    /// its events look for it).
    ///
    /// Example: the `chat_client` example.
    pub fn connect_timeout_with(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
        timeout: Duration,
        callback: impl FnOnce(Connection),
    ) -> Result<Connection, ConnectError> {
        self.connect_until(addr, options, Wait::For(timeout), callback)
    }

    fn connect_until(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
        wait: Wait,
        callback: impl FnOnce(Connection),
    ) -> Result<Connection, ConnectError> {
        let deadline = wait.deadline().unwrap_or_else(far_future);
        let dial = self.dial(addr.into(), options.into());
        let (connection, outcome) = self.inner.handle.connect_waiting(dial, deadline)?;
        // Its events are held until this returns, even if the callback
        // panics (or they would be held forever).
        let _held = outcome?;
        callback(connection);
        Ok(connection)
    }

    /// The old blocking connect: the connection and, inside, whether it
    /// connected.
    #[deprecated(
        since = "0.2.0",
        note = "use `connect_timeout`, which returns `Result<Connection, ConnectError>`"
    )]
    pub fn connect_waiting(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
        timeout: Duration,
    ) -> Result<(Connection, Result<(), ConnectError>), StoppedError> {
        #[allow(deprecated)]
        self.connect_waiting_with(addr, options, timeout, |_| {})
    }

    /// The old blocking connect with a callback.
    #[deprecated(
        since = "0.2.0",
        note = "use `connect_timeout_with`, which returns `Result<Connection, ConnectError>`"
    )]
    pub fn connect_waiting_with(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
        timeout: Duration,
        callback: impl FnOnce(Connection),
    ) -> Result<(Connection, Result<(), ConnectError>), StoppedError> {
        let deadline = Wait::For(timeout).deadline().unwrap_or_else(far_future);
        let dial = self.dial(addr.into(), options.into());
        let (connection, outcome) = self.inner.handle.connect_waiting(dial, deadline)?;
        match outcome {
            Ok(held) => {
                let _held = held;
                callback(connection);
                Ok((connection, Ok(())))
            }
            Err(e) => Ok((connection, Err(e))),
        }
    }

    /// Enqueues `message`; never waits for the network. If the connection
    /// is disconnecting, closed or unknown, the message comes back in a
    /// `RejectedMessage` event. Once the connector has stopped it comes
    /// straight back as the error.
    ///
    /// On an open connection the calling thread serializes the message.
    /// After a pause it also writes it to the (non-blocking) socket at once,
    /// without a hand-off to the network thread; sends in quick succession
    /// are left for the network thread to write together, and so is
    /// whatever the socket does not take.
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn send(
        &self,
        connection: &Connection,
        message: C::Message,
    ) -> Result<(), SendError<C::Message>> {
        self.inner.handle.send(*connection, message)
    }

    /// Enqueues `message` unless the connection's unsent queue is over its
    /// high-water mark ([`ConnectorBuilder::send_high_water`]), in which
    /// case it comes straight back as [`TrySendError::Full`]. Never waits.
    /// Otherwise as [`send`](Self::send): a connection that is
    /// disconnecting, closed or unknown hands it back in a
    /// `RejectedMessage` event.
    ///
    /// # Examples
    ///
    /// A producer that must not wait keeps what the connection cannot take:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// # #[allow(unused_imports)]
    /// use pike::{Connector, Delivery, Event, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// let wait = Duration::from_secs(5);
    /// # let _ = (&server, &client, wait);
    /// let conn = client.connect(server.local_addr().unwrap(), Delivery::Merged)?;
    /// let mut backlog = Vec::new();
    /// for i in 0..10 {
    ///     match client.try_send(&conn, i.to_string()) {
    ///         Ok(()) => {}
    ///         Err(pike::TrySendError::Full(message)) => backlog.push(message), // try later
    ///         Err(pike::TrySendError::Stopped(_)) => break,
    ///     }
    /// }
    /// // Or wait for room, at most a while:
    /// client.send_timeout(&conn, "last".to_owned(), wait)?;
    /// println!("{:?} still to write", client.queued(&conn));
    /// # Ok(()) }
    /// ```
    pub fn try_send(
        &self,
        connection: &Connection,
        message: C::Message,
    ) -> Result<(), TrySendError<C::Message>> {
        self.inner.handle.try_send(*connection, message)
    }

    /// Enqueues `message`, waiting up to `timeout` while the connection's
    /// unsent queue is over its high-water mark, until it is down to half
    /// of it. On timeout the message comes back as
    /// [`SendTimeoutError::Timeout`]. Otherwise as [`send`](Self::send).
    ///
    /// Example: [`try_send`](Self::try_send).
    pub fn send_timeout(
        &self,
        connection: &Connection,
        message: C::Message,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<C::Message>> {
        self.send_until(connection, message, Instant::now().checked_add(timeout))
    }

    /// [`send_timeout`](Self::send_timeout) with a deadline.
    ///
    /// Example: [`try_send`](Self::try_send).
    pub fn send_deadline(
        &self,
        connection: &Connection,
        message: C::Message,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<C::Message>> {
        self.send_until(connection, message, Some(deadline))
    }

    /// Enqueues `message`, waiting for as long as the connection's unsent
    /// queue is over its high-water mark (the peer reads slowly), until it
    /// is down to half of it: the form for a producer that should go at
    /// its peer's pace. It waits for room in the queue, not for the message
    /// to be written. Otherwise as [`send`](Self::send).
    ///
    /// Example: [`try_send`](Self::try_send) (which never waits).
    pub fn send_waiting_for_room(
        &self,
        connection: &Connection,
        message: C::Message,
    ) -> Result<(), SendError<C::Message>> {
        self.send_until(connection, message, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// The old name of [`send_waiting_for_room`](Self::send_waiting_for_room).
    #[deprecated(
        since = "0.2.0",
        note = "renamed `send_waiting_for_room`: it waits for room, not for the message to be sent"
    )]
    pub fn send_blocking(
        &self,
        connection: &Connection,
        message: C::Message,
    ) -> Result<(), SendError<C::Message>> {
        self.send_waiting_for_room(connection, message)
    }

    fn send_until(
        &self,
        connection: &Connection,
        message: C::Message,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<C::Message>> {
        self.inner
            .handle
            .send_waiting(*connection, message, deadline)
    }

    /// The connection's unsent queue: how many messages are not yet written
    /// in full, and their bytes (by [`Converter::message_size`]). `None` if
    /// the connection is closed or unknown.
    ///
    /// Example: [`try_send`](Self::try_send).
    pub fn queued(&self, connection: &Connection) -> Option<Queued> {
        self.inner
            .handle
            .queued(*connection)
            .map(|(messages, bytes)| Queued { messages, bytes })
    }

    /// Enqueues several messages for one connection, in order, written
    /// with as few system calls as the socket allows: cheaper than one
    /// `send` each. Outcomes as for [`send`](Self::send); once the connector
    /// has stopped, all of them come straight back.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// # #[allow(unused_imports)]
    /// use pike::{Connector, Delivery, Event, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// let wait = Duration::from_secs(5);
    /// # let _ = (&server, &client, wait);
    /// let conn = client.connect(server.local_addr().unwrap(), Delivery::Merged)?;
    /// client.send_batch(&conn, (0..100).map(|i| i.to_string()))?;
    /// let (mut events, mut got) = (Vec::new(), 0);
    /// while got < 100 {
    ///     server.recv_batch(&mut events, 256, wait)?;
    ///     for event in events.drain(..) {
    ///         match event {
    ///             Event::RemoteConnect(r) => r.finish_accept(Delivery::Merged),
    ///             Event::MessageReceived(_) => got += 1,
    ///             _ => {}
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn send_batch(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
    ) -> Result<(), SendError<Vec<C::Message>>> {
        // Collected first: the caller's iterator must not run while the
        // connection is locked.
        let messages: Vec<C::Message> = messages.into_iter().collect();
        if messages.is_empty() {
            return Ok(());
        }
        self.inner.handle.send_batch(*connection, messages)
    }

    /// Enqueues several messages for one connection, in order, waiting for
    /// room as [`send_waiting_for_room`](Self::send_waiting_for_room) does: as many at a
    /// time as the unsent queue takes below its high-water mark, each lot
    /// written with as few system calls as the socket allows, then waiting
    /// until the queue is down to half of the mark before the next lot.
    /// No message comes back for want of room; otherwise as
    /// [`send`](Self::send). The form for a producer of batches that
    /// should go at its peer's pace.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// use pike::{Connector, Delivery, Event};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// // A small high-water mark: the batch goes out in many lots.
    /// let client = Connector::builder(StringConverter::new()).send_high_water(1024).spawn()?;
    /// let conn = client.connect(server.local_addr().unwrap(), Delivery::Merged)?;
    /// let reader = std::thread::spawn(move || {
    ///     let mut got = 0;
    ///     while got < 10_000 {
    ///         match server.recv_timeout(Duration::from_secs(10)) {
    ///             Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
    ///             Ok(Event::MessageReceived(_)) => got += 1,
    ///             Ok(_) => {}
    ///             Err(e) => panic!("{e}"),
    ///         }
    ///     }
    /// });
    /// client.send_batch_waiting_for_room(&conn, (0..10_000).map(|i| i.to_string()))?;
    /// reader.join().unwrap();
    /// # Ok(()) }
    /// ```
    pub fn send_batch_waiting_for_room(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
    ) -> Result<(), SendError<Vec<C::Message>>> {
        self.send_batch_until(connection, messages, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// The old name of
    /// [`send_batch_waiting_for_room`](Self::send_batch_waiting_for_room).
    #[deprecated(since = "0.2.0", note = "renamed `send_batch_waiting_for_room`")]
    pub fn send_batch_blocking(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
    ) -> Result<(), SendError<Vec<C::Message>>> {
        self.send_batch_waiting_for_room(connection, messages)
    }

    /// Enqueues as many of `messages`, in order, as the connection's
    /// unsent queue takes below its high-water mark, never waiting; the
    /// rest come straight back as [`TrySendError::Full`] (or all of them
    /// as [`TrySendError::Stopped`]). Otherwise as
    /// [`send_batch`](Self::send_batch).
    ///
    /// Example: [`try_send`](Self::try_send) (one message).
    pub fn try_send_batch(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
    ) -> Result<(), TrySendError<Vec<C::Message>>> {
        self.send_batch_until(connection, messages, Some(Instant::now()))
            .map_err(|e| match e {
                SendTimeoutError::Timeout(rest) => TrySendError::Full(rest),
                SendTimeoutError::Stopped(all) => TrySendError::Stopped(all),
            })
    }

    /// [`send_batch_waiting_for_room`](Self::send_batch_waiting_for_room), waiting at most
    /// `timeout` in all. On timeout, the messages not yet queued come back
    /// as [`SendTimeoutError::Timeout`] (those before them are queued).
    pub fn send_batch_timeout(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError<Vec<C::Message>>> {
        self.send_batch_until(connection, messages, Instant::now().checked_add(timeout))
    }

    /// [`send_batch_waiting_for_room`](Self::send_batch_waiting_for_room), waiting until
    /// `deadline` at most. On timeout, the messages not yet queued come
    /// back as [`SendTimeoutError::Timeout`] (those before them are
    /// queued).
    pub fn send_batch_deadline(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
        deadline: Instant,
    ) -> Result<(), SendTimeoutError<Vec<C::Message>>> {
        self.send_batch_until(connection, messages, Some(deadline))
    }

    fn send_batch_until(
        &self,
        connection: &Connection,
        messages: impl IntoIterator<Item = C::Message>,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<Vec<C::Message>>> {
        // Collected first: the caller's iterator must not run while the
        // connection is locked.
        let messages: Vec<C::Message> = messages.into_iter().collect();
        if messages.is_empty() {
            return Ok(());
        }
        self.inner
            .handle
            .send_batch_waiting(*connection, messages, deadline)
    }

    /// Starts closing `connection` in `mode`; a `FinishDisconnect` event
    /// follows (or an unsuccessful `FinishConnect` if it was still
    /// connecting). A second call is a no-op.
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn disconnect(&self, connection: &Connection, mode: DisconnectMode) {
        self.inner.handle.disconnect(*connection, mode);
    }

    // ----- events ---------------------------------------------------------------

    /// Blocks for the next event of the main queue;
    /// [`RecvError::Stopped`] once the connector has stopped and every
    /// event was taken.
    ///
    /// Example: [`shutdown`](Self::shutdown).
    pub fn recv(&self) -> Result<Event<C::Message>, RecvError> {
        loop {
            let mut got = None;
            self.take_main(&mut |e| got = Some(e), 1, Wait::Forever)
                .map_err(|()| RecvError::Stopped)?;
            if let Some(event) = got {
                return Ok(event);
            }
        }
    }

    /// The next event of the main queue, if one is ready.
    ///
    /// Example: [`recv_batch`](Self::recv_batch) takes what is ready the same way, many at once.
    pub fn try_recv(&self) -> Result<Event<C::Message>, TryRecvError> {
        self.inner.handle.try_recv()
    }

    /// Blocks for the next event of the main queue until `deadline`.
    ///
    /// Example: [the module documentation](crate::connector) (with a timeout instead).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Event<C::Message>, RecvTimeoutError> {
        self.recv_until(Wait::Until(deadline))
    }

    /// Blocks for the next event of the main queue, at most `timeout`.
    ///
    /// Example: [the module documentation](crate::connector).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event<C::Message>, RecvTimeoutError> {
        self.recv_until(Wait::For(timeout))
    }

    fn recv_until(&self, wait: Wait) -> Result<Event<C::Message>, RecvTimeoutError> {
        let mut got = None;
        match self.take_main(&mut |e| got = Some(e), 1, wait) {
            Ok(_) => got.ok_or(RecvTimeoutError::Timeout),
            Err(()) => Err(RecvTimeoutError::Stopped),
        }
    }

    /// Blocks up to `timeout` for the next event of the main queue, then
    /// also takes whatever else is ready, up to `max` events in all, into
    /// `out` (in order). Returns how many were added: 0 on timeout. One
    /// wake-up for many events, where [`recv`](Self::recv) pays one each.
    /// [`RecvError::Stopped`] once the connector has stopped and every
    /// event was taken.
    ///
    /// Example: [`send_batch`](Self::send_batch).
    pub fn recv_batch(
        &self,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, RecvError> {
        self.recv_batch_until(out, max, Wait::For(timeout))
    }

    /// [`recv_batch`](Self::recv_batch), blocking until `deadline` at
    /// most for the first event.
    ///
    /// Example: [`send_batch`](Self::send_batch) (with a timeout instead).
    pub fn recv_batch_deadline(
        &self,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
        deadline: Instant,
    ) -> Result<usize, RecvError> {
        self.recv_batch_until(out, max, Wait::Until(deadline))
    }

    /// [`recv_batch`](Self::recv_batch) without waiting: takes up to `max`
    /// of the events ready now (0 if none is).
    ///
    /// Example: [`send_batch`](Self::send_batch) (which waits instead).
    pub fn try_recv_batch(
        &self,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
    ) -> Result<usize, RecvError> {
        self.recv_batch_until(out, max, Wait::For(Duration::ZERO))
    }

    fn recv_batch_until(
        &self,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
        wait: Wait,
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        self.take_main(&mut |e| out.push(e), max, wait)
            .map_err(|()| RecvError::Stopped)
    }

    /// Passes up to `max` events of the main queue to `take`, waiting for
    /// the first as `wait` says, running the network loop on this thread
    /// meanwhile if nobody else needs it.
    fn take_main(
        &self,
        take: &mut impl FnMut(Event<C::Message>),
        max: usize,
        wait: Wait,
    ) -> Result<usize, ()> {
        self.inner.handle.take_main(take, max, wait)
    }

    /// Blocks for the next event of a [separate](crate::Delivery::Separate)
    /// connection. [`RecvError::Closed`] if the connection is merged,
    /// unknown, or its final event was taken
    /// ([`RecvError::Stopped`] if, by then, the connector had stopped).
    ///
    /// # Examples
    ///
    /// A connection with its own queue, read on its own, then merged into the
    /// main queue:
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// # #[allow(unused_imports)]
    /// use pike::{Connector, Delivery, Event, RecvError, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// let wait = Duration::from_secs(5);
    /// # let _ = (&server, &client, wait);
    /// let conn = client.connect(server.local_addr().unwrap(), Delivery::Separate)?;
    /// match client.recv_connection_timeout(&conn, wait)? {
    ///     Event::FinishConnect(f) => assert!(f.success()),
    ///     other => panic!("{other:?}"),
    /// }
    /// client.merge_connection(&conn); // its events come to `recv` from now on
    /// assert_eq!(client.recv_connection(&conn).unwrap_err(), RecvError::Closed);
    /// # Ok(()) }
    /// ```
    pub fn recv_connection(&self, connection: &Connection) -> Result<Event<C::Message>, RecvError> {
        loop {
            let mut got = None;
            self.recv_connection_until(connection, &mut |e| got = Some(e), 1, Wait::Forever)?;
            if let Some(event) = got {
                return Ok(event);
            }
        }
    }

    /// The next event of a separate connection, if one is ready.
    ///
    /// Example: [`recv_connection`](Self::recv_connection).
    pub fn try_recv_connection(
        &self,
        connection: &Connection,
    ) -> Result<Event<C::Message>, TryRecvError> {
        let mut got = None;
        let wait = Wait::For(Duration::ZERO);
        self.recv_connection_until(connection, &mut |e| got = Some(e), 1, wait)?;
        got.ok_or(TryRecvError::Empty)
    }

    /// Blocks for the next event of a separate connection, at most `timeout`.
    ///
    /// Example: [`recv_connection`](Self::recv_connection).
    pub fn recv_connection_timeout(
        &self,
        connection: &Connection,
        timeout: Duration,
    ) -> Result<Event<C::Message>, RecvTimeoutError> {
        let mut got = None;
        let wait = Wait::For(timeout);
        self.recv_connection_until(connection, &mut |e| got = Some(e), 1, wait)?;
        got.ok_or(RecvTimeoutError::Timeout)
    }

    /// Blocks for the next event of a separate connection until
    /// `deadline`.
    ///
    /// Example: [`recv_connection`](Self::recv_connection) (with a timeout instead).
    pub fn recv_connection_deadline(
        &self,
        connection: &Connection,
        deadline: Instant,
    ) -> Result<Event<C::Message>, RecvTimeoutError> {
        let mut got = None;
        let wait = Wait::Until(deadline);
        self.recv_connection_until(connection, &mut |e| got = Some(e), 1, wait)?;
        got.ok_or(RecvTimeoutError::Timeout)
    }

    /// [`recv_batch`](Self::recv_batch) for a separate connection: blocks
    /// up to `timeout` for its next event, then also takes whatever else
    /// of its events is ready, up to `max` in all, into `out`. Returns how
    /// many were added: 0 on timeout; Err as
    /// [`recv_connection`](Self::recv_connection).
    ///
    /// Example: [`recv_connection`](Self::recv_connection) (one at a time).
    pub fn recv_connection_batch(
        &self,
        connection: &Connection,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        self.recv_connection_until(connection, &mut |e| out.push(e), max, Wait::For(timeout))
    }

    /// [`recv_connection_batch`](Self::recv_connection_batch), blocking
    /// until `deadline` at most for the first event.
    ///
    /// Example: [`recv_connection`](Self::recv_connection) (one at a time).
    pub fn recv_connection_batch_deadline(
        &self,
        connection: &Connection,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
        deadline: Instant,
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        self.recv_connection_until(connection, &mut |e| out.push(e), max, Wait::Until(deadline))
    }

    /// [`recv_connection_batch`](Self::recv_connection_batch) without
    /// waiting: takes up to `max` of the connection's events ready now (0
    /// if none is).
    ///
    /// Example: [`recv_connection`](Self::recv_connection) (one at a time).
    pub fn try_recv_connection_batch(
        &self,
        connection: &Connection,
        out: &mut Vec<Event<C::Message>>,
        max: usize,
    ) -> Result<usize, RecvError> {
        self.recv_connection_batch(connection, out, max, Duration::ZERO)
    }

    /// Passes up to `max` events of a separate connection to `take`,
    /// waiting for the first as `wait` says.
    fn recv_connection_until(
        &self,
        connection: &Connection,
        take: &mut impl FnMut(Event<C::Message>),
        max: usize,
        wait: Wait,
    ) -> Result<usize, RecvError> {
        let queue = self
            .inner
            .handle
            .separate(*connection)
            .ok_or_else(|| self.separate_ended())?;
        queue
            .recv_batch(take, max, wait.timeout())
            .map_err(|()| self.separate_ended())
    }

    /// What a separate queue that has ended says: `Stopped` if the
    /// connector had stopped by then, else `Closed`.
    pub(crate) fn separate_ended(&self) -> RecvError {
        if self.is_stopped() {
            RecvError::Stopped
        } else {
            RecvError::Closed
        }
    }

    /// Sends a separate connection's events to the main queue from now on.
    /// When this returns, every event still queued for it has moved, in
    /// order, to the main queue, and threads blocked in `recv_connection`
    /// for it return `None`. (After the connector has stopped, the events
    /// stay where `recv_connection` still finds them.)
    ///
    /// Example: [`recv_connection`](Self::recv_connection).
    pub fn merge_connection(&self, connection: &Connection) {
        self.inner.handle.merge(*connection);
    }

    // ----- shutdown -------------------------------------------------------------

    /// Closes the listener, cancels connections still connecting,
    /// disconnects every established connection in `mode`, and blocks until
    /// all of that is done. Events produced before the end are still
    /// delivered; then `recv` returns `None`. Idempotent, and safe from
    /// several threads at once.
    ///
    /// How long it blocks: [`ShutdownMode::Now`] closes at once.
    /// `FinishMessage` and `FinishQueue` wait as long as the peers take to
    /// read what is still to be written, then up to the builder's `linger`
    /// for each peer to close (so that no reset destroys data in flight),
    /// but never longer than the builder's
    /// [`shutdown_timeout`](ConnectorBuilder::shutdown_timeout) (30 s by
    /// default): then what is left ends as with `Now`, its messages handed
    /// back. [`shutdown_timeout`](Self::shutdown_timeout) gives a deadline
    /// of its own. A later `shutdown(Now)` from another thread cuts it
    /// short too.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// # #[allow(unused_imports)]
    /// use pike::{Connector, Delivery, Event, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// let wait = Duration::from_secs(5);
    /// # let _ = (&server, &client, wait);
    /// let conn = client.connect(server.local_addr().unwrap(), Delivery::Merged)?;
    /// client.send(&conn, "written before the end".to_owned())?;
    /// client.shutdown(ShutdownMode::FinishQueue); // returns once everything is written
    /// assert!(client.is_stopped());
    /// while let Ok(event) = client.recv() {
    ///     println!("{event:?}"); // the connection's last events, then `None`
    /// }
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&self, mode: ShutdownMode) {
        let deadline = self
            .inner
            .shutdown_timeout
            .and_then(|t| Instant::now().checked_add(t));
        self.inner.shutdown(mode, deadline);
    }

    /// [`shutdown`](Self::shutdown) in `mode`, but whatever is still
    /// being written or waits for its peer to close after `timeout` ends
    /// as with [`ShutdownMode::Now`]: its messages are handed back in
    /// `FinishDisconnect` events, and the call returns. Returns true if
    /// everything finished in `mode`, false if a deadline (this one, or
    /// another caller's) cut it short.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use pike::converters::StringConverter;
    /// use pike::{Connector, ShutdownMode};
    ///
    /// let c = Connector::builder(StringConverter::new()).spawn()?;
    /// // … peers that may never read what is still queued for them …
    /// assert!(c.shutdown_timeout(ShutdownMode::FinishQueue, Duration::from_secs(5)));
    /// # Ok(()) }
    /// ```
    pub fn shutdown_timeout(&self, mode: ShutdownMode, timeout: Duration) -> bool {
        self.inner.shutdown(
            mode,
            Some(
                Instant::now()
                    .checked_add(timeout)
                    .unwrap_or_else(far_future),
            ),
        )
    }

    /// [`shutdown_timeout`](Self::shutdown_timeout) with a deadline.
    ///
    /// Example: [`shutdown_timeout`](Self::shutdown_timeout).
    pub fn shutdown_deadline(&self, mode: ShutdownMode, deadline: Instant) -> bool {
        self.inner.shutdown(mode, Some(deadline))
    }
}

/// A deadline for a timeout too long for an `Instant`: about a century on.
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))
        .unwrap_or(now)
}

impl<C: Converter> Inner<C> {
    fn shutdown(&self, mode: ShutdownMode, deadline: Option<Instant>) -> bool {
        let whole = self.handle.shutdown(mode, deadline);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
        whole
    }
}

impl<C: Converter> Drop for Inner<C> {
    fn drop(&mut self) {
        self.shutdown(ShutdownMode::Now, None);
    }
}

/// A connection's unsent queue, from [`Connector::queued`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queued {
    /// Messages not yet written in full.
    pub messages: usize,
    /// Their memory, by [`Converter::message_size`].
    pub bytes: usize,
}
