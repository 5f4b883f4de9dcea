//! The hot path of the traffic conditions: what one dnstap data frame means for them,
//! read straight from the protobuf bytes without building a [`super::message::Dnstap`].
//!
//! [`classify`] walks the `Dnstap` message to its `message` field, reads the message type,
//! and for responses the RCODE and the Extended DNS Errors of the DNS payload
//! ([`super::dns::DnsView`]). Frames it cannot read are [`Class::Malformed`], never a panic.
//!
//! What counts as what:
//!
//! * a **query** is a query the server received from a client: `AUTH_QUERY` or
//!   `CLIENT_QUERY` (BIND logs an authoritative query as `AUTH_QUERY` and its answer as
//!   `CLIENT_RESPONSE`; Knot and NSD use `AUTH_*`; Unbound `CLIENT_*`);
//! * a **response** is an answer the server sent to a client: `AUTH_RESPONSE` or
//!   `CLIENT_RESPONSE`;
//! * everything else (the server's own queries to other servers and their answers,
//!   updates, tools) is [`Class::Other`]: it is not the server's traffic load.
//!
//! Not read: the addresses, ports, times and the query message; the wire format of fields
//! that are not needed is skipped by length, so unknown fields are no error.

use super::dns::{DnsView, OPTION_EDE};

/// `Dnstap.message`.
const DNSTAP_MESSAGE: u64 = 14;
/// `Message.type`.
const MESSAGE_TYPE: u64 = 1;
/// `Message.response_message`.
const MESSAGE_RESPONSE: u64 = 14;

const AUTH_QUERY: u64 = 1;
const AUTH_RESPONSE: u64 = 2;
const CLIENT_QUERY: u64 = 5;
const CLIENT_RESPONSE: u64 = 6;

/// At most this many Extended DNS Errors are reported per response; more are counted once
/// as the last one seen.
pub const MAX_EDE_PER_RESPONSE: usize = 4;

/// What one frame is, for the traffic conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class<'a> {
    Query,
    Response(ResponseFacts<'a>),
    Other,
    /// Not a dnstap message, or a response whose DNS payload cannot be read.
    Malformed,
}

/// What the conditions read from a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFacts<'a> {
    /// The DNS response as sent, for reading its question name when it is needed.
    pub wire: &'a [u8],
    /// The full RCODE (header and EDNS extended bits).
    pub rcode: u16,
    /// Info-codes of the Extended DNS Errors, in the order they appear.
    pub ede: [u16; MAX_EDE_PER_RESPONSE],
    pub ede_count: u8,
}

impl ResponseFacts<'_> {
    pub fn ede_codes(&self) -> &[u16] {
        &self.ede[..usize::from(self.ede_count)]
    }
}

/// Reads a varint at `*at`, moving past it.
#[inline]
fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// One protobuf field: number and either its varint value or its bytes.
enum Field<'a> {
    Varint(u64, u64),
    Bytes(u64, &'a [u8]),
    Fixed,
}

/// Reads the field at `*at`, moving past it; `None` on malformed input (groups included,
/// which the dnstap schema does not use).
#[inline]
fn field<'a>(buf: &'a [u8], at: &mut usize) -> Option<Field<'a>> {
    let key = varint(buf, at)?;
    let number = key >> 3;
    match key & 7 {
        0 => Some(Field::Varint(number, varint(buf, at)?)),
        1 => {
            *at = at.checked_add(8).filter(|end| *end <= buf.len())?;
            Some(Field::Fixed)
        }
        2 => {
            let len = usize::try_from(varint(buf, at)?).ok()?;
            let end = at.checked_add(len).filter(|end| *end <= buf.len())?;
            let bytes = &buf[*at..end];
            *at = end;
            Some(Field::Bytes(number, bytes))
        }
        5 => {
            *at = at.checked_add(4).filter(|end| *end <= buf.len())?;
            Some(Field::Fixed)
        }
        _ => None,
    }
}

