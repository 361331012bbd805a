//! One implementation of each measurement per system. Sender and receiver
//! run on separate threads in every system.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::RUN_LIMIT;

type Result<T> = std::result::Result<T, String>;

/// A latency run stops taking samples after this long (with at least
/// [`MIN_SAMPLES`]), so that a system with a slow round trip stays bounded.
const LATENCY_BUDGET: Duration = Duration::from_secs(5);
const MIN_SAMPLES: usize = 50;

/// Whether a latency run has enough samples for its time budget.
fn enough(started: Instant, taken: usize) -> bool {
    taken >= MIN_SAMPLES && started.elapsed() > LATENCY_BUDGET
}

/// A system under comparison.
pub(crate) trait System {
    fn name(&self) -> &'static str;
    /// Sends `count` messages of `size` bytes one way; the time from the
    /// first send to the last verified receipt.
    fn throughput(&self, size: usize, count: usize) -> Result<Duration>;
    /// `samples` ping-pong round trips of 16 bytes.
    fn latency(&self, samples: usize) -> Result<Vec<Duration>>;
    /// Whether it takes part in the latency runs.
    fn measures_latency(&self) -> bool {
        true
    }
}

pub(crate) fn all() -> Vec<Box<dyn System>> {
    let systems: Vec<Box<dyn System>> = vec![
        Box::new(Pike {
            copy: false,
            plain: true,
            tls: false,
        }),
        Box::new(Pike {
            copy: false,
            plain: false,
            tls: false,
        }),
        Box::new(Pike {
            copy: true,
            plain: false,
            tls: false,
        }),
        Box::new(Raw),
        Box::new(Tokio),
        Box::new(TokioMt),
        Box::new(MessageIo),
        Box::new(Pike {
            copy: false,
            plain: true,
            tls: true,
        }),
        Box::new(TokioTls),
    ];
    #[cfg(feature = "zmq")]
    let systems = {
        let mut systems = systems;
        systems.push(Box::new(zmq_system::Zmq));
        systems
    };
    systems
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn join<T>(h: JoinHandle<Result<T>>) -> Result<T> {
    h.join().map_err(|_| "a thread panicked".to_string())?
}

const PING: &[u8; 16] = b"0123456789abcdef";

/// A bounded number of messages in flight, as an application whose `send`
/// never blocks would keep: the sender sleeps while the window is full (a
/// sender spinning there would take a core from the threads it waits for,
/// on a two-core machine half of it).
struct Window {
    received: AtomicUsize,
    sleeping: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
}

impl Window {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            received: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            lock: Mutex::new(()),
            room: Condvar::new(),
        })
    }

    /// Receiver: `n` more messages arrived.
    fn add(&self, n: usize) -> usize {
        let total = self.received.fetch_add(n, Ordering::SeqCst) + n;
        if self.sleeping.load(Ordering::SeqCst) {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.room.notify_one();
        }
        total
    }

    /// Sender: returns once fewer than `window` of the `sent` messages are
    /// unreceived; when the window is full, sleeps until a quarter of it is
    /// free.
    fn wait(&self, sent: usize, window: usize, start: Instant) -> Result<()> {
        if sent - self.received.load(Ordering::SeqCst) < window {
            return Ok(());
        }
        let target = sent - window * 3 / 4;
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            self.sleeping.store(true, Ordering::SeqCst);
            if self.received.load(Ordering::SeqCst) >= target {
                break;
            }
            if start.elapsed() > RUN_LIMIT {
                return Err("timed out".into());
            }
            // The timeout is only a safety net: `add` wakes us.
            guard = self
                .room
                .wait_timeout(guard, Duration::from_millis(1))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        self.sleeping.store(false, Ordering::SeqCst);
        Ok(())
    }
}

// ----- Pike ----------------------------------------------------------------

