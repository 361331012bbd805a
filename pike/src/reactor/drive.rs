//! Driving connections: doing what each ready connection's endpoint asks
//! with its transport, firing its timers, and closing it at the end.
//!
//! # Invariants
//!
//! * A connection is driven under its slot's lock, so a sender never sees
//!   it half-driven; the loop holds one slot at a time.
//! * Each drive writes first (what senders left, then what the endpoint
//!   makes room for), shuts the write side down when the endpoint asks,
//!   passes events on, then reads within the connection's allowance
//!   ([`pacing`](super::pacing)) and its [`READ_BUDGET`] of reads per turn.
//! * A connection whose endpoint is `Closed` is closed here: its last
//!   events passed on, its transport deregistered and dropped, its slot
//!   retired under the same lock, its budget and timer given back.
//! * Every endpoint deadline is in the timer set, so the loop sleeps in
//!   `poll` no longer than until the next one.

use std::time::Instant;

use super::conn::Conn;
use super::outlet::deliver;
use super::pacing::{Allowance, Pause, allowance, arm_budget_pause, handshake_allowance};
use super::{READ_BUDGET, Reactor};
use crate::connector::budget::{SMALL_READ, event_cost};
use crate::connector::directory::ConnGuard;
use crate::converter::Converter;
use crate::endpoint::{EndpointEvent, State};
use crate::event::{Connection, Event};
use crate::stats::Ending;
use crate::sync::lock;

impl<C: Converter> Reactor<C> {
    pub(super) fn drive_ready(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        for &id in &ready {
            if let Some(keys) = self.conns.get_mut(id) {
                keys.ready = false;
            }
            self.drive(id);
        }
        // Hand the allocation back if nothing was queued meanwhile.
        if self.ready.is_empty() {
            self.ready = ready;
            self.ready.clear();
        }
    }

