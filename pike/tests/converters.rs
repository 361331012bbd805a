//! Converters on plain buffers, no I/O. Includes every vector of the Python
//! original's `converters_test.py`, then Python `repr` forms, limits, bad
//! input and round-trip properties.

// The counting allocator below is the only unsafe code in the project.
#![allow(unsafe_code)]

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::task::Waker;
use util::encode_with_room;

use bytes::Bytes;
use pike::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use pike::converters::{
    BoolConverter, BytesConverter, FloatConverter, IntConverter, StringConverter, VecConverter,
};
use pike::error::ProtocolError;
use proptest::prelude::*;

// ----- an allocator that counts what this thread allocates ---------------

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated by this thread while `f` runs.
fn allocated_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

// ----- helpers -----------------------------------------------------------

fn encode<C: Converter>(c: &C, message: &C::Message) -> Vec<u8> {
    encode_with_room(c, message, 1 << 20)
}

/// Decodes one message from `data`; returns it and how many bytes it used.
fn decode_one<C: Converter>(c: &C, data: &[u8]) -> Result<(C::Message, usize), ProtocolError> {
    let mut d = c.deserializer();
    match d.put_bytes(data, Waker::noop())? {
        (used, Decoded::Done(m)) => Ok((m, used)),
        (used, other) => panic!(
            "expected a message from {:?}, got {} after {used} bytes",
            String::from_utf8_lossy(data),
            if matches!(other, Decoded::NeedMore) {
                "NeedMore"
            } else {
                "Pending"
            },
        ),
    }
}

/// `data` cut into consecutive pieces of the given sizes (cycled; a size
/// of 0 counts as 1), the last one possibly shorter.
fn pieces<'a>(data: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = data;
    sizes.iter().cycle().map_while(move |&size| {
        if rest.is_empty() {
            return None;
        }
        let (piece, after) = rest.split_at(size.max(1).min(rest.len()));
        rest = after;
        Some(piece)
    })
}

/// Feeds `data` in the given chunk sizes (cycled), one deserializer after
/// another, and returns every message completed.
fn decode_chunked<C: Converter>(
    c: &C,
    data: &[u8],
    chunks: &[usize],
) -> Result<Vec<C::Message>, ProtocolError> {
    let mut out = Vec::new();
    let mut d = c.deserializer();
    for mut chunk in pieces(data, chunks) {
        while !chunk.is_empty() {
            let (used, status) = d.put_bytes(chunk, Waker::noop())?;
            chunk = &chunk[used..];
            match status {
                Decoded::Done(m) => {
                    out.push(m);
                    d = c.deserializer();
                }
                Decoded::NeedMore => assert!(chunk.is_empty(), "primitives consume everything"),
                Decoded::Pending => panic!("primitives never wait"),
            }
        }
    }
    Ok(out)
}

/// The original's byte-at-a-time test: every proper prefix waits for more
/// and consumes all it is given; the last byte completes the message.
fn assert_bytewise<C: Converter>(c: &C, wire: &[u8], expected: &C::Message)
where
    C::Message: PartialEq + Debug + Clone,
{
    let mut d = c.deserializer();
    for (i, b) in wire.iter().enumerate() {
        let (used, status) = d.put_bytes(std::slice::from_ref(b), Waker::noop()).unwrap();
        assert_eq!(used, 1);
        if i + 1 < wire.len() {
            assert_eq!(status, Decoded::NeedMore, "prefix of {} bytes", i + 1);
        } else {
            assert_eq!(status, Decoded::Done(expected.clone()));
        }
    }
}

/// Round trip through the wire form, checking the exact bytes.
fn assert_wire<C: Converter>(c: &C, message: C::Message, wire: &[u8])
where
    C::Message: PartialEq + Debug + Clone,
{
    assert_eq!(
        encode(c, &message),
        wire,
        "encoding of {message:?} as {:?}",
        String::from_utf8_lossy(wire)
    );
    let (decoded, used) = decode_one(c, wire).unwrap();
    assert_eq!(decoded, message);
    assert_eq!(used, wire.len());
    assert_bytewise(c, wire, &message);
}

