//! Network thread → application threads: the main event queue and the
//! queues of separate connections.
//!
//! Both are [`channel`]s: each event goes to exactly one
//! taker. Only the network thread sends, so once it stops and drops its
//! senders, takers get the remaining events and then `None`.
//!
//! A separate connection's receiver sits in [`Separate`] from the moment its
//! `connect` or `finish_accept` returns until its final event is taken or it
//! is merged; the network thread keeps the sender in the connection's
//! [`Route`]. Merging is done by the network thread, the only sender: it
//! moves what is left to the main queue, in order, then drops the sender,
//! which releases every thread blocked in `recv_connection` with `None`.
//!
//! # Invariants
//!
//! * A connection's events go to exactly one queue at a time, in order: its
//!   route changes only on the loop (a merge) or under its slot's lock
//!   (`finish_accept`).
//! * Nothing follows a connection's final event; after it, its route is the
//!   main queue (late rejections go there).

use crate::memory::{ConnMap, conn_map};
use std::sync::Arc;

use crate::connector::budget::Credit;
use crate::connector::channel::{self, Receiver, Sender};
use crate::event::{Connection, Event};
use crate::sync::{Mutex, Rank, lock};

/// An event on its way to the application.
///
/// Credit (read backpressure) is counted per hand-over, not per event: the
/// last envelope of each batch carries the connection's credit and the
/// batch's cost in bytes, and whoever takes it gives all of that back. So producing
/// and taking an event costs no atomic operation on a shared counter, and
/// a connection's count comes down once a batch is taken in full.
#[derive(Debug)]
pub(crate) struct Envelope<M> {
    pub(crate) event: Event<M>,
    pub(crate) credit: Option<(Arc<Credit>, usize)>,
}

/// Where a connection's events go.
#[derive(Debug)]
pub(crate) enum Route<M> {
    Main,
    Separate(Sender<Envelope<M>>),
}

/// The receivers of separate connections, by connection.
#[derive(Debug)]
pub(crate) struct Separate<M> {
    receivers: Mutex<ConnMap<Receiver<Envelope<M>>>>,
}

impl<M> Default for Separate<M> {
    fn default() -> Self {
        Self {
            receivers: Mutex::new(Rank::Separate, conn_map()),
        }
    }
}

impl<M> Separate<M> {
    /// Opens a separate queue for `connection`; the sender goes to the
    /// network thread in a [`Route`].
    pub(crate) fn open(&self, connection: Connection) -> Route<M> {
        let (tx, rx) = channel::unbounded();
        lock(&self.receivers).insert(connection, rx);
        Route::Separate(tx)
    }

    /// The receiver of `connection`, if it is separate and not finished.
    pub(crate) fn receiver(&self, connection: Connection) -> Option<Receiver<Envelope<M>>> {
        lock(&self.receivers).get(&connection).cloned()
    }

    /// Events queued on every separate connection.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.receivers).values().map(Receiver::len).sum()
    }

    /// Forgets `connection`'s queue (merged, or its final event taken).
    pub(crate) fn remove(&self, connection: Connection) -> Option<Receiver<Envelope<M>>> {
        let mut receivers = lock(&self.receivers);
        let removed = receivers.remove(&connection);
        crate::memory::shrink_map(&mut receivers);
        removed
    }
}

/// Moves what is left in a separate queue to the main queue, in order.
pub(crate) fn merge_into<M>(separate: &Receiver<Envelope<M>>, main: &Sender<Envelope<M>>) {
    // The main receiver lives in the shared state as long as any sender.
    let _ = main.send_all(&mut separate.take_all());
}
