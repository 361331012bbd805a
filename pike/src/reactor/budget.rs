//! The memory a peer can make the connector hold, counted in bytes.
//!
//! Two bounds, both on received data the application has not taken yet:
//!
//! * each connection's **share**: the bytes of its events queued and not
//!   taken (each event costs its envelope plus the heap bytes of the
//!   messages it carries, as [`Converter::message_size`] tells);
//! * the connector's **budget**: every connection's queued events, plus
//!   every partly received message and input held back undecoded, plus
//!   the events of connections that are gone (messages sent to them and
//!   handed back).
//!
//! The network thread checks both before each read and *during* it: a
//! read's messages are decoded one at a time, and decoding stops after the
//! message that reaches a bound, the rest of the read held back undecoded
//! (at most one read's worth) until there is room. So a 256 KiB read of
//! 4-byte messages cannot turn into 65,000 events past the bound.
//!
//! Reading pauses instead of memory growing, and resumes with hysteresis:
//! a connection paused at its share resumes once the application has taken
//! it down to half; connections paused at the budget resume once the total
//! is down to three quarters. Whoever brings a count down (a thread taking
//! events, or the network thread freeing a partly received message) sees
//! the `paused` flag and asks for the resume; [`Gauge::should_pause`] and
//! [`Gauge::release`] make that a handshake in which no resume is missed.
//!
//! # Invariants
//!
//! * Only the network thread adds to a gauge; any thread may take away.
//! * A gauge never goes below zero: everything taken away was added first
//!   (an envelope carries the bytes it added).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::converter::Converter;
use crate::event::{Connection, Event};
use crate::reactor::queues::Envelope;

/// The default memory budget of a connector: 64 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;
/// The default share of one connection: 256 KiB of received events not
/// yet taken (some 1,700 small messages, or four of 64 KiB). More buys no
/// speed: events beyond what the caches hold are slower to take (16-byte
/// messages went 15 % slower with 4 MiB). A message larger than the share
/// still comes through, one at a time.
pub const DEFAULT_CONNECTION_SHARE: usize = 256 * 1024;
/// How much a connection that holds nothing may still read when the
/// budget is used up, so that new and well-behaved peers are still served
/// while others hold the budget.
pub(crate) const SMALL_READ: usize = 4 * 1024;

/// A byte count with a pause flag; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    used: AtomicUsize,
    paused: AtomicBool,
}

impl Gauge {
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Network thread: `n` more bytes are held.
    pub(crate) fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::SeqCst);
    }

    /// Network thread, at or over `high`: marks the gauge paused and returns
    /// true if reading is to pause. When it says so, whoever brings the
    /// count down to `low` will ask for a resume.
    pub(crate) fn should_pause(&self, high: usize, low: usize) -> bool {
        if self.used() < high {
            return false;
        }
        self.paused.store(true, Ordering::SeqCst);
        // Bytes may have been released between the load and the store by
        // a thread that did not see the flag: look again.
        if self.used() <= low {
            // Whoever clears the flag resumes; if a releaser did, reading
            // gets a harmless extra resume.
            return !self.paused.swap(false, Ordering::SeqCst);
        }
        true
    }

    /// Any thread: `n` bytes are no longer held. True if the caller must
    /// ask for a resume: the count reached `low` while paused, and this
    /// caller cleared the flag.
    pub(crate) fn release(&self, n: usize, low: usize) -> bool {
        if n == 0 {
            return false;
        }
        let left = self.used.fetch_sub(n, Ordering::SeqCst) - n;
        left <= low
            && self.paused.load(Ordering::SeqCst)
            && self.paused.swap(false, Ordering::SeqCst)
    }
}

/// The connector-wide budget.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) gauge: Gauge,
    /// The budget, in bytes.
    pub(crate) limit: usize,
    /// Each connection's share, in bytes.
    pub(crate) share: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize, share: usize) -> Self {
        Self {
            gauge: Gauge::default(),
            limit: limit.max(1),
            share: share.max(1),
        }
    }

    /// Where reading resumes after a pause at the budget.
    pub(crate) fn low(&self) -> usize {
        self.limit / 4 * 3
    }
}

/// One connection's count of bytes queued and not yet taken, tied to the
/// budget. Events of connections that are gone are counted on a credit of
/// their own, which never pauses anything.
#[derive(Debug)]
pub(crate) struct Credit {
    pub(crate) connection: Connection,
    pub(crate) gauge: Gauge,
}

/// What taking events asks the network thread to do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// Read from this connection again.
    pub(crate) connection: bool,
    /// Read again from every connection paused at the budget.
    pub(crate) budget: bool,
}

impl Credit {
    pub(crate) fn new(connection: Connection) -> Self {
        Self {
            connection,
            gauge: Gauge::default(),
        }
    }

    /// Network thread: events of `bytes` are about to be queued.
    pub(crate) fn produced(&self, budget: &Budget, bytes: usize) {
        self.gauge.add(bytes);
        budget.gauge.add(bytes);
    }

    /// Consumer: events of `bytes` were taken.
    pub(crate) fn taken(&self, budget: &Budget, bytes: usize) -> Resume {
        Resume {
            connection: self.gauge.release(bytes, budget.share / 2),
            budget: budget.gauge.release(bytes, budget.low()),
        }
    }
}

/// What an event costs against the budget: its envelope, plus the heap
/// bytes of every message it carries.
pub(crate) fn event_cost<C: Converter>(converter: &C, event: &Event<C::Message>) -> usize {
    let messages = match event {
        Event::MessageReceived(m) => converter.message_size(&m.message),
        Event::RejectedMessage(m) => converter.message_size(&m.message),
        Event::FinishConnect(f) => messages_size(converter, None, &f.queued),
        Event::FinishDisconnect(f) => messages_size(converter, f.incomplete.as_ref(), &f.queued),
        Event::RemoteDisconnect(r) => messages_size(converter, r.incomplete.as_ref(), &r.queued),
        Event::RemoteConnect(_) => 0,
    };
    std::mem::size_of::<Envelope<C::Message>>() + messages
}

fn messages_size<C: Converter>(
    converter: &C,
    incomplete: Option<&C::Message>,
    queued: &[C::Message],
) -> usize {
    incomplete
        .into_iter()
        .chain(queued)
        .map(|m| converter.message_size(m))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_and_resume_hand_over_exactly_once() {
        let g = Gauge::default();
        g.add(100);
        assert!(!g.should_pause(101, 50));
        assert!(g.should_pause(100, 50));
        // Down to 60: still above low, no resume.
        assert!(!g.release(40, 50));
        // Down to 50: this releaser resumes, once.
        assert!(g.release(10, 50));
        assert!(!g.release(10, 50));
        assert_eq!(g.used(), 40);
    }

    #[test]
    fn a_release_between_check_and_flag_is_not_lost() {
        let g = Gauge::default();
        g.add(10);
        // Over the bound, but by the time the flag is set the count is
        // already low (simulated by a low bound): no pause.
        assert!(!g.should_pause(10, 10));
        assert!(!g.release(10, 0), "nobody is paused");
    }
}
