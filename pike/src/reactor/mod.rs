//! The reactor: the network loop. *The endpoint decides, the reactor does,
//! the connector asks.*
//!
//! Each connection's [`Endpoint`](crate::endpoint::Endpoint) decides
//! everything about it (what to write, whether to read, when to close, its
//! timeouts); the reactor does what it says with the connection's
//! transport and passes its events on; the [`Connector`](crate::Connector)
//! asks through the command queue and the directory of connections. The
//! folders say which is which: `endpoint/` decides, `reactor/` (the loop,
//! on the network thread or a thread that borrowed it) does, `connector/`
//! (what runs on application threads) asks.
//!
//! | file | role |
//! |---|---|
//! | `reactor/mod.rs` | the loop: poll, then commands, connections, timers |
//! | `reactor/dispatch.rs` | carrying out commands |
//! | `reactor/accept.rs` | taking connections from the listener |
//! | `reactor/connect.rs` | resolving, connecting, and a connect's outcome |
//! | [`conn`] | one connection: everything about it, the only code that moves its bytes |
//! | `reactor/drive.rs` | driving ready connections, timers, closing |
//! | [`pacing`] | how much each connection may read under the memory budget |
//! | `reactor/outlet.rs` | passing events on to their queues |
//! | `reactor/shutdown.rs` | ending the loop |
//! | [`lead`] | which thread runs the loop |
//! | [`readbuf`] | the read buffer |
//! | [`poller`] | where the loop waits: `mio`, or (tests) the in-memory network |
//! | `reactor/harness.rs`, `reactor/tests.rs` | the loop tested one turn at a time on the in-memory network and a manual clock |
//! | `clock.rs` | where `now` comes from: the system, or (tests) a manual clock |
//! | `connector/handle.rs` | what the connector asks through: the one type it uses |
//! | `connector/directory.rs` | where senders and the loop find a connection; the send path |
//! | `connector/slab.rs` | the directory's places, found without a lock |
//! | `connector/boundary.rs` | what application threads share with the loop: event queues, budget, accept handle, stop |
//! | `connector/command.rs`, `handshake.rs` | the command queue and how the loop is woken |
//! | `connector/budget.rs`, `channel.rs`, `queues.rs` | memory accounting, the event queues |
//! | `transport/dial.rs` | where and how to connect |
//!
//! Wake-ups have one vocabulary: a thread *waits* on a condition variable
//! or in `poll`; whoever has news *wakes* it (the command queue's
//! `mio::Waker`, or its [`Ring`](crate::connector::handshake::Ring) while
//! the loop is idle in its slot). A connection that has something to do is *marked ready* and
//! *driven* in the same or the next turn; reading from it is *paused*
//! under the memory budget and *resumed* when the application takes its
//! events.
//!
//! # Invariants
//!
//! * Ownership: each connection has one home, its [`conn::Conn`] in a
//!   place of the [`conn::Directory`] (endpoint, transport, and all else
//!   about it), found from its id without a lock by senders and the loop
//!   alike. The loop owns the poller, the listener, and an index of the
//!   connections it serves (their [`Keys`]: token, timer, ready flag), by
//!   place. The loop runs on one thread at a time: the network thread, or
//!   a thread in `recv` that borrowed it (see [`lead`]).
//! * Only the loop passes events on, so a connection's events stay in
//!   order; once it stops and drops its senders, `recv` ends after the last
//!   event.
//! * Every socket is registered once for reading and writing,
//!   edge-triggered; the readiness rule is stated in [`conn`].
//! * No connection is served for long at once: each gets
//!   [`READ_BUDGET`] reads per turn and goes back on the ready list if it
//!   has more; at most [`COMMAND_BUDGET`] commands run per turn.
//! * No peer behaviour and no converter can panic the loop: converter
//!   panics (factories included) are caught by the endpoint and close that
//!   one connection.
//! * Lock order: a connection's slot, then an event queue or the command
//!   queue. The loop never holds two slots at once (the whole order is in
//!   [`sync`](crate::sync)).

