//! One connection: everything about it in one place, the directory where
//! senders and the loop find it, and the only code that moves its bytes.
//!
//! A [`Conn`] owns the connection's [`Endpoint`] (which decides), its
//! [`Transport`] (which carries bytes), and everything else about it that
//! is not the endpoint's (its readiness, where its events go, its credit,
//! its pause, its dialing state, its `connect_waiting` caller). It lives in
//! a [`Slot`] of the [`Directory`]: a place in a [`Slab`], found from the
//! connection's id without a lock (an id is the place's index and a
//! generation, so an id of a connection that is gone finds nothing, even
//! once its place holds another). `send` locks the slot, queues the
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
//!   the messages. Its place is given back (its generation moved on) only
//!   once nothing of it is left to deliver.
//! * Readiness: the transport is registered edge-triggered, and `readable`
//!   and `writable` remember an edge until the transport says
//!   `WouldBlock`. On Linux a short read or write also clears them (epoll
//!   reports new data or room with a new edge, so the read that would
//!   only say `WouldBlock` is skipped); `mio` does not promise this on
//!   other systems, where they are cleared by `WouldBlock` only. After
//!   the peer's end of stream or an error, reading goes on to the end.
//! * Lock order: a slot's lock, then the command queue or an event queue;
//!   never a slot's lock while holding another slot's.

use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::converter::Converter;
use crate::endpoint::{Endpoint, EndpointConfig, EndpointEvent, State};
use crate::event::{Connection, Event};
use crate::mode::DisconnectMode;
use crate::reactor::Dialing;
use crate::reactor::budget::{Budget, Credit};
use crate::reactor::command::{Command, CommandQueue, ConnectWait, ConnectionWaker};
use crate::reactor::pacing::Pause;
use crate::reactor::queues::Route;
use crate::reactor::readbuf::ReadBuffer;
use crate::reactor::slab::Slab;
use crate::sync::{Condvar, Mutex, MutexGuard, Rank, lock};
use crate::transport::{Handshake, Transport};

/// One connection: its endpoint and transport, what senders and the loop
/// share of it, and what only the loop uses.
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

    // What only the loop uses.
    /// What its events not yet taken count against the budget.
    pub(crate) credit: Arc<Credit>,
    /// `connect_waiting`: events held until its callback returned.
    /// (Boxed: only `connect_waiting` uses it; 8 bytes here instead of a
    /// `Vec`'s 24.)
    #[allow(clippy::box_collection)]
    pub(crate) held: Option<Box<Vec<Event<C::Message>>>>,
    /// While connecting: the addresses still to try and the last failure.
    /// Boxed, and dropped once connected, so that an idle connection does
    /// not carry it.
    pub(crate) dialing: Option<Box<Dialing>>,
    /// `connect_waiting`: told the outcome instead of a `FinishConnect`.
    pub(crate) waiter: Option<Arc<ConnectWait>>,
    /// `connect_waiting` gave up before it connected: its closing event is
    /// delivered only if it hands messages back.
    pub(crate) abandoned: bool,
    /// Accepted from the listener (counted against `max_connections`).
    pub(crate) remote: bool,
    /// Reading paused for the memory budget, and until what.
    pub(crate) paused: Pause,
    /// The endpoint's input bytes last counted against the budget.
    pub(crate) input_bytes: usize,
    /// What the events of its last read cost per byte read (at least 1):
    /// small messages cost many times their size as events.
    pub(crate) cost_per_byte: usize,
    /// Its `tracing` span (`connection` with `id` and `peer`), entered
    /// while it is driven: its life at debug level, its I/O at trace.
    /// `None` when no subscriber wants it (boxed: most connections of a
    /// busy server then carry 8 bytes for it, not 40).
    pub(crate) span: Option<Box<tracing::Span>>,
}

