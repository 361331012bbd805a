#![no_main]
//! Arbitrary socket events and incoming bytes driving one connection core.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pike::endpoint::fuzzing::drive(data);
});
