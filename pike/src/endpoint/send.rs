//! The outgoing side of a connection: queue, active serializer, bounded write
//! buffer, and the record of which message owns which bytes.
//!
//! ```text
//!             stream position ──►
//!   flushed                                buffered end
//!      │ write buffer (unflushed bytes)         │
//!      ├──────────────┬──────────────┬──────────┤
//!      │ in_flight[0] │ in_flight[1] │  active  │   queue: not started
//!      └──────────────┴──────────────┴──────────┘
//! ```
//!
//! A message is *written* once the socket has taken its last byte; then it
//! is dropped. A message some of whose bytes the socket took, but not all, is
//! *partly written* (at most one at a time). Every other message, including
//! one whose bytes sit in the buffer untouched by the socket, is *not
//! started* and can be handed back whole.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Waker;

use crate::converter::{Converter, Encoded, Serializer, WriteBuf};
use crate::error::{ConverterFault, DisconnectReason, SerializeError, panic_message};
use crate::memory::trim_queue;

/// The most messages in the write buffer at once. Each has a record (some
/// 40 bytes) besides its bytes: without a bound, a 256 KiB buffer of
/// 4-byte messages would hold 65,536 records, ten times the buffer.
const MAX_IN_FLIGHT: usize = 16 * 1024;

/// A message whose serializer has finished but whose bytes are not all
/// flushed yet.
#[derive(Debug)]
struct InFlight<M> {
    message: M,
    /// What it counts in `Outbox::bytes`.
    size: usize,
    start: u64,
    end: u64,
}

/// The message being serialized.
#[derive(Debug)]
struct Active<M, S> {
    message: M,
    size: usize,
    serializer: S,
    start: u64,
    /// Waiting for its waker: do not call `get_bytes` before a wake.
    waiting: bool,
}

/// The outgoing half of an [`Endpoint`](super::Endpoint).
#[derive(Debug)]
pub(crate) struct Outbox<C: Converter> {
    queue: VecDeque<C::Message>,
    /// Boxed: only a message too large for the buffer's room, or one whose
    /// serializer pauses, has one, and an idle connection keeps its size.
    active: Option<Box<Active<C::Message, C::Serializer>>>,
    in_flight: VecDeque<InFlight<C::Message>>,
    /// Unflushed bytes are `buf[head..]`.
    buf: Vec<u8>,
    head: usize,
    /// The stream position of `buf[head]`: bytes the socket has taken.
    flushed: u64,
    capacity: usize,
    /// The least room worth asking a serializer to fill.
    low_water: usize,
    /// Messages whose serializer failed before any of their bytes were
    /// flushed: they go back to the application, the stream carries on.
    failed: Vec<(C::Message, SerializeError)>,
    /// How many messages were written in full.
    written: u64,
    /// The memory of every message not yet written in full, by
    /// [`Converter::message_size`].
    bytes: usize,
}

