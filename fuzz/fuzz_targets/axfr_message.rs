//! Any bytes read as a TCP stream of DNS messages (two-octet length before each) answering
//! an AXFR query for example.test.: the transfer reader, the SOA answer reader and the TSIG
//! record finder give a result or an error, never a panic; a transfer is only complete
//! after a closing SOA, and then its counts are consistent.
#![no_main]

use dns_oops::zone::axfr::{AxfrError, AxfrReader};
use dns_oops::zone::name::Name;
use dns_oops::zone::scan::SignatureScan;
use dns_oops::zone::wire::{TsigRecord, read_soa_answer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let zone = Name::parse(b"example.test.", None).expect("a valid name");
    // The query ID is taken from the first message, so real transfers make good seeds.
    let id = data.get(2..4).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut reader = AxfrReader::new(zone.clone(), id, SignatureScan::new(1_795_993_200, 2), None);
    let mut rest = data;
    let mut done = false;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (message, after) = tail.split_at(len);
        rest = after;
        let _ = read_soa_answer(message, &zone);
        if let Ok(Some(tsig)) = TsigRecord::find(message) {
            let mut signed = Vec::new();
            tsig.append_signed_data(message, true, &mut signed);
            assert!(tsig.start <= message.len());
        }
        match reader.message(message) {
            Ok(true) => {
                done = true;
                break;
            }
            Ok(false) => {}
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    }
    match reader.finish() {
        Ok(summary) => {
            assert!(done);
            assert!(summary.records >= 2, "an opening and a closing SOA");
            assert!(summary.scan.rrsets() >= 1);
            for sig in summary.scan.earliest().iter().chain(&summary.scan.expired()) {
                let _ = (sig.owner.to_string(), sig.type_covered.to_string());
            }
        }
        Err(e) => {
            assert!(!done || matches!(e, AxfrError::Tsig(_)), "{e}");
        }
    }
});