// ----- the original's vectors --------------------------------------------

#[test]
fn bool_vectors() {
    assert_wire(&BoolConverter, true, b"True");
    assert_wire(&BoolConverter, false, b"False");
}

#[test]
fn int_vectors() {
    assert_wire(&IntConverter, -1, b"-1 ");
    assert_wire(&IntConverter, 0, b"0 ");
    assert_wire(&IntConverter, 9999, b"9999 ");
}

#[test]
fn float_vectors() {
    assert_wire(&FloatConverter, -1.5, b"-1.5 ");
    assert_wire(&FloatConverter, 0.0, b"0.0 ");
    assert_wire(&FloatConverter, 22.0 / 7.0, b"3.142857142857143 ");
}

#[test]
fn string_vectors() {
    assert_wire(&StringConverter::new(), String::new(), b"0 ");
    assert_wire(&StringConverter::new(), "a".to_owned(), b"1 a");
    assert_wire(&StringConverter::new(), "abc".to_owned(), b"3 abc");
}

#[test]
fn three_strings_back_to_back_in_one_buffer() {
    let c = StringConverter::new();
    let wire = b"3 abc0 7 hi mom!";
    let mut rest: &[u8] = wire;
    for expected in ["abc", "", "hi mom!"] {
        let (m, used) = decode_one(&c, rest).unwrap();
        assert_eq!(m, expected);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
}

#[test]
fn trailing_bytes_are_left_unconsumed() {
    let c = StringConverter::new();
    let (m, used) = decode_one(&c, b"3 xyzabc").unwrap();
    assert_eq!(m, "xyz");
    assert_eq!(&b"3 xyzabc"[used..], b"abc");
    assert_eq!(decode_one(&IntConverter, b"-12 abc").unwrap(), (-12, 4));
    assert_eq!(decode_one(&BoolConverter, b"Trueabc").unwrap(), (true, 4));
    assert_eq!(decode_one(&FloatConverter, b"0.5 abc").unwrap(), (0.5, 4));
}

// ----- beyond the original ------------------------------------------------

#[test]
fn python_repr_forms_parse_and_print() {
    // (text Python's repr writes, value)
    let cases: &[(&str, f64)] = &[
        ("1e+16", 1e16),
        ("inf", f64::INFINITY),
        ("-inf", f64::NEG_INFINITY),
        ("5e-324", 5e-324),
        ("1.7976931348623157e+308", f64::MAX),
        ("0.1", 0.1),
        ("-0.0", -0.0),
        ("1e-05", 1e-5),
        ("123456789.125", 123456789.125),
    ];
    for &(text, value) in cases {
        let wire = format!("{text} ");
        assert_wire(&FloatConverter, value, wire.as_bytes());
    }
    let wire = encode(&FloatConverter, &f64::NAN);
    assert_eq!(wire, b"nan ");
    assert!(decode_one(&FloatConverter, b"nan ").unwrap().0.is_nan());
    // Other spellings Python's float() also reads.
    assert_eq!(decode_one(&FloatConverter, b"1E5 ").unwrap().0, 1e5);
    assert_eq!(
        decode_one(&FloatConverter, b"Infinity ").unwrap().0,
        f64::INFINITY
    );
}

#[test]
fn int_extremes() {
    assert_wire(&IntConverter, i64::MIN, b"-9223372036854775808 ");
    assert_wire(&IntConverter, i64::MAX, b"9223372036854775807 ");
}

#[test]
fn multibyte_utf8() {
    let s = "héllo, 世界 🦀".to_owned();
    let wire = format!("{} {s}", s.len());
    assert_wire(&StringConverter::new(), s, wire.as_bytes());
}

#[test]
fn bytes_and_vec_share_the_string_framing() {
    assert_wire(
        &VecConverter::new(),
        vec![0u8, 255, b' ', 7],
        b"4 \x00\xff \x07",
    );
    assert_wire(
        &BytesConverter::new(),
        Bytes::from_static(b"\xff\x00"),
        b"2 \xff\x00",
    );
    assert_wire(&BytesConverter::new(), Bytes::new(), b"0 ");
}

#[test]
fn serializers_resume_in_a_tight_buffer() {
    let c = StringConverter::new();
    let s = "a fairly long message".to_owned();
    for room in 1..6 {
        assert_eq!(encode_with_room(&c, &s, room), encode(&c, &s));
    }
    assert_eq!(
        encode_with_room(&IntConverter, &i64::MIN, 1),
        b"-9223372036854775808 "
    );
    assert_eq!(encode_with_room(&FloatConverter, &0.1, 2), b"0.1 ");
    assert_eq!(encode_with_room(&BoolConverter, &false, 1), b"False");
}

#[test]
fn a_body_split_across_reads_decodes() {
    let c = StringConverter::new().with_max_message_size(1 << 20);
    let body = "x".repeat(100_000);
    let wire = encode(&c, &body);
    let decoded = decode_chunked(&c, &wire, &[7, 1000, 65536]).unwrap();
    assert_eq!(decoded, vec![body]);
}

// ----- bad input ----------------------------------------------------------

/// Feeds `wire` whole and byte by byte; both must end in a protocol error
/// matching `check`, never a panic, and never wait past the end.
fn assert_rejects<C: Converter>(c: &C, wire: &[u8], check: impl Fn(&ProtocolError) -> bool)
where
    C::Message: Debug,
{
    for chunk in [wire.len(), 1] {
        match decode_chunked(c, wire, &[chunk]) {
            Err(e) => assert!(
                check(&e),
                "{:?}: wrong error {e:?}",
                String::from_utf8_lossy(wire)
            ),
            Ok(m) => panic!("{:?} decoded to {m:?}", String::from_utf8_lossy(wire)),
        }
    }
}

#[test]
fn bad_bools() {
    for wire in [&b"x"[..], b"true", b"Tru ", b"Fals3", b"FALSE", b" True"] {
        assert_rejects(&BoolConverter, wire, |e| {
            matches!(e, ProtocolError::InvalidBool)
        });
    }
}

#[test]
fn bad_ints() {
    use ProtocolError::*;
    for wire in [
        &b"12a "[..],
        b"--1 ",
        b"- ",
        b" ",
        b"+5 ",
        b"1-2 ",
        b"0x10 ",
        b"1.0 ",
    ] {
        assert_rejects(&IntConverter, wire, |e| matches!(e, InvalidNumber));
    }
    for wire in [
        &b"9223372036854775808 "[..],
        b"-9223372036854775809 ",
        b"99999999999999999999 ",
    ] {
        assert_rejects(&IntConverter, wire, |e| matches!(e, NumberOverflow));
    }
    // 21 bytes without a space: refused without reading further.
    assert_rejects(&IntConverter, b"000000000000000000001", |e| {
        matches!(e, FieldTooLong { limit: 20 })
    });
}

#[test]
fn bad_floats() {
    use ProtocolError::*;
    for wire in [&b"abc "[..], b"1.2.3 ", b" ", b"1e ", b"--1 ", b"\xff "] {
        assert_rejects(&FloatConverter, wire, |e| matches!(e, InvalidFloat));
    }
    let long = [b'1'; 40];
    assert_rejects(&FloatConverter, &long, |e| {
        matches!(e, FieldTooLong { limit: 32 })
    });
}

#[test]
fn bad_lengths() {
    use ProtocolError::*;
    let c = StringConverter::new();
    for wire in [&b"x abc"[..], b"-1 a", b" abc", b"3x abc", b"+3 abc"] {
        assert_rejects(&c, wire, |e| matches!(e, InvalidNumber));
    }
    assert_rejects(&c, b"2 \xff\xfe", |e| matches!(e, InvalidUtf8));
    assert_rejects(&c, b"3 a\xe4\xb8", |e| matches!(e, InvalidUtf8));
    assert_rejects(&c, b"000000000000000000001 a", |e| {
        matches!(e, FieldTooLong { .. })
    });
}

#[test]
fn an_oversized_length_is_refused_before_allocating() {
    let limit = 1 << 20;
    let c = StringConverter::new().with_max_message_size(limit);
    let (result, bytes) = allocated_during(|| {
        let mut d = c.deserializer();
        d.put_bytes(b"99999999999999999999 ", Waker::noop())
    });
    match result {
        Err(ProtocolError::TooLarge { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(bytes < 1024, "allocated {bytes} bytes for a refused length");

    // Refused as soon as the digits exceed the limit, before the space.
    let mut d = c.deserializer();
    assert!(matches!(
        d.put_bytes(b"10485760", Waker::noop()),
        Err(ProtocolError::TooLarge {
            length: 10485760,
            ..
        })
    ));
    // Exactly the limit is fine; one more is not.
    let ok = format!("{limit} ");
    let mut d = c.deserializer();
    assert_eq!(
        d.put_bytes(ok.as_bytes(), Waker::noop()).unwrap(),
        (ok.len(), Decoded::NeedMore)
    );
    let over = format!("{} ", limit + 1);
    assert_rejects(&c, over.as_bytes(), |e| {
        matches!(e, ProtocolError::TooLarge { .. })
    });
    // The same for bytes.
    assert_rejects(
        &VecConverter::new().with_max_message_size(3),
        b"4 abcd",
        |e| {
            matches!(
                e,
                ProtocolError::TooLarge {
                    length: 4,
                    limit: 3
                }
            )
        },
    );
}

#[test]
fn an_announced_body_commits_memory_as_it_arrives() {
    // A peer announcing the full limit and sending a byte gets no more than
    // a bounded first reservation, not the announced length.
    let c = VecConverter::new().with_max_message_size(64 << 20);
    let (_, bytes) = allocated_during(|| {
        let mut d = c.deserializer();
        d.put_bytes(b"67108864 x", Waker::noop()).unwrap()
    });
    assert!(
        bytes <= 256 * 1024 + 1024,
        "allocated {bytes} bytes up front"
    );
}

#[test]
fn encoding_a_primitive_allocates_nothing() {
    let mut buf = Vec::with_capacity(64);
    let ((), bytes) = allocated_during(|| {
        for (i, x) in [0.1, -1.5e300, f64::NAN].iter().enumerate() {
            let mut s = FloatConverter.serializer(x);
            let mut out = WriteBuf::new(&mut buf, 64);
            assert_eq!(
                s.get_bytes(x, &mut out, Waker::noop()).unwrap(),
                Encoded::Done
            );
            let mut s = IntConverter.serializer(&(i as i64 - 7));
            let mut out = WriteBuf::new(&mut buf, 64);
            assert_eq!(
                s.get_bytes(&0, &mut out, Waker::noop()).unwrap(),
                Encoded::Done
            );
            buf.clear();
        }
    });
    assert_eq!(bytes, 0);
}

// ----- properties ---------------------------------------------------------

/// Splits `wire` into chunks of the given sizes (cycled) and decodes.
fn roundtrip<C: Converter>(c: &C, messages: &[C::Message], chunks: &[usize]) -> Vec<C::Message> {
    let mut wire = Vec::new();
    for m in messages {
        wire.extend(encode(c, m));
    }
    decode_chunked(c, &wire, chunks).unwrap()
}

/// As [`decode_chunked`], but each piece arrives as a shared chunk, after
/// `skip` bytes that are not part of the input (as when the network loop
/// splits one buffer into reads), and goes to `put_shared`. Also returns,
/// for each message, whether it is a slice of its last chunk.
fn decode_shared_chunked<C>(c: &C, data: &[u8], chunks: &[usize], skip: usize) -> Vec<(Bytes, bool)>
where
    C: Converter<Message = Bytes>,
{
    let mut out = Vec::new();
    let mut d = c.deserializer();
    for input in pieces(data, chunks) {
        let mut piece = vec![b'#'; skip];
        piece.extend_from_slice(input);
        let chunk = Bytes::from(piece);
        let mut start = skip;
        while start < chunk.len() {
            let (used, status) = d.put_shared(&chunk, start, Waker::noop()).unwrap();
            start += used;
            match status {
                Decoded::Done(m) => {
                    let inside = chunk.as_ptr_range().contains(&m.as_ptr()) && !m.is_empty();
                    out.push((m, inside));
                    d = c.deserializer();
                }
                Decoded::NeedMore => assert_eq!(start, chunk.len(), "consumes everything"),
                Decoded::Pending => panic!("primitives never wait"),
            }
        }
    }
    out
}

#[test]
fn shared_input_makes_messages_slices_of_it() {
    let wire = b"3 abc5 hello0 4 wxyz";
    let shared = BytesConverter::new().with_shared_read_buffer(true);
    let got = decode_shared_chunked(&shared, wire, &[wire.len()], 2);
    let bodies: Vec<&[u8]> = got.iter().map(|(m, _)| &m[..]).collect();
    assert_eq!(bodies, [&b"abc"[..], b"hello", b"", b"wxyz"]);
    // Every non-empty message points into the chunk: no copy.
    assert!(got.iter().all(|(m, inside)| *inside || m.is_empty()));
    // Messages cut across chunks are collected, as before.
    let got = decode_shared_chunked(&shared, wire, &[4], 0);
    let bodies: Vec<&[u8]> = got.iter().map(|(m, _)| &m[..]).collect();
    assert_eq!(bodies, [&b"abc"[..], b"hello", b"", b"wxyz"]);
    // Slicing is the default; turned off, the same calls copy, and say so.
    assert!(BytesConverter::new().shares_input());
    let copying = BytesConverter::new().with_shared_read_buffer(false);
    assert!(!copying.shares_input());
    assert!(shared.shares_input());
    // Payloads that cannot slice do not ask for shared input.
    assert!(!pike::converters::StringConverter::new().shares_input());
    assert!(!pike::converters::VecConverter::new().shares_input());
    let got = decode_shared_chunked(&copying, wire, &[wire.len()], 2);
    assert!(got.iter().all(|(_, inside)| !inside));
}

fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..40, 1..8)
}

proptest! {
    #[test]
    fn ints_roundtrip(v in prop::collection::vec(any::<i64>(), 0..20), ch in chunks()) {
        prop_assert_eq!(roundtrip(&IntConverter, &v, &ch), v);
    }

    #[test]
    fn floats_roundtrip(v in prop::collection::vec(any::<f64>(), 0..20), ch in chunks()) {
        let back = roundtrip(&FloatConverter, &v, &ch);
        prop_assert_eq!(back.len(), v.len());
        for (a, b) in back.iter().zip(&v) {
            prop_assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{} vs {}", a, b);
        }
    }

    #[test]
    fn bools_roundtrip(v in prop::collection::vec(any::<bool>(), 0..20), ch in chunks()) {
        prop_assert_eq!(roundtrip(&BoolConverter, &v, &ch), v);
    }

    #[test]
    fn strings_roundtrip(v in prop::collection::vec(".{0,60}", 0..10), ch in chunks()) {
        prop_assert_eq!(roundtrip(&StringConverter::new(), &v, &ch), v);
    }

    #[test]
    fn bytes_roundtrip(
        v in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..10),
        ch in chunks(),
    ) {
        prop_assert_eq!(roundtrip(&VecConverter::new(), &v, &ch), v);
    }

    #[test]
    fn shared_bytes_roundtrip(
        v in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..10),
        ch in chunks(),
        skip in 0usize..4,
    ) {
        let c = BytesConverter::new().with_shared_read_buffer(true);
        let mut wire = Vec::new();
        for m in &v {
            wire.extend(encode(&c, &Bytes::from(m.clone())));
        }
        let back: Vec<Vec<u8>> = decode_shared_chunked(&c, &wire, &ch, skip)
            .into_iter()
            .map(|(m, _)| m.to_vec())
            .collect();
        prop_assert_eq!(back, v);
    }

    /// The whole-message fast path writes exactly what the serializer
    /// writes when it fits, and nothing at all when it does not.
    #[test]
    fn write_whole_matches_the_serializer(
        body in prop::collection::vec(any::<u8>(), 0..300),
        room in 0usize..320,
        before in 0usize..8,
    ) {
        let c = VecConverter::new();
        let wire = encode(&c, &body);
        let mut buf = vec![b'x'; before];
        let mut out = WriteBuf::new(&mut buf, before + room);
        let whole = c.write_whole(&body, &mut out);
        prop_assert_eq!(whole, wire.len() <= room);
        if whole {
            prop_assert_eq!(&buf[before..], &wire[..]);
        } else {
            prop_assert_eq!(buf.len(), before);
        }
    }

    /// Any bytes at all: a message, a wait for more, or a typed error;
    /// never a panic.
    #[test]
    fn arbitrary_input_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_chunked(&StringConverter::new().with_max_message_size(100), &data, &[3]);
        let _ = decode_chunked(&IntConverter, &data, &[5]);
        let _ = decode_chunked(&FloatConverter, &data, &[2]);
        let _ = decode_chunked(&BoolConverter, &data, &[1]);
    }
}

