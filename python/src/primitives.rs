//! The converters whose work runs in Rust: `Primitives` (bool, int, float,
//! string, bytes) and `FileConverter`, with the original's static helpers and
//! its Python-side `get_serializer` / `get_deserializer` forms.

use std::path::PathBuf;
use std::task::Waker;

use pike::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use pike::converters::{
    BoolConverter, FileConverter as RustFileConverter, FloatConverter, IntConverter,
    StringConverter, VecConverter,
};
use pike::error::ProtocolError;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyString, PyTuple};

/// `Deserializer.WAIT_FOR_MORE` and `Deserializer.DONE`, as the original numbers them.
pub(crate) const WAIT_FOR_MORE: u8 = 1;
pub(crate) const DONE: u8 = 2;

/// A converter whose messages cross between Python and Rust values.
pub(crate) trait Bridge: Converter + Clone {
    /// The Python value of a message.
    fn value_of(py: Python<'_>, message: Self::Message) -> PyResult<Py<PyAny>>;
    /// The message of a Python value, or the reason it cannot be one.
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<Self::Message>;
}

impl Bridge for BoolConverter {
    fn value_of(py: Python<'_>, message: bool) -> PyResult<Py<PyAny>> {
        Ok(PyBool::new(py, message).to_owned().into_any().unbind())
    }
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        value.is_truthy()
    }
}

impl Bridge for IntConverter {
    fn value_of(py: Python<'_>, message: i64) -> PyResult<Py<PyAny>> {
        Ok(message.into_pyobject(py)?.into_any().unbind())
    }
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<i64> {
        value.extract::<i64>().map_err(|e| {
            if e.is_instance_of::<PyOverflowError>(value.py()) {
                PyOverflowError::new_err(format!(
                    "{value} does not fit the int converter, which carries 64-bit integers"
                ))
            } else {
                e
            }
        })
    }
}

impl Bridge for FloatConverter {
    fn value_of(py: Python<'_>, message: f64) -> PyResult<Py<PyAny>> {
        Ok(message.into_pyobject(py)?.into_any().unbind())
    }
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<f64> {
        value.extract::<f64>()
    }
}

impl Bridge for StringConverter {
    fn value_of(py: Python<'_>, message: String) -> PyResult<Py<PyAny>> {
        Ok(PyString::new(py, &message).into_any().unbind())
    }
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<String> {
        let s = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "the string converter sends str, not {}",
                type_name(value)
            ))
        })?;
        Ok(s.to_cow()?.into_owned())
    }
}

impl Bridge for VecConverter {
    fn value_of(py: Python<'_>, message: Vec<u8>) -> PyResult<Py<PyAny>> {
        Ok(PyBytes::new(py, &message).into_any().unbind())
    }
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        bytes_of(value).map(<[u8]>::to_vec)
    }
}

impl Bridge for RustFileConverter {
    fn value_of(py: Python<'_>, message: PathBuf) -> PyResult<Py<PyAny>> {
        Ok(PyString::new(py, &message.to_string_lossy())
            .into_any()
            .unbind())
    }
    fn message_of(&self, value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
        value.extract::<PathBuf>()
    }
}

/// The bytes of a `bytes` object, or a `TypeError` naming what it was.
pub(crate) fn bytes_of<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    match value.cast::<PyBytes>() {
        Ok(b) => Ok(b.as_bytes()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "expected bytes, not {}",
            type_name(value)
        ))),
    }
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The wire form of one message, from the converter's own serializer.
fn encode<C: Converter>(converter: &C, message: &C::Message) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = converter.serializer(message);
    loop {
        let mut buf = WriteBuf::new(&mut out, usize::MAX);
        match serializer.get_bytes(message, &mut buf, Waker::noop()) {
            Ok(Encoded::More) => {}
            // The primitives neither wait nor fail.
            Ok(Encoded::Done | Encoded::Pending) | Err(_) => return out,
        }
    }
}

/// The first message in `data` and the bytes it took, `None` if `data`
/// holds only part of one.
fn decode<C: Converter>(
    converter: &C,
    data: &[u8],
) -> Result<Option<(usize, C::Message)>, ProtocolError> {
    let mut deserializer = converter.deserializer();
    let mut used = 0;
    loop {
        let (n, outcome) = deserializer.put_bytes(&data[used..], Waker::noop())?;
        used += n;
        match outcome {
            Decoded::Done(message) => return Ok(Some((used, message))),
            Decoded::NeedMore | Decoded::Pending if n == 0 || used == data.len() => {
                return Ok(None);
            }
            Decoded::NeedMore | Decoded::Pending => {}
        }
    }
}

