//! One connection: its endpoint and its transport, in one place, and the
//! only code that moves a connection's bytes.
//!
//! A [`Conn`] owns the connection's [`Endpoint`] (which decides) and its
//! [`Transport`] (which carries bytes). It sits in a [`Slot`] (a mutex and
//! a condition variable for senders waiting for room) shared by the network
//! thread and the application threads: `send` locks it, queues the
//! messages, and writes what the transport takes right away, with no
//! hand-off to the network thread on the common path. What the transport
//! does not take stays in the endpoint; the network thread gets a
//! readiness event once there is room and goes on from there.
//!
//! A send after a pause is written at once. Sends in quick succession
//! (within [`COALESCE`] of the last write on that connection, or of the
//! sending thread's last write on any connection) are left in the buffer
//! for the network loop, which writes them together: a system call per
//! small message would cost far more than the hand-off. `send_batch` is
//! written at once.
//!
//! # Invariants
//!
//! * Only the network thread takes events out of an endpoint and passes
//!   them on, so they stay in order. When a send on the caller's thread
//!   leaves an event (a serializer error, a failed write, a completed
//!   disconnect), it asks the network thread to drive the connection
//!   ([`Command::Drive`]).
//! * A connection is in the [`Directory`] from the moment its id exists
//!   (`connect` creates its endpoint on the caller's thread before it asks
//!   the network thread to connect), so every send of a connection takes
//!   the same path and none overtakes another.
//! * When the network thread lets go of a connection it marks the [`Conn`]
//!   retired, under the same lock as its last delivery: a send either got
//!   in before (its messages are accounted for by the connection's final
//!   events) or finds it retired and takes the command path, which rejects
//!   the messages.
//! * Readiness: the transport is registered edge-triggered, and `readable`
//!   and `writable` remember an edge until the transport says
//!   `WouldBlock`. On Linux a short read or write also clears them (epoll
//!   reports new data or room with a new edge, so the read that would
//!   only say `WouldBlock` is skipped); `mio` does not promise this on
//!   other systems, where they are cleared by `WouldBlock` only. After
//!   the peer's end of stream or an error, reading goes on to the end.
//! * Lock order: a slot's lock, then the command queue or an event queue;
//!   never a slot's lock while holding another slot's or the directory's
//!   write lock.

use crate::memory::{ConnMap, conn_map};
use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::converter::Converter;
use crate::endpoint::{Endpoint, EndpointConfig, EndpointEvent, State};
use crate::event::Connection;
use crate::mode::DisconnectMode;
use crate::reactor::budget::Budget;
use crate::reactor::command::{Command, CommandQueue, ConnectionWaker};
use crate::reactor::queues::Route;
use crate::reactor::readbuf::ReadBuffer;
use crate::sync::{Condvar, Mutex, Rank, RwLock, lock};
use crate::transport::{Handshake, Transport};

/// One connection's endpoint and transport, and what the network thread and
/// senders share of it.
#[derive(Debug)]
pub(crate) struct Conn<C: Converter> {
    pub(crate) endpoint: Endpoint<C>,
    /// `None` while the name is being resolved, and between two addresses
    /// tried.
    pub(crate) transport: Option<Box<dyn Transport>>,
    /// Readiness seen and not yet used up by a `WouldBlock`.
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer's end of input (or an error) was reported: read until EOF,
    /// even after a short read.
    pub(crate) read_closed: bool,
    /// The socket reported an error (a reset, say): it is looked at even
    /// while reading is paused, so that a dead connection is let go.
    pub(crate) errored: bool,
    /// Until when sends coalesce: bytes went to the transport, from any
    /// thread, less than [`COALESCE`] before.
    pub(crate) coalesce_until: Option<Instant>,
    /// The network loop was asked to write what senders left in the buffer.
    pub(crate) flush_pending: bool,
    /// Where the connection's events go; set by `finish_accept` and by a
    /// merge.
    pub(crate) route: Route<C::Message>,
    /// The network thread let go of the connection: nothing may be queued
    /// here any more.
    pub(crate) retired: bool,
    /// Senders waiting on [`Slot::room`] for the unsent queue to drain.
    pub(crate) room_waiters: u32,
    /// Async senders waiting for the same.
    /// (Boxed: rare, and an idle connection keeps its size: 8 bytes here
    /// instead of a `Vec`'s 24.)
    #[allow(clippy::box_collection)]
    pub(crate) room_tasks: Option<Box<Vec<Waker>>>,
    /// What its sending side and its transport hold, as last counted in
    /// the unsent side of the budget (see [`settle`](Conn::settle)).
    pub(crate) counted: usize,
    /// Reading from it is paused at the budget: once it holds nothing for
    /// sending, whoever settled it asks the loop to look again.
    pub(crate) budget_paused: bool,
}

