//! How much each connection may read, under its share of the memory
//! budget and the connector's whole budget (see [`budget`](crate::connector::budget)).
//!
//! # Invariants
//!
//! * A connection's received events not yet taken stay under its share,
//!   checked between the messages of each read: past it, reading pauses
//!   (the endpoint is told to hold its input) until the application has
//!   taken them down to half, and resumes by [`Command::Resume`].
//! * The connector's total (events, partial messages, input held back,
//!   unsent data and transport buffers of every connection) stays under
//!   its budget the same way, resuming at three quarters
//!   ([`Command::BudgetFreed`]), or for one connection once it holds
//!   nothing ([`Command::Resume`]); a connection that holds nothing may
//!   still make small reads, so that new peers are served. So past the
//!   budget every connection that holds something pauses: those whose
//!   unsent queues hold the budget (their peers do not read) stay paused,
//!   while the others go on a small read at a time as the application
//!   takes their events.
//! * If input alone holds the budget, taking events cannot free it: one
//!   connection at a time is granted reads until it holds no input, so the
//!   budget cannot deadlock.
//!
//! [`Command::Resume`]: crate::connector::command::Command::Resume
//! [`Command::BudgetFreed`]: crate::connector::command::Command::BudgetFreed

use super::Reactor;
use super::conn::Conn;
use crate::connector::budget::{Budget, SMALL_READ};
use crate::converter::Converter;
use crate::event::Connection;

/// Why reading from a connection is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    No,
    /// At its share, until the application takes its events down to half.
    Share,
    /// At the connector's budget, until it is down to three quarters.
    Budget,
}

/// How much a connection may take in now.
pub(super) enum Allowance {
    /// Read (or decode held input), stopping once the events decoded cost
    /// `bytes`; read at most `read` bytes.
    Take { bytes: usize, read: usize },
    /// Pause.
    Pause(Pause),
}

/// How much `conn` may take in now: bounded by its share of received
/// events not yet taken and by the connector's budget.
///
/// A read takes at most as many bytes as the events may cost: an event
/// costs at least its message's bytes on the wire, so what a read holds
/// back undecoded is at most the allowance, and the read buffer's size.
pub(super) fn allowance<C: Converter>(budget: &Budget, conn: &Conn<C>, granted: bool) -> Allowance {
    let share = budget.share;
    let mine = conn.credit.gauge.used();
    if conn.credit.gauge.should_pause(share, share / 2) {
        return Allowance::Pause(Pause::Share);
    }
    let left = share.saturating_sub(mine).max(1);
    let total = budget.used();
    let bytes = if total < budget.limit {
        left.min(budget.limit - total)
    } else if holds_nothing(conn) {
        // Holds nothing: a small read, so that new and well-behaved peers
        // are served while others hold the budget.
        SMALL_READ
    } else if granted || !budget.should_pause() {
        left
    } else {
        return Allowance::Pause(Pause::Budget);
    };
    Allowance::Take { bytes, read: bytes }
}

/// How much of a handshake a connection may read now: all of it while
/// the budget has room; past it, as much as keeps what the connection
/// holds under a small read (a client hello and its last flight fit, so
/// new peers are still served), or nothing (its handshake pauses until
/// there is room).
pub(super) fn handshake_allowance<C: Converter>(budget: &Budget, conn: &Conn<C>) -> usize {
    let holding = conn.holding();
    if budget.used() < budget.limit {
        usize::MAX
    } else if conn.credit.gauge.used() == 0 && holding < SMALL_READ {
        SMALL_READ - holding
    } else if budget.should_pause() {
        0
    } else {
        usize::MAX
    }
}

/// Whether a connection holds nothing the budget counts: no events not
/// yet taken, no input, nothing for sending, nothing in its transport.
pub(super) fn holds_nothing<C: Converter>(conn: &Conn<C>) -> bool {
    conn.credit.gauge.used() == 0 && conn.endpoint.input_bytes() == 0 && conn.counted == 0
}

