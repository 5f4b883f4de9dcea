//! Any hints file reads or fails with positions inside the text; hints that read write
//! back to a file that reads to the same hints, and render for every resolver.
#![no_main]

use dns_oops::intree::hints::parse;
use dns_oops::intree::render::{Resolver, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text, "fuzz.toml") {
        Ok(hints) => {
            let again = parse(&hints.to_toml(), "again.toml").expect("written hints read back");
            assert_eq!(again, hints);
            for resolver in Resolver::ALL {
                let _ = render(resolver, std::slice::from_ref(&hints), "/x.lua");
            }
        }
        Err(e) => {
            let lines = text.lines().count().max(1) + 1;
            for p in e.problems() {
                assert!(p.line >= 1 && p.line <= lines, "line {} of {lines}", p.line);
                assert!(p.column >= 1);
            }
            assert!(!e.problems().is_empty());
        }
    }
});
