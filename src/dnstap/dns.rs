//! The little of a DNS message that traffic conditions need, read lazily from the wire
//! bytes a dnstap frame carries, without copying: the header (ID, flags, RCODE, counts),
//! the first question, and the EDNS OPT record of responses with its options, among them
//! Extended DNS Errors (RFC 8914, option 15).
//!
//! [`DnsView::parse`] checks only the 12-byte header; [`DnsView::question`] and
//! [`DnsView::edns`] walk the message when asked and fail with a [`DnsError`] on malformed
//! input, never panic.
//!
//! Not implemented: decoding answer, authority or additional records other than OPT;
//! the text form of names beyond the question; validation of anything the conditions do
//! not read (a message with trailing bytes or a second OPT is accepted).

use std::fmt;

/// EDNS option code of Extended DNS Errors (RFC 8914).
pub const OPTION_EDE: u16 = 15;
/// RR type of OPT.
const TYPE_OPT: u16 = 41;
/// Longest chain of compression pointers followed in one name.
const MAX_POINTERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// The message is shorter than its 12-byte header.
    ShortHeader,
    /// A name, record or option runs past the end at this byte.
    Truncated { at: usize },
    /// A label type other than a plain length or a pointer (0x40, 0x80) at this byte.
    BadLabel { at: usize },
    /// Too many compression pointers (a loop).
    PointerLoop { at: usize },
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ShortHeader => write!(f, "DNS message shorter than its header"),
            Self::Truncated { at } => write!(f, "DNS message truncated at byte {at}"),
            Self::BadLabel { at } => write!(f, "DNS name with a bad label type at byte {at}"),
            Self::PointerLoop { at } => write!(f, "DNS name compression loop at byte {at}"),
        }
    }
}

impl std::error::Error for DnsError {}

/// A DNS message, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct DnsView<'a> {
    wire: &'a [u8],
}

/// The first question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Presentation form, lower-cased, with a trailing dot (`www.example.test.`).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// The OPT record of a message.
#[derive(Debug, Clone, Copy)]
pub struct Edns<'a> {
    /// Upper 8 bits of the extended RCODE.
    pub extended_rcode: u8,
    pub version: u8,
    /// The DNSSEC OK bit.
    pub dnssec_ok: bool,
    pub udp_payload_size: u16,
    options: &'a [u8],
    /// Offset of `options` in the message, for error positions.
    options_at: usize,
}

/// An Extended DNS Error (RFC 8914).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedError<'a> {
    pub info_code: u16,
    /// EXTRA-TEXT: UTF-8 by the RFC, but taken as bytes.
    pub extra_text: &'a [u8],
}

fn be_u16(wire: &[u8], at: usize) -> Result<u16, DnsError> {
    match wire.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(DnsError::Truncated { at }),
    }
}

/// Returns the offset just past the name at `at`.
fn skip_name(wire: &[u8], mut at: usize) -> Result<usize, DnsError> {
    loop {
        let len = *wire.get(at).ok_or(DnsError::Truncated { at })?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(at + 1),
            0x00 => at += 1 + len as usize,
            0xC0 => {
                if at + 2 > wire.len() {
                    return Err(DnsError::Truncated { at });
                }
                return Ok(at + 2);
            }
            _ => return Err(DnsError::BadLabel { at }),
        }
    }
}

/// Reads the name at `at` in presentation form (lower case, trailing dot).
fn read_name(wire: &[u8], start: usize) -> Result<String, DnsError> {
    let mut name = String::new();
    let mut at = start;
    let mut pointers = 0;
    loop {
        let len = *wire.get(at).ok_or(DnsError::Truncated { at })?;
        match len & 0xC0 {
            0x00 if len == 0 => break,
            0x00 => {
                let label = wire
                    .get(at + 1..at + 1 + len as usize)
                    .ok_or(DnsError::Truncated { at })?;
                for &b in label {
                    match b {
                        b'.' | b'\\' => {
                            name.push('\\');
                            name.push(b as char);
                        }
                        0x21..=0x7E => name.push(b.to_ascii_lowercase() as char),
                        _ => name.push_str(&format!("\\{b:03}")),
                    }
                }
                name.push('.');
                at += 1 + len as usize;
            }
            0xC0 => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::PointerLoop { at });
                }
                let low = *wire.get(at + 1).ok_or(DnsError::Truncated { at })?;
                at = (usize::from(len & 0x3F) << 8) | usize::from(low);
            }
            _ => return Err(DnsError::BadLabel { at }),
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Ok(name)
}

impl<'a> DnsView<'a> {
    /// Checks that `wire` holds at least a header.
    pub fn parse(wire: &'a [u8]) -> Result<Self, DnsError> {
        if wire.len() < 12 {
            return Err(DnsError::ShortHeader);
        }
        Ok(Self { wire })
    }

