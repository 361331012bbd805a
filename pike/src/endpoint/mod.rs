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
//! * inputs from the socket and the clock: [`handle_connected`](Endpoint::handle_connected),
//!   [`handle_connect_failed`](Endpoint::handle_connect_failed),
//!   [`handle_written`](Endpoint::handle_written), [`handle_read`](Endpoint::handle_read),
//!   [`handle_eof`](Endpoint::handle_eof), [`handle_error`](Endpoint::handle_error),
//!   [`handle_wake`](Endpoint::handle_wake), [`handle_timeout`](Endpoint::handle_timeout);
//! * commands from the application: [`send`](Endpoint::send),
//!   [`try_send`](Endpoint::try_send), [`disconnect`](Endpoint::disconnect);
//! * outputs: [`poll_event`](Endpoint::poll_event), [`poll_timeout`](Endpoint::poll_timeout).
//!
//! Time comes in as `now` arguments, never from a clock: the endpoint says
//! when it next needs [`handle_timeout`](Endpoint::handle_timeout)
//! ([`poll_timeout`](Endpoint::poll_timeout)), and tests drive its timeouts
//! with a made-up clock.
//!
//! # Bounds
//!
//! * The write buffer holds at most `write_buffer_size` bytes.
//! * The unsent queue: past `send_high_water` bytes of messages not yet
//!   written, [`try_send`](Endpoint::try_send) hands messages back and
//!   reading pauses ([`wants_read`](Endpoint::wants_read) is false) until
//!   the queue is down to half of it, so a peer that sends requests and
//!   never reads the replies stops being read. Past `send_queue_cap`,
//!   [`send`](Endpoint::send) hands messages back as rejected
//!   ([`RejectReason::QueueFull`]).
//! * The connector's share: its driver tells it how much unsent data the
//!   whole connector may still take and whether the connector's budget is
//!   used up ([`set_room`](Endpoint::set_room)); `send` hands messages back
//!   past it, and a queue that holds anything is full while the budget is.
//! * Input: a deserializer may leave at most `max_pending_input` bytes
//!   unconsumed; a taker that wants no more messages for now holds the rest
//!   of a read back undecoded ([`input_bytes`](Endpoint::input_bytes)
//!   counts both, and the message being received).
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
//! was emitted): the endpoint asks for the transport's write side to be
//! shut down ([`wants_shutdown_write`](Endpoint::wants_shutdown_write)), so
//! the peer reads every byte and then EOF, and reads and discards whatever
//! the peer still sends until it closes, or until the linger time is up
//! (`linger`, counted from [`handle_write_shut`](Endpoint::handle_write_shut)).
//! Closing a socket with unread input would send a reset instead, which can
//! destroy data still in flight.
//!
//! # Call order
//!
//! The driver of an endpoint (the reactor, or a test) repeats, whenever
//! something happened (readiness, a command, a timer):
//!
//! 1. feed what happened: `handle_connected`/`handle_connect_failed`,
//!    `handle_read*` (only while [`wants_read`](Endpoint::wants_read) or
//!    [`has_backlog`](Endpoint::has_backlog)), `handle_eof`,
//!    `handle_error`, `handle_wake`, `handle_timeout`, and the
//!    application's `send`/`disconnect`/`accept`/`reject`/`shutdown`;
//! 2. write [`transmit`](Endpoint::transmit) while
//!    [`wants_write`](Endpoint::wants_write), reporting each write with
//!    [`handle_written`](Endpoint::handle_written), if
//!    [`take_write_due`](Endpoint::take_write_due) says the bytes are due
//!    (a driver that leaves sends for a later write says so with
//!    [`coalesce`](Endpoint::coalesce));
//! 3. shut the write side down if
//!    [`wants_shutdown_write`](Endpoint::wants_shutdown_write), then
//!    [`handle_write_shut`](Endpoint::handle_write_shut);
//! 4. take every [`poll_event`](Endpoint::poll_event);
//! 5. once [`state`](Endpoint::state) is `Closed`, close the transport;
//!    otherwise call [`handle_timeout`](Endpoint::handle_timeout) at
//!    [`poll_timeout`](Endpoint::poll_timeout) at the latest.

mod recv;
mod send;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::converter::{Converter, checked_send_size};
use crate::error::{ConnectError, DisconnectReason, PeerFault, ProtocolError, RejectReason};
use crate::event::{
    Connection, Event, FinishConnect, FinishDisconnect, LinkDown, LinkUp, MessageReceived,
    RejectedMessage, RemoteDisconnect,
};
use crate::mode::{DisconnectMode, ShutdownMode};
use crate::reconnect::{Jitter, Reconnect};
use crate::stats::{ConnectionStats, Ending, HandedBack, Traffic};

use recv::Inbox;
use send::Outbox;

/// The default bound of a connection's write buffer: 256 KiB.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 256 * 1024;
/// The default bound on input a deserializer leaves unconsumed: 1 MiB.
pub const DEFAULT_MAX_PENDING_INPUT: usize = 1024 * 1024;
/// The default high-water mark of a connection's unsent queue: 1 MiB of
/// messages not yet written.
pub const DEFAULT_SEND_HIGH_WATER: usize = 1024 * 1024;
/// The default hard cap of a connection's unsent queue: 16 MiB.
pub const DEFAULT_SEND_QUEUE_CAP: usize = 16 * 1024 * 1024;
/// The largest message a connection whose queue is empty may still take
/// when its connector's unsent data is at the budget: 4 KiB.
pub const SMALL_SEND: usize = 4 * 1024;
/// Bytes waiting to be written past which a write left for later is due
/// at once: a full lot, which a stream's sender writes itself (see
/// [`Endpoint::coalesce`]).
pub const WRITE_LOT: usize = 16 * 1024;
/// How long a streaming connection's writes wait for more to go with them
/// (see [`Endpoint::coalesce`]).
pub const STREAM_TAIL: Duration = Duration::from_millis(1);
/// A send closer than this after the last write (on its connection, or
/// by its thread on any) comes in quick succession: it is left for later
/// ([`Endpoint::coalesce`]), to be written with the sends that follow. A
/// send after a longer pause is written at once.
pub const COALESCE: Duration = Duration::from_micros(10);
/// What a write window must carry for its connection to count as
/// streaming.
const STREAM_MARK: usize = 2 * 1024;

/// The default time a transport's handshake (TLS) may take: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a connection whose local disconnect completed waits for
/// its peer to close: 5 s.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);

/// Per-connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// Bound of the write buffer, in bytes. Serializers are only asked for
    /// bytes when it has room. Default [`DEFAULT_WRITE_BUFFER_SIZE`].
    pub write_buffer_size: usize,
    /// Bound on received bytes held while a deserializer waits for a
    /// callback or leaves input unconsumed. Past it the connection closes
    /// with [`ProtocolError::Stalled`].
    /// Default [`DEFAULT_MAX_PENDING_INPUT`].
    pub max_pending_input: usize,
    /// High-water mark of the unsent queue, in bytes of messages (by
    /// [`Converter::message_size`]): past it `try_send` hands messages
    /// back and reading pauses, until the queue is down to half of it.
    /// Default [`DEFAULT_SEND_HIGH_WATER`].
    pub send_high_water: usize,
    /// Hard cap of the unsent queue: a `send` that would take it past this
    /// is handed back as rejected ([`RejectReason::QueueFull`]). A message
    /// sent to an empty queue is always taken, whatever its size. Default
    /// [`DEFAULT_SEND_QUEUE_CAP`].
    pub send_queue_cap: usize,
    /// How long connecting may take, name resolution included, before it
    /// fails with [`ConnectError::TimedOut`]. Default: no limit (the
    /// operating system's own, about two minutes for TCP).
    pub connect_timeout: Option<Duration>,
    /// How long an open connection may go without receiving a byte before
    /// it ends with [`PeerFault::IdleTimeout`](PeerFault::IdleTimeout). Default: no limit.
    pub idle_timeout: Option<Duration>,
    /// How long a message may take from its first byte to its last before
    /// the connection ends with [`PeerFault::MessageTimeout`](PeerFault::MessageTimeout) (the
    /// defence against peers that trickle a message, "slowloris"). Default:
    /// no limit.
    pub message_timeout: Option<Duration>,
    /// How long a connection whose local disconnect completed waits, its
    /// write side shut down, for the peer to close, reading and discarding
    /// its input, before it closes anyway. Default [`DEFAULT_LINGER`].
    pub linger: Duration,
    /// How long a transport's own handshake (TLS) may take, from the
    /// moment the socket is connected or accepted, before the connection
    /// ends with [`TlsErrorKind::HandshakeTimedOut`](crate::TlsErrorKind::HandshakeTimedOut).
    /// Default [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Option<Duration>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            max_pending_input: DEFAULT_MAX_PENDING_INPUT,
            send_high_water: DEFAULT_SEND_HIGH_WATER,
            send_queue_cap: DEFAULT_SEND_QUEUE_CAP,
            connect_timeout: None,
            idle_timeout: None,
            message_timeout: None,
            linger: DEFAULT_LINGER,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
        }
    }
}

