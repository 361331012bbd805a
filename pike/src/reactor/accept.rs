//! Taking connections from the listener.
//!
//! # Invariants
//!
//! * The listener is drained on each readiness event (it is
//!   edge-triggered); a connection beyond `max_connections` is closed at
//!   once rather than left in the backlog.
//! * An error such as running out of file descriptors pauses accepting for
//!   [`ACCEPT_BACKOFF`] instead of spinning on a listener that stays
//!   readable.
//! * An accepted connection is in the directory before its `RemoteConnect`
//!   is queued, so a send to it from the event's handler finds it.

use std::io;
use std::time::{Duration, Instant};

use super::Reactor;
use crate::address::PeerAddr;
use crate::connector::directory::index_of;
use crate::connector::queues::{Envelope, Route};
use crate::converter::Converter;
use crate::event::AcceptHandle;
use crate::event::{Event, RemoteConnect};
use crate::sync::lock;
use crate::transport::{Listener, Transport};
use mio::Token;
use std::sync::Arc;

/// How long accepting pauses after an error such as running out of file
/// descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The listener, and what it accepted.
pub(super) struct Accepting<M> {
    pub(super) listener: Option<Box<dyn Listener>>,
    /// What each `RemoteConnect` accepts or rejects through.
    pub(super) admission: Arc<dyn AcceptHandle<M>>,
    /// Accepting pauses after an error until then.
    pub(super) paused_until: Option<Instant>,
    /// Connections accepted and not yet closed.
    pub(super) remotes: usize,
}

impl<M> Accepting<M> {
    pub(super) fn new(
        listener: Option<Box<dyn Listener>>,
        admission: Arc<dyn AcceptHandle<M>>,
    ) -> Self {
        Self {
            listener,
            admission,
            paused_until: None,
            remotes: 0,
        }
    }
}

impl<C: Converter> Reactor<C> {
    pub(super) fn accept(&mut self) {
        if self.ending.mode.is_some() || self.accepting.paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &mut self.accepting.listener else {
                return;
            };
            match listener.accept() {
                Ok((transport, peer)) if self.accepting.remotes >= self.config.max_connections => {
                    tracing::debug!(
                        "{peer}: refused, at the limit of {} connections",
                        self.accepting.remotes
                    );
                    drop(transport);
                }
                Ok((transport, peer)) => self.add_remote(transport, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    tracing::warn!("accept failed, pausing: {e}");
                    self.accepting.paused_until = Some(self.clock.now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn add_remote(&mut self, mut transport: Box<dyn Transport>, peer: PeerAddr) {
        transport.configure(&self.config.socket);
        let id = self.directory.reserve();
        if let Err(e) = transport.register(self.poller.registry(), Token(index_of(id))) {
            tracing::warn!("cannot register accepted socket: {e}");
            self.directory.release(id);
            return;
        }
        let mut endpoint = self.directory.accepting(id);
        if !transport.ready_for_data() {
            // Its handshake starts now, and must end in time.
            endpoint.handle_handshake_started(self.clock.now());
        }
        self.directory
            .insert(endpoint, Some(transport), Route::Main, &peer);
        if let Some(mut conn) = self.directory.lock(id) {
            conn.span().in_scope(|| tracing::debug!("accepted"));
            conn.remote = true;
        }
        self.conns.add(id);
        self.accepting.remotes += 1;
        lock(&self.shared.totals).accepted += 1;
        // Driven once: its handshake's deadline is entered.
        self.mark_ready(id);
        let event = Event::RemoteConnect(RemoteConnect::new(
            id,
            peer,
            self.accepting.admission.clone(),
        ));
        let _ = self.out.main.send(Envelope {
            event,
            credit: None,
        });
    }
}
