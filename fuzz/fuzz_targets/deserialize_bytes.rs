#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the bytes
//! deserializer: copying, or slicing shared chunks (first byte's top bit).

use libfuzzer_sys::fuzz_target;
use pike::converters::*;

fuzz_target!(|data: &[u8]| {
    let shared = data.first().is_some_and(|b| b & 0x80 != 0);
    let converter = BytesConverter::new()
        .with_max_message_size(4096)
        .with_shared_read_buffer(shared);
    pike::converters::fuzzing::deserialize_chunked(&converter, data);
});
