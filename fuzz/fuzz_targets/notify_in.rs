//! Any bytes as a request to the NOTIFY listener, through `NotifyResponder::respond`: the
//! decode, ACL, TSIG and answer-building path the listener runs for every UDP datagram and
//! TCP message. The first byte chooses the listener and the sender; the rest is the request.
//!
//! | bits of the first byte | meaning |
//! |---|---|
//! | 0–1 | the key: none, hmac-sha256, hmac-sha384, hmac-sha512 (all named `notify-key.`) |
//! | 2 | TSIG required |
//! | 3 | the sender is outside the ACL (192.0.2.1 instead of 127.0.0.1) |
//! | 4–7 | the clock: the request's TSIG time, or that time moved by a chosen amount |
//!
//! Checked: no panic; no answer only for unreadable requests and responses; every answer
//! decodes, is a response with the request's ID and opcode; an accepted request came from
//! inside the ACL, names a configured zone, and carries a valid TSIG when one is required;
//! the answer to an accepted signed request verifies with the key over the request's MAC.
#![no_main]

use std::net::IpAddr;

use dns_oops::config::AddressPrefix;
use dns_oops::sources::notify_in::{NotifyOutcome, NotifyResponder};
use hickory_proto::op::{Header, Message, MessageType, OpCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, signed_bitmessage_to_buf};
use hickory_proto::rr::{Name, TSigner};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use libfuzzer_sys::fuzz_target;

/// The secret of every key (base64 `cGFzc3dvcmQgZm9yIE5PVElGWSB0byBkbnMtb29wcyE=`, the one
/// the seed corpus is signed with).
const SECRET: &[u8] = b"password for NOTIFY to dns-oops!";
/// "Now" for a request without a TSIG record.
const NOW: u64 = 1_700_000_000;
/// How far the clock is from the request's TSIG time, by the top four bits.
const SKEW: [i64; 16] = [
    0,
    0,
    0,
    0,
    1,
    -1,
    299,
    -299,
    300,
    -300,
    301,
    -301,
    86_400,
    -86_400,
    1 << 40,
    -(1 << 40),
];

fn key(choice: u8) -> Option<TSigner> {
    let algorithm = match choice & 3 {
        1 => TsigAlgorithm::HmacSha256,
        2 => TsigAlgorithm::HmacSha384,
        3 => TsigAlgorithm::HmacSha512,
        _ => return None,
    };
    let name = Name::from_ascii("notify-key.").unwrap();
    Some(TSigner::new(SECRET.to_vec(), algorithm, name, 300).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, request)) = data.split_first() else {
        return;
    };
    let key = key(choice);
    let require_tsig = choice & 4 != 0;
    let inside = choice & 8 == 0;
    let from: IpAddr = match inside {
        true => [127, 0, 0, 1].into(),
        false => [192, 0, 2, 1].into(),
    };
    let parsed = Message::from_vec(request).ok();
    let signed_at = parsed
        .as_ref()
        .and_then(|m| m.signature.as_ref())
        .map(|record| record.data.time);
    let now = signed_at
        .unwrap_or(NOW)
        .saturating_add_signed(SKEW[usize::from(choice >> 4)]);
    let zones = vec!["a.test.".to_string(), "example.test.".to_string()];
    let responder =
        NotifyResponder::new(&zones, AddressPrefix::loopback(), key.clone(), require_tsig);
    let answer = responder.respond(request, from, now);

    let header = Header::read(&mut BinDecoder::new(request)).ok();
    let Some(reply) = &answer.reply else {
        assert!(
            matches!(
                answer.outcome,
                NotifyOutcome::Unreadable | NotifyOutcome::Response
            ),
            "no answer for {:?}",
            answer.outcome
        );
        return;
    };
    let header = header.expect("an answered request has a header");
    let decoded = Message::from_vec(reply).expect("the answer decodes");
    assert_eq!(decoded.metadata.message_type, MessageType::Response);
    assert_eq!(decoded.metadata.id, header.metadata.id);
    assert_eq!(decoded.metadata.op_code, header.metadata.op_code);
    if !inside {
        assert_eq!(answer.outcome, NotifyOutcome::NotAllowed);
    }
    if answer.outcome != NotifyOutcome::Accepted {
        assert!(!decoded.metadata.authoritative);
        return;
    }
    assert!(decoded.metadata.authoritative);
    assert_eq!(header.metadata.op_code, OpCode::Notify);
    let zone = answer
        .zone
        .as_deref()
        .expect("an accepted request names its zone");
    assert!(zones.iter().any(|z| z == zone), "accepted zone {zone}");
    let request = parsed.expect("an accepted request parses");
    match (&request.signature, &key) {
        (None, _) => {
            assert!(!require_tsig, "accepted unsigned while TSIG is required");
            assert!(decoded.signature.is_none());
        }
        (Some(tsig), Some(key)) => {
            assert!(now.abs_diff(tsig.data.time) <= u64::from(tsig.data.fudge));
            let (signed_data, record) = signed_bitmessage_to_buf(reply, Some(&tsig.data.mac), true)
                .expect("the answer to a signed request is signed");
            assert!(record.data.error.is_none());
            key.verify(&signed_data, &record.data.mac)
                .expect("the answer's MAC verifies");
        }
        (Some(_), None) => panic!("accepted a signed request without a key"),
    }
});
