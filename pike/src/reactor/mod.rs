//! The network thread: it owns every socket (registers, reads, closes).
//!
//! The reactor is a thin shell around one [`Endpoint`](crate::endpoint::Endpoint)
//! per connection. Each [`turn`](Reactor::turn) polls `mio`, takes the
//! application's commands, and then drives every connection that has
//! something to do: write what the endpoint offers, read what it wants, and
//! pass its events on, in batches.
//!
//! Senders write too: `send` locks the connection's endpoint and socket and
//! writes on the caller's thread what the socket takes (see [`direct`]);
//! the network thread finishes what it could not.
//!
//! Invariants, in the spirit of `mio`'s own contract:
//!
//! * Sockets are registered once for reading and writing, edge-triggered.
//!   A connection's `readable`/`writable` flags remember readiness until an
//!   operation returns `WouldBlock`, so no edge is ever lost, even while the
//!   endpoint does not want to read (backpressure, a waiting deserializer,
//!   a connection not yet accepted).
//! * No connection is served for long at once: each gets a read budget per
//!   turn and goes back on the ready list if it has more.
//! * Only the network thread sends events (sends on other threads poke it
//!   to pass theirs on), so they stay in order, and when it stops and drops
//!   its senders, the application's `recv` ends after the last event.
//! * No peer behaviour and no converter can panic this thread: converter
//!   panics are caught by the endpoint and close that one connection.

pub(crate) mod budget;
pub(crate) mod channel;
pub(crate) mod command;
pub(crate) mod direct;
pub(crate) mod lead;
pub(crate) mod queues;
mod readbuf;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::converter::Converter;
use crate::endpoint::{Endpoint, EndpointConfig, State};
use crate::error::{ConnectError, RejectReason};
use crate::event::{Connection, Event, RejectedMessage, RemoteConnect};
use crate::mode::{DisconnectMode, ShutdownMode};
use crate::sync::lock;
use budget::{Budget, Credit, Resume, SMALL_READ, event_cost};
use direct::{Directory, Io, SharedIo, SocketOptions, configure_stream, write_out};

use command::{Command, CommandQueue, ConnectWait, Target};
use queues::{Envelope, Route, Separate, merge_into};
use readbuf::ReadBuffer;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Reads per connection per turn before others get their go.
const READ_BUDGET: usize = 16;
/// Commands taken per turn before the connections get their go (a flood
/// of sends must not starve the sockets, nor a shutdown behind it: see
/// [`CommandQueue::request_shutdown`]).
const COMMAND_BUDGET: usize = 4096;
/// How long after going idle the event queues give back what a burst grew
/// them to.
const TRIM_AFTER: Duration = Duration::from_millis(500);
/// How long accepting pauses after an error such as running out of file
/// descriptors, instead of spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The reactor's settings (see the builder for what each means).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) endpoint: EndpointConfig,
    pub(crate) memory_budget: usize,
    pub(crate) connection_share: usize,
    pub(crate) max_connections: usize,
    pub(crate) linger: Duration,
    pub(crate) socket: SocketOptions,
    pub(crate) read_chunk: usize,
}

/// What application threads and the network thread share.
#[derive(Debug)]
pub(crate) struct Shared<M> {
    pub(crate) commands: Arc<CommandQueue<M>>,
    pub(crate) main: channel::Receiver<Envelope<M>>,
    pub(crate) separate: Separate<M>,
    next_id: AtomicU64,
    pub(crate) budget: Arc<Budget>,
    stopped: Mutex<bool>,
    stopped_changed: Condvar,
}

impl<M> Shared<M> {
    /// A fresh connection id; ids are never reused within a connector.
    pub(crate) fn new_connection(&self) -> Connection {
        Connection(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        )
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *lock(&self.stopped)
    }