    /// Does all the I/O a connection can do now, within its read budget,
    /// then enters its next deadline.
    fn drive(&mut self, id: Connection) {
        let Some(keys) = self.conns.get_mut(id) else {
            return;
        };
        let edges = std::mem::take(&mut keys.edges);
        let Some(mut guard) = self.directory.lock(id) else {
            return;
        };
        guard.note_edges(edges);
        if guard.endpoint.state() == State::Connecting
            && guard.transport.is_some()
            && (guard.readable || guard.writable)
        {
            drop(guard);
            self.check_connect(id);
            guard = match self.directory.lock(id) {
                Some(guard) => guard,
                None => return,
            };
        }
        if guard.endpoint.awaiting_redial() {
            // An attempt failed, or the link broke, and another attempt
            // follows: the dead transport goes, and the new attempt starts
            // when its wait is over.
            drop(guard);
            self.drop_failed_transport(id);
            guard = match self.directory.lock(id) {
                Some(guard) => guard,
                None => return,
            };
            if guard.endpoint.redial_due(self.clock.now()) {
                drop(guard);
                self.redial(id);
                guard = match self.directory.lock(id) {
                    Some(guard) => guard,
                    None => return,
                };
            }
        }
        let room = guard.room();
        let span = guard.span().clone();
        let _in_span = span.enter();
        let conn = &mut *guard;
        let mut reads = READ_BUDGET;
        let (due, input_bytes, closed) = loop {
            let mut progress = false;
            // Looked at even while reading is paused: a connection whose
            // peer reset it ends now, giving back all it holds.
            conn.take_socket_error();
            if conn.handshaking() {
                // A handshake reads within the budget too.
                let limit = match conn.paused {
                    Pause::No => handshake_allowance(&self.out.budget, conn),
                    _ => 0,
                };
                let (moved, stopped) = conn.handshake(limit, self.clock.now());
                progress = moved;
                if stopped && conn.paused == Pause::No && limit != usize::MAX {
                    conn.paused = Pause::Budget;
                    conn.endpoint.hold_input(true);
                    self.pacing.paused.push(id);
                    arm_budget_pause(conn);
                }
            } else if conn.endpoint.handshake_pending() {
                // Done by a read (of a connection accepted before it
                // ended): its timer stops.
                conn.handshake(usize::MAX, self.clock.now());
            }
            // What senders left goes out when the endpoint says (a
            // stream's tail waits for its window: see `Endpoint::coalesce`).
            if conn.write_due(&self.clock) && conn.write_out() {
                progress = true;
                conn.endpoint.note_write(self.clock.now());
                conn.refresh_room(&self.out.budget);
                conn.notify_room(room);
            }
            conn.shut_write_if_asked(&self.clock);
            // Whatever the endpoint still queued goes first, so that the
            // messages read next can go straight into the batch.
            deliver(conn, &mut self.out);
            let backlog = conn.endpoint.has_backlog();
            let wants = backlog || (conn.endpoint.wants_read() && conn.readable);
            if wants && conn.held.is_none() {
                // Draining input is discarded, so the bounds do not apply.
                let allowance = if conn.endpoint.discards_input() {
                    Allowance::Take {
                        bytes: usize::MAX,
                        read: usize::MAX,
                    }
                } else {
                    allowance(&self.out.budget, conn, self.pacing.granted == Some(id))
                };
                match allowance {
                    Allowance::Pause(why) => {
                        conn.paused = why;
                        conn.endpoint.hold_input(true);
                        if why == Pause::Budget {
                            self.pacing.paused.push(id);
                            arm_budget_pause(conn);
                        }
                    }
                    Allowance::Take { .. } if reads == 0 => {
                        // More to read: come back next turn, after the others.
                        if let Some(keys) = self.conns.get_mut(id)
                            && !keys.ready
                        {
                            keys.ready = true;
                            self.ready.push(id);
                        }
                    }
                    Allowance::Take { bytes, read } => {
                        reads -= 1;
                        progress = true;
                        let now = self.clock.now();
                        let batch = &mut self.out.batch;
                        let converter = &*self.out.converter;
                        let mut taken = 0usize;
                        let mut sink = |event: EndpointEvent<C::Message>| {
                            let event = Event::from(event);
                            let cost = event_cost(converter, &event);
                            taken += cost;
                            batch.push(event, cost);
                            taken < bytes
                        };
                        if backlog {
                            conn.endpoint.handle_backlog_into(now, &mut sink);
                        } else {
                            // Read what the allowance is likely to take, by
                            // what events cost per byte read last time, so
                            // that little is held back undecoded.
                            let read = (read / conn.cost_per_byte.max(1)).max(SMALL_READ);
                            let n = conn.read_into(now, read, &mut self.scratch, &mut sink);
                            if n > 0 {
                                conn.cost_per_byte = taken.div_ceil(n).clamp(1, 1024);
                            }
                        }
                    }
                }
            }
            deliver(conn, &mut self.out);
            let closed = conn.endpoint.state() == State::Closed;
            if closed || !progress {
                // The grant ends once the connection holds no input: its
                // message completed and nothing waits undecoded.
                if self.pacing.granted == Some(id) && conn.endpoint.input_bytes() == 0 {
                    self.pacing.granted = None;
                }
                break (
                    conn.endpoint.poll_timeout(),
                    conn.endpoint.input_bytes(),
                    closed,
                );
            }
        };
        let budget_freed = guard.settle(&self.out.budget);
        let look_again = guard.budget_paused && guard.counted == 0;
        let input_before = std::mem::replace(&mut guard.input_bytes, input_bytes);
        // A link that broke in the loop (the peer closed or reset it, a
        // TLS handshake or record failed) waits to be dialled again: its
        // transport goes now, and the next drive starts the wait.
        let redial = guard.endpoint.awaiting_redial() && guard.transport.is_some();
        drop(guard);
        if redial {
            self.drop_failed_transport(id);
            self.mark_ready(id);
        }
        self.account_input(input_before, input_bytes);
        if budget_freed {
            self.resume_budget();
        }
        if look_again {
            self.resume_connection(id);
        }
        if closed {
            self.close(id);
        } else {
            self.set_timer(id, due);
        }
    }

