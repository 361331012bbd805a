//! The converter traits: how messages become bytes on the wire and back.
//!
//! A [`Converter`] fixes the wire protocol of a connector. For every outgoing
//! message it makes one [`Serializer`], and for every incoming message one
//! [`Deserializer`]. Both are plain state machines driven by the connection:
//!
//! ```text
//!  send(msg) ──► queue ──► Serializer::get_bytes(&msg, &mut WriteBuf) ──► write buffer ──► socket
//!  socket ──► read bytes ──► Deserializer::put_bytes(&[u8]) ──► Decoded::Done(msg) ──► event
//! ```
//!
//! Either side may pause with "wait for callback": it keeps a clone of the
//! [`Waker`] it was handed and calls [`Waker::wake`] (from any thread) once it
//! can go on. Until then the connection does not call it again; other
//! connections are not affected. A wake may arrive early or more than once, so
//! a serializer or deserializer that is called while still not ready simply
//! returns [`Encoded::Pending`] / [`Decoded::Pending`] again.

use std::fmt;
use std::task::Waker;

use bytes::Bytes;

use crate::error::{ProtocolError, SerializeError, panic_message};

/// [`Converter::message_size`] with a panic in it caught: it is the
/// converter's code, and it runs on the network thread, where a panic
/// would stop every connection. `Err` holds the panic's message.
pub(crate) fn guarded_size<C: Converter>(
    converter: &C,
    message: &C::Message,
) -> Result<usize, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        converter.message_size(message)
    }))
    .map_err(|payload| format!("message_size panicked: {}", panic_message(payload.as_ref())))
}

/// What a message to send counts ([`Converter::message_size`]), if its
/// converter does not refuse it ([`Converter::check_message`]): both
/// user code, run under one `catch_unwind`, a panic in either refusing
/// the message.
pub(crate) fn checked_send_size<C: Converter>(
    converter: &C,
    message: &C::Message,
) -> Result<usize, SerializeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        converter
            .check_message(message)
            .map(|()| converter.message_size(message))
    }))
    .unwrap_or_else(|payload| {
        let what = format!(
            "check_message or message_size panicked: {}",
            panic_message(payload.as_ref())
        );
        Err(SerializeError::Other(what.into()))
    })
}

/// [`guarded_size`] where the count must go on whatever happens (an event
/// delivered or handed back anyway): a message whose `message_size`
/// panicked counts as its type's size, and the panic is logged.
pub(crate) fn counted_size<C: Converter>(converter: &C, message: &C::Message) -> usize {
    guarded_size(converter, message).unwrap_or_else(|e| {
        tracing::warn!(
            "{e}; the message counts as {} bytes",
            std::mem::size_of::<C::Message>()
        );
        std::mem::size_of::<C::Message>()
    })
}

/// The most bytes one shared read chunk holds (64 KiB), and so the most a
/// message sliced from it (see [`Converter::shares_input`]) can keep alive
/// besides itself. A connector whose `read_chunk` is smaller uses that.
pub const SHARED_CHUNK: usize = 64 * 1024;

