//! Events: what the network side tells the application.
//!
//! Every message passed to `send` is either written to its socket in full or
//! comes back exactly once, inside one of these events (or `send`'s error).

use std::fmt;
use std::sync::Arc;

use crate::address::PeerAddr;
use crate::error::{ConnectError, DisconnectReason, RejectReason};
use crate::mode::Delivery;

/// An opaque id of one connection. Ids are never reused within a
/// connector.
///
/// An id names the connection's place in the connector and that place's
/// generation (how many connections it held before), so that the
/// connector finds a connection from its id without a lock. It is shown
/// as `#place` (`#3`), or `#place.generation` (`#3.1`) for a place that
/// held connections before.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Connection(pub(crate) u64);

impl Connection {
    /// The id as a number (unique within its connector).
    pub fn id(self) -> u64 {
        self.0
    }

    /// The connection of number `id` ([`id`](Self::id) back): for ids
    /// kept outside Rust (a binding, a database). A connector acts on an
    /// id only if it gave it out and that connection still exists; to any
    /// other it is an unknown connection (a message sent to it comes back
    /// in a `RejectedMessage` with
    /// [`RejectReason::Closed`]). No
    /// connection's id is 0: `from_id(0)` is unknown to every connector.
    ///
    /// ```
    /// use pike::Connection;
    /// let c = Connection::from_id(42);
    /// assert_eq!(Connection::from_id(c.id()), c);
    /// ```
    pub fn from_id(id: u64) -> Self {
        Self(id)
    }

    /// The id of the connection in place `index` (from 0) at `generation`:
    /// the place plus one in the low half (so no id is 0), the generation
    /// in the high half.
    pub(crate) fn of_place(index: usize, generation: u32) -> Self {
        Self((u64::from(generation) << 32) | (index as u64 + 1))
    }

    /// The place (from 0) and generation this id names (`None`: no
    /// place's).
    pub(crate) fn place(self) -> Option<(usize, u32)> {
        let low = self.0 as u32;
        (low != 0).then(|| (low as usize - 1, (self.0 >> 32) as u32))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connection({})", self.0)
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place() {
            Some((index, 0)) => write!(f, "#{}", index + 1),
            Some((index, g)) => write!(f, "#{}.{g}", index + 1),
            None => write!(f, "#0"),
        }
    }
}

/// One event of a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<M> {
    /// A `connect` attempt ended.
    FinishConnect(FinishConnect<M>),
    /// A local `disconnect` or `shutdown` of the connection completed.
    FinishDisconnect(FinishDisconnect<M>),
    /// A peer connected to the listener: accept it with
    /// [`finish_accept`](RemoteConnect::finish_accept) or
    /// [`reject`](RemoteConnect::reject). Dropping it rejects.
    RemoteConnect(RemoteConnect<M>),
    /// The connection ended without a local disconnect: the peer closed,
    /// reset or broke the protocol, or a converter failed.
    RemoteDisconnect(RemoteDisconnect<M>),
    /// A message was fully received.
    MessageReceived(MessageReceived<M>),
    /// A message handed to `send` could not be sent.
    RejectedMessage(RejectedMessage<M>),
    /// The link of a connection that reconnects broke; it is being
    /// redialled, its unsent messages waiting (see [`LinkDown`]).
    LinkDown(LinkDown),
    /// The link of a connection that reconnects is back (see [`LinkUp`]).
    LinkUp(LinkUp),
}

impl<M> Event<M> {
    /// The connection this event is about.
    pub fn connection(&self) -> Connection {
        match self {
            Event::FinishConnect(e) => e.connection,
            Event::FinishDisconnect(e) => e.connection,
            Event::RemoteConnect(e) => e.connection,
            Event::RemoteDisconnect(e) => e.connection,
            Event::MessageReceived(e) => e.connection,
            Event::RejectedMessage(e) => e.connection,
            Event::LinkDown(e) => e.connection,
            Event::LinkUp(e) => e.connection,
        }
    }

    /// Whether this is the connection's last event (nothing follows it).
    pub fn is_final(&self) -> bool {
        match self {
            Event::FinishConnect(e) => !e.success(),
            Event::FinishDisconnect(_) | Event::RemoteDisconnect(_) => true,
            Event::RemoteConnect(_)
            | Event::MessageReceived(_)
            | Event::RejectedMessage(_)
            | Event::LinkDown(_)
            | Event::LinkUp(_) => false,
        }
    }
}