mod accept;
pub(crate) mod conn;
mod connect;
mod dispatch;
mod drive;
#[cfg(test)]
pub(crate) mod harness;
pub(crate) mod lead;
mod outlet;
pub(crate) mod pacing;
pub(crate) mod poller;
pub(crate) mod readbuf;
mod shutdown;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::VecDeque;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::Token;

use crate::clock::Clock;
use crate::connector::boundary::{Admission, Shared, StopGuard};
use crate::connector::budget::Budget;
use crate::connector::channel;
use crate::connector::command::{Command, CommandQueue};
use crate::connector::directory::{self, Directory};
use crate::converter::Converter;
use crate::endpoint::EndpointConfig;
use crate::event::Connection;
use crate::mode::ShutdownMode;
use crate::transport::{Listener, Peer, SocketOptions};
use accept::Accepting;
use connect::Dialer;
pub(crate) use lead::Start;
use outlet::Outlet;
use pacing::Pacing;
pub(crate) use poller::Poller;
use readbuf::ReadBuffer;
use shutdown::Ending;
use timers::Timers;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Reads per connection per turn before others get their go.
const READ_BUDGET: usize = 16;
/// Commands taken per turn before the connections get their go (a flood
/// of sends must not starve the sockets, nor a shutdown behind it: see
/// [`CommandQueue::request_shutdown`]).
const COMMAND_BUDGET: usize = 4096;

/// The reactor's settings (see the builder for what each means).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) endpoint: EndpointConfig,
    pub(crate) memory_budget: usize,
    pub(crate) connection_share: usize,
    pub(crate) max_connections: usize,
    pub(crate) socket: SocketOptions,
    pub(crate) read_chunk: usize,
}

impl Default for Config {
    /// The builder's defaults.
    fn default() -> Self {
        Self {
            endpoint: EndpointConfig::default(),
            memory_budget: crate::connector::DEFAULT_MEMORY_BUDGET,
            connection_share: crate::connector::DEFAULT_CONNECTION_SHARE,
            max_connections: crate::connector::DEFAULT_MAX_CONNECTIONS,
            socket: SocketOptions {
                nodelay: true,
                keepalive: None,
                user_timeout: None,
            },
            read_chunk: 256 * 1024,
        }
    }
}

/// What a connection being opened still has to try.
#[derive(Debug, Default)]
pub(crate) struct Dialing {
    addrs: VecDeque<Peer>,
    last_error: Option<io::Error>,
    /// What its bytes go through once connected (TLS, say).
    layer: crate::transport::Layer,
    /// Where it connects to, kept to dial again (a connection with a
    /// reconnect policy).
    target: Option<crate::address::Target>,
}

/// What the loop keeps of one connection it serves, by the connection's
/// place in the directory (which is also its `mio` token): everything
/// else about it is in its [`Conn`](conn::Conn).
#[derive(Debug, Clone, Copy)]
struct Keys {
    id: Connection,
    /// On the ready list.
    ready: bool,
    /// Readiness reported since it was last driven ([`conn::Edges`]),
    /// handed to its [`Conn`](conn::Conn) when it is: the poll loop takes
    /// no lock.
    edges: u8,
    /// When its endpoint wants `handle_timeout`, as entered in the timers.
    timer: Option<Instant>,
}

/// The loop's index of the connections it serves: [`Keys`] by place.
#[derive(Debug, Default)]
struct Served {
    keys: Vec<Option<Keys>>,
    count: usize,
}

impl Served {
    fn add(&mut self, id: Connection) -> Token {
        let index = directory::index_of(id);
        if self.keys.len() <= index {
            self.keys.resize(index + 1, None);
        }
        debug_assert!(self.keys[index].is_none());
        self.keys[index] = Some(Keys {
            id,
            ready: false,
            edges: 0,
            timer: None,
        });
        self.count += 1;
        Token(index)
    }

