//! What the connector asks through: the one reactor type the
//! [`Connector`](crate::Connector) uses. It builds every command, knows
//! which operations go straight to a connection's slot (sends, a
//! disconnect) and which through the command queue, and opens the event
//! queues' envelopes so that their credit goes back to the budget.
//!
//! # Invariants
//!
//! * A connection is registered in the directory before the loop hears of
//!   it, so that every send of it takes the same path, in order.
//! * Anything handed to a stopped connector comes straight back to the
//!   caller (as the error of the call), never silently dropped.
//! * Only the connector's own threads block here: waiting for an event
//!   (possibly running the loop meanwhile, see [`lead`](crate::reactor::lead)),
//!   for room in a connection's unsent queue, or for a shutdown.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError as ChannelTryRecv;

use super::boundary::Shared;
use super::budget::rejection_cost;
use super::channel::Receiver;
use super::command::{Command, ConnectWait};
use super::directory::{Directory, Flush, Offer};
use super::queues::{Envelope, Route};
use crate::converter::Converter;
use crate::error::{
    ConnectError, SendError, SendTimeoutError, StoppedError, TryRecvError, TrySendError,
};
use crate::event::{Connection, Event};
use crate::mode::{Delivery, DisconnectMode, ShutdownMode};
use crate::reactor::lead::{Lead, Start};
use crate::reactor::{Config, Reactor};
use crate::stats::{ConnectionStats, Stats};
use crate::sync::lock;
use crate::transport::Dial;
use crate::transport::Listener;

/// The connector's side of the reactor; see the module documentation.
pub(crate) struct Handle<C: Converter> {
    shared: Arc<Shared<C::Message>>,
    /// Where sends find their connection's slot.
    directory: Arc<Directory<C>>,
    /// The loop, and who runs it.
    lead: Arc<Lead<Reactor<C>>>,
}

impl<C: Converter> std::fmt::Debug for Handle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("stopped", &self.shared.is_stopped())
            .finish_non_exhaustive()
    }
}

impl<C: Converter> Handle<C> {
    /// Sets up a reactor (not running yet) and the handle to it.
    pub(crate) fn new(
        converter: Arc<C>,
        config: Config,
        listener: Option<Box<dyn Listener>>,
    ) -> io::Result<Self> {
        Ok(Self::of(Reactor::new(converter, config, listener)?))
    }

    /// The handle to `reactor` (not running yet).
    pub(crate) fn of(reactor: Reactor<C>) -> Self {
        Self {
            shared: reactor.shared(),
            directory: reactor.directory(),
            lead: Arc::new(Lead::new(reactor)),
        }
    }

    /// Takes the reactor out, never to be run by a network thread or a
    /// borrower: the reactor harness runs it one turn at a time, and uses
    /// only the calls that do not wait for the loop.
    #[cfg(test)]
    pub(crate) fn detach(&self) -> Reactor<C> {
        self.lead.take_unstarted().expect("never started")
    }

    /// Asks for a shutdown without waiting for it (the harness's
    /// [`shutdown`](Self::shutdown)).
    #[cfg(test)]
    pub(crate) fn request_shutdown(&self, mode: ShutdownMode, deadline: Option<Instant>) {
        let _ = self.shared.commands.request_shutdown(mode, deadline);
    }

    // ----- running and stopping -----------------------------------------------

    /// Marks the loop started, if it can be.
    pub(crate) fn start(&self) -> Start {
        self.lead.start()
    }

