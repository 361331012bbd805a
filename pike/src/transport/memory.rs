//! An in-memory network, for the crate's own tests: [`Transport`]s and a
//! [`Listener`] that move bytes through buffers instead of sockets, so
//! that the network loop itself is tested without sockets, threads or
//! sleeps (see the reactor's harness, `reactor/harness.rs`).
//!
//! A [`Net`] holds every connection's two *pipes* (one each way). A pipe
//! holds at most its *window* of bytes in flight, and one call moves at
//! most `step` bytes, so a test makes writes partial and reads short at
//! will. Each loop that uses the net is an *owner*: the ends it created
//! (by connecting, or accepted from its listener) report their readiness to
//! it, as edges, the way epoll reports a socket's (an edge when data or
//! room comes, and at registration); its [`Poller`](crate::reactor) takes
//! them. The test's own ends ([`Remote`]) belong to no loop: the test
//! writes, reads, half-closes or resets them by hand.
//!
//! Addresses are socket addresses, only names: [`Net::bind`] and
//! [`Net::listen`] make a listener at one, for a loop or for the test.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use mio::{Registry, Token};

use super::{Listener, Transport};
use crate::address::PeerAddr;
use crate::reactor::conn::Edges;
use crate::sync::{Mutex, Rank, lock};

/// Which loop an end reports to (see [`Net::owner`]).
pub(crate) type Owner = usize;

/// The network: pipes, listeners, and the readiness not yet taken.
#[derive(Debug)]
pub(crate) struct Net {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Pipe `e` carries bytes *to* end `e`; end `e` writes into pipe
    /// `e ^ 1`.
    pipes: Vec<Pipe>,
    ends: Vec<End>,
    listeners: HashMap<SocketAddr, Backlog>,
    /// Where connects never complete (nothing answers).
    black_holes: HashSet<SocketAddr>,
    /// Edges reported and not yet taken: owner, token, [`Edges`] bits.
    ready: Vec<(Owner, Token, u8)>,
    owners: usize,
    /// Bytes a new pipe holds at most.
    window: usize,
    /// Bytes one read or write moves at most.
    step: usize,
    /// The next port a dialing end is given as its address.
    next_port: u16,
}

#[derive(Debug, Default)]
struct Pipe {
    bytes: VecDeque<u8>,
    window: usize,
    /// The writing end shut its write side down or went away: the reader
    /// reads end of stream after the bytes.
    closed: bool,
}

#[derive(Debug, Default)]
struct End {
    owner: Option<Owner>,
    token: Option<Token>,
    /// Connecting to a black hole: never connected.
    connecting: bool,
    /// Dropped: its peer's writes fail.
    gone: bool,
    /// Reset by its peer: reads and writes fail, once reported.
    reset: bool,
    error_taken: bool,
    addr: Option<SocketAddr>,
}

#[derive(Debug)]
struct Backlog {
    owner: Option<Owner>,
    token: Option<Token>,
    waiting: VecDeque<usize>,
}