/// A factory of serializers and deserializers: it fixes the message type and
/// the wire protocol of a connector.
///
/// One converter is shared by every connection of a connector, from the
/// network thread and from the threads that send, so it must be
/// `Send + Sync`.
///
/// Serializers run on the thread that calls `send` (or on the network
/// thread, when the socket was full), with that connection locked; a
/// serializer must not call back into the connector for its own
/// connection.
///
/// Most wire formats are simpler written as a
/// [`Codec`](crate::converters::codec::Codec). The traits themselves, for a
/// protocol of newline-terminated lines (a serializer that writes as much
/// as fits and resumes; a deserializer that takes what it is given and
/// says how much it used):
///
/// ```
/// use std::task::Waker;
/// use pike::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
/// use pike::error::{ProtocolError, SerializeError};
///
/// struct Lines;
///
/// impl Converter for Lines {
///     type Message = String;
///     type Serializer = LineOut;
///     type Deserializer = LineIn;
///     fn serializer(&self, _line: &String) -> LineOut { LineOut { written: 0 } }
///     fn deserializer(&self) -> LineIn { LineIn { line: Vec::new() } }
/// }
///
/// struct LineOut { written: usize }
///
/// impl Serializer for LineOut {
///     type Message = String;
///     fn get_bytes(&mut self, line: &String, out: &mut WriteBuf<'_>, _: &Waker)
///         -> Result<Encoded, SerializeError>
///     {
///         if line.contains('\n') {
///             // Nothing written yet: the message comes back, the connection goes on.
///             return Err(SerializeError::Other("a line cannot hold a newline".into()));
///         }
///         let wire = [line.as_bytes(), b"\n"].concat();
///         self.written += out.put(&wire[self.written..]);
///         Ok(if self.written == wire.len() { Encoded::Done } else { Encoded::More })
///     }
/// }
///
/// struct LineIn { line: Vec<u8> }
///
/// impl Deserializer for LineIn {
///     type Message = String;
///     fn put_bytes(&mut self, data: &[u8], _: &Waker)
///         -> Result<(usize, Decoded<String>), ProtocolError>
///     {
///         let Some(end) = data.iter().position(|&b| b == b'\n') else {
///             if self.line.len() + data.len() > 4096 {
///                 return Err(ProtocolError::FieldTooLong { limit: 4096 });
///             }
///             self.line.extend_from_slice(data);
///             return Ok((data.len(), Decoded::NeedMore));
///         };
///         self.line.extend_from_slice(&data[..end]);
///         let line = String::from_utf8(std::mem::take(&mut self.line))
///             .map_err(|_| ProtocolError::InvalidUtf8)?;
///         Ok((end + 1, Decoded::Done(line)))
///     }
/// }
///
/// let mut d = Lines.deserializer();
/// assert_eq!(d.put_bytes(b"hel", Waker::noop()).unwrap(), (3, Decoded::NeedMore));
/// assert_eq!(
///     d.put_bytes(b"lo\nnext", Waker::noop()).unwrap(),
///     (3, Decoded::Done("hello".to_owned()))
/// );
/// ```
pub trait Converter: Send + Sync + 'static {
    /// The type of the messages sent and received.
    type Message: Send + 'static;
    /// Turns one message into bytes.
    type Serializer: Serializer<Message = Self::Message>;
    /// Turns bytes into one message.
    type Deserializer: Deserializer<Message = Self::Message>;

    /// Returns a serializer for `message`. The message itself stays with the
    /// connection (so that it can be handed back whole if it is not sent) and
    /// is passed to every [`Serializer::get_bytes`] call.
    fn serializer(&self, message: &Self::Message) -> Self::Serializer;

    /// Returns a deserializer for the next incoming message.
    fn deserializer(&self) -> Self::Deserializer;

    /// A fast path for small messages: writes all of `message` into `out`
    /// and returns true if it fits, or writes nothing and returns false.
    /// What it writes must be exactly what a serializer would.
    ///
    /// The connection tries it before asking for a serializer, which it
    /// then does not need. The default has no fast path.
    fn write_whole(&self, message: &Self::Message, out: &mut WriteBuf<'_>) -> bool {
        let _ = (message, out);
        false
    }

    /// Whether deserializers want the bytes read from the socket as shared
    /// [`Bytes`], through [`Deserializer::put_shared`], so that messages can
    /// be slices of them instead of copies. The connection then reads into
    /// shared chunks of at most [`SHARED_CHUNK`] bytes rather than one
    /// reused buffer. The default is false.
    fn shares_input(&self) -> bool {
        false
    }

    /// The memory `message` holds, in bytes: its own size plus what it owns
    /// on the heap. The connection counts it against its bounds: the
    /// connector's memory budget (received messages not yet taken, and
    /// messages not yet written), and the high-water mark and cap of the
    /// unsent queue. The default is `size_of::<Message>()`, right for
    /// messages that own no heap memory; a converter whose messages do
    /// (strings, buffers) should add it.
    ///
    /// A received message is counted as at least the bytes read for it
    /// (unless [`holds_input`](Self::holds_input) says otherwise), so this
    /// can only raise its count; a message to send is counted by this alone
    /// until it is serialized. It is called once or twice per message, so
    /// it must be cheap (a length, not a walk over the message).
    fn message_size(&self, message: &Self::Message) -> usize {
        let _ = message;
        std::mem::size_of::<Self::Message>()
    }

    /// Whether `message` may be sent: checked at `send`, before it is
    /// queued. An error hands it back at once
    /// ([`RejectReason::Serialize`](crate::error::RejectReason::Serialize)),
    /// and the connection carries on. The length-prefixed converters
    /// refuse a message over their limit here
    /// ([`SerializeError::TooLarge`]): the peer's deserializer would
    /// refuse it by closing the connection, losing every message sent
    /// with it. It is called once per message, so it must be cheap. The
    /// default accepts every message.
    fn check_message(&self, message: &Self::Message) -> Result<(), SerializeError> {
        let _ = message;
        Ok(())
    }

    /// Whether a received message holds about as much memory as the bytes
    /// read for it, so that the connection counts it as at least those
    /// bytes (and [`message_size`](Self::message_size) may only raise the
    /// count). True by default: a converter that reports too little cannot
    /// make the connector undercount what a peer sent. A converter whose
    /// deserializer moves the bytes elsewhere (the file converter writes
    /// them to disk and delivers a path) says false, and its messages are
    /// counted by `message_size` alone.
    fn holds_input(&self) -> bool {
        true
    }
}