/// Cross-checks the float wire form against CPython itself on random bit
/// patterns: what we write is exactly `repr(x)`, and we read it back bit
/// for bit. Needs `python3` (on every CI machine); skipped with a notice
/// where it is missing.
#[test]
fn floats_match_cpython_repr() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut values: Vec<f64> = (0..4000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            f64::from_bits(state)
        })
        .filter(|x| !x.is_nan())
        .collect();
    values.extend([0.1, 1e16, 1e-5, 9_999_999_999_999_998.0, 1e-4, 0.5, 1e300]);
    let script = "import struct,sys\n\
        for line in sys.stdin:\n    \
        print(repr(struct.unpack('<d', int(line).to_bytes(8, 'little'))[0]))\n";
    let child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("python3 not found: skipping the CPython cross-check");
        return;
    };
    let input: String = values
        .iter()
        .map(|x| format!("{}\n", x.to_bits()))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let reprs = String::from_utf8(output.stdout).unwrap();
    let reprs: Vec<&str> = reprs.lines().collect();
    assert_eq!(reprs.len(), values.len());
    for (x, py) in values.iter().zip(reprs) {
        let ours = encode(&FloatConverter, x);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            format!("{py} "),
            "bits {:#x}",
            x.to_bits()
        );
        let (back, _) = decode_one(&FloatConverter, &ours).unwrap();
        assert_eq!(back.to_bits(), x.to_bits());
    }
}

// The fuzz targets' entry points, run on random input here so they cannot rot.
proptest! {
    #[test]
    fn fuzz_entry_points_hold(data in prop::collection::vec(any::<u8>(), 0..64)) {
        use pike::converters::fuzzing::deserialize_chunked;
        deserialize_chunked(&BoolConverter, &data);
        deserialize_chunked(&IntConverter, &data);
        deserialize_chunked(&FloatConverter, &data);
        deserialize_chunked(&StringConverter::new().with_max_message_size(64), &data);
        deserialize_chunked(&BytesConverter::new().with_max_message_size(64), &data);
        deserialize_chunked(
            &BytesConverter::new().with_max_message_size(64).with_shared_read_buffer(true),
            &data,
        );
    }
}
