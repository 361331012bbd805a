//! Converters for primitive values, wire-compatible with the Python original.
//!
//! ```text
//! bool    True | False                         (no terminator)
//! int     -?[0-9]+ ␠                           e.g. "-12 "
//! float   Python repr text ␠                   e.g. "0.1 ", "1e+16 ", "inf ", "nan "
//! string  <byte length> ␠ <UTF-8 bytes>        e.g. "3 abc", "0 "
//! bytes   <byte length> ␠ <bytes>              same framing as string
//! ```
//!
//! Serializers write straight into the connection's write buffer; the small
//! encodings are staged in a fixed array on the stack, so nothing but the
//! message itself is ever allocated.

use std::fmt::{self, Write as _};
use std::marker::PhantomData;
use std::ops::Range;
use std::task::Waker;

use bytes::Bytes;

use crate::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use crate::error::{ProtocolError, SerializeError};

/// The default maximum size of one string or bytes message: 1 MiB.
///
/// A peer can make a connection hold up to this much for a message it has
/// begun and not finished, so it bounds what many peers together can pin
/// against the connector's memory budget (64 MiB by default: at least 64
/// such messages at once). Raise it with
/// [`with_max_message_size`](LengthPrefixed::with_max_message_size) where
/// larger messages are expected.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// The longest valid int field: `-9223372036854775808` is 20 bytes.
const INT_FIELD_MAX: usize = 20;
/// The longest accepted float field. Python's `repr` writes at most 24 bytes
/// (`-2.2250738585072014e-308`); a little slack admits other writers.
const FLOAT_FIELD_MAX: usize = 32;
/// The longest valid length field of a string or bytes message (`u64::MAX`).
const LENGTH_FIELD_MAX: usize = 20;
/// How much a body buffer reserves up front when the body has not arrived
/// yet: memory is committed as bytes come in, not as the peer announces them.
const BODY_RESERVE_STEP: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// Staged encodings: a few bytes built on the stack, then copied out.

/// A short encoding kept on the stack and written out over one or more calls.
#[derive(Debug, Clone)]
pub struct Staged {
    buf: [u8; 32],
    len: u8,
    pos: u8,
}

impl Staged {
    fn from_slice(bytes: &[u8]) -> Self {
        let mut buf = [0; 32];
        buf[..bytes.len()].copy_from_slice(bytes);
        Self {
            buf,
            len: bytes.len() as u8,
            pos: 0,
        }
    }

    /// Writes what remains; true once everything is out.
    fn write_to(&mut self, out: &mut WriteBuf<'_>) -> bool {
        let n = out.put(&self.buf[self.pos as usize..self.len as usize]);
        self.pos += n as u8;
        self.pos == self.len
    }

    #[cfg(test)]
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// A `fmt::Write` sink over a fixed array, for formatting without allocation.
struct ArrayWriter<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> ArrayWriter<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn extend(&mut self, s: &[u8]) {
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for ArrayWriter<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > N {
            return Err(fmt::Error);
        }
        self.extend(s.as_bytes());
        Ok(())
    }
}

/// Writes `v` in decimal.
fn push_decimal<const N: usize>(out: &mut ArrayWriter<N>, v: u64) {
    let mut digits = [0u8; 20];
    let start = decimal_from_end(&mut digits, v);
    out.extend(&digits[start..]);
}

/// Writes `v` in decimal at the end of `out`; returns where it starts.
fn decimal_from_end(out: &mut [u8], mut v: u64) -> usize {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return i;
        }
    }
}

// ---------------------------------------------------------------------------
// Space-terminated fields.

