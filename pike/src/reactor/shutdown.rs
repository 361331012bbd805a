//! Ending the loop: a shutdown asks every endpoint to end in its mode; the
//! loop ends once every connection has closed.
//!
//! # Invariants
//!
//! * The listener goes first (its Unix socket file with it), so no
//!   connection arrives during a shutdown.
//! * Each endpoint decides what the mode means for it
//!   ([`Endpoint::shutdown`](crate::endpoint::Endpoint::shutdown)).
//! * After the last turn the command queue is closed: a command either got
//!   in and is answered here (its messages handed back, its connect
//!   cancelled) or its push fails and the caller gets its message back.
//! * A shutdown always ends: at its deadline (the soonest any caller
//!   gave) what is left ends as with `Now`, its messages handed back; a
//!   name still being resolved is not waited for.

use std::time::Instant;

use super::Reactor;
use crate::connector::command::Command;
use crate::connector::queues::merge_into;
use crate::converter::Converter;
use crate::mode::ShutdownMode;

/// Whether the loop is ending, in what mode, and by when.
#[derive(Debug, Default)]
pub(super) struct Ending {
    pub(super) mode: Option<ShutdownMode>,
    /// When a shutdown that lets messages finish ends them anyway.
    pub(super) deadline: Option<Instant>,
}

impl<C: Converter> Reactor<C> {
    pub(super) fn begin_shutdown(&mut self, mode: ShutdownMode) {
        if self
            .ending
            .mode
            .is_some_and(|m| m == ShutdownMode::Now || m == mode)
        {
            return;
        }
        self.ending.mode = Some(mode);
        if let Some(mut listener) = self.accepting.listener.take() {
            let _ = listener.deregister(self.poller.registry());
        }
        self.accepting.paused_until = None;
        for id in self.conns.ids() {
            if self
                .with_served(id, |c| c.endpoint.shutdown(mode))
                .is_some()
            {
                self.mark_ready(id);
            }
        }
    }

    /// Sets the shutdown's deadline, if `deadline` is sooner than the one
    /// it has.
    pub(super) fn limit_shutdown(&mut self, deadline: Option<Instant>) {
        if let Some(d) = deadline
            && self.ending.mode.is_some_and(|m| m != ShutdownMode::Now)
            && self.ending.deadline.is_none_or(|old| d < old)
        {
            self.ending.deadline = Some(d);
        }
    }

    /// The shutdown's deadline passed: what is left ends now.
    pub(super) fn shutdown_overdue(&mut self) {
        self.ending.deadline = None;
        if !self.conns.is_empty() {
            tracing::debug!(
                "shutdown deadline: {} connections left end now",
                self.conns.len()
            );
            self.shared.note_shutdown_cut_short();
        }
        self.begin_shutdown(ShutdownMode::Now);
    }

    /// Ends every connection at once (the poller failed).
    pub(super) fn abort_all(&mut self) {
        for id in self.conns.ids() {
            self.with_served(id, |c| c.endpoint.abort());
            self.close(id);
        }
    }

    /// After the last turn: refuse further commands, answer the ones that
    /// got in, and close the queues.
    pub(crate) fn finish(mut self) {
        self.shared.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Send {
                    connection,
                    message,
                } => self.reject_unknown(connection, message),
                Command::SendBatch {
                    connection,
                    messages,
                } => {
                    for message in messages {
                        self.reject_unknown(connection, message);
                    }
                }
                Command::Connect {
                    connection,
                    dial,
                    waiter,
                } => {
                    // Shutting down: this cancels it, handing back anything
                    // sent to it meanwhile.
                    self.connect(connection, *dial, waiter);
                    self.close(connection);
                }
                Command::Merge { connection, done } => {
                    if let Some(rx) = self.shared.separate.remove(connection) {
                        merge_into(&rx, &self.out.main);
                    }
                    let _ = done.send(());
                }
                Command::Resolved { connection, .. } => self.join_resolver(connection),
                _ => {}
            }
        }
        // A resolver still waiting on a name is not waited for: its answer
        // goes to a closed queue, and it ends.
        for (_, resolver) in self.dialer.resolvers.drain(..) {
            if resolver.is_finished() {
                let _ = resolver.join();
            }
        }
    }
}
