//! Converters written in Python, run off the network thread.
//!
//! The core calls a serializer or deserializer with that connection locked,
//! on the network thread or a sending thread. Python code must never run
//! there: it needs the GIL, which a Python thread may hold while it waits
//! for that very lock (a deadlock), and a slow converter would stall every
//! connection. So the Rust side of a Python converter only moves bytes and
//! wakers; each connector has one converter thread that runs the Python
//! methods, with the GIL and without any lock of the core:
//!
//! ```text
//!  network thread                          converter thread (GIL)
//!  PySerializer::get_bytes ──job──────────► serializer.get_bytes() … up to 64 KiB
//!        ▲  (Pending)                        stream.get_bytes(callback)
//!        └──────────── waker ◄── bytes ──────┘
//!  PyDeserializer::put_bytes ──job(copy)──► deserializer.put_bytes(data)
//!        ▲  (Pending)                        stream.put_bytes(data, callback)
//!        └──────────── waker ◄── (used, outcome)
//! ```
//!
//! The shared state of one message sits behind a mutex that is held only to
//! move bytes, never while Python runs or the GIL is awaited, and Python
//! objects are never dropped under it. A Python exception ends the message
//! with its traceback as the reason (see the `SerializeError` and
//! `ProtocolError` it becomes).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use crossbeam_channel::{Receiver, Sender};
use pike::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use pike::error::{ProtocolError, SerializeError};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyTuple};

use crate::primitives::{Bridge, DONE, WAIT_FOR_MORE, bytes_of, type_name};

/// How many bytes one turn of the converter thread takes from a serializer
/// before handing them over.
const CHUNK: usize = 64 * 1024;
/// Steps of one turn that take no byte (streams opened and finished at
/// once) before the converter is deemed stuck.
const MAX_IDLE_STEPS: usize = 10_000;
/// What a message is counted as beyond its bytes, against the bounds.
const OBJECT_OVERHEAD: usize = 64;
/// `WRITE_TO_STREAM` of `Deserializer`, `WAIT_FOR_CALLBACK` of the streams.
const WRITE_TO_STREAM: i64 = 0;
const WAIT_FOR_CALLBACK: i64 = 0;

/// A message of a Python converter: any Python object.
#[derive(Debug)]
pub(crate) struct PyMessage {
    pub(crate) object: Arc<Py<PyAny>>,
    /// Its size as counted against the queue and memory bounds.
    size: usize,
}

/// A converter object written in Python (`get_serializer(data)`,
/// `get_deserializer()`), driven by a converter thread of its own.
#[derive(Debug, Clone)]
pub(crate) struct PyConverter {
    jobs: Sender<Job>,
}

impl PyConverter {
    /// Starts the converter thread for `converter`.
    pub(crate) fn start(converter: Py<PyAny>) -> PyResult<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("pike-py-converter".into())
            .spawn(move || converter_thread(converter, queue))
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        Ok(Self { jobs })
    }
}

impl Converter for PyConverter {
    type Message = PyMessage;
    type Serializer = PySerializer;
    type Deserializer = PyDeserializer;

    fn serializer(&self, _message: &PyMessage) -> PySerializer {
        PySerializer {
            shared: Arc::new(Shared::new(self.jobs.clone(), SerState::default())),
        }
    }

    fn deserializer(&self) -> PyDeserializer {
        PyDeserializer {
            shared: Arc::new(Shared::new(self.jobs.clone(), DeState::default())),
            taken: 0,
        }
    }

    fn message_size(&self, message: &PyMessage) -> usize {
        message.size
    }
}

impl Bridge for PyConverter {
    fn value_of(py: Python<'_>, message: PyMessage) -> PyResult<Py<PyAny>> {
        Ok(match Arc::try_unwrap(message.object) {
            Ok(object) => object,
            Err(shared) => shared.clone_ref(py),
        })
    }

    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<PyMessage> {
        // A size the bounds can count: its length where it has one.
        let len = value.len().unwrap_or(0);
        Ok(PyMessage {
            object: Arc::new(value.clone().unbind()),
            size: OBJECT_OVERHEAD + len,
        })
    }
}

/// Work for the converter thread.
enum Job {
    Serialize(Arc<Shared<SerState>>, Arc<Py<PyAny>>),
    Deserialize(Arc<Shared<DeState>>),
}

/// The state of one message, shared by its Rust side and the converter thread.
#[derive(Debug)]
struct Shared<S> {
    state: Mutex<S>,
    jobs: Sender<Job>,
}

