//! Passing a connection's events on: to the loop's batch, then to the main
//! queue or the connection's own, counted against the memory budget.
//!
//! # Invariants
//!
//! * A connection's events leave its endpoint only here, under its slot's
//!   lock, in the order the endpoint produced them.
//! * Every event handed over is counted against its connection's credit
//!   (and so the budget) before a taker can see it.
//! * A `connect_waiting` connection's `FinishConnect` goes to its waiter
//!   (with the endpoint's own error); it reaches a queue only if it hands
//!   messages back, and events after a successful one are held until the
//!   caller's callback returned.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::Conn;
use crate::connector::budget::{Budget, Credit, event_cost};
use crate::connector::channel;
use crate::connector::directory::Directory;
use crate::connector::queues::{Envelope, Route};
use crate::converter::Converter;
use crate::error::ConnectError;
use crate::event::Event;
use crate::memory::CHUNK_ITEMS;
use crate::mode::DisconnectMode;

/// Where the loop's events go, what is needed to count them against the
/// budget on the way, and the events on their way (handed over in one go).
pub(super) struct Outlet<C: Converter> {
    pub(super) main: channel::Sender<Envelope<C::Message>>,
    pub(super) budget: Arc<Budget>,
    pub(super) converter: Arc<C>,
    /// Events on their way to a queue; empty between deliveries.
    pub(super) batch: Batch<C::Message>,
    /// When to give back what a burst grew the event queues to.
    trim_at: Option<Instant>,
}

/// How long after going idle the event queues give back what a burst grew
/// them to.
const TRIM_AFTER: Duration = Duration::from_millis(500);

impl<C: Converter> Outlet<C> {
    pub(super) fn new(
        main: channel::Sender<Envelope<C::Message>>,
        budget: Arc<Budget>,
        converter: Arc<C>,
    ) -> Self {
        Self {
            main,
            budget,
            converter,
            batch: Batch::new(),
            trim_at: None,
        }
    }

    /// Gives back what bursts grew the event queues to once the loop has
    /// been idle a while (`idle`: it is about to sleep). Returns when it
    /// must wake to do so.
    pub(super) fn trim_when_idle(
        &mut self,
        idle: bool,
        now: Instant,
        directory: &Directory<C>,
    ) -> Option<Instant> {
        if self.trim_at.is_some_and(|t| t <= now) {
            self.trim_at = None;
            crate::memory::trim_queue(&mut self.batch.events);
            self.main.trim();
            directory.for_each(|conn| {
                if let Route::Separate(tx) = &conn.route {
                    tx.trim();
                }
            });
        } else if self.trim_at.is_none() && idle && self.grown() {
            // Going idle with queues a burst grew: give them back in a
            // while (waking once for it), not at once: a burst a moment
            // from now would grow them again.
            self.trim_at = Some(now + TRIM_AFTER);
        }
        self.trim_at
    }

    /// Whether the event queues hold more room than
    /// [`trim_queue`](crate::memory::trim_queue) keeps.
    fn grown(&self) -> bool {
        let size = std::mem::size_of::<Envelope<C::Message>>();
        (self.batch.events.capacity() + self.main.capacity()) * size > 64 * 1024
    }

    /// What `event` costs against the budget.
    pub(super) fn cost(&self, event: &Event<C::Message>) -> usize {
        event_cost(&*self.converter, event)
    }

    /// Queues a connection's events where its route says, counting them
    /// against its credit first.
    pub(super) fn hand_over(&mut self, credit: &Arc<Credit>, route: &Route<C::Message>) {
        let batch = &mut self.batch;
        // Empty if the chunk being filled is: a full chunk is always
        // followed by one with an event.
        let Some(last) = batch.events.back_mut() else {
            return;
        };
        let bytes = std::mem::take(&mut batch.bytes);
        last.credit = Some((credit.clone(), bytes));
        credit.produced(&self.budget, bytes);
        let (full, events) = (&mut batch.full, &mut batch.events);
        if let Route::Separate(tx) = route
            && tx.send_chunks(full, events).is_ok()
        {
            return;
        }
        // Main, or a separate queue whose receiver is gone (cannot happen
        // before a merge): do not drop the events.
        let _ = self.main.send_chunks(full, events);
        full.clear();
        events.clear();
    }
}

