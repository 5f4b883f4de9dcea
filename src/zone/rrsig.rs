//! The fields of an RRSIG record that the signature scan needs (RFC 4034 §3), decoded
//! from presentation text or from wire data, and signature times with the serial-number
//! arithmetic of RFC 4034 §3.1.5.
//!
//! The signature itself is checked only for being present (and, in text, for being
//! base64); it is not decoded or verified: the scan is about validity periods, not about
//! cryptography.

use super::name::{Name, NameError};
use super::types::{Rtype, parse_algorithm};

/// The RRSIG fields, signature excluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrsig {
    pub type_covered: Rtype,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: SignatureTime,
    pub inception: SignatureTime,
    pub key_tag: u16,
    pub signer: Name,
}

/// What is wrong with an RRSIG's RDATA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RrsigError {
    #[error("RRSIG is missing the {0} field")]
    Missing(&'static str),
    #[error("RRSIG has an invalid {0}")]
    Invalid(&'static str),
    #[error("RRSIG signer name: {0}")]
    Signer(NameError),
    /// The presentation field (counted from 0) that is not base64.
    #[error("RRSIG signature is not base64")]
    NotBase64(usize),
}

/// A signature expiration or inception time: the 32-bit number of seconds since
/// 1970-01-01T00:00:00Z modulo 2³², as it travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureTime(pub u32);

const WRAP: i64 = 1 << 32;

impl SignatureTime {
    /// Parses `YYYYMMDDHHmmSS` (exactly 14 digits, UTC, year 1970 or later) or a decimal
    /// number of seconds that fits in 32 bits (RFC 4034 §3.2).
    pub fn parse(text: &[u8]) -> Option<SignatureTime> {
        if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
            return None;
        }
        if text.len() == 14 {
            let field = |range: std::ops::Range<usize>| -> u32 {
                text[range]
                    .iter()
                    .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
            };
            let date =
                chrono::NaiveDate::from_ymd_opt(field(0..4) as i32, field(4..6), field(6..8))?;
            let time = chrono::NaiveTime::from_hms_opt(field(8..10), field(10..12), field(12..14))?;
            let seconds = date.and_time(time).and_utc().timestamp();
            if seconds < 0 {
                return None;
            }
            return Some(SignatureTime(seconds.rem_euclid(WRAP) as u32));
        }
        if text.len() > 10 {
            return None;
        }
        std::str::from_utf8(text)
            .ok()?
            .parse::<u32>()
            .ok()
            .map(SignatureTime)
    }

    /// The absolute time (seconds since the epoch) this value denotes as seen at `now`:
    /// RFC 1982 serial arithmetic puts it within 2³¹ seconds (about 68 years) of `now`.
    /// A value exactly 2³¹ seconds away, undefined in RFC 1982, counts as the past.
    pub fn at(self, now: i64) -> i64 {
        let now_wrapped = now.rem_euclid(WRAP) as u32;
        let delta = self.0.wrapping_sub(now_wrapped) as i32;
        now + i64::from(delta)
    }
}

