//! The sans-IO state of one connection.
//!
//! This module has no networking code and reads no clock. An [`Endpoint`] is
//! told what happened to its socket and asked what to do next; the reactor is
//! a thin shell that performs the I/O. Tests drive it byte by byte.
//!
//! Its methods come in four kinds:
//!
//! * getters: [`connection`](Endpoint::connection), [`state`](Endpoint::state),
//!   [`wants_read`](Endpoint::wants_read), [`wants_write`](Endpoint::wants_write),
//!   [`transmit`](Endpoint::transmit);
//! * inputs from the socket: [`handle_connected`](Endpoint::handle_connected),
//!   [`handle_connect_failed`](Endpoint::handle_connect_failed),
//!   [`handle_written`](Endpoint::handle_written), [`handle_read`](Endpoint::handle_read),
//!   [`handle_eof`](Endpoint::handle_eof), [`handle_error`](Endpoint::handle_error),
//!   [`handle_wake`](Endpoint::handle_wake);
//! * commands from the application: [`send`](Endpoint::send),
//!   [`disconnect`](Endpoint::disconnect);
//! * outputs: [`poll_event`](Endpoint::poll_event).
//!
//! ```text
//!  Connecting ──connected──► Open
//!  Accepting ───accept()────►  │ ──disconnect(FinishMessage|FinishQueue)──► Disconnecting
//!      │                      │                                                  │ all written
//!      │ failed / cancelled   │ peer closed, reset, protocol error,              ▼
//!      │                      │ disconnect(Now)                               Draining
//!      ▼                      ▼                                                  │ peer EOF
//!    Closed ◄─────────────────┴──────────────────────────────────────────────────┘
//! ```
//!
//! In `Draining` the local disconnect has completed (its `FinishDisconnect`
//! was emitted): the reactor shuts the socket's write side down, so the
//! peer reads every byte and then EOF, and reads and discards whatever the
//! peer still sends until it closes. Closing a socket with unread input
//! would send a reset instead, which can destroy data still in flight.

mod recv;
mod send;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::Waker;

use bytes::Bytes;

use crate::converter::Converter;
use crate::error::{ConnectError, DisconnectReason, RejectReason};
use crate::event::{
    Connection, Event, FinishConnect, FinishDisconnect, MessageReceived, RejectedMessage,
    RemoteDisconnect,
};
use crate::mode::DisconnectMode;

use recv::Inbox;
use send::Outbox;

/// The default bound of a connection's write buffer: 256 KiB.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 256 * 1024;
/// The default bound on input a deserializer leaves unconsumed: 1 MiB.
pub const DEFAULT_MAX_PENDING_INPUT: usize = 1024 * 1024;

/// Per-connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Bound of the write buffer, in bytes. Serializers are only asked for
    /// bytes when it has room.
    pub write_buffer_size: usize,
    /// Bound on received bytes held while a deserializer waits for a
    /// callback or leaves input unconsumed. Past it the connection closes
    /// with [`ProtocolError::Stalled`](crate::error::ProtocolError::Stalled).
    pub max_pending_input: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            max_pending_input: DEFAULT_MAX_PENDING_INPUT,
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the socket to connect; sends are queued.
    Connecting,
    /// A peer connected; waiting for the application to accept or reject
    /// it. Sends are queued; nothing is read or written.
    Accepting,
    /// Sending and receiving.
    Open,
    /// A local disconnect is writing what it must before closing.
    Disconnecting(DisconnectMode),
    /// The local disconnect completed; the write side should be shut down
    /// and input discarded until the peer closes.
    Draining,
    /// Nothing more happens; the socket can be closed.
    Closed,
}

/// The sans-IO state machine of one connection: outgoing queue, serializer,
/// bounded write buffer, incoming deserializer, disconnect modes and the
/// accounting of every message.
pub struct Endpoint<C: Converter> {
    connection: Connection,
    converter: Arc<C>,
    waker: Waker,
    state: State,
    outbox: Outbox<C>,
    inbox: Inbox<C>,
    /// Unwritten messages already set aside by a `FinishMessage` disconnect;
    /// handed back when it completes.
    set_aside: Vec<C::Message>,
    /// The peer is gone (closed, reset, broke the protocol). The connection
    /// ends once the messages already received are delivered.
    peer_gone: Option<DisconnectReason>,
    /// The peer closed its sending side while a local disconnect is writing.
    read_closed: bool,
    events: VecDeque<Event<C::Message>>,
}