    fn header_u16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.wire[at], self.wire[at + 1]])
    }

    pub fn id(&self) -> u16 {
        self.header_u16(0)
    }

    /// The QR bit: a response.
    pub fn is_response(&self) -> bool {
        self.wire[2] & 0x80 != 0
    }

    pub fn opcode(&self) -> u8 {
        (self.wire[2] >> 3) & 0x0F
    }

    /// The RD bit.
    pub fn recursion_desired(&self) -> bool {
        self.wire[2] & 0x01 != 0
    }

    /// The TC bit.
    pub fn truncated(&self) -> bool {
        self.wire[2] & 0x02 != 0
    }

    /// The AA bit.
    pub fn authoritative(&self) -> bool {
        self.wire[2] & 0x04 != 0
    }

    /// The 4-bit RCODE of the header (see [`DnsView::full_rcode`] for EDNS).
    pub fn header_rcode(&self) -> u8 {
        self.wire[3] & 0x0F
    }

    pub fn qdcount(&self) -> u16 {
        self.header_u16(4)
    }

    /// The first question, if there is one.
    pub fn question(&self) -> Result<Option<Question>, DnsError> {
        if self.qdcount() == 0 {
            return Ok(None);
        }
        let name = read_name(self.wire, 12)?;
        let end = skip_name(self.wire, 12)?;
        Ok(Some(Question {
            name,
            qtype: be_u16(self.wire, end)?,
            qclass: be_u16(self.wire, end + 2)?,
        }))
    }

    /// The OPT record, if the additional section has one.
    pub fn edns(&self) -> Result<Option<Edns<'a>>, DnsError> {
        let wire = self.wire;
        let mut at = 12;
        for _ in 0..self.qdcount() {
            at = skip_name(wire, at)? + 4;
        }
        let records = [6, 8].iter().map(|&i| self.header_u16(i) as usize).sum();
        for _ in 0..records {
            at = skip_name(wire, at)?;
            let rdlen = be_u16(wire, at + 8)? as usize;
            at += 10 + rdlen;
        }
        for _ in 0..self.header_u16(10) {
            let owner = at;
            at = skip_name(wire, at)?;
            let rtype = be_u16(wire, at)?;
            let rdlen = be_u16(wire, at + 8)? as usize;
            let rdata_at = at + 10;
            if rtype == TYPE_OPT && wire[owner] == 0 {
                let options = wire
                    .get(rdata_at..rdata_at + rdlen)
                    .ok_or(DnsError::Truncated { at: rdata_at })?;
                return Ok(Some(Edns {
                    udp_payload_size: be_u16(wire, at + 2)?,
                    extended_rcode: wire[at + 4],
                    version: wire[at + 5],
                    dnssec_ok: wire[at + 6] & 0x80 != 0,
                    options,
                    options_at: rdata_at,
                }));
            }
            at = rdata_at + rdlen;
        }
        Ok(None)
    }

    /// The 12-bit RCODE: the header's, extended by the OPT record when there is one.
    pub fn full_rcode(&self) -> Result<u16, DnsError> {
        let upper = self.edns()?.map_or(0, |e| u16::from(e.extended_rcode));
        Ok((upper << 4) | u16::from(self.header_rcode()))
    }
}