    pub(crate) fn wait_stopped(&self) {
        let mut stopped = lock(&self.stopped);
        while !*stopped {
            stopped = self
                .stopped_changed
                .wait(stopped)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    pub(crate) fn set_stopped(&self) {
        *lock(&self.stopped) = true;
        self.stopped_changed.notify_all();
    }

    /// Takes an envelope out of a queue: gives its credit back, asking the
    /// network thread to read again if that connection was paused.
    pub(crate) fn open_envelope(&self, envelope: Envelope<M>) -> Event<M> {
        if let Some((credit, n)) = &envelope.credit {
            let resume = credit.taken(&self.budget, *n);
            self.resume(credit, resume);
        }
        envelope.event
    }

    fn resume(&self, credit: &Credit, resume: Resume) {
        if resume.connection {
            let _ = self.commands.push(Command::Resume {
                connection: credit.connection,
            });
        }
        if resume.budget {
            let _ = self.commands.push(Command::BudgetFreed);
        }
    }

    /// Waits up to `timeout` (`None`: for ever) for the main queue's next
    /// event, then passes up to `max` of those ready to `take`, in order.
    /// Returns how many (0 on timeout); Err once the queue is closed and
    /// empty.
    pub(crate) fn recv_batch(
        &self,
        take: &mut impl FnMut(Event<M>),
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, ()> {
        // Credit goes back under the queue's lock (an atomic operation);
        // the rare `Resume` is pushed after it.
        let mut resume = Vec::new();
        let n = self.main.recv_batch(max, timeout, |envelope| {
            if let Some((credit, k)) = &envelope.credit {
                let r = credit.taken(&self.budget, *k);
                if r != Resume::default() {
                    resume.push((credit.clone(), r));
                }
            }
            take(envelope.event);
        })?;
        for (credit, r) in resume {
            self.resume(&credit, r);
        }
        Ok(n)
    }
}

/// One connection as the network thread sees it: the endpoint and socket it
/// shares with senders, and what only the network thread uses.
struct Conn<C: Converter> {
    io: SharedIo<C>,
    in_ready: bool,
    /// `connect_waiting`: events held until its callback returned.
    held: Option<Vec<Event<C::Message>>>,
    credit: Arc<Credit>,
    /// Addresses still to try, and the last failure, while connecting.
    addrs: VecDeque<SocketAddr>,
    last_error: Option<io::Error>,
    waiter: Option<Arc<ConnectWait>>,
    /// Reading paused for backpressure, and until what.
    paused: Pause,
    /// The endpoint's input bytes last counted against the budget.
    input_bytes: usize,
    /// When its endpoint wants `handle_timeout`, as entered in the timers.
    timer: Option<Instant>,
    /// Accepted from the listener (counted against `max_connections`).
    remote: bool,
    /// What the events of its last read cost per byte read (at least 1):
    /// small messages cost many times their size as events.
    cost_per_byte: usize,
    /// Draining: the write side is shut down; give up at this instant.
    linger_until: Option<Instant>,
}

/// Why reading from a connection is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    No,
    /// At its share, until the application takes its events down to half.
    Share,
    /// At the connector's budget, until it is down to three quarters.
    Budget,
}

/// How much a connection may take in now.
enum Allowance {
    /// Read (or decode held input), stopping once the events decoded cost
    /// `bytes`; read at most `read` bytes.
    Take { bytes: usize, read: usize },
    /// Pause.
    Pause(Pause),
}

/// Where the loop's events go, and what is needed to count them against
/// the budget on the way.
struct Outlet<C: Converter> {
    main: channel::Sender<Envelope<C::Message>>,
    budget: Arc<Budget>,
    converter: Arc<C>,
}

impl<C: Converter> Outlet<C> {
    /// What `event` costs against the budget.
    fn cost(&self, event: &Event<C::Message>) -> usize {
        event_cost(&*self.converter, event)
    }

    /// Queues a connection's events where its route says, counting them
    /// against its credit first.
    fn hand_over(
        &self,
        batch: &mut Batch<C::Message>,
        credit: &Arc<Credit>,
        route: &Route<C::Message>,
    ) {
        let bytes = std::mem::take(&mut batch.bytes);
        let events = &mut batch.events;
        let Some(last) = events.back_mut() else {
            return;
        };
        last.credit = Some((credit.clone(), bytes));
        credit.produced(&self.budget, bytes);
        if let Route::Separate(tx) = route
            && tx.send_all(events).is_ok()
        {
            return;
        }
        // Main, or a separate queue whose receiver is gone (cannot happen
        // before a merge): do not drop the events.
        let _ = self.main.send_all(events);
        events.clear();
    }
}

/// Events on their way to a queue, and what they cost.
struct Batch<M> {
    events: VecDeque<Envelope<M>>,
    bytes: usize,
}

impl<M> Batch<M> {
    fn new() -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, event: Event<M>, cost: usize) {
        self.bytes += cost;
        self.events.push_back(Envelope {
            event,
            credit: None,
        });
    }
}

/// The network loop's state. It runs on whichever thread calls [`run`](Self::run).
pub(crate) struct Reactor<C: Converter> {
    poll: Poll,
    events: Events,
    shared: Arc<Shared<C::Message>>,
    commands: Receiver<Command<C::Message>>,
    /// Where events go.
    out: Outlet<C>,
    /// Events on their way to a queue, handed over in one go.
    outgoing: Batch<C::Message>,
    directory: Arc<Directory<C>>,
    config: Config,
    /// The credit of events about connections that are gone (messages
    /// sent to them, handed back): counted against the budget too.
    orphans: Arc<Credit>,
    /// Connections paused at the budget.
    budget_paused: Vec<Connection>,
    /// Input bytes of every connection (partly received messages, input
    /// held back), counted in the budget.
    input_total: usize,
    /// When the budget is held by input alone (nothing the application
    /// takes can free it), the one connection allowed to read on, so that
    /// its messages complete.
    granted: Option<Connection>,
    /// Endpoint deadlines, soonest first.
    timers: BTreeSet<(Instant, Connection)>,
    /// When to give back what a burst grew the event queues to.
    trim_at: Option<Instant>,
    /// Connections accepted from the listener and not yet closed.
    remotes: usize,
    listener: Option<TcpListener>,
    accept_paused_until: Option<Instant>,
    conns: HashMap<Connection, Conn<C>>,
    ready: Vec<Connection>,
    draining: Vec<Connection>,
    scratch: ReadBuffer,
    shutdown: Option<ShutdownMode>,
    resolvers: Vec<JoinHandle<()>>,
    /// Dropped last: marks the connector stopped however the reactor ends
    /// (after its loop, by a panic, or never run at all).
    _stop: StopGuard<C>,
}

impl<C: Converter> std::fmt::Debug for Reactor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("connections", &self.conns.len())
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

impl<C: Converter> Reactor<C> {
    /// Sets up the poller, the optional listener and the shared state.
    pub(crate) fn new(
        converter: Arc<C>,
        config: Config,
        listener: Option<std::net::TcpListener>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        let (commands, command_rx) = CommandQueue::new(waker);
        let (main_tx, main_rx) = channel::unbounded();
        let budget = Arc::new(Budget::new(config.memory_budget, config.connection_share));
        let shared = Arc::new(Shared {
            commands: Arc::new(commands),
            main: main_rx,
            separate: Separate::default(),
            next_id: AtomicU64::new(1),
            budget: budget.clone(),
            stopped: Mutex::new(false),
            stopped_changed: Condvar::new(),
        });
        let shares_input = converter.shares_input();
        let directory = Arc::new(Directory::new(
            converter.clone(),
            config.endpoint,
            shared.commands.clone(),
        ));
        let listener = match listener {
            Some(l) => {
                l.set_nonblocking(true)?;
                let mut l = TcpListener::from_std(l);
                poll.registry()
                    .register(&mut l, LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        let reactor = Self {
            poll,
            events: Events::with_capacity(1024),
            shared: shared.clone(),
            commands: command_rx,
            out: Outlet {
                main: main_tx,
                budget,
                converter,
            },
            outgoing: Batch::new(),
            directory: directory.clone(),
            config,
            // Ids start at 1: 0 is no connection's.
            orphans: Arc::new(Credit::new(Connection(0))),
            budget_paused: Vec::new(),
            input_total: 0,
            granted: None,
            timers: BTreeSet::new(),
            trim_at: None,
            remotes: 0,
            listener,
            accept_paused_until: None,
            conns: HashMap::new(),
            ready: Vec::new(),
            draining: Vec::new(),
            scratch: ReadBuffer::new(config.read_chunk, shares_input),
            shutdown: None,
            resolvers: Vec::new(),
            _stop: StopGuard {
                shared: shared.clone(),
                directory: directory.clone(),
            },
        };
        Ok(reactor)
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
        let mut timeout = match (self.poll_timeout(), cap) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        };
        let sleeping = timeout != Some(Duration::ZERO);
        if sleeping && !self.shared.commands.going_to_sleep(&self.commands) {
            timeout = Some(Duration::ZERO);
        }
        if self.trim_at.is_some_and(|t| t <= Instant::now()) {
            self.trim_queues();
        } else if self.trim_at.is_none() && timeout != Some(Duration::ZERO) && self.queues_grown() {
            // Going idle with queues a burst grew: give them back in a
            // while (waking once for it), not at once: a burst a moment
            // from now would grow them again.
            self.trim_at = Some(Instant::now() + TRIM_AFTER);
        }
        if let Some(at) = self.trim_at {
            let left = at.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        let polled = self.poll.poll(&mut self.events, timeout);
        self.shared.commands.awake();
        if let Err(e) = polled
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!("poll failed, shutting down: {e}");
            self.begin_shutdown(ShutdownMode::Now);
            self.abort_all();
            return false;
        }
        let mut accept = false;
        for event in self.events.iter() {
            match event.token() {
                WAKER => {}
                LISTENER => accept = true,
                token => {
                    let id = Connection(token.0 as u64);
                    if let Some(conn) = self.conns.get_mut(&id) {
                        let mut io = lock(&conn.io);
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            io.readable = true;
                        }
                        if event.is_read_closed() || event.is_error() {
                            io.read_closed = true;
                        }
                        if event.is_writable() || event.is_write_closed() || event.is_error() {
                            io.writable = true;
                        }
                        drop(io);
                        if !conn.in_ready {
                            conn.in_ready = true;
                            self.ready.push(id);
                        }
                    }
                }
            }
        }
        if accept {
            self.accept();
        }
        self.take_commands();
        self.drive_ready();
        self.fire_timers();
        if self.resolvers.iter().any(JoinHandle::is_finished) {
            // Joined, not just dropped: a finished thread may not have
            // exited yet.
            let (done, running) = std::mem::take(&mut self.resolvers)
                .into_iter()
                .partition::<Vec<_>, _>(JoinHandle::is_finished);
            self.resolvers = running;
            for resolver in done {
                let _ = resolver.join();
            }
        }
        !(self.shutdown.is_some() && self.conns.is_empty())
    }

    /// Whether the event queues hold more room than [`trim_queue`] keeps.
    ///
    /// [`trim_queue`]: crate::memory::trim_queue
    fn queues_grown(&self) -> bool {
        let size = std::mem::size_of::<Envelope<C::Message>>();
        (self.outgoing.events.capacity() + self.out.main.capacity()) * size > 64 * 1024
    }

    /// Gives back what bursts grew the event queues to: the loop's batch,
    /// the main queue and the separate queues, those that are empty.
    fn trim_queues(&mut self) {
        self.trim_at = None;
        crate::memory::trim_queue(&mut self.outgoing.events);
        self.out.main.trim();
        for conn in self.conns.values() {
            if let Route::Separate(tx) = &lock(&conn.io).route {
                tx.trim();
            }
        }
    }

    /// Marks the loop parked idle in its slot, or taken to run; parking
    /// returns whether commands are already waiting.
    pub(crate) fn set_parked(&self, parked: bool) -> bool {
        self.shared.commands.set_parked(parked, &self.commands)
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
            .draining
            .iter()
            .filter_map(|id| self.conns.get(id)?.linger_until)
            .chain(self.accept_paused_until)
            .chain(self.timers.first().map(|&(t, _)| t))
            .min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    // ----- accepting -----------------------------------------------------

    fn accept(&mut self) {
        if self.shutdown.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) if self.remotes >= self.config.max_connections => {
                    // Over the limit: closed at once (and the listener,
                    // drained, does not stay readable).
                    tracing::debug!(
                        "{peer}: refused, at the limit of {} connections",
                        self.remotes
                    );
                    drop(stream);
                }
                Ok((stream, peer)) => self.add_remote(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // Out of file descriptors or memory: back off instead of
                    // spinning on a listener that stays readable.
                    tracing::warn!("accept failed, pausing: {e}");
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn add_remote(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let id = self.shared.new_connection();
        configure_stream(&stream, &self.config.socket);
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token(id),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!("cannot register accepted socket: {e}");
            return;
        }
        let io = self
            .directory
            .insert(self.directory.accepting(id), Some(stream), Route::Main);
        let mut conn = self.new_conn(io);
        conn.remote = true;
        self.remotes += 1;
        self.conns.insert(id, conn);
        let event = Event::RemoteConnect(RemoteConnect::new(
            id,
            peer,
            self.shared.clone(),
            self.directory.clone(),
        ));
        let _ = self.out.main.send(Envelope {
            event,
            credit: None,
        });
    }

    // ----- commands ------------------------------------------------------

    fn take_commands(&mut self) {
        self.shared.commands.woken();
        // A shutdown goes ahead of whatever was queued before it.
        for mode in self.shared.commands.take_shutdown_requests() {
            self.begin_shutdown(mode);
        }
        for _ in 0..COMMAND_BUDGET {
            let Ok(command) = self.commands.try_recv() else {
                return;
            };
            self.command(command);
        }
        // More are left for the next turn, which does not sleep while the
        // queue holds any.
    }

    fn command(&mut self, command: Command<C::Message>) {
        match command {
            Command::Connect {
                connection,
                target,
                waiter,
            } => self.connect(connection, target, waiter),
            Command::Resolved { connection, result } => {
                let Some(conn) = self.conns.get_mut(&connection) else {
                    return;
                };
                match result {
                    Ok(addrs) if !addrs.is_empty() => {
                        conn.addrs = addrs.into();
                        self.start_connect(connection);
                    }
                    Ok(_) => self.connect_failed(
                        connection,
                        ConnectError::Resolve(io::Error::new(
                            io::ErrorKind::NotFound,
                            "name resolved to no address",
                        )),
                    ),
                    Err(e) => self.connect_failed(connection, ConnectError::Resolve(e)),
                }
            }
            Command::Send {
                connection,
                message,
            } => match self.conns.get_mut(&connection) {
                Some(conn) => {
                    lock(&conn.io).endpoint.send(message);
                    self.mark_ready(connection);
                }
                None => self.reject_unknown(connection, message),
            },
            Command::SendBatch {
                connection,
                messages,
            } => match self.conns.get_mut(&connection) {
                Some(conn) => {
                    lock(&conn.io).endpoint.send_all(messages);
                    self.mark_ready(connection);
                }
                None => {
                    for message in messages {
                        self.reject_unknown(connection, message);
                    }
                }
            },
            Command::Poke { connection } => self.mark_ready(connection),
            Command::Disconnect { connection, mode } => {
                if let Some(conn) = self.conns.get_mut(&connection) {
                    lock(&conn.io).endpoint.disconnect(mode);
                    self.mark_ready(connection);
                }
            }
            Command::Release { connection } => {
                if let Some(conn) = self.conns.get_mut(&connection) {
                    let held = conn.held.take().unwrap_or_default();
                    let mut io = lock(&conn.io);
                    for event in held {
                        route_event(conn, &mut io.route, &self.out, event);
                    }
                    let closed = io.endpoint.state() == State::Closed;
                    drop(io);
                    if closed {
                        self.close(connection);
                    } else {
                        self.mark_ready(connection);
                    }
                }
            }
            Command::Merge { connection, done } => {
                if let Some(rx) = self.shared.separate.remove(connection) {
                    merge_into(&rx, &self.out.main);
                }
                if let Some(conn) = self.conns.get_mut(&connection) {
                    lock(&conn.io).route = Route::Main;
                }
                let _ = done.send(());
            }
            Command::Resume { connection } => {
                if let Some(conn) = self.conns.get_mut(&connection)
                    && conn.paused == Pause::Share
                {
                    conn.paused = Pause::No;
                    lock(&conn.io).endpoint.hold_input(false);
                    self.mark_ready(connection);
                }
            }
            Command::BudgetFreed => self.resume_budget(),
            Command::Wake { connection } => {
                if let Some(conn) = self.conns.get_mut(&connection) {
                    lock(&conn.io).endpoint.handle_wake();
                    self.mark_ready(connection);
                }
            }
            Command::Shutdown { mode } => self.begin_shutdown(mode),
            Command::Nudge => {}
        }
    }

    /// Hands back a message sent to a connection that is gone. It counts
    /// against the budget like any event, so that an application replying
    /// in bulk to peers that left cannot grow the queue without bound.
    fn reject_unknown(&self, connection: Connection, message: C::Message) {
        let event = Event::RejectedMessage(RejectedMessage {
            connection,
            message,
            reason: RejectReason::Closed,
        });
        let cost = event_cost(&*self.out.converter, &event);
        self.orphans.produced(&self.out.budget, cost);
        let _ = self.out.main.send(Envelope {
            event,
            credit: Some((self.orphans.clone(), cost)),
        });
    }

    /// Reading resumes on every connection paused at the budget.
    fn resume_budget(&mut self) {
        for id in std::mem::take(&mut self.budget_paused) {
            if let Some(conn) = self.conns.get_mut(&id)
                && conn.paused == Pause::Budget
            {
                conn.paused = Pause::No;
                lock(&conn.io).endpoint.hold_input(false);
                self.mark_ready(id);
            }
        }
    }

    /// Counts a change in a connection's input bytes against the budget.
    fn account_input(&mut self, id: Connection, now: usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let before = std::mem::replace(&mut conn.input_bytes, now);
        if now >= before {
            self.out.budget.gauge.add(now - before);
            self.input_total += now - before;
        } else {
            self.input_total -= before - now;
            if self
                .out
                .budget
                .gauge
                .release(before - now, self.out.budget.low())
            {
                self.resume_budget();
            }
        }
    }

    /// When the budget is held by input alone (partly received messages,
    /// input held back undecoded), taking events cannot bring it down to
    /// where reading resumes: let the paused connection with the most input
    /// read on, alone, until it holds none, so that its messages complete
    /// and the application can take them.
    fn grant_if_stuck(&mut self) {
        if self.granted.is_some()
            || self.budget_paused.is_empty()
            || self.input_total <= self.out.budget.low()
        {
            return;
        }
        let Some((id, _)) = self
            .budget_paused
            .iter()
            .filter_map(|id| Some((*id, self.conns.get(id)?.input_bytes)))
            .max_by_key(|&(_, bytes)| bytes)
        else {
            return;
        };
        tracing::debug!("{id}: the budget is held by partial messages; this one reads on");
        self.granted = Some(id);
        self.budget_paused.retain(|&c| c != id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.paused = Pause::No;
            lock(&conn.io).endpoint.hold_input(false);
        }
        self.mark_ready(id);
    }

    // ----- connecting ----------------------------------------------------

    fn connect(&mut self, id: Connection, target: Target, waiter: Option<Arc<ConnectWait>>) {
        // `Connector::connect` registered the connection before asking.
        let io = match self.directory.get(id) {
            Some(io) => io,
            None => self
                .directory
                .insert(self.directory.connecting(id), None, Route::Main),
        };
        let cancelled = lock(&io).endpoint.state() != State::Connecting;
        let mut conn = self.new_conn(io);
        conn.waiter = waiter;
        self.conns.insert(id, conn);
        if cancelled {
            // Disconnected before we got here: pass its events on.
            return self.mark_ready(id);
        }
        if self.shutdown.is_some() {
            return self.connect_failed(id, ConnectError::Cancelled);
        }
        // Driven once, so that its connect timeout is entered.
        self.mark_ready(id);
        match target {
            Target::Addrs(addrs) => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.addrs = addrs.into();
                }
                self.start_connect(id);
            }
            Target::Name(name) => {
                let commands = self.shared.commands.clone();
                let spawned = std::thread::Builder::new()
                    .name("pike-resolve".into())
                    .spawn(move || {
                        let result = name.to_socket_addrs().map(Iterator::collect);
                        let _ = commands.push(Command::Resolved {
                            connection: id,
                            result,
                        });
                    });
                match spawned {
                    Ok(handle) => self.resolvers.push(handle),
                    Err(e) => self.connect_failed(id, ConnectError::Resolve(e)),
                }
            }
        }
    }

