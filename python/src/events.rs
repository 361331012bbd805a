//! `Connection` and the six event classes, with the original's accessors.

use std::collections::HashMap;
use std::sync::Mutex;

use pike::event::RemoteConnect;
use pike::{Delivery, Event as RustEvent, PeerAddr, UnixAddr};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::primitives::Bridge;

/// Where a connection goes, as `Connection.address()` returns it.
#[derive(Debug, Clone)]
pub(crate) enum Peer {
    Inet(String, u16),
    Unix(Option<String>),
}

impl Peer {
    pub(crate) fn of(addr: &PeerAddr) -> Self {
        match addr {
            PeerAddr::Unix(path) => Peer::Unix(path.as_ref().map(|p| match p {
                UnixAddr::Path(path) => path.to_string_lossy().into_owned(),
                UnixAddr::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
                other => other.to_string(),
            })),
            other => match other.as_socket_addr() {
                Some(sa) => Peer::Inet(sa.ip().to_string(), sa.port()),
                None => Peer::Unix(None),
            },
        }
    }
}

/// A connector's live connections: their addresses, and the one
/// `Connection` object each is given to Python as (made once, so that an
/// event costs no new object for it).
#[derive(Debug)]
pub(crate) struct Registry {
    /// Tells connections of different connectors apart.
    pub(crate) serial: u64,
    live: Mutex<HashMap<u64, Live>>,
}

#[derive(Debug)]
struct Live {
    peer: Option<Peer>,
    object: Option<Py<Connection>>,
}

