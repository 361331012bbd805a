//! Who runs the network loop: the network thread, or an application thread
//! blocked in `recv` (leader/follower).
//!
//! When an application thread waits for an event, the fastest way to get it
//! one is to let that thread wait in `poll` itself: the socket's readiness
//! then wakes the very thread that wants the message, where otherwise it
//! wakes the network thread, which wakes the application thread (two
//! context switches instead of one, and on a busy machine each costs tens
//! of microseconds).
//!
//! So the [`Reactor`] sits in a slot. Its *network thread* (the one `spawn`
//! starts, or the caller of `run`) runs it while nobody else wants it. A
//! thread in `recv` with nothing to take *borrows* it: if it is idle in the
//! slot, at once; if the network thread is running it, by asking (`wanted`
//! and a no-op command that wakes `poll`) and waiting for the hand-over. It
//! runs turns of the loop until an event for it is queued, then puts the
//! reactor back in the slot. Only one thread borrows at a time; the others
//! wait on the queue as before, fed by whoever runs the loop.
//!
//! A returned reactor is not handed to the network thread at once: an
//! application that calls `recv` in a loop takes it again straight away,
//! with no hand-over at all. While it is idle in the slot, a command (a send left for
//! the loop to write, a connect, a shutdown…) wakes the network thread,
//! and the network thread runs one turn that does not wait, then leaves it idle
//! again. Once it has been idle for [`GRACE`], the network thread takes it
//! back, so that a connector whose application threads are all busy still
//! accepts and reads within that time.
//!
//! While the reactor is lent, the network thread checks on it every `GRACE`;
//! once it has stayed lent for [`SLEEP_AFTER`] of those in a row (a thread
//! blocked in `recv` on a quiet connector), the network thread sleeps until
//! the borrower puts it back, so that a quiet connector makes no wake-ups.
//!
//! # Invariants
//!
//! * The reactor is in exactly one place: the slot, the network thread, or
//!   one borrower. Only the slot's lock moves it.
//! * A borrower always puts it back (a guard does, even on a panic), and a
//!   loop left idle in the slot is woken by any command: a command rings
//!   the network thread's [`Ring`], which keeps the ring until the thread
//!   waits, so none is lost between its last look and its wait (`GRACE`
//!   is when it takes the loop back, not what bounds a lost wake-up; a
//!   plain condition variable lost them there, which the `loom` model of
//!   the hand-over below found).
//! * The hand-over is generic over the [`Loop`] it hands on, so that the
//!   `loom` tests run the real [`Lead`] with a model of the loop, on the
//!   loop's [`Clock`] (a manual one there).
//! * Words: the reactor is *lent* to a *borrower* and *returned*; it is
//!   *idle* in the slot while nobody runs it; the network thread is
//!   *asleep* while it waits without a timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::connector::command::CommandQueue;
use crate::connector::handshake::Ring;
use crate::converter::Converter;
use crate::reactor::Reactor;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{Condvar, Mutex, MutexGuard, Rank, lock};

/// What the [`Lead`] hands from thread to thread: the [`Reactor`] (or,
/// in the `loom` tests, a model of it).
pub(crate) trait Loop: Send + Sized {
    /// What the network thread waits on while it does not run the loop,
    /// rung by whoever gives the loop work (the command queue).
    type Bell: IdleBell;
    /// One turn, sleeping at most `cap`; false once the loop has ended.
    fn turn(&mut self, cap: Option<Duration>) -> bool;
    /// Marks the loop idle in its slot, or taken to run; going idle
    /// returns whether work is already waiting.
    fn set_idle(&self, idle: bool) -> bool;
    /// Whether a turn would find something to do without waiting.
    fn has_work(&self) -> bool;
    /// After the last turn: closes what is left.
    fn finish(self);
    /// Its bell.
    fn bell(&self) -> Arc<Self::Bell>;
    /// Where its time comes from.
    fn clock(&self) -> Clock;
}

/// The bell the network thread waits on while it does not run the loop.
pub(crate) trait IdleBell: Send + Sync {
    fn idle_wake(&self) -> &Ring;
}

impl<M: Send> IdleBell for CommandQueue<M> {
    fn idle_wake(&self) -> &Ring {
        &self.idle_wake
    }
}

