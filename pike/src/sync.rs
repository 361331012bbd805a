//! Pike's locks: the lock order, written once and checked in debug
//! builds, and the one place that switches to `loom`'s model of them.
//!
//! # The lock order
//!
//! A thread may take a lock only if every lock it already holds comes
//! earlier in this table (a strictly lower [`Rank`]). Two threads so never
//! wait for each other in a cycle. In debug builds every [`lock`] checks
//! it and panics, naming both locks, when it is broken (before it waits,
//! so a broken order fails the test that took it instead of hanging it).
//!
//! | rank | lock | where | held while it takes |
//! |---|---|---|---|
//! | 1 | [`Rank::Loop`] | `reactor/lead.rs`: the loop itself | everything below: running the loop |
//! | 2 | [`Rank::Thread`] | `connector.rs`: the network thread's handle | nothing |
//! | 3 | [`Rank::Totals`] | `connector/boundary.rs`: the stats of closed connections | the slots (summing live connections, moving a closed one's numbers) |
//! | 4 | [`Rank::Slot`] | `connector/directory.rs`: one place of the directory, and the connection in it | the locks below: event queues, `connect_waiting`'s rendezvous, converter code |
//! | 5 | [`Rank::Separate`] | `connector/queues.rs`: receivers of separate queues | an event queue |
//! | 6 | [`Rank::Events`] | `connector/channel.rs`: one event queue | nothing |
//! | 7 | [`Rank::ConnectWait`] | `connector/command.rs`: `connect_waiting`'s rendezvous | nothing |
//! | 8 | [`Rank::Stopped`] | `connector/boundary.rs`: whether the loop ended | nothing |
//! | 9 | [`Rank::Places`] | `connector/slab.rs`: the directory's free places | nothing |
//! | 10 | [`Rank::FileJob`] | `converters/file.rs`: one transfer | the pool (handing it a job); the ring (its waker pushes a command) |
//! | 11 | [`Rank::FilePool`] | `converters/file.rs`: the file converter's workers | nothing |
//! | 12 | [`Rank::FileSlots`] | `converters/file.rs`: its open-file slots | nothing |
//! | 13 | [`Rank::Ring`] | `connector/handshake.rs`: the network thread's bell while it does not run the loop (rung by any command push, whatever the pusher holds) | nothing |
//! | 14 | `Rank::MemoryNet` | `transport/memory.rs` (the crate's tests only): the in-memory network | nothing |
//!
//! Finding a connection takes no lock (see `connector/slab.rs`): a send
//! takes its slot's lock alone.
//!
//! Poisoning is ignored: every piece of state behind Pike's locks stays
//! consistent across each single update, so a lock a panicking thread
//! held carries no broken invariant.
//!
//! # Model checking
//!
//! Built with `RUSTFLAGS="--cfg pike_loom"`, the locks, condition variables
//! and atomics here are `loom`'s, and the `loom` tests (`.ci/run` runs
//! them) explore every interleaving of the hand-written synchronisation
//! that uses them. The rank check is off then: loom runs its threads on
//! one thread of the system.

use std::ops::{Deref, DerefMut};
use std::sync::PoisonError;
use std::time::Duration;

#[cfg(pike_loom)]
use loom::sync as imp;
#[cfg(not(pike_loom))]
use std::sync as imp;

/// Atomics: `loom`'s under `--cfg pike_loom`, the standard library's otherwise.
pub(crate) mod atomic {
    #[cfg(pike_loom)]
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, fence};
    pub(crate) use std::sync::atomic::Ordering;
    #[cfg(not(pike_loom))]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, fence};
}

/// Yields the thread (to loom's scheduler under `--cfg pike_loom`).
pub(crate) fn yield_now() {
    #[cfg(pike_loom)]
    loom::thread::yield_now();
    #[cfg(not(pike_loom))]
    std::thread::yield_now();
}

/// Where a lock stands in the lock order (see the module documentation):
/// a thread takes locks in increasing rank only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    Loop = 1,
    Thread,
    Totals,
    Slot,
    Separate,
    Events,
    ConnectWait,
    Stopped,
    Places,
    FileJob,
    FilePool,
    FileSlots,
    Ring,
    #[cfg(test)]
    MemoryNet,
}

/// A lock's rank, kept only where it is checked (debug builds).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    #[cfg(all(debug_assertions, not(pike_loom)))]
    rank: Rank,
}

impl Ranked {
    #[cfg_attr(not(all(debug_assertions, not(pike_loom))), allow(unused_variables))]
    fn new(rank: Rank) -> Self {
        Self {
            #[cfg(all(debug_assertions, not(pike_loom)))]
            rank,
        }
    }