impl<C: Converter> fmt::Debug for Endpoint<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("connection", &self.connection)
            .field("state", &self.state)
            .field("unflushed", &self.outbox.unflushed().len())
            .field("unwritten", &self.outbox.unwritten())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl<C: Converter> Endpoint<C> {
    /// A connection whose socket is still connecting: sends are queued until
    /// [`handle_connected`](Self::handle_connected).
    pub fn connecting(
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: EndpointConfig,
    ) -> Self {
        Self::new(State::Connecting, connection, converter, waker, config)
    }

    /// A connection a peer opened, waiting for [`accept`](Self::accept) or
    /// [`reject`](Self::reject). No `FinishConnect` event is produced for it.
    pub fn accepting(
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: EndpointConfig,
    ) -> Self {
        Self::new(State::Accepting, connection, converter, waker, config)
    }

    /// A connection whose socket is already connected and accepted.
    /// No `FinishConnect` event is produced for it.
    pub fn open(
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: EndpointConfig,
    ) -> Self {
        Self::new(State::Open, connection, converter, waker, config)
    }

    fn new(
        state: State,
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: EndpointConfig,
    ) -> Self {
        Self {
            connection,
            converter,
            waker,
            state,
            outbox: Outbox::new(config.write_buffer_size),
            inbox: Inbox::new(config.max_pending_input),
            set_aside: Vec::new(),
            peer_gone: None,
            read_closed: false,
            events: VecDeque::new(),
        }
    }

    // ----- getters -------------------------------------------------------

    /// The connection's id.
    pub fn connection(&self) -> Connection {
        self.connection
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether bytes from the socket are wanted now. False while a
    /// deserializer waits for a callback, so reading pauses.
    pub fn wants_read(&self) -> bool {
        match self.state {
            State::Open | State::Disconnecting(_) => {
                self.peer_gone.is_none() && !self.read_closed && !self.inbox.is_waiting()
            }
            State::Draining => true,
            State::Connecting | State::Accepting | State::Closed => false,
        }
    }

    /// Whether [`transmit`](Self::transmit) has bytes for the socket.
    pub fn wants_write(&self) -> bool {
        !self.transmit().is_empty()
    }

    /// The bytes to write next. Report how many the socket took with
    /// [`handle_written`](Self::handle_written).
    pub fn transmit(&self) -> &[u8] {
        match self.state {
            State::Open | State::Disconnecting(_) if self.peer_gone.is_none() => {
                self.outbox.unflushed()
            }
            _ => &[],
        }
    }

    /// How many messages were written in full so far.
    pub fn messages_written(&self) -> u64 {
        self.outbox.written()
    }

    /// How many messages are waiting to be written in full.
    pub fn messages_unwritten(&self) -> usize {
        self.outbox.unwritten()
    }

    // ----- outputs -------------------------------------------------------

    /// Whether [`poll_event`](Self::poll_event) has something.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, in the order things happened.
    pub fn poll_event(&mut self) -> Option<Event<C::Message>> {
        let event = self.events.pop_front();
        if event.is_none() {
            // Do not keep a queue sized for a burst that is over.
            send::trim_queue(&mut self.events);
        }
        event
    }

    /// Heap bytes the connection holds in buffers and queues (not counting
    /// the messages' own allocations), for tests of what it gives back.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.outbox.held_bytes()
            + self.inbox.held_bytes()
            + self.events.capacity() * std::mem::size_of::<Event<C::Message>>()
    }

    // ----- commands from the application --------------------------------

    /// Enqueues several messages, in order, asking serializers for bytes
    /// once for all of them. Same outcome as [`send`](Self::send) for each.
    pub fn send_all(&mut self, messages: impl IntoIterator<Item = C::Message>) {
        if matches!(
            self.state,
            State::Connecting | State::Accepting | State::Open
        ) {
            for message in messages {
                self.outbox.push(message);
            }
            self.fill();
        } else {
            for message in messages {
                self.send(message);
            }
        }
    }

    /// Enqueues a message. If the connection no longer takes messages, it
    /// comes back at once as a `RejectedMessage` event.
    pub fn send(&mut self, message: C::Message) {
        let reason = match self.state {
            State::Connecting | State::Accepting | State::Open => {
                self.outbox.push(message);
                self.fill();
                return;
            }
            State::Disconnecting(_) => RejectReason::Disconnecting,
            State::Draining | State::Closed => RejectReason::Closed,
        };
        self.events
            .push_back(Event::RejectedMessage(RejectedMessage {
                connection: self.connection,
                message,
                reason,
            }));
    }

    /// Starts a local disconnect in `mode`. A `FinishDisconnect` event
    /// follows when it completes; on a connection still connecting, the
    /// attempt is cancelled with an unsuccessful `FinishConnect` instead. A
    /// second call is a no-op.
    pub fn disconnect(&mut self, mode: DisconnectMode) {
        match self.state {
            State::Connecting => self.connect_failed(ConnectError::Cancelled),
            State::Accepting => self.finish_disconnect(None),
            State::Open => match mode {
                DisconnectMode::Now => self.finish_disconnect(None),
                DisconnectMode::FinishMessage => {
                    self.set_aside = self.outbox.keep_only_partial();
                    self.state = State::Disconnecting(mode);
                    self.progress();
                }
                DisconnectMode::FinishQueue => {
                    self.state = State::Disconnecting(mode);
                    self.progress();
                }
            },
            State::Disconnecting(_) | State::Draining | State::Closed => {}
        }
    }

    /// Ends the connection at once, whatever it is doing: a connect is
    /// cancelled, a connection not yet accepted is rejected, and an open or
    /// disconnecting one completes its disconnect now, handing back what is
    /// unwritten. Used by a `Now` shutdown, which must not wait on a peer.
    pub fn abort(&mut self) {
        match self.state {
            State::Connecting => self.connect_failed(ConnectError::Cancelled),
            State::Accepting => self.reject(),
            State::Open | State::Disconnecting(_) => self.finish_disconnect(None),
            State::Draining => self.close(),
            State::Closed => {}
        }
    }

    /// Accepts a connection a peer opened: reading and writing start.
    pub fn accept(&mut self) {
        if self.state == State::Accepting {
            self.state = State::Open;
            self.fill();
        }
    }

    /// Rejects a connection a peer opened: it closes, and any message sent
    /// to it meanwhile comes back as a `RejectedMessage`.
    pub fn reject(&mut self) {
        if self.state != State::Accepting {
            return;
        }
        let (_, queued) = self.outbox.take_all_unsent();
        for message in queued {
            self.events
                .push_back(Event::RejectedMessage(RejectedMessage {
                    connection: self.connection,
                    message,
                    reason: RejectReason::Closed,
                }));
        }
        self.close();
    }

    // ----- inputs from the socket ---------------------------------------

    /// The socket connected.
    pub fn handle_connected(&mut self) {
        if self.state != State::Connecting {
            return;
        }
        self.state = State::Open;
        self.events.push_back(Event::FinishConnect(FinishConnect {
            connection: self.connection,
            error: None,
            queued: Vec::new(),
        }));
        self.fill();
    }

    /// Connecting failed; every message sent meanwhile comes back in the
    /// `FinishConnect` event.
    pub fn handle_connect_failed(&mut self, error: ConnectError) {
        if self.state == State::Connecting {
            self.connect_failed(error);
        }
    }

    /// The socket took the first `n` bytes of [`transmit`](Self::transmit).
    pub fn handle_written(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.outbox.consume(n);
        self.fill();
    }

    /// Bytes arrived from the socket.
    pub fn handle_read(&mut self, data: &[u8]) {
        self.read(data, None, None::<&mut fn(Event<C::Message>)>);
    }

    /// Bytes arrived from the socket, as [`handle_read`](Self::handle_read),
    /// but the messages they complete go straight to `sink` as
    /// `MessageReceived` events when no event is queued before them. Any
    /// other event (a protocol error, say) is queued for
    /// [`poll_event`](Self::poll_event), after them.
    ///
    /// A read can complete thousands of small messages: the network loop
    /// passes them on without a stop in a queue per connection, which
    /// would also keep the size of the largest burst for the connection's
    /// lifetime.
    pub fn handle_read_into(&mut self, data: &[u8], sink: &mut impl FnMut(Event<C::Message>)) {
        self.read(data, None, Some(sink));
    }

    /// [`handle_read_into`](Self::handle_read_into) with the bytes as a
    /// shared chunk, which deserializers may slice messages from (see
    /// [`Converter::shares_input`]).
    pub fn handle_shared_read_into(
        &mut self,
        chunk: &Bytes,
        sink: &mut impl FnMut(Event<C::Message>),
    ) {
        self.read(chunk, Some(chunk), Some(sink));
    }

    fn read<F: FnMut(Event<C::Message>)>(
        &mut self,
        data: &[u8],
        shared: Option<&Bytes>,
        mut sink: Option<&mut F>,
    ) {
        match self.state {
            State::Open | State::Disconnecting(_) if self.peer_gone.is_none() => {
                let connection = self.connection;
                let events = &mut self.events;
                // Straight to the sink only if that keeps the order.
                let direct = events.is_empty();
                let result =
                    self.inbox
                        .feed(&self.converter, &self.waker, data, shared, &mut |m| {
                            let event = received(connection, m);
                            match &mut sink {
                                Some(sink) if direct => sink(event),
                                _ => events.push_back(event),
                            }
                        });
                if let Err(reason) = result {
                    self.fail(reason);
                }
            }
            // Draining discards input; otherwise there is nobody to give it to.
            _ => {}
        }
    }

    /// The peer closed its sending side (a read returned 0 bytes).
    ///
    /// On an open connection that ends it (`RemoteDisconnect`), after the
    /// messages already received. During a local `FinishMessage` or
    /// `FinishQueue` disconnect writing goes on: the peer may only have
    /// half-closed.
    pub fn handle_eof(&mut self) {
        match self.state {
            State::Open | State::Accepting => self.peer_gone(DisconnectReason::PeerClosed),
            State::Disconnecting(_) => self.read_closed = true,
            State::Draining => self.state = State::Closed,
            State::Connecting => self.connect_failed(ConnectError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed while connecting",
            ))),
            State::Closed => {}
        }
    }

    /// The socket failed (reset, broken pipe, …).
    pub fn handle_error(&mut self, error: io::Error) {
        match self.state {
            State::Open | State::Accepting | State::Disconnecting(_) => {
                self.peer_gone(DisconnectReason::Io(error))
            }
            State::Draining => self.state = State::Closed,
            State::Connecting => self.connect_failed(ConnectError::Io(error)),
            State::Closed => {}
        }
    }

    /// The waker handed to serializers and deserializers was woken. Spurious
    /// calls are harmless.
    pub fn handle_wake(&mut self) {
        if !matches!(self.state, State::Open | State::Disconnecting(_)) {
            return;
        }
        let connection = self.connection;
        let events = &mut self.events;
        let result = self.inbox.wake(&self.converter, &self.waker, &mut |m| {
            events.push_back(received(connection, m));
        });
        if let Err(reason) = result {
            return self.fail(reason);
        }
        if let Some(reason) = self.peer_gone.take() {
            // The deserializer that held the end back may be done now.
            return self.peer_gone(reason);
        }
        self.outbox.wake();
        self.fill();
    }

    // ----- internals ----------------------------------------------------

    /// Asks serializers for bytes, then checks whether the connection's
    /// life moves on.
    fn fill(&mut self) {
        if !matches!(self.state, State::Open | State::Disconnecting(_)) || self.peer_gone.is_some()
        {
            return;
        }
        let start_new = self.state != State::Disconnecting(DisconnectMode::FinishMessage);
        let result = self.outbox.fill(&self.converter, &self.waker, start_new);
        for (message, error) in self.outbox.take_failed() {
            self.events
                .push_back(Event::RejectedMessage(RejectedMessage {
                    connection: self.connection,
                    message,
                    reason: RejectReason::Serialize(error),
                }));
        }
        match result {
            Ok(()) => self.progress(),
            Err(reason) => self.fail(reason),
        }
    }

    /// Moves the connection on once what it waits for has happened.
    fn progress(&mut self) {
        if let State::Disconnecting(_) = self.state
            && self.peer_gone.is_none()
            && self.outbox.is_idle()
        {
            // Everything is written: the local disconnect is complete.
            let queued = std::mem::take(&mut self.set_aside);
            self.emit_finish_disconnect(None, queued, None);
            self.state = State::Draining;
        }
    }

    /// The peer is gone; end the connection once the messages already
    /// received are delivered (a deserializer may be waiting on a callback).
    fn peer_gone(&mut self, reason: DisconnectReason) {
        if self.peer_gone.is_none() {
            self.peer_gone = Some(reason);
        }
        if !self.inbox.is_waiting() {
            let mut reason = self.peer_gone.take().expect("set above");
            if matches!(reason, DisconnectReason::PeerClosed) && self.inbox.mid_message() {
                reason = crate::error::ProtocolError::UnexpectedEof.into();
            }
            self.fail(reason);
        }
    }

    /// Ends the connection for `reason`, handing back every unwritten
    /// message.
    fn fail(&mut self, reason: DisconnectReason) {
        match self.state {
            State::Open | State::Accepting => {
                let (incomplete, queued) = self.outbox.take_all_unsent();
                self.events
                    .push_back(Event::RemoteDisconnect(RemoteDisconnect {
                        connection: self.connection,
                        incomplete,
                        queued,
                        reason,
                    }));
                self.close();
            }
            State::Disconnecting(_) => self.finish_disconnect(Some(reason)),
            State::Connecting | State::Draining | State::Closed => self.close(),
        }
    }

    /// Completes a local disconnect now, handing back what is unwritten.
    fn finish_disconnect(&mut self, error: Option<DisconnectReason>) {
        let (incomplete, rest) = self.outbox.take_all_unsent();
        let mut queued = std::mem::take(&mut self.set_aside);
        queued.extend(rest);
        self.emit_finish_disconnect(incomplete, queued, error);
        self.close();
    }

    fn emit_finish_disconnect(
        &mut self,
        incomplete: Option<C::Message>,
        queued: Vec<C::Message>,
        error: Option<DisconnectReason>,
    ) {
        self.events
            .push_back(Event::FinishDisconnect(FinishDisconnect {
                connection: self.connection,
                incomplete,
                queued,
                error,
            }));
    }

    fn connect_failed(&mut self, error: ConnectError) {
        let (_, queued) = self.outbox.take_all_unsent();
        self.events.push_back(Event::FinishConnect(FinishConnect {
            connection: self.connection,
            error: Some(error),
            queued,
        }));
        self.close();
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.peer_gone = None;
        self.inbox = Inbox::new(0);
    }
}

