//! A streaming reader of zone files in the master format of RFC 1035 §5, as written by
//! `ldns-signzone`, Knot DNS (zone file sync, `knotc zone-read` after removing its
//! `[zone] ` prefix), BIND's `named-compilezone` and people.
//!
//! [`ZoneReader`] reads from any [`BufRead`] and hands out one [`Record`] at a time; it
//! keeps only the current entry (one logical record, at most [`MAX_ENTRY_LEN`] bytes)
//! and the state the format carries from one entry to the next: origin, default TTL,
//! last owner, class and TTL.
//!
//! Supported: `$ORIGIN`, `$TTL` (RFC 2308), comments, parentheses spanning lines, quoted
//! strings with `\X` and `\DDD` escapes, escapes in names, `@`, a blank owner meaning the
//! previous owner, relative names, TTL (with BIND-style units such as `1h30m`) and class
//! in either order and both optional, `TYPEnnn`/`CLASSnnn` and `\# length hex` RDATA
//! (RFC 3597). A TTL that is omitted comes from `$TTL`, else from the last record that
//! gave one (RFC 1035), else, for an SOA and the records after it, from the SOA's MINIMUM
//! field (as BIND does).
//!
//! Decoded: owner, TTL, class and type of every record, and the fields of RRSIG records
//! (text or `\#` form, see [`Rrsig`]). The RDATA of other types stays as the text tokens
//! as written (quotes removed, escapes kept), except that `\#` RDATA is checked for its
//! length and hex digits.
//!
//! Not supported, with an error naming the file and line: `$INCLUDE` (zone files that
//! signers write are self-contained, and reading other files named by the input is a
//! liberty a checker does not need), BIND's `$GENERATE`, nested parentheses, and quoted
//! strings that run over the end of a line. Lines and entries longer than
//! [`MAX_ENTRY_LEN`] are refused rather than buffered.

use std::fmt;
use std::io::BufRead;

use super::name::{Name, NameError};
use super::rrsig::{Rrsig, RrsigError};
use super::types::{Class, Rtype};

/// The longest physical line and the longest entry (all tokens of one record, across
/// parenthesised lines). The largest RDATA, 65,535 octets written as `\#` hex, fits.
pub const MAX_ENTRY_LEN: usize = 1 << 20;
/// The most tokens in one entry (a TXT record of 65,535 empty strings fits).
const MAX_TOKENS: usize = 70_000;
/// How much of an offending token an error message quotes.
const MAX_QUOTED: usize = 80;

/// One record, valid until the next call of [`ZoneReader::next_record`].
#[derive(Debug, Clone)]
pub struct Record {
    pub owner: Name,
    pub ttl: u32,
    pub class: Class,
    pub rtype: Rtype,
    /// The line where the record's entry starts.
    pub line: u64,
    rrsig: Option<Rrsig>,
    entry: Entry,
    rdata_from: usize,
}

/// A token of RDATA as written: quotes removed, escapes kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: &'a [u8],
    pub quoted: bool,
}

impl Record {
    /// The decoded RRSIG fields, for a record of type RRSIG.
    pub fn rrsig(&self) -> Option<&Rrsig> {
        self.rrsig.as_ref()
    }

    /// The RDATA tokens.
    pub fn rdata(&self) -> impl Iterator<Item = Token<'_>> {
        self.entry.tokens[self.rdata_from..]
            .iter()
            .map(|t| self.entry.token(t))
    }
}

/// The tokens of one entry, stored back to back in one buffer.
#[derive(Debug, Clone, Default)]
struct Entry {
    text: Vec<u8>,
    tokens: Vec<Span>,
    /// The entry's first line starts with a blank: the owner is the previous one.
    blank_owner: bool,
    line: u64,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    quoted: bool,
    line: u64,
}

impl Entry {
    fn clear(&mut self) {
        self.text.clear();
        self.tokens.clear();
    }

    fn token(&self, span: &Span) -> Token<'_> {
        Token {
            text: &self.text[span.start..span.end],
            quoted: span.quoted,
        }
    }

    fn text(&self, index: usize) -> &[u8] {
        let span = &self.tokens[index];
        &self.text[span.start..span.end]
    }
}

/// A zone file that cannot be read, with the place and the offending text.
#[derive(Debug, thiserror::Error)]
pub struct ZoneError {
    /// The file name (or other description of the input) given to [`ZoneReader::new`].
    pub source_name: String,
    pub line: u64,
    pub kind: ErrorKind,
    /// The offending token, when there is one.
    pub text: Option<String>,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source_name, self.line, self.kind)?;
        if let Some(text) = &self.text {
            write!(f, ": `{text}`")?;
        }
        Ok(())
    }
}

