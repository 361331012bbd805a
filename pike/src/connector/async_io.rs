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
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{ConnectOptions, Connector};
use crate::address::Address;
use crate::connector::SeparateQueue;
use crate::connector::command::ConnectWait;
use crate::converter::Converter;
use crate::error::{ConnectError, RecvError, SendError};
use crate::event::{Connection, Event};
use crate::mode::ShutdownMode;

impl<C: Converter> Connector<C> {
    /// Connects to `addr` as `options` say (see
    /// [`connect`](Self::connect)) and waits, without blocking a thread, until the
    /// attempt ends: [`connect_timeout`](Self::connect_timeout) for async
    /// code. Its outcome is this future's output (the connection, or why
    /// there is none), not a `FinishConnect` event,
    /// and none of the connection's events is delivered before it. The
    /// wait ends at the latest at the connector's
    /// [`connect_timeout`](crate::ConnectorBuilder::connect_timeout);
    /// wrap it in the runtime's timeout to give up sooner: dropping the
    /// future abandons the attempt (closed without an event; if it had
    /// just succeeded, closed with a `FinishDisconnect`).
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use pike::converters::StringConverter;
    /// use pike::{Connector, Delivery, Event, ShutdownMode};
    ///
    /// let server = Connector::builder(StringConverter::new()).listen("127.0.0.1:0").spawn()?;
    /// let client = Connector::builder(StringConverter::new()).spawn()?;
    /// futures::executor::block_on(async {
    ///     let conn = client
    ///         .connect_async(server.local_addr().unwrap(), Delivery::Merged)
    ///         .await
    ///         .expect("connected");
    ///     client.send_async(&conn, "hello".to_owned()).await.expect("running");
    ///     match server.recv_async().await {
    ///         Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
    ///         other => panic!("{other:?}"),
    ///     }
    ///     match server.recv_async().await {
    ///         Ok(Event::MessageReceived(m)) => assert_eq!(m.message, "hello"),
    ///         other => panic!("{other:?}"),
    ///     }
    ///     // The client's queue is written out, then both ends close.
    ///     assert!(client.shutdown_async(ShutdownMode::FinishQueue).await);
    ///     assert!(server.shutdown_async(ShutdownMode::Now).await);
    /// });
    /// # Ok(()) }
    /// ```
    pub fn connect_async(
        &self,
        addr: impl Into<Address>,
        options: impl Into<ConnectOptions>,
    ) -> ConnectAsync<'_, C> {
        let dial = self.dial(addr.into(), options.into());
        ConnectAsync {
            connector: self,
            attempt: self.inner.handle.connect_awaited(dial).ok(),
        }
    }

    /// Shuts the connector down as [`shutdown`](Self::shutdown) does,
    /// waiting for it without blocking a thread: ready once the network
    /// loop has ended, with whether everything finished in `mode` (false
    /// if the connector's
    /// [`shutdown_timeout`](crate::ConnectorBuilder::shutdown_timeout) cut
    /// it short).
    ///
    /// Example: [`connect_async`](Self::connect_async).
    pub fn shutdown_async(&self, mode: ShutdownMode) -> ShutdownAsync<'_, C> {
        let deadline = self
            .inner
            .shutdown_timeout
            .and_then(|t| std::time::Instant::now().checked_add(t));
        self.inner.handle.start_shutdown(mode, deadline);
        ShutdownAsync { connector: self }
    }

    /// Waits, without blocking a thread, for the next event of the main
    /// queue: [`recv`](Self::recv) for async code. [`RecvError::Stopped`]
    /// once the connector has stopped and every event was taken.
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
    ///     Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
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
            connector: self,
            queue: self.inner.handle.separate(*connection),
        }
    }

    /// Enqueues `message`, waiting without blocking a thread while the
    /// connection's unsent queue is over its high-water mark, until it is
    /// down to half of it: [`send_waiting_for_room`](Self::send_waiting_for_room) for async
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
    type Output = Result<Event<C::Message>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.connector
            .inner
            .handle
            .poll_recv(cx)
            .map(|e| e.ok_or(RecvError::Stopped))
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
    connector: &'a Connector<C>,
    queue: Option<SeparateQueue<C::Message>>,
}

impl<C: Converter> Future for RecvConnection<'_, C> {
    type Output = Result<Event<C::Message>, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(queue) = &self.queue else {
            return Poll::Ready(Err(self.connector.separate_ended()));
        };
        queue
            .poll_recv(cx)
            .map(|e| e.ok_or_else(|| self.connector.separate_ended()))
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

/// The future of [`Connector::connect_async`].
#[must_use = "futures do nothing unless awaited (dropping one abandons the connect)"]
pub struct ConnectAsync<'a, C: Converter> {
    connector: &'a Connector<C>,
    /// `None` if the connector had stopped, or once the outcome is out.
    attempt: Option<(Connection, Arc<ConnectWait>)>,
}

impl<C: Converter> Future for ConnectAsync<'_, C> {
    type Output = Result<Connection, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some((connection, waiter)) = &self.attempt else {
            return Poll::Ready(Err(ConnectError::Stopped));
        };
        let connection = *connection;
        let Poll::Ready(outcome) = waiter.poll(cx) else {
            return Poll::Pending;
        };
        self.attempt = None;
        let handle = &self.connector.inner.handle;
        handle.connect_awaited_done(connection, outcome.is_ok());
        Poll::Ready(outcome.map(|()| connection))
    }
}

impl<C: Converter> Drop for ConnectAsync<'_, C> {
    fn drop(&mut self) {
        if let Some((connection, waiter)) = self.attempt.take() {
            self.connector
                .inner
                .handle
                .connect_awaited_dropped(connection, &waiter);
        }
    }
}

/// The future of [`Connector::shutdown_async`].
#[must_use = "the shutdown goes on; await it to know when it ended"]
pub struct ShutdownAsync<'a, C: Converter> {
    connector: &'a Connector<C>,
}

impl<C: Converter> Future for ShutdownAsync<'_, C> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        self.connector.inner.handle.poll_stopped(cx)
    }
}

impl<C: Converter> std::fmt::Debug for ConnectAsync<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectAsync")
            .field("connection", &self.attempt.as_ref().map(|(c, _)| *c))
            .finish_non_exhaustive()
    }
}

impl<C: Converter> std::fmt::Debug for ShutdownAsync<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownAsync").finish_non_exhaustive()
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
