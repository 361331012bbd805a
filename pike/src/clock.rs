//! The time the loop and the send path go by.
//!
//! Every decision about time is the endpoint's, made with the `now` it is
//! given; whoever drives it (the loop, or a sender writing what it queued)
//! reads `now` from the connector's [`Clock`]. In the crate's own tests the
//! clock can be a manual one ([`Clock::manual`]), moved on by hand, so that
//! the loop's timers (the endpoint's timeouts, a shutdown's deadline, the
//! listener's back-off) are tested without sleeping: see the reactor's
//! harness. Waiting for a caller's deadline (`recv_timeout`, a blocking
//! send) is the caller's time and stays on the system clock.

#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

/// Where `now` comes from: the system's monotonic clock, or (in tests) a
/// manual one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Clock {
    #[cfg(test)]
    manual: Option<Arc<Manual>>,
}

/// A clock that moves only when told: a start, and the nanoseconds since.
#[cfg(test)]
#[derive(Debug)]
struct Manual {
    start: Instant,
    nanos: AtomicU64,
}

impl Clock {
    /// The time now.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        #[cfg(test)]
        if let Some(m) = &self.manual {
            return m.start + Duration::from_nanos(m.nanos.load(Ordering::SeqCst));
        }
        Instant::now()
    }

    /// A clock standing still at the system's time now, until moved on by
    /// [`advance`](Self::advance). Its clones share its time.
    #[cfg(test)]
    pub(crate) fn manual() -> Self {
        Self {
            manual: Some(Arc::new(Manual {
                start: Instant::now(),
                nanos: AtomicU64::new(0),
            })),
        }
    }

    /// Moves a manual clock on by `by`.
    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        let m = self.manual.as_ref().expect("a manual clock");
        m.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_share_it() {
        let clock = Clock::manual();
        let other = clock.clone();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        other.advance(Duration::from_secs(3));
        assert_eq!(clock.now(), t0 + Duration::from_secs(3));
        let system = Clock::default();
        assert!(system.now() >= t0);
    }
}
