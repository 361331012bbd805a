//! The async front end: futures and a stream over the same queues the
//! blocking calls use, for any executor (no runtime dependency).
//!
//! They never block a thread: a future that cannot finish registers its
//! task's waker and returns `Pending`; the network thread (which keeps
//! running on its own thread) wakes it when an event is queued or room
//! comes in a connection's unsent queue. Blocking and async consumers may
//! be mixed: each event still goes to exactly one of them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::Connector;
use crate::converter::Converter;
use crate::error::SendError;
use crate::event::{Connection, Event};
use crate::reactor::channel::Receiver;
use crate::reactor::conn::Offer;
use crate::reactor::queues::Envelope;

impl<C: Converter> Connector<C> {
    /// Waits, without blocking a thread, for the next event of the main
    /// queue: [`recv`](Self::recv) for async code. `None` once the
    /// connector has stopped and every event was taken.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use pike::converters::StringConverter;
    /// use pike::{Connector, Delivery, Event};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let _peer = std::net::TcpStream::connect(server.local_addr().unwrap())?;
    /// // Any executor; this one is the `futures` crate's.
    /// match futures::executor::block_on(server.recv_async()) {
    ///     Some(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn recv_async(&self) -> Recv<'_, C> {
        Recv { connector: self }
    }

    /// The events of the main queue as a [`Stream`], ending once the
    /// connector has stopped and every event was taken.
    pub fn events(&self) -> Events<C> {
        Events {
            connector: self.clone(),
        }
    }

    /// Waits, without blocking a thread, for the next event of a
    /// [separate](crate::Delivery::Separate) connection:
    /// [`recv_connection`](Self::recv_connection) for async code.
    pub fn recv_connection_async(&self, connection: &Connection) -> RecvConnection<'_, C> {
        RecvConnection {
            connector: self,
            queue: self.inner.shared.separate.receiver(*connection),
        }
    }

    /// Enqueues `message`, waiting without blocking a thread while the
    /// connection's unsent queue is over its high-water mark, until it is
    /// down to half of it: [`send_blocking`](Self::send_blocking) for async
    /// code. Otherwise as [`send`](Self::send).
    pub fn send_async(&self, connection: &Connection, message: C::Message) -> SendAsync<'_, C> {
        SendAsync {
            connector: self,
            connection: *connection,
            message: Some(message),
        }
    }
}

/// The future of [`Connector::recv_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, C: Converter> {
    connector: &'a Connector<C>,
}

impl<C: Converter> Future for Recv<'_, C> {
    type Output = Option<Event<C::Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = &self.connector.inner.shared;
        shared
            .main
            .poll_recv(cx)
            .map(|e| e.map(|e| shared.open_envelope(e)))
    }
}

/// The stream of [`Connector::events`].
#[must_use = "streams do nothing unless polled"]
pub struct Events<C: Converter> {
    connector: Connector<C>,
}

impl<C: Converter> Stream for Events<C> {
    type Item = Event<C::Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let shared = &self.connector.inner.shared;
        shared
            .main
            .poll_recv(cx)
            .map(|e| e.map(|e| shared.open_envelope(e)))
    }
}

/// The future of [`Connector::recv_connection_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct RecvConnection<'a, C: Converter> {
    connector: &'a Connector<C>,
    queue: Option<Receiver<Envelope<C::Message>>>,
}

impl<C: Converter> Future for RecvConnection<'_, C> {
    type Output = Option<Event<C::Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(queue) = &self.queue else {
            return Poll::Ready(None);
        };
        queue
            .poll_recv(cx)
            .map(|e| e.map(|e| self.connector.open_separate(e)))
    }
}

/// The future of [`Connector::send_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct SendAsync<'a, C: Converter> {
    connector: &'a Connector<C>,
    connection: Connection,
    message: Option<C::Message>,
}

// The message is moved out, never pinned.
impl<C: Converter> Unpin for SendAsync<'_, C> {}

impl<C: Converter> Future for SendAsync<'_, C> {
    type Output = Result<(), SendError<C::Message>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(mut message) = self.message.take() else {
            panic!("SendAsync polled after it completed");
        };
        let directory = &self.connector.inner.directory;
        loop {
            match directory.try_send(self.connection, message) {
                Offer::Taken => return Poll::Ready(Ok(())),
                Offer::Absent(m) => {
                    return Poll::Ready(self.connector.send_by_command(&self.connection, m));
                }
                Offer::Full(m) => {
                    // Registered, then the queue looked at again under the
                    // same lock: no wake-up is missed.
                    if directory.register_room_task(self.connection, cx.waker()) {
                        self.message = Some(m);
                        return Poll::Pending;
                    }
                    message = m;
                }
            }
        }
    }
}

impl<C: Converter> std::fmt::Debug for Recv<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

impl<C: Converter> std::fmt::Debug for Events<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl<C: Converter> std::fmt::Debug for RecvConnection<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvConnection").finish_non_exhaustive()
    }
}

impl<C: Converter> std::fmt::Debug for SendAsync<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendAsync")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}