    /// Enters a connection's next deadline in the timers.
    fn set_timer(&mut self, id: Connection, due: Option<Instant>) {
        let Some(keys) = self.conns.get_mut(id) else {
            return;
        };
        if keys.timer == due {
            return;
        }
        if let Some(old) = keys.timer.take() {
            self.timers.cancel(old, id);
        }
        if let Some(due) = due {
            self.timers.enter(due, id);
            keys.timer = Some(due);
        }
    }

    /// A connection the loop serves, locked.
    pub(super) fn served(&self, id: Connection) -> Option<ConnGuard<'_, C>> {
        if !self.conns.contains(id) {
            return None;
        }
        self.directory.lock(id)
    }

    /// Runs `f` on a connection the loop serves, under its lock.
    pub(super) fn with_served<R>(
        &self,
        id: Connection,
        f: impl FnOnce(&mut Conn<C>) -> R,
    ) -> Option<R> {
        let mut conn = self.served(id)?;
        Some(f(&mut conn))
    }

    /// Marks a connection to be driven this turn or the next.
    pub(super) fn mark_ready(&mut self, id: Connection) {
        if let Some(keys) = self.conns.get_mut(id)
            && !keys.ready
        {
            keys.ready = true;
            self.ready.push(id);
        }
    }

    /// Closes a connection's transport and forgets it, once its events are
    /// passed on. Events held for a `connect_waiting` callback keep the
    /// connection (and its place) until the callback returned.
    pub(super) fn close(&mut self, id: Connection) {
        if !self.conns.contains(id) {
            return;
        }
        let Some(mut conn) = self.directory.lock(id) else {
            return;
        };
        deliver(&mut conn, &mut self.out);
        if let Some(mut transport) = conn.transport.take() {
            let _ = transport.deregister(self.poller.registry());
        }
        // Under the same lock as the last delivery: a later send finds the
        // connection retired and is rejected through the command queue. A
        // connection whose events wait for a `connect_waiting` callback is
        // closed a second time when they go: it is counted the first time.
        let first = !std::mem::replace(&mut conn.retired, true);
        let budget_freed = conn.settle(&self.out.budget);
        conn.notify_room();
        let stats = first.then(|| conn.endpoint.stats());
        if let Some(stats) = &stats {
            let ending = stats.ending.unwrap_or(Ending::Local).name();
            conn.span().in_scope(|| tracing::debug!(ending, "closed"));
        }
        let remote = std::mem::take(&mut conn.remote);
        let held = conn.held.is_some();
        let input_before = std::mem::take(&mut conn.input_bytes);
        drop(conn);
        if remote {
            self.accepting.remotes -= 1;
        }
        if let Some(t) = self.conns.get_mut(id).and_then(|k| k.timer.take()) {
            self.timers.cancel(t, id);
        }
        if self.pacing.granted == Some(id) {
            self.pacing.granted = None;
        }
        self.account_input(input_before, 0);
        if budget_freed {
            self.resume_budget();
        }
        if let Some(stats) = stats {
            let ending = stats.ending.unwrap_or(Ending::Local);
            // Its counters move to the totals as it stops being listed,
            // under the totals' lock, so a snapshot counts it once.
            let mut totals = lock(&self.shared.totals);
            totals.add_connection(&stats);
            totals.closed.count(ending);
            self.directory.unlist(id);
        }
        if !held {
            self.conns.remove(id);
            self.directory.release(id);
        }
    }

    /// Runs what is due: accepting again after a pause, and every endpoint
    /// deadline that passed.
    pub(super) fn fire_timers(&mut self) {
        let now = self.clock.now();
        if self.ending.deadline.is_some_and(|t| t <= now) {
            self.shutdown_overdue();
        }
        if self.accepting.paused_until.is_some_and(|t| t <= now) {
            self.accepting.paused_until = None;
            self.accept();
        }
        while let Some(id) = self.timers.pop_due(now) {
            let Some(keys) = self.conns.get_mut(id) else {
                continue;
            };
            keys.timer = None;
            if let Some(mut conn) = self.directory.lock(id) {
                conn.endpoint.handle_timeout(now);
            }
            // Passes its events on and enters its next deadline.
            self.mark_ready(id);
        }
        if !self.ready.is_empty() {
            self.drive_ready();
        }
        self.grant_if_stuck();
    }
}