impl<'a> Edns<'a> {
    /// The options as `(code, data)`; a malformed option ends the iteration with an error.
    pub fn options(&self) -> impl Iterator<Item = Result<(u16, &'a [u8]), DnsError>> + use<'a> {
        let options = self.options;
        let base = self.options_at;
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= options.len() {
                return None;
            }
            let item = be_u16(options, at).and_then(|code| {
                let len = be_u16(options, at + 2)? as usize;
                let data = options
                    .get(at + 4..at + 4 + len)
                    .ok_or(DnsError::Truncated { at: at + 4 })?;
                Ok((code, data, 4 + len))
            });
            match item {
                Ok((code, data, used)) => {
                    at += used;
                    Some(Ok((code, data)))
                }
                Err(DnsError::Truncated { at: rel }) => {
                    at = options.len();
                    Some(Err(DnsError::Truncated { at: base + rel }))
                }
                Err(e) => {
                    at = options.len();
                    Some(Err(e))
                }
            }
        })
    }

    /// The Extended DNS Errors among the options (an option shorter than its info-code is
    /// an error).
    pub fn extended_errors(
        &self,
    ) -> impl Iterator<Item = Result<ExtendedError<'a>, DnsError>> + use<'a> {
        let base = self.options_at;
        self.options().filter_map(move |option| match option {
            Ok((OPTION_EDE, data)) if data.len() >= 2 => Some(Ok(ExtendedError {
                info_code: u16::from_be_bytes([data[0], data[1]]),
                extra_text: &data[2..],
            })),
            Ok((OPTION_EDE, _)) => Some(Err(DnsError::Truncated { at: base })),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

/// The mnemonic of an RCODE (RFC 6895 registry, the common ones).
pub fn rcode_name(rcode: u16) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        other => return format!("RCODE{other}"),
    };
    name.to_string()
}

/// The name of an Extended DNS Error info-code (RFC 8914 registry), if it has one.
pub fn ede_name(info_code: u16) -> Option<&'static str> {
    const NAMES: [&str; 25] = [
        "Other Error",
        "Unsupported DNSKEY Algorithm",
        "Unsupported DS Digest Type",
        "Stale Answer",
        "Forged Answer",
        "DNSSEC Indeterminate",
        "DNSSEC Bogus",
        "Signature Expired",
        "Signature Not Yet Valid",
        "DNSKEY Missing",
        "RRSIGs Missing",
        "No Zone Key Bit Set",
        "NSEC Missing",
        "Cached Error",
        "Not Ready",
        "Blocked",
        "Censored",
        "Filtered",
        "Prohibited",
        "Stale NXDomain Answer",
        "Not Authoritative",
        "Not Supported",
        "No Reachable Authority",
        "Network Error",
        "Invalid Data",
    ];
    NAMES.get(usize::from(info_code)).copied()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a response for `www.example.test A` with `rcode` and, when `ede` is given,
    /// an OPT record with that EDE and a padding option before it.
    pub(crate) fn response(rcode: u16, ede: Option<(u16, &str)>) -> Vec<u8> {
        let mut m = vec![
            0x12,
            0x34,
            0x81,
            0x80 | (rcode & 0x0F) as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
        ];
        m.push(u8::from(ede.is_some()));
        m.extend_from_slice(b"\x03WWW\x07example\x04test\x00\x00\x01\x00\x01");
        // Answer: pointer to the question name, A 192.0.2.1.
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
        if let Some((code, text)) = ede {
            let mut options = vec![0, 12, 0, 2, 0, 0]; // padding
            options.extend_from_slice(&OPTION_EDE.to_be_bytes());
            options.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
            options.extend_from_slice(&code.to_be_bytes());
            options.extend_from_slice(text.as_bytes());
            m.extend_from_slice(&[0, 0, 41, 4, 208, (rcode >> 4) as u8, 0, 0x80, 0]);
            m.extend_from_slice(&(options.len() as u16).to_be_bytes());
            m.extend_from_slice(&options);
        }
        m
    }

    #[test]
    fn header_question_and_ede() {
        let wire = response(2, Some((6, "DNSSEC Bogus")));
        let view = DnsView::parse(&wire).unwrap();
        assert!(view.is_response() && view.recursion_desired() && !view.truncated());
        assert_eq!(
            (view.id(), view.opcode(), view.header_rcode()),
            (0x1234, 0, 2)
        );
        assert_eq!(
            view.question().unwrap().unwrap(),
            Question {
                name: "www.example.test.".into(),
                qtype: 1,
                qclass: 1
            }
        );
        let edns = view.edns().unwrap().unwrap();
        assert_eq!((edns.udp_payload_size, edns.dnssec_ok), (1232, true));
        let errors: Vec<_> = edns.extended_errors().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            errors,
            vec![ExtendedError {
                info_code: 6,
                extra_text: b"DNSSEC Bogus"
            }]
        );
        assert_eq!(view.full_rcode().unwrap(), 2);
    }

    #[test]
    fn extended_rcode_and_no_edns() {
        let wire = response(16, Some((0, "")));
        assert_eq!(DnsView::parse(&wire).unwrap().full_rcode().unwrap(), 16);
        let wire = response(3, None);
        let view = DnsView::parse(&wire).unwrap();
        assert!(view.edns().unwrap().is_none());
        assert_eq!(view.full_rcode().unwrap(), 3);
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(99), "RCODE99");
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert_eq!(DnsView::parse(&[0; 11]).unwrap_err(), DnsError::ShortHeader);
        let wire = response(2, Some((6, "x")));
        for cut in 12..wire.len() {
            let view = DnsView::parse(&wire[..cut]).unwrap();
            let edns = view.edns();
            let all = edns.and_then(|e| match e {
                Some(e) => e
                    .extended_errors()
                    .collect::<Result<Vec<_>, _>>()
                    .map(|_| ()),
                None => Ok(()),
            });
            assert!(all.is_err(), "cut at {cut} accepted");
        }
        // A pointer to itself.
        let mut looped = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1];
        assert_eq!(
            DnsView::parse(&looped).unwrap().question().unwrap_err(),
            DnsError::PointerLoop { at: 12 }
        );
        looped[12] = 0x80;
        assert_eq!(
            DnsView::parse(&looped).unwrap().question().unwrap_err(),
            DnsError::BadLabel { at: 12 }
        );
    }
}
