//! Application threads → network thread: commands, and the waker.
//!
//! Commands go through one MPSC queue. The network thread is woken through a
//! `mio::Waker` only when it is about to sleep in `poll` and no wake is
//! pending already: while it is busy it finds new commands by itself, and a
//! burst of sends costs at most one wake.
//!
//! `sleeping` is the other half of a Dekker handshake: the network thread
//! sets it, then looks at the queue once more before sleeping; a pusher
//! enqueues, then reads it. With a fence on each side, one of them sees the
//! other, so no command is left waiting for a wake that never comes.
//!
//! Closing is exact: once the network thread stops, a command either reached
//! it (and is answered by an event) or its push fails and the caller gets the
//! message back. `closed` and `pushing` make that a Dekker handshake: a
//! pusher announces itself, then checks `closed`; the network thread sets
//! `closed`, then waits for `pushing` to reach zero before it drains the
//! queue for the last time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Wake;
use std::time::Instant;
use std::{fmt, io};

use crossbeam_channel::{Receiver, Sender};

use crate::error::ConnectError;
use crate::event::Connection;
use crate::mode::{DisconnectMode, ShutdownMode};
use crate::sync::lock;

/// Something the application asks of the network thread.
pub(crate) enum Command<M> {
    Connect {
        connection: Connection,
        target: Target,
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
    /// A send on the caller's thread left events (or a new state) in the
    /// connection's endpoint: pass them on.
    Poke {
        connection: Connection,
    },
    Disconnect {
        connection: Connection,
        mode: DisconnectMode,
    },
    /// `connect_waiting`'s callback returned: deliver the held events.
    Release {
        connection: Connection,
    },
    Merge {
        connection: Connection,
        done: Sender<()>,
    },
    /// The application took enough events: read again.
    Resume {
        connection: Connection,
    },
    /// A serializer or deserializer woke its waker.
    Wake {
        connection: Connection,
    },
    Shutdown {
        mode: ShutdownMode,
    },
    /// Nothing: wakes the poller so that its thread hands the loop over.
    Nudge,
}

impl<M> fmt::Debug for Command<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Command::Connect { .. } => "Connect",
            Command::Resolved { .. } => "Resolved",
            Command::Send { .. } => "Send",
            Command::SendBatch { .. } => "SendBatch",
            Command::Poke { .. } => "Poke",
            Command::Disconnect { .. } => "Disconnect",
            Command::Release { .. } => "Release",
            Command::Merge { .. } => "Merge",
            Command::Resume { .. } => "Resume",
            Command::Wake { .. } => "Wake",
            Command::Shutdown { .. } => "Shutdown",
            Command::Nudge => "Nudge",
        };
        f.write_str(name)
    }
}

/// Where to connect: an address, or a name to resolve off the network thread.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Addrs(Vec<SocketAddr>),
    /// `host:port`, resolved by a helper thread.
    Name(String),
}

/// The command queue, shared by every handle.
pub(crate) struct CommandQueue<M> {
    tx: Sender<Command<M>>,
    waker: mio::Waker,
    wake_pending: AtomicBool,
    sleeping: AtomicBool,
    closed: AtomicBool,
    pushing: AtomicUsize,
    /// The network loop is parked idle in its slot (see `lead`): nobody
    /// polls, so a push rings `bell` for its home thread instead.
    parked: AtomicBool,
    /// What the loop's home thread waits on while it does not run the loop.
    pub(crate) bell: Condvar,
}