    fn remove(&mut self, id: Connection) -> Option<Keys> {
        let slot = self.keys.get_mut(directory::index_of(id))?;
        if slot.is_some_and(|k| k.id == id) {
            self.count -= 1;
            return slot.take();
        }
        None
    }

    fn get_mut(&mut self, id: Connection) -> Option<&mut Keys> {
        self.keys
            .get_mut(directory::index_of(id))?
            .as_mut()
            .filter(|k| k.id == id)
    }

    fn contains(&self, id: Connection) -> bool {
        self.keys
            .get(directory::index_of(id))
            .is_some_and(|k| k.is_some_and(|k| k.id == id))
    }

    /// The connection a token is for.
    fn owner(&self, token: Token) -> Option<Connection> {
        Some(self.keys.get(token.0)?.as_ref()?.id)
    }

    fn ids(&self) -> Vec<Connection> {
        self.keys.iter().flatten().map(|k| k.id).collect()
    }

    fn len(&self) -> usize {
        self.count
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// The network loop's state. It runs on whichever thread calls [`run`](Self::run).
pub(crate) struct Reactor<C: Converter> {
    poller: Poller,
    /// Where `now` comes from (the directory's too).
    clock: Clock,
    shared: Arc<Shared<C::Message>>,
    commands: Receiver<Command<C::Message>>,
    /// Where events go, and the events on their way.
    out: Outlet<C>,
    directory: Arc<Directory<C>>,
    config: Config,
    /// How much each connection may read (the memory budget).
    pacing: Pacing,
    /// Endpoint deadlines.
    timers: Timers,
    /// The listener and what it accepted.
    accepting: Accepting<C::Message>,
    /// Names being resolved.
    dialer: Dialer,
    /// Whether, how and by when the loop is ending.
    ending: Ending,
    /// The connections it serves.
    conns: Served,
    ready: Vec<Connection>,
    scratch: ReadBuffer,
    /// Dropped last: marks the connector stopped however the reactor ends
    /// (after its loop, by a panic, or never run at all).
    _stop: StopGuard<C>,
}

impl<C: Converter> std::fmt::Debug for Reactor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("connections", &self.conns.len())
            .field("shutdown", &self.ending.mode)
            .finish_non_exhaustive()
    }
}

impl<C: Converter> Reactor<C> {
    /// Sets up the poller, the optional listener and the shared state.
    pub(crate) fn new(
        converter: Arc<C>,
        config: Config,
        listener: Option<Box<dyn Listener>>,
    ) -> io::Result<Self> {
        Self::with(
            converter,
            config,
            listener,
            Poller::new()?,
            Clock::default(),
        )
    }

    /// [`new`](Self::new) with a poller and a clock of the caller's (the
    /// harness's in-memory network and manual clock).
    pub(crate) fn with(
        converter: Arc<C>,
        config: Config,
        listener: Option<Box<dyn Listener>>,
        poller: Poller,
        clock: Clock,
    ) -> io::Result<Self> {
        let waker = mio::Waker::new(poller.registry(), WAKER)?;
        let (commands, command_rx) = CommandQueue::new(waker);
        let (main_tx, main_rx) = channel::unbounded();
        let budget = Arc::new(Budget::new(config.memory_budget, config.connection_share));
        let commands = Arc::new(commands);
        let shares_input = converter.shares_input();
        let directory = Arc::new(Directory::new(
            converter.clone(),
            config.endpoint,
            commands.clone(),
            budget.clone(),
            clock.clone(),
        ));
        let shared = Arc::new(Shared::new(commands, main_rx, budget.clone()));
        let listener = match listener {
            Some(mut l) => {
                l.register(poller.registry(), LISTENER)?;
                Some(l)
            }
            None => None,
        };
        Ok(Self {
            poller,
            clock,
            shared: shared.clone(),
            commands: command_rx,
            out: Outlet::new(main_tx, budget, converter),
            directory: directory.clone(),
            config,
            pacing: Pacing::default(),
            timers: Timers::default(),
            accepting: Accepting::new(
                listener,
                Arc::new(Admission {
                    shared: shared.clone(),
                    directory: directory.clone(),
                }),
            ),
            dialer: Dialer::default(),
            ending: Ending::default(),
            conns: Served::default(),
            ready: Vec::new(),
            scratch: ReadBuffer::new(config.read_chunk, shares_input),
            _stop: StopGuard::new(shared, directory),
        })
    }

