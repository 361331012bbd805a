//! The two handshakes of the command queue, apart from the queue so that
//! `loom` can check them (see the tests at the end).
//!
//! * [`Doorbell`]: a pusher rings only if the network thread sleeps, and
//!   the network thread sleeps only if the queue is empty; with a fence on
//!   each side one of them sees the other, so no command waits for a wake
//!   that never comes.
//! * [`Gate`]: once the network thread has closed the gate, a push either
//!   got in before (and its command is in the queue when `close` returns)
//!   or is refused.
//! * [`Ring`]: what the network thread waits on while it does not run the
//!   loop (see `reactor/lead.rs`). A ring is kept until the waiter takes
//!   it, so one that comes between the waiter's last look and its wait
//!   is not lost (a condition variable alone would lose it: the ringer
//!   does not hold the lock the waiter looks under).
//!
//! # Invariants
//!
//! * Pushers call [`Doorbell::must_ring`] after their command is queued;
//!   the network thread calls [`Doorbell::answered`] before it drains, and
//!   [`Doorbell::going_to_sleep`] with a look at the queue.
//! * A pusher queues only while it holds an [`Entered`] pass.

use std::time::Duration;

use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use crate::sync::{Condvar, Mutex, Rank, lock};

/// A bell that keeps its ring until it is answered (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct Ring {
    rung: Mutex<bool>,
    rang: Condvar,
}

impl Ring {
    pub(crate) fn new() -> Self {
        Self {
            rung: Mutex::new(Rank::Ring, false),
            rang: Condvar::new(),
        }
    }

    /// Rings: the waiter, now or when it next waits, returns.
    pub(crate) fn ring(&self) {
        *lock(&self.rung) = true;
        self.rang.notify_all();
    }

    /// Waits for a ring (taking it) at most `timeout` (`None`: for ever).
    /// Returns at once if one came since the last wait.
    pub(crate) fn wait(&self, timeout: Option<Duration>) {
        let mut rung = lock(&self.rung);
        if !*rung {
            rung = match timeout {
                None => self.rang.wait(rung),
                Some(t) => self.rang.wait_timeout(rung, t).0,
            };
        }
        *rung = false;
    }
}

/// Whether the network thread must be woken for a new command.
#[derive(Debug)]
pub(crate) struct Doorbell {
    /// A wake is on its way and not yet answered: no second one.
    wake_pending: AtomicBool,
    /// The network thread is (about to be) asleep in `poll`.
    sleeping: AtomicBool,
}

impl Doorbell {
    pub(crate) fn new() -> Self {
        Self {
            wake_pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
        }
    }

    /// Pusher, after queuing its command: true if it must wake the network
    /// thread (it sleeps, and nobody rang since it last woke).
    pub(crate) fn must_ring(&self) -> bool {
        fence(Ordering::SeqCst);
        self.sleeping.load(Ordering::SeqCst) && !self.wake_pending.swap(true, Ordering::AcqRel)
    }

    /// Network thread, before draining the queue: a command pushed after
    /// the drain rings again.
    pub(crate) fn answered(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    /// Network thread, about to sleep: false (stay awake) if `queue_empty`
    /// says commands came in meanwhile.
    pub(crate) fn going_to_sleep(&self, queue_empty: impl FnOnce() -> bool) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if queue_empty() {
            return true;
        }
        self.sleeping.store(false, Ordering::SeqCst);
        false
    }