impl<C: Converter> Conn<C> {
    /// Brings the unsent side of the budget up to date with what the
    /// connection holds for sending (its queue and write buffer) and what
    /// its transport buffers, under the slot's lock: every change is
    /// counted by whoever made it, on whatever thread. Returns true if the
    /// caller must ask the loop to resume the connections paused at the
    /// budget.
    pub(crate) fn settle(&mut self, budget: &Budget) -> bool {
        let now = if self.retired { 0 } else { self.holding() };
        let before = std::mem::replace(&mut self.counted, now);
        if now >= before {
            budget.add_unsent(now - before);
            false
        } else {
            budget.release_unsent(before - now)
        }
    }

    /// What its sending side and its transport hold now.
    pub(crate) fn holding(&self) -> usize {
        self.endpoint.outgoing_bytes() + self.transport.as_ref().map_or(0, |t| t.held_bytes())
    }

    /// Tells the endpoint what the connector has left for sends; while
    /// the budget is used up, arms the budget's pause so that a sender
    /// refused or waiting for it is told when it is free again.
    pub(crate) fn refresh_room(&mut self, budget: &Budget) {
        let mut room = budget.room();
        if room.reached {
            budget.note_sender_waited();
            if !budget.should_pause() {
                room = budget.room();
            }
        }
        self.endpoint.set_room(room);
    }

    /// Whether anyone waits for room in the unsent queue.
    pub(crate) fn has_room_waiters(&self) -> bool {
        self.room_waiters > 0 || self.room_tasks.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// Wakes senders waiting for room if they may go on: the queue is down
    /// to its low-water mark, or the connection no longer takes messages
    /// (they then find it so, and their message is rejected).
    pub(crate) fn notify_room(&mut self, room: &Condvar) {
        let waiting = self.has_room_waiters();
        if waiting && (self.retired || !self.endpoint.must_wait_for_room()) {
            room.notify_all();
            for task in self.room_tasks.iter_mut().flat_map(|t| t.drain(..)) {
                task.wake();
            }
        }
    }
}

/// One connection's [`Conn`], and where senders wait for room in its queue.
/// Dereferences to the mutex.
pub(crate) struct Slot<C: Converter> {
    io: Mutex<Conn<C>>,
    pub(crate) room: Condvar,
}

impl<C: Converter> std::fmt::Debug for Slot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl<C: Converter> Deref for Slot<C> {
    type Target = Mutex<Conn<C>>;

    fn deref(&self) -> &Self::Target {
        &self.io
    }
}

pub(crate) type SharedConn<C> = Arc<Slot<C>>;

/// What became of a `try_send`.
#[derive(Debug)]
pub(crate) enum Offer<M> {
    /// Queued (or handed back as a `RejectedMessage` event).
    Taken,
    /// The unsent queue is over its high-water mark.
    Full(M),
    /// The connection is not here: go through the command queue.
    Absent(M),
}

/// Every live connection's [`Slot`], by id.
pub(crate) struct Directory<C: Converter> {
    map: RwLock<ConnMap<SharedConn<C>>>,
    converter: Arc<C>,
    /// The connector's memory budget: sends count their bytes in it.
    budget: Arc<Budget>,
    /// Shared by every endpoint.
    config: Arc<EndpointConfig>,
    commands: Arc<CommandQueue<C::Message>>,
}

impl<C: Converter> std::fmt::Debug for Directory<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

impl<C: Converter> Directory<C> {
    pub(crate) fn new(
        converter: Arc<C>,
        config: EndpointConfig,
        commands: Arc<CommandQueue<C::Message>>,
        budget: Arc<Budget>,
    ) -> Self {
        Self {
            map: RwLock::new(Rank::Directory, conn_map()),
            converter,
            budget,
            config: Arc::new(config),
            commands,
        }
    }

