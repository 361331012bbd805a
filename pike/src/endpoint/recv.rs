//! The incoming side of a connection: bytes from the socket feed one
//! deserializer after another.
//!
//! Bytes are fed straight from the caller's slice; only what a deserializer
//! leaves unconsumed (it waits for a callback, or wants more bytes in one
//! piece) is copied into `pending`, and fed again first. An idle connection
//! holds no buffer at all.
//!
//! | state    | `wants_read` | on bytes                          | on wake              |
//! |----------|--------------|-----------------------------------|----------------------|
//! | ready    | yes          | feed; keep what is left unconsumed| (nothing)            |
//! | waiting  | no           | append to `pending` (bounded)     | feed `pending`, even if empty |
//! | held     | no           | (not read)                        | (nothing); `resume` feeds `pending` |
//!
//! *Held*: whoever takes the messages said "no more for now" (the memory
//! budget is reached), so decoding stopped after a message and the rest
//! of the input waits in `pending`, undecoded, until [`Inbox::resume`].
//! It is at most one read's worth and is not held against the pending
//! bound, which is about what a deserializer leaves unconsumed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Waker;

use bytes::Bytes;

use crate::converter::{Converter, Decoded, Deserializer};
use crate::error::{ConverterFault, DisconnectReason, ProtocolError, panic_message};

/// The incoming half of an [`Endpoint`](super::Endpoint).
#[derive(Debug)]
pub(crate) struct Inbox<C: Converter> {
    deserializer: Option<C::Deserializer>,
    /// Bytes the current deserializer consumed so far.
    consumed: usize,
    /// Unconsumed input, fed again before new bytes.
    pending: Vec<u8>,
    /// The deserializer waits for its waker.
    waiting: bool,
    /// Decoding stopped because the taker wanted no more for now.
    held: bool,
    /// Shared input held back, undecoded, kept as a slice of its chunk
    /// (no copy; messages are still sliced from it). Only while `pending`
    /// is empty: otherwise held input is appended there.
    /// (Boxed: rare, and an idle connection keeps its size.)
    held_chunk: Option<Box<Bytes>>,
    max_pending: usize,
    /// Messages completed so far.
    completed: u64,
}

impl<C: Converter> Inbox<C> {
    pub(crate) fn new(max_pending: usize) -> Self {
        Self {
            deserializer: None,
            consumed: 0,
            pending: Vec::new(),
            waiting: false,
            held: false,
            held_chunk: None,
            max_pending,
            completed: 0,
        }
    }

    /// Decoding is held back until [`resume`](Self::resume): do not read.
    pub(crate) fn is_held(&self) -> bool {
        self.held
    }

    /// How many messages were completed so far.
    pub(crate) fn completed(&self) -> u64 {
        self.completed
    }

    /// Bytes of input held here: what the current deserializer consumed
    /// (a partly received message) and what waits in `pending` (its
    /// allocation, while it holds anything).
    pub(crate) fn input_bytes(&self) -> usize {
        let pending = if self.pending.is_empty() {
            0
        } else {
            self.pending.capacity()
        };
        self.consumed + pending + self.held_chunk.as_ref().map_or(0, |c| c.len())
    }