    /// Network thread: awake again.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

/// The way into the queue, which the network thread closes when it stops.
#[derive(Debug)]
pub(crate) struct Gate {
    closed: AtomicBool,
    /// Pushes under way.
    pushing: AtomicUsize,
}

/// A push under way (see [`Gate::enter`]).
#[derive(Debug)]
pub(crate) struct Entered<'a>(&'a Gate);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.pushing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    pub(crate) fn new() -> Self {
        Self {
            closed: AtomicBool::new(false),
            pushing: AtomicUsize::new(0),
        }
    }

    /// A pass to queue a command, or `None` once the gate is closed.
    pub(crate) fn enter(&self) -> Option<Entered<'_>> {
        self.pushing.fetch_add(1, Ordering::SeqCst);
        let pass = Entered(self);
        // Announced, then a look at `closed`; `close` does the reverse,
        // with a fence on each side: one of the two sees the other.
        fence(Ordering::SeqCst);
        (!self.closed.load(Ordering::SeqCst)).then_some(pass)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Network thread: refuses every later push and waits until the pushes
    /// under way are done (their commands queued).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        while self.pushing.load(Ordering::SeqCst) != 0 {
            crate::sync::yield_now();
        }
    }
}

#[cfg(all(test, pike_loom))]
mod loom_tests {
    use std::sync::Arc;

    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A push and a network thread going to sleep: if it sleeps with the
    /// command not taken, the pusher rang.
    #[test]
    fn loom_no_command_waits_for_a_wake_that_never_comes() {
        loom::model(|| {
            let bell = Arc::new(Doorbell::new());
            let queued = Arc::new(AtomicUsize::new(0));
            let rang = Arc::new(AtomicBool::new(false));
            let pusher = {
                let (bell, queued, rang) = (bell.clone(), queued.clone(), rang.clone());
                loom::thread::spawn(move || {
                    queued.fetch_add(1, Ordering::SeqCst);
                    if bell.must_ring() {
                        rang.store(true, Ordering::SeqCst);
                    }
                })
            };
            bell.answered();
            let mut taken = queued.swap(0, Ordering::SeqCst);
            let slept = bell.going_to_sleep(|| queued.load(Ordering::SeqCst) == 0);
            if !slept {
                taken += queued.swap(0, Ordering::SeqCst);
            }
            pusher.join().unwrap();
            if slept && taken == 0 {
                assert!(
                    rang.load(Ordering::SeqCst),
                    "asleep with a command and no wake"
                );
            }
            bell.awake();
        });
    }

    /// Two pushers, one wake: the second does not ring again before the
    /// network thread answered the first.
    #[test]
    fn loom_a_burst_rings_once() {
        loom::model(|| {
            let bell = Arc::new(Doorbell::new());
            assert!(bell.going_to_sleep(|| true));
            let rings = Arc::new(AtomicUsize::new(0));
            let pushers: Vec<_> = (0..2)
                .map(|_| {
                    let (bell, rings) = (bell.clone(), rings.clone());
                    loom::thread::spawn(move || {
                        if bell.must_ring() {
                            rings.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for p in pushers {
                p.join().unwrap();
            }
            assert_eq!(rings.load(Ordering::SeqCst), 1);
        });
    }

    /// A push racing the close: it is refused, or its command is queued
    /// by the time `close` returns.
    #[test]
    fn loom_a_push_is_refused_or_in_before_the_last_drain() {
        loom::model(|| {
            let gate = Arc::new(Gate::new());
            let queued = Arc::new(AtomicUsize::new(0));
            let pusher = {
                let (gate, queued) = (gate.clone(), queued.clone());
                loom::thread::spawn(move || match gate.enter() {
                    Some(_pass) => {
                        queued.fetch_add(1, Ordering::SeqCst);
                        true
                    }
                    None => false,
                })
            };
            gate.close();
            let drained = queued.load(Ordering::SeqCst);
            let accepted = pusher.join().unwrap();
            assert_eq!(
                accepted,
                drained == 1,
                "accepted {accepted}, drained {drained}"
            );
        });
    }

    /// A ring and a wait in any order: the wait returns (a ring that
    /// came first is kept), and the next wait does not see it again
    /// unless it rings again.
    #[test]
    fn loom_a_ring_is_never_lost() {
        loom::model(|| {
            let ring = Arc::new(Ring::new());
            let ringer = {
                let ring = ring.clone();
                loom::thread::spawn(move || ring.ring())
            };
            ring.wait(None);
            ringer.join().unwrap();
            ring.ring();
            ring.wait(None);
        });
    }
}
