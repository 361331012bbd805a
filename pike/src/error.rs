//! Error types.
//!
//! Errors are sorted by whose fault they are, as rustls sorts its own:
//! the peer's ([`PeerFault`], [`ProtocolError`]: bytes that do not follow
//! the wire format, a limit or a timeout broken), the caller's
//! ([`UsageError`], [`ConverterFault`], [`SerializeError`]: the calling
//! code's own bug) and a local or network failure ([`SocketFailure`],
//! [`StartError`]). [`DisconnectReason`] says which of them ended a
//! connection. The enums that sort faults are `#[non_exhaustive]`.
//!
//! One word says the connector has stopped, whatever the call: `Stopped`
//! ([`StoppedError`], [`TrySendError::Stopped`],
//! [`SendTimeoutError::Stopped`], [`RecvError::Stopped`], …), and every
//! error that refuses a message hands it back (`into_inner`). The send
//! and receive errors are complete sets, as crossbeam-channel's are: a
//! `match` on them needs no catch-all.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

/// The peer sent bytes that do not follow the wire format, or more than the
/// configured limits allow. It closes that one connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A bool was neither `True` nor `False`.
    #[error("invalid bool: expected `True` or `False`")]
    InvalidBool,
    /// A decimal number held something other than digits (and a leading `-`
    /// where allowed), or no digit at all.
    #[error("invalid decimal number")]
    InvalidNumber,
    /// A decimal number does not fit its type.
    #[error("number out of range")]
    NumberOverflow,
    /// A space-terminated field ran past its longest valid length.
    #[error("field longer than {limit} bytes without its terminating space")]
    FieldTooLong {
        /// The longest valid field, in bytes.
        limit: usize,
    },
    /// A float's text does not parse.
    #[error("invalid float")]
    InvalidFloat,
    /// A length prefix announced more than the maximum message size. Nothing
    /// was allocated for it.
    #[error("message of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced length (a lower bound if it did not fit in a `u64`).
        length: u64,
        /// The configured maximum message size.
        limit: usize,
    },
    /// A string message is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A file name that could write outside the receiving directory.
    #[error("unsafe file name {0:?}")]
    UnsafeFileName(String),
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    /// A deserializer finished a message without consuming any byte, which
    /// would let it produce messages forever (a converter bug).
    #[error("deserializer produced a message from no input")]
    EmptyMessage,
    /// A deserializer left bytes unconsumed while asking for more beyond the
    /// connection's pending-input bound (a converter bug or a hostile peer).
    #[error("deserializer holds more than {limit} unconsumed bytes")]
    Stalled {
        /// The bound on unconsumed input.
        limit: usize,
    },
    /// The peer speaks TLS where plaintext was expected: its first bytes
    /// are a TLS record (a client's hello, or a server's alert), which the
    /// converter could not read. Connect (or listen) with TLS, as the
    /// peer does.
    #[error("the peer speaks TLS where plaintext was expected (connect or listen with TLS)")]
    PeerSpeaksTls,
    /// A custom converter's error.
    #[error("{0}")]
    Other(Box<dyn StdError + Send + Sync>),
}

/// A serializer could not produce a message's bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeError {
    /// Reading the message's data failed (for instance an unreadable file).
    #[error("i/o error while serializing: {0}")]
    Io(#[from] io::Error),
    /// The message is larger than its converter's limit, which the peer's
    /// converter enforces too (it would close the connection on it): it
    /// is refused at `send` instead (see [`Converter::check_message`]).
    ///
    /// [`Converter::check_message`]: crate::converter::Converter::check_message
    #[error("message of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The message's size as the limit counts it.
        length: usize,
        /// The converter's limit.
        limit: usize,
    },
    /// A custom converter's error.
    #[error("{0}")]
    Other(Box<dyn StdError + Send + Sync>),
}