/// `(remainder, value)` as the original's `bytes_to_*` return it: the whole
/// input and `None` while a value is incomplete.
fn decode_pair<'py, C: Bridge>(
    py: Python<'py>,
    converter: &C,
    data: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    match decode(converter, data).map_err(|e| PyValueError::new_err(e.to_string()))? {
        Some((used, message)) => {
            (PyBytes::new(py, &data[used..]), C::value_of(py, message)?).into_pyobject(py)
        }
        None => (PyBytes::new(py, data), py.None()).into_pyobject(py),
    }
}

/// Which primitive a [`PrimitiveConverter`] converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Bool,
    Int,
    Float,
    String,
    Bytes,
}

/// A converter of one primitive type (`Primitives.INT_CONVERTER` and the
/// others). Its wire format is the original's; the work runs in Rust.
#[pyclass(module = "pike", frozen)]
#[derive(Debug, Clone)]
pub(crate) struct PrimitiveConverter {
    pub(crate) kind: Kind,
    /// For strings and bytes: the largest body accepted.
    pub(crate) max_message_size: Option<usize>,
}

#[pymethods]
impl PrimitiveConverter {
    /// A serializer of `data`, for use from Python: its `get_bytes()`
    /// returns the whole wire form, then `b''`.
    fn get_serializer(&self, data: &Bound<'_, PyAny>) -> PyResult<PrimitiveSerializer> {
        let bytes = match self.kind {
            Kind::Bool => encode(&BoolConverter, &BoolConverter.message_of(data)?),
            Kind::Int => encode(&IntConverter, &IntConverter.message_of(data)?),
            Kind::Float => encode(&FloatConverter, &FloatConverter.message_of(data)?),
            Kind::String => encode(
                &StringConverter::new(),
                &StringConverter::new().message_of(data)?,
            ),
            Kind::Bytes => encode(&VecConverter::new(), &VecConverter::new().message_of(data)?),
        };
        Ok(PrimitiveSerializer {
            bytes: std::sync::Mutex::new(Some(bytes)),
        })
    }

    /// A deserializer, for use from Python: `put_bytes(data)` returns
    /// `(remainder, DONE, value)` or `(data, WAIT_FOR_MORE)`.
    fn get_deserializer(&self) -> PrimitiveDeserializer {
        PrimitiveDeserializer { kind: self.kind }
    }

    /// Limits string and bytes messages to `max_message_size` bytes (1 MiB
    /// by default); a peer announcing a longer one is disconnected.
    fn with_max_message_size(&self, max_message_size: usize) -> PyResult<Self> {
        if !matches!(self.kind, Kind::String | Kind::Bytes) {
            return Err(PyValueError::new_err(
                "only the string and bytes converters have a message size limit",
            ));
        }
        Ok(Self {
            kind: self.kind,
            max_message_size: Some(max_message_size),
        })
    }

    fn __repr__(&self) -> String {
        format!("<pike primitive converter {:?}>", self.kind)
    }
}

/// Serializes one primitive value, for use from Python.
#[pyclass(module = "pike", frozen)]
#[derive(Debug)]
pub(crate) struct PrimitiveSerializer {
    bytes: std::sync::Mutex<Option<Vec<u8>>>,
}

#[pymethods]
impl PrimitiveSerializer {
    /// The wire form on the first call, `b''` after.
    fn get_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner()).take();
        PyBytes::new(py, bytes.as_deref().unwrap_or_default())
    }
}

/// Deserializes primitive values, for use from Python.
#[pyclass(module = "pike", frozen)]
#[derive(Debug)]
pub(crate) struct PrimitiveDeserializer {
    kind: Kind,
}

