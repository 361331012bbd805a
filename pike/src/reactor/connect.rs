//! Connecting: resolving a name off the loop, trying each address in turn,
//! and telling the endpoint the outcome.
//!
//! # Invariants
//!
//! * A connection's slot is in the directory before the loop hears of it
//!   (`Connector::connect` puts it there), so sends made meanwhile are
//!   queued in its endpoint, in order.
//! * The loop never blocks on a name: a `pike-resolve` thread resolves it
//!   and answers with [`Command::Resolved`]; the loop joins it when the
//!   answer comes (all the thread has left to do then is return).
//! * The outcome is the endpoint's to report: it emits `FinishConnect`
//!   (success, the last address's error, its own connect timeout, or a
//!   cancel), and [`outlet`](super::outlet) hands that to a
//!   `connect_timeout` caller instead, with its real error.
//! * Whether to try again is the endpoint's to decide too (a reconnect
//!   policy: `Endpoint::redial_due`); the loop only drops the dead
//!   transport and dials the kept target again, the name resolved anew.
//!   A connection that reconnects keeps its `Dialing` (target, TLS) for
//!   its whole life; any other lets it go once connected.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::Reactor;
use crate::address::Target;
use crate::connector::command::{Command, ConnectWait};
use crate::connector::directory::index_of;
use crate::converter::Converter;
use crate::endpoint::State;
use crate::error::ConnectError;
use crate::event::Connection;
use crate::sync::lock;
use crate::transport::{Dial, Peer};
use mio::Token;

/// Names being resolved: a thread each, joined when it answers.
#[derive(Debug, Default)]
pub(super) struct Dialer {
    pub(super) resolvers: Vec<(Connection, JoinHandle<()>)>,
}

impl<C: Converter> Reactor<C> {
    pub(super) fn connect(&mut self, id: Connection, dial: Dial, waiter: Option<Arc<ConnectWait>>) {
        // `Connector::connect` registered the connection before asking.
        let Some(mut conn) = self.directory.lock(id) else {
            if let Some(waiter) = waiter {
                waiter.finish(Err(ConnectError::Cancelled));
            }
            return;
        };
        let cancelled = conn.endpoint.state() != State::Connecting;
        conn.span().in_scope(|| tracing::debug!("connecting"));
        conn.waiter = waiter;
        let Dial {
            target,
            layer,
            reconnect,
            ..
        } = dial;
        conn.dialing().layer = layer;
        if let Some(policy) = reconnect {
            // Each connection its own random waits, unlike any other
            // process's: clients of a restarted server come back apart.
            let seed = RandomState::new().hash_one(id);
            conn.endpoint.set_reconnect(policy, seed, self.clock.now());
            conn.dialing().target = Some(target.clone());
        }
        drop(conn);
        self.conns.add(id);
        // Driven once: its events are passed on, its timeout entered.
        self.mark_ready(id);
        if cancelled {
            return;
        }
        if self.ending.mode.is_some() {
            return self.connect_failed(id, ConnectError::Cancelled);
        }
        self.dial_target(id, target);
    }

    /// Dials a connection that waited after a failed attempt (see
    /// `Endpoint::redial_due`): the name is resolved again, and every
    /// address tried again.
    pub(super) fn redial(&mut self, id: Connection) {
        let Some(target) = self
            .with_served(id, |c| c.dialing().target.clone())
            .flatten()
        else {
            return;
        };
        tracing::debug!("{id}: dialing again");
        lock(&self.shared.totals).connect_retries += 1;
        self.dial_target(id, target);
    }

    /// Resolves `target` (off the loop, if it is a name) and tries its
    /// addresses in turn.
    fn dial_target(&mut self, id: Connection, target: Target) {
        let peers: Vec<Peer> = match target {
            Target::Addrs(addrs) => addrs.into_iter().map(Peer::Inet).collect(),
            Target::Unix(addr) => vec![Peer::Unix(addr)],
            Target::Name(name) => {
                let commands = self.shared.commands.clone();
                let spawned = std::thread::Builder::new()
                    .name("pike-resolve".into())
                    .spawn(move || {
                        let result = name.to_socket_addrs().map(Iterator::collect);
                        let _ = commands.push(Command::Resolved {
                            connection: id,
                            result,
                        });
                    });
                match spawned {
                    Ok(handle) => self.dialer.resolvers.push((id, handle)),
                    Err(e) => self.connect_failed(id, ConnectError::Resolve(e)),
                }
                return;
            }
        };
        self.with_served(id, |c| c.dialing().addrs = peers.into());
        self.start_connect(id);
    }