    /// Tries the next address of a connecting connection.
    fn start_connect(&mut self, id: Connection) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let shared = conn.io.clone();
        let mut io = lock(&shared);
        if let Some(mut old) = io.socket.take() {
            let _ = self.poll.registry().deregister(&mut old);
        }
        io.readable = false;
        io.writable = false;
        io.read_closed = false;
        while let Some(addr) = conn.addrs.pop_front() {
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    match self.poll.registry().register(
                        &mut stream,
                        token(id),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        Ok(()) => {
                            io.socket = Some(stream);
                            return;
                        }
                        Err(e) => conn.last_error = Some(e),
                    }
                }
                Err(e) => conn.last_error = Some(e),
            }
        }
        drop(io);
        let error = conn
            .last_error
            .take()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
        self.connect_failed(id, ConnectError::Io(error));
    }

    /// A connecting socket became ready: did it connect?
    fn check_connect(&mut self, id: Connection) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let shared = conn.io.clone();
        let mut guard = lock(&shared);
        let io = &mut *guard;
        let Some(stream) = &io.socket else {
            return;
        };
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => {
                configure_stream(stream, &self.config.socket);
                io.endpoint.handle_connected(Instant::now());
                if let Some(waiter) = conn.waiter.take() {
                    // connect_waiting: no FinishConnect; events wait for the
                    // callback.
                    let _ = io.endpoint.poll_event();
                    if waiter.finish(Ok(())) {
                        conn.held = Some(Vec::new());
                    } else {
                        io.endpoint.disconnect(DisconnectMode::Now);
                        let _ = io.endpoint.poll_event();
                    }
                }
            }
            Err(e) => {
                drop(guard);
                conn.last_error = Some(e);
                if conn.addrs.is_empty() {
                    let error = conn.last_error.take().expect("set above");
                    self.connect_failed(id, ConnectError::Io(error));
                } else {
                    self.start_connect(id);
                }
            }
        }
    }

    fn connect_failed(&mut self, id: Connection, error: ConnectError) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let shared = conn.io.clone();
        let mut io = lock(&shared);
        match conn.waiter.take() {
            None => io.endpoint.handle_connect_failed(error),
            Some(waiter) => {
                // connect_waiting reports through its return value; a
                // FinishConnect is only needed to hand messages back.
                io.endpoint.handle_connect_failed(ConnectError::Cancelled);
                if let Some(Event::FinishConnect(mut f)) = io.endpoint.poll_event()
                    && !f.queued.is_empty()
                {
                    f.error = Some(copy_connect_error(&error));
                    route_event(conn, &mut io.route, &self.out, Event::FinishConnect(f));
                }
                waiter.finish(Err(error));
            }
        }
        drop(io);
        self.mark_ready(id);
    }

    // ----- driving connections ----------------------------------------------

    fn drive_ready(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        for &id in &ready {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.in_ready = false;
            }
            self.drive(id);
        }
        // Hand the allocation back if nothing was queued meanwhile.
        if self.ready.is_empty() {
            self.ready = ready;
            self.ready.clear();
        }
    }

    /// Does all the I/O a connection can do now, within its read budget,
    /// then enters its next deadline.
    fn drive(&mut self, id: Connection) {
        if self.conns.get(&id).is_some_and(|c| {
            let io = lock(&c.io);
            io.endpoint.state() == State::Connecting
                && io.socket.is_some()
                && (io.readable || io.writable)
        }) {
            self.check_connect(id);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let shared = conn.io.clone();
        let mut guard = lock(&shared);
        let io = &mut *guard;
        let mut budget = READ_BUDGET;
        let (due, input_bytes, closed) = loop {
            let mut progress = false;
            io.flush_pending = false;
            if let Some(socket) = &mut io.socket
                && write_out(&mut io.endpoint, socket, &mut io.writable)
            {
                progress = true;
                io.last_write = Some(Instant::now());
                io.notify_room(&shared.room);
            }
            if io.endpoint.state() == State::Draining && conn.linger_until.is_none() {
                if let Some(socket) = &io.socket {
                    let _ = socket.shutdown(Shutdown::Write);
                }
                conn.linger_until = Some(Instant::now() + self.config.linger);
                self.draining.push(id);
            }
            // Whatever the endpoint still queued goes first, so that the
            // messages read next can go straight into the batch.
            deliver(conn, io, &self.out, &mut self.outgoing);
            // Draining input is discarded, so the bounds do not apply.
            let draining = io.endpoint.state() == State::Draining;
            let backlog = io.endpoint.has_backlog();
            let wants = backlog || (io.endpoint.wants_read() && io.readable);
            if wants && conn.held.is_none() && (draining || conn.paused == Pause::No) {
                let allowance = if draining {
                    Allowance::Take {
                        bytes: usize::MAX,
                        read: usize::MAX,
                    }
                } else {
                    allowance(&self.out.budget, conn, io, self.granted == Some(id))
                };
                match allowance {
                    Allowance::Pause(why) => {
                        conn.paused = why;
                        io.endpoint.hold_input(true);
                        if why == Pause::Budget {
                            self.budget_paused.push(id);
                        }
                    }
                    Allowance::Take { .. } if budget == 0 => {
                        // More to read: come back next turn, after the others.
                        if !conn.in_ready {
                            conn.in_ready = true;
                            self.ready.push(id);
                        }
                    }
                    Allowance::Take { bytes, read } => {
                        budget -= 1;
                        progress = true;
                        let now = Instant::now();
                        let batch = &mut self.outgoing;
                        let converter = &*self.out.converter;
                        let mut taken = 0usize;
                        let mut sink = |event: Event<C::Message>| {
                            let cost = event_cost(converter, &event);
                            taken += cost;
                            batch.push(event, cost);
                            taken < bytes
                        };
                        if backlog {
                            io.endpoint.handle_backlog_into(now, &mut sink);
                        } else if let Some(socket) = &mut io.socket {
                            // Read what the allowance is likely to take, by
                            // what events cost per byte read last time, so
                            // that little is held back undecoded.
                            let read = (read / conn.cost_per_byte.max(1)).max(SMALL_READ);
                            let endpoint = &mut io.endpoint;
                            let readable = &mut io.readable;
                            let read_closed = io.read_closed;
                            let scratch = &mut self.scratch;
                            let n = read_into(
                                endpoint,
                                socket,
                                readable,
                                read_closed,
                                now,
                                read,
                                scratch,
                                &mut sink,
                            );
                            if n > 0 {
                                conn.cost_per_byte = taken.div_ceil(n).clamp(1, 1024);
                            }
                        }
                    }
                }
            }
            deliver(conn, io, &self.out, &mut self.outgoing);
            let closed = io.endpoint.state() == State::Closed;
            if closed || !progress {
                // The grant ends once the connection holds no input: its
                // message completed and nothing waits undecoded.
                let granted_done = self.granted == Some(id) && io.endpoint.input_bytes() == 0;
                if granted_done {
                    self.granted = None;
                }
                break (
                    io.endpoint.poll_timeout(),
                    io.endpoint.input_bytes(),
                    closed,
                );
            }
        };
        drop(guard);
        self.account_input(id, input_bytes);
        if closed {
            self.close(id);
        } else {
            self.set_timer(id, due);
        }
    }

    /// Enters a connection's next deadline in the timers.
    fn set_timer(&mut self, id: Connection, due: Option<Instant>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.timer == due {
            return;
        }
        if let Some(old) = conn.timer.take() {
            self.timers.remove(&(old, id));
        }
        if let Some(due) = due {
            self.timers.insert((due, id));
            conn.timer = Some(due);
        }
    }

    fn mark_ready(&mut self, id: Connection) {
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.in_ready
        {
            conn.in_ready = true;
            self.ready.push(id);
        }
    }

    /// Closes a connection's socket and forgets it, once its events are
    /// passed on. Events held for a `connect_waiting` callback keep the
    /// entry until its `Release`.
    fn close(&mut self, id: Connection) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let shared = conn.io.clone();
        let mut io = lock(&shared);
        deliver(conn, &mut io, &self.out, &mut self.outgoing);
        if let Some(mut socket) = io.socket.take() {
            let _ = self.poll.registry().deregister(&mut socket);
        }
        // Under the same lock as the last delivery: a later send finds the
        // connection retired and is rejected through the command queue.
        io.retired = true;
        io.notify_room(&shared.room);
        drop(io);
        if std::mem::take(&mut conn.remote) {
            self.remotes -= 1;
        }
        let held = conn.held.is_some();
        if let Some(t) = conn.timer.take() {
            self.timers.remove(&(t, id));
        }
        if self.granted == Some(id) {
            self.granted = None;
        }
        self.account_input(id, 0);
        self.directory.remove(id);
        if !held {
            self.conns.remove(&id);
            crate::memory::shrink_map(&mut self.conns);
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
            self.accept();
        }
        while let Some(&(due, id)) = self.timers.first()
            && due <= now
        {
            self.timers.pop_first();
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.timer = None;
            let mut io = lock(&conn.io);
            if io.endpoint.state() == State::Connecting && conn.waiter.is_some() {
                // connect_waiting reports through its return value.
                drop(io);
                self.connect_failed(id, ConnectError::TimedOut);
            } else {
                io.endpoint.handle_timeout(now);
                drop(io);
            }
            // Passes its events on and enters its next deadline.
            self.mark_ready(id);
        }
        if !self.ready.is_empty() {
            self.drive_ready();
        }
        self.grant_if_stuck();
        if self.draining.is_empty() {
            return;
        }
        let mut expired = Vec::new();
        self.draining.retain(|id| match self.conns.get(id) {
            Some(c) if lock(&c.io).endpoint.state() == State::Draining => {
                if c.linger_until.is_some_and(|t| t <= now) {
                    expired.push(*id);
                    false
                } else {
                    true
                }
            }
            _ => false,
        });
        for id in expired {
            tracing::debug!("{id}: peer did not close within the linger time");
            self.close(id);
        }
    }

    // ----- shutdown ------------------------------------------------------------

    fn begin_shutdown(&mut self, mode: ShutdownMode) {
        if self
            .shutdown
            .is_some_and(|m| m == ShutdownMode::Now || m == mode)
        {
            return;
        }
        self.shutdown = Some(mode);
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.accept_paused_until = None;
        let ids: Vec<Connection> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            let shared = conn.io.clone();
            let mut io = lock(&shared);
            match io.endpoint.state() {
                State::Connecting => {
                    drop(io);
                    self.connect_failed(id, ConnectError::Cancelled);
                }
                State::Accepting => io.endpoint.reject(),
                State::Open => io.endpoint.disconnect(mode.into()),
                State::Disconnecting(_) | State::Draining if mode == ShutdownMode::Now => {
                    io.endpoint.abort();
                }
                State::Disconnecting(_) | State::Draining | State::Closed => {}
            }
            self.mark_ready(id);
        }
    }

    fn abort_all(&mut self) {
        let ids: Vec<Connection> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(conn) = self.conns.get_mut(&id) {
                lock(&conn.io).endpoint.abort();
            }
            self.close(id);
        }
    }

    /// After the last turn: refuse further commands, answer the ones that
    /// got in, and close the queues.
    pub(crate) fn finish(mut self) {
        self.shared.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send {
                    connection,
                    message,
                } => self.reject_unknown(connection, message),
                Command::SendBatch {
                    connection,
                    messages,
                } => {
                    for message in messages {
                        self.reject_unknown(connection, message);
                    }
                }
                Command::Connect {
                    connection,
                    target,
                    waiter,
                } => {
                    // Shutting down: this cancels it, handing back anything
                    // sent to it meanwhile.
                    self.connect(connection, target, waiter);
                    self.close(connection);
                }
                Command::Merge { connection, done } => {
                    if let Some(rx) = self.shared.separate.remove(connection) {
                        merge_into(&rx, &self.out.main);
                    }
                    let _ = done.send(());
                }
                _ => {}
            }
        }
        for resolver in self.resolvers.drain(..) {
            let _ = resolver.join();
        }
    }

    // ----- helpers ---------------------------------------------------------------

    fn new_conn(&self, io: SharedIo<C>) -> Conn<C> {
        let id = lock(&io).endpoint.connection();
        Conn {
            io,
            in_ready: false,
            held: None,
            credit: Arc::new(Credit::new(id)),
            addrs: VecDeque::new(),
            last_error: None,
            waiter: None,
            paused: Pause::No,
            input_bytes: 0,
            timer: None,
            remote: false,
            cost_per_byte: 1,
            linger_until: None,
        }
    }
}

