//! `Connector`: the original's hub, over the Rust core.
//!
//! The converter picks the core's message type, so the Python class holds a
//! type-erased [`Engine`], implemented once for every converter that can
//! cross into Python ([`Bridge`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pike::converters::{
    BoolConverter, DEFAULT_MAX_MESSAGE_SIZE, FileConverter as RustFileConverter, FloatConverter,
    IntConverter, StringConverter, VecConverter,
};
use pike::error::{ConnectError, RecvTimeoutError, SendTimeoutError, TrySendError};
use pike::{
    Address, ConnectOptions, Connection as RustConnection, Delivery, DisconnectMode, Reconnect,
    ShutdownMode,
};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::events::{Connection, Peer, Registry, event_to_py};
use crate::primitives::{Bridge, FileConverter, Kind, PrimitiveConverter};
use crate::pyconv::PyConverter;

/// How often a blocked call wakes to let Python handle signals (Ctrl-C).
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

pyo3::create_exception!(
    pike,
    ConnectorStopped,
    pyo3::exceptions::PyException,
    "The connector has stopped: the message passed to `send` comes back as `args[0]`."
);

/// What the Python class asks of a connector of any message type.
trait Engine: Send + Sync {
    fn spawn(&self) -> PyResult<()>;
    fn is_stopped(&self) -> bool;
    fn local_address(&self) -> Option<Address>;
    fn connect(&self, addr: Address, options: ConnectOptions) -> PyResult<RustConnection>;
    /// Blocks (the GIL released) until connected, failed or `timeout`;
    /// `on_success` runs before any event of the connection is delivered.
    fn connect_waiting(
        &self,
        py: Python<'_>,
        addr: Address,
        options: ConnectOptions,
        timeout: Duration,
        on_success: &mut (dyn FnMut(RustConnection) + Send),
    ) -> Result<RustConnection, ConnectError>;
    fn send(&self, connection: RustConnection, message: &Bound<'_, PyAny>) -> PyResult<()>;
    /// Waits (the GIL released) for room under the high-water mark; false
    /// if `timeout` passed first, or at once when `timeout` is zero.
    fn send_waiting(
        &self,
        connection: RustConnection,
        message: &Bound<'_, PyAny>,
        timeout: Option<Duration>,
    ) -> PyResult<bool>;
    fn disconnect(&self, connection: RustConnection, mode: DisconnectMode);
    fn merge(&self, connection: RustConnection);
    fn shutdown(&self, mode: ShutdownMode);
    /// The next event of the main queue, or of `connection`'s own queue.
    fn recv(
        &self,
        py: Python<'_>,
        connection: Option<RustConnection>,
        timeout: Option<Duration>,
        registry: &Registry,
    ) -> PyResult<Option<Py<PyAny>>>;
    fn memory_in_use(&self) -> usize;
}

struct Typed<C: Bridge> {
    connector: pike::Connector<C>,
    converter: C,
}

impl<C: Bridge> Engine for Typed<C> {
    fn spawn(&self) -> PyResult<()> {
        self.connector
            .spawn()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }

    fn is_stopped(&self) -> bool {
        self.connector.is_stopped()
    }

    fn local_address(&self) -> Option<Address> {
        self.connector.local_address()
    }

    fn connect(&self, addr: Address, options: ConnectOptions) -> PyResult<RustConnection> {
        self.connector
            .connect(addr, options)
            .map_err(|_| ConnectorStopped::new_err(()))
    }

    fn connect_waiting(
        &self,
        py: Python<'_>,
        addr: Address,
        options: ConnectOptions,
        timeout: Duration,
        on_success: &mut (dyn FnMut(RustConnection) + Send),
    ) -> Result<RustConnection, ConnectError> {
        py.detach(|| {
            self.connector
                .connect_timeout_with(addr, options, timeout, on_success)
        })
    }

    fn send(&self, connection: RustConnection, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = self.converter.message_of(message)?;
        self.connector
            .send(&connection, value)
            .map_err(|_| stopped(message))
    }

