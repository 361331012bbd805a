//! One connection: everything about it in one place, and the only code
//! that moves its bytes.
//!
//! A [`Conn`] owns the connection's [`Endpoint`] (which decides), its
//! [`Transport`] (which carries bytes), and everything else about it that
//! is not the endpoint's (its readiness, where its events go, its credit,
//! its pause, its dialing state, its `connect_waiting` caller). It lives in
//! a place of the [`Directory`](crate::connector::directory::Directory),
//! where senders and the loop find it; whoever holds its lock moves its
//! bytes with the methods here (the loop, or a sender writing what it
//! queued).
//!
//! # Invariants
//!
//! * Only the network thread takes events out of an endpoint and passes
//!   them on, so they stay in order.
//! * Readiness: the transport is registered edge-triggered, and `readable`
//!   and `writable` remember an edge until the transport says
//!   `WouldBlock`. On Linux a short read or write also clears them (epoll
//!   reports new data or room with a new edge, so the read that would
//!   only say `WouldBlock` is skipped); `mio` does not promise this on
//!   other systems, where they are cleared by `WouldBlock` only. After
//!   the peer's end of stream or an error, reading goes on to the end.
//!   The poller's edges wait in the loop's keys ([`Edges`]) until the
//!   connection is driven.

use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;

use crate::clock::Clock;
use crate::connector::budget::{Budget, Credit};
use crate::connector::command::ConnectWait;
use crate::connector::queues::Route;
use crate::converter::Converter;
use crate::endpoint::{Endpoint, EndpointEvent, State};
use crate::event::Event;
use crate::reactor::Dialing;
use crate::reactor::pacing::Pause;
use crate::reactor::readbuf::ReadBuffer;
use crate::sync::Condvar;
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
    /// Where the connection's events go; set by `finish_accept` and by a
    /// merge.
    pub(crate) route: Route<C::Message>,
    /// The network thread let go of the connection: nothing may be queued
    /// here any more.
    pub(crate) retired: bool,
    /// Senders waiting on their slot's condition variable
    /// (`connector/directory.rs`) for the unsent queue to drain.
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
    pub(crate) fn new(
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

    /// Lets go of its transport, if any (a failed attempt, or a link to
    /// dial again), and of what was known of its readiness.
    pub(crate) fn drop_transport(&mut self, registry: &mio::Registry) {
        if let Some(mut old) = self.transport.take() {
            let _ = old.deregister(registry);
        }
        self.readable = false;
        self.writable = false;
        self.read_closed = false;
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

    pub(crate) fn wake_room_tasks(&mut self) {
        for task in self.room_tasks.iter_mut().flat_map(|t| t.drain(..)) {
            task.wake();
        }
    }
}

/// Readiness reported by the poller, as bits, kept by the loop until the
/// connection is driven.
pub(crate) struct Edges;

impl Edges {
    pub(crate) const READABLE: u8 = 1;
    pub(crate) const READ_CLOSED: u8 = 2;
    pub(crate) const WRITABLE: u8 = 4;
    pub(crate) const ERROR: u8 = 8;

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
    pub(crate) fn handshake(&mut self, read_limit: usize, now: Instant) -> (bool, bool) {
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
            self.endpoint.handle_wire_input(now, mid_record);
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

    /// Shuts the transport's write side down if the endpoint asks (its
    /// local disconnect completed); its linger time starts now.
    /// (The clock is read only when it does.)
    pub(crate) fn shut_write_if_asked(&mut self, clock: &Clock) {
        if self.endpoint.wants_shutdown_write() {
            if let Some(transport) = &mut self.transport {
                let _ = transport.shutdown_write();
            }
            self.endpoint.handle_write_shut(clock.now());
        }
    }

    /// Whether what senders left is due now
    /// ([`Endpoint::take_write_due`]); the clock is read only while a
    /// write window is open.
    pub(crate) fn write_due(&mut self, clock: &Clock) -> bool {
        !self.endpoint.write_window_open() || self.endpoint.take_write_due(clock.now())
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
    pub(crate) fn connect_outcome(&mut self, now: Instant) -> Option<io::Result<()>> {
        let transport = self.transport.as_mut()?;
        match transport.take_error() {
            Ok(Some(e)) | Err(e) => Some(Err(e)),
            Ok(None) => match transport.is_connected() {
                Ok(true) => {
                    if !transport.ready_for_data() {
                        self.endpoint.handle_handshake_started(now);
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
