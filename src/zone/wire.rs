//! DNS messages as the zone-health source reads them: a walker over the records of one
//! message that decodes only what is asked for, the SOA query with the EDNS EXPIRE option
//! (RFC 7314) and its answer, and TSIG records (RFC 8945) located, decoded and turned into
//! the data their MAC covers.
//!
//! Nothing here allocates per record: owner names are decompressed into a buffer the
//! caller reuses, RDATA is handed out as a slice of the message. Every length is checked
//! against the message, so no input panics (see `fuzz/fuzz_targets/axfr_message.rs`).

use std::ops::Range;

use super::name::{Name, NameError};
use super::types::{Class, Rtype};

/// The DNS header's length.
pub const HEADER_LEN: usize = 12;
/// TSIG's record type.
pub const TSIG: Rtype = Rtype(250);
/// OPT's record type.
pub const OPT: Rtype = Rtype(41);
/// The EDNS EXPIRE option code (RFC 7314).
pub const EDNS_EXPIRE: u16 = 9;

/// What is wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message shorter than a DNS header ({0} octets)")]
    ShortHeader(usize),
    #[error("truncated at octet {0}")]
    Truncated(usize),
    #[error("bad name at octet {at}: {error}")]
    Name { at: usize, error: NameError },
    #[error("{0} octets after the last record")]
    Trailing(usize),
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub authoritative: bool,
    pub truncated: bool,
    /// The header's four RCODE bits (extended RCODEs live in OPT, unused here).
    pub rcode: u8,
    pub questions: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

impl Header {
    pub fn read(message: &[u8]) -> Result<Header, WireError> {
        let h = message
            .get(..HEADER_LEN)
            .ok_or(WireError::ShortHeader(message.len()))?;
        let u16_at = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        Ok(Header {
            id: u16_at(0),
            response: h[2] & 0x80 != 0,
            opcode: (h[2] >> 3) & 0x0F,
            authoritative: h[2] & 0x04 != 0,
            truncated: h[2] & 0x02 != 0,
            rcode: h[3] & 0x0F,
            questions: u16_at(4),
            answers: u16_at(6),
            authorities: u16_at(8),
            additionals: u16_at(10),
        })
    }

    /// The number of records in all three sections.
    pub fn records(&self) -> usize {
        usize::from(self.answers) + usize::from(self.authorities) + usize::from(self.additionals)
    }
}

/// The mnemonic of an RCODE, for messages.
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        other => format!("RCODE{other}"),
    }
}

/// One question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuestionRef {
    /// Where its name starts.
    pub name_at: usize,
    pub qtype: Rtype,
    pub class: Class,
}

/// One resource record, its RDATA left in the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Where the record starts (its owner name).
    pub start: usize,
    pub owner_at: usize,
    pub rtype: Rtype,
    pub class: Class,
    pub ttl: u32,
    pub rdata: Range<usize>,
    /// The section: 0 answer, 1 authority, 2 additional.
    pub section: u8,
}

/// The questions and records of one message, in order.
pub struct Walker<'a> {
    message: &'a [u8],
    header: Header,
    pos: usize,
    /// Records read so far.
    index: usize,
}