#[pymethods]
impl PrimitiveDeserializer {
    /// `(remainder, DONE, value)` once `data` holds a whole value, else
    /// `(data, WAIT_FOR_MORE)`. Bytes that cannot begin a value raise
    /// `ValueError`.
    fn put_bytes<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        let pair = match self.kind {
            Kind::Bool => decode_pair(py, &BoolConverter, data)?,
            Kind::Int => decode_pair(py, &IntConverter, data)?,
            Kind::Float => decode_pair(py, &FloatConverter, data)?,
            Kind::String => decode_pair(py, &StringConverter::new(), data)?,
            Kind::Bytes => decode_pair(py, &VecConverter::new(), data)?,
        };
        let (remainder, value) = (pair.get_item(0)?, pair.get_item(1)?);
        if value.is_none() {
            (remainder, WAIT_FOR_MORE).into_pyobject(py)
        } else {
            (remainder, DONE, value).into_pyobject(py)
        }
    }
}

/// The primitive converters and the original's conversion helpers. The
/// helpers work on `bytes`: `*_to_bytes(value)` returns the wire form, and
/// `bytes_to_*(data)` returns `(remainder, value)`, with `value` `None`
/// (and the remainder all of `data`) while `data` holds only part of one.
#[pyclass(module = "pike", frozen)]
#[derive(Debug)]
pub(crate) struct Primitives;

#[allow(non_snake_case)]
#[pymethods]
impl Primitives {
    /// Booleans: `True` or `False` on the wire, no terminator.
    #[classattr]
    fn BOOL_CONVERTER() -> PrimitiveConverter {
        primitive(Kind::Bool)
    }
    /// Integers (64-bit): decimal digits, then a space.
    #[classattr]
    fn INT_CONVERTER() -> PrimitiveConverter {
        primitive(Kind::Int)
    }
    /// Floats: Python's `repr`-compatible text, then a space.
    #[classattr]
    fn FLOAT_CONVERTER() -> PrimitiveConverter {
        primitive(Kind::Float)
    }
    /// Strings (`str`): the UTF-8 byte length, a space, the bytes.
    #[classattr]
    fn STRING_CONVERTER() -> PrimitiveConverter {
        primitive(Kind::String)
    }
    /// Bytes (`bytes`): framed as strings are, any bytes.
    #[classattr]
    fn BYTES_CONVERTER() -> PrimitiveConverter {
        primitive(Kind::Bytes)
    }

    #[staticmethod]
    fn bool_to_bytes<'py>(
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &encode(&BoolConverter, &BoolConverter.message_of(data)?),
        ))
    }
    #[staticmethod]
    fn bytes_to_bool<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        decode_pair(py, &BoolConverter, data)
    }
    #[staticmethod]
    fn int_to_bytes<'py>(
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &encode(&IntConverter, &IntConverter.message_of(data)?),
        ))
    }
    #[staticmethod]
    fn bytes_to_int<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        decode_pair(py, &IntConverter, data)
    }
    #[staticmethod]
    fn float_to_bytes<'py>(
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(
            py,
            &encode(&FloatConverter, &FloatConverter.message_of(data)?),
        ))
    }
    #[staticmethod]
    fn bytes_to_float<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        decode_pair(py, &FloatConverter, data)
    }
    #[staticmethod]
    fn string_to_bytes<'py>(
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let c = StringConverter::new();
        Ok(PyBytes::new(py, &encode(&c, &c.message_of(data)?)))
    }
    #[staticmethod]
    fn bytes_to_string<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        decode_pair(py, &StringConverter::new(), data)
    }
}

fn primitive(kind: Kind) -> PrimitiveConverter {
    PrimitiveConverter {
        kind,
        max_message_size: None,
    }
}

/// Sends files by path and saves received ones in `save_directory`: the
/// wire form is the file's name, its size, then its bytes. Files stream in
/// bounded chunks, read and written off the network thread, and a transfer
/// cut off midway leaves no file that looks complete. A received message is
/// the path the file was saved at (`name_(1)` and so on when the name is
/// taken).
#[pyclass(module = "pike", frozen)]
#[derive(Debug)]
pub(crate) struct FileConverter {
    pub(crate) save_directory: PathBuf,
}

#[pymethods]
impl FileConverter {
    #[new]
    fn new(save_directory: PathBuf) -> Self {
        Self { save_directory }
    }

    /// Where received files are saved.
    #[getter]
    fn save_directory(&self) -> String {
        self.save_directory.to_string_lossy().into_owned()
    }

    fn __repr__(&self) -> String {
        format!("FileConverter({:?})", self.save_directory)
    }
}
