//! The memory a peer can make the connector hold, counted in bytes.
//!
//! One budget for everything, counted where it is held rather than by
//! each feature remembering to:
//!
//! * **received**: events queued and not yet taken (each costs its
//!   envelope plus the larger of the bytes read for its message and
//!   [`Converter::message_size`], so a converter that reports too little
//!   cannot undercount), partly received messages and input held back
//!   undecoded, and the events of connections that are gone;
//! * **unsent**: every connection's unsent queue (messages by
//!   `message_size`), its write buffer, and what its transport buffers
//!   (TLS handshakes and records).
//!
//! Each connection also has a **share**: the bytes of its events queued
//! and not taken.
//!
//! The network thread checks the bounds before each read and *during*
//! it: a read's messages are decoded one at a time, and decoding stops
//! after the message that reaches a bound, the rest of the read held back
//! undecoded (at most one read's worth) until there is room. So a 256 KiB
//! read of 4-byte messages cannot turn into 65,000 events past the bound.
//!
//! Reading pauses instead of memory growing, and resumes with hysteresis:
//! a connection paused at its share resumes once the application has taken
//! it down to half; connections paused at the budget resume once the total
//! is down to three quarters, or once they themselves hold nothing. Whoever
//! brings a count down (a thread taking events, a sender whose bytes went
//! out, the network thread) sees the `paused` flag and asks for the
//! resume; pausing and releasing make that a handshake in which no resume
//! is missed.
//!
//! # Invariants
//!
//! * A count never goes below zero: everything taken away was added first
//!   (an envelope carries the bytes it added; a connection takes away
//!   only what it counted, under its slot's lock).
//! * Each pause flag is set before its count is looked at again, and each
//!   release looks at the flag after its count went down, with a
//!   sequentially consistent fence between on both sides: of a pauser and
//!   a releaser, one sees the other (checked by `loom`, below).

use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

use crate::connector::queues::Envelope;
use crate::converter::{Converter, counted_size};
use crate::event::{Connection, Event};

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

/// A byte count with a pause flag and the count at which a pause ends.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    used: AtomicUsize,
    paused: AtomicBool,
    /// Where a pause ends: a release that brings the count to it or below
    /// asks for the resume.
    resume_at: AtomicUsize,
}

