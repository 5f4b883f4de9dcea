//! The transfer reader on hand-built messages: a complete transfer, one cut short, refused,
//! a malformed RRSIG, a changed serial, records after the end, and a TSIG chain.

use super::*;
use crate::zone::wire::HEADER_LEN;

const NOW: i64 = 1_795_993_200;
const ZONE: &[u8] = b"\x07example\x04test\x00";

fn header(id: u16, rcode: u8, answers: u16, additionals: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x84, rcode, 0, 1]);
    m.extend_from_slice(&answers.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&additionals.to_be_bytes());
    m.extend_from_slice(ZONE);
    m.extend_from_slice(&[0, 252, 0, 1]);
    m
}

fn record(m: &mut Vec<u8>, owner: &[u8], rtype: u16, rdata: &[u8]) {
    m.extend_from_slice(owner);
    m.extend_from_slice(&rtype.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 1, 44]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
}

/// The SOA RDATA with compressed names pointing at the question's zone name.
fn soa(serial: u32) -> Vec<u8> {
    let mut r = vec![3, b'n', b's', b'1', 0xC0, 12, 0xC0, 12];
    for v in [serial, 3600, 600, 86400, 300] {
        r.extend_from_slice(&v.to_be_bytes());
    }
    r
}

fn rrsig(covered: u16, expiration: i64) -> Vec<u8> {
    let mut r = covered.to_be_bytes().to_vec();
    r.extend_from_slice(&[13, 3]);
    r.extend_from_slice(&300u32.to_be_bytes());
    r.extend_from_slice(&(expiration as u32).to_be_bytes());
    r.extend_from_slice(&((NOW - 86400) as u32).to_be_bytes());
    r.extend_from_slice(&[0x30, 0x39]);
    r.extend_from_slice(ZONE);
    r.extend_from_slice(&[0xAA; 64]);
    r
}

const WWW: &[u8] = b"\x03www\xc0\x0c";
const APEX: &[u8] = b"\xc0\x0c";

/// A two-message transfer: SOA, www A + RRSIG | RRSIG of SOA, closing SOA.
fn two_messages(id: u16, expiration: i64) -> (Vec<u8>, Vec<u8>) {
    let mut first = header(id, 0, 3, 0);
    record(&mut first, APEX, 6, &soa(7));
    record(&mut first, WWW, 1, &[192, 0, 2, 1]);
    record(&mut first, WWW, 46, &rrsig(1, expiration));
    let mut second = header(id, 0, 2, 0);
    record(&mut second, APEX, 46, &rrsig(6, NOW + 86400 * 10));
    record(&mut second, APEX, 6, &soa(7));
    (first, second)
}

fn reader(id: u16) -> AxfrReader {
    let zone = Name::parse(b"example.test.", None).unwrap();
    AxfrReader::new(zone, id, SignatureScan::new(NOW, 3), None)
}

#[test]
fn a_complete_transfer_is_scanned() {
    let (first, second) = two_messages(9, NOW + 3600);
    let mut r = reader(9);
    assert!(!r.message(&first).unwrap());
    assert!(r.message(&second).unwrap());
    let summary = r.finish().unwrap();
    assert_eq!(summary.serial, 7);
    assert_eq!(summary.messages, 2);
    assert_eq!(summary.scan.rrsets(), 2);
    assert_eq!(summary.scan.signatures(), 2);
    let earliest = &summary.scan.earliest()[0];
    assert_eq!(earliest.owner.to_string(), "www.example.test.");
    assert_eq!(earliest.type_covered.to_string(), "A");
    assert_eq!(
        summary.scan.verdict(std::time::Duration::from_secs(7200)),
        Verdict::Expiring
    );
}

use crate::zone::scan::Verdict;

#[test]
fn a_transfer_cut_short_is_incomplete() {
    let (first, _) = two_messages(9, NOW + 3600);
    let mut r = reader(9);
    r.message(&first).unwrap();
    assert_eq!(
        r.finish().unwrap_err(),
        AxfrError::Incomplete {
            messages: 1,
            records: 3
        }
    );
    // A message cut inside a record.
    let mut r = reader(9);
    let err = r.message(&first[..first.len() - 10]).unwrap_err();
    assert!(matches!(err, AxfrError::Wire { message: 1, .. }), "{err}");
}

#[test]
fn refused_and_foreign_answers() {
    let refused = header(9, 5, 0, 0);
    let err = reader(9).message(&refused).unwrap_err();
    assert_eq!(err.to_string(), "the server answered REFUSED");
    let (first, _) = two_messages(10, NOW + 3600);
    assert!(matches!(
        reader(9).message(&first).unwrap_err(),
        AxfrError::NotOurs { got: 10, .. }
    ));
    let mut empty = header(9, 0, 1, 0);
    record(&mut empty, WWW, 1, &[192, 0, 2, 1]);
    assert_eq!(
        reader(9).message(&empty).unwrap_err(),
        AxfrError::NoOpeningSoa
    );
    assert!(HEADER_LEN < empty.len());
}

#[test]
fn malformed_rrsig_names_its_owner() {
    let mut m = header(9, 0, 2, 0);
    record(&mut m, APEX, 6, &soa(7));
    record(&mut m, WWW, 46, &rrsig(1, NOW)[..12]);
    let err = reader(9).message(&m).unwrap_err();
    assert!(
        matches!(&err, AxfrError::Rrsig { owner, .. } if owner == "www.example.test."),
        "{err}"
    );
}