    /// Registers a new connection whose endpoint is in its first state
    /// (connecting or accepting).
    pub(crate) fn insert(
        &self,
        endpoint: Endpoint<C>,
        transport: Option<Box<dyn Transport>>,
        route: Route<C::Message>,
    ) -> SharedConn<C> {
        let id = endpoint.connection();
        let io = Arc::new(Slot {
            io: Mutex::new(
                Rank::Slot,
                Conn {
                    endpoint,
                    transport,
                    readable: false,
                    writable: false,
                    read_closed: false,
                    errored: false,
                    coalesce_until: None,
                    flush_pending: false,
                    route,
                    retired: false,
                    room_waiters: 0,
                    room_tasks: None,
                    counted: 0,
                    budget_paused: false,
                },
            ),
            room: Condvar::new(),
        });
        self.map.write().insert(id, io.clone());
        io
    }

    /// A fresh endpoint for a connection we are opening (now: its connect
    /// timeout starts).
    pub(crate) fn connecting(&self, id: Connection) -> Endpoint<C> {
        Endpoint::connecting(
            id,
            self.converter.clone(),
            self.waker(id),
            self.config.clone(),
            Instant::now(),
        )
    }

    /// A fresh endpoint for a connection a peer opened.
    pub(crate) fn accepting(&self, id: Connection) -> Endpoint<C> {
        Endpoint::accepting(
            id,
            self.converter.clone(),
            self.waker(id),
            self.config.clone(),
        )
    }

    fn waker(&self, id: Connection) -> Waker {
        Waker::from(Arc::new(ConnectionWaker {
            connection: id,
            commands: self.commands.clone(),
        }))
    }

    /// The converter of every connection.
    pub(crate) fn converter(&self) -> &C {
        &self.converter
    }

    /// Every live connection's slot.
    pub(crate) fn all(&self) -> Vec<SharedConn<C>> {
        self.map.read().values().cloned().collect()
    }

    pub(crate) fn get(&self, id: Connection) -> Option<SharedConn<C>> {
        self.map.read().get(&id).cloned()
    }

    /// Forgets a connection, retiring it: a sender that still holds it
    /// finds it retired.
    pub(crate) fn remove(&self, id: Connection) {
        let removed = {
            let mut map = self.map.write();
            let removed = map.remove(&id);
            crate::memory::shrink_map(&mut map);
            removed
        };
        if let Some(slot) = removed {
            let mut io = lock(&slot);
            io.retired = true;
            io.notify_room(&slot.room);
        }
    }

    /// Forgets every connection: the network thread has stopped.
    pub(crate) fn retire_all(&self) {
        let all: Vec<SharedConn<C>> = self.map.write().drain().map(|(_, io)| io).collect();
        for slot in all {
            let mut io = lock(&slot);
            io.retired = true;
            io.notify_room(&slot.room);
        }
    }

    /// Queues `message` on `id` unless its unsent queue is over the
    /// high-water mark; written as a coalesced `send`.
    pub(crate) fn try_send(&self, id: Connection, message: C::Message) -> Offer<C::Message> {
        let mut message = Some(message);
        let mut full = None;
        let here = self.with_conn(id, Flush::Coalesce, |io| {
            let m = message.take().expect("called once");
            full = io.endpoint.try_send(m).err();
        });
        match (here, full) {
            (false, _) => Offer::Absent(message.expect("not taken")),
            (true, Some(m)) => Offer::Full(m),
            (true, None) => Offer::Taken,
        }
    }

    /// Queues the messages at the front of `messages` on `id` until its
    /// unsent queue is over the high-water mark (the rest stay in
    /// `messages`), and writes them at once. False, with `messages` as it
    /// was, if the connection is not here.
    pub(crate) fn try_send_from(
        &self,
        id: Connection,
        messages: &mut std::collections::VecDeque<C::Message>,
    ) -> bool {
        self.with_conn(id, Flush::Now, |io| io.endpoint.try_send_from(messages))
    }

