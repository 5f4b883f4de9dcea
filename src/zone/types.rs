//! Record types, classes and DNSSEC algorithm numbers with their mnemonics (IANA "DNS
//! Parameters" and "DNS Security Algorithm Numbers" registries), and the generic forms
//! `TYPEnnn` and `CLASSnnn` of RFC 3597 §5.

use std::fmt;

/// A record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rtype(pub u16);

impl Rtype {
    pub const SOA: Rtype = Rtype(6);
    pub const RRSIG: Rtype = Rtype(46);

    /// Parses a mnemonic (any case) or `TYPEnnn`.
    pub fn parse(text: &[u8]) -> Option<Rtype> {
        if let Some(number) = generic(text, b"TYPE") {
            return Some(Rtype(number));
        }
        TYPES
            .iter()
            .find(|(_, name)| name.as_bytes().eq_ignore_ascii_case(text))
            .map(|&(number, _)| Rtype(number))
    }

    /// The mnemonic, if the type has one.
    pub fn mnemonic(self) -> Option<&'static str> {
        TYPES
            .iter()
            .find(|&&(number, _)| number == self.0)
            .map(|&(_, name)| name)
    }
}

impl fmt::Display for Rtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(name) => f.write_str(name),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

/// A record class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Class(pub u16);

impl Class {
    pub const IN: Class = Class(1);

    /// Parses the data classes `IN`, `CH`, `HS`, `CS` (any case) or `CLASSnnn`. The query
    /// classes NONE and ANY have no place in a zone file (and `ANY` is also a type).
    pub fn parse(text: &[u8]) -> Option<Class> {
        if let Some(number) = generic(text, b"CLASS") {
            return Some(Class(number));
        }
        CLASSES
            .iter()
            .find(|(_, name)| name.as_bytes().eq_ignore_ascii_case(text))
            .map(|&(number, _)| Class(number))
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match CLASSES.iter().find(|&&(number, _)| number == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "CLASS{}", self.0),
        }
    }
}

/// Parses a DNSSEC algorithm: a decimal number or a mnemonic (RFC 4034 §3.2 allows both).
pub fn parse_algorithm(text: &[u8]) -> Option<u8> {
    if !text.is_empty() && text.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(text).ok()?.parse().ok();
    }
    ALGORITHMS
        .iter()
        .find(|(_, name)| name.as_bytes().eq_ignore_ascii_case(text))
        .map(|&(number, _)| number)
}

/// `TYPE65280` / `CLASS3`: the number after `prefix` (any case), 0–65535.
fn generic(text: &[u8], prefix: &[u8]) -> Option<u16> {
    let head = text.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let digits = &text[prefix.len()..];
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Data and meta types with a mnemonic (IANA "Resource Record (RR) TYPEs").
const TYPES: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (3, "MD"),
    (4, "MF"),
    (5, "CNAME"),
    (6, "SOA"),
    (7, "MB"),
    (8, "MG"),
    (9, "MR"),
    (10, "NULL"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (14, "MINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (19, "X25"),
    (20, "ISDN"),
    (21, "RT"),
    (22, "NSAP"),
    (23, "NSAP-PTR"),
    (24, "SIG"),
    (25, "KEY"),
    (26, "PX"),
    (27, "GPOS"),
    (28, "AAAA"),
    (29, "LOC"),
    (30, "NXT"),
    (31, "EID"),
    (32, "NIMLOC"),
    (33, "SRV"),
    (34, "ATMA"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (38, "A6"),
    (39, "DNAME"),
    (40, "SINK"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (56, "NINFO"),
    (57, "RKEY"),
    (58, "TALINK"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (66, "DSYNC"),
    (67, "HHIT"),
    (68, "BRID"),
    (99, "SPF"),
    (100, "UINFO"),
    (101, "UID"),
    (102, "GID"),
    (103, "UNSPEC"),
    (104, "NID"),
    (105, "L32"),
    (106, "L64"),
    (107, "LP"),
    (108, "EUI48"),
    (109, "EUI64"),
    (128, "NXNAME"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (258, "AVC"),
    (259, "DOA"),
    (260, "AMTRELAY"),
    (261, "RESINFO"),
    (262, "WALLET"),
    (263, "CLA"),
    (264, "IPN"),
    (32768, "TA"),
    (32769, "DLV"),
];

const CLASSES: &[(u16, &str)] = &[(1, "IN"), (2, "CS"), (3, "CH"), (4, "HS")];

/// IANA "DNS Security Algorithm Numbers" mnemonics.
const ALGORITHMS: &[(u8, &str)] = &[
    (1, "RSAMD5"),
    (2, "DH"),
    (3, "DSA"),
    (5, "RSASHA1"),
    (6, "DSA-NSEC3-SHA1"),
    (7, "RSASHA1-NSEC3-SHA1"),
    (8, "RSASHA256"),
    (10, "RSASHA512"),
    (12, "ECC-GOST"),
    (13, "ECDSAP256SHA256"),
    (14, "ECDSAP384SHA384"),
    (15, "ED25519"),
    (16, "ED448"),
    (17, "SM2SM3"),
    (23, "ECC-GOST12"),
    (252, "INDIRECT"),
    (253, "PRIVATEDNS"),
    (254, "PRIVATEOID"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_mnemonic_and_number() {
        assert_eq!(Rtype::parse(b"aaaa"), Some(Rtype(28)));
        assert_eq!(Rtype::parse(b"NSEC3PARAM"), Some(Rtype(51)));
        assert_eq!(Rtype::parse(b"type65534"), Some(Rtype(65534)));
        assert_eq!(Rtype::parse(b"TYPE65536"), None);
        assert_eq!(Rtype::parse(b"TYPE"), None);
        assert_eq!(Rtype::parse(b"TYPE1x"), None);
        assert_eq!(Rtype::parse(b"BOGUS"), None);
        assert_eq!(Rtype(46).to_string(), "RRSIG");
        assert_eq!(Rtype(65534).to_string(), "TYPE65534");
        for &(number, name) in TYPES {
            assert_eq!(Rtype::parse(name.as_bytes()), Some(Rtype(number)), "{name}");
        }
    }

    #[test]
    fn classes() {
        assert_eq!(Class::parse(b"in"), Some(Class::IN));
        assert_eq!(Class::parse(b"CH"), Some(Class(3)));
        assert_eq!(Class::parse(b"CLASS32"), Some(Class(32)));
        assert_eq!(Class::parse(b"ANY"), None);
        assert_eq!(Class(32).to_string(), "CLASS32");
        assert_eq!(Class::IN.to_string(), "IN");
    }

    #[test]
    fn algorithms() {
        assert_eq!(parse_algorithm(b"13"), Some(13));
        assert_eq!(parse_algorithm(b"rsasha256"), Some(8));
        assert_eq!(parse_algorithm(b"256"), None);
        assert_eq!(parse_algorithm(b""), None);
        assert_eq!(parse_algorithm(b"NOPE"), None);
    }
}