/// What [`Serializer::get_bytes`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// The message is fully serialized (including whatever this call wrote).
    Done,
    /// More bytes follow; call again when the write buffer has room. A call
    /// that wrote nothing although the write buffer was empty is a contract
    /// violation and closes the connection.
    More,
    /// More bytes follow but are not ready yet: the serializer keeps the
    /// waker and wakes it when they are. Bytes written by this call are kept.
    Pending,
}

/// Serializes one message, possibly over many calls.
pub trait Serializer: Send + 'static {
    /// The message type this serializer reads.
    type Message;

    /// Writes the next bytes of `message` into `out`, never more than
    /// [`WriteBuf::remaining`]. It is called whenever the connection's write
    /// buffer has room, with the same message every time.
    ///
    /// An error before any byte of the message reached the socket hands the
    /// message back to the application and the connection carries on; after
    /// that the stream is broken and the connection closes.
    fn get_bytes(
        &mut self,
        message: &Self::Message,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError>;
}

/// What [`Deserializer::put_bytes`] achieved, besides how many bytes it took.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<M> {
    /// A message is complete. Bytes after the consumed ones belong to the
    /// next message and go to a fresh deserializer.
    Done(M),
    /// Call again when more bytes arrive. Bytes not consumed are kept and
    /// passed again, in front of the new ones.
    NeedMore,
    /// Do not call again until the waker is woken (for instance while
    /// consumed bytes are written to a slow sink). Bytes not consumed are
    /// kept and passed again; the call after the wake may get no bytes at all.
    Pending,
}

/// Deserializes one message from bytes as they arrive.
pub trait Deserializer: Send + 'static {
    /// The message type this deserializer produces.
    type Message;

    /// Consumes a prefix of `data` and says what it achieved: returns the
    /// number of bytes consumed (at most `data.len()`) and the outcome.
    ///
    /// A [`ProtocolError`] closes the connection with that reason. It must
    /// never panic, loop or allocate more than the converter's limits allow,
    /// whatever the bytes.
    fn put_bytes(
        &mut self,
        data: &[u8],
        waker: &Waker,
    ) -> Result<(usize, Decoded<Self::Message>), ProtocolError>;

    /// [`put_bytes`](Self::put_bytes) with the input `&data[start..]` as part
    /// of a shared chunk, so that a message can be a slice of it
    /// ([`Bytes::slice`]) rather than a copy. Called instead of `put_bytes`
    /// for bytes straight from the socket when the converter asks for it
    /// ([`Converter::shares_input`]); bytes kept over from an earlier read
    /// still come through `put_bytes`. Same contract as `put_bytes`; the
    /// default calls it.
    fn put_shared(
        &mut self,
        data: &Bytes,
        start: usize,
        waker: &Waker,
    ) -> Result<(usize, Decoded<Self::Message>), ProtocolError> {
        self.put_bytes(&data[start..], waker)
    }
}

/// The free part of a connection's bounded write buffer, lent to a
/// [`Serializer`].
///
/// Writes beyond [`remaining`](Self::remaining) are cut short: [`put`](Self::put)
/// reports how much it took, so a serializer can resume where it stopped.
pub struct WriteBuf<'a> {
    buf: &'a mut Vec<u8>,
    limit: usize,
}

impl<'a> WriteBuf<'a> {
    /// Lends the room between `buf.len()` and `limit` to a serializer.
    pub fn new(buf: &'a mut Vec<u8>, limit: usize) -> Self {
        Self { buf, limit }
    }

    /// How many more bytes fit.
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.buf.len())
    }

    /// Appends as much of `data` as fits and returns how many bytes that was.
    pub fn put(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.remaining());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// This buffer's room, but at most `room` bytes of it.
    #[cfg_attr(
        not(any(feature = "postcard", feature = "json", feature = "msgpack")),
        allow(dead_code)
    )]
    pub(crate) fn capped(&mut self, room: usize) -> WriteBuf<'_> {
        WriteBuf {
            limit: self.limit.min(self.buf.len().saturating_add(room)),
            buf: self.buf,
        }
    }

    /// Lends the next `n` bytes of room to `fill`, for an encoder that
    /// writes into a slice; keeps them if `fill` returns true. Returns
    /// false, having written nothing, if `n` bytes do not fit or `fill`
    /// fails.
    pub fn put_with(&mut self, n: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> bool {
        if n > self.remaining() {
            return false;
        }
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        if fill(&mut self.buf[start..]) {
            true
        } else {
            self.buf.truncate(start);
            false
        }
    }
}

impl fmt::Debug for WriteBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBuf")
            .field("remaining", &self.remaining())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_buf_cuts_at_limit() {
        let mut v = b"ab".to_vec();
        let mut w = WriteBuf::new(&mut v, 5);
        assert_eq!(w.remaining(), 3);
        assert_eq!(w.put(b"cdef"), 3);
        assert_eq!(w.remaining(), 0);
        assert_eq!(w.put(b"x"), 0);
        assert_eq!(v, b"abcde");
    }
}