/// Why a connection ended, or why a local disconnect was cut short:
/// the peer closed it, the peer broke the rules ([`PeerFault`]), the
/// application's converter failed ([`ConverterFault`], a bug in the
/// calling code), the socket or the network failed ([`SocketFailure`]),
/// or TLS did ([`TlsError`], whose [kind](TlsError::kind) says which).
///
/// ```
/// use pike::{DisconnectReason, PeerFault, ProtocolError};
///
/// fn whose_fault(reason: &DisconnectReason) -> &'static str {
///     match reason {
///         DisconnectReason::PeerClosed => "nobody's: the peer closed",
///         DisconnectReason::Peer(PeerFault::Protocol(ProtocolError::TooLarge { .. })) => {
///             "the peer's: a message over the limit"
///         }
///         DisconnectReason::Peer(_) => "the peer's",
///         DisconnectReason::Converter(_) => "ours: a converter bug",
///         DisconnectReason::Socket(_) => "the network's",
///         DisconnectReason::Tls(_) => "TLS: see its kind",
///         _ => "something newer",
///     }
/// }
/// # let _ = whose_fault;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed its side of the connection.
    #[error("peer closed the connection")]
    PeerClosed,
    /// The peer broke the wire protocol, a limit or a timeout.
    #[error(transparent)]
    Peer(PeerFault),
    /// The application's converter failed: a bug in the calling code.
    #[error(transparent)]
    Converter(ConverterFault),
    /// The socket failed or the operating system gave up on the peer.
    #[error(transparent)]
    Socket(SocketFailure),
    /// TLS failed: the handshake (an untrusted certificate, a name
    /// mismatch, no client certificate, a peer that does not speak TLS) or
    /// a record the peer sent.
    #[error("{0}")]
    Tls(TlsError),
}

/// The peer's fault: what it sent, or failed to send in time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerFault {
    /// The peer broke the wire protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// Nothing was received for the configured idle timeout.
    #[error("no byte received for {0:?} (idle timeout)")]
    IdleTimeout(Duration),
    /// A message was begun and not completed within the configured message
    /// timeout.
    #[error("a message took longer than {0:?} to arrive (message timeout)")]
    MessageTimeout(Duration),
}

/// The application's converter failed: a bug (or an unreadable source)
/// in the calling code, not the peer's doing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConverterFault {
    /// A serializer failed after part of its message was already written, so
    /// the stream could not go on.
    #[error("serializer failed mid-message: {0}")]
    Serialize(SerializeError),
    /// A serializer wrote nothing into an empty write buffer yet asked to be
    /// called again (a converter bug that would otherwise spin).
    #[error("serializer made no progress")]
    SerializerStalled,
    /// A serializer panicked.
    #[error("serializer panicked: {0}")]
    SerializerPanicked(String),
    /// A deserializer panicked.
    #[error("deserializer panicked: {0}")]
    DeserializerPanicked(String),
}

/// The socket or the network failed: a local failure, or one the
/// operating system reports of the link.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketFailure {
    /// The socket failed (reset by the peer, broken pipe, …).
    #[error("socket error: {0}")]
    Io(io::Error),
    /// The operating system gave up on the peer: TCP keepalive probes went
    /// unanswered, or sent data stayed unacknowledged past the user timeout
    /// (`ETIMEDOUT`).
    #[error("peer stopped responding: {0}")]
    Unresponsive(io::Error),
}

impl SocketFailure {
    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        match self {
            Self::Io(e) | Self::Unresponsive(e) => e,
        }
    }

    /// The operating system's error, handed back.
    pub fn into_io_error(self) -> io::Error {
        match self {
            Self::Io(e) | Self::Unresponsive(e) => e,
        }
    }
}

impl From<ProtocolError> for DisconnectReason {
    fn from(e: ProtocolError) -> Self {
        Self::Peer(PeerFault::Protocol(e))
    }
}

impl From<io::Error> for DisconnectReason {
    fn from(e: io::Error) -> Self {
        Self::Socket(SocketFailure::Io(e))
    }
}

impl From<PeerFault> for DisconnectReason {
    fn from(e: PeerFault) -> Self {
        Self::Peer(e)
    }
}

impl From<ConverterFault> for DisconnectReason {
    fn from(e: ConverterFault) -> Self {
        Self::Converter(e)
    }
}

impl DisconnectReason {
    /// The reason for a socket error: a time-out of the operating system's
    /// own (keepalive, `TCP_USER_TIMEOUT`) is told apart from other errors,
    /// and a TLS failure is told as one.
    pub(crate) fn from_socket_error(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::TimedOut {
            return Self::Socket(SocketFailure::Unresponsive(error));
        }
        match TlsError::take_from(error) {
            Ok(tls) => Self::Tls(tls),
            Err(error) => Self::Socket(SocketFailure::Io(error)),
        }
    }
}

/// What went wrong in TLS, by kind, for a program to act on; its text
/// (`Display`) says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate is not signed by a trusted authority (or its
    /// signature is bad).
    UntrustedCertificate,
    /// The server's certificate is not valid for the name connected to.
    NameMismatch,
    /// The certificate has expired or is not valid yet.
    CertificateExpired,
    /// The server requires a client certificate and got none (or the
    /// client's was refused).
    NoClientCertificate,
    /// The peer does not speak TLS (a plaintext peer), or not a version or
    /// cipher suite in common.
    ProtocolMismatch,
    /// The peer refused the handshake with an alert of its own (it did not
    /// trust our certificate, for example).
    RefusedByPeer,
    /// The handshake did not end within the connector's handshake timeout.
    HandshakeTimedOut,
    /// The peer sent more of a handshake than the limit allows (the TLS
    /// settings' `with_max_handshake_size`).
    HandshakeTooLarge,
    /// The peer's certificate chain carries more certificates than the
    /// limit allows (the TLS settings' `with_max_intermediates`); it was
    /// refused before anything of it was verified.
    ChainTooLong,
    /// Anything else (a corrupt record, a misbehaving peer, …).
    Other,
}