impl<M> fmt::Debug for CommandQueue<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandQueue")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<M> CommandQueue<M> {
    pub(crate) fn new(waker: mio::Waker) -> (Self, Receiver<Command<M>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let queue = Self {
            tx,
            waker,
            wake_pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            pushing: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            bell: Condvar::new(),
        };
        (queue, rx)
    }

    /// Hands `command` to the network thread, or back if it has stopped.
    pub(crate) fn push(&self, command: Command<M>) -> Result<(), Command<M>> {
        self.pushing.fetch_add(1, Ordering::SeqCst);
        let result = if self.closed.load(Ordering::SeqCst) {
            Err(command)
        } else {
            self.tx.send(command).map_err(|e| e.into_inner())
        };
        self.pushing.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if result.is_ok()
            && self.sleeping.load(Ordering::SeqCst)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            // A failed wake means the poller is gone, so nobody waits.
            let _ = self.waker.wake();
        }
        if result.is_ok() && self.parked.load(Ordering::SeqCst) {
            self.bell.notify_all();
        }
        result
    }

    /// The loop is parked idle (`true`) or taken to run (`false`). Parking
    /// returns whether commands are already waiting, in which case the
    /// caller rings the bell itself (a pusher may have missed the flag).
    pub(crate) fn set_parked(&self, parked: bool, commands: &Receiver<Command<M>>) -> bool {
        self.parked.store(parked, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        parked && !commands.is_empty()
    }

    /// Network thread: called before draining, so that a command pushed
    /// after the drain wakes it again.
    pub(crate) fn woken(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    /// Network thread: about to sleep in `poll`. Returns false if commands
    /// came in meanwhile, in which case it must not sleep.
    pub(crate) fn going_to_sleep(&self, commands: &Receiver<Command<M>>) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if commands.is_empty() {
            return true;
        }
        self.sleeping.store(false, Ordering::SeqCst);
        false
    }

    /// Network thread: awake again.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Network thread: refuse every later push, and wait until the pushes
    /// under way are in the queue.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while self.pushing.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
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
        let _ = self.commands.push(Command::Wake {
            connection: self.connection,
        });
    }
}

/// Per-connection count of events produced but not yet taken, for read
/// backpressure. The network thread stops reading a connection at the
/// bound; the consumer that brings the count down to half of it asks the
/// network thread to read again.
#[derive(Debug)]
pub(crate) struct Credit {
    pub(crate) connection: Connection,
    undelivered: AtomicUsize,
    paused: AtomicBool,
}

impl Credit {
    pub(crate) fn new(connection: Connection) -> Self {
        Self {
            connection,
            undelivered: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
        }
    }

    /// Network thread: `n` events are about to be queued.
    pub(crate) fn produced(&self, n: usize) {
        self.undelivered.fetch_add(n, Ordering::SeqCst);
    }

    /// Network thread: whether to stop reading. When it says yes, a
    /// consumer will send `Resume` once the count is down to half.
    pub(crate) fn should_pause(&self, bound: usize) -> bool {
        if self.undelivered.load(Ordering::SeqCst) < bound {
            return false;
        }
        self.paused.store(true, Ordering::SeqCst);
        // Consumers may have taken events between the load and the store
        // without seeing the flag: look again.
        if self.undelivered.load(Ordering::SeqCst) <= bound / 2 {
            // Whoever clears the flag resumes; if a consumer did, the
            // network thread gets a harmless extra `Resume`.
            return !self.paused.swap(false, Ordering::SeqCst);
        }
        true
    }

    /// Consumer: `n` events were taken. True if the taker must send `Resume`.
    pub(crate) fn taken(&self, n: usize, bound: usize) -> bool {
        let left = self.undelivered.fetch_sub(n, Ordering::SeqCst) - n;
        left <= bound / 2
            && self.paused.load(Ordering::SeqCst)
            && self.paused.swap(false, Ordering::SeqCst)
    }
}

/// The rendezvous of `connect_waiting` with the network thread.
#[derive(Debug, Default)]
pub(crate) struct ConnectWait {
    state: Mutex<WaitState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
enum WaitState {
    #[default]
    Waiting,
    Done(Result<(), ConnectError>),
    Abandoned,
}

impl ConnectWait {
    /// Network thread: the attempt ended. Returns false if the caller gave
    /// up already, in which case the connection is to be closed silently.
    pub(crate) fn finish(&self, result: Result<(), ConnectError>) -> bool {
        let mut state = lock(&self.state);
        if matches!(*state, WaitState::Abandoned) {
            return false;
        }
        *state = WaitState::Done(result);
        self.changed.notify_all();
        true
    }

    /// Caller: waits until `deadline`. `None` means it timed out and the
    /// attempt is now abandoned.
    pub(crate) fn wait(&self, deadline: Instant) -> Option<Result<(), ConnectError>> {
        let mut state = lock(&self.state);
        loop {
            match std::mem::take(&mut *state) {
                WaitState::Done(result) => return Some(result),
                WaitState::Abandoned => unreachable!("only the caller abandons"),
                WaitState::Waiting => {}
            }
            let now = Instant::now();
            if now >= deadline {
                *state = WaitState::Abandoned;
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