/// Pike as its users write it: `pike-plain` sends with `send_waiting_for_room`
/// and receives with `recv_timeout`, one message at a time, with every
/// setting at its default (the connector's own bounds pace the sender);
/// `pike` uses `send_batch_blocking`/`recv_batch` with an application window;
/// `pike-copy` is `pike` with received messages copied out of the read
/// buffer instead of sliced from it (`BytesConverter::with_shared_read_buffer(false)`).
/// `pike-tls` is `pike-plain` over TLS.
struct Pike {
    copy: bool,
    plain: bool,
    tls: bool,
}

type PikeConnector = pike::Connector<pike::converters::BytesConverter>;

fn pike_pair(
    copy: bool,
    plain: bool,
    tls: bool,
) -> Result<(PikeConnector, PikeConnector, pike::Connection)> {
    use pike::converters::BytesConverter;
    use pike::{Connector, Delivery, Event};
    let conv = || {
        BytesConverter::new()
            .with_max_message_size(1 << 20)
            .with_shared_read_buffer(!copy)
    };
    let server = Connector::builder(conv());
    let server = if tls {
        server.listen_tls("127.0.0.1:0", crate::certs::pike_server())
    } else {
        server.listen("127.0.0.1:0")
    };
    let server = server.spawn().map_err(err)?;
    // The batch rows' window keeps up to 64 MiB in flight, in batches of
    // 256: room for it past the unsent queue's default cap (16 MiB), which
    // would hand batches back. The plain row keeps every default.
    let builder = Connector::builder(conv());
    let builder = if plain {
        builder
    } else {
        builder.send_queue_cap(128 << 20)
    };
    let builder = if tls {
        builder.default_client_tls(crate::certs::pike_client())
    } else {
        builder
    };
    let client = builder.spawn().map_err(err)?;
    let addr = server.local_addr().ok_or("not listening")?;
    let conn = client
        .connect_timeout(addr, Delivery::Merged, RUN_LIMIT)
        .map_err(err)?;
    match server.recv_timeout(RUN_LIMIT) {
        Ok(Event::RemoteConnect(r)) => r.finish_accept(Delivery::Merged),
        other => return Err(format!("expected a connection, got {other:?}")),
    }
    Ok((server, client, conn))
}