impl<C: Converter> Outbox<C> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            active: None,
            in_flight: VecDeque::new(),
            buf: Vec::new(),
            head: 0,
            flushed: 0,
            capacity: capacity.max(1),
            low_water: (capacity / 8).max(1),
            failed: Vec::new(),
            written: 0,
            bytes: 0,
        }
    }

    /// Queues `message`, whose [`Converter::message_size`] is `size`.
    pub(crate) fn push(&mut self, message: C::Message, size: usize) {
        self.bytes += size;
        self.queue.push_back(message);
    }

    /// The memory of the messages not yet written in full.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// What the outbox holds besides its messages' own memory: the bytes
    /// waiting for the socket, the record kept of each message in them (a
    /// buffer of 4-byte messages holds more in records than in bytes),
    /// and, while its queues hold anything, the room they grew to and do
    /// not use (a queue of 40,000 small replies doubled to 65,536 slots
    /// holds those too).
    pub(crate) fn overhead(&self) -> usize {
        let message = std::mem::size_of::<C::Message>();
        let record = std::mem::size_of::<InFlight<C::Message>>();
        let in_flight = if self.in_flight.is_empty() {
            0
        } else {
            self.in_flight.capacity() * record - self.in_flight.len() * message
        };
        let queue = if self.queue.is_empty() {
            0
        } else {
            (self.queue.capacity() - self.queue.len()) * message
        };
        self.unflushed().len() + in_flight + queue
    }

    /// The bytes waiting for the socket.
    pub(crate) fn unflushed(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// Nothing left to write: no message queued, active or in flight.
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.active.is_none() && self.in_flight.is_empty()
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// How many messages are not yet written (queued, active, in flight).
    pub(crate) fn unwritten(&self) -> usize {
        self.queue.len() + usize::from(self.active.is_some()) + self.in_flight.len()
    }

    fn buffered_end(&self) -> u64 {
        self.flushed + (self.buf.len() - self.head) as u64
    }

    /// Takes the messages whose serializer failed harmlessly.
    pub(crate) fn take_failed(&mut self) -> Vec<(C::Message, SerializeError)> {
        std::mem::take(&mut self.failed)
    }

    /// Whether a serializer failed harmlessly since the last `take_failed`.
    pub(crate) fn has_failed(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Records that the socket took `n` bytes of [`unflushed`](Self::unflushed).
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.head,
            "the socket took more bytes than were offered"
        );
        self.head += n;
        self.flushed += n as u64;
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
        }
        self.retire();
        if self.is_idle() {
            self.trim();
        }
    }

    /// The write buffer's allocation.
    #[cfg(test)]
    pub(crate) fn buf_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Heap bytes of the buffer and queues.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.buf.capacity()
            + self.queue.capacity() * std::mem::size_of::<C::Message>()
            + self.in_flight.capacity() * std::mem::size_of::<InFlight<C::Message>>()
            + self.failed.capacity() * std::mem::size_of::<(C::Message, SerializeError)>()
    }

    /// Gives back what a burst of sends left behind once everything is
    /// written: a connection that queued a lot and then goes quiet should
    /// not keep queues sized for that. Only queues a burst made large are
    /// cut (see [`trim_queue`]); the write buffer stays as it is: a stream
    /// that empties its buffer now and then (sends written together by the
    /// network loop) would otherwise give it back and grow it again every
    /// time, which cost 10–25 % of the throughput of 16-byte sends one by
    /// one.
    fn trim(&mut self) {
        trim_queue(&mut self.queue);
        trim_queue(&mut self.in_flight);
    }

    /// Drops the messages whose last byte the socket has taken.
    fn retire(&mut self) {
        while self
            .in_flight
            .front()
            .is_some_and(|m| m.end <= self.flushed)
        {
            let done = self.in_flight.pop_front().expect("checked");
            self.bytes -= done.size;
            self.written += 1;
        }
    }

    /// Whether a worthwhile amount of room (`low_water`) follows the
    /// unflushed bytes. When it does not, the unflushed bytes are moved to
    /// the front, but only while they are few (at most `low_water`): moving
    /// a large remainder after every partial write would copy the stream
    /// once more, and a socket that takes a byte at a time would cost a
    /// memmove per byte. Otherwise the socket drains them first.
    fn room(&mut self) -> bool {
        if self.capacity - self.buf.len() >= self.low_water {
            return true;
        }
        if self.buf.len() - self.head > self.low_water {
            return false;
        }
        if self.head > 0 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        self.capacity - self.buf.len() >= self.low_water
    }

    /// Wakes the active serializer if it was waiting.
    pub(crate) fn wake(&mut self) {
        if let Some(active) = &mut self.active {
            active.waiting = false;
        }
    }

    /// Asks serializers for bytes while the buffer has room. `start_new`
    /// false finishes only the active message.
    ///
    /// An error means the stream is broken and the connection must close.
    pub(crate) fn fill(
        &mut self,
        converter: &C,
        waker: &Waker,
        start_new: bool,
    ) -> Result<(), DisconnectReason> {
        loop {
            if self.active.is_none() {
                if !start_new || self.in_flight.len() >= MAX_IN_FLIGHT {
                    break;
                }
                let Some(message) = self.queue.pop_front() else {
                    break;
                };
                let size = match crate::converter::guarded_size(converter, &message) {
                    Ok(size) => size,
                    Err(e) => {
                        self.queue.push_front(message);
                        return Err(DisconnectReason::Converter(
                            ConverterFault::SerializerPanicked(e),
                        ));
                    }
                };
                // Small messages go in whole, without a serializer, when
                // there is room.
                let start = self.buffered_end();
                if self.room() {
                    let mut out = WriteBuf::new(&mut self.buf, self.capacity);
                    let whole = catch_unwind(AssertUnwindSafe(|| {
                        converter.write_whole(&message, &mut out)
                    }));
                    match whole {
                        Ok(true) => {
                            let end = self.buffered_end();
                            self.in_flight.push_back(InFlight {
                                message,
                                size,
                                start,
                                end,
                            });
                            continue;
                        }
                        Ok(false) => {
                            // It must not have written anything; if it did,
                            // the serializer starts again from scratch.
                            self.buf
                                .truncate(self.head + (start - self.flushed) as usize);
                        }
                        Err(payload) => {
                            // Whatever it wrote is cut off; the stream stays
                            // whole up to here, but the converter is broken.
                            self.buf
                                .truncate(self.head + (start - self.flushed) as usize);
                            self.queue.push_front(message);
                            return Err(DisconnectReason::Converter(
                                ConverterFault::SerializerPanicked(panic_message(payload.as_ref())),
                            ));
                        }
                    }
                }
                // The factory is the converter's code too: a panic in it
                // closes this connection, like one in the serializer.
                let serializer =
                    match catch_unwind(AssertUnwindSafe(|| converter.serializer(&message))) {
                        Ok(serializer) => serializer,
                        Err(payload) => {
                            self.queue.push_front(message);
                            return Err(DisconnectReason::Converter(
                                ConverterFault::SerializerPanicked(panic_message(payload.as_ref())),
                            ));
                        }
                    };
                self.active = Some(Box::new(Active {
                    message,
                    size,
                    serializer,
                    start: self.buffered_end(),
                    waiting: false,
                }));
            }
            if self.active.as_ref().is_some_and(|a| a.waiting) {
                break;
            }
            // Ask only for a worthwhile amount of room.
            if !self.room() {
                break;
            }
            let active = self.active.as_mut().expect("set above");
            let before = self.buf.len();
            let mut out = WriteBuf::new(&mut self.buf, self.capacity);
            let result = catch_unwind(AssertUnwindSafe(|| {
                active
                    .serializer
                    .get_bytes(&active.message, &mut out, waker)
            }));
            let wrote = self.buf.len() - before;
            match result {
                Err(payload) => {
                    return Err(DisconnectReason::Converter(
                        ConverterFault::SerializerPanicked(panic_message(payload.as_ref())),
                    ));
                }
                Ok(Ok(Encoded::Done)) => {
                    let Active {
                        message,
                        size,
                        start,
                        ..
                    } = *self.active.take().expect("active");
                    let end = self.buffered_end();
                    self.in_flight.push_back(InFlight {
                        message,
                        size,
                        start,
                        end,
                    });
                    self.retire();
                }
                Ok(Ok(Encoded::More)) => {
                    if wrote == 0 {
                        if self.buf.len() == self.head {
                            return Err(DisconnectReason::Converter(
                                ConverterFault::SerializerStalled,
                            ));
                        }
                        // It needs more room than there is: wait for the socket.
                        break;
                    }
                }
                Ok(Ok(Encoded::Pending)) => {
                    active.waiting = true;
                    break;
                }
                Ok(Err(error)) => {
                    let start = active.start;
                    if start < self.flushed {
                        return Err(DisconnectReason::Converter(ConverterFault::Serialize(
                            error,
                        )));
                    }
                    // Nothing of it reached the socket: cut its bytes off
                    // and hand it back; the stream stays whole.
                    let cut = self.head + (start - self.flushed) as usize;
                    self.buf.truncate(cut);
                    let active = self.active.take().expect("active");
                    self.bytes -= active.size;
                    self.failed.push((active.message, error));
                }
            }
        }
        Ok(())
    }

    /// Keeps only the partly written message, if any, so that it can be
    /// finished; returns every other unwritten message, in order.
    pub(crate) fn keep_only_partial(&mut self) -> Vec<C::Message> {
        let partial_in_flight = self
            .in_flight
            .front()
            .is_some_and(|m| m.start < self.flushed);
        let partial_active = self.active.as_ref().is_some_and(|a| a.start < self.flushed);
        let mut rest = Vec::with_capacity(self.unwritten());
        if partial_in_flight {
            let keep = self.in_flight.pop_front().expect("checked");
            self.buf
                .truncate(self.head + (keep.end - self.flushed) as usize);
            rest.extend(self.in_flight.drain(..).map(|m| m.message));
            self.bytes = keep.size;
            self.in_flight.push_back(keep);
            rest.extend(self.active.take().map(|a| a.message));
        } else if partial_active {
            // Everything before the active message is flushed already.
            debug_assert!(self.in_flight.is_empty());
            self.bytes = self.active.as_ref().map_or(0, |a| a.size);
        } else {
            return self.take_all_unsent().1;
        }
        rest.extend(self.queue.drain(..));
        rest
    }

    /// Takes every unwritten message: the partly written one, if any, and
    /// the others in order. The unflushed bytes are dropped.
    pub(crate) fn take_all_unsent(&mut self) -> (Option<C::Message>, Vec<C::Message>) {
        self.retire();
        let mut incomplete = None;
        let mut queued = Vec::with_capacity(self.unwritten());
        for m in self.in_flight.drain(..) {
            if m.start < self.flushed {
                incomplete = Some(m.message);
            } else {
                queued.push(m.message);
            }
        }
        if let Some(a) = self.active.take() {
            if a.start < self.flushed {
                incomplete = Some(a.message);
            } else {
                queued.push(a.message);
            }
        }
        queued.extend(self.queue.drain(..));
        self.buf = Vec::new();
        self.head = 0;
        self.bytes = 0;
        (incomplete, queued)
    }
}
