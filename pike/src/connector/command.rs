//! Application threads → network thread: commands, and the waker.
//!
//! Commands go through one MPSC queue. The network thread is woken through a
//! `mio::Waker` only when it is about to sleep in `poll` and no wake is
//! pending already: while it is busy it finds new commands by itself, and a
//! burst of sends costs at most one wake.
//!
//! Whether to wake is a handshake ([`Doorbell`]): the network thread says
//! it sleeps, then looks at the queue once more; a pusher enqueues, then
//! looks whether it sleeps; one of them sees the other, so no command is
//! left waiting for a wake that never comes.
//!
//! Closing is exact: once the network thread stops, a command either reached
//! it (and is answered by an event) or its push fails and the caller gets the
//! message back ([`Gate`]: the network thread closes it, waits for the
//! pushes under way, then drains the queue for the last time). Both are
//! checked by `loom` (`handshake.rs`).
//!
//! # Invariants
//!
//! * Any thread pushes; only the thread running the loop takes.
//! * A push after the loop has stopped fails and hands the command back.
//! * Lock order: no lock is held across a push except a connection's slot
//!   (a send that must ask the loop to drive the connection).

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;
use std::{fmt, io};

use crossbeam_channel::{Receiver, Sender};

use super::handshake::{Doorbell, Gate, Ring};
use crate::error::ConnectError;
use crate::event::Connection;
use crate::mode::{DisconnectMode, ShutdownMode};
use crate::sync::atomic::{AtomicBool, AtomicU8, Ordering, fence};
use crate::sync::{Condvar, Mutex, Rank, lock};
use crate::transport::Dial;

/// Something the application asks of the network thread.
pub(crate) enum Command<M> {
    Connect {
        connection: Connection,
        /// Where and how (boxed: every command is as large as the largest).
        dial: Box<Dial>,
        waiter: Option<Arc<ConnectWait>>,
    },
    Resolved {
        connection: Connection,
        result: io::Result<Vec<SocketAddr>>,
    },
    Send {
        connection: Connection,
        message: M,
    },
    SendBatch {
        connection: Connection,
        messages: Vec<M>,
    },
    /// A send on the caller's thread left events (or a new state, or bytes
    /// for the loop to write) in the connection's endpoint: drive it.
    Drive {
        connection: Connection,
    },
    Disconnect {
        connection: Connection,
        mode: DisconnectMode,
    },
    /// `connect_waiting`'s callback returned: deliver the held events.
    CallbackDone {
        connection: Connection,
    },
    Merge {
        connection: Connection,
        done: Sender<()>,
    },
    /// The application took enough of a connection's events: read again.
    Resume {
        connection: Connection,
    },
    /// The application took enough events to bring the connector's memory
    /// budget down: read again from the connections paused at it.
    BudgetFreed,
    /// A serializer or deserializer woke its waker: it can go on.
    ConverterReady {
        connection: Connection,
    },
    Shutdown {
        mode: ShutdownMode,
        /// When what is left is closed as `Now` (`None`: never).
        deadline: Option<Instant>,
    },
    /// Nothing: wakes the thread running the loop so that it hands the
    /// loop over to a borrower (see [`lead`](crate::reactor::lead)).
    HandOver,
}

impl<M> fmt::Debug for Command<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Command::Connect { .. } => "Connect",
            Command::Resolved { .. } => "Resolved",
            Command::Send { .. } => "Send",
            Command::SendBatch { .. } => "SendBatch",
            Command::Drive { .. } => "Drive",
            Command::Disconnect { .. } => "Disconnect",
            Command::CallbackDone { .. } => "CallbackDone",
            Command::Merge { .. } => "Merge",
            Command::Resume { .. } => "Resume",
            Command::BudgetFreed => "BudgetFreed",
            Command::ConverterReady { .. } => "ConverterReady",
            Command::Shutdown { .. } => "Shutdown",
            Command::HandOver => "HandOver",
        };
        f.write_str(name)
    }
}