fn received<M>(connection: Connection, message: M) -> Event<M> {
    Event::MessageReceived(MessageReceived {
        connection,
        message,
    })
}

#[doc(hidden)]
pub mod fuzzing {
    //! The entry point for the `endpoint` fuzz target; not a stable API.

    use std::io;
    use std::sync::Arc;
    use std::task::Waker;

    use super::{Endpoint, EndpointConfig, State};
    use crate::converters::StringConverter;
    use crate::error::ConnectError;
    use crate::event::{Connection, Event};
    use crate::mode::DisconnectMode;

    /// Interprets `data` as socket events, sends and incoming bytes, then
    /// ends the connection and checks that every message sent was written
    /// in full or handed back exactly once, with exactly one final event.
    pub fn drive(data: &[u8]) {
        let Some((&first, mut data)) = data.split_first() else {
            return;
        };
        let config = EndpointConfig {
            write_buffer_size: usize::from(first % 32) + 1,
            max_pending_input: 64,
        };
        let converter = Arc::new(StringConverter::new().with_max_message_size(32));
        let waker = Waker::noop().clone();
        let id = Connection(0);
        let mut ep = if first & 0x80 == 0 {
            Endpoint::open(id, converter, waker, config)
        } else {
            Endpoint::connecting(id, converter, waker, config)
        };
        let mut sent = 0usize;
        let mut returned = 0usize;
        let mut finals = 0usize;
        let mut drain = |ep: &mut Endpoint<StringConverter>| {
            while let Some(e) = ep.poll_event() {
                finals += usize::from(e.is_final());
                returned += match e {
                    Event::FinishConnect(f) => f.queued.len(),
                    Event::FinishDisconnect(f) => {
                        f.queued.len() + usize::from(f.incomplete.is_some())
                    }
                    Event::RemoteDisconnect(r) => {
                        r.queued.len() + usize::from(r.incomplete.is_some())
                    }
                    Event::RejectedMessage(_) => 1,
                    Event::MessageReceived(_) | Event::RemoteConnect(_) => 0,
                };
            }
        };
        while let Some((&op, rest)) = data.split_first() {
            data = rest;
            let arg = usize::from(op >> 4);
            match op % 10 {
                0 | 1 => {
                    ep.send("m".repeat(arg));
                    sent += 1;
                }
                2 | 3 => {
                    let n = ep.transmit().len().min(arg * 3);
                    ep.handle_written(n);
                }
                4 => {
                    let n = arg.min(data.len());
                    if arg % 2 == 0 {
                        ep.handle_read(&data[..n]);
                    } else {
                        ep.handle_read_into(&data[..n], &mut |e| {
                            assert!(
                                matches!(e, Event::MessageReceived(_)),
                                "only messages go to the sink, not {e:?}"
                            )
                        });
                    }
                    data = &data[n..];
                }
                5 => ep.handle_wake(),
                6 => ep.disconnect(match arg % 3 {
                    0 => DisconnectMode::Now,
                    1 => DisconnectMode::FinishMessage,
                    _ => DisconnectMode::FinishQueue,
                }),
                7 => ep.handle_eof(),
                8 => ep.handle_connected(),
                _ => ep.handle_connect_failed(ConnectError::Cancelled),
            }
            assert!(ep.transmit().len() <= config.write_buffer_size);
            drain(&mut ep);
        }
        ep.handle_error(io::ErrorKind::ConnectionReset.into());
        drain(&mut ep);
        assert_eq!(ep.state(), State::Closed);
        assert_eq!(finals, 1);
        assert_eq!(ep.messages_written() as usize + returned, sent);
    }
}
