//! Any policy expression parses or fails with an offset inside the text; a parsed one
//! prints in a canonical form that parses to the same form again.
#![no_main]

use dns_oops::engine::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Policy::parse(text) {
        Ok(policy) => {
            let canonical = policy.to_string();
            let again = Policy::parse(&canonical).expect("the canonical form parses");
            assert_eq!(again.to_string(), canonical);
        }
        Err(e) => assert!(e.offset <= text.len(), "offset {} beyond {}", e.offset, text.len()),
    }
});