impl<C: Converter> Loop for Reactor<C> {
    type Bell = CommandQueue<C::Message>;

    fn turn(&mut self, cap: Option<Duration>) -> bool {
        Reactor::turn(self, cap)
    }

    fn set_idle(&self, idle: bool) -> bool {
        Reactor::set_idle(self, idle)
    }

    fn has_work(&self) -> bool {
        Reactor::has_work(self)
    }

    fn finish(self) {
        Reactor::finish(self)
    }

    fn bell(&self) -> Arc<Self::Bell> {
        self.shared().commands.clone()
    }

    fn clock(&self) -> Clock {
        self.clock.clone()
    }
}

/// How long a returned reactor may sit idle before its network thread takes
/// it back.
pub(crate) const GRACE: Duration = Duration::from_micros(500);

/// How many grace periods in a row the reactor must stay lent before the
/// network thread stops waking for it (see [`Lead::run_network_thread`]).
const SLEEP_AFTER: u32 = 20;

/// What became of a request to start the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Started: the caller runs the network thread.
    Go,
    /// Started before: the caller's mistake.
    Twice,
    /// A shutdown came first: nothing to run.
    Stopped,
}

/// The slot the reactor lives in, and the threads that run it.
pub(crate) struct Lead<L: Loop> {
    slot: Mutex<Slot<L>>,
    /// The network thread waits on its `idle_wake` while the reactor is
    /// lent or idle; commands pushed while it is idle ring it.
    commands: Arc<L::Bell>,
    /// When it was put back, and how long it has been idle.
    clock: Clock,
    /// A borrower waits here for the network thread to hand the reactor over.
    handed: Condvar,
    /// Borrowers asking the network thread to hand the reactor over.
    wanted: AtomicUsize,
    /// A borrower has the reactor or is waiting for it. Changed only under
    /// the slot's lock; an atomic so that the threads in `recv` while one
    /// of them runs the loop do not all take that lock to find out.
    lent: AtomicBool,
    /// Threads waiting for an event of the main queue.
    waiting: AtomicUsize,
}

struct Slot<L> {
    /// `None` while a thread runs it (or after it finished).
    reactor: Option<L>,
    /// A network thread runs the loop (`spawn` or `run` was called).
    started: bool,
    /// A shutdown ran the loop before anyone started it: there is nothing
    /// left to run.
    shut_down_unstarted: bool,
    /// The loop ended (shutdown complete) and the reactor is gone.
    done: bool,
    /// When a borrower put it back, while nobody has taken it since.
    idle_since: Option<Instant>,
    /// How many times a borrower has put it back.
    returns: u64,
    /// The network thread sleeps with no timeout until a borrower puts the
    /// reactor back: it stayed lent through [`SLEEP_AFTER`] grace periods.
    asleep: bool,
    /// The borrower that last put the reactor back left work in it (a
    /// command, or a socket ready).
    returned_work: bool,
}

impl<L: Loop> std::fmt::Debug for Lead<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lead").finish_non_exhaustive()
    }
}