impl Net {
    /// An empty network whose pipes hold `window` bytes and move `step`
    /// bytes per call at most.
    pub(crate) fn new(window: usize, step: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(
                Rank::MemoryNet,
                State {
                    pipes: Vec::new(),
                    ends: Vec::new(),
                    listeners: HashMap::new(),
                    black_holes: HashSet::new(),
                    ready: Vec::new(),
                    owners: 0,
                    window: window.max(1),
                    step: step.max(1),
                    next_port: 40_000,
                },
            ),
        })
    }

    /// A new owner: a loop whose ends report to it.
    pub(crate) fn owner(&self) -> Owner {
        let mut state = lock(&self.state);
        state.owners += 1;
        state.owners
    }

    /// Changes how many bytes one call moves at most (from now on).
    pub(crate) fn set_step(&self, step: usize) {
        lock(&self.state).step = step.max(1);
    }

    /// A listener at `addr` for the loop `owner`.
    pub(crate) fn bind(self: &Arc<Self>, addr: SocketAddr, owner: Owner) -> Box<dyn Listener> {
        self.listen_at(addr, Some(owner));
        Box::new(MemoryListener {
            net: self.clone(),
            addr,
        })
    }

    /// A listener at `addr` for the test: it takes the loops' connects.
    pub(crate) fn listen(self: &Arc<Self>, addr: SocketAddr) -> RemoteListener {
        self.listen_at(addr, None);
        RemoteListener {
            net: self.clone(),
            addr,
        }
    }

    fn listen_at(&self, addr: SocketAddr, owner: Option<Owner>) {
        let mut state = lock(&self.state);
        let backlog = Backlog {
            owner,
            token: None,
            waiting: VecDeque::new(),
        };
        assert!(
            state.listeners.insert(addr, backlog).is_none(),
            "{addr} is taken"
        );
    }

    /// Makes `addr` a black hole: a connect to it stays in progress for
    /// ever, as one to a host that never answers.
    pub(crate) fn black_hole(&self, addr: SocketAddr) {
        lock(&self.state).black_holes.insert(addr);
    }

    /// Connects the test to the listener at `addr`.
    pub(crate) fn dial(self: &Arc<Self>, addr: SocketAddr) -> io::Result<Remote> {
        let end = self.link(addr, None)?;
        Ok(Remote {
            net: self.clone(),
            end,
        })
    }

    /// The loop `owner` connects to the listener at `addr`: its end, or
    /// `ConnectionRefused` if nothing listens there.
    pub(crate) fn connect(
        self: &Arc<Self>,
        addr: SocketAddr,
        owner: Owner,
    ) -> io::Result<Box<dyn Transport>> {
        let end = self.link(addr, Some(owner))?;
        Ok(Box::new(MemoryStream {
            net: self.clone(),
            end,
        }))
    }

    /// A new connection to the listener at `addr`: the dialing end's
    /// index; the other end waits in the listener's backlog.
    fn link(&self, addr: SocketAddr, owner: Option<Owner>) -> io::Result<usize> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let black_hole = state.black_holes.contains(&addr);
        let accepting_owner = match state.listeners.get(&addr) {
            Some(backlog) => backlog.owner,
            None if black_hole => None,
            None => return Err(io::ErrorKind::ConnectionRefused.into()),
        };
        let base = state.ends.len();
        let port = state.next_port;
        state.next_port = state.next_port.wrapping_add(1);
        for _ in 0..2 {
            state.pipes.push(Pipe {
                window: state.window,
                ..Pipe::default()
            });
        }
        state.ends.push(End {
            owner,
            addr: Some(SocketAddr::from(([10, 0, 0, 1], port))),
            connecting: black_hole,
            ..End::default()
        });
        state.ends.push(End {
            owner: accepting_owner,
            ..End::default()
        });
        let Some(backlog) = state.listeners.get_mut(&addr).filter(|_| !black_hole) else {
            return Ok(base);
        };
        backlog.waiting.push_back(base + 1);
        if let (Some(owner), Some(token)) = (backlog.owner, backlog.token) {
            state.ready.push((owner, token, Edges::READABLE));
        }
        Ok(base)
    }

    /// Takes the edges reported to `owner` since it last took them.
    pub(crate) fn take_ready(&self, owner: Owner, into: &mut Vec<(Token, u8)>) {
        let mut state = lock(&self.state);
        state.ready.retain(|&(o, token, bits)| {
            if o == owner {
                into.push((token, bits));
            }
            o != owner
        });
    }

    /// Whether edges wait for `owner`.
    pub(crate) fn has_ready(&self, owner: Owner) -> bool {
        lock(&self.state).ready.iter().any(|&(o, ..)| o == owner)
    }

    /// Bytes in flight, both ways, over every connection.
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.state).pipes.iter().map(|p| p.bytes.len()).sum()
    }
}

impl State {
    /// Reports `bits` to end `end`'s loop, if it has one and is registered.
    fn edge(&mut self, end: usize, bits: u8) {
        let e = &self.ends[end];
        if let (Some(owner), Some(token), false) = (e.owner, e.token, e.gone) {
            self.ready.push((owner, token, bits));
        }
    }

    fn read(&mut self, end: usize, buf: &mut [u8]) -> io::Result<usize> {
        if self.ends[end].reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let step = self.step;
        let pipe = &mut self.pipes[end];
        if pipe.bytes.is_empty() {
            return if pipe.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = pipe.bytes.len().min(buf.len()).min(step);
        for (slot, byte) in buf.iter_mut().zip(pipe.bytes.drain(..n)) {
            *slot = byte;
        }
        // Room came in the pipe the other end writes.
        self.edge(end ^ 1, Edges::WRITABLE);
        Ok(n)
    }

    fn write(&mut self, end: usize, data: &[u8]) -> io::Result<usize> {
        if self.ends[end].reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let peer = end ^ 1;
        if self.ends[peer].gone || self.pipes[peer].closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let step = self.step;
        let pipe = &mut self.pipes[peer];
        let room = pipe.window.saturating_sub(pipe.bytes.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = room.min(data.len()).min(step);
        pipe.bytes.extend(&data[..n]);
        self.edge(peer, Edges::READABLE);
        Ok(n)
    }

    fn shutdown_write(&mut self, end: usize) {
        self.pipes[end ^ 1].closed = true;
        self.edge(end ^ 1, Edges::READABLE | Edges::READ_CLOSED);
    }

    /// Nothing listens at `addr` any more: connections never accepted
    /// are closed.
    fn unlisten(&mut self, addr: SocketAddr) {
        if let Some(backlog) = self.listeners.remove(&addr) {
            for end in backlog.waiting {
                self.drop_end(end);
            }
        }
    }

    fn drop_end(&mut self, end: usize) {
        self.shutdown_write(end);
        let e = &mut self.ends[end];
        e.gone = true;
        e.token = None;
        // What it had not read is lost with it.
        self.pipes[end].bytes.clear();
        self.edge(end ^ 1, Edges::WRITABLE);
    }
}

/// A loop's end of a connection.
#[derive(Debug)]
struct MemoryStream {
    net: Arc<Net>,
    end: usize,
}

impl io::Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(&self.net.state).read(self.end, buf)
    }
}

