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
use crate::connector::SeparateQueue;
use crate::converter::Converter;
use crate::error::SendError;
use crate::event::{Connection, Event};

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
    ///
    /// Example: [`recv_async`](Self::recv_async), and the `async_echo` example (tokio).
    pub fn events(&self) -> Events<C> {
        Events {
            connector: self.clone(),
        }
    }

    /// Waits, without blocking a thread, for the next event of a
    /// [separate](crate::Delivery::Separate) connection:
    /// [`recv_connection`](Self::recv_connection) for async code.
    ///
    /// Example: [`recv_async`](Self::recv_async), and the `async_echo` example (tokio).
    pub fn recv_connection_async(&self, connection: &Connection) -> RecvConnection<'_, C> {
        RecvConnection {
            _connector: self,
            queue: self.inner.handle.separate(*connection),
        }
    }

    /// Enqueues `message`, waiting without blocking a thread while the
    /// connection's unsent queue is over its high-water mark, until it is
    /// down to half of it: [`send_blocking`](Self::send_blocking) for async
    /// code. Otherwise as [`send`](Self::send).
    ///
    /// Example: [`recv_async`](Self::recv_async), and the `async_echo` example (tokio).
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
        self.connector.inner.handle.poll_recv(cx)
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
        self.connector.inner.handle.poll_recv(cx)
    }
}

/// The future of [`Connector::recv_connection_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct RecvConnection<'a, C: Converter> {
    /// The queue is the connector's; it lives as long.
    _connector: &'a Connector<C>,
    queue: Option<SeparateQueue<C::Message>>,
}

impl<C: Converter> Future for RecvConnection<'_, C> {
    type Output = Option<Event<C::Message>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(queue) = &self.queue else {
            return Poll::Ready(None);
        };
        queue.poll_recv(cx)
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
        let this = &mut *self;
        this.connector
            .inner
            .handle
            .poll_send(this.connection, &mut this.message, cx)
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
