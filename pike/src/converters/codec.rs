//! Writing a converter the short way: a [`Codec`] encodes a message into a
//! buffer and decodes one from the front of a buffer; [`CodecConverter`]
//! turns it into a [`Converter`].
//!
//! For messages that are a few bytes with a header of your own. A codec
//! sees whole buffers: it never deals with wakers, partial writes or input
//! that arrives a byte at a time (the converter keeps what has arrived
//! until [`Codec::decode`] finds a whole message in it, bounded by
//! [`Codec::max_message_size`]). A converter that streams (files, say) or
//! waits for something is written against the [`Converter`] traits
//! directly.
//!
//! A message with a one-byte kind and a big-endian `u16` length:
//!
//! ```
//! use pike::converters::codec::{Codec, CodecConverter};
//! use pike::error::{ProtocolError, SerializeError};
//!
//! #[derive(Debug, PartialEq)]
//! struct Frame { kind: u8, body: Vec<u8> }
//!
//! struct Frames;
//!
//! impl Codec for Frames {
//!     type Message = Frame;
//!
//!     fn encode(&self, f: &Frame, out: &mut Vec<u8>) -> Result<(), SerializeError> {
//!         let len = u16::try_from(f.body.len()).map_err(|_| SerializeError::Other("body over 64 KiB".into()))?;
//!         out.push(f.kind);
//!         out.extend_from_slice(&len.to_be_bytes());
//!         out.extend_from_slice(&f.body);
//!         Ok(())
//!     }
//!
//!     fn decode(&self, buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
//!         let [kind, hi, lo, rest @ ..] = buf else { return Ok(None) };
//!         let len = usize::from(u16::from_be_bytes([*hi, *lo]));
//!         Ok(rest.get(..len).map(|body| (Frame { kind: *kind, body: body.to_vec() }, 3 + len)))
//!     }
//! }
//!
//! let converter = CodecConverter::new(Frames);
//! # use pike::converter::{Converter, Decoded, Deserializer};
//! # let mut d = converter.deserializer();
//! # let w = std::task::Waker::noop();
//! # assert_eq!(d.put_bytes(&[7, 0], w).unwrap(), (2, Decoded::NeedMore));
//! # assert_eq!(d.put_bytes(&[2, b'h', b'i', 9], w).unwrap(), (3, Decoded::Done(Frame { kind: 7, body: b"hi".to_vec() })));
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::Waker;

use crate::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use crate::error::{ProtocolError, SerializeError};

use super::primitives::DEFAULT_MAX_MESSAGE_SIZE;

/// Encodes messages into buffers and decodes them from buffers; see the
/// [module documentation](self).
pub trait Codec: Send + Sync + 'static {
    /// The type of the messages.
    type Message: Send + 'static;

    /// Appends the wire form of `message` to `out`. An error hands the
    /// message back to the application
    /// ([`RejectReason::Serialize`](crate::error::RejectReason::Serialize));
    /// the connection carries on.
    fn encode(&self, message: &Self::Message, out: &mut Vec<u8>) -> Result<(), SerializeError>;

    /// Decodes the message at the front of `buf`: `Ok(None)` if `buf`
    /// holds only part of one, or the message and how many bytes of `buf`
    /// it took. An error closes the connection with that reason. It is
    /// called again, on a longer buffer, each time more bytes arrive.
    fn decode(&self, buf: &[u8]) -> Result<Option<(Self::Message, usize)>, ProtocolError>;

    /// The most bytes one message may take on the wire (its whole
    /// encoding): past it, input is a protocol error, and a message to
    /// send is handed back
    /// ([`SerializeError::TooLarge`])
    /// before any of it is written. Default [`DEFAULT_MAX_MESSAGE_SIZE`].
    fn max_message_size(&self) -> usize {
        DEFAULT_MAX_MESSAGE_SIZE
    }

    /// The memory a message holds (see [`Converter::message_size`]).
    fn message_size(&self, message: &Self::Message) -> usize {
        let _ = message;
        std::mem::size_of::<Self::Message>()
    }
}

/// A [`Converter`] made of a [`Codec`].
pub struct CodecConverter<K> {
    codec: Arc<K>,
}