impl io::Write for MemoryStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        lock(&self.net.state).write(self.end, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for MemoryStream {
    /// Registered with the net (the loop owning the end was known when it
    /// was made); like epoll, registering reports what is ready already.
    fn register(&mut self, _registry: &Registry, token: Token) -> io::Result<()> {
        let mut state = lock(&self.net.state);
        state.ends[self.end].token = Some(token);
        let mut bits = Edges::WRITABLE;
        let pipe = &state.pipes[self.end];
        if !pipe.bytes.is_empty() || pipe.closed {
            bits |= Edges::READABLE;
        }
        state.edge(self.end, bits);
        Ok(())
    }

    fn deregister(&mut self, _registry: &Registry) -> io::Result<()> {
        lock(&self.net.state).ends[self.end].token = None;
        Ok(())
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        lock(&self.net.state).shutdown_write(self.end);
        Ok(())
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut state = lock(&self.net.state);
        let e = &mut state.ends[self.end];
        if e.reset && !e.error_taken {
            e.error_taken = true;
            return Ok(Some(io::ErrorKind::ConnectionReset.into()));
        }
        Ok(None)
    }

    fn is_connected(&self) -> io::Result<bool> {
        Ok(!lock(&self.net.state).ends[self.end].connecting)
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        lock(&self.net.state).drop_end(self.end);
    }
}

/// A loop's listener.
#[derive(Debug)]
struct MemoryListener {
    net: Arc<Net>,
    addr: SocketAddr,
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> io::Result<(Box<dyn Transport>, PeerAddr)> {
        let mut state = lock(&self.net.state);
        let backlog = state.listeners.get_mut(&self.addr).expect("bound");
        let Some(end) = backlog.waiting.pop_front() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let peer = state.ends[end ^ 1].addr.expect("a dialing end has one");
        drop(state);
        let stream = MemoryStream {
            net: self.net.clone(),
            end,
        };
        Ok((Box::new(stream), PeerAddr::Inet(peer)))
    }

    fn register(&mut self, _registry: &Registry, token: Token) -> io::Result<()> {
        let mut state = lock(&self.net.state);
        let backlog = state.listeners.get_mut(&self.addr).expect("bound");
        backlog.token = Some(token);
        let (owner, waiting) = (backlog.owner, !backlog.waiting.is_empty());
        if let (Some(owner), true) = (owner, waiting) {
            state.ready.push((owner, token, Edges::READABLE));
        }
        Ok(())
    }

    fn deregister(&mut self, _registry: &Registry) -> io::Result<()> {
        let mut state = lock(&self.net.state);
        if let Some(backlog) = state.listeners.get_mut(&self.addr) {
            backlog.token = None;
        }
        Ok(())
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        lock(&self.net.state).unlisten(self.addr);
    }
}

/// The test's end of a connection.
#[derive(Debug)]
pub(crate) struct Remote {
    net: Arc<Net>,
    end: usize,
}

impl Remote {
    /// Writes what the pipe takes of `data` (at most one step): how much.
    /// 0 once the other end is gone or shut its reading down.
    pub(crate) fn write(&self, data: &[u8]) -> usize {
        lock(&self.net.state).write(self.end, data).unwrap_or(0)
    }

    /// Writes all of `data`, however many steps it takes; panics if the
    /// pipe fills (the loop must read in between: use [`write`](Self::write)).
    pub(crate) fn write_all(&self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = self.write(data);
            assert!(n > 0, "the pipe is full or closed");
            data = &data[n..];
        }
    }

    /// Reads everything that arrived, step by step.
    pub(crate) fn read_all(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut state = lock(&self.net.state);
        while let Ok(n @ 1..) = state.read(self.end, &mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Reads at most `max` bytes (at most one step).
    pub(crate) fn read_some(&self, max: usize) -> Vec<u8> {
        let mut buf = vec![0u8; max];
        match lock(&self.net.state).read(self.end, &mut buf) {
            Ok(n) => buf.truncate(n),
            Err(_) => buf.clear(),
        }
        buf
    }

    /// Whether the other end's write side is shut and everything before
    /// it was read: the test would read end of stream.
    pub(crate) fn at_eof(&self) -> bool {
        let state = lock(&self.net.state);
        let pipe = &state.pipes[self.end];
        pipe.closed && pipe.bytes.is_empty()
    }

    /// Whether the other end is gone (its transport dropped).
    pub(crate) fn peer_gone(&self) -> bool {
        lock(&self.net.state).ends[self.end ^ 1].gone
    }

    /// Shuts the test's write side down: the loop reads end of stream.
    pub(crate) fn shutdown_write(&self) {
        lock(&self.net.state).shutdown_write(self.end);
    }

    /// Resets the connection: the other end's next read or write fails
    /// with `ConnectionReset` and its poller reports an error.
    pub(crate) fn reset(self) {
        let mut state = lock(&self.net.state);
        let peer = self.end ^ 1;
        state.ends[peer].reset = true;
        state.edge(
            peer,
            Edges::READABLE | Edges::READ_CLOSED | Edges::WRITABLE | Edges::ERROR,
        );
        drop(state);
        drop(self);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        lock(&self.net.state).drop_end(self.end);
    }
}

/// The test's listener: where it takes the connects of a loop.
#[derive(Debug)]
pub(crate) struct RemoteListener {
    net: Arc<Net>,
    addr: SocketAddr,
}

impl RemoteListener {
    /// The next connection a loop made to it, if any.
    pub(crate) fn accept(&self) -> Option<Remote> {
        let mut state = lock(&self.net.state);
        let end = state.listeners.get_mut(&self.addr)?.waiting.pop_front()?;
        Some(Remote {
            net: self.net.clone(),
            end,
        })
    }
}

impl Drop for RemoteListener {
    fn drop(&mut self) {
        lock(&self.net.state).unlisten(self.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn bytes_go_both_ways_within_the_window_and_the_step() {
        let net = Net::new(10, 4);
        let owner = net.owner();
        let listener = net.listen(addr(1));
        let mut ours = net.connect(addr(1), owner).unwrap();
        let theirs = listener.accept().unwrap();
        ours.register(mio::Poll::new().unwrap().registry(), Token(7))
            .unwrap();
        let mut ready = Vec::new();
        net.take_ready(owner, &mut ready);
        assert_eq!(ready, [(Token(7), Edges::WRITABLE)]);
        // One step, then the window.
        assert_eq!(ours.write(b"abcdefgh").unwrap(), 4);
        assert_eq!(ours.write(b"efghijkl").unwrap(), 4);
        assert_eq!(ours.write(b"ijkl").unwrap(), 2);
        assert_eq!(
            ours.write(b"x").unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(theirs.read_all(), b"abcdefghij");
        ready.clear();
        net.take_ready(owner, &mut ready);
        assert!(ready.iter().all(|&(_, bits)| bits == Edges::WRITABLE));
        theirs.write_all(b"hello");
        net.take_ready(owner, &mut ready);
        assert!(ready.contains(&(Token(7), Edges::READABLE)));
        let mut buf = [0u8; 16];
        assert_eq!(ours.read(&mut buf).unwrap(), 4);
        assert_eq!(ours.read(&mut buf).unwrap(), 1);
        assert_eq!(
            ours.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        theirs.shutdown_write();
        assert_eq!(ours.read(&mut buf).unwrap(), 0);
        theirs.reset();
        assert_eq!(
            ours.take_error().unwrap().unwrap().kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn nothing_listening_refuses_and_a_dropped_end_reads_as_end_of_stream() {
        let net = Net::new(64, 64);
        let owner = net.owner();
        let refused = net.connect(addr(2), owner).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let mut listener = net.bind(addr(2), owner);
        let theirs = net.dial(addr(2)).unwrap();
        let (ours, peer) = listener.accept().unwrap();
        assert!(matches!(peer, PeerAddr::Inet(a) if a.port() == 40_000));
        assert!(listener.accept().is_err());
        drop(ours);
        assert!(theirs.at_eof() && theirs.peer_gone());
        assert_eq!(theirs.write(b"late"), 0);
    }
}