impl<S> Shared<S> {
    fn new(jobs: Sender<Job>, state: S) -> Self {
        Self {
            state: Mutex::new(state),
            jobs,
        }
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// ----- serializing ------------------------------------------------------------

#[derive(Debug, Default)]
struct SerState {
    /// Bytes from Python not yet taken by the connection.
    ready: Vec<u8>,
    taken: usize,
    /// The serializer returned `b''`.
    done: bool,
    /// A job is queued or running, or a stream awaits its callback: do not
    /// queue another.
    busy: bool,
    failed: Option<String>,
    /// The connection dropped the message: the converter thread skips it.
    cancelled: bool,
    waker: Option<Waker>,
    /// Only the converter thread touches these.
    serializer: Option<Py<PyAny>>,
    stream: Option<Py<PyAny>>,
}

/// The Rust side of a Python serializer: hands over what the converter
/// thread produced, and asks it for more.
#[derive(Debug)]
pub(crate) struct PySerializer {
    shared: Arc<Shared<SerState>>,
}

impl Serializer for PySerializer {
    type Message = PyMessage;

    fn get_bytes(
        &mut self,
        message: &PyMessage,
        out: &mut WriteBuf<'_>,
        waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        let mut st = self.shared.lock();
        if st.taken < st.ready.len() {
            let n = out.put(&st.ready[st.taken..]);
            st.taken += n;
            if st.taken < st.ready.len() {
                return Ok(Encoded::More);
            }
            st.ready.clear();
            st.taken = 0;
        }
        if let Some(reason) = st.failed.take() {
            return Err(SerializeError::Other(reason.into()));
        }
        if st.done {
            return Ok(Encoded::Done);
        }
        st.waker = Some(waker.clone());
        if !st.busy {
            st.busy = true;
            let job = Job::Serialize(self.shared.clone(), message.object.clone());
            if self.shared.jobs.send(job).is_err() {
                return Err(SerializeError::Other(
                    "the converter thread has stopped".into(),
                ));
            }
        }
        Ok(Encoded::Pending)
    }
}

impl Drop for PySerializer {
    fn drop(&mut self) {
        self.shared.lock().cancelled = true;
    }
}

/// What one turn of a serializer ended with.
enum SerStep {
    /// `b''`: the message is complete.
    Done,
    /// A stream returned `WAIT_FOR_CALLBACK`.
    Wait,
    /// A chunk is ready; more may follow.
    Yield,
}

fn serialize(
    py: Python<'_>,
    converter: &Py<PyAny>,
    shared: &Arc<Shared<SerState>>,
    message: &Arc<Py<PyAny>>,
) {
    let (mut serializer, mut stream) = {
        let mut st = shared.lock();
        if st.cancelled {
            return;
        }
        (st.serializer.take(), st.stream.take())
    };
    let mut produced = Vec::new();
    let step = serialize_turn(
        py,
        converter,
        shared,
        message,
        &mut serializer,
        &mut stream,
        &mut produced,
    );
    let waker = {
        let mut st = shared.lock();
        st.ready.extend_from_slice(&produced);
        match step {
            Ok(SerStep::Done) => {
                st.done = true;
                st.busy = false;
            }
            Ok(SerStep::Yield) => st.busy = false,
            Ok(SerStep::Wait) => {}
            Err(e) => {
                st.failed = Some(traceback_text(py, &e));
                st.busy = false;
            }
        }
        // Python objects go back for the next turn; swapped out, not
        // dropped, under the lock.
        std::mem::swap(&mut st.serializer, &mut serializer);
        std::mem::swap(&mut st.stream, &mut stream);
        st.waker.take()
    };
    drop((serializer, stream));
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[allow(clippy::too_many_arguments)]
fn serialize_turn(
    py: Python<'_>,
    converter: &Py<PyAny>,
    shared: &Arc<Shared<SerState>>,
    message: &Arc<Py<PyAny>>,
    serializer: &mut Option<Py<PyAny>>,
    stream: &mut Option<Py<PyAny>>,
    produced: &mut Vec<u8>,
) -> PyResult<SerStep> {
    if serializer.is_none() {
        *serializer =
            Some(converter.call_method1(py, "get_serializer", (message.clone_ref(py),))?);
    }
    let mut idle = 0;
    while produced.len() < CHUNK {
        idle += 1;
        if idle > MAX_IDLE_STEPS {
            return Err(PyValueError::new_err("the serializer made no progress"));
        }
        if let Some(s) = stream.as_ref() {
            let callback = Callback::serializer(shared.clone(), message.clone());
            let got = s.bind(py).call_method1("get_bytes", (callback,))?;
            if is_wait(&got) {
                return Ok(SerStep::Wait);
            }
            let bytes = bytes_of(&got).map_err(|_| {
                PyTypeError::new_err(format!(
                    "a stream's get_bytes must return bytes or WAIT_FOR_CALLBACK, not {}",
                    type_name(&got)
                ))
            })?;
            if bytes.is_empty() {
                *stream = None;
            } else {
                produced.extend_from_slice(bytes);
                idle = 0;
            }
            continue;
        }
        let s = serializer.as_ref().expect("made above");
        let got = s.bind(py).call_method0("get_bytes")?;
        if let Ok(bytes) = bytes_of(&got) {
            if bytes.is_empty() {
                return Ok(SerStep::Done);
            }
            produced.extend_from_slice(bytes);
            idle = 0;
        } else if got.hasattr("get_bytes")? {
            *stream = Some(got.unbind());
        } else {
            return Err(PyTypeError::new_err(format!(
                "a serializer's get_bytes must return bytes or a stream, not {}",
                type_name(&got)
            )));
        }
    }
    Ok(SerStep::Yield)
}

// ----- deserializing ----------------------------------------------------------

#[derive(Debug, Default)]
enum Phase {
    /// Nothing asked of Python.
    #[default]
    Idle,
    /// A job is queued or running.
    Busy,
    /// A stream awaits its callback.
    AwaitCallback,
    /// Python finished a turn: it took `used` bytes of `input`.
    Ready { used: usize, outcome: DeOutcome },
}

#[derive(Debug)]
enum DeOutcome {
    Done(Py<PyAny>),
    NeedMore,
    Wait,
    Failed(String),
}

#[derive(Debug, Default)]
struct DeState {
    phase: Phase,
    /// The bytes handed to Python in this turn.
    input: Vec<u8>,
    cancelled: bool,
    /// The stream's callback came before the connection saw it wait.
    resumed: bool,
    waker: Option<Waker>,
    deserializer: Option<Py<PyAny>>,
    stream: Option<Py<PyAny>>,
}

/// The Rust side of a Python deserializer: hands a copy of the bytes to the
/// converter thread and reports how many Python took.
#[derive(Debug)]
pub(crate) struct PyDeserializer {
    shared: Arc<Shared<DeState>>,
    /// Bytes of this message taken so far, for its size.
    taken: usize,
}

impl Deserializer for PyDeserializer {
    type Message = PyMessage;

    fn put_bytes(
        &mut self,
        data: &[u8],
        waker: &Waker,
    ) -> Result<(usize, Decoded<PyMessage>), ProtocolError> {
        let mut st = self.shared.lock();
        st.waker = Some(waker.clone());
        match std::mem::take(&mut st.phase) {
            phase @ (Phase::Busy | Phase::AwaitCallback) => {
                st.phase = phase;
                Ok((0, Decoded::Pending))
            }
            Phase::Idle => {
                self.submit(&mut st, data)?;
                Ok((0, Decoded::Pending))
            }
            Phase::Ready { used, outcome } => {
                let seen = st.input.len();
                st.input = Vec::new();
                if used > data.len() {
                    return Err(other("the deserializer took more bytes than it was given"));
                }
                self.taken += used;
                match outcome {
                    DeOutcome::Done(object) => {
                        drop(st);
                        Ok((
                            used,
                            Decoded::Done(PyMessage {
                                object: Arc::new(object),
                                size: OBJECT_OVERHEAD + self.taken,
                            }),
                        ))
                    }
                    DeOutcome::NeedMore if data.len() > seen => {
                        // Bytes arrived while Python worked: give it them now
                        // rather than wait for yet more.
                        self.submit(&mut st, &data[used..])?;
                        Ok((used, Decoded::Pending))
                    }
                    DeOutcome::NeedMore => Ok((used, Decoded::NeedMore)),
                    DeOutcome::Wait if st.resumed => {
                        // Called back already: go on at once.
                        self.submit(&mut st, &data[used..])?;
                        Ok((used, Decoded::Pending))
                    }
                    DeOutcome::Wait => {
                        st.phase = Phase::AwaitCallback;
                        Ok((used, Decoded::Pending))
                    }
                    DeOutcome::Failed(reason) => Err(other(reason)),
                }
            }
        }
    }
}

impl PyDeserializer {
    fn submit(&self, st: &mut DeState, data: &[u8]) -> Result<(), ProtocolError> {
        st.input = data.to_vec();
        st.phase = Phase::Busy;
        st.resumed = false;
        self.shared
            .jobs
            .send(Job::Deserialize(self.shared.clone()))
            .map_err(|_| other("the converter thread has stopped"))
    }
}

impl Drop for PyDeserializer {
    fn drop(&mut self) {
        self.shared.lock().cancelled = true;
    }
}

fn other(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Other(reason.into().into())
}

fn deserialize(py: Python<'_>, converter: &Py<PyAny>, shared: &Arc<Shared<DeState>>) {
    let (input, mut deserializer, mut stream) = {
        let mut st = shared.lock();
        if st.cancelled {
            return;
        }
        (
            PyBytes::new(py, &st.input).unbind(),
            st.deserializer.take(),
            st.stream.take(),
        )
    };
    let total = input.bind(py).as_bytes().len();
    let mut left = total;
    let outcome = match deserialize_turn(
        py,
        converter,
        shared,
        input,
        &mut left,
        &mut deserializer,
        &mut stream,
    ) {
        Ok(outcome) => outcome,
        Err(e) => DeOutcome::Failed(traceback_text(py, &e)),
    };
    let waker = {
        let mut st = shared.lock();
        st.phase = Phase::Ready {
            used: total - left,
            outcome,
        };
        std::mem::swap(&mut st.deserializer, &mut deserializer);
        std::mem::swap(&mut st.stream, &mut stream);
        st.waker.take()
    };
    drop((deserializer, stream));
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// One turn of a deserializer over `data`; `left` ends as the length of
/// the remainder Python returned last.
fn deserialize_turn(
    py: Python<'_>,
    converter: &Py<PyAny>,
    shared: &Arc<Shared<DeState>>,
    mut data: Py<PyBytes>,
    left: &mut usize,
    deserializer: &mut Option<Py<PyAny>>,
    stream: &mut Option<Py<PyAny>>,
) -> PyResult<DeOutcome> {
    for _ in 0..MAX_IDLE_STEPS {
        if let Some(s) = stream.as_ref() {
            let callback = Callback::deserializer(shared.clone());
            let got = s
                .bind(py)
                .call_method1("put_bytes", (data.clone_ref(py), callback))?;
            let (remainder, status) = pair(&got, "a stream's put_bytes")?;
            data = remainder_of(&remainder, left)?;
            match status {
                DONE_I64 => *stream = None,
                WAIT_FOR_MORE_I64 => return Ok(DeOutcome::NeedMore),
                WAIT_FOR_CALLBACK => return Ok(DeOutcome::Wait),
                other => return Err(status_error("a stream's put_bytes", other)),
            }
            continue;
        }
        if deserializer.is_none() {
            *deserializer = Some(converter.call_method0(py, "get_deserializer")?);
        }
        let d = deserializer.as_ref().expect("made above");
        let got = d
            .bind(py)
            .call_method1("put_bytes", (data.clone_ref(py),))?;
        let (remainder, status) = pair(&got, "a deserializer's put_bytes")?;
        data = remainder_of(&remainder, left)?;
        match status {
            WAIT_FOR_MORE_I64 => return Ok(DeOutcome::NeedMore),
            DONE_I64 => return Ok(DeOutcome::Done(third(&got, "DONE")?.unbind())),
            WRITE_TO_STREAM => *stream = Some(third(&got, "WRITE_TO_STREAM")?.unbind()),
            other => return Err(status_error("a deserializer's put_bytes", other)),
        }
    }
    Err(PyValueError::new_err("the deserializer made no progress"))
}

const DONE_I64: i64 = DONE as i64;
const WAIT_FOR_MORE_I64: i64 = WAIT_FOR_MORE as i64;

/// The first two items of a `put_bytes` result: the remainder and the status.
fn pair<'py>(got: &Bound<'py, PyAny>, what: &str) -> PyResult<(Bound<'py, PyAny>, i64)> {
    let tuple = got.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must return a tuple, not {}",
            type_name(got)
        ))
    })?;
    if tuple.len() < 2 {
        return Err(PyTypeError::new_err(format!(
            "{what} must return (remainder, status, ...)"
        )));
    }
    Ok((tuple.get_item(0)?, tuple.get_item(1)?.extract::<i64>()?))
}

