//! Where the network loop reads into.
//!
//! Usually one buffer, reused for every read of every connection: what a
//! deserializer keeps of it, it copies. A converter that asks for shared
//! input ([`Converter::shares_input`](crate::converter::Converter::shares_input))
//! gets each read as a [`Bytes`] chunk of a larger buffer (at most
//! [`SHARED_CHUNK`] bytes) instead, so that its messages can be slices of
//! it. A new buffer is taken when little room
//! is left in the current one; the old one is reused in place if no
//! message holds on to it any more, and otherwise freed with the last of
//! them.
//!
//! # Invariants
//!
//! * Owned by the loop, used by one read at a time.
//! * A shared chunk is never written again while any message holds it.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

use crate::converter::SHARED_CHUNK;

/// The network loop's read buffer; see the module documentation.
#[derive(Debug)]
pub(crate) enum ReadBuffer {
    /// One buffer for every read.
    Reused(Vec<u8>),
    /// Reads are split off `free` as shared chunks.
    Shared {
        /// The zeroed, not yet used part of the current buffer.
        free: BytesMut,
        /// The size of each new buffer: the largest read, at most
        /// [`SHARED_CHUNK`].
        size: usize,
    },
}

impl ReadBuffer {
    /// A buffer for reads of up to `size` bytes, shared or not. The shared
    /// one allocates at its first read.
    pub(crate) fn new(size: usize, shared: bool) -> Self {
        let size = size.max(1);
        if shared {
            Self::Shared {
                free: BytesMut::new(),
                // What a message kept alive can pin: one chunk.
                size: size.min(SHARED_CHUNK),
            }
        } else {
            Self::Reused(vec![0; size])
        }
    }

    /// Reads once from `source`, at most `limit` bytes, and passes the
    /// bytes that came to `take`, with the shared chunk that holds them if
    /// the buffer is shared. Returns how many bytes came (0 at end of
    /// stream; `take` is not called then) and whether the read filled all
    /// the room offered: if it did not, the source had no more for now.
    pub(crate) fn read_from(
        &mut self,
        source: &mut impl Read,
        limit: usize,
        take: impl FnOnce(&[u8], Option<&Bytes>),
    ) -> io::Result<(usize, bool)> {
        let limit = limit.max(1);
        match self {
            Self::Reused(buf) => {
                let room = buf.len().min(limit);
                let n = source.read(&mut buf[..room])?;
                if n > 0 {
                    take(&buf[..n], None);
                }
                Ok((n, n == room))
            }
            Self::Shared { free, size } => {
                // A quarter left: not worth a read of its own any more.
                if free.len() < (*size / 4).max(1) {
                    free.clear();
                    // Reclaims the buffer if nothing else holds on to it.
                    free.reserve(*size);
                    free.resize(*size, 0);
                }
                let offered = free.len().min(limit);
                let n = source.read(&mut free[..offered])?;
                if n > 0 {
                    let chunk = free.split_to(n).freeze();
                    take(&chunk, Some(&chunk));
                }
                Ok((n, n == offered))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` in reads of at most `step` bytes.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_shared_chunk_is_never_larger_than_shared_chunk() {
        let data = vec![7u8; 4 * SHARED_CHUNK];
        let mut buf = ReadBuffer::new(1 << 20, true);
        let mut source = Trickle {
            data: &data,
            step: usize::MAX,
        };
        let mut biggest = 0;
        loop {
            let (n, _) = buf
                .read_from(&mut source, usize::MAX, |bytes, chunk| {
                    assert_eq!(chunk.map(|c| c.len()), Some(bytes.len()));
                })
                .unwrap();
            if n == 0 {
                break;
            }
            biggest = biggest.max(n);
            let ReadBuffer::Shared { size, .. } = &buf else {
                unreachable!("shared");
            };
            assert_eq!(*size, SHARED_CHUNK);
        }
        assert_eq!(biggest, SHARED_CHUNK, "a read takes at most a chunk");
        // A smaller read size is used as it is.
        let ReadBuffer::Shared { size, .. } = ReadBuffer::new(1000, true) else {
            unreachable!("shared");
        };
        assert_eq!(size, 1000);
    }

    #[test]
    fn every_byte_comes_through_once_in_order_shared_or_not() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for shared in [false, true] {
            for step in [1, 7, 100, 1000, 5000] {
                let mut buf = ReadBuffer::new(1024, shared);
                let mut source = Trickle { data: &data, step };
                let mut got = Vec::new();
                let mut kept = Vec::new();
                loop {
                    let (n, filled) = buf
                        .read_from(&mut source, usize::MAX, |bytes, chunk| {
                            assert_eq!(chunk.is_some(), shared);
                            if let Some(chunk) = chunk {
                                assert_eq!(&chunk[..], bytes);
                                // Messages sliced from earlier chunks must
                                // not see later reads.
                                kept.push((chunk.clone(), bytes.to_vec()));
                            }
                            got.extend_from_slice(bytes);
                        })
                        .unwrap();
                    if n == 0 {
                        break;
                    }
                    assert!(n <= 1024 && n <= step);
                    if !shared {
                        assert_eq!(filled, n == 1024);
                    } else if !filled {
                        // The room offered was not used up: the source
                        // ran short.
                        assert!(n == step || source.data.is_empty());
                    }
                }
                assert_eq!(got, data, "shared {shared}, step {step}");
                for (chunk, copy) in &kept {
                    assert_eq!(&chunk[..], &copy[..]);
                }
            }
        }
    }
}
