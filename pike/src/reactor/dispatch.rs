//! Carrying out the application's commands.
//!
//! # Invariants
//!
//! * A shutdown goes ahead of every command queued before it (a flag read
//!   first), and at most [`COMMAND_BUDGET`] commands run per turn, so a
//!   flood of sends neither starves the sockets nor delays a shutdown.
//! * A message for a connection the loop does not know (never was, or
//!   gone) comes back as a `RejectedMessage` that counts against the
//!   budget like any event.

use super::outlet::route_event;
use super::queues::{Envelope, merge_into};
use super::{COMMAND_BUDGET, Reactor};
use crate::converter::Converter;
use crate::endpoint::State;
use crate::error::RejectReason;
use crate::event::{Connection, Event, RejectedMessage};
use crate::reactor::budget::rejection_cost;
use crate::reactor::command::Command;
use crate::reactor::queues::Route;
use crate::sync::lock;

impl<C: Converter> Reactor<C> {
    pub(super) fn take_commands(&mut self) {
        self.shared.commands.woken();
        for mode in self.shared.commands.take_shutdown_requests() {
            self.begin_shutdown(mode);
        }
        for _ in 0..COMMAND_BUDGET {
            let Ok(command) = self.commands.try_recv() else {
                return;
            };
            self.command(command);
        }
        // More are left for the next turn, which does not sleep while the
        // queue holds any.
    }

    fn command(&mut self, command: Command<C::Message>) {
        match command {
            Command::Connect {
                connection,
                target,
                waiter,
                tls,
            } => self.connect(connection, target, waiter, tls),
            Command::Resolved { connection, result } => self.resolved(connection, result),
            Command::Send {
                connection,
                message,
            } => match self.conns.get(&connection) {
                Some(entry) => {
                    let cost = rejection_cost(&*self.out.converter, &message);
                    let mut conn = lock(&entry.conn);
                    conn.refresh_room(&self.out.budget);
                    conn.endpoint.send(message);
                    drop(conn);
                    self.mark_ready(connection);
                    self.uncount_rejections(cost);
                }
                None => self.reject_unknown(connection, message),
            },
            Command::SendBatch {
                connection,
                messages,
            } => match self.conns.get(&connection) {
                Some(entry) => {
                    let converter = &*self.out.converter;
                    let cost = messages.iter().map(|m| rejection_cost(converter, m)).sum();
                    let mut conn = lock(&entry.conn);
                    conn.refresh_room(&self.out.budget);
                    conn.endpoint.send_all(messages);
                    drop(conn);
                    self.mark_ready(connection);
                    self.uncount_rejections(cost);
                }
                None => {
                    for message in messages {
                        self.reject_unknown(connection, message);
                    }
                }
            },
            Command::Drive { connection } => self.mark_ready(connection),
            Command::Disconnect { connection, mode } => {
                if let Some(entry) = self.conns.get(&connection) {
                    lock(&entry.conn).endpoint.disconnect(mode);
                    self.mark_ready(connection);
                }
            }
            Command::CallbackDone { connection } => {
                if let Some(entry) = self.conns.get_mut(&connection) {
                    let held = entry.held.take().map(|h| *h).unwrap_or_default();
                    let mut conn = lock(&entry.conn);
                    for event in held {
                        route_event(entry, &mut conn.route, &self.out, event);
                    }
                    let closed = conn.endpoint.state() == State::Closed;
                    drop(conn);
                    if closed {
                        self.close(connection);
                    } else {
                        self.mark_ready(connection);
                    }
                }
            }
            Command::Merge { connection, done } => {
                if let Some(rx) = self.shared.separate.remove(connection) {
                    merge_into(&rx, &self.out.main);
                }
                if let Some(entry) = self.conns.get(&connection) {
                    lock(&entry.conn).route = Route::Main;
                }
                let _ = done.send(());
            }
            Command::Resume { connection } => self.resume_connection(connection),
            Command::BudgetFreed => self.resume_budget(),
            Command::ConverterReady { connection } => {
                if let Some(entry) = self.conns.get(&connection) {
                    lock(&entry.conn).endpoint.handle_wake();
                    self.mark_ready(connection);
                }
            }
            Command::Shutdown { mode, deadline } => {
                self.begin_shutdown(mode);
                self.limit_shutdown(deadline);
            }
            Command::HandOver => {}
        }
    }

    /// Hands back a message sent to a connection that is gone. It counts
    /// against the budget like any event, from the moment it was handed to
    /// the command queue (see `Handle::send_by_command`), so that an
    /// application replying in bulk to peers that left cannot grow the
    /// queues without bound.
    pub(super) fn reject_unknown(&self, connection: Connection, message: C::Message) {
        let cost = rejection_cost(&*self.out.converter, &message);
        let event = Event::RejectedMessage(RejectedMessage {
            connection,
            message,
            reason: RejectReason::Closed,
        });
        lock(&self.shared.totals).handed_back.closed += 1;
        let _ = self.out.main.send(Envelope {
            event,
            credit: Some((self.shared.orphans.clone(), cost)),
        });
    }

    /// A message counted as a rejection went to its connection after all
    /// (the loop knew it): its count goes back.
    fn uncount_rejections(&mut self, cost: usize) {
        if self.shared.orphans.taken(&self.out.budget, cost).budget {
            self.resume_budget();
        }
    }
}
