//! Any datagram the probe receives is classified or ignored, never a panic.
#![no_main]

use dns_oops::sources::probe::classify_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify_answer(data, "example.test.");
});