/// What is wrong, without the place.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    #[error("line longer than {MAX_ENTRY_LEN} bytes")]
    LineTooLong,
    #[error("record longer than {MAX_ENTRY_LEN} bytes or {MAX_TOKENS} tokens")]
    EntryTooLong,
    #[error("quoted string not closed on this line")]
    UnterminatedQuote,
    #[error("backslash at the end of a line")]
    EscapeAtEndOfLine,
    #[error("nested parenthesis")]
    NestedParenthesis,
    #[error("`)` without `(`")]
    UnopenedParenthesis,
    #[error("`(` opened here is never closed")]
    UnclosedParenthesis,
    #[error("$INCLUDE is not supported: give a self-contained zone file")]
    IncludeNotSupported,
    #[error("unknown or unsupported directive")]
    UnknownDirective,
    #[error("{0} takes exactly one argument")]
    DirectiveArguments(&'static str),
    #[error("invalid name ({0})")]
    BadName(NameError),
    #[error("invalid TTL")]
    BadTtl,
    #[error("a blank owner but no previous record")]
    NoPreviousOwner,
    #[error("no TTL: give one, or $TTL before this record")]
    NoTtl,
    #[error("record type missing")]
    MissingType,
    #[error("unknown record type")]
    UnknownType,
    #[error("invalid RFC 3597 `\\#` RDATA ({0})")]
    BadGeneric(&'static str),
    #[error("{0}")]
    Rrsig(RrsigError),
}

/// Reads records one at a time; see the module documentation.
pub struct ZoneReader<R> {
    input: R,
    source_name: String,
    line_no: u64,
    line: Vec<u8>,
    at_eof: bool,
    /// Where the open parenthesis of the current entry is, if one is open.
    open_paren: Option<u64>,
    origin: Option<Name>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_class: Option<Class>,
    have_owner: bool,
    record: Record,
    hex: Vec<u8>,
}

impl<R: BufRead> ZoneReader<R> {
    /// `source_name` names the input in errors (the file name); `origin` is the initial
    /// origin for relative names, until the file sets one with `$ORIGIN`.
    pub fn new(input: R, source_name: impl Into<String>, origin: Option<Name>) -> Self {
        ZoneReader {
            input,
            source_name: source_name.into(),
            line_no: 0,
            line: Vec::new(),
            at_eof: false,
            open_paren: None,
            origin,
            default_ttl: None,
            last_ttl: None,
            last_class: None,
            have_owner: false,
            record: Record {
                owner: Name::root(),
                ttl: 0,
                class: Class::IN,
                rtype: Rtype(0),
                line: 0,
                rrsig: None,
                entry: Entry::default(),
                rdata_from: 0,
            },
            hex: Vec::new(),
        }
    }

    /// The next record, or `None` at the end of the input. After an error the reader is
    /// not to be used further.
    pub fn next_record(&mut self) -> Result<Option<&Record>, ZoneError> {
        loop {
            if !self.read_entry()? {
                return Ok(None);
            }
            let entry = &self.record.entry;
            let first = entry.tokens[0];
            if !entry.blank_owner && !first.quoted && entry.text(0).starts_with(b"$") {
                self.directive()?;
                continue;
            }
            self.parse_record()?;
            return Ok(Some(&self.record));
        }
    }

    /// The number of lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    fn error(&self, line: u64, kind: ErrorKind, text: Option<&[u8]>) -> ZoneError {
        ZoneError {
            source_name: self.source_name.clone(),
            line,
            kind,
            text: text.map(quote),
        }
    }

    /// An error about token `index` of the current entry.
    fn token_error(&self, index: usize, kind: ErrorKind) -> ZoneError {
        let entry = &self.record.entry;
        let span = entry.tokens[index];
        self.error(span.line, kind, Some(entry.text(index)))
    }

    /// Reads the next physical line into `self.line`, without its newline.
    fn read_line(&mut self) -> Result<bool, ZoneError> {
        self.line.clear();
        if self.at_eof {
            return Ok(false);
        }
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.error(self.line_no + 1, ErrorKind::Io(e), None)),
            };
            if chunk.is_empty() {
                self.at_eof = true;
                if self.line.is_empty() {
                    return Ok(false);
                }
                self.line_no += 1;
                return Ok(true);
            }
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let too_long = self.line.len() + take > MAX_ENTRY_LEN;
            if !too_long {
                self.line.extend_from_slice(&chunk[..take]);
            }
            self.input.consume(if found { take + 1 } else { take });
            if too_long {
                return Err(self.error(self.line_no + 1, ErrorKind::LineTooLong, None));
            }
            if found {
                self.line_no += 1;
                return Ok(true);
            }
        }
    }

    /// Collects the tokens of the next entry; false at the end of the input.
    fn read_entry(&mut self) -> Result<bool, ZoneError> {
        self.record.entry.clear();
        loop {
            if !self.read_line()? {
                if let Some(opened) = self.open_paren {
                    return Err(self.error(opened, ErrorKind::UnclosedParenthesis, None));
                }
                return Ok(false);
            }
            if self.open_paren.is_none() && self.record.entry.tokens.is_empty() {
                self.record.entry.line = self.line_no;
                self.record.entry.blank_owner = matches!(self.line.first(), Some(b' ' | b'\t'));
            }
            self.tokenize_line()?;
            let entry = &self.record.entry;
            if entry.text.len() > MAX_ENTRY_LEN || entry.tokens.len() > MAX_TOKENS {
                return Err(self.error(entry.line, ErrorKind::EntryTooLong, None));
            }
            if self.open_paren.is_none() && !entry.tokens.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Splits `self.line` into tokens appended to the current entry.
    fn tokenize_line(&mut self) -> Result<(), ZoneError> {
        let line_no = self.line_no;
        let line = &self.line;
        let entry = &mut self.record.entry;
        let mut i = 0;
        let fail = |kind: ErrorKind, text: &[u8]| ZoneError {
            source_name: self.source_name.clone(),
            line: line_no,
            kind,
            text: Some(quote(text)),
        };
        while i < line.len() {
            match line[i] {
                b' ' | b'\t' | b'\r' => i += 1,
                b';' => break,
                b'(' => {
                    if self.open_paren.is_some() {
                        return Err(fail(ErrorKind::NestedParenthesis, &line[i..]));
                    }
                    self.open_paren = Some(line_no);
                    i += 1;
                }
                b')' => {
                    if self.open_paren.take().is_none() {
                        return Err(fail(ErrorKind::UnopenedParenthesis, &line[i..]));
                    }
                    i += 1;
                }
                b'"' => {
                    let opening = i;
                    i += 1;
                    let start = entry.text.len();
                    loop {
                        match line.get(i) {
                            None => {
                                return Err(fail(ErrorKind::UnterminatedQuote, &line[opening..]));
                            }
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => {
                                let Some(&next) = line.get(i + 1) else {
                                    return Err(fail(
                                        ErrorKind::UnterminatedQuote,
                                        &line[opening..],
                                    ));
                                };
                                entry.text.extend_from_slice(&[b'\\', next]);
                                i += 2;
                            }
                            Some(&byte) => {
                                entry.text.push(byte);
                                i += 1;
                            }
                        }
                    }
                    entry.tokens.push(Span {
                        start,
                        end: entry.text.len(),
                        quoted: true,
                        line: line_no,
                    });
                }
                _ => {
                    let start = entry.text.len();
                    let first = i;
                    while let Some(&byte) = line.get(i) {
                        match byte {
                            b' ' | b'\t' | b'\r' | b';' | b'(' | b')' | b'"' => break,
                            b'\\' => {
                                let Some(&next) = line.get(i + 1) else {
                                    return Err(fail(ErrorKind::EscapeAtEndOfLine, &line[first..]));
                                };
                                entry.text.extend_from_slice(&[b'\\', next]);
                                i += 2;
                            }
                            _ => {
                                entry.text.push(byte);
                                i += 1;
                            }
                        }
                    }
                    entry.tokens.push(Span {
                        start,
                        end: entry.text.len(),
                        quoted: false,
                        line: line_no,
                    });
                }
            }
        }
        Ok(())
    }

    /// `$ORIGIN`, `$TTL`; everything else is refused.
    fn directive(&mut self) -> Result<(), ZoneError> {
        let entry = &self.record.entry;
        let name = entry.text(0).to_ascii_uppercase();
        let one_argument = |what: &'static str| {
            if entry.tokens.len() == 2 {
                Ok(1)
            } else {
                Err(self.error(
                    entry.line,
                    ErrorKind::DirectiveArguments(what),
                    Some(entry.text(0)),
                ))
            }
        };
        match name.as_slice() {
            b"$ORIGIN" => {
                let index = one_argument("$ORIGIN")?;
                let origin = self.name(index)?;
                self.origin = Some(origin);
            }
            b"$TTL" => {
                let index = one_argument("$TTL")?;
                let ttl = parse_ttl(entry.text(index))
                    .ok_or_else(|| self.token_error(index, ErrorKind::BadTtl))?;
                self.default_ttl = Some(ttl);
            }
            b"$INCLUDE" => return Err(self.token_error(0, ErrorKind::IncludeNotSupported)),
            _ => return Err(self.token_error(0, ErrorKind::UnknownDirective)),
        }
        Ok(())
    }

    /// Token `index` as a name: `@` is the origin, relative names get the origin.
    fn name(&self, index: usize) -> Result<Name, ZoneError> {
        let span = self.record.entry.tokens[index];
        let text = self.record.entry.text(index);
        if text == b"@" && !span.quoted {
            return self
                .origin
                .clone()
                .ok_or_else(|| self.token_error(index, ErrorKind::BadName(NameError::NoOrigin)));
        }
        Name::parse(text, self.origin.as_ref())
            .map_err(|e| self.token_error(index, ErrorKind::BadName(e)))
    }

    fn parse_record(&mut self) -> Result<(), ZoneError> {
        let entry = &self.record.entry;
        let mut index = 0;
        if entry.blank_owner {
            if !self.have_owner {
                return Err(self.token_error(0, ErrorKind::NoPreviousOwner));
            }
        } else {
            let owner = self.name(0)?;
            self.record.owner = owner;
            self.have_owner = true;
            index = 1;
        }
        let entry = &self.record.entry;
        let mut ttl = None;
        let mut class = None;
        let rtype = loop {
            let Some(span) = entry.tokens.get(index) else {
                let last = entry.tokens.len() - 1;
                return Err(self.token_error(last, ErrorKind::MissingType));
            };
            let text = entry.text(index);
            if !span.quoted && ttl.is_none() && text.first().is_some_and(u8::is_ascii_digit) {
                ttl = Some(
                    parse_ttl(text).ok_or_else(|| self.token_error(index, ErrorKind::BadTtl))?,
                );
            } else if class.is_none()
                && !span.quoted
                && let Some(c) = Class::parse(text)
            {
                class = Some(c);
            } else {
                let rtype = Rtype::parse(text)
                    .filter(|_| !span.quoted)
                    .ok_or_else(|| self.token_error(index, ErrorKind::UnknownType))?;
                break rtype;
            }
            index += 1;
        };
        let rdata_from = index + 1;

        let class = class.or(self.last_class).unwrap_or(Class::IN);
        self.last_class = Some(class);
        let ttl = match ttl {
            Some(ttl) => {
                self.last_ttl = Some(ttl);
                ttl
            }
            None => match self.default_ttl.or(self.last_ttl) {
                Some(ttl) => ttl,
                // No TTL anywhere yet: an SOA gives its MINIMUM (the seventh RDATA field)
                // to itself and the records after it, as in BIND.
                None if rtype == Rtype::SOA && entry.tokens.len() > rdata_from + 6 => {
                    let at = rdata_from + 6;
                    let minimum = parse_ttl(entry.text(at))
                        .ok_or_else(|| self.token_error(at, ErrorKind::BadTtl))?;
                    self.last_ttl = Some(minimum);
                    minimum
                }
                None => return Err(self.token_error(index, ErrorKind::NoTtl)),
            },
        };

        let generic = entry
            .tokens
            .get(rdata_from)
            .is_some_and(|span| !span.quoted && entry.text(rdata_from) == b"\\#");
        if generic {
            self.decode_generic(rdata_from)?;
        }
        let rrsig = if rtype == Rtype::RRSIG {
            let decoded = if generic {
                Rrsig::from_wire(&self.hex)
            } else {
                let entry = &self.record.entry;
                Rrsig::from_text(
                    (rdata_from..entry.tokens.len()).map(|i| entry.text(i)),
                    self.origin.as_ref(),
                )
            };
            Some(decoded.map_err(|e| self.rrsig_error(rdata_from, e, generic))?)
        } else {
            None
        };

        let record = &mut self.record;
        record.ttl = ttl;
        record.class = class;
        record.rtype = rtype;
        record.line = record.entry.line;
        record.rrsig = rrsig;
        record.rdata_from = rdata_from;
        Ok(())
    }

    fn rrsig_error(&self, rdata_from: usize, error: RrsigError, generic: bool) -> ZoneError {
        let entry = &self.record.entry;
        let field = if generic {
            Some(rdata_from)
        } else {
            error.text_field().map(|f| rdata_from + f)
        };
        match field.filter(|&i| i < entry.tokens.len()) {
            Some(index) => self.token_error(index, ErrorKind::Rrsig(error)),
            None => self.token_error(entry.tokens.len() - 1, ErrorKind::Rrsig(error)),
        }
    }

    /// Checks `\# length hex…` starting at token `at` and leaves the octets in `self.hex`.
    fn decode_generic(&mut self, at: usize) -> Result<(), ZoneError> {
        self.hex.clear();
        let entry = &self.record.entry;
        let Some(length_text) = (at + 1 < entry.tokens.len()).then(|| entry.text(at + 1)) else {
            return Err(self.token_error(at, ErrorKind::BadGeneric("no length")));
        };
        let length = std::str::from_utf8(length_text)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u16>().ok())
            .ok_or_else(|| self.token_error(at + 1, ErrorKind::BadGeneric("bad length")))?;
        for index in at + 2..entry.tokens.len() {
            let text = entry.text(index);
            if !text.len().is_multiple_of(2) {
                return Err(
                    self.token_error(index, ErrorKind::BadGeneric("odd number of hex digits"))
                );
            }
            for pair in text.chunks_exact(2) {
                match (hex_value(pair[0]), hex_value(pair[1])) {
                    (Some(high), Some(low)) => self.hex.push(high << 4 | low),
                    _ => return Err(self.token_error(index, ErrorKind::BadGeneric("not hex"))),
                }
            }
        }
        if self.hex.len() != usize::from(length) {
            return Err(self.token_error(
                at + 1,
                ErrorKind::BadGeneric("length does not match the data"),
            ));
        }
        Ok(())
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// A TTL: seconds as a decimal number, or BIND-style units (`1w2d3h4m5s`, any case; a
/// trailing number without a unit is seconds). At most 2³² − 1.
pub fn parse_ttl(text: &[u8]) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for &byte in text {
        if byte.is_ascii_digit() {
            let n = number.unwrap_or(0) * 10 + u64::from(byte - b'0');
            if n > u64::from(u32::MAX) {
                return None;
            }
            number = Some(n);
        } else {
            let unit = match byte.to_ascii_lowercase() {
                b's' => 1,
                b'm' => 60,
                b'h' => 3_600,
                b'd' => 86_400,
                b'w' => 604_800,
                _ => return None,
            };
            total += number.take()? * unit;
            if total > u64::from(u32::MAX) {
                return None;
            }
        }
    }
    total += number.unwrap_or(0);
    u32::try_from(total).ok()
}