/// Classifies one data frame's payload (a serialized `Dnstap`).
pub fn classify(frame: &[u8]) -> Class<'_> {
    let mut message = None;
    let mut at = 0;
    while at < frame.len() {
        match field(frame, &mut at) {
            Some(Field::Bytes(DNSTAP_MESSAGE, bytes)) => message = Some(bytes),
            Some(_) => {}
            None => return Class::Malformed,
        }
    }
    let Some(message) = message else {
        return Class::Malformed;
    };
    let mut kind = None;
    let mut response = None;
    let mut at = 0;
    while at < message.len() {
        match field(message, &mut at) {
            Some(Field::Varint(MESSAGE_TYPE, value)) => kind = Some(value),
            Some(Field::Bytes(MESSAGE_RESPONSE, bytes)) => response = Some(bytes),
            Some(_) => {}
            None => return Class::Malformed,
        }
    }
    match kind {
        Some(AUTH_QUERY | CLIENT_QUERY) => Class::Query,
        Some(AUTH_RESPONSE | CLIENT_RESPONSE) => match response.and_then(response_facts) {
            Some(facts) => Class::Response(facts),
            None => Class::Malformed,
        },
        Some(_) => Class::Other,
        None => Class::Malformed,
    }
}

fn response_facts(wire: &[u8]) -> Option<ResponseFacts<'_>> {
    let view = DnsView::parse(wire).ok()?;
    let mut facts = ResponseFacts {
        wire,
        rcode: u16::from(view.header_rcode()),
        ede: [0; MAX_EDE_PER_RESPONSE],
        ede_count: 0,
    };
    // A response without additional records has no OPT: skip the walk.
    if wire.get(10..12).is_some_and(|arcount| arcount != [0, 0]) {
        let edns = view.edns().ok()?;
        if let Some(edns) = edns {
            facts.rcode |= u16::from(edns.extended_rcode) << 4;
            for option in edns.options() {
                let (code, data) = option.ok()?;
                if code != OPTION_EDE || data.len() < 2 {
                    continue;
                }
                let info = u16::from_be_bytes([data[0], data[1]]);
                let slot = usize::from(facts.ede_count).min(MAX_EDE_PER_RESPONSE - 1);
                facts.ede[slot] = info;
                facts.ede_count = (slot + 1) as u8;
            }
        }
    }
    Some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnstap::fstrm::FileReader;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dnstap")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// (queries, responses, other, EDE 6 count) of a capture.
    fn tally(name: &str) -> (usize, usize, usize, usize) {
        let bytes = fixture(name);
        let mut reader = FileReader::new(&bytes);
        let (mut q, mut r, mut o, mut bogus) = (0, 0, 0, 0);
        while let Some((offset, frame)) = reader.next_data().unwrap() {
            match classify(frame) {
                Class::Query => q += 1,
                Class::Response(facts) => {
                    r += 1;
                    bogus += facts.ede_codes().iter().filter(|c| **c == 6).count();
                }
                Class::Other => o += 1,
                Class::Malformed => panic!("{name}: frame at byte {offset} malformed"),
            }
        }
        (q, r, o, bogus)
    }

    #[test]
    fn captures_classify_like_the_full_decoder() {
        assert_eq!(tally("knot.fstrm"), (12, 12, 0, 0));
        assert_eq!(tally("nsd.fstrm"), (3, 3, 0, 0));
        assert_eq!(tally("bind.fstrm"), (2, 2, 0, 0));
        assert_eq!(tally("unbound.fstrm"), (19, 9, 29, 1));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [
            &b""[..],
            &[0xff; 12],
            &[0x72, 0x05, 0x08],
            &[0x72, 0x80],
            &[0x0b],
            &[0x72, 0x02, 0x08, 0x02],
        ] {
            assert_eq!(classify(input), Class::Malformed, "{input:?}");
        }
    }
}