impl<L: Loop> Lead<L> {
    pub(crate) fn new(reactor: L) -> Self {
        Self {
            commands: reactor.bell(),
            clock: reactor.clock(),
            slot: Mutex::new(
                Rank::Loop,
                Slot {
                    reactor: Some(reactor),
                    started: false,
                    shut_down_unstarted: false,
                    done: false,
                    idle_since: None,
                    returns: 0,
                    asleep: false,
                    returned_work: false,
                },
            ),
            handed: Condvar::new(),
            wanted: AtomicUsize::new(0),
            lent: AtomicBool::new(false),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Marks the loop started by a network thread, if it can be.
    pub(crate) fn start(&self) -> Start {
        let mut slot = lock(&self.slot);
        if slot.shut_down_unstarted {
            return Start::Stopped;
        }
        if slot.started || slot.reactor.is_none() {
            return Start::Twice;
        }
        slot.started = true;
        Start::Go
    }

    /// The reactor of a connector that was never started, to run its
    /// shutdown on the caller.
    pub(crate) fn take_unstarted(&self) -> Option<L> {
        let mut slot = lock(&self.slot);
        if slot.started {
            return None;
        }
        slot.started = true;
        slot.shut_down_unstarted = true;
        slot.reactor.take()
    }

    /// The network thread's loop: runs the reactor whenever nobody borrows it,
    /// until shutdown completes.
    pub(crate) fn run_network_thread(&self) {
        let mut slot = lock(&self.slot);
        // `returns` when the network thread last found the reactor lent, and
        // for how many grace periods in a row it has stayed lent since.
        let mut seen_returns = None;
        let mut lent_for = 0u32;
        loop {
            if slot.done {
                return;
            }
            let idle = slot.reactor.is_some()
                && !self.lent.load(Ordering::Relaxed)
                && self.wanted.load(Ordering::SeqCst) == 0;
            if !idle {
                let still_lent = slot.reactor.is_none() && seen_returns == Some(slot.returns);
                lent_for = if still_lent { lent_for + 1 } else { 0 };
                if lent_for >= SLEEP_AFTER {
                    // Lent all through the last grace periods (a thread
                    // blocked in `recv` on a quiet connector): sleep until
                    // it comes back, rather than wake every `GRACE` for
                    // nothing. Not sooner: in a busy stream the loop comes
                    // and goes, and a network thread woken by each return
                    // would cost more than its timer.
                    lent_for = 0;
                    slot.asleep = true;
                    drop(slot);
                    self.commands.idle_wake().wait(None);
                    slot = lock(&self.slot);
                    slot.asleep = false;
                    seen_returns = None;
                    if slot.reactor.is_some() && !slot.returned_work {
                        // Woken because it came back: its borrower is likely
                        // to want it again at once, so start the grace
                        // period rather than run a turn now (which would
                        // only make it wait for the hand-over). A command
                        // wakes it and cuts the wait short.
                        slot = self.wake_or_wait(slot, GRACE);
                    }
                } else {
                    seen_returns = Some(slot.returns);
                    slot = self.wake_or_wait(slot, GRACE);
                }
                continue;
            }
            seen_returns = None;
            let idle_for = slot
                .idle_since
                .map_or(GRACE, |t| self.clock.now().saturating_duration_since(t));
            // Idle since a moment ago, its borrower is likely back soon: only do
            // what the commands ask, without keeping it. Idle for `GRACE`:
            // take it back.
            let keep = idle_for >= GRACE;
            let mut reactor = slot.reactor.take().expect("idle");
            if keep {
                reactor.set_idle(false);
                slot.idle_since = None;
            }
            drop(slot);
            let mut alive = true;
            if keep {
                while alive && self.wanted.load(Ordering::SeqCst) == 0 {
                    alive = reactor.turn(None);
                }
            } else {
                alive = reactor.turn(Some(Duration::ZERO));
            }
            if !alive {
                self.finish(reactor);
                return;
            }
            // Still idle after a quick turn: did more come meanwhile?
            let again = !keep && (reactor.set_idle(true) || reactor.has_work());
            slot = lock(&self.slot);
            slot.reactor = Some(reactor);
            self.handed.notify_all();
            if !keep && !again {
                slot = self.wake_or_wait(slot, GRACE.saturating_sub(idle_for));
            }
        }
    }

    /// Sleeps on `idle_wake` until a command rings it (or rang since the
    /// last wait) or `timeout` passes; the slot's lock is let go meanwhile.
    fn wake_or_wait<'a>(
        &'a self,
        slot: MutexGuard<'a, Slot<L>>,
        timeout: Duration,
    ) -> MutexGuard<'a, Slot<L>> {
        drop(slot);
        self.commands.idle_wake().wait(Some(timeout));
        lock(&self.slot)
    }

