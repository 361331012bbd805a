//! A deterministic harness for the loop: a [`Reactor`] on an in-memory
//! network ([`memory`](crate::transport::memory)) and a manual
//! [`Clock`], run one turn at a time on the test's thread, with no
//! sockets, no other thread and no sleep. What the connector's calls do
//! (sending, connecting, disconnecting, taking events, shutting down) goes
//! through the same [`Handle`] the [`Connector`](crate::Connector) uses;
//! the test plays the peers with [`Remote`] ends, moves the clock on, and
//! looks at what the loop wrote, delivered and closed. The loop's tests
//! (`reactor/tests.rs`) are written with it, as quinn-proto's `Pair` tests
//! its endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Config, Poller, Reactor};
use crate::address::Target;
use crate::clock::Clock;
use crate::connector::handle::Handle;
use crate::converter::Converter;
use crate::error::TryRecvError;
use crate::event::{Connection, Event};
use crate::mode::{Delivery, ShutdownMode};
use crate::transport::memory::{Net, Owner, Remote};
use crate::transport::{Dial, Listener};

/// Turns [`Harness::settle`] runs before it calls the loop stuck: a loop
/// that never runs out of things to do with the clock standing still is
/// spinning.
const MAX_TURNS: usize = 10_000;

/// One loop on the in-memory network (see the module documentation).
pub(crate) struct Harness<C: Converter> {
    pub(crate) handle: Handle<C>,
    reactor: Option<Reactor<C>>,
    pub(crate) net: Arc<Net>,
    pub(crate) clock: Clock,
    owner: Owner,
    /// Where its listener is, if it has one.
    pub(crate) addr: Option<SocketAddr>,
}

impl<C: Converter> Harness<C> {
    /// A loop on `net`, listening at `listen` if given, with the
    /// builder's defaults changed by `setup`, its time on `clock`.
    pub(crate) fn new(
        converter: C,
        net: &Arc<Net>,
        clock: &Clock,
        listen: Option<SocketAddr>,
        setup: impl FnOnce(&mut Config),
    ) -> Self {
        Self::build(converter, net, clock, listen, |l| l, setup)
    }

    /// [`new`](Self::new) with a listener whose connections speak TLS.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_server(
        converter: C,
        net: &Arc<Net>,
        clock: &Clock,
        listen: SocketAddr,
        settings: crate::tls::ServerTls,
        setup: impl FnOnce(&mut Config),
    ) -> Self {
        let wrap = |inner| -> Box<dyn Listener> {
            Box::new(crate::transport::tls::TlsListener { inner, settings })
        };
        Self::build(converter, net, clock, Some(listen), wrap, setup)
    }

    fn build(
        converter: C,
        net: &Arc<Net>,
        clock: &Clock,
        listen: Option<SocketAddr>,
        wrap: impl FnOnce(Box<dyn Listener>) -> Box<dyn Listener>,
        setup: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::default();
        setup(&mut config);
        let owner = net.owner();
        let listener = listen.map(|addr| wrap(net.bind(addr, owner)));
        let poller = Poller::memory(net.clone(), owner).expect("a poller");
        let reactor = Reactor::with(Arc::new(converter), config, listener, poller, clock.clone())
            .expect("a reactor");
        let handle = Handle::of(reactor);
        let reactor = handle.detach();
        Self {
            handle,
            reactor: Some(reactor),
            net: net.clone(),
            clock: clock.clone(),
            owner,
            addr: listen,
        }
    }

    /// One turn of the loop (it never waits). False once it has stopped.
    pub(crate) fn turn(&mut self) -> bool {
        let Some(reactor) = &mut self.reactor else {
            return false;
        };
        if reactor.turn(Some(Duration::ZERO)) {
            return true;
        }
        self.reactor.take().expect("running").finish();
        false
    }

    /// Runs turns until the loop has nothing to do without the clock
    /// moving: no connection ready, no command, no readiness, no deadline
    /// due. Panics if that never comes (a spinning loop).
    pub(crate) fn settle(&mut self) {
        for _ in 0..MAX_TURNS {
            if !self.turn() {
                return;
            }
            let reactor = self.reactor.as_ref().expect("running");
            if !reactor.has_work()
                && !self.net.has_ready(self.owner)
                && reactor.poll_timeout() != Some(Duration::ZERO)
            {
                return;
            }
        }
        panic!("the loop still has work after {MAX_TURNS} turns: it spins");
    }

    /// Moves the clock on by `by`, then settles.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.settle();
    }

    /// The time on the harness's clock.
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// How long until the loop's next deadline (`None`: it would sleep
    /// until something happens).
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.reactor.as_ref()?.poll_timeout()
    }

    /// Settles, then takes every event the loop passed on.
    pub(crate) fn events(&mut self) -> Vec<Event<C::Message>> {
        self.settle();
        let mut events = Vec::new();
        loop {
            match self.handle.try_recv() {
                Ok(event) => events.push(event),
                Err(TryRecvError::Empty) => {
                    // Taking events may have let paused reading go on.
                    if self.reactor.as_ref().is_some_and(|r| r.has_work()) {
                        self.settle();
                        continue;
                    }
                    return events;
                }
                Err(TryRecvError::Stopped | TryRecvError::Closed) => return events,
            }
        }
    }

    /// Settles and takes one event, which must be there.
    pub(crate) fn event(&mut self) -> Event<C::Message> {
        self.settle();
        self.handle.try_recv().expect("an event")
    }

    /// Connects to `addr` on the same network (asks: the next turns
    /// carry it out); the outcome comes as an event.
    pub(crate) fn connect(&mut self, addr: SocketAddr) -> Connection {
        self.connect_through(addr, None)
    }

    /// [`connect`](Self::connect), through TLS if `tls` is given.
    pub(crate) fn connect_through(
        &mut self,
        addr: SocketAddr,
        tls: Option<crate::transport::ClientTls>,
    ) -> Connection {
        let dial = Dial::new(Target::Addrs(vec![addr]), Delivery::Merged, tls);
        self.handle.connect(dial).expect("running")
    }

    /// [`connect`](Self::connect), trying again as `policy` says.
    pub(crate) fn connect_retrying(
        &mut self,
        addr: SocketAddr,
        policy: crate::reconnect::Reconnect,
    ) -> Connection {
        let mut dial = Dial::new(Target::Addrs(vec![addr]), Delivery::Merged, None);
        dial.reconnect = Some(policy);
        self.handle.connect(dial).expect("running")
    }

    /// The test dials this loop's listener: its end, once the loop has
    /// accepted it (and queued its `RemoteConnect`).
    pub(crate) fn dial(&mut self) -> Remote {
        let remote = self
            .net
            .dial(self.addr.expect("listening"))
            .expect("listening");
        self.settle();
        remote
    }

    /// Asks for a shutdown (no waiting: turns carry it out).
    pub(crate) fn shutdown(&mut self, mode: ShutdownMode, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| self.now() + t);
        self.handle.request_shutdown(mode, deadline);
        self.settle();
    }

    /// Whether the loop has stopped (shutdown complete).
    pub(crate) fn stopped(&self) -> bool {
        self.reactor.is_none() && self.handle.is_stopped()
    }
}

/// A loopback address for the in-memory network.
pub(crate) fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
