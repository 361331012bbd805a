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
