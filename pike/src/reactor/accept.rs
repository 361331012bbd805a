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
use crate::event::{Event, RemoteConnect};
use crate::sync::lock;
use crate::transport::Transport;
use mio::Token;

/// How long accepting pauses after an error such as running out of file
/// descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl<C: Converter> Reactor<C> {
    pub(super) fn accept(&mut self) {
        if self.shutdown.is_some() || self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &mut self.listener else {
                return;
            };
            match listener.accept() {
                Ok((transport, peer)) if self.remotes >= self.config.max_connections => {
                    tracing::debug!(
                        "{peer}: refused, at the limit of {} connections",
                        self.remotes
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
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn add_remote(&mut self, mut transport: Box<dyn Transport>, peer: PeerAddr) {
        transport.configure(&self.config.socket);
        let id = self.directory.reserve();
        if let Err(e) = transport.register(self.poll.registry(), Token(index_of(id))) {
            tracing::warn!("cannot register accepted socket: {e}");
            self.directory.release(id);
            return;
        }
        let mut endpoint = self.directory.accepting(id);
        if !transport.ready_for_data() {
            // Its handshake starts now, and must end in time.
            endpoint.handle_handshake_started(Instant::now());
        }
        self.directory
            .insert(endpoint, Some(transport), Route::Main, &peer);
        if let Some(mut conn) = self.directory.lock(id) {
            conn.span().in_scope(|| tracing::debug!("accepted"));
            conn.remote = true;
        }
        self.conns.add(id);
        self.remotes += 1;
        lock(&self.shared.totals).accepted += 1;
        // Driven once: its handshake's deadline is entered.
        self.mark_ready(id);
        let event = Event::RemoteConnect(RemoteConnect::new(id, peer, self.admission.clone()));
        let _ = self.out.main.send(Envelope {
            event,
            credit: None,
        });
    }
}
