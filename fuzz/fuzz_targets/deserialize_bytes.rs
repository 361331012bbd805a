#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the bytes deserializer.

use libfuzzer_sys::fuzz_target;
use pike::converters::*;

fuzz_target!(|data: &[u8]| {
    pike::converters::fuzzing::deserialize_chunked(&BytesConverter::new().with_max_message_size(4096), data);
});