    fn send_waiting(
        &self,
        connection: RustConnection,
        message: &Bound<'_, PyAny>,
        timeout: Option<Duration>,
    ) -> PyResult<bool> {
        let py = message.py();
        // Room now: taken without giving up the GIL.
        let mut value = match self
            .connector
            .try_send(&connection, self.converter.message_of(message)?)
        {
            Ok(()) => return Ok(true),
            Err(TrySendError::Full(back)) if timeout != Some(Duration::ZERO) => back,
            Err(TrySendError::Full(_)) => return Ok(false),
            Err(TrySendError::Stopped(_)) => return Err(stopped(message)),
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                None => SIGNAL_CHECK,
                Some(d) => d
                    .saturating_duration_since(Instant::now())
                    .min(SIGNAL_CHECK),
            };
            match py.detach(|| self.connector.send_timeout(&connection, value, wait)) {
                Ok(()) => return Ok(true),
                Err(SendTimeoutError::Timeout(back)) => value = back,
                Err(SendTimeoutError::Stopped(_)) => return Err(stopped(message)),
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
    }

    fn disconnect(&self, connection: RustConnection, mode: DisconnectMode) {
        self.connector.disconnect(&connection, mode);
    }

    fn merge(&self, connection: RustConnection) {
        self.connector.merge_connection(&connection);
    }

    fn shutdown(&self, mode: ShutdownMode) {
        self.connector.shutdown(mode);
    }

    fn recv(
        &self,
        py: Python<'_>,
        connection: Option<RustConnection>,
        timeout: Option<Duration>,
        registry: &Registry,
    ) -> PyResult<Option<Py<PyAny>>> {
        let take = |wait: Duration| match &connection {
            None => self.connector.recv_timeout(wait),
            Some(c) => self.connector.recv_connection_timeout(c, wait),
        };
        // An event already waiting is taken without giving up the GIL.
        let mut outcome = take(Duration::ZERO);
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match outcome {
                // A reconnecting connection's link going and coming back
                // is not an event of the original API: it is not told.
                Ok(pike::Event::LinkDown(_) | pike::Event::LinkUp(_)) => {}
                Ok(event) => return event_to_py::<C>(py, event, registry).map(Some),
                Err(RecvTimeoutError::Stopped | RecvTimeoutError::Closed) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {}
            }
            py.check_signals()?;
            let wait = match deadline {
                None => SIGNAL_CHECK,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(SIGNAL_CHECK)
                }
            };
            outcome = py.detach(|| take(wait));
        }
    }

    fn memory_in_use(&self) -> usize {
        self.connector.memory_in_use()
    }
}

/// `ConnectorStopped`, carrying the message `send` was given.
fn stopped(message: &Bound<'_, PyAny>) -> PyErr {
    ConnectorStopped::new_err((message.clone().unbind(),))
}

/// The hub through which connections are made and messages sent and
/// received; thread-safe. See the package documentation.
#[pyclass(module = "pike", name = "Connector", frozen)]
pub(crate) struct PyConnector {
    engine: Arc<dyn Engine>,
    registry: Arc<Registry>,
}

static SERIALS: AtomicU64 = AtomicU64::new(1);

/// Settings of the Rust core a Python caller may change.
#[derive(Debug)]
struct Limits {
    memory_budget: Option<usize>,
    connect_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

fn build<C: Bridge>(
    converter: C,
    listen: Option<Address>,
    limits: &Limits,
) -> PyResult<Arc<dyn Engine>> {
    let mut builder = pike::Connector::builder(converter.clone());
    if let Some(addr) = listen {
        builder = builder.listen(addr);
    }
    if let Some(bytes) = limits.memory_budget {
        builder = builder.memory_budget(bytes);
    }
    if let Some(timeout) = limits.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    if let Some(timeout) = limits.idle_timeout {
        builder = builder.idle_timeout(timeout);
    }
    let connector = builder
        .build()
        .map_err(|e| PyOSError::new_err(format!("cannot listen: {e}")))?;
    Ok(Arc::new(Typed {
        connector,
        converter,
    }))
}

fn seconds(secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| PyValueError::new_err(format!("{secs} is not a duration in seconds")))
}