    /// The deserializer waits for a callback: do not read.
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// Heap bytes of the pending input.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.pending.capacity()
    }

    /// Part of a message has been received but not all of it.
    pub(crate) fn mid_message(&self) -> bool {
        self.consumed > 0 || !self.pending.is_empty() || self.held_chunk.is_some()
    }

    /// Feeds `data`; every completed message goes to `deliver`, with the
    /// bytes it took on the wire, which returns whether it wants more: once it says no, decoding stops and
    /// the rest is held (see the module documentation). `shared`, if
    /// given, holds the same bytes as `data`, for
    /// [`Deserializer::put_shared`].
    pub(crate) fn feed(
        &mut self,
        converter: &C,
        waker: &Waker,
        data: &[u8],
        shared: Option<&Bytes>,
        deliver: &mut impl FnMut(C::Message, usize) -> bool,
    ) -> Result<(), DisconnectReason> {
        if self.pending.is_empty() && !self.waiting && !self.held {
            let used = self.run(converter, waker, data, shared, false, deliver)?;
            if !self.held {
                return self.keep(&data[used..]);
            }
            match shared {
                Some(chunk) if used < chunk.len() => {
                    self.held_chunk = Some(Box::new(chunk.slice(used..)));
                }
                _ => self.pending.extend_from_slice(&data[used..]),
            }
            Ok(())
        } else {
            if self.held {
                // Not read while held; kept in order if it happens.
                if let Some(chunk) = self.held_chunk.take() {
                    self.pending.extend_from_slice(&chunk);
                }
                self.pending.extend_from_slice(data);
                return Ok(());
            }
            self.keep(data)?;
            if self.waiting {
                return Ok(());
            }
            self.run_pending(converter, waker, false, deliver)
        }
    }

    /// Drops the input held back undecoded (the connection was aborted).
    pub(crate) fn discard_held(&mut self) {
        if self.held {
            self.held = false;
            self.pending = Vec::new();
            self.held_chunk = None;
        }
    }

    /// Decodes the input held back, now that the taker wants more.
    pub(crate) fn resume(
        &mut self,
        converter: &C,
        waker: &Waker,
        deliver: &mut impl FnMut(C::Message, usize) -> bool,
    ) -> Result<(), DisconnectReason> {
        if !self.held {
            return Ok(());
        }
        self.held = false;
        if let Some(chunk) = self.held_chunk.take() {
            // Still shared: decode it as it came (this is feed's first
            // branch, `pending` being empty).
            let chunk = *chunk;
            return self.feed(converter, waker, &chunk.clone(), Some(&chunk), deliver);
        }
        if self.waiting || self.pending.is_empty() {
            return Ok(());
        }
        self.run_pending(converter, waker, false, deliver)
    }

    /// The deserializer's waker fired: feed it what is pending, even nothing.
    pub(crate) fn wake(
        &mut self,
        converter: &C,
        waker: &Waker,
        deliver: &mut impl FnMut(C::Message, usize) -> bool,
    ) -> Result<(), DisconnectReason> {
        if !self.waiting {
            return Ok(());
        }
        self.waiting = false;
        if self.held {
            // Fed again on resume.
            return Ok(());
        }
        self.run_pending(converter, waker, true, deliver)
    }

    fn keep(&mut self, rest: &[u8]) -> Result<(), DisconnectReason> {
        if self.pending.len() + rest.len() > self.max_pending {
            return Err(ProtocolError::Stalled {
                limit: self.max_pending,
            }
            .into());
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    fn run_pending(
        &mut self,
        converter: &C,
        waker: &Waker,
        call_if_empty: bool,
        deliver: &mut impl FnMut(C::Message, usize) -> bool,
    ) -> Result<(), DisconnectReason> {
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.run(converter, waker, &pending, None, call_if_empty, deliver);
        if let Ok(used) = result {
            pending.drain(..used);
        }
        // Give the allocation back once it is empty: idle connections hold none.
        if !pending.is_empty() {
            self.pending = pending;
        }
        result.map(drop)
    }

    /// Runs deserializers over `input` (also given as `shared`, if it is
    /// shared) until it is used up, one waits, or `deliver` wants no more
    /// (which sets `held`). Returns how many bytes were consumed.
    fn run(
        &mut self,
        converter: &C,
        waker: &Waker,
        input: &[u8],
        shared: Option<&Bytes>,
        mut call_if_empty: bool,
        deliver: &mut impl FnMut(C::Message, usize) -> bool,
    ) -> Result<usize, DisconnectReason> {
        let mut off = 0;
        while off < input.len() || call_if_empty {
            call_if_empty = false;
            if self.deserializer.is_none() {
                // The factory is the converter's code too: a panic in it
                // closes this connection, like one in the deserializer.
                let made =
                    catch_unwind(AssertUnwindSafe(|| converter.deserializer())).map_err(|p| {
                        DisconnectReason::Converter(ConverterFault::DeserializerPanicked(
                            panic_message(p.as_ref()),
                        ))
                    })?;
                self.deserializer = Some(made);
            }
            let deserializer = self.deserializer.as_mut().expect("made above");
            let rest = &input[off..];
            let (used, outcome) = match catch_unwind(AssertUnwindSafe(|| match shared {
                Some(chunk) => deserializer.put_shared(chunk, off, waker),
                None => deserializer.put_bytes(rest, waker),
            })) {
                Err(payload) => {
                    return Err(DisconnectReason::Converter(
                        ConverterFault::DeserializerPanicked(panic_message(payload.as_ref())),
                    ));
                }
                Ok(result) => result?,
            };
            if used > rest.len() {
                return Err(DisconnectReason::Converter(
                    ConverterFault::DeserializerPanicked(format!(
                        "consumed {used} bytes of {}",
                        rest.len()
                    )),
                ));
            }
            off += used;
            self.consumed += used;
            match outcome {
                Decoded::Done(message) => {
                    if self.consumed == 0 {
                        return Err(ProtocolError::EmptyMessage.into());
                    }
                    self.deserializer = None;
                    let wire = std::mem::take(&mut self.consumed);
                    self.completed += 1;
                    if !deliver(message, wire) {
                        self.held = true;
                        break;
                    }
                }
                Decoded::NeedMore => break,
                Decoded::Pending => {
                    self.waiting = true;
                    break;
                }
            }
        }
        Ok(off)
    }
}
