//! Where the loop waits for readiness, and how it opens a transport: the
//! system's poller (`mio`) and sockets, or, in the crate's tests, an
//! in-memory network ([`memory`](crate::transport::memory)) that never
//! waits: its readiness is whatever the test's peers and the loop's own
//! writes produced, so that the reactor harness runs the loop one turn at a
//! time, on a manual clock.
//!
//! The `mio::Poll` is there in both cases: the command queue's waker is
//! registered with it.

use std::io;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token};

use super::conn::Edges;
use crate::transport::{Layer, Peer, Transport};

/// The loop's poller (see the module documentation).
pub(crate) struct Poller {
    poll: Poll,
    events: Events,
    #[cfg(test)]
    memory: Option<Memory>,
}

/// An in-memory network's side of a poller.
#[cfg(test)]
struct Memory {
    net: std::sync::Arc<crate::transport::memory::Net>,
    owner: crate::transport::memory::Owner,
    /// What the last wait took.
    taken: Vec<(Token, u8)>,
}

impl Poller {
    /// The system's poller.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            #[cfg(test)]
            memory: None,
        })
    }

    /// A poller of the in-memory network `net`, for the loop `owner`.
    #[cfg(test)]
    pub(crate) fn memory(
        net: std::sync::Arc<crate::transport::memory::Net>,
        owner: crate::transport::memory::Owner,
    ) -> io::Result<Self> {
        let mut poller = Self::new()?;
        poller.memory = Some(Memory {
            net,
            owner,
            taken: Vec::new(),
        });
        Ok(poller)
    }

    /// What transports and the waker register with.
    pub(crate) fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Waits at most `timeout` (`None`: for ever) for readiness. An
    /// in-memory network's poller never waits.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        #[cfg(test)]
        if let Some(m) = &mut self.memory {
            m.taken.clear();
            m.net.take_ready(m.owner, &mut m.taken);
            return Ok(());
        }
        self.poll.poll(&mut self.events, timeout)
    }

    /// Passes what the last wait reported, token by token, as [`Edges`].
    pub(crate) fn for_each(&self, mut f: impl FnMut(Token, u8)) {
        #[cfg(test)]
        if let Some(m) = &self.memory {
            for &(token, bits) in &m.taken {
                f(token, bits);
            }
            return;
        }
        for event in self.events.iter() {
            f(event.token(), Edges::of(event));
        }
    }

    /// Starts connecting to `peer` through `layer`, without blocking.
    pub(crate) fn connect(&self, layer: &Layer, peer: &Peer) -> io::Result<Box<dyn Transport>> {
        #[cfg(test)]
        if let Some(m) = &self.memory {
            let Peer::Inet(addr) = peer else {
                return Err(io::ErrorKind::Unsupported.into());
            };
            return layer.over(m.net.connect(*addr, m.owner)?, peer);
        }
        layer.connect(peer)
    }
}