impl System for Pike {
    fn name(&self) -> &'static str {
        match (self.tls, self.plain, self.copy) {
            (true, _, _) => "pike-tls",
            (false, true, _) => "pike-plain",
            (false, false, false) => "pike",
            (false, false, true) => "pike-copy",
        }
    }

    /// A ping-pong is one message at a time whatever the row: measured once.
    fn measures_latency(&self) -> bool {
        self.plain
    }

    fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
        use pike::{Event, ShutdownMode};
        /// Messages per `send_batch` and at most per `recv_batch`.
        const BATCH: usize = 256;
        let (server, client, conn) = pike_pair(self.copy, self.plain, self.tls)?;
        if self.plain {
            return plain_throughput(server, client, conn, size, count);
        }
        let received = Window::new();
        let rx = {
            let (server, received) = (server.clone(), received.clone());
            std::thread::spawn(move || -> Result<Instant> {
                let mut events = Vec::with_capacity(BATCH);
                let mut got = 0;
                while got < count {
                    events.clear();
                    if server
                        .recv_batch(&mut events, BATCH, RUN_LIMIT)
                        .map_err(err)?
                        == 0
                    {
                        return Err("timed out".into());
                    }
                    let n = events.len();
                    for e in events.drain(..) {
                        match e {
                            Event::MessageReceived(m) if m.message.len() == size => {}
                            other => return Err(format!("unexpected {other:?}")),
                        }
                    }
                    got = received.add(n);
                }
                Ok(Instant::now())
            })
        };
        let payload = Bytes::from(vec![b'p'; size]);
        // A bounded window in flight, as an application would keep.
        let window = ((64 << 20) / size).clamp(BATCH * 4, 65_536);
        let start = Instant::now();
        let mut sent = 0;
        while sent < count {
            received.wait(sent, window, start)?;
            let n = BATCH.min(count - sent);
            client
                .send_batch_waiting_for_room(&conn, std::iter::repeat_n(payload.clone(), n))
                .map_err(|_| "stopped".to_string())?;
            sent += n;
        }
        let end = join(rx)?;
        client.shutdown(ShutdownMode::Now);
        server.shutdown(ShutdownMode::Now);
        Ok(end - start)
    }

    fn latency(&self, samples: usize) -> Result<Vec<Duration>> {
        use pike::{Event, ShutdownMode};
        let (server, client, conn) = pike_pair(self.copy, self.plain, self.tls)?;
        let echo = {
            let server = server.clone();
            std::thread::spawn(move || {
                while let Ok(e) = server.recv() {
                    if let Event::MessageReceived(m) = e {
                        let _ = server.send(&m.connection, m.message);
                    }
                }
            })
        };
        let payload = Bytes::from_static(PING);
        let mut rtts = Vec::with_capacity(samples);
        let started = Instant::now();
        for _ in 0..samples {
            if enough(started, rtts.len()) {
                break;
            }
            let t = Instant::now();
            client.send(&conn, payload.clone()).map_err(err)?;
            match client.recv_timeout(RUN_LIMIT) {
                Ok(Event::MessageReceived(m)) if m.message == payload => rtts.push(t.elapsed()),
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        client.shutdown(ShutdownMode::Now);
        server.shutdown(ShutdownMode::Now);
        let _ = echo.join();
        Ok(rtts)
    }
}

/// One message at a time each way, as the README teaches: `send_waiting_for_room`
/// (it waits while the unsent queue is over its high-water mark) and
/// `recv_timeout`.
fn plain_throughput(
    server: PikeConnector,
    client: PikeConnector,
    conn: pike::Connection,
    size: usize,
    count: usize,
) -> Result<Duration> {
    use pike::{Event, ShutdownMode};
    let rx = {
        let server = server.clone();
        std::thread::spawn(move || -> Result<Instant> {
            for _ in 0..count {
                match server.recv_timeout(RUN_LIMIT) {
                    Ok(Event::MessageReceived(m)) if m.message.len() == size => {}
                    other => return Err(format!("unexpected {other:?}")),
                }
            }
            Ok(Instant::now())
        })
    };
    let payload = Bytes::from(vec![b'p'; size]);
    let start = Instant::now();
    for _ in 0..count {
        client
            .send_waiting_for_room(&conn, payload.clone())
            .map_err(|_| "stopped".to_string())?;
    }
    let end = join(rx)?;
    client.shutdown(ShutdownMode::Now);
    server.shutdown(ShutdownMode::Now);
    Ok(end - start)
}

// ----- raw std::net with a 4-byte length prefix -----------------------------

struct Raw;

fn raw_pair() -> Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(err)?;
    let client = TcpStream::connect(l.local_addr().map_err(err)?).map_err(err)?;
    let (server, _) = l.accept().map_err(err)?;
    for s in [&client, &server] {
        s.set_nodelay(true).map_err(err)?;
        s.set_read_timeout(Some(RUN_LIMIT)).map_err(err)?;
        s.set_write_timeout(Some(RUN_LIMIT)).map_err(err)?;
    }
    Ok((client, server))
}

fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<()> {
    let mut len = [0; 4];
    r.read_exact(&mut len).map_err(err)?;
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    r.read_exact(buf).map_err(err)
}

fn write_frame(w: &mut impl Write, data: &[u8]) -> Result<()> {
    w.write_all(&(data.len() as u32).to_le_bytes())
        .map_err(err)?;
    w.write_all(data).map_err(err)
}

