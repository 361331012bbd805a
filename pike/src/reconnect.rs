//! [`Reconnect`]: how an outgoing connection tries again when connecting
//! fails, and the backoff it waits between attempts.

use std::time::Duration;

/// The default shortest wait before connecting again: 100 ms.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// The default longest wait before connecting again: 10 s.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(10);
/// No wait is shorter: a connection that cannot connect never spins.
const FLOOR: Duration = Duration::from_millis(1);
/// No wait is longer (so that a deadline can always be reckoned).
const CEILING: Duration = Duration::from_secs(365 * 24 * 3600);

/// How an outgoing connection tries again when an attempt to connect
/// fails, set per connection
/// ([`ConnectOptions::reconnect`](crate::ConnectOptions::reconnect)) or for
/// every connect of a connector
/// ([`ConnectorBuilder::default_reconnect`](crate::ConnectorBuilder::default_reconnect)).
///
/// After a failure that trying again can mend (refused, unreachable, a
/// name that does not resolve yet, the connect timeout, a TLS handshake
/// cut short), the connection waits, then dials again, with the same
/// [`Connection`](crate::Connection) and its unsent queue: messages sent
/// meanwhile wait, under the same bounds as ever, and go out once it
/// connects. The waits grow exponentially from [`min`](Self::min) to
/// [`max`](Self::max), each one lengthened by a random part of up to half
/// of itself (so that many clients of a restarted server do not come back
/// at once), and never outside `min..=max`.
///
/// A link that breaks once up (the peer closed or reset it, a timeout, a
/// TLS record that failed) is dialled again the same way, with a
/// [`LinkDown`](crate::event::LinkDown) event when it goes and a
/// [`LinkUp`](crate::event::LinkUp) when it is back: what was not written
/// in full waits for the next link, and the limit counts from the loss.
/// Only when the policy gives up does a `RemoteDisconnect` end the
/// connection. (A protocol error or a converter's failure ends it as
/// before: another link would not mend them.)
///
/// A failure that trying again cannot mend ends it at once: an untrusted
/// certificate, a name mismatch, an expired certificate, a server that
/// refuses ours or does not speak TLS
/// ([`ConnectError::is_permanent`](crate::ConnectError::is_permanent)).
/// So do `disconnect`, a shutdown, and [`give_up_after`](Self::give_up_after)
/// passing. Only then does the connection's `FinishConnect` come (with
/// the last failure and every message sent meanwhile); on success it
/// comes once, when an attempt connects, so that code which does not know
/// about reconnecting reads the same events as before.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use pike::converters::StringConverter;
/// use pike::{ConnectOptions, Connector, Reconnect};
///
/// let client = Connector::builder(StringConverter::new()).spawn()?;
/// let retry = Reconnect::new()
///     .min(Duration::from_millis(50))
///     .max(Duration::from_secs(2))
///     .give_up_after(Duration::from_secs(30));
/// // Nothing listens yet: the message waits in the unsent queue.
/// let conn = client.connect("127.0.0.1:9", ConnectOptions::new().reconnect(retry))?;
/// client.send(&conn, "whenever the server is up".to_owned())?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    min: Duration,
    max: Duration,
    give_up_after: Option<Duration>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            min: DEFAULT_RECONNECT_MIN,
            max: DEFAULT_RECONNECT_MAX,
            give_up_after: None,
        }
    }
}

impl Reconnect {
    /// Waits from [`DEFAULT_RECONNECT_MIN`] to [`DEFAULT_RECONNECT_MAX`];
    /// never gives up by itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first wait, and the shortest (lowered to `max` if above it; at
    /// least 1 ms).
    pub fn min(mut self, wait: Duration) -> Self {
        self.min = wait;
        self
    }

    /// The longest wait (at most a year).
    pub fn max(mut self, wait: Duration) -> Self {
        self.max = wait;
        self
    }

    /// Gives up once this long has passed since the first attempt began:
    /// the attempt under way when it passes is the last.
    pub fn give_up_after(mut self, limit: Duration) -> Self {
        self.give_up_after = Some(limit);
        self
    }

    /// The shortest and longest wait: at least [`FLOOR`] each, so that a
    /// connection never spins.
    pub(crate) fn bounds(&self) -> (Duration, Duration) {
        let max = self.max.clamp(FLOOR, CEILING);
        (self.min.max(FLOOR).min(max), max)
    }

    /// How long it tries, from the first attempt.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.give_up_after
    }

    /// The wait after the `failures`-th failure in a row (1 for the
    /// first), `random` choosing its random part.
    pub(crate) fn wait(&self, failures: u32, random: u64) -> Duration {
        let (min, max) = self.bounds();
        let doublings = failures.saturating_sub(1).min(32);
        let base = min
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(max)
            .min(max);
        let spread = base.as_nanos() as u64 / 2;
        let extra = if spread == 0 {
            0
        } else {
            random % (spread + 1)
        };
        (base + Duration::from_nanos(extra)).min(max)
    }
}

/// A small, fast generator for the random part of the waits
/// (xorshift64*): not for secrets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// A generator from `seed` (any value).
    pub(crate) fn new(seed: u64) -> Self {
        // Mixed (splitmix64), so that close seeds start far apart; never
        // zero, which xorshift cannot leave.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Self(if z == 0 { 0x9e37_79b9_7f4a_7c15 } else { z })
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_from_min_to_max_and_never_leave_the_bounds() {
        let r = Reconnect::new().min(100 * MS).max(2000 * MS);
        let mut jitter = Jitter::new(7);
        for failures in 1..50 {
            let base = (100 * MS * 2u32.pow((failures - 1).min(10))).min(2000 * MS);
            for _ in 0..100 {
                let w = r.wait(failures, jitter.next());
                assert!(
                    w >= base && w <= (base + base / 2).min(2000 * MS),
                    "{failures}: {w:?}"
                );
            }
        }
        // Without randomness: exactly the base.
        assert_eq!(r.wait(1, 0), 100 * MS);
        assert_eq!(r.wait(2, 0), 200 * MS);
        assert_eq!(r.wait(5, 0), 1600 * MS);
        assert_eq!(r.wait(6, 0), 2000 * MS);
        assert_eq!(r.wait(u32::MAX, u64::MAX), 2000 * MS);
    }

    #[test]
    fn the_random_part_spreads_clients_apart() {
        let r = Reconnect::new().min(1000 * MS).max(60_000 * MS);
        let waits: std::collections::BTreeSet<Duration> = (0..32)
            .map(|seed| r.wait(1, Jitter::new(seed).next()))
            .collect();
        assert!(waits.len() > 16, "{waits:?}");
    }

    #[test]
    fn a_min_above_max_is_max_and_no_wait_is_shorter_than_a_millisecond() {
        let r = Reconnect::new().min(5000 * MS).max(1000 * MS);
        assert_eq!(r.bounds(), (1000 * MS, 1000 * MS));
        assert_eq!(r.wait(1, 12345), 1000 * MS);
        let r = Reconnect::new().min(Duration::ZERO).max(Duration::ZERO);
        assert_eq!(r.bounds(), (MS, MS));
        assert_eq!(r.wait(3, 99), MS);
        let r = Reconnect::new().min(Duration::ZERO);
        assert_eq!(r.wait(1, 0), MS);
        assert_eq!(r.wait(4, 0), 8 * MS);
        // Nor longer than a year, so that a deadline can be reckoned.
        let r = Reconnect::new().min(Duration::MAX).max(Duration::MAX);
        assert_eq!(r.wait(1, u64::MAX), CEILING);
        assert_eq!(r.wait(40, u64::MAX), CEILING);
    }
}
