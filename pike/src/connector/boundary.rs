//! What application threads share with the loop: the command queue, the
//! event queues, the memory budget, the accept handle of a
//! [`RemoteConnect`](crate::event::RemoteConnect), and whether the
//! connector has stopped.
//!
//! # Invariants
//!
//! * Taking an event gives its credit back to the budget; if that lets a
//!   paused connection (or the whole connector) read again, the taker asks
//!   the loop to resume it (a command pushed after the queue's lock is let
//!   go).
//! * `stopped` is set once, by [`StopGuard`], however the loop ends (its
//!   last turn, a panic, or never run): a waiter in
//!   [`wait_stopped`](Shared::wait_stopped) always returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::directory::Directory;
use crate::connector::budget::{Budget, Credit, Resume};
use crate::connector::channel;
use crate::connector::command::{Command, CommandQueue};
use crate::connector::queues::{Envelope, Route, Separate};
use crate::converter::Converter;
use crate::event::{AcceptHandle, Connection, Event};
use crate::mode::Delivery;
use crate::stats::Stats;
use crate::sync::{Condvar, Mutex, Rank, lock};

/// What application threads and the network thread share.
#[derive(Debug)]
pub(crate) struct Shared<M> {
    pub(crate) commands: Arc<CommandQueue<M>>,
    pub(crate) main: channel::Receiver<Envelope<M>>,
    pub(crate) separate: Separate<M>,
    pub(crate) budget: Arc<Budget>,
    /// The credit of events about connections that are gone (messages
    /// sent to them, handed back): counted against the budget from the
    /// moment the message is handed to the command queue.
    pub(crate) orphans: Arc<Credit>,
    /// The counters of connections already closed, and connection counts
    /// (see [`stats`](crate::stats)). Lock order: before any slot.
    pub(crate) totals: Mutex<Stats>,
    stopped: Mutex<Stopped>,
    stopped_changed: Condvar,
    /// A shutdown's deadline ended connections that were still finishing.
    cut_short: AtomicBool,
}

impl<M> Shared<M> {
    pub(crate) fn new(
        commands: Arc<CommandQueue<M>>,
        main: channel::Receiver<Envelope<M>>,
        budget: Arc<Budget>,
    ) -> Self {
        Self {
            commands,
            main,
            separate: Separate::default(),
            budget,
            // No connection's id is 0 (see `Connection::of_place`).
            orphans: Arc::new(Credit::new(Connection(0))),
            totals: Mutex::new(Rank::Totals, Stats::default()),
            stopped: Mutex::new(Rank::Stopped, Stopped::default()),
            stopped_changed: Condvar::new(),
            cut_short: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.stopped).done
    }

    pub(crate) fn wait_stopped(&self) {
        let mut stopped = lock(&self.stopped);
        while !stopped.done {
            stopped = self.stopped_changed.wait(stopped);
        }
    }

    /// Ready once the loop has ended; otherwise `cx`'s waker is woken
    /// when it does.
    pub(crate) fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut stopped = lock(&self.stopped);
        if stopped.done {
            return Poll::Ready(());
        }
        if !stopped.tasks.iter().any(|t| t.will_wake(cx.waker())) {
            stopped.tasks.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The loop: a shutdown's deadline ended connections still finishing.
    pub(crate) fn note_shutdown_cut_short(&self) {
        self.cut_short.store(true, Ordering::SeqCst);
    }

    /// Whether a shutdown's deadline ended connections still finishing.
    pub(crate) fn shutdown_cut_short(&self) -> bool {
        self.cut_short.load(Ordering::SeqCst)
    }

    fn set_stopped(&self) {
        let tasks = {
            let mut stopped = lock(&self.stopped);
            stopped.done = true;
            std::mem::take(&mut stopped.tasks)
        };
        self.stopped_changed.notify_all();
        for task in tasks {
            task.wake();
        }
    }

    /// Takes an envelope out of a queue: gives its credit back, asking the
    /// network thread to read again if that connection was paused.
    pub(crate) fn open_envelope(&self, envelope: Envelope<M>) -> Event<M> {
        if let Some((credit, n)) = &envelope.credit {
            let resume = credit.taken(&self.budget, *n);
            self.resume(credit, resume);
        }
        envelope.event
    }

    fn resume(&self, credit: &Credit, resume: Resume) {
        if resume.connection {
            let _ = self.commands.push(Command::Resume {
                connection: credit.connection,
            });
        }
        if resume.budget {
            let _ = self.commands.push(Command::BudgetFreed);
        }
    }

    /// Waits up to `timeout` (`None`: for ever) for the main queue's next
    /// event, then passes up to `max` of those ready to `take`, in order.
    /// Returns how many (0 on timeout); Err once the queue is closed and
    /// empty.
    pub(crate) fn recv_batch(
        &self,
        take: &mut impl FnMut(Event<M>),
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, ()> {
        // Credit goes back under the queue's lock (an atomic operation);
        // the rare `Resume` is pushed after it.
        let mut resume = Vec::new();
        let n = self.main.recv_batch(max, timeout, |envelope| {
            if let Some((credit, k)) = &envelope.credit {
                let r = credit.taken(&self.budget, *k);
                if r != Resume::default() {
                    resume.push((credit.clone(), r));
                }
            }
            take(envelope.event);
        })?;
        for (credit, r) in resume {
            self.resume(&credit, r);
        }
        Ok(n)
    }
}

/// Whether the loop ended, and the async tasks waiting for it to.
#[derive(Debug, Default)]
struct Stopped {
    done: bool,
    tasks: Vec<Waker>,
}

/// Accepting and rejecting connections a peer opened, for
/// [`RemoteConnect`](crate::event::RemoteConnect), which knows the message
/// type but not the converter.
pub(crate) struct Admission<C: Converter> {
    pub(crate) shared: Arc<Shared<C::Message>>,
    pub(crate) directory: Arc<Directory<C>>,
}

impl<C: Converter> AcceptHandle<C::Message> for Admission<C> {
    fn accept(&self, id: Connection, delivery: Delivery) {
        let route = match delivery {
            Delivery::Merged => Route::Main,
            Delivery::Separate => self.shared.separate.open(id),
        };
        // Applied on this thread, in its place among the connection's sends.
        if !self.directory.accept(id, route) {
            self.shared.separate.remove(id);
        }
    }

    fn reject(&self, id: Connection) {
        self.directory.reject(id);
    }
}

/// Marks the connector stopped when the network loop ends, even by a panic.
pub(crate) struct StopGuard<C: Converter> {
    shared: Arc<Shared<C::Message>>,
    directory: Arc<Directory<C>>,
}

impl<C: Converter> StopGuard<C> {
    pub(crate) fn new(shared: Arc<Shared<C::Message>>, directory: Arc<Directory<C>>) -> Self {
        Self { shared, directory }
    }
}

impl<C: Converter> Drop for StopGuard<C> {
    fn drop(&mut self) {
        /// Marks the connector stopped even if letting go of the
        /// connections panics: a shutdown waiting for it must not hang.
        struct SetStopped<'a, M>(&'a Shared<M>);
        impl<M> Drop for SetStopped<'_, M> {
            fn drop(&mut self) {
                self.0.set_stopped();
            }
        }
        let _stopped = SetStopped(&self.shared);
        self.shared.commands.close();
        self.directory.retire_all();
    }
}