/// Collects a field of at most `N` bytes up to its terminating space.
#[derive(Debug, Clone)]
struct Field<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Field<N> {
    fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// Takes bytes up to and including the space. Returns how many bytes it
    /// consumed and whether the field is complete (the space is not stored).
    fn take(&mut self, data: &[u8]) -> Result<(usize, bool), ProtocolError> {
        for (i, &b) in data.iter().enumerate() {
            if b == b' ' {
                return Ok((i + 1, true));
            }
            if self.len == N {
                return Err(ProtocolError::FieldTooLong { limit: N });
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok((data.len(), false))
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Parses an optionally negative decimal integer.
fn parse_i64(text: &[u8]) -> Result<i64, ProtocolError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = parse_u64(digits)?;
    if negative {
        // i64::MIN's magnitude is one more than i64::MAX.
        0i64.checked_sub_unsigned(magnitude)
            .ok_or(ProtocolError::NumberOverflow)
    } else {
        i64::try_from(magnitude).map_err(|_| ProtocolError::NumberOverflow)
    }
}

/// Parses a non-empty run of decimal digits.
fn parse_u64(digits: &[u8]) -> Result<u64, ProtocolError> {
    if digits.is_empty() {
        return Err(ProtocolError::InvalidNumber);
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(ProtocolError::InvalidNumber);
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(ProtocolError::NumberOverflow)
    })
}

// ---------------------------------------------------------------------------
// A serializer for encodings that fit on the stack.

/// Serializes a value whose whole encoding was staged when it was created.
#[derive(Debug, Clone)]
pub struct StagedSerializer<M> {
    staged: Staged,
    _message: PhantomData<fn(&M)>,
}

impl<M> StagedSerializer<M> {
    fn new(bytes: &[u8]) -> Self {
        Self {
            staged: Staged::from_slice(bytes),
            _message: PhantomData,
        }
    }
}

impl<M: 'static> Serializer for StagedSerializer<M> {
    type Message = M;

    fn get_bytes(
        &mut self,
        _message: &M,
        out: &mut WriteBuf<'_>,
        _waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        Ok(if self.staged.write_to(out) {
            Encoded::Done
        } else {
            Encoded::More
        })
    }
}

/// Deserializes a space-terminated field of at most `N` bytes with `parse`.
#[derive(Debug, Clone)]
pub struct FieldDeserializer<M, const N: usize> {
    field: Field<N>,
    parse: fn(&[u8]) -> Result<M, ProtocolError>,
}

impl<M: Send + 'static, const N: usize> Deserializer for FieldDeserializer<M, N> {
    type Message = M;

    fn put_bytes(
        &mut self,
        data: &[u8],
        _waker: &Waker,
    ) -> Result<(usize, Decoded<M>), ProtocolError> {
        let (used, complete) = self.field.take(data)?;
        if complete {
            Ok((used, Decoded::Done((self.parse)(self.field.as_bytes())?)))
        } else {
            Ok((used, Decoded::NeedMore))
        }
    }
}

// ---------------------------------------------------------------------------
// bool

/// `bool` as `True` or `False`, with no terminator.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoolConverter;

impl Converter for BoolConverter {
    type Message = bool;
    type Serializer = StagedSerializer<bool>;
    type Deserializer = BoolDeserializer;

    fn serializer(&self, message: &bool) -> Self::Serializer {
        StagedSerializer::new(if *message { b"True" } else { b"False" })
    }

    fn deserializer(&self) -> BoolDeserializer {
        BoolDeserializer {
            word: None,
            matched: 0,
        }
    }
}

/// Deserializes `True` or `False`.
#[derive(Debug, Clone)]
pub struct BoolDeserializer {
    /// The word chosen by the first byte, and the value it stands for.
    word: Option<(&'static [u8], bool)>,
    /// How many bytes of that word matched so far.
    matched: usize,
}

impl Deserializer for BoolDeserializer {
    type Message = bool;

    fn put_bytes(
        &mut self,
        data: &[u8],
        _waker: &Waker,
    ) -> Result<(usize, Decoded<bool>), ProtocolError> {
        for (i, &b) in data.iter().enumerate() {
            let (word, value) = match self.word {
                Some(w) => w,
                None => {
                    let w: (&'static [u8], bool) = match b {
                        b'T' => (b"True", true),
                        b'F' => (b"False", false),
                        _ => return Err(ProtocolError::InvalidBool),
                    };
                    *self.word.insert(w)
                }
            };
            if word[self.matched] != b {
                return Err(ProtocolError::InvalidBool);
            }
            self.matched += 1;
            if self.matched == word.len() {
                return Ok((i + 1, Decoded::Done(value)));
            }
        }
        Ok((data.len(), Decoded::NeedMore))
    }
}

// ---------------------------------------------------------------------------
// int

/// `i64` in decimal with an optional `-`, then one space: `-12 `.
#[derive(Debug, Clone, Copy, Default)]
pub struct IntConverter;

impl Converter for IntConverter {
    type Message = i64;
    type Serializer = StagedSerializer<i64>;
    type Deserializer = FieldDeserializer<i64, INT_FIELD_MAX>;

