//! Nanoseconds per encode and decode of every primitive converter, and of
//! the serde converters on a struct of about 1 KiB (beside a 1 KiB string).
//!
//! `cargo bench -p pike --bench converters --features postcard,json,msgpack`

// `criterion_group!` generates undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::task::Waker;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pike::converter::{Converter, Decoded, Deserializer, Encoded, Serializer, WriteBuf};
use pike::converters::{
    BoolConverter, BytesConverter, FloatConverter, IntConverter, StringConverter, VecConverter,
};

/// Encodes `message` into a reused buffer.
fn encode<C: Converter>(c: &C, message: &C::Message, buf: &mut Vec<u8>) {
    buf.clear();
    let mut s = c.serializer(message);
    let mut out = WriteBuf::new(buf, usize::MAX);
    let status = s.get_bytes(message, &mut out, Waker::noop());
    assert_eq!(status.ok(), Some(Encoded::Done));
}

/// Decodes one message from `wire`.
fn decode<C: Converter>(c: &C, wire: &[u8]) -> C::Message {
    let mut d = c.deserializer();
    match d.put_bytes(wire, Waker::noop()) {
        Ok((_, Decoded::Done(m))) => m,
        _ => panic!("bad wire bytes"),
    }
}

fn bench_one<C: Converter>(crit: &mut Criterion, name: &str, c: C, message: C::Message) {
    let mut buf = Vec::with_capacity(1 << 17);
    encode(&c, &message, &mut buf);
    let wire = buf.clone();
    let mut group = crit.benchmark_group(name);
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| encode(&c, black_box(&message), &mut buf));
    });
    group.bench_function("decode", |b| b.iter(|| decode(&c, black_box(&wire))));
    if c.shares_input() {
        // The path of bytes straight from the socket: a slice, no copy.
        let chunk = Bytes::from(wire.clone());
        group.bench_function("decode_shared", |b| {
            b.iter(|| {
                let mut d = c.deserializer();
                match d.put_shared(black_box(&chunk), 0, Waker::noop()) {
                    Ok((_, Decoded::Done(m))) => m,
                    _ => panic!("bad wire bytes"),
                }
            })
        });
    }
    if c.write_whole(&message, &mut WriteBuf::new(&mut Vec::new(), usize::MAX)) {
        // The fast path a connection takes when the message fits.
        group.bench_function("write_whole", |b| {
            b.iter(|| {
                buf.clear();
                let mut out = WriteBuf::new(&mut buf, usize::MAX);
                assert!(c.write_whole(black_box(&message), &mut out));
            });
        });
    }
    group.finish();
}

fn converters(crit: &mut Criterion) {
    bench_one(crit, "bool", BoolConverter, true);
    bench_one(crit, "int", IntConverter, -1_234_567_890_123);
    bench_one(crit, "float", FloatConverter, 22.0 / 7.0);
    bench_one(
        crit,
        "string_16B",
        StringConverter::new(),
        "0123456789abcdef".to_owned(),
    );
    bench_one(
        crit,
        "string_64KiB",
        StringConverter::new(),
        "s".repeat(64 * 1024),
    );
    bench_one(
        crit,
        "bytes_16B",
        BytesConverter::new(),
        Bytes::from_static(b"0123456789abcdef"),
    );
    bench_one(
        crit,
        "bytes_64KiB",
        BytesConverter::new(),
        Bytes::from(vec![7u8; 64 * 1024]),
    );
    bench_one(
        crit,
        "bytes_shared_16B",
        BytesConverter::new().with_shared_read_buffer(true),
        Bytes::from_static(b"0123456789abcdef"),
    );
    bench_one(
        crit,
        "bytes_shared_64KiB",
        BytesConverter::new().with_shared_read_buffer(true),
        Bytes::from(vec![7u8; 64 * 1024]),
    );
    bench_one(crit, "vec_256B", VecConverter::new(), vec![1u8; 256]);
    bench_one(
        crit,
        "string_1KiB",
        StringConverter::new(),
        "s".repeat(1024),
    );
    #[cfg(feature = "postcard")]
    bench_one(
        crit,
        "postcard_1KiB_struct",
        pike::converters::serde::PostcardConverter::<Record>::new(),
        Record::sample(),
    );
    #[cfg(feature = "json")]
    bench_one(
        crit,
        "json_1KiB_struct",
        pike::converters::serde::JsonConverter::<Record>::new(),
        Record::sample(),
    );
    #[cfg(feature = "msgpack")]
    bench_one(
        crit,
        "msgpack_1KiB_struct",
        pike::converters::serde::MsgpackConverter::<Record>::new(),
        Record::sample(),
    );
}

/// A struct of about 1 KiB in postcard (an id, a name, tags and 120
/// floats): what a typed message of an application looks like.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    values: Vec<f64>,
}

impl Record {
    #[allow(dead_code)]
    fn sample() -> Self {
        Record {
            id: 1_234_567,
            name: "a record of about one kibibyte".to_owned(),
            tags: vec!["alpha".into(), "beta".into(), "gamma".into()],
            values: (0..120).map(|i| f64::from(i) * 1.25).collect(),
        }
    }
}

criterion_group!(benches, converters);
criterion_main!(benches);