    /// Waits until `id`'s unsent queue is down to its low-water mark, the
    /// connection stops taking messages, or `deadline` passes (false).
    pub(crate) fn wait_room(&self, id: Connection, deadline: Option<Instant>) -> bool {
        let Some(slot) = self.get(id) else {
            return true;
        };
        let mut io = lock(&slot);
        io.refresh_room(&self.budget);
        while !io.retired && io.endpoint.must_wait_for_room() {
            io.room_waiters += 1;
            io = match deadline {
                None => slot.room.wait(io),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        io.room_waiters -= 1;
                        return false;
                    }
                    slot.room.wait_timeout(io, deadline - now).0
                }
            };
            io.room_waiters -= 1;
            io.refresh_room(&self.budget);
        }
        true
    }

    /// Registers `waker` to be woken once `id`'s unsent queue is down to
    /// its low-water mark or the connection stops taking messages. False
    /// if that is so already (try again at once).
    pub(crate) fn register_room_task(&self, id: Connection, waker: &Waker) -> bool {
        let Some(slot) = self.get(id) else {
            return false;
        };
        let mut io = lock(&slot);
        io.refresh_room(&self.budget);
        if io.retired || !io.endpoint.must_wait_for_room() {
            return false;
        }
        let tasks = io.room_tasks.get_or_insert_with(Box::default);
        if !tasks.iter().any(|t| t.will_wake(waker)) {
            tasks.push(waker.clone());
        }
        true
    }

    /// The unsent queue of `id`: messages and their bytes.
    pub(crate) fn queued(&self, id: Connection) -> Option<(usize, usize)> {
        let slot = self.get(id)?;
        let io = lock(&slot);
        (!io.retired).then(|| (io.endpoint.messages_unwritten(), io.endpoint.queued_bytes()))
    }

    /// Queues `messages` on `id` and writes them as `flush` says. Hands
    /// them back, untouched, if the connection is not here (unknown, or let
    /// go of by the network thread): the caller then goes through the
    /// command queue, which rejects them.
    pub(crate) fn send<I>(&self, id: Connection, flush: Flush, messages: I) -> Result<(), I>
    where
        I: Iterator<Item = C::Message>,
    {
        let mut messages = Some(messages);
        self.with_conn(id, flush, |io| {
            io.endpoint.send_all(messages.take().expect("called once"));
        });
        messages.map_or(Ok(()), Err)
    }

    /// Starts a local disconnect on the caller's thread, so that it keeps
    /// its place among the connection's sends. False if the connection is
    /// not here.
    pub(crate) fn disconnect(&self, id: Connection, mode: DisconnectMode) -> bool {
        self.with_conn(id, Flush::Now, |io| io.endpoint.disconnect(mode))
    }

    /// Runs `f` on the connection, writes what its endpoint then offers
    /// (see [`Flush`]), and pokes the network thread if there are events to
    /// pass on. False, without running `f`, if the connection is not here.
    fn with_conn(&self, id: Connection, flush: Flush, f: impl FnOnce(&mut Conn<C>)) -> bool {
        let Some(shared) = self.get(id) else {
            return false;
        };
        let mut guard = lock(&shared);
        if guard.retired {
            return false;
        }
        let io = &mut *guard;
        let before = io.endpoint.state();
        let wanted_input = io.endpoint.wants_read();
        io.refresh_room(&self.budget);
        f(io);
        let mut poke = false;
        // The clock is read only when no write for the loop is pending
        // already (in a stream of sends, once per write of the loop).
        let coalesce = flush == Flush::Coalesce
            && (io.flush_pending || {
                let now = Instant::now();
                let recent = |until: Option<Instant>| until.is_some_and(|u| now < u);
                recent(io.coalesce_until) || recent(THREAD_COALESCE_UNTIL.get())
            });
        if coalesce {
            // Sends in quick succession: one write by the network loop
            // takes them all, where a system call each would cost far more.
            if !io.flush_pending && io.endpoint.wants_write() {
                io.flush_pending = true;
                poke = true;
            }
        } else if io.write_out() {
            io.note_write();
            THREAD_COALESCE_UNTIL.set(io.coalesce_until);
        }
        poke |= io.endpoint.has_events() || io.endpoint.state() != before;
        // The queue drained below its mark here: reading may go on.
        poke |= !wanted_input && io.endpoint.wants_read();
        let budget_freed = io.settle(&self.budget);
        // Paused at the budget and now holding nothing for sending: the
        // loop looks whether it may read again.
        let look_again = io.budget_paused && io.counted == 0;
        if look_again {
            io.budget_paused = false;
        }
        io.notify_room(&shared.room);
        drop(guard);
        // If the network thread has stopped meanwhile, it closed this
        // connection (passing its events on) after we let go of the lock.
        if poke {
            let _ = self.commands.push(Command::Drive { connection: id });
        }
        if look_again {
            let _ = self.commands.push(Command::Resume { connection: id });
        }
        if budget_freed {
            let _ = self.commands.push(Command::BudgetFreed);
        }
        true
    }
}