/// `host` and `port` as a core address: `''` is this machine, and a
/// `host` with no port is a whole address (`"unix:/path"`, `"host:port"`).
fn address(host: &str, port: Option<u16>, empty_host: &str) -> Address {
    match port {
        None => Address::from(host),
        Some(port) => {
            let host = if host.is_empty() { empty_host } else { host };
            Address::from((host, port))
        }
    }
}

/// What `Connection.address()` answers for a connection made to `host`
/// (and `port`): as given, or split from a whole address.
fn peer_of(host: &str, port: Option<u16>) -> Peer {
    if let Some(port) = port {
        return Peer::Inet(host.to_owned(), port);
    }
    if let Some(path) = host.strip_prefix("unix:") {
        return Peer::Unix(Some(path.to_owned()));
    }
    match host.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((h, Ok(port))) => Peer::Inet(h.trim_matches(['[', ']']).to_owned(), port),
        _ => Peer::Unix(None),
    }
}

#[pymethods]
impl PyConnector {
    /// A connector speaking `converter`'s protocol; with `port`, it listens
    /// there (on every IPv4 interface, or on `host`; port 0 picks a free
    /// port, see `port()`). `address` listens on any Pike address instead,
    /// such as `"unix:/run/app.sock"`. Nothing moves until `run()`.
    #[new]
    #[pyo3(signature = (converter, port = None, *, host = "", address = None, memory_budget = None, connect_timeout = None, idle_timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        converter: &Bound<'_, PyAny>,
        port: Option<u16>,
        host: &str,
        address: Option<&str>,
        memory_budget: Option<usize>,
        connect_timeout: Option<f64>,
        idle_timeout: Option<f64>,
    ) -> PyResult<Self> {
        let listen = match (address, port) {
            (Some(addr), None) => Some(Address::from(addr)),
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err("give a port or an address, not both"));
            }
            (None, Some(port)) => Some(self::address(host, Some(port), "0.0.0.0")),
            (None, None) => None,
        };
        let limits = Limits {
            memory_budget,
            connect_timeout: connect_timeout.map(seconds).transpose()?,
            idle_timeout: idle_timeout.map(seconds).transpose()?,
        };
        let engine = if let Ok(p) = converter.cast::<PrimitiveConverter>() {
            let p = p.get();
            let max = p.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
            match p.kind {
                Kind::Bool => build(BoolConverter, listen, &limits)?,
                Kind::Int => build(IntConverter, listen, &limits)?,
                Kind::Float => build(FloatConverter, listen, &limits)?,
                Kind::String => build(
                    StringConverter::new().with_max_message_size(max),
                    listen,
                    &limits,
                )?,
                Kind::Bytes => build(
                    VecConverter::new().with_max_message_size(max),
                    listen,
                    &limits,
                )?,
            }
        } else if let Ok(f) = converter.cast::<FileConverter>() {
            let c = RustFileConverter::new(f.get().save_directory.clone());
            build(c, listen, &limits)?
        } else if converter.hasattr("get_serializer")? && converter.hasattr("get_deserializer")? {
            build(
                PyConverter::start(converter.clone().unbind())?,
                listen,
                &limits,
            )?
        } else {
            return Err(PyTypeError::new_err(
                "a converter needs get_serializer(data) and get_deserializer() \
                 (or use Primitives.*_CONVERTER or FileConverter)",
            ));
        };
        Ok(Self {
            engine,
            registry: Arc::new(Registry::new(SERIALS.fetch_add(1, Ordering::Relaxed))),
        })
    }

    /// Starts the connector. With `block=True` (the default) the call
    /// returns only once the connector has shut down (Ctrl-C raises
    /// `KeyboardInterrupt` in it, and the connector keeps running); with
    /// `block=False` it returns at once and a network thread runs it.
    #[pyo3(signature = (block = true))]
    fn run(&self, py: Python<'_>, block: bool) -> PyResult<()> {
        self.engine.spawn()?;
        if block {
            while !self.engine.is_stopped() {
                py.detach(|| std::thread::sleep(SIGNAL_CHECK));
                py.check_signals()?;
            }
        }
        Ok(())
    }

    /// The port the connector listens on, or `None`.
    fn port(&self) -> Option<u16> {
        self.engine
            .local_address()
            .and_then(|a| a.as_socket_addr())
            .map(|a| a.port())
    }

    /// Where the connector listens, as an address string, or `None`.
    fn local_address(&self) -> Option<String> {
        self.engine.local_address().map(|a| a.to_string())
    }

    /// The old name of `local_address` (a `DeprecationWarning`).
    fn listen_address(&self, py: Python<'_>) -> PyResult<Option<String>> {
        deprecated(py, c"listen_address is renamed local_address")?;
        Ok(self.local_address())
    }

    /// Whether the connector has shut down completely.
    fn is_stopped(&self) -> bool {
        self.engine.is_stopped()
    }

    /// Bytes held now for received messages not yet taken and input not
    /// yet decoded (bounded by `memory_budget`).
    fn memory_in_use(&self) -> usize {
        self.engine.memory_in_use()
    }

    /// Starts connecting to `host`:`port` and returns the `Connection` at
    /// once; a `FinishConnectEvent` follows. Messages sent meanwhile are
    /// written once connected, or come back in that event. With
    /// `separate=True` its events go to `recv_connection`. With no `port`,
    /// `host` is a whole address (`"unix:/path"`). `reconnect` (`True`, or
    /// a `Reconnect`) tries again while connecting fails.
    #[pyo3(signature = (host, port = None, separate = false, reconnect = None))]
    fn connect(
        &self,
        py: Python<'_>,
        host: &str,
        port: Option<u16>,
        separate: bool,
        reconnect: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Connection>> {
        let options = options(separate, reconnect)?;
        let id = self
            .engine
            .connect(address(host, port, "127.0.0.1"), options)?
            .id();
        self.registry.insert(id, peer_of(host, port));
        self.registry.connection(py, id, false)
    }

    /// Connects and waits (at most `timeout` seconds) for the outcome;
    /// returns `(connection, success)`. No `FinishConnectEvent` is made.
    /// `callback(connection, success)` runs before any event of the
    /// connection is delivered.
    #[pyo3(signature = (host, port = None, separate = false, callback = None, timeout = 10.0, reconnect = None))]
    #[allow(clippy::too_many_arguments)]
    fn connect_waiting(
        &self,
        py: Python<'_>,
        host: &str,
        port: Option<u16>,
        separate: bool,
        callback: Option<Py<PyAny>>,
        timeout: f64,
        reconnect: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(Py<Connection>, bool)> {
        let options = options(separate, reconnect)?;
        let mut failure: Option<PyErr> = None;
        let registry = &self.registry;
        let mut on_success = |c: RustConnection| {
            registry.insert(c.id(), peer_of(host, port));
            if let Some(callback) = &callback {
                Python::attach(|py| {
                    let called = registry
                        .connection(py, c.id(), false)
                        .and_then(|connection| callback.call1(py, (connection, true)));
                    if let Err(e) = called {
                        failure = Some(e);
                    }
                });
            }
        };
        let outcome = self.engine.connect_waiting(
            py,
            address(host, port, "127.0.0.1"),
            options,
            seconds(timeout)?,
            &mut on_success,
        );
        if let Some(e) = failure {
            return Err(e);
        }
        // A failed connect has no connection; the original API hands back
        // one all the same: the stranger (id 0), closed, with the peer's
        // address.
        let (connection, success) = match outcome {
            Ok(connection) => (connection, true),
            Err(ConnectError::Stopped) => return Err(ConnectorStopped::new_err(())),
            Err(_) => (RustConnection::from_id(0), false),
        };
        let object = if success {
            self.registry.connection(py, connection.id(), false)?
        } else {
            self.registry.insert(connection.id(), peer_of(host, port));
            self.registry.connection(py, connection.id(), true)?
        };
        if !success && let Some(callback) = &callback {
            callback.call1(py, (object.clone_ref(py), false))?;
        }
        Ok((object, success))
    }

    /// Closes `connection`: at once (`now=True`, the message being written
    /// and the queue come back), after the message being written
    /// (`finish_message=True`, the queue comes back), or after every queued
    /// message (the default). A `FinishDisconnectEvent` follows.
    #[pyo3(signature = (connection, now = false, finish_message = false, finish_queue = true))]
    fn disconnect(
        &self,
        connection: &Connection,
        now: bool,
        finish_message: bool,
        finish_queue: bool,
    ) {
        let _ = finish_queue;
        let mode = if now {
            DisconnectMode::Now
        } else if finish_message {
            DisconnectMode::FinishMessage
        } else {
            DisconnectMode::FinishQueue
        };
        self.engine.disconnect(self.own(connection), mode);
    }

    /// Enqueues `message` for `connection`; never waits for the network.
    /// If the connection is disconnecting or gone, the message comes back
    /// in a `RejectedMessageEvent`. Raises `ConnectorStopped` (carrying the
    /// message) once the connector has stopped.
    fn send(&self, connection: &Connection, message: &Bound<'_, PyAny>) -> PyResult<()> {
        self.engine.send(self.own(connection), message)
    }

    /// `send`, for a producer that should go at its peer's pace: while the
    /// connection's unsent queue is over its high-water mark (the peer
    /// reads slowly), waits until it is down to half of it. Returns `True`
    /// once enqueued, `False` if `timeout` seconds passed first (the
    /// message was not taken).
    #[pyo3(signature = (connection, message, timeout = None))]
    fn send_waiting_for_room(
        &self,
        connection: &Connection,
        message: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let timeout = timeout.map(seconds).transpose()?;
        self.engine
            .send_waiting(self.own(connection), message, timeout)
    }

    /// The old name of `send_waiting_for_room` (a `DeprecationWarning`).
    #[pyo3(signature = (connection, message, timeout = None))]
    fn send_blocking(
        &self,
        py: Python<'_>,
        connection: &Connection,
        message: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        deprecated(py, c"send_blocking is renamed send_waiting_for_room")?;
        self.send_waiting_for_room(connection, message, timeout)
    }

    /// `send` unless the connection's unsent queue is over its high-water
    /// mark: then returns `False` at once, the message not taken.
    fn try_send(&self, connection: &Connection, message: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.engine
            .send_waiting(self.own(connection), message, Some(Duration::ZERO))
    }

    /// The next event; blocks until one comes. `None` once the connector
    /// has stopped and every event was taken, or when `timeout` (seconds)
    /// passes first. Any number of threads may wait at once; each event
    /// goes to one of them.
    #[pyo3(signature = (timeout = None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        let timeout = timeout.map(seconds).transpose()?;
        self.engine.recv(py, None, timeout, &self.registry)
    }

    /// The next event of a connection accepted or connected with
    /// `separate=True`. `None` once its events are merged into `recv`, or
    /// gone, or when `timeout` passes first.
    #[pyo3(signature = (connection, timeout = None))]
    fn recv_connection(
        &self,
        py: Python<'_>,
        connection: &Connection,
        timeout: Option<f64>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let timeout = timeout.map(seconds).transpose()?;
        self.engine
            .recv(py, Some(self.own(connection)), timeout, &self.registry)
    }

    /// From now on, `connection`'s events go to `recv`, those still queued
    /// first; threads in `recv_connection` for it return `None`.
    fn merge_connection(&self, connection: &Connection) {
        self.engine.merge(self.own(connection));
    }

    /// Refuses new connections, cancels those connecting, closes the others
    /// (`now`, `finish_messages` or `finish_queues`, as `disconnect` does)
    /// and returns once all are closed. Events produced before the end are
    /// still delivered; then `recv()` returns `None`. Ctrl-C interrupts the
    /// wait (the shutdown goes on).
    #[pyo3(signature = (now = false, finish_messages = false, finish_queues = true))]
    fn shutdown(
        &self,
        py: Python<'_>,
        now: bool,
        finish_messages: bool,
        finish_queues: bool,
    ) -> PyResult<()> {
        let _ = finish_queues;
        let mode = if now {
            ShutdownMode::Now
        } else if finish_messages {
            ShutdownMode::FinishMessage
        } else {
            ShutdownMode::FinishQueue
        };
        // On a thread of its own, so that this thread can wake for signals.
        let (done, finished) = crossbeam_channel::bounded::<()>(1);
        let engine = self.engine.clone();
        std::thread::Builder::new()
            .name("pike-shutdown".into())
            .spawn(move || {
                engine.shutdown(mode);
                drop(done);
            })
            .map_err(|e| PyOSError::new_err(e.to_string()))?;
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            py.detach(|| finished.recv_timeout(SIGNAL_CHECK))
        {
            py.check_signals()?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        match self.engine.local_address() {
            Some(a) => format!("<pike.Connector listening on {a}>"),
            None => "<pike.Connector>".to_owned(),
        }
    }
}

impl PyConnector {
    /// The core's connection; one of another connector maps to id 0,
    /// which no connector gives out (an unknown connection: what the core
    /// does with it is what the original did with a stranger's).
    fn own(&self, connection: &Connection) -> RustConnection {
        if connection.serial == self.registry.serial {
            RustConnection::from_id(connection.id)
        } else {
            RustConnection::from_id(0)
        }
    }
}

fn delivery(separate: bool) -> Delivery {
    if separate {
        Delivery::Separate
    } else {
        Delivery::Merged
    }
}

/// A connect's options: its delivery, and `reconnect` (`None` or `False`:
/// none; `True`: the defaults; or a `Reconnect`).
fn options(separate: bool, reconnect: Option<&Bound<'_, PyAny>>) -> PyResult<ConnectOptions> {
    let options = ConnectOptions::from(delivery(separate));
    let Some(reconnect) = reconnect.filter(|r| !r.is_none()) else {
        return Ok(options);
    };
    if let Ok(policy) = reconnect.cast::<PyReconnect>() {
        return Ok(options.reconnect(policy.get().policy));
    }
    match reconnect.extract::<bool>() {
        Ok(true) => Ok(options.reconnect(Reconnect::new())),
        Ok(false) => Ok(options),
        Err(_) => Err(PyTypeError::new_err(
            "reconnect is True, False, None or a pike.Reconnect",
        )),
    }
}

/// How a connect tries again when it fails: waits from `min` to `max`
/// seconds (doubling, with a random part), giving up `give_up_after`
/// seconds after the first attempt (`None`: never). Connections keep their
/// `Connection` and their unsent messages through the attempts; only the
/// last failure makes a `FinishConnectEvent`.
#[pyclass(name = "Reconnect", module = "pike", frozen)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct PyReconnect {
    policy: Reconnect,
}

#[pymethods]
impl PyReconnect {
    #[new]
    #[pyo3(signature = (min = 0.1, max = 10.0, give_up_after = None))]
    fn new(min: f64, max: f64, give_up_after: Option<f64>) -> PyResult<Self> {
        let mut policy = Reconnect::new().min(seconds(min)?).max(seconds(max)?);
        if let Some(limit) = give_up_after {
            policy = policy.give_up_after(seconds(limit)?);
        }
        Ok(Self { policy })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.policy)
    }
}

/// Warns that an old name was used.
fn deprecated(py: Python<'_>, message: &std::ffi::CStr) -> PyResult<()> {
    let category = py.get_type::<pyo3::exceptions::PyDeprecationWarning>();
    PyErr::warn(py, &category, message, 1)
}
