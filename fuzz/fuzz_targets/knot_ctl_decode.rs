//! Any bytes read as knotd's control-socket answer stream, delivered in two pieces split
//! where the first byte says: the decoder gives units or an error, never a panic; the units
//! do not depend on the split; each decoded unit encodes and decodes back to itself; and
//! reading the units as a `zone-status` answer never panics.
#![no_main]

use dns_oops::sources::control::knot::{event_time, zone_status};
use dns_oops::sources::control::knot_ctl::{Decoder, DecodeError, Item, Unit};
use libfuzzer_sys::fuzz_target;

/// Every unit of `pieces`, then how the stream ended.
fn decode(pieces: &[&[u8]]) -> (Vec<Unit>, Option<DecodeError>) {
    let mut decoder = Decoder::new();
    let mut units = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        loop {
            match decoder.next_unit() {
                Ok(Some(unit)) => units.push(unit),
                Ok(None) => break,
                Err(e) => return (units, Some(e)),
            }
        }
    }
    loop {
        match decoder.finish() {
            Ok(Some(unit)) => units.push(unit),
            Ok(None) => return (units, None),
            Err(e) => return (units, Some(e)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(stream.len());
    let whole = decode(&[stream]);
    let pieces = decode(&[&stream[..split], &stream[split..]]);
    assert_eq!(whole, pieces, "the split changed the units");
    for unit in &whole.0 {
        let again = decode(&[&unit.encode()]);
        assert_eq!(again.1, None);
        assert_eq!(again.0.len(), 1);
        assert_eq!(&again.0[0], unit);
        if let Some(value) = unit.get(Item::Data) {
            let _ = event_time(value, 1.7e9);
        }
    }
    let _ = zone_status(&whole.0, 1.7e9);
});