impl<C: Converter> Conn<C> {
    fn new(
        endpoint: Endpoint<C>,
        transport: Option<Box<dyn Transport>>,
        route: Route<C::Message>,
    ) -> Self {
        let id = endpoint.connection();
        Self {
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
            credit: Arc::new(Credit::new(id)),
            held: None,
            dialing: None,
            waiter: None,
            abandoned: false,
            remote: false,
            paused: Pause::No,
            input_bytes: 0,
            cost_per_byte: 1,
            span: None,
        }
    }

    /// What it still has to try while connecting (made on first use).
    pub(crate) fn dialing(&mut self) -> &mut Dialing {
        self.dialing.get_or_insert_with(Box::default)
    }

    /// Its span (a disabled one if no subscriber wanted it).
    pub(crate) fn span(&self) -> &tracing::Span {
        static NONE: tracing::Span = tracing::Span::none();
        self.span.as_deref().unwrap_or(&NONE)
    }

    /// Gives it a span (`connection`, with its id and `peer`), if a
    /// subscriber wants one.
    pub(crate) fn set_span(&mut self, peer: &dyn std::fmt::Display) {
        let id = self.endpoint.connection();
        let span = tracing::debug_span!("connection", id = %id, peer = %peer);
        self.span = (!span.is_disabled()).then(|| Box::new(span));
    }

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
            self.wake_room_tasks();
        }
    }

    fn wake_room_tasks(&mut self) {
        for task in self.room_tasks.iter_mut().flat_map(|t| t.drain(..)) {
            task.wake();
        }
    }
}

/// Readiness reported by the poller, as bits, kept by the loop until the
/// connection is driven.
pub(crate) struct Edges;

impl Edges {
    const READABLE: u8 = 1;
    const READ_CLOSED: u8 = 2;
    const WRITABLE: u8 = 4;
    const ERROR: u8 = 8;

    /// What a poller event reports.
    pub(crate) fn of(event: &mio::event::Event) -> u8 {
        let mut bits = 0;
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            bits |= Self::READABLE;
        }
        if event.is_read_closed() || event.is_error() {
            bits |= Self::READ_CLOSED;
        }
        if event.is_error() {
            bits |= Self::ERROR;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            bits |= Self::WRITABLE;
        }
        bits
    }
}

impl<C: Converter> Conn<C> {
    /// Takes in readiness the poller reported (see [`Edges`]).
    pub(crate) fn note_edges(&mut self, bits: u8) {
        self.readable |= bits & Edges::READABLE != 0;
        self.read_closed |= bits & Edges::READ_CLOSED != 0;
        self.errored |= bits & Edges::ERROR != 0;
        self.writable |= bits & Edges::WRITABLE != 0;
    }
}

/// What one place of the directory holds.
pub(crate) struct Place<C: Converter> {
    /// Moves on each time the place is given back: the generation of the
    /// ids that name its connection now.
    generation: u32,
    /// Handed out by [`Directory::reserve`] and not yet given back.
    taken: bool,
    /// Counted among the live connections (in stats) and found by senders:
    /// from its registration until the loop moves its numbers to the
    /// totals.
    listed: bool,
    /// Boxed: an empty place costs a pointer, not a connection.
    conn: Option<Box<Conn<C>>>,
}

/// One place of the [`Directory`]: the connection it holds, and where
/// senders wait for room in its queue.
pub(crate) struct Slot<C: Converter> {
    io: Mutex<Place<C>>,
    room: Condvar,
}

impl<C: Converter> Default for Slot<C> {
    fn default() -> Self {
        Self {
            io: Mutex::new(
                Rank::Slot,
                Place {
                    generation: 0,
                    taken: false,
                    listed: false,
                    conn: None,
                },
            ),
            room: Condvar::new(),
        }
    }
}

impl<C: Converter> std::fmt::Debug for Slot<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

/// A connection's id: its place's index (plus one, so that no id is 0)
/// in the low half, the place's generation in the high half.
fn id_of(index: usize, generation: u32) -> Connection {
    Connection((u64::from(generation) << 32) | (index as u64 + 1))
}