/// What a connector has left for sends, over all of its connections: the
/// unsent side of its memory budget (see [`Endpoint::set_room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedRoom {
    /// The connector's whole memory budget is used up.
    pub reached: bool,
    /// How many more bytes of unsent data the connector takes.
    pub unsent: usize,
}

impl SharedRoom {
    /// No limit beyond the connection's own.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub const UNLIMITED: SharedRoom = SharedRoom {
        reached: false,
        unsent: usize::MAX,
    };

    /// A room of `unsent` bytes, the budget used up or not.
    pub fn new(reached: bool, unsent: usize) -> Self {
        Self { reached, unsent }
    }
}

/// The endpoint's clocks: deadlines derived from the `now` it is given.
///
/// The idle and message timers measure the peer, so they do not run while
/// the connection itself holds input back (the application is behind, the
/// unsent queue is over its mark, a deserializer waits for a callback):
/// a timer that expires then is pushed a full period on.
#[derive(Debug, Clone, Copy, Default)]
struct Timers {
    /// Connecting: must be done by then. Accepted or open while the
    /// transport's handshake runs ([`handshake`](Self::handshake)): the
    /// handshake must be done by then. Draining, once the write side was
    /// shut: close by then (`None`: a linger too long for an `Instant`,
    /// which waits for the peer). One field for all three, which never
    /// run at once.
    deadline: Option<Instant>,
    /// When the idle period started: the last byte received, or the
    /// moment the connection opened.
    last_input: Option<Instant>,
    /// When the message now being received began.
    message_start: Option<Instant>,
    /// Draining: the write side was shut down.
    write_shut: bool,
    /// The transport's handshake runs, and `deadline` is its limit.
    handshake: bool,
    /// The transport holds part of a record the peer has not finished
    /// sending ([`Endpoint::handle_wire_input`]): a message is under way
    /// on the wire.
    mid_record: bool,
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

/// What an endpoint tells its driver: the application's [`Event`]s
/// except `RemoteConnect`, which only the reactor makes (it holds the
/// handle that accepts the connection). The reactor turns each into an
/// [`Event`] as it passes it on (`Event::from`).
#[derive(Debug)]
pub enum EndpointEvent<M> {
    /// See [`Event::FinishConnect`].
    FinishConnect(FinishConnect<M>),
    /// See [`Event::FinishDisconnect`].
    FinishDisconnect(FinishDisconnect<M>),
    /// See [`Event::RemoteDisconnect`].
    RemoteDisconnect(RemoteDisconnect<M>),
    /// See [`Event::MessageReceived`].
    MessageReceived(MessageReceived<M>),
    /// See [`Event::RejectedMessage`].
    RejectedMessage(RejectedMessage<M>),
    /// See [`Event::LinkDown`].
    LinkDown(LinkDown),
    /// See [`Event::LinkUp`].
    LinkUp(LinkUp),
}

impl<M> EndpointEvent<M> {
    /// Whether this is the connection's last event (nothing follows it).
    pub fn is_final(&self) -> bool {
        match self {
            EndpointEvent::FinishConnect(e) => !e.success(),
            EndpointEvent::FinishDisconnect(_) | EndpointEvent::RemoteDisconnect(_) => true,
            EndpointEvent::MessageReceived(_)
            | EndpointEvent::RejectedMessage(_)
            | EndpointEvent::LinkDown(_)
            | EndpointEvent::LinkUp(_) => false,
        }
    }
}

impl<M> From<EndpointEvent<M>> for Event<M> {
    fn from(event: EndpointEvent<M>) -> Self {
        match event {
            EndpointEvent::FinishConnect(e) => Event::FinishConnect(e),
            EndpointEvent::FinishDisconnect(e) => Event::FinishDisconnect(e),
            EndpointEvent::RemoteDisconnect(e) => Event::RemoteDisconnect(e),
            EndpointEvent::MessageReceived(e) => Event::MessageReceived(e),
            EndpointEvent::RejectedMessage(e) => Event::RejectedMessage(e),
            EndpointEvent::LinkDown(e) => Event::LinkDown(e),
            EndpointEvent::LinkUp(e) => Event::LinkUp(e),
        }
    }
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
    /// Boxed: rare, and an idle connection keeps its size.
    peer_gone: Option<Box<DisconnectReason>>,
    /// The peer closed its sending side while a local disconnect is writing.
    read_closed: bool,
    events: VecDeque<EndpointEvent<C::Message>>,
    /// Shared by every endpoint of a connector.
    config: Arc<EndpointConfig>,
    timers: Timers,
    /// The reactor holds input back (the memory budget is reached).
    input_held: bool,
    /// The unsent queue went past its high-water mark and is not yet down
    /// to half of it: reading pauses.
    send_backlogged: bool,
    /// What the connector has left for sends, over all its connections
    /// (see [`set_room`](Self::set_room)): bytes of unsent data, and
    /// whether its whole budget is used up. (Two fields, not a
    /// [`SharedRoom`]: the flag fits beside the others.)
    room_unsent: usize,
    room_reached: bool,
    /// What [`stats`](Self::stats) reports.
    counters: Counters,
    /// Writes left for later (see [`coalesce`](Self::coalesce)): a
    /// window is open, and what waits is due then (or once a full lot
    /// waits).
    write_due: Option<Instant>,
    /// Until when sends come in quick succession: bytes went to the
    /// transport less than [`COALESCE`] before.
    coalesce_until: Option<Instant>,
    /// The last window carried a stream's worth: the next one waits
    /// [`STREAM_TAIL`].
    streaming: bool,
    /// A full lot was written while the window was open.
    lot_written: bool,
    /// How a failed connect is tried again, if it is (see
    /// [`set_reconnect`](Self::set_reconnect)). Boxed: most connections
    /// have none, and an idle connection keeps its size.
    redial: Option<Box<Redial>>,
}

/// A connection's reconnect policy and where it is in it.
#[derive(Debug)]
struct Redial {
    policy: Reconnect,
    jitter: Jitter,
    /// When it gives up (the policy's limit, from the first attempt or
    /// from the link's loss; `None` with `limit_pending`: from the next
    /// `now` given).
    give_up_at: Option<Instant>,
    limit_pending: bool,
    /// A link was up and broke: this is a reconnect, not a first connect
    /// (its success is a `LinkUp`, its end a `RemoteDisconnect` or, if
    /// cancelled, a `FinishDisconnect`).
    relinking: bool,
    /// Messages written in full when the present link came up.
    written_at_link: u64,
    /// Failures in a row.
    failures: u32,
    /// The last failure, reported if it gives up.
    last_error: Option<ConnectError>,
    /// An attempt failed: wait this long, from the next `now` given.
    wait: Option<Duration>,
    /// Dial again then.
    at: Option<Instant>,
}

/// The endpoint's counters (see [`ConnectionStats`]).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    bytes_in: u64,
    messages_in: u64,
    bytes_out: u64,
    handed_back: HandedBack,
    protocol_errors: u64,
    ending: Option<Ending>,
    /// (A `u32` beside `ending`, in what would be padding.)
    connect_failures: u32,
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
    /// A connection whose socket is still connecting (from `now`, for the
    /// connect timeout): sends are queued until
    /// [`handle_connected`](Self::handle_connected).
    pub fn connecting(
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: impl Into<Arc<EndpointConfig>>,
        now: Instant,
    ) -> Self {
        let mut ep = Self::new(
            State::Connecting,
            connection,
            converter,
            waker,
            config.into(),
        );
        ep.timers.deadline = ep.config.connect_timeout.and_then(|t| now.checked_add(t));
        ep
    }