/// The command queue, shared by every handle.
pub(crate) struct CommandQueue<M> {
    tx: Sender<Command<M>>,
    waker: mio::Waker,
    bell: Doorbell,
    gate: Gate,
    /// The loop is idle in its slot (see `lead`): nobody polls, so a push
    /// wakes the network thread through `idle_wake` instead.
    idle: AtomicBool,
    /// Shutdown modes asked for, one bit each: a shutdown goes ahead of
    /// whatever commands are queued before it.
    shutdown: AtomicU8,
    /// What the network thread waits on while it does not run the loop.
    pub(crate) idle_wake: Ring,
}

impl<M> fmt::Debug for CommandQueue<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandQueue")
            .field("closed", &self.gate.is_closed())
            .finish_non_exhaustive()
    }
}

impl<M> CommandQueue<M> {
    pub(crate) fn new(waker: mio::Waker) -> (Self, Receiver<Command<M>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let queue = Self {
            tx,
            waker,
            bell: Doorbell::new(),
            gate: Gate::new(),
            idle: AtomicBool::new(false),
            shutdown: AtomicU8::new(0),
            idle_wake: Ring::new(),
        };
        (queue, rx)
    }

    /// Hands `command` to the network thread, or back if it has stopped.
    pub(crate) fn push(&self, command: Command<M>) -> Result<(), Command<M>> {
        let result = match self.gate.enter() {
            None => Err(command),
            Some(_pass) => self.tx.send(command).map_err(|e| e.into_inner()),
        };
        if result.is_ok() && self.bell.must_ring() {
            // A failed wake means the poller is gone, so nobody waits.
            let _ = self.waker.wake();
        }
        if result.is_ok() && self.idle.load(Ordering::SeqCst) {
            self.idle_wake.ring();
        }
        result
    }

    /// Asks for a shutdown in `mode`, ahead of the commands queued: the
    /// network thread looks at these first, then drains the queue.
    /// Returns false once the network thread has stopped.
    pub(crate) fn request_shutdown(&self, mode: ShutdownMode, deadline: Option<Instant>) -> bool {
        self.shutdown.fetch_or(shutdown_bit(mode), Ordering::SeqCst);
        // The command itself wakes the network thread, and brings the
        // deadline.
        self.push(Command::Shutdown { mode, deadline }).is_ok()
    }

    /// Network thread: the shutdowns asked for since the last call,
    /// weakest first (so that a `Now` asked for at the same time wins).
    pub(crate) fn take_shutdown_requests(&self) -> impl Iterator<Item = ShutdownMode> + use<M> {
        let bits = self.shutdown.swap(0, Ordering::SeqCst);
        [
            ShutdownMode::FinishQueue,
            ShutdownMode::FinishMessage,
            ShutdownMode::Now,
        ]
        .into_iter()
        .filter(move |&m| bits & shutdown_bit(m) != 0)
    }

    /// The loop is idle in its slot (`true`) or taken to run (`false`).
    /// Going idle returns whether commands are already waiting, in which
    /// case the caller wakes the network thread itself (a pusher may have
    /// missed the flag).
    pub(crate) fn set_idle(&self, idle: bool, commands: &Receiver<Command<M>>) -> bool {
        self.idle.store(idle, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        idle && !commands.is_empty()
    }

    /// Network thread: called before draining, so that a command pushed
    /// after the drain wakes it again.
    pub(crate) fn woken(&self) {
        self.bell.answered();
    }

    /// Network thread: about to sleep in `poll`. Returns false if commands
    /// came in meanwhile, in which case it must not sleep.
    pub(crate) fn going_to_sleep(&self, commands: &Receiver<Command<M>>) -> bool {
        self.bell.going_to_sleep(|| commands.is_empty())
    }

    /// Network thread: awake again.
    pub(crate) fn awake(&self) {
        self.bell.awake();
    }

    /// Network thread: refuse every later push, and wait until the pushes
    /// under way are in the queue.
    pub(crate) fn close(&self) {
        self.gate.close();
    }
}

fn shutdown_bit(mode: ShutdownMode) -> u8 {
    match mode {
        ShutdownMode::Now => 1,
        ShutdownMode::FinishMessage => 2,
        ShutdownMode::FinishQueue => 4,
    }
}

/// The waker handed to a connection's serializers and deserializers.
pub(crate) struct ConnectionWaker<M> {
    pub(crate) connection: Connection,
    pub(crate) commands: Arc<CommandQueue<M>>,
}

impl<M: Send + 'static> Wake for ConnectionWaker<M> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // After the connector stopped there is nothing left to wake.
        let _ = self.commands.push(Command::ConverterReady {
            connection: self.connection,
        });
    }
}