    /// What the network thread runs (after [`start`](Self::start)), until
    /// shutdown completes.
    pub(crate) fn network_thread(&self) -> impl FnOnce() + Send + 'static {
        let lead = self.lead.clone();
        move || lead.run_network_thread()
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.shared.is_stopped()
    }

    /// Bytes counted against the memory budget now.
    pub(crate) fn memory_in_use(&self) -> usize {
        self.shared.budget.used()
    }

    /// A snapshot of the connector's numbers: the totals of closed
    /// connections, then every live one's, each counted once (see
    /// [`stats`](crate::stats)).
    pub(crate) fn stats(&self) -> Stats {
        // Under the totals' lock: a connection moves to them as it stops
        // being listed, under the same lock.
        let totals = lock(&self.shared.totals);
        let mut stats = totals.clone();
        self.directory.for_each_listed(|conn| {
            let connection = conn.endpoint.stats();
            stats.add_connection(&connection);
            match connection.ending {
                // Its final event is out (the application may hold it
                // already), and the loop has not yet moved it to the
                // totals: it counts as closed, once.
                Some(ending) => stats.closed.count(ending),
                None => stats.connections_open += 1,
            }
        });
        drop(totals);
        stats.undelivered_events = (self.shared.main.len() + self.shared.separate.queued()) as u64;
        stats.memory_in_use = self.shared.budget.used() as u64;
        stats.memory_budget = self.shared.budget.limit as u64;
        stats
    }

    /// A live connection's numbers.
    pub(crate) fn connection_stats(&self, connection: Connection) -> Option<ConnectionStats> {
        self.directory.stats(connection)
    }

    /// Asks for a shutdown and waits until the loop has stopped. A loop
    /// never started runs here until then, so that commands already given
    /// are answered.
    /// At `deadline`, what is left ends as with `Now`. Returns false if it
    /// did (by this deadline or another caller's).
    pub(crate) fn shutdown(&self, mode: ShutdownMode, deadline: Option<Instant>) -> bool {
        self.start_shutdown(mode, deadline);
        self.shared.wait_stopped();
        !self.shared.shutdown_cut_short()
    }

    /// Asks for a shutdown in `mode`, without waiting for it (a connector
    /// never started runs it on this thread now).
    pub(crate) fn start_shutdown(&self, mode: ShutdownMode, deadline: Option<Instant>) {
        let _ = self.shared.commands.request_shutdown(mode, deadline);
        if let Some(reactor) = self.lead.take_unstarted() {
            reactor.run();
        }
    }

    /// Whether the connector has stopped; otherwise `cx`'s waker is woken
    /// when it does. Ready with whether everything finished in its mode.
    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<bool> {
        self.shared
            .poll_stopped(cx)
            .map(|()| !self.shared.shutdown_cut_short())
    }

    // ----- connections --------------------------------------------------------

    /// Starts connecting to `target`; the outcome comes as a
    /// `FinishConnect` event (or to `waiter`).
    fn open(
        &self,
        dial: Dial,
        waiter: Option<Arc<ConnectWait>>,
    ) -> Result<Connection, StoppedError> {
        let shared = &self.shared;
        let directory = &self.directory;
        let connection = directory.reserve();
        let route = match dial.delivery {
            Delivery::Merged => Route::Main,
            Delivery::Separate => shared.separate.open(connection),
        };
        directory.insert(directory.connecting(connection), None, route, &dial.target);
        let command = Command::Connect {
            connection,
            dial: Box::new(dial),
            waiter,
        };
        if shared.commands.push(command).is_err() {
            directory.release(connection);
            shared.separate.remove(connection);
            return Err(StoppedError);
        }
        Ok(connection)
    }

    /// Starts connecting as `dial` says; the outcome comes as a
    /// `FinishConnect` event.
    pub(crate) fn connect(&self, dial: Dial) -> Result<Connection, StoppedError> {
        self.open(dial, None)
    }

    /// Connects, waiting until `deadline`; no `FinishConnect` event. On
    /// success the connection's events are held until the returned guard
    /// is dropped.
    pub(crate) fn connect_waiting(
        &self,
        dial: Dial,
        deadline: Instant,
    ) -> Result<(Connection, Result<HeldEvents<'_, C>, ConnectError>), StoppedError> {
        let waiter = Arc::new(ConnectWait::default());
        let connection = self.open(dial, Some(waiter.clone()))?;
        let outcome = match waiter.wait(deadline) {
            Some(Ok(())) => Ok(HeldEvents {
                handle: self,
                connection,
            }),
            Some(Err(e)) => Err(e),
            None => Err(ConnectError::TimedOut),
        };
        if outcome.is_err() {
            self.shared.separate.remove(connection);
        }
        Ok((connection, outcome))
    }

    /// Starts connecting as `dial` says, the outcome going to the returned
    /// rendezvous (an awaited connect).
    pub(crate) fn connect_awaited(
        &self,
        dial: Dial,
    ) -> Result<(Connection, Arc<ConnectWait>), StoppedError> {
        let waiter = Arc::new(ConnectWait::default());
        let connection = self.open(dial, Some(waiter.clone()))?;
        Ok((connection, waiter))
    }

    /// An awaited connect ended: its connection's events, held until now,
    /// go on; a failed one's separate queue is forgotten.
    pub(crate) fn connect_awaited_done(&self, connection: Connection, succeeded: bool) {
        if succeeded {
            let _ = self
                .shared
                .commands
                .push(Command::CallbackDone { connection });
        } else {
            self.shared.separate.remove(connection);
        }
    }

    /// An awaited connect was given up before its outcome was taken: the
    /// attempt is abandoned (closed without an event), or, if it had
    /// succeeded meanwhile, the connection is closed (its
    /// `FinishDisconnect` delivered).
    pub(crate) fn connect_awaited_dropped(&self, connection: Connection, waiter: &ConnectWait) {
        let succeeded = waiter.abandon();
        if succeeded {
            self.disconnect(connection, DisconnectMode::Now);
        }
        self.connect_awaited_done(connection, succeeded);
    }

    // ----- sending ------------------------------------------------------------

    /// Queues `message` (written now or by the loop, see
    /// [`conn`](crate::reactor::conn)); a connection that is not in the directory
    /// goes through the command queue, which rejects it.
    pub(crate) fn send(
        &self,
        connection: Connection,
        message: C::Message,
    ) -> Result<(), SendError<C::Message>> {
        let Err(mut back) =
            self.directory
                .send(connection, Flush::Coalesce, std::iter::once(message))
        else {
            return Ok(());
        };
        let message = back.next().expect("handed back untouched");
        self.send_by_command(connection, message)
    }

    /// A send to a connection that is not in the directory: the network
    /// thread rejects it (it knows whether the connection ever existed).
    fn send_by_command(
        &self,
        connection: Connection,
        message: C::Message,
    ) -> Result<(), SendError<C::Message>> {
        let cost = rejection_cost(self.directory.converter(), &message);
        self.count_rejections(cost, || {
            self.shared
                .commands
                .push(Command::Send {
                    connection,
                    message,
                })
                .map_err(|command| match command {
                    Command::Send { message, .. } => SendError(message),
                    _ => unreachable!("the queue hands back what it was given"),
                })
        })
    }

    /// Counts the rejections a command will make (`cost`) against the
    /// budget before `push` hands it to the loop, and gives them back if
    /// the loop has stopped.
    fn count_rejections<T>(
        &self,
        cost: usize,
        push: impl FnOnce() -> Result<(), T>,
    ) -> Result<(), T> {
        let shared = &self.shared;
        shared.orphans.produced(&shared.budget, cost);
        let pushed = push();
        if pushed.is_err() {
            // Stopped: nobody will be told of a resume.
            let _ = shared.orphans.taken(&shared.budget, cost);
        }
        pushed
    }

    /// Queues every message of `messages`, in order, written at once.
    pub(crate) fn send_batch(
        &self,
        connection: Connection,
        messages: Vec<C::Message>,
    ) -> Result<(), SendError<Vec<C::Message>>> {
        let Err(back) = self
            .directory
            .send(connection, Flush::Now, messages.into_iter())
        else {
            return Ok(());
        };
        let messages: Vec<C::Message> = back.collect();
        let converter = self.directory.converter();
        let cost = messages.iter().map(|m| rejection_cost(converter, m)).sum();
        self.count_rejections(cost, || {
            self.shared
                .commands
                .push(Command::SendBatch {
                    connection,
                    messages,
                })
                .map_err(|command| match command {
                    Command::SendBatch { messages, .. } => SendError(messages),
                    _ => unreachable!("the queue hands back what it was given"),
                })
        })
    }

    /// Queues `message` unless the unsent queue is over its high-water mark.
    pub(crate) fn try_send(
        &self,
        connection: Connection,
        message: C::Message,
    ) -> Result<(), TrySendError<C::Message>> {
        match self.directory.try_send(connection, message) {
            Offer::Taken => Ok(()),
            Offer::Full(m) => Err(TrySendError::Full(m)),
            Offer::Absent(m) => self
                .send_by_command(connection, m)
                .map_err(|SendError(m)| TrySendError::Stopped(m)),
        }
    }

    /// Queues `message`, waiting until `deadline` (`None`: for ever) while
    /// the unsent queue is over its high-water mark.
    pub(crate) fn send_waiting(
        &self,
        connection: Connection,
        mut message: C::Message,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<C::Message>> {
        loop {
            match self.directory.try_send(connection, message) {
                Offer::Taken => return Ok(()),
                Offer::Full(m) => message = m,
                Offer::Absent(m) => {
                    return self
                        .send_by_command(connection, m)
                        .map_err(|SendError(m)| SendTimeoutError::Stopped(m));
                }
            }
            if !self.directory.wait_room(connection, deadline) {
                return Err(SendTimeoutError::Timeout(message));
            }
        }
    }

    /// Queues `messages` in order as [`send_waiting`](Self::send_waiting)
    /// queues one: as many at a time as the unsent queue takes, each lot
    /// written at once, waiting for room between lots. On timeout, the
    /// messages not yet queued come back.
    pub(crate) fn send_batch_waiting(
        &self,
        connection: Connection,
        messages: Vec<C::Message>,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<Vec<C::Message>>> {
        let mut left = std::collections::VecDeque::from(messages);
        loop {
            if !self.directory.try_send_from(connection, &mut left) {
                return self
                    .send_batch(connection, left.into())
                    .map_err(|SendError(m)| SendTimeoutError::Stopped(m));
            }
            if left.is_empty() {
                return Ok(());
            }
            if !self.directory.wait_room(connection, deadline) {
                return Err(SendTimeoutError::Timeout(left.into()));
            }
        }
    }

    /// The async form of [`send_waiting`](Self::send_waiting): queues the
    /// message in `slot`, or leaves it there and registers the task to be
    /// woken when there is room.
    pub(crate) fn poll_send(
        &self,
        connection: Connection,
        slot: &mut Option<C::Message>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendError<C::Message>>> {
        let Some(mut message) = slot.take() else {
            panic!("a send future polled after it completed");
        };
        loop {
            match self.directory.try_send(connection, message) {
                Offer::Taken => return Poll::Ready(Ok(())),
                Offer::Absent(m) => return Poll::Ready(self.send_by_command(connection, m)),
                Offer::Full(m) => {
                    // Registered, then the queue looked at again under the
                    // same lock: no wake-up is missed.
                    if self.directory.register_room_task(connection, cx.waker()) {
                        *slot = Some(m);
                        return Poll::Pending;
                    }
                    message = m;
                }
            }
        }
    }

    /// The unsent queue of a connection: messages and their bytes.
    pub(crate) fn queued(&self, connection: Connection) -> Option<(usize, usize)> {
        self.directory.queued(connection)
    }

    /// Starts a local disconnect, in its place among the connection's sends.
    pub(crate) fn disconnect(&self, connection: Connection, mode: DisconnectMode) {
        if self.directory.disconnect(connection, mode) {
            return;
        }
        let _ = self
            .shared
            .commands
            .push(Command::Disconnect { connection, mode });
    }

    // ----- events -------------------------------------------------------------

    /// The next event of the main queue, if one is ready.
    pub(crate) fn try_recv(&self) -> Result<Event<C::Message>, TryRecvError> {
        self.shared
            .main
            .try_recv()
            .map(|e| self.shared.open_envelope(e))
            .map_err(try_recv_error)
    }

    /// The async form of taking the main queue's next event.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Event<C::Message>>> {
        self.shared
            .main
            .poll_recv(cx)
            .map(|e| e.map(|e| self.shared.open_envelope(e)))
    }

    /// Passes up to `max` events of the main queue to `take`, waiting for
    /// the first as `wait` says. While it waits, this
    /// thread runs the network loop itself if nobody else needs it (see
    /// [`lead`](crate::reactor::lead)), so that the event's arrival wakes it
    /// directly. Returns how many (0 on timeout); Err once the connector
    /// stopped and every event was taken.
    pub(crate) fn take_main(
        &self,
        take: &mut impl FnMut(Event<C::Message>),
        max: usize,
        wait: Wait,
    ) -> Result<usize, ()> {
        let shared = &self.shared;
        let ready = shared.recv_batch(take, max, Some(Duration::ZERO))?;
        if ready > 0 {
            return Ok(ready);
        }
        // The clock is read only when there is something to wait for.
        let deadline = wait.deadline();
        let ask_hand_over = || {
            let _ = shared.commands.push(Command::HandOver);
        };
        let _waiting = self.lead.waiting();
        if let Some(mut lent) = self.lead.borrow(deadline, ask_hand_over) {
            loop {
                let n = shared.recv_batch(take, max, Some(Duration::ZERO))?;
                if n > 0 {
                    return Ok(n);
                }
                let cap = match deadline {
                    None => None,
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => return Ok(0),
                    },
                };
                if !lent.turn(cap) {
                    // Shutdown completed: what is left is in the queue.
                    break;
                }
            }
        }
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        shared.recv_batch(take, max, timeout)
    }

    /// A separate connection's queue, if it is separate and not finished.
    pub(crate) fn separate(&self, connection: Connection) -> Option<SeparateQueue<C::Message>> {
        Some(SeparateQueue {
            queue: self.shared.separate.receiver(connection)?,
            shared: self.shared.clone(),
        })
    }

    /// Moves a separate connection's events to the main queue; returns
    /// once they have all moved.
    pub(crate) fn merge(&self, connection: Connection) {
        let (done, finished) = crossbeam_channel::bounded(1);
        let command = Command::Merge { connection, done };
        if self.shared.commands.push(command).is_ok() {
            // Err means the network thread died, dropping `done`.
            let _ = finished.recv();
        }
    }
}