/// Events on their way to a queue, and what they cost.
///
/// Kept in chunks of at most [`CHUNK_ITEMS`] events, which the queue
/// takes as they are: a read that decodes 16,000 small messages makes 63
/// allocations of one size rather than one buffer doubled to 2 MB, so a
/// flood leaves the allocator blocks it can hand out again (one size,
/// below the `mmap` threshold) instead of a spread of large ones, and
/// holds at most one chunk of room no event uses.
pub(super) struct Batch<M> {
    /// The chunk being filled.
    pub(super) events: VecDeque<Envelope<M>>,
    /// Full chunks, in order, before `events`.
    full: Vec<VecDeque<Envelope<M>>>,
    pub(super) bytes: usize,
}

impl<M> Batch<M> {
    pub(super) fn new() -> Self {
        Self {
            events: VecDeque::new(),
            full: Vec::new(),
            bytes: 0,
        }
    }

    pub(super) fn push(&mut self, event: Event<M>, cost: usize) {
        if self.events.len() == CHUNK_ITEMS {
            let next = VecDeque::with_capacity(CHUNK_ITEMS);
            self.full.push(std::mem::replace(&mut self.events, next));
        }
        self.bytes += cost;
        self.events.push_back(Envelope {
            event,
            credit: None,
        });
    }
}

/// Passes a connection's new events on: to its `connect_waiting` caller,
/// held, or to its queue, in one go.
pub(super) fn deliver<C: Converter>(conn: &mut Conn<C>, out: &mut Outlet<C>) {
    while let Some(event) = conn.endpoint.poll_event() {
        let mut event = Event::from(event);
        if conn.waiter.is_some() || conn.abandoned {
            match to_waiter(conn, event) {
                Some(e) => event = e,
                None => continue,
            }
        }
        if let Some(held) = &mut conn.held {
            held.push(event);
            continue;
        }
        let last = event.is_final();
        let cost = out.cost(&event);
        out.batch.push(event, cost);
        if last {
            // Nothing follows the final event; later rejections go to main.
            out.hand_over(&conn.credit, &conn.route);
            conn.route = Route::Main;
        }
    }
    out.hand_over(&conn.credit, &conn.route);
}

/// A `connect_waiting` connection's `FinishConnect` goes to the waiting
/// caller; returns the event if it must still be delivered (it hands
/// messages back), and every other event.
fn to_waiter<C: Converter>(
    conn: &mut Conn<C>,
    event: Event<C::Message>,
) -> Option<Event<C::Message>> {
    let Event::FinishConnect(mut finish) = event else {
        if conn.abandoned
            && let Event::FinishDisconnect(f) = &event
            && f.incomplete.is_none()
            && f.queued.is_empty()
        {
            // The caller gave up before it connected: nothing to tell.
            return None;
        }
        return Some(event);
    };
    let Some(waiter) = conn.waiter.take() else {
        return Some(Event::FinishConnect(finish));
    };
    match finish.reason.take() {
        None => {
            if waiter.finish(Ok(())) {
                // Events wait for the caller's callback.
                conn.held = Some(Box::default());
            } else {
                conn.abandoned = true;
                conn.endpoint.disconnect(DisconnectMode::Now);
            }
            None
        }
        Some(error) => {
            let back = (!finish.queued.is_empty()).then(|| {
                finish.reason = Some(copy_connect_error(&error));
                Event::FinishConnect(finish)
            });
            waiter.finish(Err(error));
            back
        }
    }
}

/// Passes one event of a connection on, by itself.
pub(super) fn route_event<C: Converter>(
    conn: &mut Conn<C>,
    out: &mut Outlet<C>,
    event: Event<C::Message>,
) {
    let last = event.is_final();
    let cost = out.cost(&event);
    out.batch.push(event, cost);
    out.hand_over(&conn.credit, &conn.route);
    if last {
        conn.route = Route::Main;
    }
}

/// A copy of a connect error, for reporting it in two places.
fn copy_connect_error(error: &ConnectError) -> ConnectError {
    let copy = |e: &io::Error| match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    match error {
        ConnectError::Resolve(e) => ConnectError::Resolve(copy(e)),
        ConnectError::Io(e) => ConnectError::Io(copy(e)),
        ConnectError::Cancelled => ConnectError::Cancelled,
        ConnectError::TimedOut => ConnectError::TimedOut,
        ConnectError::Tls(e) => ConnectError::Tls(e.clone()),
        ConnectError::Stopped => ConnectError::Stopped,
    }
}