impl<K: Codec> CodecConverter<K> {
    /// Wraps `codec`.
    pub fn new(codec: K) -> Self {
        Self {
            codec: Arc::new(codec),
        }
    }
}

impl<K> fmt::Debug for CodecConverter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecConverter")
            .field("codec", &std::any::type_name::<K>())
            .finish()
    }
}

impl<K: Codec> Converter for CodecConverter<K> {
    type Message = K::Message;
    type Serializer = CodecSerializer<K::Message>;
    type Deserializer = CodecDeserializer<K>;

    fn serializer(&self, message: &K::Message) -> Self::Serializer {
        // Encoded at once: an error is known before any byte goes out,
        // and so is a message the peer would refuse as too large.
        let mut wire = Vec::new();
        let limit = self.codec.max_message_size();
        let wire = self.codec.encode(message, &mut wire).and_then(|()| {
            if wire.len() > limit {
                return Err(SerializeError::TooLarge {
                    length: wire.len(),
                    limit,
                });
            }
            Ok(wire)
        });
        CodecSerializer {
            wire,
            pos: 0,
            _message: std::marker::PhantomData,
        }
    }

    fn deserializer(&self) -> Self::Deserializer {
        CodecDeserializer {
            codec: self.codec.clone(),
            buf: Vec::new(),
        }
    }

    fn message_size(&self, message: &K::Message) -> usize {
        self.codec.message_size(message)
    }
}

/// Writes a message a [`Codec`] encoded.
pub struct CodecSerializer<M> {
    wire: Result<Vec<u8>, SerializeError>,
    pos: usize,
    _message: std::marker::PhantomData<fn(&M)>,
}

impl<M> fmt::Debug for CodecSerializer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecSerializer")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<M: 'static> Serializer for CodecSerializer<M> {
    type Message = M;

    fn get_bytes(
        &mut self,
        _message: &M,
        out: &mut WriteBuf<'_>,
        _waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        let wire = match &mut self.wire {
            Ok(wire) => wire,
            Err(e) => {
                let e = std::mem::replace(e, SerializeError::Other("already reported".into()));
                return Err(e);
            }
        };
        self.pos += out.put(&wire[self.pos..]);
        Ok(if self.pos == wire.len() {
            Encoded::Done
        } else {
            Encoded::More
        })
    }
}

/// Collects input until a [`Codec`] finds a whole message in it.
pub struct CodecDeserializer<K> {
    codec: Arc<K>,
    buf: Vec<u8>,
}

impl<K> fmt::Debug for CodecDeserializer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecDeserializer")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<K: Codec> Deserializer for CodecDeserializer<K> {
    type Message = K::Message;

    fn put_bytes(
        &mut self,
        data: &[u8],
        _waker: &Waker,
    ) -> Result<(usize, Decoded<K::Message>), ProtocolError> {
        let limit = self.codec.max_message_size();
        let check = |used: usize| {
            if used > limit {
                Err(ProtocolError::TooLarge {
                    length: used as u64,
                    limit,
                })
            } else {
                Ok(())
            }
        };
        if self.buf.is_empty() {
            // Decoded in place when a message arrived whole.
            if let Some((message, used)) = self.codec.decode(data)? {
                check(used)?;
                return Ok((used.min(data.len()), Decoded::Done(message)));
            }
            // Kept for when the rest comes; more than a message's worth
            // cannot be the start of a valid one.
            let take = data.len().min(limit + 1);
            check(take)?;
            self.buf.extend_from_slice(&data[..take]);
            return Ok((take, Decoded::NeedMore));
        }
        // Take no more than one message's worth: the rest is not ours.
        let before = self.buf.len();
        let take = data.len().min(limit + 1 - before.min(limit + 1));
        self.buf.extend_from_slice(&data[..take]);
        match self.codec.decode(&self.buf)? {
            Some((message, used)) => {
                check(used)?;
                self.buf.clear();
                Ok((
                    used.saturating_sub(before).min(take),
                    Decoded::Done(message),
                ))
            }
            None => {
                check(self.buf.len())?;
                Ok((take, Decoded::NeedMore))
            }
        }
    }
}