#[test]
fn serial_change_and_records_after_the_end() {
    let (first, _) = two_messages(9, NOW + 3600);
    let mut second = header(9, 0, 1, 0);
    record(&mut second, APEX, 6, &soa(8));
    let mut r = reader(9);
    r.message(&first).unwrap();
    assert_eq!(
        r.message(&second).unwrap_err(),
        AxfrError::SerialChanged {
            opening: 7,
            closing: 8
        }
    );
    let mut after = header(9, 0, 3, 0);
    record(&mut after, APEX, 6, &soa(7));
    record(&mut after, APEX, 6, &soa(7));
    record(&mut after, WWW, 1, &[192, 0, 2, 1]);
    assert_eq!(reader(9).message(&after).unwrap_err(), AxfrError::AfterEnd);
}

/// Signs `message` (which must not carry a TSIG yet) the way a server does; `unsigned`:
/// the messages since the previous MAC that went unsigned.
fn sign(
    key: &TSigner,
    message: &[u8],
    unsigned: &[u8],
    previous: &[u8],
    first: bool,
    now: u64,
) -> (Vec<u8>, Vec<u8>) {
    use hickory_proto::rr::rdata::tsig::TSIG;
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
    let mut out = message.to_vec();
    let arcount = u16::from_be_bytes([out[10], out[11]]) + 1;
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
    // Build the record with an empty MAC first to learn the signed data.
    let id = u16::from_be_bytes([message[0], message[1]]);
    let stub = TSIG::new(
        key.algorithm().clone(),
        now,
        300,
        Vec::new(),
        id,
        None,
        Vec::new(),
    );
    let mut signed = (previous.len() as u16).to_be_bytes().to_vec();
    signed.extend_from_slice(previous);
    signed.extend_from_slice(unsigned);
    signed.extend_from_slice(message);
    if first {
        // A new encoder writes from offset 0: start it at the end.
        let end = signed.len();
        let mut enc = BinEncoder::new(&mut signed);
        enc.set_offset(end);
        stub.emit_tsig_for_mac(&mut enc, key.signer_name()).unwrap();
    } else {
        signed.extend_from_slice(&now.to_be_bytes()[2..]);
        signed.extend_from_slice(&300u16.to_be_bytes());
    }
    let mac = key.sign(&signed).unwrap();
    let record = hickory_proto::rr::rdata::tsig::make_tsig_record(
        key.signer_name().clone(),
        stub.set_mac(mac.clone()),
    );
    let mut enc = BinEncoder::new(&mut out);
    enc.set_offset(message.len());
    record.emit(&mut enc).unwrap();
    (out, mac)
}

#[test]
fn tsig_chain_with_an_unsigned_message_between() {
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
    let key = TSigner::new(
        b"0123456789abcdef".to_vec(),
        TsigAlgorithm::HmacSha256,
        hickory_proto::rr::Name::from_ascii("xfr-key.").unwrap(),
        300,
    )
    .unwrap();
    let now = NOW as u64;
    let request_mac = vec![7u8; 32];
    let (first, second) = two_messages(9, NOW + 3600);
    let mut middle = header(9, 0, 1, 0);
    record(&mut middle, WWW, 16, b"\x02hi");
    let (first_signed, mac1) = sign(&key, &first, &[], &request_mac, true, now);
    // The second MAC covers the unsigned middle message too.
    let (second_signed, _) = sign(&key, &second, &middle, &mac1, false, now);
    let zone = Name::parse(b"example.test.", None).unwrap();
    let chain = TsigChain::new(key.clone(), request_mac.clone(), now).unwrap();
    let mut r = AxfrReader::new(zone.clone(), 9, SignatureScan::new(NOW, 1), Some(chain));
    r.message(&first_signed).unwrap();
    r.message(&middle).unwrap();
    assert!(r.message(&second_signed).unwrap());
    assert_eq!(r.finish().unwrap().scan.rrsets(), 3);

    // The wrong secret: BADSIG on the first message.
    let other = TSigner::new(
        b"another secret!!".to_vec(),
        TsigAlgorithm::HmacSha256,
        hickory_proto::rr::Name::from_ascii("xfr-key.").unwrap(),
        300,
    )
    .unwrap();
    let chain = TsigChain::new(other, request_mac.clone(), now).unwrap();
    let mut r = AxfrReader::new(zone.clone(), 9, SignatureScan::new(NOW, 1), Some(chain));
    let err = r.message(&first_signed).unwrap_err();
    assert!(err.to_string().contains("BADSIG"), "{err}");

    // Unsigned from the start.
    let chain = TsigChain::new(key.clone(), request_mac.clone(), now).unwrap();
    let mut r = AxfrReader::new(zone.clone(), 9, SignatureScan::new(NOW, 1), Some(chain));
    let err = r.message(&first).unwrap_err();
    assert!(err.to_string().contains("not signed"), "{err}");

    // Signed too long ago.
    let chain = TsigChain::new(key, request_mac, now + 1000).unwrap();
    let mut r = AxfrReader::new(zone, 9, SignatureScan::new(NOW, 1), Some(chain));
    let err = r.message(&first_signed).unwrap_err();
    assert!(err.to_string().contains("BADTIME"), "{err}");
}
