//! Any text given as a config file yields a config or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = dns_oops::config::parse(text, std::path::Path::new("fuzz.toml")) {
            // Rendering the error (line/column from spans) must not panic either.
            let _ = e.to_string();
        }
    }
});
