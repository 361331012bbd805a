//! Giving memory back after a burst, without paying for it on every call.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use crate::event::Connection;

/// A queue (of messages, or events) whose allocation is larger than this
/// once it is empty is cut down to [`QUEUE_KEEP_BYTES`].
const QUEUE_TRIM_ABOVE_BYTES: usize = 64 * 1024;

/// What a trimmed queue keeps.
const QUEUE_KEEP_BYTES: usize = 4 * 1024;

/// Cuts an empty queue's allocation down once a burst has made it large.
/// Only then: a connection whose queue fills and empties with every batch
/// would otherwise give it back and grow it again each time (which cost
/// 10–25 % of the throughput of 16-byte sends one by one). A burst large
/// enough to be cut pays for growing back over thousands of messages.
pub(crate) fn trim_queue<T>(queue: &mut VecDeque<T>) {
    let size = std::mem::size_of::<T>().max(1);
    if queue.is_empty() && queue.capacity() * size > QUEUE_TRIM_ABOVE_BYTES {
        queue.shrink_to(QUEUE_KEEP_BYTES / size);
    }
}

/// How many items a [`ChunkQueue`] chunk made for single items holds.
pub(crate) const CHUNK_ITEMS: usize = 256;

/// A first-in first-out queue kept in chunks rather than one contiguous
/// buffer. A `VecDeque` grows by doubling, copying what it holds into the
/// new buffer and holding both for the moment: a queue of a million
/// events of 100 bytes would briefly take 150 MB for 100 MB of events,
/// and keep the doubled buffer. This one never moves what it holds to
/// grow: a batch handed over becomes a chunk as it is, single items go
/// into chunks of [`CHUNK_ITEMS`], and a chunk is given back as soon as it
/// is empty (one is kept, for the next batch).
#[derive(Debug)]
pub(crate) struct ChunkQueue<T> {
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
    /// An emptied chunk, handed to the next batch's producer.
    spare: VecDeque<T>,
}

impl<T> Default for ChunkQueue<T> {
    fn default() -> Self {
        Self {
            chunks: VecDeque::new(),
            len: 0,
            spare: VecDeque::new(),
        }
    }
}

impl<T> ChunkQueue<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push_back(&mut self, item: T) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < chunk.capacity() => chunk.push_back(item),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK_ITEMS);
                chunk.push_back(item);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    /// Moves every item of `batch` to the back, leaving `batch` empty (with
    /// an emptied chunk's allocation, if there is one): the batch itself
    /// becomes a chunk, no item is moved.
    pub(crate) fn append(&mut self, batch: &mut VecDeque<T>) {
        if batch.is_empty() {
            return;
        }
        if batch.len() * 2 < batch.capacity() && batch.capacity() > CHUNK_ITEMS {
            // Mostly empty room: kept as a chunk it would hold that room
            // for as long as its first item waits. Its items go into
            // chunks of their own instead.
            for item in batch.drain(..) {
                self.push_back(item);
            }
            crate::memory::trim_queue(batch);
            return;
        }
        self.len += batch.len();
        let spare = std::mem::take(&mut self.spare);
        self.chunks.push_back(std::mem::replace(batch, spare));
    }

    /// Moves a chunk made full elsewhere to the back, as it is.
    pub(crate) fn push_chunk(&mut self, chunk: VecDeque<T>) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<T> {
        let chunk = self.chunks.front_mut()?;
        let item = chunk.pop_front();
        if chunk.is_empty() {
            let chunk = self.chunks.pop_front().expect("looked at above");
            if self.spare.capacity() < chunk.capacity() {
                self.spare = chunk;
            }
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// Every item's slot allocated, in items.
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.iter().map(VecDeque::capacity).sum::<usize>() + self.spare.capacity()
    }

    /// Gives back the chunk kept for the next batch.
    pub(crate) fn trim(&mut self) {
        self.spare = VecDeque::new();
        trim_queue(&mut self.chunks);
    }

    /// Takes every item, in order.
    pub(crate) fn take_all(&mut self) -> VecDeque<T> {
        self.len = 0;
        let mut all = VecDeque::new();
        for mut chunk in std::mem::take(&mut self.chunks) {
            all.append(&mut chunk);
        }
        all
    }
}

/// Cuts a map's allocation down once it holds under a quarter of what a
/// burst grew it to (many connections that came and went), keeping room
/// for twice what it holds.
pub(crate) fn shrink_map<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// A map keyed by connection id. Ids are numbers the connector hands out
/// (never chosen by a peer), so they need no keyed, flood-resistant hash:
/// a multiplication spreads them (SipHash was ~80 instructions of every
/// `send`, by callgrind).
pub(crate) type ConnMap<V> = HashMap<Connection, V, BuildHasherDefault<IdHasher>>;

/// A new, empty [`ConnMap`].
pub(crate) fn conn_map<V>() -> ConnMap<V> {
    HashMap::default()
}

/// Fibonacci hashing of a `u64` id: the multiplication moves its bits into
/// the high ones, which the map's probing uses.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_queue_keeps_the_order_of_items_and_batches() {
        let mut q = ChunkQueue::default();
        let mut next = 0u32;
        let mut want = 0u32;
        for round in 0..50 {
            for _ in 0..round * 7 {
                q.push_back(next);
                next += 1;
            }
            let mut batch: VecDeque<u32> = (next..next + round * 3).collect();
            next += round * 3;
            q.append(&mut batch);
            assert!(batch.is_empty());
            for _ in 0..round * 5 {
                if let Some(x) = q.pop_front() {
                    assert_eq!(x, want);
                    want += 1;
                }
            }
            assert_eq!(q.len() as u32, next - want);
        }
        let rest = q.take_all();
        assert!(rest.into_iter().eq(want..next));
        assert!(q.is_empty() && q.pop_front().is_none());
    }

    #[test]
    fn sequential_ids_spread_over_the_high_bits() {
        let top = |id: u64| {
            let mut h = IdHasher::default();
            Connection(id).hash(&mut h);
            h.finish() >> 57
        };
        let distinct: std::collections::HashSet<u64> = (1..=64).map(top).collect();
        assert!(distinct.len() > 32, "{distinct:?}");
        let mut map: ConnMap<u64> = conn_map();
        for id in 1..1000 {
            map.insert(Connection(id), id);
        }
        assert!((1..1000).all(|id| map[&Connection(id)] == id));
    }
}