/// Sends closer together than this on one connection are written together
/// by the network loop; a send after a pause is written at once, on the
/// sender's thread.
const COALESCE: Duration = Duration::from_micros(10);

thread_local! {
    /// Until when this thread's sends coalesce, after it last wrote one
    /// itself, on any connection: a thread sending in a loop coalesces even
    /// when each send goes to a different connection.
    static THREAD_COALESCE_UNTIL: std::cell::Cell<Option<Instant>> =
        const { std::cell::Cell::new(None) };
}

/// When a send's bytes go to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// At once, on the caller's thread (`send_batch`: a batch is coalesced already).
    Now,
    /// At once after a pause; by the network loop, with the sends that
    /// follow, when sends come in quick succession.
    Coalesce,
}

impl<C: Converter> Directory<C> {
    /// Accepts `id` if it still waits for it, its events going by `route`.
    /// False if it no longer waits (closed meanwhile).
    pub(crate) fn accept(&self, id: Connection, route: Route<C::Message>) -> bool {
        let mut accepted = false;
        self.with_conn(id, Flush::Now, |io| {
            if io.endpoint.state() == State::Accepting {
                io.route = route;
                io.endpoint.accept(Instant::now());
                accepted = true;
            }
        });
        accepted
    }

    /// Rejects `id` if it still waits for it.
    pub(crate) fn reject(&self, id: Connection) {
        self.with_conn(id, Flush::Now, |io| io.endpoint.reject());
    }
}

/// Whether a short read or write tells that the socket's buffer is empty
/// or full: true for epoll, whose next edge then reports new data or room
/// (see the module's invariants).
const SHORT_IO_CLEARS_READINESS: bool = cfg!(any(target_os = "linux", target_os = "android"));

impl<C: Converter> Conn<C> {
    /// Writes what the endpoint offers until it has nothing or the
    /// transport is full. Returns whether anything happened.
    pub(crate) fn write_out(&mut self) -> bool {
        let Some(transport) = &mut self.transport else {
            return false;
        };
        let endpoint = &mut self.endpoint;
        let mut progress = false;
        // The transport's own output first (TLS records, `close_notify`).
        if self.writable && transport.has_pending_output() {
            match transport.flush() {
                Ok(()) => progress = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    endpoint.handle_error(e);
                    return true;
                }
            }
        }
        while self.writable && endpoint.wants_write() && transport.ready_for_data() {
            let offered = endpoint.transmit().len();
            match transport.write(endpoint.transmit()) {
                Ok(0) => {
                    endpoint.handle_error(io::ErrorKind::WriteZero.into());
                    return true;
                }
                Ok(n) => {
                    tracing::trace!(bytes = n, "wrote");
                    endpoint.handle_written(n);
                    progress = true;
                    if n < offered && SHORT_IO_CLEARS_READINESS {
                        self.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    endpoint.handle_error(e);
                    return true;
                }
            }
        }
        progress
    }

    /// Drives the transport's handshake (TLS) while it is not ready for
    /// data, once connected, reading at most `read_limit` bytes of it: an
    /// accepted connection handshakes before the application takes it, so
    /// that a client's connect does not wait for the application. Returns
    /// whether anything happened, and whether it stopped at its read limit
    /// with the socket perhaps holding more.
    pub(crate) fn handshake(&mut self, read_limit: usize) -> (bool, bool) {
        let Some(transport) = &mut self.transport else {
            return (false, false);
        };
        if transport.ready_for_data() {
            // Done, perhaps by a read (an accepted connection the
            // application took before it ended).
            self.endpoint.handle_handshake_done();
            return (false, false);
        }
        if !(self.readable || self.writable) || self.endpoint.state() == State::Connecting {
            return (false, false);
        }
        let outcome = transport.handshake(read_limit);
        if let Some(mid_record) = transport.take_wire_input() {
            self.endpoint.handle_wire_input(Instant::now(), mid_record);
        }
        match outcome {
            Ok(Handshake::Done) => {
                // It read and wrote until the socket said `WouldBlock`, or
                // not: look again.
                self.readable = true;
                self.writable = true;
                self.endpoint.handle_handshake_done();
                (true, false)
            }
            // It read until the socket said `WouldBlock`.
            Ok(Handshake::Waiting) => {
                self.readable = false;
                (false, false)
            }
            Ok(Handshake::Paused) => (false, true),
            Err(e) => {
                self.endpoint.handle_error(e);
                (true, false)
            }
        }
    }