    /// A connection a peer opened, waiting for [`accept`](Self::accept) or
    /// [`reject`](Self::reject). No `FinishConnect` event is produced for it.
    pub fn accepting(
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: impl Into<Arc<EndpointConfig>>,
    ) -> Self {
        Self::new(
            State::Accepting,
            connection,
            converter,
            waker,
            config.into(),
        )
    }

    /// A connection whose socket is already connected and accepted (at
    /// `now`, when its idle timer starts). No `FinishConnect` event is
    /// produced for it.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn open(
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: impl Into<Arc<EndpointConfig>>,
        now: Instant,
    ) -> Self {
        let mut ep = Self::new(State::Open, connection, converter, waker, config.into());
        ep.timers.last_input = Some(now);
        ep
    }

    fn new(
        state: State,
        connection: Connection,
        converter: Arc<C>,
        waker: Waker,
        config: Arc<EndpointConfig>,
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
            config,
            timers: Timers::default(),
            input_held: false,
            send_backlogged: false,
            room_unsent: usize::MAX,
            room_reached: false,
            counters: Counters::default(),
            write_due: None,
            coalesce_until: None,
            streaming: false,
            lot_written: false,
            redial: None,
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
    /// deserializer waits for a callback, while input is held back
    /// undecoded ([`has_backlog`](Self::has_backlog)), and while the unsent
    /// queue is over its high-water mark, so reading pauses.
    pub fn wants_read(&self) -> bool {
        match self.state {
            State::Open | State::Disconnecting(_) => {
                self.peer_gone.is_none()
                    && !self.read_closed
                    && !self.inbox.is_waiting()
                    && !self.inbox.is_held()
                    && !self.send_backlogged
                    && !self.input_held
            }
            State::Draining => true,
            State::Connecting | State::Accepting | State::Closed => false,
        }
    }

    /// Whether what it reads is discarded (`Draining`: the local disconnect
    /// completed, the peer's last bytes are read to its end of stream):
    /// then reading is not bounded by the memory budget, since nothing it
    /// reads is kept.
    pub fn discards_input(&self) -> bool {
        self.state == State::Draining
    }

    /// Whether input read earlier waits undecoded, because the taker of a
    /// read's messages wanted no more (see
    /// [`handle_read_into`](Self::handle_read_into)). Decode it with
    /// [`handle_backlog_into`](Self::handle_backlog_into).
    pub fn has_backlog(&self) -> bool {
        matches!(self.state, State::Open | State::Disconnecting(_))
            && self.inbox.is_held()
            && !self.input_held
    }

    /// Bytes of input the connection holds: the message being received so
    /// far, what a deserializer left unconsumed, and input held back
    /// undecoded. Bounded by the converter's maximum message size plus
    /// `max_pending_input` plus one read.
    pub fn input_bytes(&self) -> usize {
        self.inbox.input_bytes()
    }

    /// The memory of the messages not yet written in full, by
    /// [`Converter::message_size`].
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes()
    }

    /// Bytes the connection holds for sending: its unsent messages (by
    /// [`Converter::message_size`]), the serialized bytes waiting in its
    /// write buffer, and the record of each message in it. The connector
    /// counts them in its memory budget.
    pub fn outgoing_bytes(&self) -> usize {
        self.outbox.bytes() + self.outbox.overhead()
    }

    /// Whether the unsent queue is at or under its low-water mark (half the
    /// high-water mark), and empty while the connector's budget is used up
    /// ([`set_room`](Self::set_room)): a sender waiting for room may go on.
    pub fn has_room(&self) -> bool {
        let queued = self.outbox.bytes();
        queued <= self.config.send_high_water / 2 && !(self.room_reached && queued > 0)
    }

    /// Whether a sender waiting for room must go on waiting: the queue is
    /// above its low-water mark and the connection still takes messages.
    pub fn must_wait_for_room(&self) -> bool {
        matches!(
            self.state,
            State::Connecting | State::Accepting | State::Open
        ) && !self.has_room()
    }

    /// Whether `try_send` would hand a message back: the unsent queue is
    /// over its high-water mark, or holds anything while the connector's
    /// budget is used up ([`set_room`](Self::set_room)).
    pub fn is_full(&self) -> bool {
        self.over_high_water() || (self.room_reached && self.outbox.bytes() > 0)
    }

    fn over_high_water(&self) -> bool {
        self.outbox.bytes() >= self.config.send_high_water.max(1)
    }

    /// Whether the transport's write side should be shut down now: the
    /// local disconnect completed (every byte it had to write is written),
    /// so the peer reads them all and then end of stream. Report it done
    /// with [`handle_write_shut`](Self::handle_write_shut).
    pub fn wants_shutdown_write(&self) -> bool {
        self.state == State::Draining && !self.timers.write_shut
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
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn messages_written(&self) -> u64 {
        self.outbox.written()
    }

    /// How many messages are waiting to be written in full.
    pub fn messages_unwritten(&self) -> usize {
        self.outbox.unwritten()
    }

    /// The connection's counters and gauges.
    pub fn stats(&self) -> ConnectionStats {
        let c = &self.counters;
        ConnectionStats {
            traffic: Traffic {
                messages_in: c.messages_in,
                bytes_in: c.bytes_in,
                messages_out: self.outbox.written(),
                bytes_out: c.bytes_out,
            },
            handed_back: c.handed_back,
            protocol_errors: c.protocol_errors,
            queued_messages: self.outbox.unwritten() as u64,
            queued_bytes: self.outbox.bytes() as u64,
            ending: c.ending,
            connect_failures: u64::from(c.connect_failures),
        }
    }

    // ----- outputs -------------------------------------------------------

    /// Whether [`poll_event`](Self::poll_event) has something.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, in the order things happened.
    pub fn poll_event(&mut self) -> Option<EndpointEvent<C::Message>> {
        let event = self.events.pop_front();
        if event.is_none() {
            // Do not keep a queue sized for a burst that is over.
            crate::memory::trim_queue(&mut self.events);
        }
        event
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due, if a
    /// timeout is running, or a write left for later is due (see
    /// [`coalesce`](Self::coalesce)).
    pub fn poll_timeout(&self) -> Option<Instant> {
        // (Only while it writes: a window left open as it closed is moot.)
        let writing = matches!(self.state, State::Open | State::Disconnecting(_));
        let flush = self.write_due.filter(|_| writing);
        match (self.next_timeout(), flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the soonest timeout that ends the connection is due.
    fn next_timeout(&self) -> Option<Instant> {
        let c = &self.config;
        let t = &self.timers;
        let handshake = t.deadline.filter(|_| t.handshake);
        match self.state {
            State::Connecting => t.deadline.or(self.redial.as_ref().and_then(|r| r.at)),
            State::Accepting => handshake,
            State::Open | State::Disconnecting(_) if self.peer_gone.is_none() => {
                let idle = c.idle_timeout.zip(t.last_input).map(|(d, at)| at + d);
                let message = c.message_timeout.zip(t.message_start).map(|(d, at)| at + d);
                idle.into_iter().chain(message).chain(handshake).min()
            }
            State::Draining if t.write_shut => t.deadline,
            _ => None,
        }
    }

    /// Heap bytes the connection holds in buffers and queues (not counting
    /// the messages' own allocations), for tests of what it gives back.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.outbox.held_bytes()
            + self.inbox.held_bytes()
            + self.events.capacity() * std::mem::size_of::<EndpointEvent<C::Message>>()
    }

    // ----- commands from the application --------------------------------

    /// Enqueues several messages, in order, asking serializers for bytes
    /// once for all of them. Same outcome as [`send`](Self::send) for each,
    /// except that once one is rejected for the queue's cap, so are all
    /// that follow it (so that what is sent stays in order).
    pub fn send_all(&mut self, messages: impl IntoIterator<Item = C::Message>) {
        let mut full = false;
        for message in messages {
            let result = if full {
                Err((message, Some(RejectReason::QueueFull)))
            } else {
                self.queue(message, false)
            };
            if let Err((message, reason)) = result {
                let reason = reason.expect("only try_send refuses");
                full |= matches!(reason, RejectReason::QueueFull);
                self.reject_message(message, reason);
            }
        }
        self.fill();
    }

    /// Enqueues a message. It comes back at once as a `RejectedMessage`
    /// event if the connection no longer takes messages, or if the unsent
    /// queue would go past its cap ([`RejectReason::QueueFull`]).
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn send(&mut self, message: C::Message) {
        if let Err((message, reason)) = self.queue(message, false) {
            self.reject_message(message, reason.expect("only try_send refuses"));
        }
        self.fill();
    }

    /// Enqueues a message unless the unsent queue is over its high-water
    /// mark ([`is_full`](Self::is_full)) or the connector has no room left
    /// for it ([`set_room`](Self::set_room)), in which case it comes
    /// straight back. Otherwise as [`send`](Self::send).
    pub fn try_send(&mut self, message: C::Message) -> Result<(), C::Message> {
        match self.queue(message, true) {
            Ok(()) => {}
            Err((message, None)) => return Err(message),
            Err((message, Some(reason))) => self.reject_message(message, reason),
        }
        self.fill();
        Ok(())
    }

    /// [`try_send`](Self::try_send) of the messages at the front of
    /// `messages`, in order, until one is refused (it stays at the front,
    /// with those after it) or all are queued; serialized into the write
    /// buffer once, at the end.
    pub fn try_send_from(&mut self, messages: &mut std::collections::VecDeque<C::Message>) {
        while let Some(message) = messages.pop_front() {
            match self.queue(message, true) {
                Ok(()) => {}
                Err((message, None)) => {
                    messages.push_front(message);
                    break;
                }
                Err((message, Some(reason))) => self.reject_message(message, reason),
            }
        }
        self.fill();
    }

    /// Queues `message`, or hands it back with the reason to reject it
    /// for, or with none if `refuse_if_full` and the queue is full.
    #[allow(clippy::type_complexity)]
    fn queue(
        &mut self,
        message: C::Message,
        refuse_if_full: bool,
    ) -> Result<(), (C::Message, Option<RejectReason>)> {
        let reason = match self.state {
            State::Connecting | State::Accepting | State::Open => {
                if refuse_if_full && self.is_full() {
                    return Err((message, None));
                }
                let size = match checked_send_size(&*self.converter, &message) {
                    Ok(size) => size,
                    // Refused by its converter (too large, say), or the
                    // converter's bug: confined to this message.
                    Err(error) => return Err((message, Some(RejectReason::Serialize(error)))),
                };
                let queued = self.outbox.bytes();
                let over_cap =
                    queued > 0 && queued.saturating_add(size) > self.config.send_queue_cap;
                // The connector's unsent data across connections stays
                // within its budget: one message to an empty queue still
                // goes while any room is left, whatever its size, and a
                // small one even when none is (as a connection that holds
                // nothing may still read a little).
                let room = self.room_unsent;
                let over_budget = size > room && !(queued == 0 && (room > 0 || size <= SMALL_SEND));
                if refuse_if_full && over_budget {
                    return Err((message, None));
                }
                if over_cap || over_budget {
                    RejectReason::QueueFull
                } else {
                    self.outbox.push(message, size);
                    // A batch sees the room its own messages took.
                    self.room_unsent = room.saturating_sub(size);
                    if self.over_high_water() {
                        self.send_backlogged = true;
                    }
                    return Ok(());
                }
            }
            State::Disconnecting(_) => RejectReason::Disconnecting,
            State::Draining | State::Closed => RejectReason::Closed,
        };
        Err((message, Some(reason)))
    }

    fn reject_message(&mut self, message: C::Message, reason: RejectReason) {
        self.counters.handed_back.count_rejected(&reason);
        self.events
            .push_back(EndpointEvent::RejectedMessage(RejectedMessage {
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

    /// The connector shuts down in `mode`: a connect is cancelled, a
    /// connection not yet accepted is rejected, an open one disconnects in
    /// the matching [`DisconnectMode`], and with [`ShutdownMode::Now`] one
    /// already disconnecting or draining ends at once (as by
    /// [`abort`](Self::abort)).
    pub fn shutdown(&mut self, mode: ShutdownMode) {
        match self.state {
            State::Connecting => self.connect_failed(ConnectError::Cancelled),
            State::Accepting => self.reject(),
            State::Open => self.disconnect(mode.into()),
            State::Disconnecting(_) | State::Draining if mode == ShutdownMode::Now => self.abort(),
            State::Disconnecting(_) | State::Draining | State::Closed => {}
        }
    }

    /// Accepts a connection a peer opened: reading and writing start, and
    /// its idle timer starts at `now`.
    pub fn accept(&mut self, now: Instant) {
        if self.state == State::Accepting {
            self.state = State::Open;
            self.timers.last_input = Some(now);
            self.fill();
        }
    }

    /// Whether the reactor holds this connection's input back (the memory
    /// budget is reached): nothing is read or decoded
    /// ([`wants_read`](Self::wants_read) and
    /// [`has_backlog`](Self::has_backlog) are false, except while
    /// draining), and its idle and message timers do not run.
    pub fn hold_input(&mut self, held: bool) {
        self.input_held = held;
    }

    /// Tells the endpoint what its connector has left for sends, over all
    /// of its connections, before the application's next sends and room
    /// checks: past it, [`send`](Self::send) hands messages back as
    /// [`RejectReason::QueueFull`], and while the budget is used up a queue
    /// that holds anything is full for [`try_send`](Self::try_send) and
    /// has no room for a waiting sender. Default: no limit.
    pub fn set_room(&mut self, room: SharedRoom) {
        self.room_unsent = room.unsent;
        self.room_reached = room.reached;
    }

    /// Rejects a connection a peer opened: it closes, and any message sent
    /// to it meanwhile comes back as a `RejectedMessage`.
    pub fn reject(&mut self) {
        if self.state != State::Accepting {
            return;
        }
        let (_, queued) = self.outbox.take_all_unsent();
        for message in queued {
            self.reject_message(message, RejectReason::Closed);
        }
        self.close();
    }

    // ----- inputs from the socket ---------------------------------------

    /// The socket connected, at `now` (when its idle timer starts).
    pub fn handle_connected(&mut self, now: Instant) {
        if self.state != State::Connecting {
            return;
        }
        self.state = State::Open;
        self.timers.last_input = Some(now);
        self.timers.handshake = false;
        self.timers.deadline = None;
        let written = self.outbox.written();
        let relinked = self.redial.as_deref_mut().is_some_and(|r| {
            r.failures = 0;
            r.last_error = None;
            r.written_at_link = written;
            std::mem::take(&mut r.relinking)
        });
        let event = if relinked {
            EndpointEvent::LinkUp(LinkUp {
                connection: self.connection,
            })
        } else {
            EndpointEvent::FinishConnect(FinishConnect {
                connection: self.connection,
                reason: None,
                queued: Vec::new(),
            })
        };
        self.events.push_back(event);
        self.fill();
    }

    /// Connecting failed; every message sent meanwhile comes back in the
    /// `FinishConnect` event, unless the connection tries again (see
    /// [`set_reconnect`](Self::set_reconnect)).
    pub fn handle_connect_failed(&mut self, error: ConnectError) {
        if self.state == State::Connecting {
            self.connect_failed(error);
        }
    }

    /// Tries a connect again after a failure that another attempt may
    /// mend ([`ConnectError::is_permanent`]), waiting as `policy` says,
    /// until it gives up; `seed` chooses the random part of the waits,
    /// and the policy's limit counts from `now`. While it waits, the
    /// connection stays [`State::Connecting`] with its unsent queue; the
    /// driver drops the failed transport
    /// ([`awaiting_redial`](Self::awaiting_redial)) and dials again when
    /// [`redial_due`](Self::redial_due) says.
    pub fn set_reconnect(&mut self, policy: Reconnect, seed: u64, now: Instant) {
        self.redial = Some(Box::new(Redial {
            policy,
            jitter: Jitter::new(seed),
            give_up_at: policy.limit().and_then(|l| now.checked_add(l)),
            limit_pending: false,
            relinking: false,
            written_at_link: 0,
            failures: 0,
            last_error: None,
            wait: None,
            at: None,
        }));
    }

    /// Whether an attempt failed and the connection waits to dial again
    /// (its transport, if any, is dead).
    pub fn awaiting_redial(&self) -> bool {
        self.state == State::Connecting
            && self
                .redial
                .as_ref()
                .is_some_and(|r| r.wait.is_some() || r.at.is_some())
    }

    /// Whether to dial again now. A wait that began with a failure is
    /// counted from `now`, the first time it is known (and cut short at
    /// the policy's limit); past the limit the connection gives up, with
    /// the last failure in its `FinishConnect`. When it says yes, the
    /// connect timeout starts over from `now`.
    pub fn redial_due(&mut self, now: Instant) -> bool {
        if self.state != State::Connecting {
            return false;
        }
        let Some(r) = self.redial.as_deref_mut() else {
            return false;
        };
        if std::mem::take(&mut r.limit_pending) {
            r.give_up_at = r.policy.limit().and_then(|l| now.checked_add(l));
        }
        if let Some(wait) = r.wait.take() {
            if r.give_up_at.is_some_and(|limit| now >= limit) {
                let error = r.last_error.take().unwrap_or(ConnectError::TimedOut);
                self.give_up(error);
                return false;
            }
            let at = now.checked_add(wait).unwrap_or(now);
            r.at = Some(r.give_up_at.map_or(at, |limit| at.min(limit)));
        }
        if r.at.is_none_or(|at| at > now) {
            return false;
        }
        r.at = None;
        self.timers.deadline = self.config.connect_timeout.and_then(|t| now.checked_add(t));
        true
    }

    /// The socket took the first `n` bytes of [`transmit`](Self::transmit).
    pub fn handle_written(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.counters.bytes_out += n as u64;
        if self.write_due.is_some() && n >= WRITE_LOT {
            self.lot_written = true;
        }
        self.outbox.consume(n);
        self.fill();
    }

    /// Its driver wrote bytes to the transport, the write ending at
    /// `now`: sends in the next [`COALESCE`] come in quick succession
    /// (timed from the end, so that a slow system call does not make the
    /// next send look like one after a pause).
    pub fn note_write(&mut self, now: Instant) {
        self.coalesce_until = Some(now + COALESCE);
    }

    /// Until when sends come in quick succession after this connection's
    /// last write (see [`note_write`](Self::note_write)).
    pub fn coalesce_until(&self) -> Option<Instant> {
        self.coalesce_until
    }

    /// Whether a send at `now` comes in quick succession: within
    /// [`COALESCE`] of this connection's last write, or of its sending
    /// thread's last write on any connection (`thread_until`, that
    /// write's [`coalesce_until`](Self::coalesce_until)), so that a thread
    /// sending in a loop coalesces even when each send goes to another
    /// connection. Its driver then leaves it for later
    /// ([`coalesce`](Self::coalesce)); a send after a pause it writes at
    /// once.
    pub fn in_succession(&self, now: Instant, thread_until: Option<Instant>) -> bool {
        let recent = |until: Option<Instant>| until.is_some_and(|u| now < u);
        recent(self.coalesce_until) || recent(thread_until)
    }

    /// Its driver leaves what was just sent for a later write, to go with
    /// the sends that follow (sends in quick succession), at `now`. This
    /// opens a *window* unless one is open: what waits is due at once
    /// (the driver's next look writes it: a few requests in a row still go
    /// out together, at once), or, if the last window carried a stream's
    /// worth, [`STREAM_TAIL`] from now, so that a stream is written in
    /// lots and its driver is not woken for each. While a stream goes on,
    /// each window opens as the last one closes
    /// ([`take_write_due`](Self::take_write_due)), and the first that
    /// carries little ends it. A full lot
    /// ([`WRITE_LOT`]) is due at once either way
    /// ([`has_full_lot`](Self::has_full_lot): a sender writes it itself).
    /// The driver asks [`take_write_due`](Self::take_write_due) before it
    /// writes, and is woken at [`poll_timeout`](Self::poll_timeout).
    pub fn coalesce(&mut self, now: Instant) {
        if self.write_due.is_none() {
            self.write_due = Some(if self.streaming {
                now + STREAM_TAIL
            } else {
                now
            });
            self.lot_written = false;
        }
    }

    /// Whether a window is open (see [`coalesce`](Self::coalesce)): its
    /// driver was told of what waits, and has not written it yet.
    pub fn write_window_open(&self) -> bool {
        self.write_due.is_some()
    }

    /// Whether a full lot ([`WRITE_LOT`]) waits to be written.
    pub fn has_full_lot(&self) -> bool {
        self.transmit().len() >= WRITE_LOT
    }

    /// A send after a pause, written at once: no stream is under way, and
    /// no window is open (what waits goes with it).
    pub fn end_stream(&mut self) {
        self.streaming = false;
        self.write_due = None;
    }

    /// Whether what [`transmit`](Self::transmit) offers is due at `now`
    /// (see [`coalesce`](Self::coalesce)): true unless a window is open,
    /// not yet due, with less than a lot waiting, on an open connection (a
    /// disconnect writes at once). A window that is due closes here, and
    /// says whether the connection streams: it carried a full lot, or
    /// 2 KiB.
    pub fn take_write_due(&mut self, now: Instant) -> bool {
        let Some(due) = self.write_due else {
            return true;
        };
        let waiting = self.transmit().len();
        if now < due && waiting < WRITE_LOT && self.state == State::Open {
            return false;
        }
        self.streaming = self.lot_written || waiting >= STREAM_MARK;
        // A stream goes on: the next window opens now, so that its sender
        // need not tell the driver of it (one wake-up a window, not two).
        // One that finds nothing to carry ends the stream.
        self.write_due = (self.streaming && self.state == State::Open).then(|| now + STREAM_TAIL);
        self.lot_written = false;
        true
    }

    /// The transport's write side was shut down at `now` (see
    /// [`wants_shutdown_write`](Self::wants_shutdown_write)): the linger
    /// time starts, after which the connection closes even if the peer
    /// never does.
    pub fn handle_write_shut(&mut self, now: Instant) {
        if self.state == State::Draining && !self.timers.write_shut {
            self.timers.write_shut = true;
            self.timers.handshake = false;
            self.timers.deadline = now.checked_add(self.config.linger);
        }
    }

    /// Bytes arrived from the socket, at `now`.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub fn handle_read(&mut self, now: Instant, data: &[u8]) {
        self.read(
            now,
            data,
            None,
            None::<&mut fn(EndpointEvent<C::Message>) -> bool>,
        );
    }

    /// Bytes arrived from the socket, as [`handle_read`](Self::handle_read),
    /// but the messages they complete go straight to `sink` as
    /// `MessageReceived` events when no event is queued before them. Any
    /// other event (a protocol error, say) is queued for
    /// [`poll_event`](Self::poll_event), after them.
    ///
    /// `sink` returns whether it takes more: once it returns false,
    /// decoding stops and the rest of `data` is held back undecoded
    /// ([`has_backlog`](Self::has_backlog)) until
    /// [`handle_backlog_into`](Self::handle_backlog_into). That is how a
    /// memory bound is kept *during* a read: a read can complete thousands
    /// of small messages.
    ///
    /// The network loop passes messages on without a stop in a queue per
    /// connection, which would also keep the size of the largest burst for
    /// the connection's lifetime.
    pub fn handle_read_into(
        &mut self,
        now: Instant,
        data: &[u8],
        sink: &mut impl FnMut(EndpointEvent<C::Message>) -> bool,
    ) {
        self.read(now, data, None, Some(sink));
    }

    /// [`handle_read_into`](Self::handle_read_into) with the bytes as a
    /// shared chunk, which deserializers may slice messages from (see
    /// [`Converter::shares_input`]).
    pub fn handle_shared_read_into(
        &mut self,
        now: Instant,
        chunk: &Bytes,
        sink: &mut impl FnMut(EndpointEvent<C::Message>) -> bool,
    ) {
        self.read(now, chunk, Some(chunk), Some(sink));
    }

    /// Decodes input held back by a `sink` that wanted no more, passing
    /// messages to `sink` as [`handle_read_into`](Self::handle_read_into)
    /// does (and holding back again if it says so).
    pub fn handle_backlog_into(
        &mut self,
        now: Instant,
        sink: &mut impl FnMut(EndpointEvent<C::Message>) -> bool,
    ) {
        if !self.has_backlog() {
            return;
        }
        self.decode(now, Some(sink), Input::Backlog);
        if !self.inbox.is_held()
            && let Some(reason) = self.peer_gone.take()
        {
            // The end came while input was held back.
            self.peer_gone(*reason);
        }
    }

    fn read<F: FnMut(EndpointEvent<C::Message>) -> bool>(
        &mut self,
        now: Instant,
        data: &[u8],
        shared: Option<&Bytes>,
        sink: Option<&mut F>,
    ) {
        self.counters.bytes_in += data.len() as u64;
        match self.state {
            State::Open | State::Disconnecting(_) if self.peer_gone.is_none() => {
                self.timers.last_input = Some(now);
                self.decode(now, sink, Input::Read(data, shared));
            }
            // Draining discards input; otherwise there is nobody to give it to.
            _ => {}
        }
    }

    /// Decodes `input`, messages going to `sink` (or the event queue),
    /// then sets the message timer.
    fn decode<F: FnMut(EndpointEvent<C::Message>) -> bool>(
        &mut self,
        now: Instant,
        mut sink: Option<&mut F>,
        input: Input<'_>,
    ) {
        let connection = self.connection;
        let events = &mut self.events;
        // Straight to the sink only if that keeps the order.
        let direct = events.is_empty();
        let completed = self.inbox.completed();
        let mut deliver = |m, wire| {
            let event = received(connection, m, wire);
            match &mut sink {
                Some(sink) if direct => sink(event),
                _ => {
                    events.push_back(event);
                    true
                }
            }
        };
        // The peer's first bytes, if these are: to tell a TLS peer from a
        // broken one.
        let first = match input {
            Input::Read(data, _) if self.counters.bytes_in == data.len() as u64 => {
                Some(&data[..data.len().min(3)])
            }
            _ => None,
        };
        let (converter, waker) = (&*self.converter, &self.waker);
        let result = match input {
            Input::Read(data, shared) => {
                self.inbox
                    .feed(converter, waker, data, shared, &mut deliver)
            }
            Input::Backlog => self.inbox.resume(converter, waker, &mut deliver),
        };
        self.counters.messages_in += self.inbox.completed() - completed;
        if !self.inbox.mid_message() && !self.timers.mid_record {
            self.timers.message_start = None;
        } else if self.inbox.completed() != completed || self.timers.message_start.is_none() {
            self.timers.message_start = Some(now);
        }
        if let Err(mut reason) = result {
            if matches!(reason, DisconnectReason::Peer(PeerFault::Protocol(_)))
                && self.inbox.completed() == 0
                && first.is_some_and(begins_tls_record)
            {
                // Not a broken peer: one that speaks TLS to plaintext.
                reason = ProtocolError::PeerSpeaksTls.into();
            }
            self.fail(reason);
        }
    }

    /// Bytes came from the socket at `now` that the transport has not
    /// handed out (all or some of them): the parts of records it cannot
    /// decrypt yet, under TLS. `mid_record` says whether it holds part of
    /// a record now. The idle timer counts them as input, and the message
    /// timer runs from the first byte of a record until the message it
    /// carries is complete: timeouts see the wire, not only what a layer
    /// decrypted, so a peer trickling a record a byte at a time is caught.
    pub fn handle_wire_input(&mut self, now: Instant, mid_record: bool) {
        if !matches!(self.state, State::Open | State::Disconnecting(_)) || self.peer_gone.is_some()
        {
            return;
        }
        let t = &mut self.timers;
        t.last_input = Some(now);
        t.mid_record = mid_record;
        if mid_record {
            t.message_start.get_or_insert(now);
        } else if !self.inbox.mid_message() {
            t.message_start = None;
        }
    }

    /// The transport's own handshake (TLS) began at `now`: it must end
    /// within the handshake timeout (reported with
    /// [`handle_handshake_done`](Self::handle_handshake_done)), or the
    /// connection ends. A second call is a no-op.
    pub fn handle_handshake_started(&mut self, now: Instant) {
        let Some(limit) = self
            .config
            .handshake_timeout
            .and_then(|t| now.checked_add(t))
        else {
            return;
        };
        let t = &mut self.timers;
        if t.handshake {
            return;
        }
        match self.state {
            // Within the connect timeout too, whichever ends first.
            State::Connecting if t.deadline.is_some_and(|d| d <= limit) => {}
            State::Connecting | State::Accepting | State::Open | State::Disconnecting(_) => {
                t.deadline = Some(limit);
                t.handshake = true;
            }
            State::Draining | State::Closed => {}
        }
    }

    /// The transport's handshake is done: its timeout stops.
    pub fn handle_handshake_done(&mut self) {
        if self.timers.handshake {
            self.timers.handshake = false;
            if self.state != State::Connecting {
                self.timers.deadline = None;
            }
        }
    }

    /// Whether the transport's handshake timeout is running.
    pub fn handshake_pending(&self) -> bool {
        self.timers.handshake
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

    /// The socket failed (reset, broken pipe, …): the connection was
    /// aborted, and ends now. Messages already decoded are delivered
    /// first; input held back undecoded (the application was behind) is
    /// dropped, as TCP drops what a reset connection had not read, so that
    /// a dead connection never waits for room to give back what it holds.
    pub fn handle_error(&mut self, error: io::Error) {
        match self.state {
            State::Open | State::Accepting | State::Disconnecting(_) => {
                self.inbox.discard_held();
                self.peer_gone(DisconnectReason::from_socket_error(error))
            }
            State::Draining => self.state = State::Closed,
            State::Connecting => self.connect_failed(ConnectError::from_io(error)),
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
        let completed = self.inbox.completed();
        let result = self
            .inbox
            .wake(&self.converter, &self.waker, &mut |m, wire| {
                events.push_back(received(connection, m, wire));
                true
            });
        self.counters.messages_in += self.inbox.completed() - completed;
        if let Err(reason) = result {
            return self.fail(reason);
        }
        if let Some(reason) = self.peer_gone.take() {
            // The deserializer that held the end back may be done now.
            return self.peer_gone(*reason);
        }
        self.outbox.wake();
        self.fill();
    }

    /// Time passed: ends the connection if one of its timeouts expired
    /// by `now` (see [`poll_timeout`](Self::poll_timeout)). Early and
    /// repeated calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let handshake_due = self.timers.handshake && due(self.timers.deadline);
        match self.state {
            State::Connecting if handshake_due => {
                self.connect_failed(ConnectError::Tls(handshake_timed_out(&self.config)));
            }
            State::Connecting if due(self.timers.deadline) => {
                self.connect_failed(ConnectError::TimedOut);
            }
            State::Accepting | State::Open | State::Disconnecting(_)
                if handshake_due && self.peer_gone.is_none() =>
            {
                self.timers.handshake = false;
                self.fail(DisconnectReason::Tls(handshake_timed_out(&self.config)));
            }
            State::Open | State::Disconnecting(_) if self.peer_gone.is_none() => {
                let Some(deadline) = self.next_timeout() else {
                    return;
                };
                if deadline > now {
                    return;
                }
                if self.input_held || !self.wants_read() {
                    // Not the peer's doing: the connection holds its input
                    // back. The timers start over.
                    self.timers.last_input = Some(now);
                    if self.timers.message_start.is_some() {
                        self.timers.message_start = Some(now);
                    }
                    return;
                }
                let c = &self.config;
                let t = &self.timers;
                let message_due = c
                    .message_timeout
                    .zip(t.message_start)
                    .is_some_and(|(d, at)| at + d <= now);
                let reason = if message_due {
                    DisconnectReason::Peer(PeerFault::MessageTimeout(
                        c.message_timeout.unwrap_or_default(),
                    ))
                } else {
                    DisconnectReason::Peer(PeerFault::IdleTimeout(
                        c.idle_timeout.unwrap_or_default(),
                    ))
                };
                self.fail(reason);
            }
            State::Draining if self.timers.write_shut && due(self.timers.deadline) => {
                tracing::debug!(
                    "{}: peer did not close within the linger time",
                    self.connection
                );
                self.close();
            }
            _ => {}
        }
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
        if self.outbox.has_failed() {
            for (message, error) in self.outbox.take_failed() {
                self.reject_message(message, RejectReason::Serialize(error));
            }
        }
        if self.send_backlogged && self.outbox.bytes() <= self.config.send_high_water / 2 {
            self.send_backlogged = false;
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
            self.peer_gone = Some(Box::new(reason));
        }
        if !self.inbox.is_waiting() && !self.inbox.is_held() {
            let mut reason = *self.peer_gone.take().expect("set above");
            if matches!(reason, DisconnectReason::PeerClosed) && self.inbox.mid_message() {
                reason = crate::error::ProtocolError::UnexpectedEof.into();
            }
            self.fail(reason);
        }
    }

    /// Ends the connection for `reason`, handing back every unwritten
    /// message.
    fn fail(&mut self, reason: DisconnectReason) {
        if matches!(reason, DisconnectReason::Peer(PeerFault::Protocol(_))) {
            self.counters.protocol_errors += 1;
        }
        match self.state {
            State::Open if self.redial.is_some() && reconnects_after(&reason) => {
                self.link_lost(reason);
            }
            State::Open | State::Accepting => {
                let (incomplete, queued) = self.outbox.take_all_unsent();
                self.emit_remote_disconnect(incomplete, queued, reason);
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

    fn emit_remote_disconnect(
        &mut self,
        incomplete: Option<C::Message>,
        queued: Vec<C::Message>,
        reason: DisconnectReason,
    ) {
        self.counters.handed_back.at_close += queued.len() as u64 + u64::from(incomplete.is_some());
        self.counters.ending = Some(Ending::of(&reason));
        self.events
            .push_back(EndpointEvent::RemoteDisconnect(RemoteDisconnect {
                connection: self.connection,
                incomplete,
                queued,
                reason,
            }));
    }

    fn emit_finish_disconnect(
        &mut self,
        incomplete: Option<C::Message>,
        queued: Vec<C::Message>,
        error: Option<DisconnectReason>,
    ) {
        self.counters.handed_back.at_close += queued.len() as u64 + u64::from(incomplete.is_some());
        self.counters.ending = Some(error.as_ref().map_or(Ending::Local, Ending::of));
        self.events
            .push_back(EndpointEvent::FinishDisconnect(FinishDisconnect {
                connection: self.connection,
                incomplete,
                queued,
                reason: error,
            }));
    }

    /// An attempt to connect failed: another follows after a wait if the
    /// connection has a reconnect policy and trying again may mend it;
    /// otherwise it gives up.
    fn connect_failed(&mut self, error: ConnectError) {
        if !matches!(error, ConnectError::Cancelled) {
            self.counters.connect_failures = self.counters.connect_failures.saturating_add(1);
        }
        if let Some(r) = self.redial.as_deref_mut()
            && error.is_retryable()
        {
            r.failures = r.failures.saturating_add(1);
            let wait = r.policy.wait(r.failures, r.jitter.next());
            tracing::debug!(
                "{}: connect failed ({error}); trying again in {wait:?}",
                self.connection
            );
            r.last_error = Some(error);
            r.wait = Some(wait);
            r.at = None;
            self.timers.deadline = None;
            self.timers.handshake = false;
            return;
        }
        self.give_up(error);
    }

    /// The link of a connection that reconnects broke: what is not
    /// written in full waits again (the message cut off from its start),
    /// the input side starts afresh, and it dials again after a wait.
    fn link_lost(&mut self, reason: DisconnectReason) {
        let (incomplete, queued) = self.outbox.take_all_unsent();
        for message in incomplete.into_iter().chain(queued) {
            // It was taken once: its size as it was counted then.
            let size = checked_send_size(&*self.converter, &message).unwrap_or(0);
            self.outbox.push(message, size);
        }
        let written = self.outbox.written();
        let Some(r) = self.redial.as_deref_mut() else {
            return;
        };
        let unconfirmed = written.saturating_sub(r.written_at_link);
        r.relinking = true;
        r.limit_pending = true;
        r.give_up_at = None;
        r.failures = 1;
        r.wait = Some(r.policy.wait(1, r.jitter.next()));
        r.at = None;
        tracing::debug!("{}: link lost ({reason}); dialing again", self.connection);
        self.state = State::Connecting;
        self.inbox = Inbox::new(self.config.max_pending_input);
        self.peer_gone = None;
        self.read_closed = false;
        self.timers = Timers::default();
        self.write_due = None;
        self.coalesce_until = None;
        self.streaming = false;
        self.lot_written = false;
        self.events.push_back(EndpointEvent::LinkDown(LinkDown {
            connection: self.connection,
            reason,
            unconfirmed,
        }));
    }

    /// Connecting ends unsuccessfully: every message sent meanwhile comes
    /// back in the `FinishConnect` (after a link was up: in a
    /// `RemoteDisconnect`, or a `FinishDisconnect` if it was cancelled).
    fn give_up(&mut self, error: ConnectError) {
        if self.redial.as_ref().is_some_and(|r| r.relinking) {
            let (incomplete, queued) = self.outbox.take_all_unsent();
            match error {
                ConnectError::Cancelled | ConnectError::Stopped => {
                    self.emit_finish_disconnect(incomplete, queued, None);
                }
                error => self.emit_remote_disconnect(incomplete, queued, reason_of(error)),
            }
            self.close();
            return;
        }
        let (_, queued) = self.outbox.take_all_unsent();
        self.counters.handed_back.at_close += queued.len() as u64;
        self.counters.ending = Some(Ending::ConnectFailed);
        self.events
            .push_back(EndpointEvent::FinishConnect(FinishConnect {
                connection: self.connection,
                reason: Some(error),
                queued,
            }));
        self.close();
    }

    fn close(&mut self) {
        // Rejected before it was accepted, or closed some other quiet way.
        self.counters.ending.get_or_insert(Ending::Local);
        self.state = State::Closed;
        self.peer_gone = None;
        self.inbox = Inbox::new(0);
    }
}

/// Whether a broken link is worth dialing again: not after a protocol
/// error (the peer speaks something else) nor a converter's failure (our
/// own bug), nor a TLS failure another attempt cannot mend.
fn reconnects_after(reason: &DisconnectReason) -> bool {
    match reason {
        DisconnectReason::PeerClosed | DisconnectReason::Socket(_) => true,
        DisconnectReason::Peer(fault) => !matches!(fault, PeerFault::Protocol(_)),
        DisconnectReason::Converter(_) => false,
        DisconnectReason::Tls(e) => ConnectError::Tls(e.clone()).is_retryable(),
    }
}

/// Why a connection whose link broke ended, when reconnecting it failed
/// for good: its last attempt's failure.
fn reason_of(error: ConnectError) -> DisconnectReason {
    match error {
        ConnectError::Tls(e) => DisconnectReason::Tls(e),
        ConnectError::Io(e) | ConnectError::Resolve(e) => DisconnectReason::from_socket_error(e),
        other => DisconnectReason::from_socket_error(io::Error::new(
            io::ErrorKind::TimedOut,
            other.to_string(),
        )),
    }
}

/// The error of a handshake that took longer than its timeout.
fn handshake_timed_out(config: &EndpointConfig) -> crate::error::TlsError {
    crate::error::TlsError::new(
        crate::error::TlsErrorKind::HandshakeTimedOut,
        format!(
            "the handshake did not end within {:?} (handshake timeout)",
            config.handshake_timeout.unwrap_or_default()
        ),
    )
}

/// What [`Endpoint::decode`] decodes.
/// Whether `bytes` (a peer's first, up to three) begin a TLS record: a
/// content type (change cipher spec, alert, handshake, application
/// data), then major version 3 and a minor of SSL 3.0 to TLS 1.3, as much
/// of it as came.
fn begins_tls_record(bytes: &[u8]) -> bool {
    matches!(
        bytes,
        [0x14..=0x17] | [0x14..=0x17, 0x03] | [0x14..=0x17, 0x03, 0x00..=0x04]
    )
}

enum Input<'a> {
    /// Bytes just read, and the shared chunk they are, if they are.
    Read(&'a [u8], Option<&'a Bytes>),
    /// Input held back earlier.
    Backlog,
}

fn received<M>(connection: Connection, message: M, wire_bytes: usize) -> EndpointEvent<M> {
    EndpointEvent::MessageReceived(MessageReceived {
        connection,
        message,
        wire_bytes,
    })
}

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing {
    //! The entry point for the `endpoint` fuzz target; not a stable API.

    use std::io;
    use std::sync::Arc;
    use std::task::Waker;
    use std::time::{Duration, Instant};

    use super::{Endpoint, EndpointConfig, State};
    use crate::converters::StringConverter;
    use crate::endpoint::EndpointEvent;
    use crate::error::ConnectError;
    use crate::event::Connection;
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
            send_high_water: 48,
            send_queue_cap: 96,
            connect_timeout: Some(Duration::from_secs(1)),
            idle_timeout: Some(Duration::from_secs(3)),
            message_timeout: Some(Duration::from_secs(2)),
            linger: Duration::from_secs(1),
            handshake_timeout: Some(Duration::from_secs(4)),
        };
        let start = Instant::now();
        let mut now = start;
        let converter = Arc::new(StringConverter::new().with_max_message_size(32));
        let waker = Waker::noop().clone();
        let id = Connection(0);
        let mut ep = if first & 0x80 == 0 {
            Endpoint::open(id, converter, waker, config, now)
        } else {
            Endpoint::connecting(id, converter, waker, config, now)
        };
        let mut sent = 0usize;
        let mut returned = 0usize;
        let mut refused = 0usize;
        let mut finals = 0usize;
        let mut drain = |ep: &mut Endpoint<StringConverter>| {
            while let Some(e) = ep.poll_event() {
                finals += usize::from(e.is_final());
                returned += match e {
                    EndpointEvent::FinishConnect(f) => f.queued.len(),
                    EndpointEvent::FinishDisconnect(f) => {
                        f.queued.len() + usize::from(f.incomplete.is_some())
                    }
                    EndpointEvent::RemoteDisconnect(r) => {
                        r.queued.len() + usize::from(r.incomplete.is_some())
                    }
                    EndpointEvent::RejectedMessage(_) => 1,
                    EndpointEvent::MessageReceived(_)
                    | EndpointEvent::LinkDown(_)
                    | EndpointEvent::LinkUp(_) => 0,
                };
            }
        };
        while let Some((&op, rest)) = data.split_first() {
            data = rest;
            let arg = usize::from(op >> 4);
            // A sink that takes `arg / 2` messages, then wants no more.
            let mut takes = arg / 2;
            let mut sink = |e: EndpointEvent<String>| {
                assert!(
                    matches!(e, EndpointEvent::MessageReceived(_)),
                    "only messages go to the sink, not {e:?}"
                );
                takes = takes.saturating_sub(1);
                takes > 0
            };
            match op % 13 {
                0 => {
                    ep.send("m".repeat(arg));
                    sent += 1;
                }
                1 => {
                    sent += 1;
                    if ep.try_send("t".repeat(arg)).is_err() {
                        refused += 1;
                    }
                }
                2 | 3 => {
                    let n = ep.transmit().len().min(arg * 3);
                    ep.handle_written(n);
                    if ep.wants_shutdown_write() {
                        ep.handle_write_shut(now);
                    }
                }
                4 => {
                    let n = arg.min(data.len());
                    if arg % 2 == 0 {
                        ep.handle_read(now, &data[..n]);
                    } else {
                        ep.handle_read_into(now, &data[..n], &mut sink);
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
                8 => ep.handle_connected(now),
                9 => ep.handle_connect_failed(ConnectError::Cancelled),
                10 => ep.handle_backlog_into(now, &mut sink),
                11 => {
                    now += Duration::from_millis(250) * arg as u32;
                    if let Some(due) = ep.poll_timeout() {
                        assert!(due >= start, "a deadline before the start");
                    }
                    ep.handle_timeout(now);
                }
                _ => ep.hold_input(arg % 2 == 0),
            }
            assert!(ep.queued_bytes() <= config.send_queue_cap);
            assert!(ep.transmit().len() <= config.write_buffer_size);
            drain(&mut ep);
        }
        ep.handle_error(io::ErrorKind::ConnectionReset.into());
        // What was read before the reset is delivered before the end: the
        // input held back is decoded first, once no longer paused.
        ep.hold_input(false);
        while ep.has_backlog() {
            ep.handle_backlog_into(now, &mut |e| {
                assert!(matches!(e, EndpointEvent::MessageReceived(_)), "{e:?}");
                true
            });
        }
        drain(&mut ep);
        assert_eq!(ep.state(), State::Closed);
        assert_eq!(finals, 1);
        assert_eq!(ep.messages_written() as usize + returned + refused, sent);
    }
}
