//! Pike: a thread-safe, message-oriented socket library.
//!
//! Applications hand Pike whole typed messages and get whole messages back
//! as events. Pike owns the sockets, the framing and the buffering, and the
//! hard cases: partial writes, slow peers, disconnects in the middle of a
//! message, and closing without losing a message. Every message passed to
//! `send` is either written to its socket in full or handed back exactly
//! once.
//!
//! ```text
//!  application threads ──connect/merge/…──► Connector ──commands──► reactor (network thread)
//!     │     ▲                                                          │ owns every socket,
//!     │     └──────── events (MPMC queues, in batches) ◄───────────────┤ reads, passes events on
//!     └──send/disconnect──► Endpoint (sans-IO) + socket, one per connection, behind a lock
//!                           written on the sender's thread while the socket takes it
//! ```
//!
//! * [`converter`]: the [`Converter`] traits that fix
//!   the wire protocol; [`converters`] has ready-made ones, wire-compatible
//!   with the Python original.
//! * [`endpoint`]: the per-connection state machine. It has no networking
//!   code and reads no clock; tests drive it byte by byte.
//! * [`event`]: the events an application receives.
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

pub mod connector;
pub mod converter;
pub mod converters;
pub mod endpoint;
pub mod error;
pub mod event;
mod memory;
pub mod mode;
mod reactor;
mod sync;

pub use connector::{Address, Connector, ConnectorBuilder, Queued};
pub use converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
pub use error::{
    ConnectError, DisconnectReason, ProtocolError, RecvTimeoutError, RejectReason, SendError,
    SendTimeoutError, SerializeError, StoppedError, TryRecvError, TrySendError,
};
pub use event::{Connection, Event};
pub use mode::{Delivery, DisconnectMode, ShutdownMode};