    fn serializer(&self, message: &i64) -> Self::Serializer {
        let mut w = ArrayWriter::<32>::new();
        if *message < 0 {
            w.push(b'-');
        }
        push_decimal(&mut w, message.unsigned_abs());
        w.push(b' ');
        StagedSerializer::new(w.as_bytes())
    }

    fn deserializer(&self) -> Self::Deserializer {
        FieldDeserializer {
            field: Field::new(),
            parse: parse_i64,
        }
    }
}

// ---------------------------------------------------------------------------
// float

/// `f64` as Python's `repr` writes it, then one space: `0.1 `, `1e+16 `,
/// `inf `, `nan `.
///
/// What it writes round-trips exactly; it reads every form Python's `repr`
/// writes, and what Rust's `f64` parser accepts besides (`1E5`, `.5`, `+1`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FloatConverter;

impl Converter for FloatConverter {
    type Message = f64;
    type Serializer = StagedSerializer<f64>;
    type Deserializer = FieldDeserializer<f64, FLOAT_FIELD_MAX>;

    fn serializer(&self, message: &f64) -> Self::Serializer {
        let mut w = ArrayWriter::<32>::new();
        write_python_repr(&mut w, *message);
        w.push(b' ');
        StagedSerializer::new(w.as_bytes())
    }

    fn deserializer(&self) -> Self::Deserializer {
        FieldDeserializer {
            field: Field::new(),
            parse: parse_f64,
        }
    }
}

fn parse_f64(text: &[u8]) -> Result<f64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or(ProtocolError::InvalidFloat)
}

/// Writes `x` the way Python's `repr(float)` does: the shortest digits that
/// round-trip, in fixed notation when the decimal exponent is in `-4..16`
/// (always with a fractional part), otherwise in scientific notation with a
/// signed exponent of at least two digits.
fn write_python_repr<const N: usize>(out: &mut ArrayWriter<N>, x: f64) {
    if x.is_nan() {
        return out.extend(b"nan");
    }
    if x.is_infinite() {
        return out.extend(if x < 0.0 { b"-inf" } else { b"inf" });
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: "-1.25e-7".
    let mut sci = ArrayWriter::<40>::new();
    write!(sci, "{x:e}").expect("an f64 in scientific notation fits in 40 bytes");
    let text = sci.as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let e_at = text
        .iter()
        .position(|&b| b == b'e')
        .expect("`{:e}` writes an exponent");
    let (mantissa, exponent) = (&text[..e_at], &text[e_at + 1..]);
    let exponent: i32 = std::str::from_utf8(exponent)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("`{:e}` writes a decimal exponent");
    // The significant digits without the dot: "1.25" -> "125".
    let mut digits = ArrayWriter::<24>::new();
    for &b in mantissa.iter().filter(|&&b| b != b'.') {
        digits.push(b);
    }
    let digits = digits.as_bytes();

    if negative {
        out.push(b'-');
    }
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            for i in 0..int_len {
                out.push(*digits.get(i).unwrap_or(&b'0'));
            }
            out.push(b'.');
            if digits.len() > int_len {
                out.extend(&digits[int_len..]);
            } else {
                out.push(b'0');
            }
        } else {
            out.extend(b"0.");
            for _ in 0..(-exponent - 1) {
                out.push(b'0');
            }
            out.extend(digits);
        }
    } else {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        push_decimal(out, u64::from(magnitude));
    }
}

// ---------------------------------------------------------------------------
// string and bytes

