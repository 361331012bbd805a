//! Pike: a thread-safe, message-oriented socket library.
//!
//! Applications hand Pike whole typed messages and get whole messages back
//! as events. Pike owns the sockets, the framing and the buffering, and the
//! hard cases: partial writes, slow or hostile peers, disconnects in the
//! middle of a message, and closing without losing a message. Every message
//! passed to `send` is either written to its socket in full or handed back
//! exactly once, and memory stays bounded whatever a peer does (see
//! [`ConnectorBuilder`] for every bound and its default).
//!
//! A server and a client exchanging a struct (with the `postcard` feature):
//!
//! ```
//! # #[cfg(feature = "postcard")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use pike::converters::serde::PostcardConverter;
//! use pike::{Connector, Delivery, Event};
//!
//! #[derive(Debug, serde::Serialize, serde::Deserialize)]
//! struct Job { id: u64, name: String }
//!
//! let server = Connector::builder(PostcardConverter::<Job>::new()).listen("127.0.0.1:0").spawn()?;
//! let client = Connector::builder(PostcardConverter::<Job>::new()).spawn()?;
//!
//! let to_server = client.connect(server.local_addr().unwrap(), Delivery::Merged)?;
//! client.send(&to_server, Job { id: 1, name: "resize".into() })?; // sent once connected
//!
//! let wait = Duration::from_secs(5);
//! loop {
//!     match server.recv_timeout(wait)? {
//!         Event::RemoteConnect(peer) => peer.finish_accept(Delivery::Merged),
//!         Event::MessageReceived(m) => {
//!             println!("{} sent job {}: {}", m.connection, m.message.id, m.message.name);
//!             break;
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! # #[cfg(not(feature = "postcard"))]
//! # fn main() {}
//! ```
//!
//! # Which call to use
//!
//! Every operation of a [`Connector`], by how long it may wait:
//!
//! | to | waits as long as it takes | waits at most (`_timeout`, `_deadline`) | never waits | async |
//! |---|---|---|---|---|
//! | connect | | [`connect_timeout`](Connector::connect_timeout), [`connect_deadline`](Connector::connect_deadline): the connection or a [`ConnectError`]; [`connect_timeout_with`](Connector::connect_timeout_with) runs a callback first | [`connect`](Connector::connect): the outcome comes as an event | [`connect_async`](Connector::connect_async) |
//! | send one message | [`send_waiting_for_room`](Connector::send_waiting_for_room): waits for room in the unsent queue, not for the write | [`send_timeout`](Connector::send_timeout), [`send_deadline`](Connector::send_deadline) | [`send`](Connector::send) (past the queue's hard cap: handed back in an event), [`try_send`](Connector::try_send) (over the high-water mark: handed back at once) | [`send_async`](Connector::send_async) |
//! | send many | [`send_batch_waiting_for_room`](Connector::send_batch_waiting_for_room) | [`send_batch_timeout`](Connector::send_batch_timeout), [`send_batch_deadline`](Connector::send_batch_deadline) | [`send_batch`](Connector::send_batch), [`try_send_batch`](Connector::try_send_batch) | |
//! | take an event | [`recv`](Connector::recv) | [`recv_timeout`](Connector::recv_timeout), [`recv_deadline`](Connector::recv_deadline) | [`try_recv`](Connector::try_recv) | [`recv_async`](Connector::recv_async), the [`events`](Connector::events) stream |
//! | take many events | | [`recv_batch`](Connector::recv_batch), [`recv_batch_deadline`](Connector::recv_batch_deadline) | [`try_recv_batch`](Connector::try_recv_batch) | |
//! | take a [separate](Delivery::Separate) connection's event | [`recv_connection`](Connector::recv_connection) | [`recv_connection_timeout`](Connector::recv_connection_timeout), [`recv_connection_deadline`](Connector::recv_connection_deadline) | [`try_recv_connection`](Connector::try_recv_connection) | [`recv_connection_async`](Connector::recv_connection_async) |
//! | take many of its events | | [`recv_connection_batch`](Connector::recv_connection_batch), [`recv_connection_batch_deadline`](Connector::recv_connection_batch_deadline) | [`try_recv_connection_batch`](Connector::try_recv_connection_batch) | |
//! | close a connection | | | [`disconnect`](Connector::disconnect): a `FinishDisconnect` event follows | |
//! | shut down | [`shutdown`](Connector::shutdown) | [`shutdown_timeout`](Connector::shutdown_timeout), [`shutdown_deadline`](Connector::shutdown_deadline) | | [`shutdown_async`](Connector::shutdown_async) |
//!
//! A call that meets a stopped connector says `Stopped`, whatever the call
//! ([`RecvError::Stopped`], [`TrySendError::Stopped`], [`ConnectError::Stopped`], …),
//! and hands back any message it was given; why a connection ended is a
//! [`DisconnectReason`], sorted by whose fault it was (see [`error`]).
//!
//! How a connection is opened (its delivery, TLS, whether it tries again:
//! [`Reconnect`]) is its [`ConnectOptions`];
//! the connector's bounds and timeouts are set on its [`ConnectorBuilder`].
//!
//! *The endpoint decides, the reactor does, the connector asks.* The
//! threads, as they are:
//!
//! ```text
//!  application threads                          pike-network (the network thread)
//!  ───────────────────                          ─────────────────────────────────
//!  connect / disconnect / merge / shutdown ──► command queue ──► the loop (reactor): polls,
//!                                                               accepts, connects, drives each
//!  send / send_batch / try_send ──► connection's slot           connection's endpoint, reads
//!    (lock; the endpoint queues and        ▲                    within the memory budget,
//!     serializes; the sending thread       └──── shared ─────── passes events on, fires timers
//!     writes what the transport takes)                                   │
//!  recv / recv_batch / events() ◄──── event queues (main, per connection) ◄┘
//!    a thread blocked in recv may borrow the loop and run it itself
//!    (one context switch fewer per event); the network thread waits meanwhile
//!
//!  pike-resolve: one per `connect` to a host name, resolves it off the loop
//!  pike-file-io: a small pool reading and writing files for the file converter
//! ```
//!
//! Each connection's endpoint is a sans-IO state
//! machine: it decides what to write, whether to read, when to close and
//! when its timeouts expire. Its transport (TCP, or a Unix domain socket:
//! see [`Address`]; TLS over either with the `tls` feature: see the `tls`
//! module) only moves bytes.
//!
//! * [`Connector`]: connect, send, receive events, disconnect, shut down.
//! * [`converter`]: the [`Converter`] traits that fix the wire protocol;
//!   [`converters`] has ready-made ones: strings, bytes and numbers,
//!   files, serde types (`postcard`, `json`, `msgpack` features), and
//!   [`converters::codec`] for a wire format of your own in a few lines.
//! * [`event`]: the events an application receives.
//! * The endpoint (`pike/src/endpoint/`, not public: the `fuzzing`
//!   feature opens it to the fuzz targets): the per-connection state
//!   machine. It has no networking code and reads no clock; tests drive
//!   it byte by byte.
//!
//! A protocol with requests one way and replies the other uses one message
//! type for both: an enum (`enum Msg { Job(Job), Done(Done) }`) with a serde
//! converter, each side matching on what it receives.
//!
//! Example programs, in `pike/examples/` of the repository
//! (`cargo run --example NAME -- --help`):
//!
//! * `chat_server`, `chat_client`: a handshake on a connection's own
//!   queue, then merged into the main one;
//! * `doubler_server`, `doubler_client`: worker threads that all call
//!   `recv` on one connector;
//! * `filecopy_server`, `filecopy_client`: files streamed by the file
//!   converter;
//! * `job_queue` (feature `postcard`): structs handed to workers; a worker
//!   killed mid-job loses no job;
//! * `async_echo`: the async front end on tokio.
//!
//! The servers and clients take `--unix PATH` to run over a Unix socket;
//! the doubler and filecopy ones take `--tls-*` flags (feature `tls`).
//! Operators watch a connector through [`Connector::stats`] (and the
//! `metrics` feature); see [`stats`].
//!
//! Converters work on plain buffers:
//!
//! ```
//! use std::task::Waker;
//! use pike::converter::{Converter, Decoded, Deserializer};
//! use pike::converters::StringConverter;
//!
//! let strings = StringConverter::new();
//! let mut d = strings.deserializer();
//! let (used, outcome) = d.put_bytes(b"3 abc and more", Waker::noop()).unwrap();
//! assert_eq!((used, outcome), (5, Decoded::Done("abc".to_owned())));
//! ```
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod address;
mod clock;
pub mod connector;
pub mod converter;
pub mod converters;
// The sans-IO core: public only for the fuzz targets (feature `fuzzing`),
// outside the semver surface.
#[cfg(feature = "fuzzing")]
pub mod endpoint;
#[cfg(not(feature = "fuzzing"))]
#[allow(unreachable_pub)]
mod endpoint;
pub mod error;
pub mod event;
mod memory;
pub mod mode;
mod reactor;
pub mod reconnect;
pub mod stats;
mod sync;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;

pub use address::{Address, PeerAddr, UnixAddr};
pub use connector::{ConnectOptions, Connector, ConnectorBuilder, Queued};
pub use converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
pub use error::{
    ConnectError, ConverterFault, DisconnectReason, PeerFault, ProtocolError, RecvError,
    RecvTimeoutError, RejectReason, SendError, SendTimeoutError, SerializeError, SocketFailure,
    StartError, StoppedError, TlsError, TlsErrorKind, TryRecvError, TrySendError, UsageError,
};
pub use event::{Connection, Event};
pub use mode::{Delivery, DisconnectMode, ShutdownMode};
pub use reconnect::Reconnect;