/// A TLS failure: its [`kind`](Self::kind) and what rustls said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS: {message}")]
pub struct TlsError {
    kind: TlsErrorKind,
    message: String,
}

#[cfg_attr(not(feature = "tls"), allow(dead_code))]
impl TlsError {
    pub(crate) fn new(kind: TlsErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    /// Wraps the failure in an `io::Error`, the way the transport reports
    /// it; [`take_from`](Self::take_from) gets it back.
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The TLS failure inside `error`, or the error as it was.
    pub(crate) fn take_from(error: io::Error) -> Result<Self, io::Error> {
        if error.get_ref().is_some_and(|e| e.is::<TlsError>()) {
            let inner = error.into_inner().expect("checked above");
            Ok(*inner.downcast::<TlsError>().expect("checked above"))
        } else {
            Err(error)
        }
    }
}

/// Why a `connect` attempt did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address could not be resolved.
    #[error("cannot resolve address: {0}")]
    Resolve(io::Error),
    /// Connecting failed (refused, unreachable, …).
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    /// `disconnect` or `shutdown` cancelled the attempt.
    #[error("connect cancelled")]
    Cancelled,
    /// The connect timeout (or `connect_timeout`'s own) expired first.
    #[error("connect timed out")]
    TimedOut,
    /// The TLS handshake failed (see [`TlsError::kind`]).
    #[error("{0}")]
    Tls(TlsError),
    /// The connector has stopped (or stopped before the attempt ended):
    /// no connection was made.
    #[error("the connector has stopped")]
    Stopped,
}

impl From<StoppedError> for ConnectError {
    fn from(StoppedError: StoppedError) -> Self {
        Self::Stopped
    }
}

impl ConnectError {
    /// Whether trying again cannot mend it, so that a connection with a
    /// [`Reconnect`](crate::Reconnect) policy gives up at once: a
    /// certificate that is untrusted, for another name, expired or whose
    /// chain is too long; a server that refuses our certificate (or asks
    /// for one we lack) or does not speak TLS; a handshake larger than
    /// the limit. Refused, unreachable, unresolved names, timeouts and
    /// handshakes cut short are worth another try. (`Cancelled` and
    /// `Stopped` are neither: nothing tries again after them.)
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Tls(e) => matches!(
                e.kind(),
                TlsErrorKind::UntrustedCertificate
                    | TlsErrorKind::NameMismatch
                    | TlsErrorKind::CertificateExpired
                    | TlsErrorKind::NoClientCertificate
                    | TlsErrorKind::ProtocolMismatch
                    | TlsErrorKind::RefusedByPeer
                    | TlsErrorKind::HandshakeTooLarge
                    | TlsErrorKind::ChainTooLong
            ),
            Self::Resolve(_) | Self::Io(_) | Self::TimedOut | Self::Cancelled | Self::Stopped => {
                false
            }
        }
    }

    /// Whether another attempt may follow it.
    pub(crate) fn is_retryable(&self) -> bool {
        !self.is_permanent() && !matches!(self, Self::Cancelled | Self::Stopped)
    }

    /// The error for a failed connect: a TLS failure is told as one.
    pub(crate) fn from_io(error: io::Error) -> Self {
        match TlsError::take_from(error) {
            Ok(tls) => Self::Tls(tls),
            Err(error) => Self::Io(error),
        }
    }
}

/// Why a message handed to `send` came back in a
/// [`RejectedMessage`](crate::event::RejectedMessage) event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The connection is disconnecting.
    #[error("connection is disconnecting")]
    Disconnecting,
    /// The connection is closed or was never known.
    #[error("connection is closed or unknown")]
    Closed,
    /// Its serializer failed before any of its bytes reached the socket; the
    /// connection carries on.
    #[error("serializer failed: {0}")]
    Serialize(SerializeError),
    /// The connection's unsent queue is at its hard cap (the peer is not
    /// reading fast enough); the connection carries on.
    #[error("the connection's unsent queue is full")]
    QueueFull,
}

/// The caller used the API in a way it does not allow: a bug in the
/// calling code, not a condition of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// `run` or `spawn` on a connector already started (a connector runs
    /// once).
    #[error("the connector is already started: a connector runs once")]
    AlreadyStarted,
}