/// A message body type that travels as `<length> <bytes>`.
///
/// Implemented for [`String`] (checked to be UTF-8), [`Vec<u8>`] and
/// [`Bytes`].
pub trait Payload: Sized + Send + 'static {
    /// The bytes to send.
    fn as_bytes(&self) -> &[u8];
    /// Builds a message from a complete body that arrived in one piece.
    fn from_slice(body: &[u8]) -> Result<Self, ProtocolError>;
    /// Builds a message from a body collected over several reads.
    fn from_vec(body: Vec<u8>) -> Result<Self, ProtocolError>;
    /// Builds a message from a complete body that is `chunk[range]`, a part
    /// of a shared chunk of input. The default copies it, as
    /// [`from_slice`](Self::from_slice).
    fn from_shared(chunk: &Bytes, range: Range<usize>) -> Result<Self, ProtocolError> {
        Self::from_slice(&chunk[range])
    }
    /// Whether [`from_shared`](Self::from_shared) slices rather than copies,
    /// so that reading into shared chunks pays off. False by default; true
    /// for [`Bytes`].
    const SLICES: bool = false;
}

impl Payload for String {
    fn as_bytes(&self) -> &[u8] {
        str::as_bytes(self)
    }
    fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        std::str::from_utf8(body)
            .map(str::to_owned)
            .map_err(|_| ProtocolError::InvalidUtf8)
    }
    fn from_vec(body: Vec<u8>) -> Result<Self, ProtocolError> {
        String::from_utf8(body).map_err(|_| ProtocolError::InvalidUtf8)
    }
}

impl Payload for Vec<u8> {
    fn as_bytes(&self) -> &[u8] {
        self
    }
    fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        Ok(body.to_vec())
    }
    fn from_vec(body: Vec<u8>) -> Result<Self, ProtocolError> {
        Ok(body)
    }
}

impl Payload for Bytes {
    fn as_bytes(&self) -> &[u8] {
        self
    }
    fn from_slice(body: &[u8]) -> Result<Self, ProtocolError> {
        Ok(Bytes::copy_from_slice(body))
    }
    fn from_vec(body: Vec<u8>) -> Result<Self, ProtocolError> {
        Ok(Bytes::from(body))
    }
    fn from_shared(chunk: &Bytes, range: Range<usize>) -> Result<Self, ProtocolError> {
        Ok(chunk.slice(range))
    }
    const SLICES: bool = true;
}

/// Length-prefixed messages: `<byte length> <bytes>`, e.g. `3 abc`, `0 `.
///
/// A length over the maximum message size is refused as soon as its digits
/// show it, before anything is allocated.
///
/// ```
/// use pike::converters::StringConverter;
/// let strings = StringConverter::new().with_max_message_size(1 << 20);
/// assert_eq!(strings.max_message_size(), 1 << 20);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LengthPrefixed<P> {
    max_message_size: usize,
    shared: bool,
    _payload: PhantomData<fn() -> P>,
}

/// `String` messages, as UTF-8 bytes with a length prefix.
pub type StringConverter = LengthPrefixed<String>;
/// `Bytes` messages with a length prefix.
pub type BytesConverter = LengthPrefixed<Bytes>;
/// `Vec<u8>` messages with a length prefix.
pub type VecConverter = LengthPrefixed<Vec<u8>>;

impl<P> LengthPrefixed<P> {
    /// A converter with the [default maximum message size](DEFAULT_MAX_MESSAGE_SIZE).
    pub const fn new() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            // Used only where the payload slices (`Bytes`).
            shared: true,
            _payload: PhantomData,
        }
    }

    /// Sets the largest body, in bytes, that deserializers accept and
    /// `send` takes. It counts the message's own bytes (a string's UTF-8,
    /// a buffer's length), not the length field before them: a message of
    /// exactly the limit goes through. A larger one is refused at `send`
    /// ([`SerializeError::TooLarge`], handed back in a `RejectedMessage`;
    /// the connection carries on); a peer that sends one anyway is cut
    /// off ([`ProtocolError::TooLarge`]). Both ends should use one limit.
    ///
    /// ```
    /// use pike::converters::StringConverter;
    /// use pike::converter::Converter;
    /// use pike::error::SerializeError;
    ///
    /// let strings = StringConverter::new().with_max_message_size(4);
    /// assert!(strings.check_message(&"four".to_owned()).is_ok());
    /// assert!(matches!(
    ///     strings.check_message(&"fives".to_owned()),
    ///     Err(SerializeError::TooLarge { length: 5, limit: 4 })
    /// ));
    /// ```
    pub const fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The largest body, in bytes, that deserializers accept and `send`
    /// takes (see [`with_max_message_size`](Self::with_max_message_size)).
    pub const fn max_message_size(&self) -> usize {
        self.max_message_size
    }
}

