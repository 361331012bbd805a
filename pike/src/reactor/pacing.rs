//! How much each connection may read, under its share of the memory
//! budget and the connector's whole budget (see [`budget`](super::budget)).
//!
//! # Invariants
//!
//! * A connection's received events not yet taken stay under its share,
//!   checked between the messages of each read: past it, reading pauses
//!   (the endpoint is told to hold its input) until the application has
//!   taken them down to half, and resumes by [`Command::Resume`].
//! * The connector's total (events, partial messages, input held back)
//!   stays under its budget the same way, resuming at three quarters
//!   ([`Command::BudgetFreed`]); a connection that holds nothing may still
//!   make small reads, so that new peers are served.
//! * If input alone holds the budget, taking events cannot free it: one
//!   connection at a time is granted reads until it holds no input, so the
//!   budget cannot deadlock.
//!
//! [`Command::Resume`]: super::command::Command::Resume
//! [`Command::BudgetFreed`]: super::command::Command::BudgetFreed

use super::budget::{Budget, SMALL_READ};
use super::conn::Conn;
use super::{Entry, Reactor};
use crate::converter::Converter;
use crate::event::Connection;
use crate::sync::lock;

/// Why reading from a connection is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pause {
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

/// How much `entry` may take in now: bounded by its share of received
/// events not yet taken and by the connector's budget.
///
/// A read takes at most as many bytes as the events may cost: an event
/// costs at least its message's bytes on the wire (its queue slot alone is
/// larger than any message's framing), so what a read holds back undecoded
/// is at most the allowance, and the read buffer's size.
pub(super) fn allowance<C: Converter>(
    budget: &Budget,
    entry: &Entry<C>,
    conn: &Conn<C>,
    granted: bool,
) -> Allowance {
    let share = budget.share;
    let mine = entry.credit.gauge.used();
    if entry.credit.gauge.should_pause(share, share / 2) {
        return Allowance::Pause(Pause::Share);
    }
    let left = share.saturating_sub(mine).max(1);
    let total = budget.gauge.used();
    let bytes = if total < budget.limit {
        left.min(budget.limit - total)
    } else if mine == 0 && conn.endpoint.input_bytes() == 0 {
        // Holds nothing: a small read, so that new and well-behaved peers
        // are served while others hold the budget.
        SMALL_READ
    } else if granted || !budget.gauge.should_pause(budget.limit, budget.low()) {
        left
    } else {
        return Allowance::Pause(Pause::Budget);
    };
    Allowance::Take { bytes, read: bytes }
}

impl<C: Converter> Reactor<C> {
    /// Reading from `id` resumes if it was paused at its share.
    pub(super) fn resume_share(&mut self, id: Connection) {
        if let Some(entry) = self.conns.get_mut(&id)
            && entry.paused == Pause::Share
        {
            entry.paused = Pause::No;
            lock(&entry.conn).endpoint.hold_input(false);
            self.mark_ready(id);
        }
    }

    /// Reading resumes on every connection paused at the budget.
    pub(super) fn resume_budget(&mut self) {
        for id in std::mem::take(&mut self.budget_paused) {
            if let Some(entry) = self.conns.get_mut(&id)
                && entry.paused == Pause::Budget
            {
                entry.paused = Pause::No;
                lock(&entry.conn).endpoint.hold_input(false);
                self.mark_ready(id);
            }
        }
    }

    /// Counts a change in a connection's input bytes against the budget.
    pub(super) fn account_input(&mut self, id: Connection, now: usize) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        let before = std::mem::replace(&mut entry.input_bytes, now);
        if now >= before {
            self.out.budget.gauge.add(now - before);
            self.input_total += now - before;
        } else {
            self.input_total -= before - now;
            if self
                .out
                .budget
                .gauge
                .release(before - now, self.out.budget.low())
            {
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
        if self.granted.is_some()
            || self.budget_paused.is_empty()
            || self.input_total <= self.out.budget.low()
        {
            return;
        }
        let Some((id, _)) = self
            .budget_paused
            .iter()
            .filter_map(|id| Some((*id, self.conns.get(id)?.input_bytes)))
            .max_by_key(|&(_, bytes)| bytes)
        else {
            return;
        };
        tracing::debug!("{id}: the budget is held by partial messages; this one reads on");
        self.granted = Some(id);
        self.budget_paused.retain(|&c| c != id);
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.paused = Pause::No;
            lock(&entry.conn).endpoint.hold_input(false);
        }
        self.mark_ready(id);
    }
}
