//! Typed messages through serde, framed with Pike's length prefix.
//!
//! ```text
//! <body length in decimal> ␠ <body: the message in the format>
//! e.g. "5 \x2a\x03abc" (postcard), "14 {\"id\":1,\"x\":2}" (JSON)
//! ```
//!
//! The byte layer is the string converter's, so any peer that speaks
//! Pike's framing can carry these messages. Formats, each behind a cargo
//! feature:
//!
//! | converter | feature | format | for |
//! |---|---|---|---|
//! | [`PostcardConverter`] | `postcard` | [postcard](https://docs.rs/postcard) | Rust to Rust: compact, fast; the recommended default |
//! | [`JsonConverter`] | `json` | JSON (`serde_json`) | debugging, other languages |
//! | [`MsgpackConverter`] | `msgpack` | MessagePack (`rmp-serde`, structs as maps) | Python peers (`msgpack`) |
//!
//! A body longer than the maximum message size is refused from its length,
//! before anything is allocated. The bounds count a message by the memory
//! it holds (its strings, vectors and maps, found by a walk over it with a
//! counting serializer, about what encoding it costs), and a received one
//! by at least the bytes read for it. A message that cannot be encoded comes
//! back as a [`RejectedMessage`](crate::event::RejectedMessage) with
//! [`RejectReason::Serialize`](crate::error::RejectReason::Serialize), and
//! the connection carries on; a body that does not decode is a protocol
//! error that closes its connection. Postcard messages that fit the write
//! buffer are encoded straight into it, with no buffer of their own.
//!
//! ```
//! # #[cfg(feature = "postcard")] {
//! use std::task::Waker;
//! use pike::converter::{Converter, Decoded, Deserializer, WriteBuf};
//! use pike::converters::serde::PostcardConverter;
//!
//! #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
//! struct Job { id: u64, name: String }
//!
//! let jobs = PostcardConverter::<Job>::new();
//! let job = Job { id: 7, name: "resize".into() };
//! let mut wire = Vec::new();
//! assert!(jobs.write_whole(&job, &mut WriteBuf::new(&mut wire, 1024)));
//! let mut d = jobs.deserializer();
//! let (used, decoded) = d.put_bytes(&wire, Waker::noop()).unwrap();
//! assert_eq!((used, decoded), (wire.len(), Decoded::Done(job)));
//! # }
//! ```

mod size;

use std::fmt;
use std::marker::PhantomData;
use std::task::Waker;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::primitives::{
    DEFAULT_MAX_MESSAGE_SIZE, LengthPrefixed, LengthPrefixedDeserializer, LengthPrefixedSerializer,
};
use crate::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use crate::error::{ProtocolError, SerializeError};

/// A serde data format: how a message becomes a body and back.
pub trait Format: Send + Sync + 'static {
    /// Encodes `message` into a new body.
    fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, BoxError>;

    /// Decodes one whole body.
    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, BoxError>;

    /// Encodes `message` straight into `out` with its length prefix, if the
    /// format knows the body's length up front and it fits; returns false
    /// (having written nothing) otherwise. The default never does.
    fn write_whole<T: Serialize>(message: &T, out: &mut WriteBuf<'_>) -> bool {
        let _ = (message, out);
        false
    }
}

/// A format's error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Messages of type `T` in format `F`, length-prefixed; see the [module
/// documentation](self).
pub struct SerdeConverter<T, F> {
    max_message_size: usize,
    _types: PhantomData<fn() -> (T, F)>,
}

/// [postcard](https://docs.rs/postcard): compact, for Rust peers.
#[cfg(feature = "postcard")]
pub type PostcardConverter<T> = SerdeConverter<T, Postcard>;
/// JSON, through `serde_json`.
#[cfg(feature = "json")]
pub type JsonConverter<T> = SerdeConverter<T, Json>;
/// MessagePack, through `rmp-serde`, structs as maps (named fields).
#[cfg(feature = "msgpack")]
pub type MsgpackConverter<T> = SerdeConverter<T, Msgpack>;

impl<T, F> SerdeConverter<T, F> {
    /// A converter with the [default maximum message
    /// size](DEFAULT_MAX_MESSAGE_SIZE) for a body.
    pub const fn new() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            _types: PhantomData,
        }
    }

    /// Sets the largest body, in bytes, that deserializers accept and
    /// `send` takes: the encoded message, not counting its length field.
    /// A larger one is refused at `send`
    /// ([`SerializeError::TooLarge`], handed back in a `RejectedMessage`;
    /// the connection carries on).
    pub const fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
}

impl<T, F> Default for SerdeConverter<T, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, F> Clone for SerdeConverter<T, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, F> Copy for SerdeConverter<T, F> {}

impl<T, F> fmt::Debug for SerdeConverter<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeConverter")
            .field("format", &std::any::type_name::<F>())
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

impl<T, F> Converter for SerdeConverter<T, F>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    F: Format,
{
    type Message = T;
    type Serializer = SerdeSerializer<T>;
    type Deserializer = SerdeDeserializer<T, F>;