/// The link of a connection with a [`Reconnect`](crate::Reconnect) policy
/// broke (the peer closed or reset it, it timed out, TLS failed). The
/// connection goes on: it dials again as its policy says, and its messages
/// not yet written in full (the one cut off included, from its start) wait
/// in its unsent queue, under the same bounds, to go out on the next link.
/// A [`LinkUp`] follows when one connects; if the policy gives up, a
/// `RemoteDisconnect` ends the connection, handing them back.
///
/// Messages written in full to the broken link are not known to have
/// arrived, nor lost: [`unconfirmed`](Self::unconfirmed) counts them.
/// Without a session the peer sees a new connection on each link.
#[derive(Debug)]
#[non_exhaustive]
pub struct LinkDown {
    /// The connection.
    pub connection: Connection,
    /// Why the link broke.
    pub reason: DisconnectReason,
    /// Messages written in full to the link that broke, whose arrival
    /// nothing confirms.
    pub unconfirmed: u64,
}

/// The link of a connection with a [`Reconnect`](crate::Reconnect) policy
/// is back after a [`LinkDown`]: its waiting messages go out.
#[derive(Debug)]
#[non_exhaustive]
pub struct LinkUp {
    /// The connection.
    pub connection: Connection,
}

/// A `connect` attempt ended, in success or failure.
#[derive(Debug)]
#[non_exhaustive]
pub struct FinishConnect<M> {
    /// The connection.
    pub connection: Connection,
    /// Why connecting failed; `None` on success.
    pub reason: Option<ConnectError>,
    /// On failure, every message sent while connecting, in order.
    pub queued: Vec<M>,
}

impl<M> FinishConnect<M> {
    /// Whether the connection is now established.
    pub fn success(&self) -> bool {
        self.reason.is_none()
    }
}

/// A local disconnect completed. Messages not written are handed back.
#[derive(Debug)]
#[non_exhaustive]
pub struct FinishDisconnect<M> {
    /// The connection.
    pub connection: Connection,
    /// The message that was partly written, if the disconnect left one.
    pub incomplete: Option<M>,
    /// Messages of which nothing was written, in order.
    pub queued: Vec<M>,
    /// Set when the disconnect could not finish as asked (for instance the
    /// peer reset the connection during a `FinishQueue` disconnect).
    pub reason: Option<DisconnectReason>,
}

/// The connection ended without a local disconnect.
#[derive(Debug)]
#[non_exhaustive]
pub struct RemoteDisconnect<M> {
    /// The connection.
    pub connection: Connection,
    /// The message that was partly written, if any.
    pub incomplete: Option<M>,
    /// Messages of which nothing was written, in order.
    pub queued: Vec<M>,
    /// Why the connection ended.
    pub reason: DisconnectReason,
}

/// A message was fully received.
#[derive(Debug)]
#[non_exhaustive]
pub struct MessageReceived<M> {
    /// The connection it came from.
    pub connection: Connection,
    /// The message.
    pub message: M,
    /// The bytes read for it (its wire form), counted against the memory
    /// budget until it is taken.
    pub(crate) wire_bytes: usize,
}

/// A message handed to `send` came back unsent.
#[derive(Debug)]
#[non_exhaustive]
pub struct RejectedMessage<M> {
    /// The connection it was sent to.
    pub connection: Connection,
    /// The message, untouched.
    pub message: M,
    /// Why it was not sent.
    pub reason: RejectReason,
}

/// A peer connected to the listener. Until [`finish_accept`](Self::finish_accept)
/// nothing is read from it or written to it (messages sent to it meanwhile
/// wait); [`reject`](Self::reject) closes it. Dropping this event without
/// either (a catch-all `_ => {}` arm does) rejects the peer too, with a
/// warning in the log (`tracing`): decide every `RemoteConnect`.
#[non_exhaustive]
pub struct RemoteConnect<M> {
    /// The new connection.
    pub connection: Connection,
    /// The peer's address.
    pub peer: PeerAddr,
    /// Accepts or rejects it; `None` once done.
    handle: Option<Arc<dyn AcceptHandle<M>>>,
}