/// The place and generation an id names (`None`: no place's).
fn parts(id: Connection) -> Option<(usize, u32)> {
    let low = id.0 as u32;
    (low != 0).then(|| (low as usize - 1, (id.0 >> 32) as u32))
}

/// The connection's place, in the order of the directory's places: the
/// loop's index of what it serves, and its `mio` token.
pub(crate) fn index_of(id: Connection) -> usize {
    parts(id).map_or(usize::MAX, |(index, _)| index)
}

/// A locked connection: its place's lock, held while it holds the
/// connection named by the id it was found by.
pub(crate) struct ConnGuard<'a, C: Converter> {
    place: MutexGuard<'a, Place<C>>,
    slot: &'a Slot<C>,
}

impl<C: Converter> Deref for ConnGuard<'_, C> {
    type Target = Conn<C>;
    fn deref(&self) -> &Conn<C> {
        match &self.place.conn {
            Some(conn) => conn,
            None => unreachable!("a guard is made only over a connection"),
        }
    }
}

impl<C: Converter> DerefMut for ConnGuard<'_, C> {
    fn deref_mut(&mut self) -> &mut Conn<C> {
        match &mut self.place.conn {
            Some(conn) => conn,
            None => unreachable!("a guard is made only over a connection"),
        }
    }
}

impl<'a, C: Converter> ConnGuard<'a, C> {
    /// Where senders wait for room in its queue (for
    /// [`Conn::notify_room`] while the guard is borrowed).
    pub(crate) fn room(&self) -> &'a Condvar {
        &self.slot.room
    }

    /// Wakes senders waiting for room if they may go on (see
    /// [`Conn::notify_room`]).
    pub(crate) fn notify_room(&mut self) {
        let slot = self.slot;
        (**self).notify_room(&slot.room);
    }

    /// Waits for room in the unsent queue (a notification), at most
    /// `timeout`. `None` if the place no longer holds this connection
    /// when it wakes (it is gone: it takes no messages).
    fn wait_room(self, timeout: Option<Duration>) -> Option<Self> {
        let Self { place, slot } = self;
        let generation = place.generation;
        let place = match timeout {
            None => slot.room.wait(place),
            Some(t) => slot.room.wait_timeout(place, t).0,
        };
        (place.generation == generation && place.conn.is_some()).then_some(Self { place, slot })
    }
}

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