impl<'a> Walker<'a> {
    /// Reads the header and skips the questions.
    pub fn new(message: &'a [u8]) -> Result<Walker<'a>, WireError> {
        let header = Header::read(message)?;
        let mut walker = Walker {
            message,
            header,
            pos: HEADER_LEN,
            index: 0,
        };
        for _ in 0..header.questions {
            walker.question()?;
        }
        Ok(walker)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The first question, read again from the start.
    pub fn first_question(message: &[u8]) -> Result<Option<QuestionRef>, WireError> {
        let header = Header::read(message)?;
        if header.questions == 0 {
            return Ok(None);
        }
        let mut walker = Walker {
            message,
            header,
            pos: HEADER_LEN,
            index: 0,
        };
        walker.question().map(Some)
    }

    fn question(&mut self) -> Result<QuestionRef, WireError> {
        let name_at = self.pos;
        let end = skip_name(self.message, self.pos)?;
        let fixed = self
            .message
            .get(end..end + 4)
            .ok_or(WireError::Truncated(self.message.len()))?;
        self.pos = end + 4;
        Ok(QuestionRef {
            name_at,
            qtype: Rtype(u16::from_be_bytes([fixed[0], fixed[1]])),
            class: Class(u16::from_be_bytes([fixed[2], fixed[3]])),
        })
    }

    /// The next record, `None` after the last; then [`Walker::finish`] checks that nothing
    /// follows.
    #[allow(clippy::should_implement_trait)] // fallible, so not an Iterator
    pub fn next(&mut self) -> Result<Option<RecordRef>, WireError> {
        if self.index >= self.header.records() {
            return Ok(None);
        }
        let section = if self.index < usize::from(self.header.answers) {
            0
        } else if self.index
            < usize::from(self.header.answers) + usize::from(self.header.authorities)
        {
            1
        } else {
            2
        };
        let start = self.pos;
        let end = skip_name(self.message, start)?;
        let fixed = self
            .message
            .get(end..end + 10)
            .ok_or(WireError::Truncated(self.message.len()))?;
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = end + 10..end + 10 + rdlength;
        if rdata.end > self.message.len() {
            return Err(WireError::Truncated(self.message.len()));
        }
        self.pos = rdata.end;
        self.index += 1;
        Ok(Some(RecordRef {
            start,
            owner_at: start,
            rtype: Rtype(u16::from_be_bytes([fixed[0], fixed[1]])),
            class: Class(u16::from_be_bytes([fixed[2], fixed[3]])),
            ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            rdata,
            section,
        }))
    }

    /// Checks that the message ends after its last record.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.message.len() - self.pos {
            0 => Ok(()),
            extra => Err(WireError::Trailing(extra)),
        }
    }
}

/// The offset just past the name written at `at`.
pub fn skip_name(message: &[u8], at: usize) -> Result<usize, WireError> {
    let mut pos = at;
    loop {
        let len = *message
            .get(pos)
            .ok_or(WireError::Truncated(message.len()))?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xC0 if pos + 2 <= message.len() => return Ok(pos + 2),
            0xC0 => return Err(WireError::Truncated(message.len())),
            _ => {
                return Err(WireError::Name {
                    at,
                    error: NameError::BadWire,
                });
            }
        }
        if pos - at >= 255 {
            return Err(WireError::Name {
                at,
                error: NameError::NameTooLong,
            });
        }
    }
}

/// Decompresses the name at `at` into `name`.
pub fn read_name(message: &[u8], at: usize, name: &mut Name) -> Result<(), WireError> {
    name.read_compressed(message, at)
        .map(|_| ())
        .map_err(|error| WireError::Name { at, error })
}

/// The SOA fields a freshness check uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Soa {
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Soa {
    /// Decodes SOA RDATA at `rdata` in `message` (its names may be compressed).
    pub fn read(message: &[u8], rdata: Range<usize>) -> Result<Soa, WireError> {
        let after_mname = skip_name(message, rdata.start)?;
        let after_rname = skip_name(message, after_mname)?;
        let fixed = message
            .get(after_rname..after_rname + 20)
            .filter(|_| after_rname + 20 == rdata.end)
            .ok_or(WireError::Truncated(rdata.end))?;
        let u32_at =
            |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        Ok(Soa {
            serial: u32_at(0),
            refresh: u32_at(4),
            retry: u32_at(8),
            expire: u32_at(12),
            minimum: u32_at(16),
        })
    }
}

/// A SOA query for `zone` with RD clear, an OPT record (payload 1232) carrying an empty
/// EDNS EXPIRE option.
pub fn soa_query(id: u16, zone: &Name) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + zone.as_wire().len() + 4 + 15);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(zone.as_wire());
    q.extend_from_slice(&Rtype::SOA.0.to_be_bytes());
    q.extend_from_slice(&Class::IN.0.to_be_bytes());
    // OPT: root owner, type, UDP payload, extended RCODE/version/flags, RDATA.
    q.push(0);
    q.extend_from_slice(&OPT.0.to_be_bytes());
    q.extend_from_slice(&1232u16.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 0]);
    q.extend_from_slice(&4u16.to_be_bytes());
    q.extend_from_slice(&EDNS_EXPIRE.to_be_bytes());
    q.extend_from_slice(&0u16.to_be_bytes());
    q
}

/// What a SOA answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaAnswer {
    pub header: Header,
    /// The zone's SOA, if the answer has it.
    pub soa: Option<Soa>,
    /// The EXPIRE option's value: the seconds before the server's copy expires.
    pub expire: Option<u32>,
}