    fn take(self) -> Held {
        #[cfg(all(debug_assertions, not(pike_loom)))]
        return Held::take(self.rank);
        #[cfg(not(all(debug_assertions, not(pike_loom))))]
        Held {}
    }
}

/// A mutex with its place in the lock order.
pub(crate) struct Mutex<T: ?Sized> {
    rank: Ranked,
    inner: imp::Mutex<T>,
}

impl<T> Mutex<T> {
    pub(crate) fn new(rank: Rank, value: T) -> Self {
        Self {
            rank: Ranked::new(rank),
            inner: imp::Mutex::new(value),
        }
    }
}

impl<T: ?Sized> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mutex").finish_non_exhaustive()
    }
}

/// A held [`Mutex`].
pub(crate) struct MutexGuard<'a, T: ?Sized> {
    inner: imp::MutexGuard<'a, T>,
    _held: Held,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// Locks `mutex`, taking the data even if a thread panicked while holding
/// it (see the module documentation); in debug builds, checks the lock
/// order first.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    let held = mutex.rank.take();
    MutexGuard {
        inner: mutex.inner.lock().unwrap_or_else(PoisonError::into_inner),
        _held: held,
    }
}

/// A condition variable for a [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(imp::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Self(imp::Condvar::new())
    }

    /// Waits for a notification (the lock keeps its place in the order:
    /// it is taken again before this returns).
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let MutexGuard { inner, _held } = guard;
        let inner = self.0.wait(inner).unwrap_or_else(PoisonError::into_inner);
        MutexGuard { inner, _held }
    }

    /// Waits for a notification or `timeout`; true if it timed out.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let MutexGuard { inner, _held } = guard;
        let (inner, result) = self
            .0
            .wait_timeout(inner, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        (MutexGuard { inner, _held }, result.timed_out())
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[cfg(all(debug_assertions, not(pike_loom)))]
thread_local! {
    /// The ranks of the locks this thread holds, in the order taken.
    static HELD: std::cell::RefCell<Vec<Rank>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One lock held by this thread, in the debug builds' record of them.
struct Held {
    #[cfg(all(debug_assertions, not(pike_loom)))]
    rank: Rank,
}

#[cfg(all(debug_assertions, not(pike_loom)))]
impl Held {
    /// Records `rank` as taken, after checking the order.
    fn take(rank: Rank) -> Self {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(&top) = held.iter().max()
                && top >= rank
            {
                // Let go of the record before unwinding, so that the
                // guards dropped on the way find it whole.
                let taken = held.clone();
                drop(held);
                panic!(
                    "lock order broken: taking {rank:?} while holding {taken:?} \
                     (see pike/src/sync.rs)"
                );
            }
            held.push(rank);
        });
        Self { rank }
    }
}

#[cfg(all(debug_assertions, not(pike_loom)))]
impl Drop for Held {
    fn drop(&mut self) {
        let _ = HELD.try_with(|held| {
            let mut held = held.borrow_mut();
            if let Some(i) = held.iter().rposition(|&r| r == self.rank) {
                held.remove(i);
            }
        });
    }
}

#[cfg(all(test, debug_assertions, not(pike_loom)))]
mod tests {
    use super::*;

    #[test]
    fn locks_taken_in_order_pass_and_let_go() {
        let (a, b) = (Mutex::new(Rank::Totals, 1), Mutex::new(Rank::Slot, 2));
        {
            let _a = lock(&a);
            let _b = lock(&b);
        }
        // Let go: either may be taken alone again, in any order.
        drop(lock(&b));
        drop(lock(&a));
    }

    #[test]
    #[should_panic(expected = "lock order broken: taking Totals while holding [Slot]")]
    fn a_lock_taken_out_of_order_panics() {
        let (a, b) = (Mutex::new(Rank::Totals, 1), Mutex::new(Rank::Slot, 2));
        let _b = lock(&b);
        let _a = lock(&a);
    }

    #[test]
    #[should_panic(expected = "lock order broken")]
    fn the_same_rank_twice_panics() {
        let (a, b) = (Mutex::new(Rank::Slot, 1), Mutex::new(Rank::Slot, 2));
        let _a = lock(&a);
        let _b = lock(&b);
    }

    #[test]
    fn a_condvar_wait_keeps_the_lock_in_the_record() {
        let m = Mutex::new(Rank::Events, ());
        let cv = Condvar::new();
        let (g, timed_out) = cv.wait_timeout(lock(&m), Duration::from_millis(1));
        assert!(timed_out);
        drop(g);
        let outer = Mutex::new(Rank::Slot, ());
        let _outer = lock(&outer);
        drop(lock(&m));
    }
}
