//! Domain names as the zone reader and the signature scan need them: absolute, in
//! uncompressed wire form, compared without regard to ASCII case (RFC 4343), printed in
//! presentation format with `\X` and `\DDD` escapes.

use std::fmt;
use std::hash::{Hash, Hasher};

/// The longest name in wire form, the root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// An absolute domain name, kept in uncompressed wire form with its original case.
#[derive(Clone)]
pub struct Name {
    wire: Vec<u8>,
}

/// Why text or wire data is not a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("empty label")]
    EmptyLabel,
    #[error("label longer than 63 octets")]
    LabelTooLong,
    #[error("name longer than 255 octets")]
    NameTooLong,
    #[error("bad escape (`\\DDD` needs three digits with a value up to 255)")]
    BadEscape,
    #[error("relative name and no origin (give $ORIGIN in the file or --origin)")]
    NoOrigin,
    #[error("truncated or compressed name in wire data")]
    BadWire,
}

impl Name {
    /// The root name, `.`.
    pub fn root() -> Name {
        Name { wire: vec![0] }
    }

    /// Parses presentation text (escapes not yet resolved, as written in a zone file). A
    /// name without a final unescaped dot is relative and gets `origin` appended.
    pub fn parse(text: &[u8], origin: Option<&Name>) -> Result<Name, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text == b"." {
            return Ok(Name::root());
        }
        let mut wire = Vec::with_capacity(text.len() + 2);
        let mut label_start = 0;
        wire.push(0); // length of the first label, patched when the label ends
        let mut absolute = false;
        let mut i = 0;
        while i < text.len() {
            let byte = text[i];
            i += 1;
            let octet = match byte {
                b'.' => {
                    let len = wire.len() - label_start - 1;
                    if len == 0 {
                        return Err(NameError::EmptyLabel);
                    }
                    wire[label_start] = len as u8;
                    if i == text.len() {
                        absolute = true;
                    } else {
                        label_start = wire.len();
                        wire.push(0);
                    }
                    continue;
                }
                b'\\' => {
                    let (octet, used) = unescape(&text[i..])?;
                    i += used;
                    octet
                }
                other => other,
            };
            wire.push(octet);
            if wire.len() - label_start - 1 > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong);
            }
            if wire.len() > MAX_NAME_LEN {
                return Err(NameError::NameTooLong);
            }
        }
        if absolute {
            wire.push(0);
        } else {
            let len = wire.len() - label_start - 1;
            if len == 0 {
                return Err(NameError::EmptyLabel);
            }
            wire[label_start] = len as u8;
            let origin = origin.ok_or(NameError::NoOrigin)?;
            wire.extend_from_slice(&origin.wire);
        }
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong);
        }
        Ok(Name { wire })
    }

    /// Reads an uncompressed name from the start of `data`; returns it and the octets used.
    pub fn from_wire(data: &[u8]) -> Result<(Name, usize), NameError> {
        let mut pos = 0;
        loop {
            let len = *data.get(pos).ok_or(NameError::BadWire)? as usize;
            if len > MAX_LABEL_LEN {
                // 0xC0 pointers and the reserved 0x40/0x80 label types.
                return Err(NameError::BadWire);
            }
            pos += 1 + len;
            if pos > MAX_NAME_LEN {
                return Err(NameError::NameTooLong);
            }
            if pos > data.len() {
                return Err(NameError::BadWire);
            }
            if len == 0 {
                let wire = data[..pos].to_vec();
                return Ok((Name { wire }, pos));
            }
        }
    }

    /// Reads a possibly compressed name (RFC 1035 §4.1.4) at `at` in a whole DNS
    /// `message` into `self`, reusing its allocation; returns the offset just past the name
    /// where it is written (past its first pointer, if any). Pointers must point backwards,
    /// so a loop of pointers cannot be followed forever.
    pub fn read_compressed(&mut self, message: &[u8], at: usize) -> Result<usize, NameError> {
        self.wire.clear();
        let mut pos = at;
        let mut end = None;
        loop {
            let len = *message.get(pos).ok_or(NameError::BadWire)?;
            match len & 0xC0 {
                0x00 => {
                    let len = usize::from(len);
                    let label = message.get(pos..pos + 1 + len).ok_or(NameError::BadWire)?;
                    if self.wire.len() + label.len() > MAX_NAME_LEN {
                        return Err(NameError::NameTooLong);
                    }
                    self.wire.extend_from_slice(label);
                    pos += 1 + len;
                    if len == 0 {
                        return Ok(end.unwrap_or(pos));
                    }
                }
                0xC0 => {
                    let low = *message.get(pos + 1).ok_or(NameError::BadWire)?;
                    let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                    if target >= pos {
                        return Err(NameError::BadWire);
                    }
                    end.get_or_insert(pos + 2);
                    pos = target;
                }
                // The extended label types 0x40 and 0x80 (RFC 6891 §5).
                _ => return Err(NameError::BadWire),
            }
        }
    }

    /// The uncompressed wire form, root label included.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// The labels from the leftmost, without the root.
    fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut pos = 0;
        std::iter::from_fn(move || {
            let len = *self.wire.get(pos)? as usize;
            if len == 0 {
                return None;
            }
            let label = self.wire.get(pos + 1..pos + 1 + len)?;
            pos += 1 + len;
            Some(label)
        })
    }

    /// Makes `self` equal to `other`, reusing the allocation.
    pub fn set_from(&mut self, other: &Name) {
        self.wire.clear();
        self.wire.extend_from_slice(&other.wire);
    }
}