/// Reads the answer to [`soa_query`] for `zone`: the SOA owned by the zone in the answer
/// section, and the EXPIRE option of an OPT record.
pub fn read_soa_answer(message: &[u8], zone: &Name) -> Result<SoaAnswer, WireError> {
    let mut walker = Walker::new(message)?;
    let header = *walker.header();
    let mut soa = None;
    let mut expire = None;
    let mut owner = Name::root();
    while let Some(record) = walker.next()? {
        if record.section == 0 && record.rtype == Rtype::SOA {
            read_name(message, record.owner_at, &mut owner)?;
            if owner == *zone {
                soa = Some(Soa::read(message, record.rdata.clone())?);
            }
        } else if record.section == 2 && record.rtype == OPT {
            expire = expire_option(&message[record.rdata.clone()]);
        }
    }
    walker.finish()?;
    Ok(SoaAnswer {
        header,
        soa,
        expire,
    })
}

/// The EXPIRE option in OPT RDATA, if it is there with its four octets.
fn expire_option(mut options: &[u8]) -> Option<u32> {
    while options.len() >= 4 {
        let code = u16::from_be_bytes([options[0], options[1]]);
        let len = usize::from(u16::from_be_bytes([options[2], options[3]]));
        let value = options.get(4..4 + len)?;
        if code == EDNS_EXPIRE && len == 4 {
            return Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]));
        }
        options = &options[4 + len..];
    }
    None
}

/// A TSIG record's fields (RFC 8945 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsigRecord {
    /// Where the record starts: the MAC covers the message up to here.
    pub start: usize,
    pub key: Name,
    pub algorithm: Name,
    /// 48 bits.
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

impl TsigRecord {
    /// The TSIG record of `message`, if its last additional record is one. A TSIG record
    /// anywhere else, or one that does not decode, is an error.
    pub fn find(message: &[u8]) -> Result<Option<TsigRecord>, WireError> {
        let mut walker = Walker::new(message)?;
        let total = walker.header().records();
        let mut seen = 0;
        while let Some(record) = walker.next()? {
            seen += 1;
            if record.rtype != TSIG {
                continue;
            }
            if seen != total || record.section != 2 {
                return Err(WireError::Truncated(record.start));
            }
            walker.finish()?;
            let mut key = Name::root();
            read_name(message, record.owner_at, &mut key)?;
            let rdata = &message[record.rdata.clone()];
            let (algorithm, used) = Name::from_wire(rdata).map_err(|error| WireError::Name {
                at: record.rdata.start,
                error,
            })?;
            let short = || WireError::Truncated(record.rdata.end);
            let rest = &rdata[used..];
            let fixed = rest.get(..10).ok_or_else(short)?;
            let time_signed = u64::from(u16::from_be_bytes([fixed[0], fixed[1]])) << 32
                | u64::from(u32::from_be_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]));
            let fudge = u16::from_be_bytes([fixed[6], fixed[7]]);
            let mac_len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let mac = rest.get(10..10 + mac_len).ok_or_else(short)?.to_vec();
            let tail = rest.get(10 + mac_len..).ok_or_else(short)?;
            let ids = tail.get(..6).ok_or_else(short)?;
            let other_len = usize::from(u16::from_be_bytes([ids[4], ids[5]]));
            let other = tail.get(6..6 + other_len).ok_or_else(short)?.to_vec();
            if tail.len() != 6 + other_len {
                return Err(short());
            }
            return Ok(Some(TsigRecord {
                start: record.start,
                key,
                algorithm,
                time_signed,
                fudge,
                mac,
                original_id: u16::from_be_bytes([ids[0], ids[1]]),
                error: u16::from_be_bytes([ids[2], ids[3]]),
                other,
            }));
        }
        walker.finish()?;
        Ok(None)
    }

    /// Appends what the MAC of this record covers, after the prior MAC and any unsigned
    /// messages the caller has added: the message without this record (the original ID,
    /// one additional record fewer), then all TSIG variables for the first message of a
    /// transfer or only the timers for later ones (RFC 8945 §4.3.1, §4.3.3, §5.3.1).
    pub fn append_signed_data(&self, message: &[u8], first: bool, out: &mut Vec<u8>) {
        let body = &message[..self.start];
        out.extend_from_slice(&self.original_id.to_be_bytes());
        out.extend_from_slice(&body[2..10]);
        let additionals = u16::from_be_bytes([body[10], body[11]]).saturating_sub(1);
        out.extend_from_slice(&additionals.to_be_bytes());
        out.extend_from_slice(&body[HEADER_LEN..]);
        if first {
            out.extend_from_slice(&lowercase(self.key.as_wire()));
            out.extend_from_slice(&255u16.to_be_bytes()); // class ANY
            out.extend_from_slice(&0u32.to_be_bytes()); // TTL
            out.extend_from_slice(&lowercase(self.algorithm.as_wire()));
        }
        out.extend_from_slice(&self.time_signed.to_be_bytes()[2..]);
        out.extend_from_slice(&self.fudge.to_be_bytes());
        if first {
            out.extend_from_slice(&self.error.to_be_bytes());
            out.extend_from_slice(&(self.other.len() as u16).to_be_bytes());
            out.extend_from_slice(&self.other);
        }
    }
}