/// Every live connection, in a place found from its id without a lock.
pub(crate) struct Directory<C: Converter> {
    places: Slab<Slot<C>>,
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
            places: Slab::new(),
            converter,
            budget,
            config: Arc::new(config),
            commands,
        }
    }

    /// A fresh id, naming an empty place until [`insert`](Self::insert)
    /// puts its connection there. Ids are never reused within a connector
    /// (a place's generation moves on each time it is given back).
    pub(crate) fn reserve(&self) -> Connection {
        // Every live connection holds a socket: the system's limit on them
        // is far below 2^32.
        let (index, slot) = self
            .places
            .take()
            .expect("fewer than 2^32 connections at once");
        let mut place = lock(&slot.io);
        debug_assert!(place.conn.is_none() && !place.listed && !place.taken);
        place.taken = true;
        id_of(index, place.generation)
    }

    /// Puts the connection reserved as `endpoint`'s id in its place, its
    /// endpoint in its first state (connecting or accepting).
    pub(crate) fn insert(
        &self,
        endpoint: Endpoint<C>,
        transport: Option<Box<dyn Transport>>,
        route: Route<C::Message>,
        peer: &dyn std::fmt::Display,
    ) {
        let id = endpoint.connection();
        let mut conn = Box::new(Conn::new(endpoint, transport, route));
        conn.set_span(peer);
        let slot = self.slot(id).expect("reserved");
        let mut place = lock(&slot.io);
        debug_assert_eq!(Some(place.generation), parts(id).map(|(_, g)| g));
        place.conn = Some(conn);
        place.listed = true;
    }

    /// The place an id names, whatever it holds now.
    fn slot(&self, id: Connection) -> Option<&Slot<C>> {
        self.places.get(parts(id)?.0)
    }

    /// The connection `id` names, locked, as the loop sees it: also once
    /// it is retired, until its place is given back.
    pub(crate) fn lock(&self, id: Connection) -> Option<ConnGuard<'_, C>> {
        let (index, generation) = parts(id)?;
        let slot = self.places.get(index)?;
        let place = lock(&slot.io);
        (place.generation == generation && place.conn.is_some())
            .then_some(ConnGuard { place, slot })
    }

    /// The connection `id` names, locked, as senders see it: listed and
    /// not retired.
    fn lock_live(&self, id: Connection) -> Option<ConnGuard<'_, C>> {
        let guard = self.lock(id)?;
        (guard.place.listed && !guard.retired).then_some(guard)
    }

    /// Gives `id`'s place back: its connection is dropped (after the lock),
    /// its generation moves on (so `id` finds nothing any more), and a
    /// sender waiting in it finds it gone.
    pub(crate) fn release(&self, id: Connection) {
        let Some((index, generation)) = parts(id) else {
            return;
        };
        let Some(slot) = self.places.get(index) else {
            return;
        };
        let mut place = lock(&slot.io);
        if place.generation != generation || !place.taken {
            return;
        }
        let conn = place.conn.take();
        place.taken = false;
        place.listed = false;
        place.generation = generation.wrapping_add(1);
        let reuse = place.generation != 0;
        slot.room.notify_all();
        drop(place);
        if let Some(mut conn) = conn {
            conn.wake_room_tasks();
        }
        // A place whose generations ran out is not used again: its ids
        // would repeat.
        if reuse {
            self.places.give_back(index);
        }
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

    /// Runs `f` on every connection counted as live (one at a time, each
    /// under its lock).
    pub(crate) fn for_each_listed(&self, mut f: impl FnMut(&Conn<C>)) {
        for (_, slot) in self.places.iter() {
            let place = lock(&slot.io);
            if place.listed
                && let Some(conn) = &place.conn
            {
                f(conn);
            }
        }
    }

    /// Runs `f` on every connection with a place (the loop's, each under
    /// its lock).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut ConnGuard<'_, C>)) {
        for (_, slot) in self.places.iter() {
            let place = lock(&slot.io);
            if place.conn.is_some() {
                f(&mut ConnGuard { place, slot });
            }
        }
    }

    /// Stops counting `id` as live and retires it: a sender finds it gone.
    /// Its place stays its own until [`release`](Self::release).
    pub(crate) fn unlist(&self, id: Connection) {
        if let Some(mut conn) = self.lock(id) {
            conn.place.listed = false;
            conn.retired = true;
            conn.notify_room();
        }
    }

    /// Lets go of every connection: the network thread has stopped.
    pub(crate) fn retire_all(&self) {
        for (index, slot) in self.places.iter() {
            let generation = lock(&slot.io).generation;
            self.release(id_of(index, generation));
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
        let Some(mut io) = self.lock_live(id) else {
            return true;
        };
        io.refresh_room(&self.budget);
        while !io.retired && io.endpoint.must_wait_for_room() {
            let timeout = match deadline {
                None => None,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    Some(deadline - now)
                }
            };
            io.room_waiters += 1;
            io = match io.wait_room(timeout) {
                Some(io) => io,
                // Gone while we waited: it takes no messages.
                None => return true,
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
        let Some(mut io) = self.lock_live(id) else {
            return false;
        };
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
        let io = self.lock_live(id)?;
        Some((io.endpoint.messages_unwritten(), io.endpoint.queued_bytes()))
    }

    /// A live connection's numbers.
    pub(crate) fn stats(&self, id: Connection) -> Option<crate::stats::ConnectionStats> {
        let io = self.lock_live(id)?;
        Some(io.endpoint.stats())
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
        let Some(mut guard) = self.lock_live(id) else {
            return false;
        };
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
        guard.notify_room();
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