/// Resolves the escape after a backslash: `\DDD` or `\X`; returns the octet and how many
/// bytes of `rest` it used.
fn unescape(rest: &[u8]) -> Result<(u8, usize), NameError> {
    match rest.first() {
        None => Err(NameError::BadEscape),
        Some(d) if d.is_ascii_digit() => {
            let digits = rest.get(..3).ok_or(NameError::BadEscape)?;
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(NameError::BadEscape);
            }
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            let octet = u8::try_from(value).map_err(|_| NameError::BadEscape)?;
            Ok((octet, 3))
        }
        Some(&other) => Ok((other, 1)),
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        // Length octets are at most 63, below every ASCII letter, so a case-insensitive
        // comparison of the whole wire form compares labels case-insensitively.
        self.wire.eq_ignore_ascii_case(&other.wire)
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for byte in &self.wire {
            state.write_u8(byte.to_ascii_lowercase());
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wire.len() <= 1 {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &byte in label {
                match byte {
                    b'.' | b'\\' | b'"' | b';' | b'(' | b')' | b'@' | b'$' => {
                        write!(f, "\\{}", byte as char)?
                    }
                    0x21..=0x7e => write!(f, "{}", byte as char)?,
                    _ => write!(f, "\\{byte:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text.as_bytes(), None).unwrap()
    }

    #[test]
    fn absolute_relative_and_root() {
        let origin = name("example.test.");
        assert_eq!(name(".").as_wire(), &[0]);
        assert_eq!(name("a.b.").as_wire(), b"\x01a\x01b\x00");
        let relative = Name::parse(b"www", Some(&origin)).unwrap();
        assert_eq!(relative.to_string(), "www.example.test.");
        assert_eq!(
            Name::parse(b"www", None).unwrap_err(),
            NameError::NoOrigin,
            "a relative name needs an origin"
        );
    }

    #[test]
    fn escapes_both_ways() {
        let n = name("a\\.b.c\\032d.\\255.");
        assert_eq!(n.as_wire(), b"\x03a.b\x03c d\x01\xff\x00");
        assert_eq!(n.to_string(), "a\\.b.c\\032d.\\255.");
        assert_eq!(Name::parse(n.to_string().as_bytes(), None).unwrap(), n);
        assert_eq!(name("\\065.").as_wire(), b"\x01A\x00");
    }

    #[test]
    fn case_insensitive_equality_and_hash() {
        use std::collections::HashSet;
        let set: HashSet<Name> = [name("WWW.Example.TEST."), name("www.example.test.")]
            .into_iter()
            .collect();
        assert_eq!(set.len(), 1);
        assert_ne!(name("a.test."), name("b.test."));
    }

    #[test]
    fn rejects_bad_names() {
        for (text, error) in [
            ("", NameError::Empty),
            ("a..b.", NameError::EmptyLabel),
            (".a.", NameError::EmptyLabel),
            ("a\\25", NameError::BadEscape),
            ("a\\256.", NameError::BadEscape),
            ("a\\", NameError::BadEscape),
            ("a\\1x1.", NameError::BadEscape),
        ] {
            assert_eq!(
                Name::parse(text.as_bytes(), None).unwrap_err(),
                error,
                "{text:?}"
            );
        }
        let long_label = format!("{}.", "a".repeat(64));
        assert_eq!(
            Name::parse(long_label.as_bytes(), None).unwrap_err(),
            NameError::LabelTooLong
        );
        let long_name = "abcdefghi.".repeat(26);
        assert_eq!(
            Name::parse(long_name.as_bytes(), None).unwrap_err(),
            NameError::NameTooLong
        );
        let origin = name(&"abcdefghi.".repeat(25));
        assert_eq!(
            Name::parse(b"abcdef", Some(&origin)).unwrap_err(),
            NameError::NameTooLong
        );
    }

    #[test]
    fn compressed_names() {
        // "example.test." at 2, "www" + pointer to it at 16, a forward pointer at 22.
        let mut message = b"\0\0\x07example\x04test\0".to_vec();
        message.extend_from_slice(b"\x03www\xc0\x02");
        message.extend_from_slice(b"\xc0\x20");
        let mut n = Name::root();
        assert_eq!(n.read_compressed(&message, 2).unwrap(), 16);
        assert_eq!(n.to_string(), "example.test.");
        assert_eq!(n.read_compressed(&message, 16).unwrap(), 22);
        assert_eq!(n.to_string(), "www.example.test.");
        assert_eq!(n.read_compressed(&message, 22), Err(NameError::BadWire));
        assert_eq!(n.read_compressed(&message, 23), Err(NameError::BadWire));
        assert_eq!(n.read_compressed(b"\x03ww", 0), Err(NameError::BadWire));
        assert_eq!(n.read_compressed(b"\x40", 0), Err(NameError::BadWire));
    }

    #[test]
    fn wire_round_trip() {
        let n = name("www.example.test.");
        let mut data = n.as_wire().to_vec();
        data.extend_from_slice(b"rest");
        let (back, used) = Name::from_wire(&data).unwrap();
        assert_eq!(back, n);
        assert_eq!(used, n.as_wire().len());
        assert_eq!(Name::from_wire(b"\x03www").unwrap_err(), NameError::BadWire);
        assert_eq!(
            Name::from_wire(b"\xc0\x0c").unwrap_err(),
            NameError::BadWire
        );
        assert_eq!(Name::from_wire(b"").unwrap_err(), NameError::BadWire);
    }
}
