//! Any bytes given as a zone file yield records or an error naming a line, never a panic;
//! every name read prints in a form that reads back as the same name; the signature scan
//! takes whatever the reader yields.
#![no_main]

use std::time::Duration;

use dns_oops::zone::master::ZoneReader;
use dns_oops::zone::name::Name;
use dns_oops::zone::scan::SignatureScan;
use libfuzzer_sys::fuzz_target;

fn reads_back(name: &Name) {
    let printed = name.to_string();
    let again = Name::parse(printed.as_bytes(), None).expect("a printed name reads back");
    assert_eq!(again.as_wire(), name.as_wire(), "{printed}");
}

fuzz_target!(|data: &[u8]| {
    let origin = Name::parse(b"fuzz.test.", None).ok();
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let mut reader = ZoneReader::new(data, "fuzz.zone", origin);
    let mut scan = SignatureScan::new(1_795_993_200, 3);
    loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                assert!((1..=lines).contains(&record.line));
                reads_back(&record.owner);
                let _ = record.rdata().count();
                match record.rrsig() {
                    Some(rrsig) => {
                        reads_back(&rrsig.signer);
                        scan.add_signature(&record.owner, rrsig);
                    }
                    None => scan.add_record(&record.owner, record.class, record.rtype),
                }
            }
            Ok(None) => break,
            Err(e) => {
                assert!((1..=lines).contains(&e.line), "{e}");
                let _ = e.to_string();
                break;
            }
        }
    }
    let _ = scan.verdict(Duration::from_secs(86_400));
    for sig in scan
        .earliest()
        .iter()
        .chain(&scan.expired())
        .chain(&scan.not_yet_valid())
    {
        let _ = (sig.owner.to_string(), sig.type_covered.to_string());
    }
});
