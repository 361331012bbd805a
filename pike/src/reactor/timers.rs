//! The endpoints' deadlines, soonest first.
//!
//! # Invariants
//!
//! * Every endpoint deadline is entered here (by the connection's
//!   [`Keys`](super::Keys), which remember what was entered), so the loop
//!   sleeps in `poll` no longer than until the next one.
//! * A deadline is entered once: entering a new one for a connection
//!   cancels the one before.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::event::Connection;

/// Deadlines by time, then connection.
#[derive(Debug, Default)]
pub(super) struct Timers {
    due: BTreeSet<(Instant, Connection)>,
}

impl Timers {
    /// Enters `id`'s deadline `at`.
    pub(super) fn enter(&mut self, at: Instant, id: Connection) {
        self.due.insert((at, id));
    }

    /// Cancels `id`'s deadline `at`.
    pub(super) fn cancel(&mut self, at: Instant, id: Connection) {
        self.due.remove(&(at, id));
    }

    /// The soonest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Takes out a connection whose deadline is at or before `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Connection> {
        let &(at, id) = self.due.first()?;
        (at <= now).then(|| {
            self.due.pop_first();
            id
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_come_out_soonest_first_and_only_when_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let (a, b) = (Connection::from_id(1), Connection::from_id(2));
        let mut timers = Timers::default();
        timers.enter(t0 + 2 * s, a);
        timers.enter(t0 + s, b);
        assert_eq!(timers.next(), Some(t0 + s));
        assert_eq!(timers.pop_due(t0), None);
        assert_eq!(timers.pop_due(t0 + s), Some(b));
        timers.cancel(t0 + 2 * s, a);
        assert_eq!(timers.next(), None);
        assert_eq!(timers.pop_due(t0 + 3 * s), None);
    }
}