impl LengthPrefixed<Bytes> {
    /// Whether received messages are slices of the chunk the connection
    /// read them in (true, the default) or copies (false).
    ///
    /// A slice costs no allocation and no copy, which for small messages
    /// is most of the cost of receiving them. The rule: a message keeps
    /// its read chunk alive for as long as it lives, and a chunk is at most
    /// [`SHARED_CHUNK`](crate::converter::SHARED_CHUNK) bytes (64 KiB, or
    /// the connector's `read_chunk` if smaller). While a message waits in
    /// an event queue its chunk is counted in the memory budget (every
    /// message at least the bytes read for it). Once the application holds
    /// it, a small message kept for a long time can hold up to a chunk:
    /// copy it (`Bytes::copy_from_slice`) to keep it, or turn this off to
    /// have every message copied on arrival, as `tokio`'s
    /// `LengthDelimitedCodec` users do with `BytesMut::split_to`.
    ///
    /// ```
    /// use pike::converters::BytesConverter;
    /// assert!(BytesConverter::new().shared_read_buffer());
    /// let copying = BytesConverter::new().with_shared_read_buffer(false);
    /// assert!(!copying.shared_read_buffer());
    /// ```
    pub const fn with_shared_read_buffer(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Whether received messages are slices of the read chunk.
    pub const fn shared_read_buffer(&self) -> bool {
        self.shared
    }
}

impl<P> Default for LengthPrefixed<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Payload> Converter for LengthPrefixed<P> {
    type Message = P;
    type Serializer = LengthPrefixedSerializer<P>;
    type Deserializer = LengthPrefixedDeserializer<P>;

    fn write_whole(&self, message: &P, out: &mut WriteBuf<'_>) -> bool {
        let body = message.as_bytes();
        // The length's digits, then the space.
        let mut field = [b' '; LENGTH_FIELD_MAX + 1];
        let start = decimal_from_end(&mut field[..LENGTH_FIELD_MAX], body.len() as u64);
        let header = &field[start..];
        if header.len() + body.len() > out.remaining() {
            return false;
        }
        out.put(header);
        out.put(body);
        true
    }

    fn shares_input(&self) -> bool {
        self.shared && P::SLICES
    }

    fn message_size(&self, message: &P) -> usize {
        std::mem::size_of::<P>() + message.as_bytes().len()
    }

    /// Refuses a message whose body is over the limit
    /// ([`max_message_size`](Self::max_message_size): the body's bytes,
    /// not counting the length field), which the peer would refuse.
    fn check_message(&self, message: &P) -> Result<(), SerializeError> {
        let length = message.as_bytes().len();
        if length > self.max_message_size {
            return Err(SerializeError::TooLarge {
                length,
                limit: self.max_message_size,
            });
        }
        Ok(())
    }

    fn serializer(&self, message: &P) -> Self::Serializer {
        let mut w = ArrayWriter::<32>::new();
        push_decimal(&mut w, message.as_bytes().len() as u64);
        w.push(b' ');
        LengthPrefixedSerializer {
            header: Staged::from_slice(w.as_bytes()),
            body_pos: 0,
            _payload: PhantomData,
        }
    }

    fn deserializer(&self) -> Self::Deserializer {
        LengthPrefixedDeserializer {
            state: BodyState::Header(Field::new()),
            max_message_size: self.max_message_size,
            shared: self.shares_input(),
            _payload: PhantomData,
        }
    }
}

/// Writes a length prefix, then the body straight from the message.
#[derive(Debug, Clone)]
pub struct LengthPrefixedSerializer<P> {
    header: Staged,
    body_pos: usize,
    _payload: PhantomData<fn(&P)>,
}

impl<P: Payload> Serializer for LengthPrefixedSerializer<P> {
    type Message = P;

