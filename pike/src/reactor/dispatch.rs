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
use super::{COMMAND_BUDGET, Reactor};
use crate::connector::budget::rejection_cost;
use crate::connector::command::Command;
use crate::connector::queues::Route;
use crate::connector::queues::{Envelope, merge_into};
use crate::converter::Converter;
use crate::endpoint::State;
use crate::error::RejectReason;
use crate::event::{Connection, Event, RejectedMessage};
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
                dial,
                waiter,
            } => self.connect(connection, *dial, waiter),
            Command::Resolved { connection, result } => self.resolved(connection, result),
            Command::Send {
                connection,
                message,
            } => {
                let cost = rejection_cost(&*self.out.converter, &message);
                self.send_served(connection, vec![message], cost);
            }
            Command::SendBatch {
                connection,
                messages,
            } => {
                let converter = &*self.out.converter;
                let cost = messages.iter().map(|m| rejection_cost(converter, m)).sum();
                self.send_served(connection, messages, cost);
            }
            Command::Drive { connection } => self.mark_ready(connection),
            Command::Disconnect { connection, mode } => {
                if self
                    .with_served(connection, |c| c.endpoint.disconnect(mode))
                    .is_some()
                {
                    self.mark_ready(connection);
                }
            }
            Command::CallbackDone { connection } => {
                let closed = if self.conns.contains(connection)
                    && let Some(mut conn) = self.directory.lock(connection)
                {
                    let held = conn.held.take().map(|h| *h).unwrap_or_default();
                    for event in held {
                        route_event(&mut conn, &mut self.out, event);
                    }
                    Some(conn.endpoint.state() == State::Closed)
                } else {
                    None
                };
                if let Some(closed) = closed {
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
                self.with_served(connection, |c| c.route = Route::Main);
                let _ = done.send(());
            }
            Command::Resume { connection } => self.resume_connection(connection),
            Command::BudgetFreed => self.resume_budget(),
            Command::ConverterReady { connection } => {
                if self
                    .with_served(connection, |c| c.endpoint.handle_wake())
                    .is_some()
                {
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

    /// Queues messages the command queue brought (counted as rejections,
    /// `cost`) on a connection the loop serves, or hands them back.
    fn send_served(&mut self, connection: Connection, messages: Vec<C::Message>, cost: usize) {
        let budget = &self.out.budget;
        let mut messages = Some(messages);
        let queued = self.with_served(connection, |conn| {
            conn.refresh_room(budget);
            conn.endpoint
                .send_all(messages.take().expect("called once"));
        });
        match messages {
            None if queued.is_some() => {
                self.mark_ready(connection);
                self.uncount_rejections(cost);
            }
            _ => {
                for message in messages.into_iter().flatten() {
                    self.reject_unknown(connection, message);
                }
            }
        }
    }

    /// A message counted as a rejection went to its connection after all
    /// (the loop knew it): its count goes back.
    fn uncount_rejections(&mut self, cost: usize) {
        if self.shared.orphans.taken(&self.out.budget, cost).budget {
            self.resume_budget();
        }
    }
}