impl Rrsig {
    /// Decodes the presentation form: `type-covered algorithm labels original-ttl
    /// expiration inception key-tag signer signature…`. Relative signer names are made
    /// absolute with `origin`.
    pub fn from_text<'a>(
        mut fields: impl Iterator<Item = &'a [u8]>,
        origin: Option<&Name>,
    ) -> Result<Rrsig, RrsigError> {
        let mut next = |what: &'static str| fields.next().ok_or(RrsigError::Missing(what));
        let type_covered =
            Rtype::parse(next("type covered")?).ok_or(RrsigError::Invalid("type covered"))?;
        let algorithm =
            parse_algorithm(next("algorithm")?).ok_or(RrsigError::Invalid("algorithm"))?;
        let labels = decimal(next("labels")?)
            .and_then(|n| u8::try_from(n).ok())
            .ok_or(RrsigError::Invalid("labels"))?;
        let original_ttl = decimal(next("original TTL")?)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(RrsigError::Invalid("original TTL"))?;
        let expiration =
            SignatureTime::parse(next("expiration")?).ok_or(RrsigError::Invalid("expiration"))?;
        let inception =
            SignatureTime::parse(next("inception")?).ok_or(RrsigError::Invalid("inception"))?;
        let key_tag = decimal(next("key tag")?)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(RrsigError::Invalid("key tag"))?;
        let signer_text = next("signer")?;
        let signer = if signer_text == b"@" {
            origin
                .cloned()
                .ok_or(RrsigError::Signer(NameError::NoOrigin))?
        } else {
            Name::parse(signer_text, origin).map_err(RrsigError::Signer)?
        };
        let mut signature = 0;
        for (index, chunk) in fields.enumerate() {
            if !chunk
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
            {
                return Err(RrsigError::NotBase64(SIGNATURE_FIELD + index));
            }
            signature += chunk.len();
        }
        if signature == 0 {
            return Err(RrsigError::Missing("signature"));
        }
        Ok(Rrsig {
            type_covered,
            algorithm,
            labels,
            original_ttl,
            expiration,
            inception,
            key_tag,
            signer,
        })
    }

    /// Decodes wire-format RDATA (from an RFC 3597 `\#` field or a zone transfer).
    pub fn from_wire(rdata: &[u8]) -> Result<Rrsig, RrsigError> {
        let fixed = rdata.get(..18).ok_or(RrsigError::Missing("fixed-length"))?;
        let u16_at = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_be_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]])
        };
        let (signer, used) = Name::from_wire(&rdata[18..]).map_err(RrsigError::Signer)?;
        if rdata.len() <= 18 + used {
            return Err(RrsigError::Missing("signature"));
        }
        Ok(Rrsig {
            type_covered: Rtype(u16_at(0)),
            algorithm: fixed[2],
            labels: fixed[3],
            original_ttl: u32_at(4),
            expiration: SignatureTime(u32_at(8)),
            inception: SignatureTime(u32_at(12)),
            key_tag: u16_at(16),
            signer,
        })
    }
}

/// The presentation fields before the signature, in order; the signature starts at
/// [`SIGNATURE_FIELD`].
const TEXT_FIELDS: [&str; 8] = [
    "type covered",
    "algorithm",
    "labels",
    "original TTL",
    "expiration",
    "inception",
    "key tag",
    "signer",
];
const SIGNATURE_FIELD: usize = TEXT_FIELDS.len();

impl RrsigError {
    /// Which presentation field (counted from 0) the error is about, if it is about one
    /// that is present.
    pub fn text_field(&self) -> Option<usize> {
        match self {
            RrsigError::Invalid(what) => TEXT_FIELDS.iter().position(|f| f == what),
            RrsigError::Signer(_) => Some(7),
            RrsigError::NotBase64(index) => Some(*index),
            RrsigError::Missing(_) => None,
        }
    }
}