    /// A resolver thread answered.
    pub(super) fn resolved(&mut self, id: Connection, result: io::Result<Vec<SocketAddr>>) {
        self.join_resolver(id);
        let Some(mut conn) = self.served(id) else {
            return;
        };
        match result {
            Ok(addrs) if !addrs.is_empty() => {
                conn.dialing().addrs = addrs.into_iter().map(Peer::Inet).collect();
                drop(conn);
                self.start_connect(id);
            }
            Ok(_) => {
                drop(conn);
                self.connect_failed(
                    id,
                    ConnectError::Resolve(io::Error::new(
                        io::ErrorKind::NotFound,
                        "name resolved to no address",
                    )),
                );
            }
            Err(e) => {
                drop(conn);
                self.connect_failed(id, ConnectError::Resolve(e));
            }
        }
    }

    /// Joins the resolver thread of `id`, which has answered: joined, not
    /// just dropped, so that no thread of the connector outlives its
    /// shutdown.
    pub(super) fn join_resolver(&mut self, id: Connection) {
        if let Some(i) = self.dialer.resolvers.iter().position(|(c, _)| *c == id) {
            let _ = self.dialer.resolvers.swap_remove(i).1.join();
        }
    }

    /// Tries the next address of a connecting connection.
    fn start_connect(&mut self, id: Connection) {
        let Some(mut guard) = self.served(id) else {
            return;
        };
        let conn = &mut *guard;
        if conn.endpoint.state() != State::Connecting {
            return;
        }
        conn.drop_transport(self.poller.registry());
        let token = Token(index_of(id));
        let dialing = conn.dialing.get_or_insert_with(Box::default);
        while let Some(peer) = dialing.addrs.pop_front() {
            let attempt = self
                .poller
                .connect(&dialing.layer, &peer)
                .and_then(|mut t| {
                    t.register(self.poller.registry(), token)?;
                    Ok(t)
                });
            match attempt {
                Ok(t) => {
                    conn.transport = Some(t);
                    return;
                }
                Err(e) => dialing.last_error = Some(e),
            }
        }
        let error = dialing
            .last_error
            .take()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address to connect to"));
        drop(guard);
        self.connect_failed(id, ConnectError::from_io(error));
    }

    /// A connecting transport became ready: did it connect?
    pub(super) fn check_connect(&mut self, id: Connection) {
        let Some(mut conn) = self.served(id) else {
            return;
        };
        if conn.endpoint.state() != State::Connecting {
            return;
        }
        match conn.connect_outcome(self.clock.now()) {
            None => {}
            Some(Ok(())) => {
                if let Some(t) = &conn.transport {
                    t.configure(&self.config.socket);
                }
                conn.endpoint.handle_connected(self.clock.now());
                // A connection that reconnects keeps where it dials (and
                // its TLS) for its next link.
                match conn.dialing.as_deref_mut() {
                    Some(d) if d.target.is_some() => {
                        d.addrs.clear();
                        d.last_error = None;
                    }
                    _ => conn.dialing = None,
                }
                conn.span().in_scope(|| tracing::debug!("connected"));
                drop(conn);
                // After the slot's lock: the totals' lock comes first.
                lock(&self.shared.totals).connected += 1;
            }
            Some(Err(e)) => {
                if conn.dialing().addrs.is_empty() {
                    drop(conn);
                    self.connect_failed(id, ConnectError::from_io(e));
                } else {
                    conn.dialing().last_error = Some(e);
                    drop(conn);
                    self.start_connect(id);
                }
            }
        }
    }

    /// Connecting failed (or was cancelled): the endpoint reports it, or
    /// waits to try again (and the dead transport goes).
    pub(super) fn connect_failed(&mut self, id: Connection, error: ConnectError) {
        if self
            .with_served(id, |c| c.endpoint.handle_connect_failed(error))
            .is_some()
        {
            self.drop_failed_transport(id);
            self.mark_ready(id);
        }
    }

    /// Lets go of the transport of a connection that waits to dial again:
    /// it failed, and would only report its failure again.
    pub(super) fn drop_failed_transport(&mut self, id: Connection) {
        let Some(mut conn) = self.served(id) else {
            return;
        };
        if conn.endpoint.awaiting_redial() {
            conn.drop_transport(self.poller.registry());
        }
    }
}