fn third<'py>(got: &Bound<'py, PyAny>, status: &str) -> PyResult<Bound<'py, PyAny>> {
    let tuple = got.cast::<PyTuple>()?;
    if tuple.len() < 3 {
        return Err(PyTypeError::new_err(format!(
            "put_bytes returned {status} without a third item"
        )));
    }
    tuple.get_item(2)
}

/// The remainder as bytes, checked to be no longer than what was given.
fn remainder_of(remainder: &Bound<'_, PyAny>, left: &mut usize) -> PyResult<Py<PyBytes>> {
    let bytes = remainder.cast::<PyBytes>().map_err(|_| {
        PyTypeError::new_err(format!(
            "put_bytes must return the unused bytes first, not {}",
            type_name(remainder)
        ))
    })?;
    let len = bytes.as_bytes().len();
    if len > *left {
        return Err(PyValueError::new_err(
            "put_bytes returned more bytes than it was given",
        ));
    }
    *left = len;
    Ok(bytes.clone().unbind())
}

fn status_error(what: &str, status: i64) -> PyErr {
    PyValueError::new_err(format!("{what} returned an unknown status {status}"))
}

/// `WAIT_FOR_CALLBACK` (0, not `False`), or `None` as the original's file
/// reader returned it.
fn is_wait(value: &Bound<'_, PyAny>) -> bool {
    value.is_none()
        || (value.is_instance_of::<PyInt>()
            && !value.is_instance_of::<PyBool>()
            && value.extract::<i64>().ok() == Some(WAIT_FOR_CALLBACK))
}