impl System for Raw {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
        let (client, server) = raw_pair()?;
        let rx = std::thread::spawn(move || -> Result<Instant> {
            let mut r = BufReader::with_capacity(1 << 20, server);
            let mut buf = Vec::new();
            for _ in 0..count {
                read_frame(&mut r, &mut buf)?;
                if buf.len() != size {
                    return Err("wrong size".into());
                }
            }
            Ok(Instant::now())
        });
        let payload = vec![b'r'; size];
        let start = Instant::now();
        let mut w = BufWriter::with_capacity(1 << 20, client);
        for _ in 0..count {
            write_frame(&mut w, &payload)?;
        }
        w.flush().map_err(err)?;
        Ok(join(rx)? - start)
    }

    fn latency(&self, samples: usize) -> Result<Vec<Duration>> {
        let (client, server) = raw_pair()?;
        let echo = std::thread::spawn(move || -> Result<()> {
            let mut r = BufReader::new(server.try_clone().map_err(err)?);
            let mut w = BufWriter::new(server);
            let mut buf = Vec::new();
            for _ in 0..samples {
                read_frame(&mut r, &mut buf)?;
                write_frame(&mut w, &buf)?;
                w.flush().map_err(err)?;
            }
            Ok(())
        });
        let mut r = BufReader::new(client.try_clone().map_err(err)?);
        let mut w = BufWriter::new(client);
        let mut buf = Vec::new();
        let mut rtts = Vec::with_capacity(samples);
        let started = Instant::now();
        for _ in 0..samples {
            if enough(started, rtts.len()) {
                break;
            }
            let t = Instant::now();
            write_frame(&mut w, PING)?;
            w.flush().map_err(err)?;
            read_frame(&mut r, &mut buf)?;
            if buf != PING {
                return Err("wrong echo".into());
            }
            rtts.push(t.elapsed());
        }
        // The echo side ends when the client goes; the client checked every
        // echo itself.
        drop((r, w));
        let _ = echo.join();
        Ok(rtts)
    }
}

// ----- tokio + LengthDelimitedCodec, one runtime per peer thread -------------

struct Tokio;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)
}

/// A connected std pair handed to tokio on each side.
fn tokio_stream(s: TcpStream) -> Result<tokio::net::TcpStream> {
    s.set_nonblocking(true).map_err(err)?;
    tokio::net::TcpStream::from_std(s).map_err(err)
}

impl System for Tokio {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
        let (client, server) = raw_pair()?;
        let rx = std::thread::spawn(move || -> Result<Instant> {
            runtime()?
                .block_on(async move { receive_frames(tokio_stream(server)?, size, count).await })
        });
        let start = Instant::now();
        runtime()?
            .block_on(async move { send_frames(tokio_stream(client)?, size, count).await })?;
        Ok(join(rx)? - start)
    }

    fn latency(&self, samples: usize) -> Result<Vec<Duration>> {
        let (client, server) = raw_pair()?;
        let echo = std::thread::spawn(move || -> Result<()> {
            runtime()?.block_on(async move { tokio_echo(tokio_stream(server)?, samples).await })
        });
        let rtts = runtime()?
            .block_on(async move { tokio_pings(tokio_stream(client)?, samples).await })?;
        // The client's stream is closed: the echo side ends.
        let _ = echo.join();
        Ok(rtts)
    }
}

/// Sends each frame back, `samples` times (the echo side of a round trip).
async fn tokio_echo<S>(stream: S, samples: usize) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::{Framed, LengthDelimitedCodec};
    let mut f = Framed::new(stream, LengthDelimitedCodec::new());
    for _ in 0..samples {
        let Ok(Some(Ok(m))) = tokio::time::timeout(RUN_LIMIT, f.next()).await else {
            return Err("echo: no frame".to_string());
        };
        f.send(m.freeze()).await.map_err(err)?;
    }
    Ok(())
}

/// Up to `samples` round trips of [`PING`], timed.
async fn tokio_pings<S>(stream: S, samples: usize) -> Result<Vec<Duration>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_util::codec::{Framed, LengthDelimitedCodec};
    let mut f = Framed::new(stream, LengthDelimitedCodec::new());
    let mut rtts = Vec::with_capacity(samples);
    let started = Instant::now();
    for _ in 0..samples {
        if enough(started, rtts.len()) {
            break;
        }
        let t = Instant::now();
        f.send(Bytes::from_static(PING)).await.map_err(err)?;
        match tokio::time::timeout(RUN_LIMIT, f.next()).await {
            Ok(Some(Ok(m))) if m[..] == PING[..] => rtts.push(t.elapsed()),
            _ => return Err("no echo".to_string()),
        }
    }
    Ok(rtts)
}