impl Registry {
    pub(crate) fn new(serial: u64) -> Self {
        Self {
            serial,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn insert(&self, id: u64, peer: Peer) {
        let old = self.lock().insert(
            id,
            Live {
                peer: Some(peer),
                object: None,
            },
        );
        drop(old);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Connection` object of `id`; `forget` once its last event is out.
    pub(crate) fn connection(
        &self,
        py: Python<'_>,
        id: u64,
        forget: bool,
    ) -> PyResult<Py<Connection>> {
        let (peer, object) = {
            let mut live = self.lock();
            if forget {
                match live.remove(&id) {
                    Some(l) => (l.peer, l.object),
                    None => (None, None),
                }
            } else {
                match live.get(&id) {
                    Some(Live {
                        object: Some(o), ..
                    }) => return Ok(o.clone_ref(py)),
                    Some(l) => (l.peer.clone(), None),
                    None => (None, None),
                }
            }
        };
        if let Some(object) = object {
            return Ok(object);
        }
        let object = Py::new(
            py,
            Connection {
                serial: self.serial,
                id,
                peer,
            },
        )?;
        if !forget && let Some(l) = self.lock().get_mut(&id) {
            l.object = Some(object.clone_ref(py));
        }
        Ok(object)
    }
}

/// A connection to an endpoint: an opaque, hashable id. Connections from
/// events of the same socket compare equal.
#[pyclass(module = "pike", frozen)]
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) serial: u64,
    pub(crate) id: u64,
    peer: Option<Peer>,
}

#[pymethods]
impl Connection {
    /// The endpoint's address: `(host, port)` for TCP, the path for a Unix
    /// socket (`None` for an unnamed peer).
    fn address<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.peer {
            Some(Peer::Inet(host, port)) => Ok((host, *port).into_pyobject(py)?.into_any()),
            Some(Peer::Unix(Some(path))) => Ok(path.into_pyobject(py)?.into_any()),
            Some(Peer::Unix(None)) | None => Ok(py.None().into_bound(py)),
        }
    }

    /// A number that identifies the connection within its connector.
    #[getter]
    fn id(&self) -> u64 {
        self.id
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Connection>()
            .is_ok_and(|o| o.get().serial == self.serial && o.get().id == self.id)
    }

    fn __hash__(&self) -> u64 {
        self.id ^ (self.serial << 48)
    }

    fn __lt__(&self, other: &Connection) -> bool {
        (self.serial, self.id) < (other.serial, other.id)
    }

    fn __repr__(&self) -> String {
        match &self.peer {
            Some(Peer::Inet(host, port)) => format!("<Connection #{} {host}:{port}>", self.id),
            Some(Peer::Unix(Some(path))) => format!("<Connection #{} unix:{path}>", self.id),
            _ => format!("<Connection #{}>", self.id),
        }
    }
}

/// The base class of the six events; `type()` tells which one it is.
#[pyclass(module = "pike", subclass, frozen)]
#[derive(Debug)]
pub(crate) struct Event {
    connection: Py<Connection>,
}

#[pymethods]
impl Event {
    #[classattr]
    const FINISH_CONNECT: u8 = 0;
    #[classattr]
    const FINISH_DISCONNECT: u8 = 1;
    #[classattr]
    const ENDPOINT_CONNECT: u8 = 2;
    #[classattr]
    const ENDPOINT_DISCONNECT: u8 = 3;
    #[classattr]
    const MESSAGE: u8 = 4;
    #[classattr]
    const REJECTED_MESSAGE: u8 = 5;

    /// The connection the event happened on.
    fn connection(&self, py: Python<'_>) -> Py<Connection> {
        self.connection.clone_ref(py)
    }
}

/// A `connect` finished: `success()`; if it failed, `queued()` holds the
/// messages sent meanwhile and `reason()` says why.
#[pyclass(module = "pike", extends = Event, frozen)]
#[derive(Debug)]
pub(crate) struct FinishConnectEvent {
    success: bool,
    queued: Py<PyTuple>,
    reason: Option<String>,
}

#[pymethods]
impl FinishConnectEvent {
    #[pyo3(name = "type")]
    fn kind(&self) -> u8 {
        Event::FINISH_CONNECT
    }
    /// Whether the connection was established.
    fn success(&self) -> bool {
        self.success
    }
    /// The messages sent while connecting, as a tuple (empty on success).
    fn queued(&self, py: Python<'_>) -> Py<PyTuple> {
        self.queued.clone_ref(py)
    }
    /// Why connecting failed, or `None`.
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }
    fn __repr__(&self) -> String {
        format!(
            "<FinishConnectEvent success={}>",
            if self.success { "True" } else { "False" }
        )
    }
}

/// A `disconnect` (or `shutdown`) of this connection finished.
/// `incomplete()` is the message cut off midway (`now=True` only),
/// `queued()` the messages not sent.
#[pyclass(module = "pike", extends = Event, frozen)]
#[derive(Debug)]
pub(crate) struct FinishDisconnectEvent {
    incomplete: Option<Py<PyAny>>,
    queued: Py<PyTuple>,
    reason: Option<String>,
}

#[pymethods]
impl FinishDisconnectEvent {
    #[pyo3(name = "type")]
    fn kind(&self) -> u8 {
        Event::FINISH_DISCONNECT
    }
    /// The message only partly sent, or `None`.
    fn incomplete(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.incomplete.as_ref().map(|m| m.clone_ref(py))
    }
    /// The messages not sent, as a tuple.
    fn queued(&self, py: Python<'_>) -> Py<PyTuple> {
        self.queued.clone_ref(py)
    }
    /// Why the close was cut short (the socket failed first), or `None`.
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }
    fn __repr__(&self) -> String {
        "<FinishDisconnectEvent>".to_owned()
    }
}

/// A remote endpoint connected. Call `finish_accept(separate)` to take it
/// (its events then go to `recv`, or to `recv_connection` if `separate`),
/// or `reject()`. An event dropped without either rejects the connection.
#[pyclass(module = "pike", extends = Event, frozen)]
pub(crate) struct RemoteConnectEvent {
    accept: Mutex<Option<Box<dyn AcceptOnce>>>,
}

impl std::fmt::Debug for RemoteConnectEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteConnectEvent")
    }
}

/// A `RemoteConnect` of any message type.
trait AcceptOnce: Send {
    fn accept(self: Box<Self>, delivery: Delivery);
    fn reject(self: Box<Self>);
}

impl<M: Send + 'static> AcceptOnce for RemoteConnect<M> {
    fn accept(self: Box<Self>, delivery: Delivery) {
        (*self).finish_accept(delivery);
    }
    fn reject(self: Box<Self>) {
        (*self).reject();
    }
}

impl RemoteConnectEvent {
    fn take(&self) -> PyResult<Box<dyn AcceptOnce>> {
        self.accept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                PyRuntimeError::new_err("this connection was already accepted or rejected")
            })
    }
}

#[pymethods]
impl RemoteConnectEvent {
    #[pyo3(name = "type")]
    fn kind(&self) -> u8 {
        Event::ENDPOINT_CONNECT
    }
    /// Accepts the connection; with `separate=True` its events go to
    /// `recv_connection` until `merge_connection`.
    #[pyo3(signature = (separate = false))]
    fn finish_accept(&self, separate: bool) -> PyResult<()> {
        let delivery = if separate {
            Delivery::Separate
        } else {
            Delivery::Merged
        };
        self.take()?.accept(delivery);
        Ok(())
    }
    /// Refuses the connection: it is closed.
    fn reject(&self) -> PyResult<()> {
        self.take()?.reject();
        Ok(())
    }
    fn __repr__(&self) -> String {
        "<RemoteConnectEvent>".to_owned()
    }
}

/// The remote endpoint closed the connection, or it broke (`reason()`).
/// `incomplete()` and `queued()` hold what was not sent.
#[pyclass(module = "pike", extends = Event, frozen)]
#[derive(Debug)]
pub(crate) struct RemoteDisconnectEvent {
    incomplete: Option<Py<PyAny>>,
    queued: Py<PyTuple>,
    reason: String,
}

#[pymethods]
impl RemoteDisconnectEvent {
    #[pyo3(name = "type")]
    fn kind(&self) -> u8 {
        Event::ENDPOINT_DISCONNECT
    }
    /// The message only partly sent, or `None`.
    fn incomplete(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.incomplete.as_ref().map(|m| m.clone_ref(py))
    }
    /// The messages not sent, as a tuple.
    fn queued(&self, py: Python<'_>) -> Py<PyTuple> {
        self.queued.clone_ref(py)
    }
    /// Why the connection ended: the peer closed it, a socket error, a
    /// protocol error (a converter's exception with its traceback), a timeout.
    fn reason(&self) -> String {
        self.reason.clone()
    }
    fn __repr__(&self) -> String {
        format!("<RemoteDisconnectEvent {:?}>", self.reason)
    }
}

/// A message arrived: `message()`.
#[pyclass(module = "pike", extends = Event, frozen)]
#[derive(Debug)]
pub(crate) struct MessageReceivedEvent {
    message: Py<PyAny>,
}

#[pymethods]
impl MessageReceivedEvent {
    #[pyo3(name = "type")]
    fn kind(&self) -> u8 {
        Event::MESSAGE
    }
    /// The message received.
    fn message(&self, py: Python<'_>) -> Py<PyAny> {
        self.message.clone_ref(py)
    }
    fn __repr__(&self) -> String {
        "<MessageReceivedEvent>".to_owned()
    }
}

/// A message could not be sent (the connection is disconnecting or gone,
/// its queue is full, or its serializer failed before writing a byte) and
/// comes back: `message()`, `reason()`.
#[pyclass(module = "pike", extends = Event, frozen)]
#[derive(Debug)]
pub(crate) struct RejectedMessageEvent {
    message: Py<PyAny>,
    reason: String,
}

#[pymethods]
impl RejectedMessageEvent {
    #[pyo3(name = "type")]
    fn kind(&self) -> u8 {
        Event::REJECTED_MESSAGE
    }
    /// The message handed back.
    fn message(&self, py: Python<'_>) -> Py<PyAny> {
        self.message.clone_ref(py)
    }
    /// Why it was not sent.
    fn reason(&self) -> String {
        self.reason.clone()
    }
    fn __repr__(&self) -> String {
        format!("<RejectedMessageEvent {:?}>", self.reason)
    }
}

fn tuple_of<C: Bridge>(py: Python<'_>, messages: Vec<C::Message>) -> PyResult<Py<PyTuple>> {
    let items = messages
        .into_iter()
        .map(|m| C::value_of(py, m))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyTuple::new(py, items)?.unbind())
}

fn optional<C: Bridge>(py: Python<'_>, message: Option<C::Message>) -> PyResult<Option<Py<PyAny>>> {
    message.map(|m| C::value_of(py, m)).transpose()
}

/// The Python object of a core event.
pub(crate) fn event_to_py<C: Bridge>(
    py: Python<'_>,
    event: RustEvent<C::Message>,
    registry: &Registry,
) -> PyResult<Py<PyAny>> {
    let id = event.connection().id();
    if let RustEvent::RemoteConnect(remote) = &event {
        registry.insert(id, Peer::of(&remote.peer));
    }
    let connection = registry.connection(py, id, event.is_final())?;
    let base = PyClassInitializer::from(Event { connection });
    let object = match event {
        RustEvent::FinishConnect(e) => {
            let success = e.success();
            Py::new(
                py,
                base.add_subclass(FinishConnectEvent {
                    success,
                    queued: tuple_of::<C>(py, e.queued)?,
                    reason: e.reason.map(|r| r.to_string()),
                }),
            )?
            .into_any()
        }
        RustEvent::FinishDisconnect(e) => Py::new(
            py,
            base.add_subclass(FinishDisconnectEvent {
                incomplete: optional::<C>(py, e.incomplete)?,
                queued: tuple_of::<C>(py, e.queued)?,
                reason: e.reason.map(|r| r.to_string()),
            }),
        )?
        .into_any(),
        RustEvent::RemoteConnect(e) => Py::new(
            py,
            base.add_subclass(RemoteConnectEvent {
                accept: Mutex::new(Some(Box::new(e))),
            }),
        )?
        .into_any(),
        RustEvent::RemoteDisconnect(e) => Py::new(
            py,
            base.add_subclass(RemoteDisconnectEvent {
                incomplete: optional::<C>(py, e.incomplete)?,
                queued: tuple_of::<C>(py, e.queued)?,
                reason: e.reason.to_string(),
            }),
        )?
        .into_any(),
        RustEvent::MessageReceived(e) => Py::new(
            py,
            base.add_subclass(MessageReceivedEvent {
                message: C::value_of(py, e.message)?,
            }),
        )?
        .into_any(),
        RustEvent::RejectedMessage(e) => Py::new(
            py,
            base.add_subclass(RejectedMessageEvent {
                message: C::value_of(py, e.message)?,
                reason: e.reason.to_string(),
            }),
        )?
        .into_any(),
        _ => {
            return Err(PyRuntimeError::new_err(
                "an event this version does not know",
            ));
        }
    };
    Ok(object)
}