    /// Takes the reactor to run it on this thread, waiting for the home
    /// thread to hand it over until `deadline`. `None` if the loop is not
    /// running on a network thread, someone else borrows it, it finished, or
    /// the deadline passed.
    pub(crate) fn borrow(
        &self,
        deadline: Option<Instant>,
        nudge: impl FnOnce(),
    ) -> Option<Borrowed<'_, L>> {
        // Several threads waiting (a pool of workers): they are better
        // served by the network thread feeding them all than by one of them
        // running the loop and handing it back and forth.
        if self.lent.load(Ordering::Relaxed) || self.waiting.load(Ordering::Relaxed) > 1 {
            return None;
        }
        let mut slot = lock(&self.slot);
        if !slot.started || self.lent.load(Ordering::Relaxed) || slot.done {
            return None;
        }
        self.lent.store(true, Ordering::Relaxed);
        if slot.reactor.is_none() {
            // The network thread runs it: ask it to stop after its turn.
            self.wanted.fetch_add(1, Ordering::SeqCst);
            nudge();
            while slot.reactor.is_none() {
                // The caller's deadline: the system's time.
                let now = Instant::now();
                let expired = deadline.is_some_and(|d| now >= d);
                if slot.done || expired {
                    self.wanted.fetch_sub(1, Ordering::SeqCst);
                    self.lent.store(false, Ordering::Relaxed);
                    drop(slot);
                    self.commands.idle_wake().ring();
                    return None;
                }
                slot = match deadline {
                    None => self.handed.wait(slot),
                    Some(d) => self.handed.wait_timeout(slot, d - now).0,
                };
            }
            self.wanted.fetch_sub(1, Ordering::SeqCst);
        }
        let reactor = slot.reactor.take().expect("checked");
        reactor.set_idle(false);
        slot.idle_since = None;
        Some(Borrowed {
            lead: self,
            reactor: Some(reactor),
        })
    }

    /// Counts the caller among the threads waiting for an event until the
    /// guard is dropped.
    pub(crate) fn waiting(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.waiting)
    }

    fn finish(&self, reactor: L) {
        reactor.finish();
        let mut slot = lock(&self.slot);
        slot.done = true;
        self.lent.store(false, Ordering::Relaxed);
        drop(slot);
        self.commands.idle_wake().ring();
        self.handed.notify_all();
    }
}

/// One thread waiting for an event; see [`Lead::waiting`].
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reactor lent to an application thread; back in its slot when dropped.
pub(crate) struct Borrowed<'a, L: Loop> {
    lead: &'a Lead<L>,
    reactor: Option<L>,
}

impl<L: Loop> Borrowed<'_, L> {
    /// One turn of the loop, sleeping in `poll` at most `cap`. False once
    /// shutdown completed (the reactor is then finished and gone).
    pub(crate) fn turn(&mut self, cap: Option<Duration>) -> bool {
        let Some(reactor) = &mut self.reactor else {
            return false;
        };
        if reactor.turn(cap) {
            return true;
        }
        let reactor = self.reactor.take().expect("checked");
        self.lead.finish(reactor);
        false
    }
}

impl<L: Loop> Drop for Borrowed<'_, L> {
    fn drop(&mut self) {
        let Some(reactor) = self.reactor.take() else {
            return;
        };
        if std::thread::panicking() {
            // Whatever broke may have left it inconsistent: stop the
            // connector rather than run it on.
            drop(reactor);
            let mut slot = lock(&self.lead.slot);
            slot.done = true;
            self.lead.lent.store(false, Ordering::Relaxed);
            drop(slot);
            self.lead.commands.idle_wake().ring();
            self.lead.handed.notify_all();
            return;
        }
        let mut slot = lock(&self.lead.slot);
        // From now on a command wakes the network thread.
        let has_work = reactor.set_idle(true) || reactor.has_work();
        slot.reactor = Some(reactor);
        self.lead.lent.store(false, Ordering::Relaxed);
        slot.idle_since = Some(self.lead.clock.now());
        slot.returns += 1;
        slot.returned_work = has_work;
        let asleep = slot.asleep;
        drop(slot);
        // Otherwise no notification: the network thread takes an idle reactor
        // back after `GRACE` (or when a command comes); a thread calling
        // `recv` again takes it at once. A asleep network thread must be
        // woken to start counting.
        if has_work || asleep {
            self.lead.commands.idle_wake().ring();
        }
    }
}

/// The hand-over, every interleaving: a model of the loop (its poll is a
/// condition variable a command rings; a ring while it is idle in the slot
/// also rings the network thread's bell, as the command queue's `push`
/// does) run by the real [`Lead`]. `loom` does not time out timed waits:
/// a model only ends if every wait is woken, so a missed wake-up shows as
/// a deadlock.
#[cfg(all(test, pike_loom))]
mod loom_tests {
    use std::sync::Arc;

    use super::*;

    struct Bell {
        idle_wake: Ring,
        /// The loop is idle in its slot (`CommandQueue::set_idle`).
        idle: AtomicBool,
        poll: Mutex<Commands>,
        polled: Condvar,
    }