/// Takes `count` frames of `size` bytes from `stream`, as a tokio user
/// writes it (one timeout around the whole, not one timer per frame);
/// returns when the last came.
async fn receive_frames<R: tokio::io::AsyncRead + Unpin>(
    stream: R,
    size: usize,
    count: usize,
) -> Result<Instant> {
    use futures_util::StreamExt;
    use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
    let mut frames = FramedRead::new(stream, LengthDelimitedCodec::new());
    let all = async {
        for _ in 0..count {
            match frames.next().await {
                Some(Ok(f)) if f.len() == size => {}
                _ => return Err("missing or wrong frame".to_string()),
            }
        }
        Ok(Instant::now())
    };
    tokio::time::timeout(RUN_LIMIT, all)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// Sends `count` frames of `size` bytes to `stream`, as a tokio user
/// writes it: `feed` each, one `flush` at the end.
async fn send_frames<W: tokio::io::AsyncWrite + Unpin>(
    stream: W,
    size: usize,
    count: usize,
) -> Result<()> {
    use futures_util::SinkExt;
    use tokio_util::codec::{FramedWrite, LengthDelimitedCodec};
    let payload = Bytes::from(vec![b't'; size]);
    let mut sink = FramedWrite::new(stream, LengthDelimitedCodec::new());
    for _ in 0..count {
        sink.feed(payload.clone()).await.map_err(err)?;
    }
    SinkExt::<Bytes>::flush(&mut sink).await.map_err(err)
}

/// tokio with tokio-rustls, as its users write it: the `tokio` row over
/// TLS (each peer on its own thread with a current-thread runtime,
/// `FramedWrite`/`FramedRead` over the TLS stream).
struct TokioTls;

/// The client side of a tokio-rustls connection, its handshake done.
async fn tokio_tls_connect(
    s: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(crate::certs::client_config());
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").map_err(err)?;
    connector.connect(name, tokio_stream(s)?).await.map_err(err)
}

/// The server side of a tokio-rustls connection, its handshake done.
async fn tokio_tls_accept(
    s: TcpStream,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(crate::certs::server_config());
    acceptor.accept(tokio_stream(s)?).await.map_err(err)
}

impl System for TokioTls {
    fn name(&self) -> &'static str {
        "tokio-tls"
    }

    fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
        let (client, server) = raw_pair()?;
        let rx = std::thread::spawn(move || -> Result<Instant> {
            runtime()?.block_on(async move {
                receive_frames(tokio_tls_accept(server).await?, size, count).await
            })
        });
        // Timed from the end of the handshake, as Pike's rows are.
        let start = runtime()?.block_on(async move {
            let tls = tokio_tls_connect(client).await?;
            let start = Instant::now();
            send_frames(tls, size, count).await?;
            Ok::<_, String>(start)
        })?;
        Ok(join(rx)? - start)
    }

    fn latency(&self, samples: usize) -> Result<Vec<Duration>> {
        let (client, server) = raw_pair()?;
        let echo = std::thread::spawn(move || -> Result<()> {
            runtime()?
                .block_on(async move { tokio_echo(tokio_tls_accept(server).await?, samples).await })
        });
        let rtts = runtime()?.block_on(async move {
            tokio_pings(tokio_tls_connect(client).await?, samples).await
        })?;
        let _ = echo.join();
        Ok(rtts)
    }
}

/// tokio as most of its users run it: one multi-thread runtime (two
/// workers, for this machine's two cores) with a task for each peer.
struct TokioMt;