/// The callback a stream receives: calling it (from any thread, once) lets
/// the connection call the stream again.
#[pyclass(module = "pike", frozen)]
struct Callback {
    target: Mutex<Option<Target>>,
}

enum Target {
    Serializer(Arc<Shared<SerState>>, Arc<Py<PyAny>>),
    Deserializer(Arc<Shared<DeState>>),
}

impl Callback {
    fn serializer(shared: Arc<Shared<SerState>>, message: Arc<Py<PyAny>>) -> Self {
        Self {
            target: Mutex::new(Some(Target::Serializer(shared, message))),
        }
    }

    fn deserializer(shared: Arc<Shared<DeState>>) -> Self {
        Self {
            target: Mutex::new(Some(Target::Deserializer(shared))),
        }
    }
}

#[pymethods]
impl Callback {
    /// Resumes the stream; later calls do nothing.
    fn __call__(&self) {
        let target = self.target.lock().unwrap_or_else(|e| e.into_inner()).take();
        match target {
            // The next turn runs on the converter thread.
            Some(Target::Serializer(shared, message)) => {
                let jobs = shared.jobs.clone();
                let _ = jobs.send(Job::Serialize(shared, message));
            }
            // The connection calls put_bytes again, which starts the turn.
            Some(Target::Deserializer(shared)) => {
                let waker = {
                    let mut st = shared.lock();
                    if matches!(st.phase, Phase::AwaitCallback) {
                        st.phase = Phase::Idle;
                    } else {
                        // The turn that waits has not reached the
                        // connection yet.
                        st.resumed = true;
                    }
                    st.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            None => {}
        }
    }
}

fn converter_thread(converter: Py<PyAny>, queue: Receiver<Job>) {
    let run = |py: Python<'_>, job: Job| match job {
        Job::Serialize(shared, message) => serialize(py, &converter, &shared, &message),
        Job::Deserialize(shared) => deserialize(py, &converter, &shared),
    };
    while let Ok(job) = queue.recv() {
        // Attached once for every job already waiting.
        let attached = Python::try_attach(|py| {
            run(py, job);
            while let Ok(job) = queue.try_recv() {
                run(py, job);
            }
        });
        if attached.is_none() {
            // The interpreter is shutting down.
            return;
        }
    }
}

/// The text Python would print for `error`, traceback included.
pub(crate) fn traceback_text(py: Python<'_>, error: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let traceback = py.import("traceback")?;
        let lines = traceback.call_method1(
            "format_exception",
            (error.get_type(py), error.value(py), error.traceback(py)),
        )?;
        Ok(lines.extract::<Vec<String>>()?.concat())
    })();
    formatted.unwrap_or_else(|_| error.to_string())
}