    fn get_bytes(
        &mut self,
        message: &P,
        out: &mut WriteBuf<'_>,
        _waker: &Waker,
    ) -> Result<Encoded, SerializeError> {
        if !self.header.write_to(out) {
            return Ok(Encoded::More);
        }
        let body = message.as_bytes();
        self.body_pos += out.put(&body[self.body_pos..]);
        Ok(if self.body_pos == body.len() {
            Encoded::Done
        } else {
            Encoded::More
        })
    }
}

#[derive(Debug)]
enum BodyState {
    Header(Field<LENGTH_FIELD_MAX>),
    Body { body: Vec<u8>, length: usize },
}

/// Reads a length prefix, checks it against the limit, then the body.
#[derive(Debug)]
pub struct LengthPrefixedDeserializer<P> {
    state: BodyState,
    max_message_size: usize,
    /// Slice bodies out of shared input (see
    /// [`LengthPrefixed::with_shared_read_buffer`]) rather than copy them.
    shared: bool,
    _payload: PhantomData<fn() -> P>,
}

/// Checks the digits of a length seen so far, so that an oversized length is
/// refused as early as its digits show it.
fn check_partial_length(digits: &[u8], max_message_size: usize) -> Result<(), ProtocolError> {
    if digits.iter().any(|b| !b.is_ascii_digit()) {
        return Err(ProtocolError::InvalidNumber);
    }
    match parse_u64(digits) {
        Ok(v) if v > max_message_size as u64 => Err(ProtocolError::TooLarge {
            length: v,
            limit: max_message_size,
        }),
        Err(ProtocolError::NumberOverflow) => Err(ProtocolError::TooLarge {
            length: u64::MAX,
            limit: max_message_size,
        }),
        _ => Ok(()),
    }
}

/// The fast path's header: if `data` starts with a whole length field
/// (digits, then a space, within `LENGTH_FIELD_MAX + 1` bytes), the length
/// and where the body starts. `None` if the space is not there (the general
/// path then collects the field). In one pass, with the outcomes of
/// [`check_partial_length`] then [`parse_u64`] on the digits.
fn whole_header(
    data: &[u8],
    max_message_size: usize,
) -> Option<Result<(usize, usize), ProtocolError>> {
    let mut value = 0u64;
    let mut overflow = false;
    let mut not_digit = false;
    for (i, &b) in data.iter().take(LENGTH_FIELD_MAX + 1).enumerate() {
        if b == b' ' {
            return Some(if not_digit || i == 0 {
                Err(ProtocolError::InvalidNumber)
            } else if overflow {
                Err(ProtocolError::TooLarge {
                    length: u64::MAX,
                    limit: max_message_size,
                })
            } else if value > max_message_size as u64 {
                Err(ProtocolError::TooLarge {
                    length: value,
                    limit: max_message_size,
                })
            } else {
                Ok((value as usize, i + 1))
            });
        }
        if b.is_ascii_digit() {
            match value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
            {
                Some(v) => value = v,
                None => overflow = true,
            }
        } else {
            not_digit = true;
        }
    }
    None
}

impl<P: Payload> Deserializer for LengthPrefixedDeserializer<P> {
    type Message = P;

    fn put_bytes(
        &mut self,
        data: &[u8],
        _waker: &Waker,
    ) -> Result<(usize, Decoded<P>), ProtocolError> {
        self.put(data, |range| P::from_slice(&data[range]))
    }

