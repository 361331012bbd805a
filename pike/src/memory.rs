//! Giving memory back after a burst, without paying for it on every call.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

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

/// Cuts a map's allocation down once it holds under a quarter of what a
/// burst grew it to (many connections that came and went), keeping room
/// for twice what it holds.
pub(crate) fn shrink_map<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}