/// A decimal number of at most 10 digits.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 10 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        text.iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_993_200; // 2026-11-29T23:00:00Z

    #[test]
    fn date_and_integer_forms() {
        let date = SignatureTime::parse(b"20261129230000").unwrap();
        assert_eq!(date, SignatureTime(NOW as u32));
        assert_eq!(SignatureTime::parse(b"1795993200"), Some(date));
        assert_eq!(SignatureTime::parse(b"0"), Some(SignatureTime(0)));
        assert_eq!(
            SignatureTime::parse(b"4294967295"),
            Some(SignatureTime(u32::MAX))
        );
        for bad in [
            &b"4294967296"[..],
            b"20261301000000", // month 13
            b"20260230000000", // 30 February
            b"20261129240000", // hour 24
            b"19691231235959", // before the epoch
            b"202611292100",   // 12 digits: neither form
            b"-1",
            b"",
            b"12a",
        ] {
            assert_eq!(
                SignatureTime::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn dates_after_2106_wrap_like_on_the_wire() {
        // 2106-02-07T06:28:16Z is 2^32 seconds after the epoch.
        assert_eq!(
            SignatureTime::parse(b"21060207062816"),
            Some(SignatureTime(0))
        );
    }

    #[test]
    fn serial_arithmetic_relative_to_now() {
        let in_a_day = SignatureTime((NOW + 86_400) as u32);
        assert_eq!(in_a_day.at(NOW), NOW + 86_400);
        let a_day_ago = SignatureTime((NOW - 86_400) as u32);
        assert_eq!(a_day_ago.at(NOW), NOW - 86_400);
        // Near the 2106 wrap, a small number is just after the wrap, not in 1970.
        let now_2106 = WRAP - 100;
        assert_eq!(SignatureTime(50).at(now_2106), WRAP + 50);
        // And a large number seen just after the wrap is just before it.
        assert_eq!(SignatureTime(u32::MAX).at(WRAP + 10), WRAP - 1);
        // Exactly 2^31 away: the past.
        let half = SignatureTime((NOW + (1 << 31)).rem_euclid(WRAP) as u32);
        assert_eq!(half.at(NOW), NOW - (1 << 31));
    }

    fn fields(text: &str) -> impl Iterator<Item = &[u8]> {
        text.split_ascii_whitespace().map(str::as_bytes)
    }

    #[test]
    fn text_form() {
        let origin = Name::parse(b"example.test.", None).unwrap();
        let sig = Rrsig::from_text(
            fields("A ECDSAP256SHA256 3 300 20261227230032 1795993200 22272 @ abc+/= def=="),
            Some(&origin),
        )
        .unwrap();
        assert_eq!(sig.type_covered, Rtype(1));
        assert_eq!(sig.algorithm, 13);
        assert_eq!(sig.labels, 3);
        assert_eq!(sig.original_ttl, 300);
        assert_eq!(sig.inception, SignatureTime(NOW as u32));
        assert_eq!(sig.key_tag, 22272);
        assert_eq!(sig.signer, origin);
    }

    #[test]
    fn text_form_errors() {
        for (text, error) in [
            (
                "A 13 3 300 20261227230032 20261129230032 22272",
                RrsigError::Missing("signer"),
            ),
            (
                "A 13 3 300 20261227230032 20261129230032 22272 a.",
                RrsigError::Missing("signature"),
            ),
            (
                "BOGUS 13 3 300 1 2 3 a. AA",
                RrsigError::Invalid("type covered"),
            ),
            ("A 999 3 300 1 2 3 a. AA", RrsigError::Invalid("algorithm")),
            ("A 13 256 300 1 2 3 a. AA", RrsigError::Invalid("labels")),
            ("A 13 3 3x 1 2 3 a. AA", RrsigError::Invalid("original TTL")),
            (
                "A 13 3 300 2026x 2 3 a. AA",
                RrsigError::Invalid("expiration"),
            ),
            ("A 13 3 300 1 x 3 a. AA", RrsigError::Invalid("inception")),
            ("A 13 3 300 1 2 65536 a. AA", RrsigError::Invalid("key tag")),
            (
                "A 13 3 300 1 2 3 a..b. AA",
                RrsigError::Signer(NameError::EmptyLabel),
            ),
            ("A 13 3 300 1 2 3 a. AA A*A", RrsigError::NotBase64(9)),
        ] {
            assert_eq!(
                Rrsig::from_text(fields(text), None).unwrap_err(),
                error,
                "{text}"
            );
        }
        assert_eq!(RrsigError::Invalid("expiration").text_field(), Some(4));
        assert_eq!(RrsigError::Signer(NameError::Empty).text_field(), Some(7));
        assert_eq!(RrsigError::Missing("signer").text_field(), None);
    }

    #[test]
    fn wire_form() {
        let mut rdata = vec![0, 28, 13, 3, 0, 0, 1, 44];
        rdata.extend_from_slice(&2_000_000_000u32.to_be_bytes());
        rdata.extend_from_slice(&1_900_000_000u32.to_be_bytes());
        rdata.extend_from_slice(&4242u16.to_be_bytes());
        rdata.extend_from_slice(b"\x07example\x04test\x00");
        rdata.extend_from_slice(&[1, 2, 3]);
        let sig = Rrsig::from_wire(&rdata).unwrap();
        assert_eq!(sig.type_covered, Rtype(28));
        assert_eq!(sig.original_ttl, 300);
        assert_eq!(sig.expiration, SignatureTime(2_000_000_000));
        assert_eq!(sig.inception, SignatureTime(1_900_000_000));
        assert_eq!(sig.key_tag, 4242);
        assert_eq!(sig.signer.to_string(), "example.test.");
        assert_eq!(
            Rrsig::from_wire(&rdata[..rdata.len() - 3]).unwrap_err(),
            RrsigError::Missing("signature")
        );
        assert_eq!(
            Rrsig::from_wire(&rdata[..17]).unwrap_err(),
            RrsigError::Missing("fixed-length")
        );
        assert!(matches!(
            Rrsig::from_wire(&rdata[..22]).unwrap_err(),
            RrsigError::Signer(_)
        ));
    }
}