impl System for TokioMt {
    fn name(&self) -> &'static str {
        "tokio-mt"
    }

    /// The current-thread row measures the round trip.
    fn measures_latency(&self) -> bool {
        false
    }

    fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(err)?;
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(err)?;
            let addr = listener.local_addr().map_err(err)?;
            let rx = tokio::spawn(async move {
                let (stream, _) = listener.accept().await.map_err(err)?;
                let _ = stream.set_nodelay(true);
                receive_frames(stream, size, count).await
            });
            let stream = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
            let _ = stream.set_nodelay(true);
            let start = Instant::now();
            let tx = tokio::spawn(send_frames(stream, size, count));
            tx.await.map_err(err)??;
            let end = rx.await.map_err(err)??;
            Ok(end - start)
        })
    }

    fn latency(&self, _samples: usize) -> Result<Vec<Duration>> {
        Err("not measured".into())
    }
}

// ----- message-io FramedTcp ------------------------------------------------------

struct MessageIo;

/// A message-io node listening, and one connected to it; events of each go
/// to the given callbacks on their own threads.
struct MioPair {
    server: message_io::node::NodeHandler<()>,
    client: message_io::node::NodeHandler<()>,
    endpoint: message_io::network::Endpoint,
    _tasks: Vec<message_io::node::NodeTask>,
}

fn mio_pair(
    mut on_server_message: impl FnMut(
        &message_io::node::NodeHandler<()>,
        message_io::network::Endpoint,
        &[u8],
    ) + Send
    + 'static,
    mut on_client_message: impl FnMut(&[u8]) + Send + 'static,
) -> Result<MioPair> {
    use message_io::network::{NetEvent, Transport};
    use message_io::node::{self, NodeEvent};
    let (server, server_events) = node::split::<()>();
    let (_, addr) = server
        .network()
        .listen(Transport::FramedTcp, "127.0.0.1:0")
        .map_err(err)?;
    let handler = server.clone();
    let server_task = server_events.for_each_async(move |e| {
        if let NodeEvent::Network(NetEvent::Message(endpoint, data)) = e {
            on_server_message(&handler, endpoint, data);
        }
    });
    let (client, client_events) = node::split::<()>();
    let (connected_tx, connected) = crossbeam_channel::bounded(1);
    let (endpoint, _) = client
        .network()
        .connect(Transport::FramedTcp, addr)
        .map_err(err)?;
    let client_task = client_events.for_each_async(move |e| match e {
        NodeEvent::Network(NetEvent::Connected(_, ok)) => {
            let _ = connected_tx.send(ok);
        }
        NodeEvent::Network(NetEvent::Message(_, data)) => on_client_message(data),
        _ => {}
    });
    match connected.recv_timeout(RUN_LIMIT) {
        Ok(true) => {}
        _ => return Err("message-io did not connect".into()),
    }
    Ok(MioPair {
        server,
        client,
        endpoint,
        _tasks: vec![server_task, client_task],
    })
}

impl Drop for MioPair {
    fn drop(&mut self) {
        self.server.stop();
        self.client.stop();
    }
}

impl System for MessageIo {
    fn name(&self) -> &'static str {
        "message-io"
    }

    fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
        use message_io::network::SendStatus;
        let received = Window::new();
        let wrong = Arc::new(AtomicUsize::new(0));
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let pair = {
            let (received, wrong) = (received.clone(), wrong.clone());
            mio_pair(
                move |_, _, data| {
                    if data.len() != size {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    if received.add(1) == count {
                        let _ = done_tx.send(Instant::now());
                    }
                },
                |_| {},
            )?
        };
        let payload = vec![b'm'; size];
        let window = ((64 << 20) / size).clamp(64, 65_536);
        let start = Instant::now();
        for sent in 0..count {
            received.wait(sent, window, start)?;
            match pair.client.network().send(pair.endpoint, &payload) {
                SendStatus::Sent => {}
                other => return Err(format!("send: {other:?}")),
            }
        }
        let end = done.recv_timeout(RUN_LIMIT).map_err(err)?;
        if wrong.load(Ordering::Relaxed) > 0 {
            return Err("wrong sizes".into());
        }
        Ok(end - start)
    }

    fn latency(&self, samples: usize) -> Result<Vec<Duration>> {
        let (echo_tx, echoes) = crossbeam_channel::unbounded::<Vec<u8>>();
        let pair = mio_pair(
            |handler, endpoint, data| {
                handler.network().send(endpoint, data);
            },
            move |data| {
                let _ = echo_tx.send(data.to_vec());
            },
        )?;
        let mut rtts = Vec::with_capacity(samples);
        let started = Instant::now();
        for _ in 0..samples {
            if enough(started, rtts.len()) {
                break;
            }
            let t = Instant::now();
            pair.client.network().send(pair.endpoint, PING);
            match echoes.recv_timeout(RUN_LIMIT) {
                Ok(m) if m == PING => rtts.push(t.elapsed()),
                _ => return Err("no echo".into()),
            }
        }
        Ok(rtts)
    }
}