/// Why a connector did not start: [`ConnectorBuilder::build`] or
/// [`ConnectorBuilder::spawn`] (which builds, then starts), or
/// [`Connector::spawn`]. It converts into an `io::Error`, so `?` works in
/// a function that returns `io::Result`.
///
/// [`ConnectorBuilder::build`]: crate::ConnectorBuilder::build
/// [`ConnectorBuilder::spawn`]: crate::ConnectorBuilder::spawn
/// [`Connector::spawn`]: crate::Connector::spawn
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The caller's mistake (started twice).
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The listening address could not be bound (in use, not allowed, a
    /// Unix path that exists, …).
    #[error("cannot listen: {0}")]
    Listen(#[source] io::Error),
    /// The operating system would not give the network loop what it needs
    /// (its poller or its waker).
    #[error("cannot set up the network loop: {0}")]
    Poll(#[source] io::Error),
    /// The operating system would not start a thread.
    #[error("cannot start the network thread: {0}")]
    Thread(#[source] io::Error),
}

impl From<StartError> for io::Error {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Listen(e) | StartError::Poll(e) | StartError::Thread(e) => e,
            StartError::Usage(e) => io::Error::other(e),
        }
    }
}

/// The connector has stopped: no event can be delivered any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connector has stopped")]
pub struct StoppedError;

/// `send` after the connector stopped: the message comes straight back.
#[derive(PartialEq, Eq, thiserror::Error)]
#[error("the connector has stopped; the message was not sent")]
pub struct SendError<M>(pub M);

impl<M> std::fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        self.0
    }
}

/// Why `try_send` handed a message back.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum TrySendError<M> {
    /// The connection's unsent queue is over its high-water mark.
    #[error("the connection's unsent queue is full")]
    Full(M),
    /// The connector has stopped.
    #[error("the connector has stopped; the message was not sent")]
    Stopped(M),
}

impl<M> TrySendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(m) | Self::Stopped(m) => m,
        }
    }

    /// Whether the queue was full (as opposed to the connector stopped).
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }
}

impl<M> std::fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "Full(..)",
            Self::Stopped(_) => "Stopped(..)",
        })
    }
}

/// Why `send_timeout`, `send_deadline` or `send_waiting_for_room` handed a message
/// back.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum SendTimeoutError<M> {
    /// The unsent queue did not drain below its low-water mark in time.
    #[error("timed out waiting for room in the connection's unsent queue")]
    Timeout(M),
    /// The connector has stopped.
    #[error("the connector has stopped; the message was not sent")]
    Stopped(M),
}

impl<M> SendTimeoutError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Timeout(m) | Self::Stopped(m) => m,
        }
    }

    /// Whether it timed out (as opposed to the connector stopped).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }
}

impl<M> std::fmt::Debug for SendTimeoutError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Timeout(_) => "Timeout(..)",
            Self::Stopped(_) => "Stopped(..)",
        })
    }
}

/// Why `recv`, `recv_batch` (or their `recv_connection` forms) returned
/// no event: the queue is done.
///
/// Every receive says it the same way: [`Stopped`](Self::Stopped) once
/// the connector has stopped and every event of the queue was taken,
/// [`Closed`](Self::Closed) when a connection's own queue ended while the
/// connector runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The connector has stopped and the queue is empty.
    #[error("the connector has stopped")]
    Stopped,
    /// A connection's own queue ended: its events were merged into the
    /// main queue, its last event was taken, or it is unknown. (The main
    /// queue is never closed this way.)
    #[error("the connection's queue is closed (merged, ended or unknown)")]
    Closed,
}

/// Why `try_recv` (or `try_recv_connection`) returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// No event is ready now.
    #[error("no event ready")]
    Empty,
    /// The connector has stopped and the queue is empty.
    #[error("the connector has stopped")]
    Stopped,
    /// The connection's own queue ended (see [`RecvError::Closed`]).
    #[error("the connection's queue is closed (merged, ended or unknown)")]
    Closed,
}

/// Why `recv_timeout` or `recv_deadline` (or their `recv_connection`
/// forms) returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// No event came in time.
    #[error("timed out waiting for an event")]
    Timeout,
    /// The connector has stopped and the queue is empty.
    #[error("the connector has stopped")]
    Stopped,
    /// The connection's own queue ended (see [`RecvError::Closed`]).
    #[error("the connection's queue is closed (merged, ended or unknown)")]
    Closed,
}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Stopped => Self::Stopped,
            RecvError::Closed => Self::Closed,
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Stopped => Self::Stopped,
            RecvError::Closed => Self::Closed,
        }
    }
}

/// Describes a panic payload for a [`DisconnectReason`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
