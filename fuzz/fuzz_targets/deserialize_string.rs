#![no_main]
//! Arbitrary bytes, split at arbitrary points, through the string deserializer.

use libfuzzer_sys::fuzz_target;
use pike::converters::*;

fuzz_target!(|data: &[u8]| {
    pike::converters::fuzzing::deserialize_chunked(&StringConverter::new().with_max_message_size(4096), data);
});
