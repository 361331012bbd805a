#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the float deserializer.

use libfuzzer_sys::fuzz_target;
use pike::converters::*;

fuzz_target!(|data: &[u8]| {
    pike::converters::fuzzing::deserialize_chunked(&FloatConverter, data);
});