/// Offending text for an error message: lossy UTF-8, at most [`MAX_QUOTED`] characters.
fn quote(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut quoted: String = text.chars().take(MAX_QUOTED).collect();
    if text.chars().nth(MAX_QUOTED).is_some() {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::rrsig::SignatureTime;

    fn read_all(text: &str) -> Result<Vec<Record>, ZoneError> {
        let mut reader = ZoneReader::new(text.as_bytes(), "test.zone", None);
        let mut records = Vec::new();
        while let Some(record) = reader.next_record()? {
            records.push(record.clone());
        }
        Ok(records)
    }

    /// `owner ttl class type rdata…`, quoted tokens in quotes.
    fn brief(record: &Record) -> String {
        let mut text = format!(
            "{} {} {} {}",
            record.owner, record.ttl, record.class, record.rtype
        );
        for token in record.rdata() {
            let token_text = String::from_utf8_lossy(token.text);
            if token.quoted {
                text.push_str(&format!(" \"{token_text}\""));
            } else {
                text.push_str(&format!(" {token_text}"));
            }
        }
        text
    }

    fn briefs(text: &str) -> Vec<String> {
        read_all(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(brief)
            .collect()
    }

    fn error(text: &str) -> ZoneError {
        match read_all(text) {
            Ok(records) => panic!("no error; read {records:?}"),
            Err(e) => e,
        }
    }

    /// Asserts an error on `line` whose message contains `needle`.
    fn assert_error(text: &str, line: u64, needle: &str) {
        let e = error(text);
        let message = e.to_string();
        assert_eq!(e.line, line, "{message}");
        assert!(message.starts_with("test.zone:"), "{message}");
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }

    #[test]
    fn ldns_signzone_output() {
        let text = "\
example.test.\t300\tIN\tSOA\tns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 300
example.test.\t300\tIN\tRRSIG\tSOA 13 2 300 20261227230032 20261129230032 22272 example.test. bPIWANDV+slAAQ==
example.test.\t300\tIN\tDNSKEY\t256 3 13 L3Gym6eiS/tDZ1bcA999URdJ ;{id = 22272 (zsk), size = 256b}
example.test.\t3600\tIN\tNSEC3PARAM\t1 0 1 - 
o09614ibh1cq1rcc86289olr22ea0fso.example.test.\t300\tIN\tNSEC3\t1 0 1 -  qf7cl6nlcsroqh328ti5kmvq8dninis3 NS SOA RRSIG  ;{ flags: -, from: example.test. to: sub.example.test.}
;
txt.example.test.\t300\tIN\tTXT\t\"hello world\" \"a\\\"b\"
";
        assert_eq!(
            briefs(text),
            [
                "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 300",
                "example.test. 300 IN RRSIG SOA 13 2 300 20261227230032 20261129230032 22272 example.test. bPIWANDV+slAAQ==",
                "example.test. 300 IN DNSKEY 256 3 13 L3Gym6eiS/tDZ1bcA999URdJ",
                "example.test. 3600 IN NSEC3PARAM 1 0 1 -",
                "o09614ibh1cq1rcc86289olr22ea0fso.example.test. 300 IN NSEC3 1 0 1 - qf7cl6nlcsroqh328ti5kmvq8dninis3 NS SOA RRSIG",
                "txt.example.test. 300 IN TXT \"hello world\" \"a\\\"b\"",
            ]
        );
        let records = read_all(text).unwrap();
        let sig = records[1].rrsig().expect("RRSIG decoded");
        assert_eq!(sig.type_covered, Rtype::SOA);
        assert_eq!(sig.algorithm, 13);
        assert_eq!(sig.labels, 2);
        assert_eq!(sig.original_ttl, 300);
        assert_eq!(
            sig.expiration,
            SignatureTime::parse(b"20261227230032").unwrap()
        );
        assert_eq!(
            sig.inception,
            SignatureTime::parse(b"20261129230032").unwrap()
        );
        assert_eq!(sig.key_tag, 22272);
        assert_eq!(sig.signer.to_string(), "example.test.");
        assert!(records[0].rrsig().is_none());
        assert_eq!(records[0].line, 1);
        assert_eq!(records[5].line, 7);
    }

    #[test]
    fn knot_output_without_class() {
        let text = "\
;; Zone dump (Knot DNS 3.2.6)
example.test.       \t5\tSOA\tns1.example.test. hostmaster.example.test. 2024010102 3600 600 86400 5
;; DNSSEC signatures
ns1.example.test.   \t5\tRRSIG\tA 13 3 5 20261129230243 20261129213043 41473 example.test. fDq/nvUvq==
;; Written 31 records
;; Time 2026-11-29 23:00:43 UTC
";
        assert_eq!(
            briefs(text),
            [
                "example.test. 5 IN SOA ns1.example.test. hostmaster.example.test. 2024010102 3600 600 86400 5",
                "ns1.example.test. 5 IN RRSIG A 13 3 5 20261129230243 20261129213043 41473 example.test. fDq/nvUvq==",
            ]
        );
    }

    #[test]
    fn directives_relative_names_at_and_blank_owner() {
        let text = "\
$ORIGIN example.test.
$TTL 1h
@ IN SOA ns1 hostmaster 1 3600 600 86400 300
  IN NS ns1
www 60 A 192.0.2.1
\tAAAA 2001:db8::1
$ORIGIN sub.example.test.
host A 192.0.2.2
$origin Other.Test.
@ 7 txt x
";
        assert_eq!(
            briefs(text),
            [
                "example.test. 3600 IN SOA ns1 hostmaster 1 3600 600 86400 300",
                "example.test. 3600 IN NS ns1",
                "www.example.test. 60 IN A 192.0.2.1",
                "www.example.test. 3600 IN AAAA 2001:db8::1",
                "host.sub.example.test. 3600 IN A 192.0.2.2",
                "Other.Test. 7 IN TXT x",
            ]
        );
        // $ORIGIN itself may be relative to the previous origin.
        assert_eq!(
            briefs("$ORIGIN test.\n$ORIGIN a\n@ 1 A 192.0.2.1\n"),
            ["a.test. 1 IN A 192.0.2.1"]
        );
        // The origin from the command line, until the file sets one.
        let origin = Name::parse(b"given.test.", None).unwrap();
        let mut reader = ZoneReader::new(&b"www 1 A 192.0.2.1\n"[..], "x", Some(origin));
        let record = reader.next_record().unwrap().unwrap();
        assert_eq!(record.owner.to_string(), "www.given.test.");
    }

    #[test]
    fn parentheses_span_lines_with_comments() {
        let text = "\
example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. ( ; comment (
        2024010101 ; serial \"not a quote
        3600       ; refresh
        600 86400
        300 )
www.example.test. 300 IN TXT ( \"a ; b\"
   \"( c )\" )
";
        assert_eq!(
            briefs(text),
            [
                "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 300",
                "www.example.test. 300 IN TXT \"a ; b\" \"( c )\"",
            ]
        );
        let records = read_all(text).unwrap();
        assert_eq!(records[1].line, 6);
    }

    #[test]
    fn quoted_strings_and_escapes() {
        let text = "a.test. 1 TXT \"x\\\"y\" \"\" \"\\065\\\\\" plain\\;semi \"tab\there\"\n";
        assert_eq!(
            briefs(text),
            ["a.test. 1 IN TXT \"x\\\"y\" \"\" \"\\065\\\\\" plain\\;semi \"tab\there\""]
        );
    }

    #[test]
    fn escaped_names() {
        let records = read_all(
            "a\\.b\\032c.test. 1 A 192.0.2.1\n\\@\\040x\\).test. 1 A 192.0.2.2\n\\255.test. 1 A 192.0.2.3\n",
        )
        .unwrap();
        assert_eq!(records[0].owner.as_wire(), b"\x05a.b c\x04test\x00");
        assert_eq!(records[0].owner.to_string(), "a\\.b\\032c.test.");
        assert_eq!(records[1].owner.as_wire(), b"\x04@(x)\x04test\x00");
        assert_eq!(records[2].owner.as_wire(), b"\x01\xff\x04test\x00");
    }

    #[test]
    fn ttl_and_class_in_either_order_or_absent() {
        assert_eq!(
            briefs(
                "a.test. 10 IN A 192.0.2.1\n\
                 a.test. CH 20 A 192.0.2.2\n\
                 a.test. A 192.0.2.3\n\
                 a.test. in A 192.0.2.4\n\
                 a.test. 1w2d3h4m5S CLASS1 A 192.0.2.5\n\
                 a.test. 0 CLASS4 TYPE1 192.0.2.6\n"
            ),
            [
                "a.test. 10 IN A 192.0.2.1",
                "a.test. 20 CH A 192.0.2.2",
                "a.test. 20 CH A 192.0.2.3",
                "a.test. 20 IN A 192.0.2.4",
                "a.test. 788645 IN A 192.0.2.5",
                "a.test. 0 HS A 192.0.2.6",
            ]
        );
        // Without $TTL or any TTL, an SOA takes its MINIMUM.
        assert_eq!(
            briefs("a.test. SOA ns hm 1 2 3 4 55\na.test. NS ns\n"),
            ["a.test. 55 IN SOA ns hm 1 2 3 4 55", "a.test. 55 IN NS ns"]
        );
        assert_eq!(parse_ttl(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_ttl(b"4294967296"), None);
        assert_eq!(parse_ttl(b"7102w"), None);
        assert_eq!(parse_ttl(b"1h30"), Some(3630));
        assert_eq!(parse_ttl(b"h"), None);
        assert_eq!(parse_ttl(b"1x"), None);
    }

    #[test]
    fn generic_types_and_rdata() {
        let text = "\
a.test. 1 TYPE65534 \\# 3 ABcd ef
a.test. 1 CLASS255 TYPE1 \\# 4 c0000201
a.test. 1 TYPE99 \\# 0
a.test. 1 RRSIG \\# 28 0001 0d 02 0000012c 77359400 713fb300 1092 01610474657374 00 abcd
a.test. 1 TYPE46 SOA 13 2 300 1795993200 1795000000 4242 @ AAAA
";
        let records = read_all(&format!("$ORIGIN test.\n{text}")).unwrap();
        assert_eq!(records[0].rtype, Rtype(65534));
        assert_eq!(records[1].class, Class(255));
        assert_eq!(records[1].rtype, Rtype(1));
        assert_eq!(records[2].rtype.to_string(), "SPF");
        let generic = records[3].rrsig().expect("RRSIG from \\#");
        assert_eq!(generic.type_covered, Rtype(1));
        assert_eq!(generic.original_ttl, 300);
        assert_eq!(generic.expiration, SignatureTime(2_000_000_000));
        assert_eq!(generic.inception, SignatureTime(1_900_000_000));
        assert_eq!(generic.key_tag, 4242);
        assert_eq!(generic.signer.to_string(), "a.test.");
        let by_number = records[4].rrsig().expect("TYPE46 is RRSIG");
        assert_eq!(by_number.expiration, SignatureTime(1_795_993_200));
        assert_eq!(by_number.signer.to_string(), "test.");
    }

    #[test]
    fn line_endings_and_last_line() {
        assert_eq!(
            briefs("a.test. 1 A 192.0.2.1\r\nb.test. 1 A 192.0.2.2"),
            ["a.test. 1 IN A 192.0.2.1", "b.test. 1 IN A 192.0.2.2"]
        );
        assert!(briefs("").is_empty());
        assert!(briefs("\n\n; only a comment\n   \n").is_empty());
    }

    #[test]
    fn errors_name_file_line_and_text() {
        assert_error(
            "a.test. 1 A 1.2.3.4\nb.test. 1 BOGUS x\n",
            2,
            "unknown record type: `BOGUS`",
        );
        assert_error("a.test. 1x A 1.2.3.4\n", 1, "invalid TTL: `1x`");
        assert_error("\n$TTL soon\n", 2, "invalid TTL: `soon`");
        assert_error("a.test. 1 TXT \"open\n", 1, "quoted string not closed");
        assert_error("a.test. 1 TXT \"x\\", 1, "quoted string not closed");
        assert_error("a.test. 1 A x\\", 1, "backslash at the end of a line");
        assert_error("\n\na.test. 1 SOA ( a b\n1 2 3\n", 3, "never closed");
        assert_error("a.test. 1 A 1.2.3.4 )\n", 1, "`)` without `(`");
        assert_error("a.test. 1 SOA ( a ( b ) )\n", 1, "nested parenthesis");
        assert_error("$INCLUDE other.zone\n", 1, "$INCLUDE is not supported");
        assert_error(
            "$GENERATE 1-2 a A 1.2.3.$\n",
            1,
            "unknown or unsupported directive: `$GENERATE`",
        );
        assert_error("$ORIGIN\n", 1, "$ORIGIN takes exactly one argument");
        assert_error("$TTL 1 2\n", 1, "$TTL takes exactly one argument");
        assert_error(
            "www 1 A 1.2.3.4\n",
            1,
            "relative name and no origin (give $ORIGIN",
        );
        assert_error("@ 1 A 1.2.3.4\n", 1, "no origin");
        assert_error("a..test. 1 A 1.2.3.4\n", 1, "empty label): `a..test.`");
        assert_error("a\\256.test. 1 A 1.2.3.4\n", 1, "bad escape");
        assert_error("  1 A 1.2.3.4\n", 1, "a blank owner but no previous record");
        assert_error("a.test. 1 IN\n", 1, "record type missing: `IN`");
        assert_error(
            "a.test. 1 IN \"A\" 1.2.3.4\n",
            1,
            "unknown record type: `A`",
        );
        assert_error("a.test. A 1.2.3.4\n", 1, "no TTL: give one, or $TTL");
        assert_error(
            "a.test. 1 TYPE1 \\# 4 c00002\n",
            1,
            "length does not match the data): `4`",
        );
        assert_error("a.test. 1 TYPE1 \\# 2 c0g0\n", 1, "not hex): `c0g0`");
        assert_error("a.test. 1 TYPE1 \\# 2 c00\n", 1, "odd number of hex digits");
        assert_error("a.test. 1 TYPE1 \\# x\n", 1, "bad length): `x`");
        assert_error("a.test. 1 TYPE1 \\#\n", 1, "no length");
        assert_error(
            "a.test. 1 RRSIG \\# 3 000102\n",
            1,
            "RRSIG is missing the fixed-length field",
        );
    }

    #[test]
    fn rrsig_errors_point_at_the_field() {
        let head = "a.test. 1 RRSIG (\n  A 13 2 300\n";
        assert_error(
            &format!("{head}  2026-12-27 20261129230032 4242 a.test. AAAA )\n"),
            3,
            "RRSIG has an invalid expiration: `2026-12-27`",
        );
        assert_error(
            &format!("{head}  20261227230032 20261129230032 4242 a..test. AAAA )\n"),
            3,
            "RRSIG signer name: empty label: `a..test.`",
        );
        assert_error(
            &format!("{head}  20261227230032 20261129230032 4242 a.test. AAAA\n  A!A )\n"),
            4,
            "RRSIG signature is not base64: `A!A`",
        );
        assert_error(
            &format!("{head}  20261227230032 20261129230032 )\n"),
            3,
            "RRSIG is missing the key tag field",
        );
    }

    #[test]
    fn long_lines_are_refused_not_buffered() {
        let mut text = "a.test. 1 TXT ".to_string();
        text.push_str(&"x".repeat(MAX_ENTRY_LEN + 10));
        text.push('\n');
        assert_error(&text, 1, "line longer than");
        // An entry made long by parentheses.
        let mut text = "a.test. 1 TXT (\n".to_string();
        let line = format!("{}\n", "y".repeat(1000));
        for _ in 0..(MAX_ENTRY_LEN / 1000 + 1) {
            text.push_str(&line);
        }
        text.push_str(")\n");
        assert_error(&text, 1, "record longer than");
    }

    /// An endless zone, generated on the fly.
    struct Endless {
        pending: Vec<u8>,
        next: u64,
    }

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pending.is_empty() {
                self.next += 1;
                self.pending = format!(
                    "host{n}.example.test. 300 IN A 192.0.2.1\n\
                     host{n}.example.test. 300 IN RRSIG A 13 3 300 20261227230032 20261129230032 4242 example.test. AAAA\n",
                    n = self.next
                )
                .into_bytes();
            }
            let n = buf.len().min(self.pending.len());
            buf[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn streams_without_growing() {
        let input = std::io::BufReader::new(Endless {
            pending: Vec::new(),
            next: 0,
        });
        let mut reader = ZoneReader::new(input, "endless", None);
        for _ in 0..100_000 {
            assert!(reader.next_record().unwrap().is_some());
        }
        assert_eq!(reader.lines_read(), 100_000);
        assert!(reader.line.capacity() < 1024);
        assert!(reader.record.entry.text.capacity() < 1024);
        assert!(reader.record.entry.tokens.capacity() < 64);
    }
}
