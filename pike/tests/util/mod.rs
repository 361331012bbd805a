//! Helpers for loopback tests: every wait has a timeout, every port is 0.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::task::Waker;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use pike::converter::{Converter, Encoded, Serializer, WriteBuf};
use pike::converters::StringConverter;
use pike::error::SerializeError;
use pike::{Address, Connection, Connector, Delivery, Event, UnixAddr};

#[cfg(feature = "tls")]
pub mod pki;
#[cfg(feature = "tls")]
pub use pki::*;

/// The longest any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits until `progress` (bumped by a writer that blocks when its peer
/// stops reading) stays still for 300 ms, or [`WAIT`] passes; returns it.
pub fn until_stalled(progress: &std::sync::atomic::AtomicUsize) -> usize {
    use std::sync::atomic::Ordering;
    let deadline = Instant::now() + WAIT;
    let mut last = usize::MAX;
    loop {
        std::thread::park_timeout(Duration::from_millis(300));
        let now = progress.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// A loopback address with port 0.
pub fn any_local_address() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A spawned connector listening on an ephemeral loopback port.
pub fn listening<C: Converter>(converter: C) -> Connector<C> {
    Connector::builder(converter)
        .listen(any_local_address())
        .spawn()
        .expect("start a listening connector")
}

/// A spawned connector that does not listen.
pub fn client<C: Converter>(converter: C) -> Connector<C> {
    Connector::builder(converter)
        .spawn()
        .expect("start a connector")
}

/// A raw listener playing the peer, and its address.
pub fn raw_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(any_local_address()).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Accepts one connection on a raw listener, with read/write timeouts.
pub fn raw_accept(l: &TcpListener) -> TcpStream {
    l.set_nonblocking(true).unwrap();
    let s = accept_within(|| l.accept().map(|(s, _)| s));
    s.set_nonblocking(false).unwrap();
    with_timeouts(s)
}

/// Calls a non-blocking `accept` until it gives a connection; fails the
/// test after [`WAIT`].
fn accept_within<S>(mut accept: impl FnMut() -> io::Result<S>) -> S {
    let deadline = Instant::now() + WAIT;
    loop {
        match accept() {
            Ok(s) => return s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection to accept");
                std::thread::yield_now();
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A raw client socket to `addr`, with read/write timeouts.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    with_timeouts(TcpStream::connect_timeout(&addr, WAIT).expect("raw connect"))
}

pub fn with_timeouts(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// An address nothing listens on (bound, then closed at once).
pub fn dead_address() -> SocketAddr {
    let (l, addr) = raw_listener();
    drop(l);
    addr
}

/// Reads until EOF; fails on a timeout or an error.
pub fn read_to_eof(s: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Reads exactly `n` bytes.
pub fn read_exactly(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    s.read_exact(&mut out).expect("read the expected bytes");
    out
}

/// Writes `bytes` in full.
pub fn write_all(s: &mut impl Write, bytes: &[u8]) {
    s.write_all(bytes).expect("write");
}

/// The next main-queue event; fails the test after [`WAIT`].
pub fn next<C: Converter>(c: &Connector<C>) -> Event<C::Message> {
    c.recv_timeout(WAIT).expect("an event in time")
}

/// The next event of a separate connection; fails after [`WAIT`].
pub fn next_of<C: Converter>(c: &Connector<C>, conn: &Connection) -> Event<C::Message> {
    c.recv_connection_timeout(conn, WAIT)
        .expect("an event of the connection in time")
}

/// Waits for a `RemoteConnect` and accepts it.
pub fn accept<C: Converter>(c: &Connector<C>, delivery: Delivery) -> Connection
where
    C::Message: std::fmt::Debug,
{
    match next(c) {
        Event::RemoteConnect(r) => {
            let conn = r.connection;
            r.finish_accept(delivery);
            conn
        }
        other => panic!("expected RemoteConnect, got {other:?}"),
    }
}

/// Waits for a successful `FinishConnect`.
pub fn connected<C: Converter>(c: &Connector<C>) -> Connection
where
    C::Message: std::fmt::Debug,
{
    match next(c) {
        Event::FinishConnect(f) if f.success() => f.connection,
        other => panic!("expected a successful FinishConnect, got {other:?}"),
    }
}

/// The wire form of a string message.
pub fn wire(messages: &[&str]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|m| format!("{} {m}", m.len()).into_bytes())
        .collect()
}

/// Decodes string messages from a byte stream: complete ones, then the
/// number of bytes of a trailing partial one.
pub fn decode_strings(mut bytes: &[u8]) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    loop {
        let Some(space) = bytes.iter().position(|&b| b == b' ') else {
            return (out, bytes.len());
        };
        let len: usize = std::str::from_utf8(&bytes[..space])
            .unwrap()
            .parse()
            .unwrap();
        if bytes.len() < space + 1 + len {
            return (out, bytes.len());
        }
        out.push(String::from_utf8(bytes[space + 1..space + 1 + len].to_vec()).unwrap());
        bytes = &bytes[space + 1 + len..];
    }
}

/// The connector suite's pausing serializer: writes `abc`, waits for a
/// callback (handing its waker to the test), writes the message, writes
/// `123`. Messages named `panic` panic. Incoming messages are strings.
#[derive(Debug, Clone)]
pub struct Pausing {
    wakers: Sender<Waker>,
}

impl Pausing {
    /// The converter, and where its wakers arrive.
    pub fn new() -> (Self, Receiver<Waker>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Self { wakers: tx }, rx)
    }
}

/// Waits for the next waker a pausing serializer handed out and wakes it,
/// from this (non-network) thread.
pub fn wake_next(wakers: &Receiver<Waker>) {
    wakers
        .recv_timeout(WAIT)
        .expect("a serializer waiting for its callback")
        .wake();
}

#[derive(Debug)]
pub struct PausingSerializer {
    wakers: Sender<Waker>,
    step: u8,
    pos: usize,
    woken: bool,
}

impl Converter for Pausing {
    type Message = String;
    type Serializer = PausingSerializer;
    type Deserializer = <StringConverter as Converter>::Deserializer;

    fn serializer(&self, _: &String) -> PausingSerializer {
        PausingSerializer {
            wakers: self.wakers.clone(),
            step: 0,
            pos: 0,
            woken: false,
        }
    }

    fn deserializer(&self) -> Self::Deserializer {
        StringConverter::new().deserializer()
    }
}

impl Serializer for PausingSerializer {
    type Message = String;

    fn get_bytes(
        &mut self,
        message: &String,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        assert!(message != "panic", "serializer panics on purpose");
        loop {
            let part: &[u8] = match self.step {
                0 => b"abc",
                1 => message.as_bytes(),
                2 => b"123",
                _ => return Ok(Encoded::Done),
            };
            self.pos += out.put(&part[self.pos..]);
            if self.pos < part.len() {
                return Ok(Encoded::More);
            }
            if self.step == 0 && !self.woken {
                self.woken = true;
                self.step = 1;
                self.pos = 0;
                let _ = self.wakers.send(waker.clone());
                return Ok(Encoded::Pending);
            }
            self.step += 1;
            self.pos = 0;
        }
    }
}

/// A small seeded generator (xorshift64*), so stress runs can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pike-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// The names of the files in it, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a file of `size` pseudo-random bytes.
pub fn generate_file(path: &std::path::Path, size: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut left = size;
    let mut block = vec![0u8; 1 << 16];
    while left > 0 {
        for word in block.chunks_mut(8) {
            word.copy_from_slice(&rng.next().to_le_bytes()[..word.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// A digest of a file's contents and its length.
pub fn file_digest(path: &std::path::Path) -> (u64, u64) {
    use std::hash::Hasher;
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return (h.finish(), len);
        }
        h.write(&buf[..n]);
        len += n as u64;
    }
}

/// Serializes `message` with at most `room` bytes of buffer per call.
pub fn encode_with_room<C: Converter>(c: &C, message: &C::Message, room: usize) -> Vec<u8> {
    let mut s = c.serializer(message);
    let mut wire = Vec::new();
    for _ in 0..1_000_000 {
        let mut chunk = Vec::new();
        let mut out = WriteBuf::new(&mut chunk, room);
        let status = s.get_bytes(message, &mut out, Waker::noop()).unwrap();
        wire.extend_from_slice(&chunk);
        if status == Encoded::Done {
            return wire;
        }
        assert_eq!(status, Encoded::More);
    }
    panic!("serializer never finished");
}

// ----- both transports ---------------------------------------------------------

/// The transports a connector test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    Tcp,
    Unix,
    /// TLS over TCP (feature `tls`), on `::1` rather than 127.0.0.1: raw
    /// peers know from the address alone to speak TLS.
    Tls,
}

/// Defines a test that runs over TCP, over Unix domain sockets and (with
/// the `tls` feature) over TLS: a module `name` with tests `tcp`, `unix`
/// and `tls` calling the body with `net`.
#[macro_export]
macro_rules! over_transports {
    (@on [$($(#[$t:meta])* $test:ident $variant:ident),*]
     $(#[$attr:meta])* fn $name:ident($net:ident: Net) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attr])*
            fn body($net: Net) $body

            $(
                $(#[$t])*
                #[test]
                fn $test() {
                    body(Net::$variant)
                }
            )*
        }
    };
    ($(#[$attr:meta])* fn $name:ident($net:ident: Net) $body:block) => {
        $crate::over_transports! {
            @on [tcp Tcp, unix Unix, #[cfg(feature = "tls")] tls Tls]
            $(#[$attr])* fn $name($net: Net) $body
        }
    };
}

/// [`over_transports!`] without TLS, for a test whose raw peer is shared
/// by two threads (`RawPeer::try_clone`), which a TLS stream cannot be.
#[macro_export]
macro_rules! over_plain_transports {
    ($(#[$attr:meta])* fn $name:ident($net:ident: Net) $body:block) => {
        $crate::over_transports! {
            @on [tcp Tcp, unix Unix]
            $(#[$attr])* fn $name($net: Net) $body
        }
    };
}

/// A Unix socket path no other test uses (removed first if left over).
pub fn unique_socket_path() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("pike-t{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

impl Net {
    /// A fresh address to listen on: loopback port 0, or a new socket file.
    pub fn address(self) -> Address {
        match self {
            Net::Tcp => any_local_address().into(),
            Net::Unix => Address::unix(unique_socket_path()),
            Net::Tls => tls_local_address().into(),
        }
    }

    /// An address nothing listens on (a connect is refused): for Unix a
    /// socket file whose listener is gone.
    pub fn dead_address(self) -> Address {
        match self {
            Net::Tcp => dead_address().into(),
            Net::Tls => {
                let l = TcpListener::bind(tls_local_address()).unwrap();
                let addr = l.local_addr().unwrap();
                drop(l);
                addr.into()
            }
            Net::Unix => {
                let path = unique_socket_path();
                drop(UnixListener::bind(&path).unwrap());
                Address::unix(path)
            }
        }
    }
}

/// Where TLS test listeners listen (see [`Net::Tls`]).
pub fn tls_local_address() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

/// Whether a raw peer connecting to `addr` speaks TLS (see [`Net::Tls`]).
fn speaks_tls(addr: &SocketAddr) -> bool {
    cfg!(feature = "tls") && addr.ip().is_ipv6()
}

/// A builder whose connects use `net` (TLS trusting the test CA, for
/// [`Net::Tls`]).
pub fn builder_on<C: Converter>(net: Net, converter: C) -> pike::ConnectorBuilder<C> {
    let builder = Connector::builder(converter);
    match net {
        #[cfg(feature = "tls")]
        Net::Tls => builder.default_client_tls(pki().client()),
        _ => builder,
    }
}

/// A spawned connector (not listening) whose connects use `net`.
pub fn client_on<C: Converter>(net: Net, converter: C) -> Connector<C> {
    builder_on(net, converter)
        .spawn()
        .expect("start a connector")
}

/// Listening over a transport.
pub trait ListenOn {
    /// Listens on a fresh address of `net` (with the test server
    /// certificate, for [`Net::Tls`]).
    fn listen_on(self, net: Net) -> Self;
}

impl<C: Converter> ListenOn for pike::ConnectorBuilder<C> {
    fn listen_on(self, net: Net) -> Self {
        match net {
            #[cfg(feature = "tls")]
            Net::Tls => self.listen_tls(net.address(), pki().server()),
            _ => self.listen(net.address()),
        }
    }
}

/// A spawned connector listening over `net`, whose connects use it too.
pub fn listening_on<C: Converter>(net: Net, converter: C) -> Connector<C> {
    builder_on(net, converter)
        .listen_on(net)
        .spawn()
        .expect("start a listening connector")
}

/// A raw peer socket of any transport, with read/write timeouts. Over
/// TLS it is rustls on its own (not Pike); its end of stream is the
/// socket's, with or without `close_notify` (the TLS tests check that).
#[derive(Debug)]
pub enum RawPeer {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    TlsClient(Box<RawTls<pike::tls::rustls::ClientConnection>>),
    #[cfg(feature = "tls")]
    TlsServer(Box<RawTls<pike::tls::rustls::ServerConnection>>),
}

impl RawPeer {
    /// The socket under it.
    fn socket(&self) -> Socket<'_> {
        match self {
            RawPeer::Tcp(s) => Socket::Tcp(s),
            RawPeer::Unix(s) => Socket::Unix(s),
            #[cfg(feature = "tls")]
            RawPeer::TlsClient(s) => Socket::Tcp(&s.sock),
            #[cfg(feature = "tls")]
            RawPeer::TlsServer(s) => Socket::Tcp(&s.sock),
        }
    }

    fn with_timeouts(self) -> Self {
        self.set_read_timeout(Some(WAIT)).unwrap();
        match self.socket() {
            Socket::Tcp(s) => s.set_write_timeout(Some(WAIT)).unwrap(),
            Socket::Unix(s) => s.set_write_timeout(Some(WAIT)).unwrap(),
        }
        self
    }

    /// Shuts the socket down; over TLS, the write side sends
    /// `close_notify` first.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if how != Shutdown::Read {
            match self {
                RawPeer::TlsClient(s) => {
                    s.conn.send_close_notify();
                    s.flush()?;
                }
                RawPeer::TlsServer(s) => {
                    s.conn.send_close_notify();
                    s.flush()?;
                }
                _ => {}
            }
        }
        match self.socket() {
            Socket::Tcp(s) => s.shutdown(how),
            Socket::Unix(s) => s.shutdown(how),
        }
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self.socket() {
            Socket::Tcp(s) => s.set_read_timeout(timeout),
            Socket::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self.socket() {
            Socket::Tcp(s) => s.set_nonblocking(on),
            Socket::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// A second handle on the same socket (not over TLS: its state cannot
    /// be shared).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            RawPeer::Tcp(s) => RawPeer::Tcp(s.try_clone()?),
            RawPeer::Unix(s) => RawPeer::Unix(s.try_clone()?),
            #[cfg(feature = "tls")]
            _ => return Err(io::Error::other("a TLS stream cannot be cloned")),
        })
    }
}

/// The socket under a [`RawPeer`].
enum Socket<'a> {
    Tcp(&'a TcpStream),
    Unix(&'a UnixStream),
}

impl std::os::fd::AsFd for RawPeer {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self.socket() {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

/// Over TLS, the peer's end of stream without `close_notify` reads as the
/// end all the same.
#[cfg(feature = "tls")]
fn tls_eof(r: io::Result<usize>) -> io::Result<usize> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

impl Read for RawPeer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RawPeer::Tcp(s) => s.read(buf),
            RawPeer::Unix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            RawPeer::TlsClient(s) => tls_eof(s.read(buf)),
            #[cfg(feature = "tls")]
            RawPeer::TlsServer(s) => tls_eof(s.read(buf)),
        }
    }
}

impl Write for RawPeer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RawPeer::Tcp(s) => s.write(buf),
            RawPeer::Unix(s) => s.write(buf),
            #[cfg(feature = "tls")]
            RawPeer::TlsClient(s) => s.write(buf),
            #[cfg(feature = "tls")]
            RawPeer::TlsServer(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            #[cfg(feature = "tls")]
            RawPeer::TlsClient(s) => s.flush(),
            #[cfg(feature = "tls")]
            RawPeer::TlsServer(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

/// A raw connection to `addr`, with read/write timeouts: over TLS to a
/// TLS listener (see [`Net::Tls`]).
pub fn raw_connect_addr(addr: &Address) -> io::Result<RawPeer> {
    let peer = match (addr.as_socket_addr(), addr.as_unix()) {
        #[cfg(feature = "tls")]
        (Some(a), _) if speaks_tls(&a) => RawPeer::TlsClient(Box::new(raw_tls_connect(a)?)),
        (Some(a), _) => RawPeer::Tcp(TcpStream::connect_timeout(&a, WAIT)?),
        (None, Some(UnixAddr::Path(p))) => RawPeer::Unix(UnixStream::connect(p)?),
        _ => panic!("no raw connect to {addr}"),
    };
    Ok(peer.with_timeouts())
}

/// A raw connection to where `c` listens, with read/write timeouts.
pub fn raw_connect_to<C: Converter>(c: &Connector<C>) -> RawPeer {
    raw_connect_addr(&c.local_address().expect("listening")).expect("raw connect")
}

/// A raw listener of any transport playing the peer.
#[derive(Debug)]
pub enum RawListener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
    /// Accepts TLS connections (rustls on its own) on a thread of its
    /// own, handshaking at once: a client's connect then completes without
    /// waiting for the test to accept, as over TCP.
    Tls(TlsAcceptor),
}

/// The thread behind [`RawListener::Tls`].
#[derive(Debug)]
pub struct TlsAcceptor {
    accepted: Receiver<RawPeer>,
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(feature = "tls")]
impl TlsAcceptor {
    fn start(l: TcpListener) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let addr = l.local_addr().unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (tx, accepted) = crossbeam_channel::unbounded();
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for tcp in l.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = tcp else { continue };
                let tx = tx.clone();
                // Handshakes in parallel: one client that never does
                // does not hold up the next.
                std::thread::spawn(move || {
                    if let Ok(peer) = raw_tls_handshake_accepted(tcp) {
                        let _ = tx.send(RawPeer::TlsServer(Box::new(peer)));
                    }
                });
            }
        });
        Self {
            accepted,
            addr,
            stop,
        }
    }
}

impl Drop for TlsAcceptor {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the thread blocked in `accept`, which then stops.
        let _ = TcpStream::connect_timeout(&self.addr, WAIT);
    }
}

/// A raw listener over `net`, and the address to connect to.
pub fn raw_listener_on(net: Net) -> (RawListener, Address) {
    match net {
        Net::Tcp => {
            let (l, addr) = raw_listener();
            (RawListener::Tcp(l), addr.into())
        }
        Net::Unix => {
            let path = unique_socket_path();
            let l = UnixListener::bind(&path).unwrap();
            (RawListener::Unix(l, path.clone()), Address::unix(path))
        }
        #[cfg(feature = "tls")]
        Net::Tls => {
            let l = TcpListener::bind(tls_local_address()).unwrap();
            let addr = l.local_addr().unwrap();
            (RawListener::Tls(TlsAcceptor::start(l)), addr.into())
        }
        #[cfg(not(feature = "tls"))]
        Net::Tls => unreachable!("no TLS without the feature"),
    }
}

impl RawListener {
    /// Accepts one connection, with read/write timeouts.
    pub fn accept(&self) -> RawPeer {
        match self {
            RawListener::Tcp(l) => RawPeer::Tcp(raw_accept(l)),
            RawListener::Unix(l, _) => {
                l.set_nonblocking(true).unwrap();
                let s = accept_within(|| l.accept().map(|(s, _)| s));
                s.set_nonblocking(false).unwrap();
                RawPeer::Unix(s).with_timeouts()
            }
            RawListener::Tls(a) => a
                .accepted
                .recv_timeout(WAIT)
                .expect("a TLS connection accepted in time"),
        }
    }
}

impl Drop for RawListener {
    fn drop(&mut self) {
        if let RawListener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