/// The rendezvous of `connect_waiting` (or of an awaited connect) with
/// the network thread.
#[derive(Debug)]
pub(crate) struct ConnectWait {
    state: Mutex<WaitState>,
    changed: Condvar,
}

impl Default for ConnectWait {
    fn default() -> Self {
        Self {
            state: Mutex::new(Rank::ConnectWait, WaitState::Waiting(None)),
            changed: Condvar::new(),
        }
    }
}

#[derive(Debug)]
enum WaitState {
    /// With the waker of an async caller.
    Waiting(Option<Waker>),
    Done(Result<(), ConnectError>),
    /// The outcome was taken.
    Taken,
    Abandoned,
}

impl ConnectWait {
    /// Network thread: the attempt ended. Returns false if the caller gave
    /// up already, in which case the connection is to be closed silently.
    pub(crate) fn finish(&self, result: Result<(), ConnectError>) -> bool {
        let mut state = lock(&self.state);
        let task = match std::mem::replace(&mut *state, WaitState::Done(result)) {
            WaitState::Waiting(task) => task,
            other => {
                *state = other;
                return false;
            }
        };
        drop(state);
        self.changed.notify_all();
        if let Some(task) = task {
            task.wake();
        }
        true
    }

    /// Async caller: the outcome if the attempt ended; otherwise `cx`'s
    /// waker is woken when it does.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut *state, WaitState::Taken) {
            WaitState::Done(result) => Poll::Ready(result),
            WaitState::Waiting(_) => {
                *state = WaitState::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
            WaitState::Taken | WaitState::Abandoned => {
                panic!("an awaited connect polled after it completed")
            }
        }
    }

    /// Caller: gives up waiting. Returns true if the attempt had
    /// succeeded meanwhile (the connection is up, its events held), which
    /// the caller must then end itself.
    pub(crate) fn abandon(&self) -> bool {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut *state, WaitState::Abandoned) {
            WaitState::Done(Ok(())) => true,
            WaitState::Taken => {
                *state = WaitState::Taken;
                false
            }
            _ => false,
        }
    }

    /// Caller: waits until `deadline`. `None` means it timed out and the
    /// attempt is now abandoned.
    pub(crate) fn wait(&self, deadline: Instant) -> Option<Result<(), ConnectError>> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::replace(&mut *state, WaitState::Taken) {
                WaitState::Done(result) => return Some(result),
                WaitState::Abandoned | WaitState::Taken => {
                    unreachable!("only the caller abandons or takes")
                }
                WaitState::Waiting(task) => *state = WaitState::Waiting(task),
            }
            let now = Instant::now();
            if now >= deadline {
                *state = WaitState::Abandoned;
                return None;
            }
            state = self.changed.wait_timeout(state, deadline - now).0;
        }
    }
}

#[cfg(all(test, pike_loom))]
mod loom_tests {
    use super::*;

    /// An awaited connect and the network thread's outcome, in any order:
    /// the waker registered under the lock is woken (loom fails a model
    /// that never wakes), and the outcome is taken once.
    #[test]
    fn loom_an_awaited_connect_hears_its_outcome() {
        loom::model(|| {
            let wait = Arc::new(ConnectWait::default());
            let net = {
                let wait = wait.clone();
                loom::thread::spawn(move || assert!(wait.finish(Ok(()))))
            };
            let outcome = loom::future::block_on(std::future::poll_fn(|cx| wait.poll(cx)));
            assert!(outcome.is_ok());
            net.join().unwrap();
        });
    }

    /// A caller giving up races the outcome: either the network thread
    /// hears it gave up (and closes the connection), or the caller hears
    /// the connection is up (and closes it): never both, never neither.
    #[test]
    fn loom_giving_up_races_the_outcome_and_one_side_closes() {
        loom::model(|| {
            let wait = Arc::new(ConnectWait::default());
            let net = {
                let wait = wait.clone();
                loom::thread::spawn(move || wait.finish(Ok(())))
            };
            let caller_closes = wait.abandon();
            let net_heard = net.join().unwrap();
            assert_ne!(caller_closes, !net_heard, "one side closes it");
        });
    }
}
