#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the bool deserializer.

use libfuzzer_sys::fuzz_target;
use pike::converters::*;

fuzz_target!(|data: &[u8]| {
    pike::converters::fuzzing::deserialize_chunked(&BoolConverter, data);
});