impl Gauge {
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// `n` more bytes are held.
    pub(crate) fn add(&self, n: usize) {
        if n > 0 {
            self.used.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// At or over `high`: marks the gauge paused until it is down to `low`
    /// and returns true. When it says so, whoever brings the count down to
    /// `low` will ask for a resume.
    pub(crate) fn should_pause(&self, high: usize, low: usize) -> bool {
        self.used() >= high && self.pause_until(low)
    }

    /// Marks the gauge paused until it is down to `low`; false (not
    /// paused) if it is there already.
    pub(crate) fn pause_until(&self, low: usize) -> bool {
        self.resume_at.store(low, Ordering::SeqCst);
        self.paused.store(true, Ordering::SeqCst);
        // Bytes may have been released between the caller's look and the
        // flag by a thread that did not see it: look again (after a fence,
        // which the releaser has too: one of the two sees the other).
        fence(Ordering::SeqCst);
        if self.used() <= low {
            // Whoever clears the flag resumes; if a releaser did, reading
            // gets a harmless extra resume.
            return !self.paused.swap(false, Ordering::SeqCst);
        }
        true
    }

    /// `n` bytes are no longer held. True if the caller must ask for a
    /// resume: the count reached where the pause ends, and this caller
    /// cleared the flag.
    pub(crate) fn release(&self, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        let left = self.used.fetch_sub(n, Ordering::SeqCst) - n;
        fence(Ordering::SeqCst);
        left <= self.resume_at.load(Ordering::SeqCst)
            && self.paused.load(Ordering::SeqCst)
            && self.paused.swap(false, Ordering::SeqCst)
    }
}

/// The connector-wide budget: the received side and the unsent side,
/// counted apart, bounded together (see the module documentation).
#[derive(Debug)]
pub(crate) struct Budget {
    /// Events not yet taken, partly received messages, input held back.
    received: AtomicUsize,
    /// Unsent queues, write buffers, transport buffers.
    unsent: AtomicUsize,
    /// Reading (or a sender) waits for the total to come down to
    /// [`low`](Self::low).
    paused: AtomicBool,
    /// A sender met the budget used up (refused, or waiting for room):
    /// when it frees, the connections' waiting senders are looked at.
    senders_waited: AtomicBool,
    /// The budget, in bytes.
    pub(crate) limit: usize,
    /// Each connection's share, in bytes.
    pub(crate) share: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize, share: usize) -> Self {
        Self {
            received: AtomicUsize::new(0),
            unsent: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            senders_waited: AtomicBool::new(false),
            limit: limit.max(1),
            share: share.max(1),
        }
    }

    /// Where reading resumes after a pause at the budget.
    pub(crate) fn low(&self) -> usize {
        self.limit / 4 * 3
    }

    /// Everything counted now.
    pub(crate) fn used(&self) -> usize {
        self.received.load(Ordering::SeqCst) + self.unsent.load(Ordering::SeqCst)
    }

    /// The unsent side alone.
    pub(crate) fn unsent(&self) -> usize {
        self.unsent.load(Ordering::SeqCst)
    }

    /// What the connection's endpoint is told of the budget before it
    /// takes messages to send.
    pub(crate) fn room(&self) -> crate::endpoint::SharedRoom {
        let unsent = self.unsent();
        crate::endpoint::SharedRoom::new(
            unsent + self.received.load(Ordering::SeqCst) >= self.limit,
            self.limit.saturating_sub(unsent),
        )
    }

    /// A sender met the budget used up.
    pub(crate) fn note_sender_waited(&self) {
        if !self.senders_waited.load(Ordering::Relaxed) {
            self.senders_waited.store(true, Ordering::SeqCst);
        }
    }

    /// Whether a sender met the budget used up since the last call.
    pub(crate) fn take_senders_waited(&self) -> bool {
        self.senders_waited.load(Ordering::SeqCst)
            && self.senders_waited.swap(false, Ordering::SeqCst)
    }

    /// `n` more received bytes are held.
    pub(crate) fn add_received(&self, n: usize) {
        if n > 0 {
            self.received.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// `n` more unsent bytes are held.
    pub(crate) fn add_unsent(&self, n: usize) {
        if n > 0 {
            self.unsent.fetch_add(n, Ordering::SeqCst);
        }
    }

    /// `n` received bytes are no longer held; true if the caller must ask
    /// for the connections paused at the budget to resume.
    pub(crate) fn release_received(&self, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        let left = self.received.fetch_sub(n, Ordering::SeqCst) - n;
        fence(Ordering::SeqCst);
        self.resumes(left + self.unsent.load(Ordering::SeqCst))
    }

    /// `n` unsent bytes are no longer held; as
    /// [`release_received`](Self::release_received).
    pub(crate) fn release_unsent(&self, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        let left = self.unsent.fetch_sub(n, Ordering::SeqCst) - n;
        fence(Ordering::SeqCst);
        self.resumes(left + self.received.load(Ordering::SeqCst))
    }

    fn resumes(&self, left: usize) -> bool {
        left <= self.low()
            && self.paused.load(Ordering::SeqCst)
            && self.paused.swap(false, Ordering::SeqCst)
    }

    /// At or over the budget: marks it paused and returns true; whoever
    /// brings it down to [`low`](Self::low) will ask for a resume.
    pub(crate) fn should_pause(&self) -> bool {
        if self.used() < self.limit {
            return false;
        }
        self.paused.store(true, Ordering::SeqCst);
        // Released between the look and the flag by a thread that did not
        // see it: look again (after a fence, as the releasers).
        fence(Ordering::SeqCst);
        if self.used() <= self.low() {
            return !self.paused.swap(false, Ordering::SeqCst);
        }
        true
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
    /// Read from this connection again (or look whether it may).
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
        budget.add_received(bytes);
    }

    /// Consumer: events of `bytes` were taken.
    pub(crate) fn taken(&self, budget: &Budget, bytes: usize) -> Resume {
        Resume {
            connection: self.gauge.release(bytes),
            budget: budget.release_received(bytes),
        }
    }
}

/// What an event costs against the budget: its envelope, plus the heap
/// bytes of every message it carries (for a received message, at least
/// the bytes read for it, unless the converter says its messages do not
/// hold them: see [`Converter::holds_input`]).
pub(crate) fn event_cost<C: Converter>(converter: &C, event: &Event<C::Message>) -> usize {
    let messages = match event {
        Event::MessageReceived(m) => {
            let size = counted_size(converter, &m.message);
            if converter.holds_input() {
                size.max(m.wire_bytes)
            } else {
                size
            }
        }
        Event::RejectedMessage(m) => return rejection_cost(converter, &m.message),
        Event::FinishConnect(f) => messages_size(converter, None, &f.queued),
        Event::FinishDisconnect(f) => messages_size(converter, f.incomplete.as_ref(), &f.queued),
        Event::RemoteDisconnect(r) => messages_size(converter, r.incomplete.as_ref(), &r.queued),
        Event::RemoteConnect(_) | Event::LinkDown(_) | Event::LinkUp(_) => 0,
    };
    std::mem::size_of::<Envelope<C::Message>>() + messages
}

/// What the `RejectedMessage` of `message` costs: counted when the
/// message is handed to the command queue for a connection that is gone,
/// so that an application replying in bulk to peers that left is held to
/// the budget from the first moment.
pub(crate) fn rejection_cost<C: Converter>(converter: &C, message: &C::Message) -> usize {
    std::mem::size_of::<Envelope<C::Message>>() + counted_size(converter, message)
}

fn messages_size<C: Converter>(
    converter: &C,
    incomplete: Option<&C::Message>,
    queued: &[C::Message],
) -> usize {
    incomplete
        .into_iter()
        .chain(queued)
        .map(|m| counted_size(converter, m))
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
        assert!(!g.release(40));
        // Down to 50: this releaser resumes, once.
        assert!(g.release(10));
        assert!(!g.release(10));
        assert_eq!(g.used(), 40);
    }

    #[test]
    fn a_release_between_check_and_flag_is_not_lost() {
        let g = Gauge::default();
        g.add(10);
        // Over the bound, but by the time the flag is set the count is
        // already low (simulated by a low bound): no pause.
        assert!(!g.should_pause(10, 10));
        assert!(!g.release(10), "nobody is paused");
    }

    #[test]
    fn a_pause_until_empty_resumes_only_at_zero() {
        let g = Gauge::default();
        g.add(30);
        assert!(g.pause_until(0));
        assert!(!g.release(20));
        assert!(g.release(10));
        // Nothing held: no pause at all.
        assert!(!g.pause_until(0));
    }

    #[test]
    fn the_budget_counts_both_sides_and_resumes_from_either() {
        let b = Budget::new(100, 10);
        b.add_received(60);
        b.add_unsent(40);
        assert!(b.room().reached);
        assert_eq!(b.room().unsent, 60);
        assert!(b.should_pause());
        // Down to 80, then 75 (three quarters): the second release resumes.
        assert!(!b.release_unsent(20));
        assert!(b.release_received(5));
        assert!(!b.release_received(5), "resumed once");
        assert_eq!(b.used(), 70);
    }
}

#[cfg(all(test, pike_loom))]
mod loom_tests {
    use std::sync::Arc;

    use super::*;

    /// A connection pausing at its share while the application takes its
    /// events: if reading paused, the taker asks for the resume.
    #[test]
    fn loom_a_pause_at_the_share_is_never_left_without_a_resume() {
        loom::model(|| {
            let gauge = Arc::new(Gauge::default());
            gauge.add(10);
            let taker = {
                let gauge = gauge.clone();
                loom::thread::spawn(move || gauge.release(10))
            };
            let paused = gauge.should_pause(10, 5);
            let resumed = taker.join().unwrap();
            if paused {
                assert!(resumed, "paused at 10, taken down to 0, never resumed");
            }
        });
    }

    /// The same at the budget, with events taken and unsent bytes written
    /// at once.
    #[test]
    fn loom_a_pause_at_the_budget_is_never_left_without_a_resume() {
        loom::model(|| {
            let budget = Arc::new(Budget::new(8, 4));
            budget.add_received(5);
            budget.add_unsent(5);
            let takers: Vec<_> = [true, false]
                .into_iter()
                .map(|received| {
                    let budget = budget.clone();
                    loom::thread::spawn(move || {
                        if received {
                            budget.release_received(5)
                        } else {
                            budget.release_unsent(5)
                        }
                    })
                })
                .collect();
            let paused = budget.should_pause();
            let resumes = takers
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&r| r)
                .count();
            if paused {
                assert_eq!(resumes, 1, "paused, emptied, resumed {resumes} times");
            }
        });
    }
}