/// How much `conn` may take in now: bounded by its share of received
/// events not yet taken and by the connector's budget (see [`budget`]).
///
/// A read takes at most as many bytes as the events may cost: an event
/// costs at least its message's bytes on the wire (its queue slot alone is
/// larger than any message's framing), so what a read holds back undecoded
/// is at most the allowance, and the read buffer's size.
fn allowance<C: Converter>(
    budget: &Budget,
    conn: &Conn<C>,
    io: &Io<C>,
    granted: bool,
) -> Allowance {
    let share = budget.share;
    let mine = conn.credit.gauge.used();
    if conn.credit.gauge.should_pause(share, share / 2) {
        return Allowance::Pause(Pause::Share);
    }
    let left = share.saturating_sub(mine).max(1);
    let total = budget.gauge.used();
    let bytes = if total < budget.limit {
        left.min(budget.limit - total)
    } else if mine == 0 && io.endpoint.input_bytes() == 0 {
        // Holds nothing: a small read, so that new and well-behaved peers
        // are served while others hold the budget.
        SMALL_READ
    } else if granted || !budget.gauge.should_pause(budget.limit, budget.low()) {
        left
    } else {
        return Allowance::Pause(Pause::Budget);
    };
    Allowance::Take { bytes, read: bytes }
}