// ----- ZeroMQ: PUSH/PULL and REQ/REP ----------------------------------------------

#[cfg(feature = "zmq")]
mod zmq_system {
    use super::*;

    pub(crate) struct Zmq;

    fn bound(ctx: &zmq::Context, kind: zmq::SocketType) -> Result<(zmq::Socket, String)> {
        let s = ctx.socket(kind).map_err(err)?;
        s.set_rcvtimeo(RUN_LIMIT.as_millis() as i32).map_err(err)?;
        s.set_sndtimeo(RUN_LIMIT.as_millis() as i32).map_err(err)?;
        s.bind("tcp://127.0.0.1:*").map_err(err)?;
        let endpoint = s
            .get_last_endpoint()
            .map_err(err)?
            .map_err(|_| "endpoint".to_string())?;
        Ok((s, endpoint))
    }

    impl System for Zmq {
        fn name(&self) -> &'static str {
            "zmq"
        }

        fn throughput(&self, size: usize, count: usize) -> Result<Duration> {
            let ctx = zmq::Context::new();
            let (pull, endpoint) = bound(&ctx, zmq::PULL)?;
            let rx = std::thread::spawn(move || -> Result<Instant> {
                for _ in 0..count {
                    let m = pull.recv_bytes(0).map_err(err)?;
                    if m.len() != size {
                        return Err("wrong size".into());
                    }
                }
                Ok(Instant::now())
            });
            let push = ctx.socket(zmq::PUSH).map_err(err)?;
            push.set_sndtimeo(RUN_LIMIT.as_millis() as i32)
                .map_err(err)?;
            push.connect(&endpoint).map_err(err)?;
            let payload = vec![b'z'; size];
            let start = Instant::now();
            for _ in 0..count {
                push.send(&payload[..], 0).map_err(err)?;
            }
            Ok(join(rx)? - start)
        }

        fn latency(&self, samples: usize) -> Result<Vec<Duration>> {
            let ctx = zmq::Context::new();
            let (rep, endpoint) = bound(&ctx, zmq::REP)?;
            let echo = std::thread::spawn(move || -> Result<()> {
                for _ in 0..samples {
                    let m = rep.recv_bytes(0).map_err(err)?;
                    rep.send(&m[..], 0).map_err(err)?;
                }
                Ok(())
            });
            let req = ctx.socket(zmq::REQ).map_err(err)?;
            req.set_rcvtimeo(RUN_LIMIT.as_millis() as i32)
                .map_err(err)?;
            req.connect(&endpoint).map_err(err)?;
            let mut rtts = Vec::with_capacity(samples);
            let started = Instant::now();
            for _ in 0..samples {
                if enough(started, rtts.len()) {
                    break;
                }
                let t = Instant::now();
                req.send(&PING[..], 0).map_err(err)?;
                let m = req.recv_bytes(0).map_err(err)?;
                if m != PING {
                    return Err("wrong echo".into());
                }
                rtts.push(t.elapsed());
            }
            // Ending the context ends the echo's blocked receive.
            drop(req);
            drop(ctx);
            let _ = echo.join();
            Ok(rtts)
        }
    }
}