    /// Takes the socket's pending error, if one was reported: the
    /// connection ends, whether or not it was reading (messages already
    /// decoded are delivered first; input held back undecoded is dropped,
    /// see [`Endpoint::handle_error`]).
    pub(crate) fn take_socket_error(&mut self) {
        if !std::mem::take(&mut self.errored) {
            return;
        }
        let Some(transport) = &self.transport else {
            return;
        };
        match transport.take_error() {
            Ok(Some(e)) | Err(e) => {
                if self.endpoint.state() != State::Connecting {
                    self.endpoint.handle_error(e);
                }
            }
            Ok(None) => {}
        }
    }

    /// Whether the transport's handshake waits to read or write: an
    /// accepted or connected transport not yet ready for data.
    pub(crate) fn handshaking(&self) -> bool {
        self.transport.as_ref().is_some_and(|t| !t.ready_for_data())
            && self.endpoint.state() != State::Connecting
            && (self.readable || self.writable)
    }

    /// Bytes went to the transport just now: sends in the next
    /// [`COALESCE`] are left for the loop to write together. Timed when
    /// the write ended, so that a slow system call does not make the next
    /// send look like one after a pause.
    pub(crate) fn note_write(&mut self) {
        self.coalesce_until = Some(Instant::now() + COALESCE);
    }

    /// Shuts the transport's write side down if the endpoint asks (its
    /// local disconnect completed); its linger time starts now.
    pub(crate) fn shut_write_if_asked(&mut self) {
        if self.endpoint.wants_shutdown_write() {
            if let Some(transport) = &mut self.transport {
                let _ = transport.shutdown_write();
            }
            self.endpoint.handle_write_shut(Instant::now());
        }
    }

    /// Reads once from the transport (at most `limit` bytes) into the
    /// endpoint, messages going to `sink`, and notes what the read said
    /// about readiness. Returns how many bytes came.
    pub(crate) fn read_into(
        &mut self,
        now: Instant,
        limit: usize,
        scratch: &mut ReadBuffer,
        sink: &mut impl FnMut(EndpointEvent<C::Message>) -> bool,
    ) -> usize {
        let Some(transport) = &mut self.transport else {
            return 0;
        };
        let endpoint = &mut self.endpoint;
        let read = scratch.read_from(
            transport,
            limit,
            |data, chunk: Option<&Bytes>| match chunk {
                Some(chunk) => endpoint.handle_shared_read_into(now, chunk, sink),
                None => endpoint.handle_read_into(now, data, sink),
            },
        );
        if let Some(mid_record) = transport.take_wire_input() {
            endpoint.handle_wire_input(now, mid_record);
        }
        match read {
            Ok((0, _)) => {
                tracing::trace!("end of stream");
                endpoint.handle_eof();
            }
            Ok((n, filled)) => {
                tracing::trace!(bytes = n, "read");
                if !filled && !self.read_closed && SHORT_IO_CLEARS_READINESS {
                    self.readable = false;
                }
                return n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => endpoint.handle_error(e),
        }
        0
    }

    /// Whether a connecting transport has connected (and done its
    /// handshake, for TLS): `None` while still in progress.
    pub(crate) fn connect_outcome(&mut self) -> Option<io::Result<()>> {
        let transport = self.transport.as_mut()?;
        match transport.take_error() {
            Ok(Some(e)) | Err(e) => Some(Err(e)),
            Ok(None) => match transport.is_connected() {
                Ok(true) => {
                    if !transport.ready_for_data() {
                        self.endpoint.handle_handshake_started(Instant::now());
                    }
                    match transport.handshake(usize::MAX) {
                        Ok(Handshake::Done) => {
                            // The handshake read and wrote until the socket
                            // said `WouldBlock`, or not: look again.
                            self.readable = true;
                            self.writable = true;
                            Some(Ok(()))
                        }
                        Ok(Handshake::Waiting | Handshake::Paused) => None,
                        Err(e) => Some(Err(e)),
                    }
                }
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            },
        }
    }
}