/// The pacing part's own state.
#[derive(Debug, Default)]
pub(super) struct Pacing {
    /// Connections paused at the budget.
    pub(super) paused: Vec<Connection>,
    /// Input bytes of every connection (partly received messages, input
    /// held back), counted in the budget.
    pub(super) input_total: usize,
    /// When the budget is held by input alone (nothing the application
    /// takes can free it), the one connection allowed to read on, so that
    /// its messages complete.
    pub(super) granted: Option<Connection>,
}

impl<C: Converter> Reactor<C> {
    /// Reading from `id` resumes if it was paused at its share, or at the
    /// budget and it now holds nothing (its events were taken, its unsent
    /// data went out). Otherwise it is told to look again once it does.
    pub(super) fn resume_connection(&mut self, id: Connection) {
        if !self.conns.contains(id) {
            return;
        }
        let Some(mut conn) = self.directory.lock(id) else {
            return;
        };
        match conn.paused {
            Pause::No => return,
            Pause::Share => {}
            Pause::Budget if holds_nothing(&conn) => {
                self.pacing.paused.retain(|&c| c != id);
            }
            Pause::Budget => {
                arm_budget_pause(&mut conn);
                return;
            }
        }
        unpause(&mut conn);
        drop(conn);
        self.mark_ready(id);
    }

    /// Reading resumes on every connection paused at the budget, and
    /// senders waiting for the budget look again.
    pub(super) fn resume_budget(&mut self) {
        for id in std::mem::take(&mut self.pacing.paused) {
            if !self.conns.contains(id) {
                continue;
            }
            let unpaused = self.with_served(id, |conn| {
                let paused = conn.paused == Pause::Budget;
                if paused {
                    unpause(conn);
                }
                paused
            });
            if unpaused == Some(true) {
                self.mark_ready(id);
            }
        }
        let budget = &self.out.budget;
        if !budget.take_senders_waited() {
            return;
        }
        self.directory.for_each(|conn| {
            if conn.has_room_waiters() {
                conn.refresh_room(budget);
                conn.notify_room();
            }
        });
    }

    /// Counts a change in a connection's input bytes (from `before` to
    /// `now`, as the caller noted in its [`Conn`]) against the budget.
    pub(super) fn account_input(&mut self, before: usize, now: usize) {
        if now >= before {
            self.out.budget.add_received(now - before);
            self.pacing.input_total += now - before;
        } else {
            self.pacing.input_total -= before - now;
            if self.out.budget.release_received(before - now) {
                self.resume_budget();
            }
        }
    }

    /// When the budget is held by input alone (partly received messages,
    /// input held back undecoded), taking events cannot bring it down to
    /// where reading resumes: let the paused connection with the most input
    /// read on, alone, until it holds none, so that its messages complete
    /// and the application can take them.
    pub(super) fn grant_if_stuck(&mut self) {
        if self.pacing.granted.is_some()
            || self.pacing.paused.is_empty()
            || self.pacing.input_total <= self.out.budget.low()
        {
            return;
        }
        let Some((id, _)) = self
            .pacing
            .paused
            .iter()
            .filter_map(|&id| Some((id, self.directory.lock(id)?.input_bytes)))
            .max_by_key(|&(_, bytes)| bytes)
        else {
            return;
        };
        tracing::debug!("{id}: the budget is held by partial messages; this one reads on");
        self.pacing.granted = Some(id);
        self.pacing.paused.retain(|&c| c != id);
        self.with_served(id, unpause);
        self.mark_ready(id);
    }
}

/// Reading from a connection goes on (the caller marks it ready).
fn unpause<C: Converter>(conn: &mut Conn<C>) {
    conn.paused = Pause::No;
    conn.budget_paused = false;
    conn.endpoint.hold_input(false);
}

/// A connection paused at the budget is told to look again once it holds
/// nothing: when the application has taken its last event (its credit's
/// pause ends at zero) or its unsent data has gone out (its slot's flag,
/// seen by whoever settles it).
pub(super) fn arm_budget_pause<C: Converter>(conn: &mut Conn<C>) {
    conn.credit.gauge.pause_until(0);
    conn.budget_paused = true;
}