    fn put_shared(
        &mut self,
        data: &Bytes,
        start: usize,
        waker: &Waker,
    ) -> Result<(usize, Decoded<P>), ProtocolError> {
        if !self.shared {
            return self.put_bytes(&data[start..], waker);
        }
        self.put(&data[start..], |range| {
            P::from_shared(data, start + range.start..start + range.end)
        })
    }
}

impl<P: Payload> LengthPrefixedDeserializer<P> {
    /// Takes a prefix of `data`; `whole` builds a message from a body that
    /// is all in `data`, given its range there.
    fn put(
        &mut self,
        data: &[u8],
        whole: impl FnOnce(Range<usize>) -> Result<P, ProtocolError>,
    ) -> Result<(usize, Decoded<P>), ProtocolError> {
        let mut used = 0;
        if let BodyState::Header(field) = &self.state
            && field.len == 0
            && let Some(header) = whole_header(data, self.max_message_size)
        {
            // Fast path: the whole header is here, so parse it in place
            // (the checks are those of the general path below).
            let (length, start) = header?;
            if data.len() - start >= length {
                let message = whole(start..start + length)?;
                return Ok((start + length, Decoded::Done(message)));
            }
        }
        if let BodyState::Header(field) = &mut self.state {
            let (n, complete) = field.take(data)?;
            used = n;
            let digits = field.as_bytes();
            check_partial_length(digits, self.max_message_size)?;
            if !complete {
                return Ok((used, Decoded::NeedMore));
            }
            // Checked above: digits only, at most the limit.
            let length = parse_u64(digits)? as usize;
            if data.len() - used >= length {
                // Fast path: the whole body is here; one allocation.
                let message = whole(used..used + length)?;
                return Ok((used + length, Decoded::Done(message)));
            }
            let body = Vec::with_capacity(length.min(BODY_RESERVE_STEP));
            self.state = BodyState::Body { body, length };
        }
        let BodyState::Body { body, length } = &mut self.state else {
            unreachable!("the header state was left above")
        };
        let take = (*length - body.len()).min(data.len() - used);
        body.extend_from_slice(&data[used..used + take]);
        used += take;
        if body.len() < *length {
            return Ok((used, Decoded::NeedMore));
        }
        let body = std::mem::take(body);
        Ok((used, Decoded::Done(P::from_vec(body)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let mut w = ArrayWriter::<32>::new();
        write_python_repr(&mut w, x);
        String::from_utf8(w.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn python_repr_forms() {
        // Each pair is (value, what CPython 3's repr() prints for it).
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (22.0 / 7.0, "3.142857142857143"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.234e-5, "1.234e-05"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.2250738585072014e-308, "-2.2250738585072014e-308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (100.0, "100.0"),
            (1e22, "1e+22"),
        ];
        for &(x, want) in cases {
            assert_eq!(repr(x), want, "repr of {x:?}");
        }
    }

    proptest::proptest! {
        /// The fast path's one-pass header parse gives what the general
        /// path's checks give, errors included.
        #[test]
        fn whole_header_agrees_with_the_field_checks(
            data in proptest::collection::vec(
                proptest::sample::select(b"0123456789 x".to_vec()),
                0..30,
            ),
            max in proptest::prop_oneof![0usize..100_000, proptest::num::usize::ANY],
        ) {
            let expected = data
                .iter()
                .take(LENGTH_FIELD_MAX + 1)
                .position(|&b| b == b' ')
                .map(|space| {
                    let digits = &data[..space];
                    check_partial_length(digits, max)
                        .and_then(|()| parse_u64(digits))
                        .map(|v| (v as usize, space + 1))
                });
            // ProtocolError has no PartialEq: compare what they print.
            proptest::prop_assert_eq!(
                format!("{:?}", whole_header(&data, max)),
                format!("{expected:?}")
            );
        }

        /// Decimal digits written from the end read back as the number.
        #[test]
        fn decimal_from_end_round_trips(v in proptest::num::u64::ANY) {
            let mut field = [0u8; 20];
            let start = decimal_from_end(&mut field, v);
            proptest::prop_assert_eq!(parse_u64(&field[start..]).ok(), Some(v));
            let text = v.to_string();
            proptest::prop_assert_eq!(&field[start..], text.as_bytes());
        }
    }

    #[test]
    fn staged_encodings() {
        let c = IntConverter;
        assert_eq!(
            c.serializer(&i64::MIN).staged.as_bytes(),
            b"-9223372036854775808 "
        );
        assert_eq!(c.serializer(&0).staged.as_bytes(), b"0 ");
    }
}
