//! Where senders and the loop find a connection, and the send path.
//!
//! Every connection's [`Conn`] lives in a [`Slot`] of the [`Directory`]: a
//! place in a [`Slab`], found from the connection's id without a lock (an
//! id is the place's index and a generation, so an id of a connection
//! that is gone finds nothing, even once its place holds another). `send`
//! locks the slot, queues the messages, and writes what the transport
//! takes right away, with no hand-off to the network thread on the common
//! path. What the transport does not take stays in the endpoint; the
//! network thread gets a readiness event once there is room and goes on
//! from there.
//!
//! A send after a pause is written at once. Sends in quick succession
//! (within [`COALESCE`](crate::endpoint::COALESCE) of the last write on
//! that connection, or of the sending thread's last write on any
//! connection: [`Endpoint::in_succession`]) are left in the buffer, to be
//! written together: a system call per small message would cost far
//! more. When they go is the endpoint's to say
//! ([`Endpoint::coalesce`]): a few in a row go with the network loop's next
//! look (it is told once, when the window opens); a stream (a window that
//! carried 2 KiB) is written in lots of
//! [`WRITE_LOT`](crate::endpoint::WRITE_LOT) by its sender, here, and its
//! tail by the loop at the end of a window of
//! [`STREAM_TAIL`](crate::endpoint::STREAM_TAIL), each window opening as
//! the last closes, so that neither the loop nor the peer is woken per
//! few messages. `send_batch` is written at once.
//!
//! # Invariants
//!
//! * When a send on the caller's thread leaves an event (a serializer
//!   error, a failed write, a completed disconnect), it asks the network
//!   thread to drive the connection ([`Command::Drive`]): only the loop
//!   passes events on.
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
//! * Lock order: a slot's lock, then the command queue or an event queue;
//!   never a slot's lock while holding another slot's.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::budget::Budget;
use super::command::{Command, CommandQueue, ConnectionWaker};
use super::queues::Route;
use super::slab::Slab;
use crate::clock::Clock;
use crate::converter::Converter;
use crate::endpoint::{Endpoint, EndpointConfig, State};
use crate::event::Connection;
use crate::mode::DisconnectMode;
use crate::reactor::conn::Conn;
use crate::sync::{Condvar, Mutex, MutexGuard, Rank, lock};
use crate::transport::Transport;

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

/// The connection's place, in the order of the directory's places: the
/// loop's index of what it serves, and its `mio` token.
pub(crate) fn index_of(id: Connection) -> usize {
    id.place().map_or(usize::MAX, |(index, _)| index)
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
    /// Where `now` comes from, for the endpoints driven here.
    clock: Clock,
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
        clock: Clock,
    ) -> Self {
        Self {
            places: Slab::new(),
            converter,
            budget,
            config: Arc::new(config),
            commands,
            clock,
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
        Connection::of_place(index, place.generation)
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
        debug_assert_eq!(Some(place.generation), id.place().map(|(_, g)| g));
        place.conn = Some(conn);
        place.listed = true;
    }

    /// The place an id names, whatever it holds now.
    fn slot(&self, id: Connection) -> Option<&Slot<C>> {
        self.places.get(id.place()?.0)
    }

    /// The connection `id` names, locked, as the loop sees it: also once
    /// it is retired, until its place is given back.
    pub(crate) fn lock(&self, id: Connection) -> Option<ConnGuard<'_, C>> {
        let (index, generation) = id.place()?;
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
        let Some((index, generation)) = id.place() else {
            return;
        };
        let Some(slot) = self.places.get(index) else {
            return;
        };
        let place = lock(&slot.io);
        if place.generation == generation {
            self.empty(index, slot, place);
        }
    }

    /// Empties a place handed out (its lock held): see
    /// [`release`](Self::release).
    fn empty(&self, index: usize, slot: &Slot<C>, mut place: MutexGuard<'_, Place<C>>) {
        if !place.taken {
            return;
        }
        let conn = place.conn.take();
        place.taken = false;
        place.listed = false;
        place.generation = place.generation.wrapping_add(1);
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
            self.clock.now(),
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
            self.empty(index, slot, lock(&slot.io));
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
        // (A window open: the loop was told of what waits, see
        // `Endpoint::coalesce`.)
        let now = (!io.endpoint.write_window_open()).then(|| self.clock.now());
        let coalesce = flush == Flush::Coalesce
            && now.is_none_or(|now| io.endpoint.in_succession(now, THREAD_COALESCE_UNTIL.get()));
        if coalesce {
            // Sends in quick succession: the endpoint says when what waits
            // goes out (see `Endpoint::coalesce`). A full lot goes now, from
            // here, as a stream's sender writes; the rest by the network
            // loop, told once per window.
            if io.endpoint.has_full_lot() {
                if io.write_out() {
                    io.endpoint.note_write(self.clock.now());
                }
            } else if let Some(now) = now
                && io.endpoint.wants_write()
            {
                io.endpoint.coalesce(now);
                poke = true;
            }
        } else {
            io.endpoint.end_stream();
            if io.write_out() {
                io.endpoint.note_write(self.clock.now());
                THREAD_COALESCE_UNTIL.set(io.endpoint.coalesce_until());
            }
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
                io.endpoint.accept(self.clock.now());
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