    fn serializer(&self, message: &T) -> SerdeSerializer<T> {
        // Encoded at once, so that an error is known before any byte goes
        // out (and the message can come back whole).
        // A body over the limit is refused here: the peer would cut the
        // connection for it.
        let limit = self.max_message_size;
        let encoded = F::encode(message)
            .map_err(SerializeError::Other)
            .and_then(|body| {
                if body.len() > limit {
                    return Err(SerializeError::TooLarge {
                        length: body.len(),
                        limit,
                    });
                }
                let framed = LengthPrefixed::<Vec<u8>>::new();
                Ok((framed.serializer(&body), body))
            });
        SerdeSerializer {
            encoded,
            _message: PhantomData,
        }
    }

    fn deserializer(&self) -> SerdeDeserializer<T, F> {
        SerdeDeserializer {
            body: LengthPrefixed::<Vec<u8>>::new()
                .with_max_message_size(self.max_message_size)
                .deserializer(),
            _types: PhantomData,
        }
    }

    fn write_whole(&self, message: &T, out: &mut WriteBuf<'_>) -> bool {
        // Room for a body at the limit and its length field, no more: a
        // larger message does not fit, and goes by `serializer`, which
        // refuses it.
        let limit = self.max_message_size;
        let field = limit.checked_ilog10().map_or(1, |d| d as usize + 1) + 1;
        F::write_whole(message, &mut out.capped(limit.saturating_add(field)))
    }

    /// The message's own size and the heap memory serde shows of it (see
    /// the [module documentation](self)).
    fn message_size(&self, message: &T) -> usize {
        std::mem::size_of::<T>() + size::heap_size(message)
    }
}

/// Writes one encoded message (or reports why it could not be encoded).
pub struct SerdeSerializer<T> {
    #[allow(clippy::type_complexity)]
    encoded: Result<(LengthPrefixedSerializer<Vec<u8>>, Vec<u8>), SerializeError>,
    _message: PhantomData<fn(&T)>,
}

impl<T> fmt::Debug for SerdeSerializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeSerializer").finish_non_exhaustive()
    }
}

impl<T: 'static> Serializer for SerdeSerializer<T> {
    type Message = T;

    fn get_bytes(
        &mut self,
        _message: &T,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        match &mut self.encoded {
            Ok((framed, body)) => framed.get_bytes(body, out, waker),
            Err(e) => Err(std::mem::replace(
                e,
                SerializeError::Other("already reported".into()),
            )),
        }
    }
}

/// Reads a length prefix, then decodes the body in the format.
pub struct SerdeDeserializer<T, F> {
    body: LengthPrefixedDeserializer<Vec<u8>>,
    _types: PhantomData<fn() -> (T, F)>,
}

impl<T, F> fmt::Debug for SerdeDeserializer<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerdeDeserializer")
            .field("body", &self.body)
            .finish()
    }
}

impl<T: DeserializeOwned + Send + 'static, F: Format> Deserializer for SerdeDeserializer<T, F> {
    type Message = T;

    fn put_bytes(
        &mut self,
        data: &[u8],
        waker: &Waker,
    ) -> Result<(usize, Decoded<T>), ProtocolError> {
        let (used, outcome) = self.body.put_bytes(data, waker)?;
        let outcome = match outcome {
            Decoded::Done(body) => Decoded::Done(F::decode(&body).map_err(ProtocolError::Other)?),
            Decoded::NeedMore => Decoded::NeedMore,
            Decoded::Pending => Decoded::Pending,
        };
        Ok((used, outcome))
    }
}

// ----- the formats ---------------------------------------------------------------

/// [postcard](https://docs.rs/postcard): its encoded length is known up front,
/// so a message that fits goes straight into the write buffer.
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Format for Postcard {
    fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, BoxError> {
        Ok(postcard::to_allocvec(message)?)
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, BoxError> {
        let (message, rest) = postcard::take_from_bytes(body)?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the message", rest.len()).into());
        }
        Ok(message)
    }

    fn write_whole<T: Serialize>(message: &T, out: &mut WriteBuf<'_>) -> bool {
        let Ok(len) = postcard::experimental::serialized_size(message) else {
            return false;
        };
        let mut digits = [0u8; 24];
        let header = decimal_header(&mut digits, len);
        let header_len = header.len();
        out.put_with(header_len + len, |room| {
            room[..header_len].copy_from_slice(header);
            postcard::to_slice(message, &mut room[header_len..]).is_ok_and(|b| b.len() == len)
        })
    }
}

/// `len` in decimal followed by a space, written at the end of `buf`.
#[cfg(feature = "postcard")]
fn decimal_header(buf: &mut [u8; 24], mut len: usize) -> &[u8] {
    let mut at = buf.len() - 1;
    buf[at] = b' ';
    loop {
        at -= 1;
        buf[at] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            return &buf[at..];
        }
    }
}

/// JSON, through `serde_json`.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy)]
pub struct Json;

#[cfg(feature = "json")]
impl Format for Json {
    fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(message)?)
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(body)?)
    }
}

/// MessagePack, through `rmp-serde`; structs are maps with their field
/// names, as Python's `msgpack` reads and writes them.
#[cfg(feature = "msgpack")]
#[derive(Debug, Clone, Copy)]
pub struct Msgpack;

#[cfg(feature = "msgpack")]
impl Format for Msgpack {
    fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, BoxError> {
        Ok(rmp_serde::to_vec_named(message)?)
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, BoxError> {
        Ok(rmp_serde::from_slice(body)?)
    }
}