/// What a [`RemoteConnect`] accepts or rejects its connection through
/// (the reactor implements it; the event knows only the message type).
pub(crate) trait AcceptHandle<M>: Send + Sync {
    /// Accepts `id` if it still waits, its events going as `delivery` says.
    fn accept(&self, id: Connection, delivery: Delivery);
    /// Rejects `id` if it still waits.
    fn reject(&self, id: Connection);
}

impl<M> RemoteConnect<M> {
    pub(crate) fn new(
        connection: Connection,
        peer: PeerAddr,
        handle: Arc<dyn AcceptHandle<M>>,
    ) -> Self {
        Self {
            connection,
            peer,
            handle: Some(handle),
        }
    }

    /// Accepts the connection. Its events go to the main queue
    /// ([`Delivery::Merged`]) or to its own ([`Delivery::Separate`], read
    /// with `recv_connection`), starting with the messages that arrived
    /// before this call.
    pub fn finish_accept(mut self, delivery: Delivery) {
        if let Some(handle) = self.handle.take() {
            handle.accept(self.connection, delivery);
        }
    }

    /// Rejects the connection: it is closed at once.
    pub fn reject(mut self) {
        self.reject_now();
    }

    fn reject_now(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.reject(self.connection);
        }
    }
}

impl<M> Drop for RemoteConnect<M> {
    fn drop(&mut self) {
        // Left undecided (a catch-all `_ => {}` arm, say): the peer is
        // rejected, which its side sees as a close right after its connect
        // succeeded. Said in the log, as it is rarely what was meant.
        if self.handle.is_some() && !std::thread::panicking() {
            tracing::warn!(
                connection = %self.connection,
                peer = %self.peer,
                "a RemoteConnect was dropped without finish_accept or reject: \
                 the connection is rejected"
            );
        }
        self.reject_now();
    }
}

impl<M> fmt::Debug for RemoteConnect<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConnect")
            .field("connection", &self.connection)
            .field("peer", &self.peer)
            .field("pending", &self.handle.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::Connection;

    #[test]
    fn an_id_names_its_place_and_generation_and_shows_them() {
        let first = Connection::of_place(2, 0);
        assert_eq!(first.place(), Some((2, 0)));
        assert_eq!(first.to_string(), "#3");
        let again = Connection::of_place(2, 1);
        assert_ne!(again, first);
        assert_eq!(again.place(), Some((2, 1)));
        assert_eq!(again.to_string(), "#3.1");
        assert_eq!(Connection::from_id(0).place(), None);
    }

    /// Counts the warnings logged on the thread it is the default of.
    struct Warnings(std::sync::atomic::AtomicUsize);

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Rejections, by connection.
    #[derive(Default)]
    struct Admissions(std::sync::Mutex<Vec<(Connection, bool)>>);

    impl<M> super::AcceptHandle<M> for Admissions {
        fn accept(&self, id: Connection, _: crate::mode::Delivery) {
            self.0.lock().unwrap().push((id, true));
        }
        fn reject(&self, id: Connection) {
            self.0.lock().unwrap().push((id, false));
        }
    }

    #[test]
    fn a_remote_connect_dropped_undecided_rejects_with_a_warning() {
        let admissions = std::sync::Arc::new(Admissions::default());
        let peer = crate::address::PeerAddr::Inet("127.0.0.1:9".parse().unwrap());
        let event = |n| {
            super::RemoteConnect::<String>::new(
                Connection::of_place(n, 0),
                peer.clone(),
                admissions.clone(),
            )
        };
        let warnings = std::sync::Arc::new(Warnings(Default::default()));
        tracing::subscriber::with_default(warnings.clone(), || {
            event(0).finish_accept(crate::mode::Delivery::Merged);
            event(1).reject();
            assert_eq!(warnings.0.load(std::sync::atomic::Ordering::SeqCst), 0);
            drop(event(2));
        });
        assert_eq!(warnings.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        let decided = admissions.0.lock().unwrap().clone();
        let ids = |n| Connection::of_place(n, 0);
        assert_eq!(decided, [(ids(0), true), (ids(1), false), (ids(2), false)]);
    }
}