    #[derive(Default)]
    struct Commands {
        pending: bool,
        shutdown: bool,
    }

    impl IdleBell for Bell {
        fn idle_wake(&self) -> &Ring {
            &self.idle_wake
        }
    }

    impl Bell {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                idle_wake: Ring::new(),
                idle: AtomicBool::new(false),
                poll: Mutex::new(Rank::Events, Commands::default()),
                polled: Condvar::new(),
            })
        }

        /// A command (a shutdown, if `shutdown`): wakes the poll, and the
        /// network thread if the loop is idle.
        fn push(&self, shutdown: bool) {
            let mut commands = lock(&self.poll);
            commands.pending = true;
            commands.shutdown |= shutdown;
            drop(commands);
            self.polled.notify_all();
            if self.idle.load(Ordering::SeqCst) {
                self.idle_wake.ring();
            }
        }
    }

    struct Model {
        bell: Arc<Bell>,
        clock: Clock,
    }

    impl Loop for Model {
        type Bell = Bell;

        fn turn(&mut self, cap: Option<Duration>) -> bool {
            let mut commands = lock(&self.bell.poll);
            if cap.is_none() {
                while !commands.pending {
                    commands = self.bell.polled.wait(commands);
                }
            }
            commands.pending = false;
            !commands.shutdown
        }

        fn set_idle(&self, idle: bool) -> bool {
            self.bell.idle.store(idle, Ordering::SeqCst);
            lock(&self.bell.poll).pending
        }

        fn has_work(&self) -> bool {
            lock(&self.bell.poll).pending
        }

        fn finish(self) {}

        fn bell(&self) -> Arc<Bell> {
            self.bell.clone()
        }

        fn clock(&self) -> Clock {
            // Standing still: an idle loop is always "just returned".
            self.clock.clone()
        }
    }

    fn lead() -> (Arc<Lead<Model>>, Arc<Bell>) {
        let bell = Bell::new();
        let model = Model {
            bell: bell.clone(),
            clock: Clock::manual(),
        };
        let lead = Arc::new(Lead::new(model));
        assert_eq!(lead.start(), Start::Go);
        (lead, bell)
    }

    /// A thread in `recv` borrows the loop from the network thread
    /// running it, runs a turn, puts it back; a shutdown then ends it on
    /// the network thread. Every thread finishes: no hand-over waits for a
    /// wake-up that never comes.
    #[test]
    fn loom_a_borrower_gets_the_loop_and_the_network_thread_gets_it_back() {
        loom::model(|| {
            let (lead, bell) = lead();
            let network = {
                let lead = lead.clone();
                loom::thread::spawn(move || lead.run_network_thread())
            };
            let borrower = {
                let (lead, bell) = (lead.clone(), bell.clone());
                loom::thread::spawn(move || {
                    let mut lent = lead
                        .borrow(None, || bell.push(false))
                        .expect("nobody else borrows it");
                    assert!(lent.turn(Some(Duration::ZERO)));
                })
            };
            borrower.join().unwrap();
            bell.push(true);
            network.join().unwrap();
            assert!(lead.borrow(None, || {}).is_none(), "it ended");
        });
    }

    /// Two threads in `recv` at once: the loop runs on one thread at a
    /// time, and both come back.
    #[test]
    fn loom_the_loop_runs_on_one_thread_at_a_time() {
        loom::model(|| {
            let (lead, bell) = lead();
            let inside = Arc::new(AtomicBool::new(false));
            let borrowers: Vec<_> = (0..2)
                .map(|_| {
                    let (lead, bell, inside) = (lead.clone(), bell.clone(), inside.clone());
                    loom::thread::spawn(move || {
                        if let Some(mut lent) = lead.borrow(None, || bell.push(false)) {
                            assert!(!inside.swap(true, Ordering::SeqCst), "two at once");
                            lent.turn(Some(Duration::ZERO));
                            inside.store(false, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for b in borrowers {
                b.join().unwrap();
            }
            // Never run by a network thread: a shutdown runs it here.
            bell.push(true);
            if let Some(mut lent) = lead.borrow(None, || {}) {
                assert!(!lent.turn(Some(Duration::ZERO)));
            }
        });
    }
}
