//! A converter wrapper that counts the bytes going through, for progress
//! bars.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use pike::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use pike::error::{ProtocolError, SerializeError};

/// Wraps a converter; counts bytes serialized and deserialized.
#[derive(Debug)]
pub(crate) struct Counting<C> {
    inner: C,
    pub(crate) sent: Arc<AtomicU64>,
    pub(crate) received: Arc<AtomicU64>,
}

impl<C> Counting<C> {
    pub(crate) fn new(inner: C) -> Self {
        Self {
            inner,
            sent: Arc::default(),
            received: Arc::default(),
        }
    }
}

impl<C: Converter> Converter for Counting<C> {
    type Message = C::Message;
    type Serializer = CountingSerializer<C::Serializer>;
    type Deserializer = CountingDeserializer<C::Deserializer>;

    fn serializer(&self, message: &C::Message) -> Self::Serializer {
        CountingSerializer(self.inner.serializer(message), self.sent.clone())
    }

    fn deserializer(&self) -> Self::Deserializer {
        CountingDeserializer(self.inner.deserializer(), self.received.clone())
    }

    fn message_size(&self, message: &C::Message) -> usize {
        self.inner.message_size(message)
    }

    fn holds_input(&self) -> bool {
        self.inner.holds_input()
    }
}

#[derive(Debug)]
pub(crate) struct CountingSerializer<S>(S, Arc<AtomicU64>);

impl<S: Serializer> Serializer for CountingSerializer<S> {
    type Message = S::Message;

    fn get_bytes(
        &mut self,
        message: &S::Message,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        let before = out.remaining();
        let result = self.0.get_bytes(message, out, waker);
        self.1
            .fetch_add((before - out.remaining()) as u64, Ordering::Relaxed);
        result
    }
}

#[derive(Debug)]
pub(crate) struct CountingDeserializer<D>(D, Arc<AtomicU64>);

impl<D: Deserializer> Deserializer for CountingDeserializer<D> {
    type Message = D::Message;

    fn put_bytes(
        &mut self,
        data: &[u8],
        waker: &Waker,
    ) -> Result<(usize, Decoded<D::Message>), ProtocolError> {
        let result = self.0.put_bytes(data, waker);
        if let Ok((used, _)) = &result {
            self.1.fetch_add(*used as u64, Ordering::Relaxed);
        }
        result
    }
}