/// A wire-form name in canonical (lowercase) form.
fn lowercase(wire: &[u8]) -> Vec<u8> {
    wire.to_ascii_lowercase()
}

/// The name of a TSIG error code (RFC 8945 §4.3.4 and the RCODE registry).
pub fn tsig_error_name(code: u16) -> String {
    match code {
        16 => "BADSIG".into(),
        17 => "BADKEY".into(),
        18 => "BADTIME".into(),
        22 => "BADTRUNC".into(),
        other => format!("error {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text.as_bytes(), None).unwrap()
    }

    /// An answer to the SOA query with a compressed SOA and an EXPIRE option.
    fn soa_answer(expire: Option<u32>) -> Vec<u8> {
        let zone = name("example.test.");
        let mut m = soa_query(7, &zone);
        m[2] = 0x84; // QR, AA
        m[7] = 1; // one answer
        m.truncate(HEADER_LEN + zone.as_wire().len() + 4);
        m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 1, 44]);
        let mut rdata = vec![3, b'n', b's', b'1', 0xC0, 12, 0xC0, 12];
        for v in [5u32, 3600, 600, 86400, 300] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        m.extend_from_slice(&[0, 0, 41, 4, 0xD0, 0, 0, 0, 0]);
        match expire {
            Some(v) => {
                m.extend_from_slice(&[0, 8, 0, 9, 0, 4]);
                m.extend_from_slice(&v.to_be_bytes());
            }
            None => m.extend_from_slice(&[0, 0]),
        }
        m
    }

    #[test]
    fn soa_answer_with_and_without_expire() {
        let zone = name("EXAMPLE.test.");
        let a = read_soa_answer(&soa_answer(Some(77)), &zone).unwrap();
        assert!(a.header.response && a.header.authoritative);
        assert_eq!(a.expire, Some(77));
        let soa = a.soa.unwrap();
        assert_eq!((soa.serial, soa.refresh, soa.retry), (5, 3600, 600));
        assert_eq!((soa.expire, soa.minimum), (86400, 300));
        let a = read_soa_answer(&soa_answer(None), &zone).unwrap();
        assert_eq!(a.expire, None);
        assert!(a.soa.is_some());
        // Another zone's SOA is not this zone's.
        assert!(
            read_soa_answer(&soa_answer(None), &name("other.test."))
                .unwrap()
                .soa
                .is_none()
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let zone = name("example.test.");
        let full = soa_answer(Some(1));
        for len in 0..full.len() {
            assert!(read_soa_answer(&full[..len], &zone).is_err(), "{len}");
        }
        let mut longer = full.clone();
        longer.push(0);
        assert_eq!(
            read_soa_answer(&longer, &zone).unwrap_err(),
            WireError::Trailing(1)
        );
    }

    #[test]
    fn query_layout() {
        let q = soa_query(0x1234, &name("a.test."));
        let header = Header::read(&q).unwrap();
        assert_eq!(header.id, 0x1234);
        assert!(!header.response);
        assert_eq!((header.questions, header.additionals), (1, 1));
        let question = Walker::first_question(&q).unwrap().unwrap();
        assert_eq!(question.qtype, Rtype::SOA);
        let mut walker = Walker::new(&q).unwrap();
        let opt = walker.next().unwrap().unwrap();
        assert_eq!(opt.rtype, OPT);
        assert_eq!(&q[opt.rdata], &[0, 9, 0, 0]);
        walker.finish().unwrap();
    }
}