/// Reads once from `socket` (at most `limit` bytes) into `endpoint`,
/// messages going to `sink`, and notes what the read said about the
/// socket's readiness.
#[allow(clippy::too_many_arguments)]
fn read_into<C: Converter>(
    endpoint: &mut Endpoint<C>,
    socket: &mut TcpStream,
    readable: &mut bool,
    read_closed: bool,
    now: Instant,
    limit: usize,
    scratch: &mut ReadBuffer,
    sink: &mut impl FnMut(Event<C::Message>) -> bool,
) -> usize {
    let read = scratch.read_from(socket, limit, |data, chunk| match chunk {
        Some(chunk) => endpoint.handle_shared_read_into(now, chunk, sink),
        None => endpoint.handle_read_into(now, data, sink),
    });
    match read {
        Ok((0, _)) => endpoint.handle_eof(),
        Ok((n, filled)) => {
            // A short read emptied the socket's queue (epoll reports new
            // data with a new edge): skip the read that would only say
            // `WouldBlock`.
            if !filled && !read_closed {
                *readable = false;
            }
            return n;
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => *readable = false,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => endpoint.handle_error(e),
    }
    0
}

/// Marks the connector stopped when the network loop ends, even by a panic.
struct StopGuard<C: Converter> {
    shared: Arc<Shared<C::Message>>,
    directory: Arc<Directory<C>>,
}

impl<C: Converter> Drop for StopGuard<C> {
    fn drop(&mut self) {
        self.shared.commands.close();
        self.directory.retire_all();
        self.shared.set_stopped();
    }
}

fn token(id: Connection) -> Token {
    Token(id.0 as usize)
}

/// Passes a connection's new events on: held, or to its queue, in one go.
fn deliver<C: Converter>(
    conn: &mut Conn<C>,
    io: &mut Io<C>,
    out: &Outlet<C>,
    batch: &mut Batch<C::Message>,
) {
    while let Some(event) = io.endpoint.poll_event() {
        if let Some(held) = &mut conn.held {
            held.push(event);
            continue;
        }
        let last = event.is_final();
        let cost = out.cost(&event);
        batch.push(event, cost);
        if last {
            // Nothing follows the final event; later rejections go to main.
            out.hand_over(batch, &conn.credit, &io.route);
            io.route = Route::Main;
        }
    }
    out.hand_over(batch, &conn.credit, &io.route);
}

/// Passes one event of a connection on, by itself.
fn route_event<C: Converter>(
    conn: &Conn<C>,
    route: &mut Route<C::Message>,
    out: &Outlet<C>,
    event: Event<C::Message>,
) {
    let last = event.is_final();
    let mut batch = Batch::new();
    let cost = out.cost(&event);
    batch.push(event, cost);
    out.hand_over(&mut batch, &conn.credit, route);
    if last {
        *route = Route::Main;
    }
}

/// A copy of a connect error, for reporting it in two places.
fn copy_connect_error(error: &ConnectError) -> ConnectError {
    let copy = |e: &io::Error| match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    match error {
        ConnectError::Resolve(e) => ConnectError::Resolve(copy(e)),
        ConnectError::Io(e) => ConnectError::Io(copy(e)),
        _ => ConnectError::Cancelled,
    }
}