    /// What application threads share with the network thread.
    pub(crate) fn shared(&self) -> Arc<Shared<C::Message>> {
        self.shared.clone()
    }

    /// Where sends find their connection.
    pub(crate) fn directory(&self) -> Arc<Directory<C>> {
        self.directory.clone()
    }

    /// Runs the loop until shutdown completes, then closes the queues.
    pub(crate) fn run(mut self) {
        while self.turn(None) {}
        self.finish();
    }

    /// One turn of the loop: poll (sleeping at most `cap`), take commands,
    /// drive ready connections, fire timers. Returns false once shutdown
    /// has completed.
    pub(crate) fn turn(&mut self, cap: Option<Duration>) -> bool {
        let timeout = self.sleep_for(cap);
        let polled = self.poller.wait(timeout);
        self.shared.commands.awake();
        if let Err(e) = polled
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!("poll failed, shutting down: {e}");
            self.begin_shutdown(ShutdownMode::Now);
            self.abort_all();
            return false;
        }
        if self.take_readiness() {
            self.accept();
        }
        self.take_commands();
        self.drive_ready();
        self.fire_timers();
        !(self.ending.mode.is_some() && self.conns.is_empty())
    }

    /// How long the next poll may sleep: until the soonest deadline, at
    /// most `cap`, and not at all if there is work or commands came while
    /// it was about to sleep.
    fn sleep_for(&mut self, cap: Option<Duration>) -> Option<Duration> {
        let mut timeout = match (self.poll_timeout(), cap) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        };
        let sleeping = timeout != Some(Duration::ZERO);
        if sleeping && !self.shared.commands.going_to_sleep(&self.commands) {
            timeout = Some(Duration::ZERO);
        }
        let idle = timeout != Some(Duration::ZERO);
        if let Some(at) = self
            .out
            .trim_when_idle(idle, self.clock.now(), &self.directory)
        {
            let left = at.saturating_duration_since(self.clock.now());
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        timeout
    }

    /// Notes what the poll reported: each connection's readiness in its
    /// keys, and the connection on the ready list. Returns whether the
    /// listener has connections to accept.
    fn take_readiness(&mut self) -> bool {
        let mut accept = false;
        let (conns, ready) = (&mut self.conns, &mut self.ready);
        self.poller.for_each(|token, edges| match token {
            WAKER => {}
            LISTENER => accept = true,
            token => {
                if let Some(id) = conns.owner(token)
                    && let Some(keys) = conns.get_mut(id)
                {
                    keys.edges |= edges;
                    if !keys.ready {
                        keys.ready = true;
                        ready.push(id);
                    }
                }
            }
        });
        accept
    }

    /// Marks the loop idle in its slot, or taken to run; going idle
    /// returns whether commands are already waiting.
    pub(crate) fn set_idle(&self, idle: bool) -> bool {
        self.shared.commands.set_idle(idle, &self.commands)
    }

    /// Whether a turn would find something to do without waiting.
    pub(crate) fn has_work(&self) -> bool {
        !self.ready.is_empty() || !self.commands.is_empty()
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = self
            .accepting
            .paused_until
            .into_iter()
            .chain(self.ending.deadline)
            .chain(self.timers.next())
            .min()?;
        Some(next.saturating_duration_since(self.clock.now()))
    }
}