/// How long to wait for an event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Forever,
    /// This long from when waiting starts (too long for an `Instant`: for
    /// ever).
    For(Duration),
    Until(Instant),
}

impl Wait {
    /// How long from now (`None`: for ever).
    pub(crate) fn timeout(self) -> Option<Duration> {
        match self {
            Wait::Forever => None,
            Wait::For(timeout) => Some(timeout),
            Wait::Until(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
        }
    }

    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Forever => None,
            Wait::For(timeout) => Instant::now().checked_add(timeout),
            Wait::Until(deadline) => Some(deadline),
        }
    }
}

/// A `connect_waiting` connection's events, held until this is dropped
/// (after the caller's callback).
pub(crate) struct HeldEvents<'a, C: Converter> {
    handle: &'a Handle<C>,
    connection: Connection,
}

impl<C: Converter> Drop for HeldEvents<'_, C> {
    fn drop(&mut self) {
        let _ = self.handle.shared.commands.push(Command::CallbackDone {
            connection: self.connection,
        });
    }
}

/// The event queue of one separate connection: taking its final event
/// forgets it.
pub(crate) struct SeparateQueue<M> {
    queue: Receiver<Envelope<M>>,
    shared: Arc<Shared<M>>,
}

impl<M> SeparateQueue<M> {
    fn open(&self, envelope: Envelope<M>) -> Event<M> {
        let event = self.shared.open_envelope(envelope);
        if event.is_final() {
            self.shared.separate.remove(event.connection());
        }
        event
    }

    /// Waits up to `timeout` (`None`: for ever; zero: not at all) for an
    /// event, then passes up to `max` of those ready to `take`, in order.
    /// Returns how many (0 on timeout); Err once the queue has ended.
    pub(crate) fn recv_batch(
        &self,
        take: &mut impl FnMut(Event<M>),
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, ()> {
        // Opened after the queue's lock is let go: opening takes others.
        if max == 1 {
            let mut got = None;
            let n = self.queue.recv_batch(1, timeout, |e| got = Some(e))?;
            if let Some(e) = got {
                take(self.open(e));
            }
            return Ok(n);
        }
        let mut got = Vec::new();
        let n = self.queue.recv_batch(max, timeout, |e| got.push(e))?;
        for e in got {
            take(self.open(e));
        }
        Ok(n)
    }

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Event<M>>> {
        self.queue.poll_recv(cx).map(|e| e.map(|e| self.open(e)))
    }
}

fn try_recv_error(e: ChannelTryRecv) -> TryRecvError {
    match e {
        ChannelTryRecv::Empty => TryRecvError::Empty,
        ChannelTryRecv::Disconnected => TryRecvError::Stopped,
    }
}
