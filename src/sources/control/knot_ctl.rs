//! Knot DNS's control-socket protocol (what `knotc` speaks to `knotd`), without I/O.
//!
//! A message is a stream of *units*. Each unit starts with a one-byte type code:
//!
//! | code | unit | meaning |
//! |---|---|---|
//! | 0 | END | the peer is done with the connection |
//! | 1 | DATA | the first data unit of a command or an answer |
//! | 2 | EXTRA | a further data unit of the same answer |
//! | 3 | BLOCK | the end of a command or of its answer |
//!
//! A DATA or EXTRA unit is followed by its items, each a one-byte code (16 + the item's
//! index, see [`Item`]), a big-endian 16-bit length and that many bytes of text. A data
//! unit ends where the next type code begins, so the decoder needs the next code before it
//! can hand out a data unit. END and BLOCK carry no items.
//!
//! A client sends `DATA(cmd, …)` then `BLOCK`; knotd answers with zero or more data
//! units then `BLOCK`; `END` closes the session. An answer with an `error` item is a
//! failed command.
//!
//! The decoder never panics: an unknown code, an item outside a data unit, or a unit
//! larger than [`MAX_UNIT`], or a value that is not UTF-8 (knotd writes names and data
//! as escaped text) is a [`DecodeError`].

use std::fmt;

/// The first item code: item `i` is written as code `16 + i`.
const ITEM_CODE_OFFSET: u8 = 16;
/// The largest data unit accepted (the sum of its item lengths): twelve items of at
/// most 64 KiB each could be 768 KiB; knotd's own buffer is 256 KiB.
pub const MAX_UNIT: usize = 256 * 1024;

/// The kind of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitType {
    End,
    Data,
    Extra,
    Block,
}

impl UnitType {
    fn from_code(code: u8) -> Option<UnitType> {
        match code {
            0 => Some(UnitType::End),
            1 => Some(UnitType::Data),
            2 => Some(UnitType::Extra),
            3 => Some(UnitType::Block),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            UnitType::End => 0,
            UnitType::Data => 1,
            UnitType::Extra => 2,
            UnitType::Block => 3,
        }
    }

    fn has_items(self) -> bool {
        matches!(self, UnitType::Data | UnitType::Extra)
    }
}

/// The items a data unit can carry, by their index in knotd's `knot_ctl_idx_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Command = 0,
    Flags = 1,
    Error = 2,
    Section = 3,
    Item = 4,
    Id = 5,
    Zone = 6,
    Owner = 7,
    Ttl = 8,
    Type = 9,
    Data = 10,
    Filter = 11,
}

/// How many item indexes there are.
pub const ITEM_COUNT: usize = 12;

/// One unit: its type and, for DATA and EXTRA, the items it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub kind: UnitType,
    items: [Option<String>; ITEM_COUNT],
}

impl Unit {
    /// A unit of `kind` with no items.
    pub fn new(kind: UnitType) -> Unit {
        Unit {
            kind,
            items: Default::default(),
        }
    }

    /// A DATA unit carrying a command.
    pub fn command(command: &str) -> Unit {
        Unit::new(UnitType::Data).with(Item::Command, command)
    }

    /// The unit with `item` set to `value`.
    pub fn with(mut self, item: Item, value: &str) -> Unit {
        self.items[item as usize] = Some(value.to_string());
        self
    }

    pub fn get(&self, item: Item) -> Option<&str> {
        self.items[item as usize].as_deref()
    }

    /// The unit on the wire. Values longer than 65,535 bytes are cut at that length (on
    /// a character boundary); nothing this crate sends comes near it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.kind.code()];
        if self.kind.has_items() {
            for (index, value) in self.items.iter().enumerate() {
                let Some(value) = value else { continue };
                let mut end = value.len().min(usize::from(u16::MAX));
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                out.push(ITEM_CODE_OFFSET + index as u8);
                out.extend_from_slice(&(end as u16).to_be_bytes());
                out.extend_from_slice(&value.as_bytes()[..end]);
            }
        }
        out
    }
}

/// Why the bytes are not a valid unit stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// A code that is neither a unit type nor an item.
    UnknownCode { code: u8, offset: usize },
    /// An item before any DATA or EXTRA unit, or after END or BLOCK.
    ItemOutsideData { code: u8, offset: usize },
    /// A data unit larger than [`MAX_UNIT`].
    UnitTooLarge { size: usize },
    /// An item value that is not UTF-8.
    NotUtf8 { code: u8, offset: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownCode { code, offset } => {
                write!(f, "unknown code {code} at byte {offset}")
            }
            DecodeError::ItemOutsideData { code, offset } => {
                write!(f, "item code {code} outside a data unit at byte {offset}")
            }
            DecodeError::UnitTooLarge { size } => {
                write!(f, "data unit of {size} bytes exceeds {MAX_UNIT}")
            }
            DecodeError::NotUtf8 { code, offset } => {
                write!(f, "item code {code} at byte {offset} is not UTF-8")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Turns received bytes into units, however the bytes are split.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already handed out as units.
    consumed: usize,
    /// Bytes consumed before `buffer`'s start, for error offsets.
    base: usize,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.base += self.consumed;
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes received but not yet handed out as units.
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.consumed
    }

    /// The next complete unit, `Ok(None)` when more bytes are needed. A data unit is
    /// complete once the next unit's type code has arrived; at the end of a stream, call
    /// [`Decoder::finish`] for a data unit that nothing follows.
    pub fn next_unit(&mut self) -> Result<Option<Unit>, DecodeError> {
        self.decode(false)
    }

    /// Like [`Decoder::next_unit`] when no more bytes will come: a data unit whose items
    /// are all here is complete.
    pub fn finish(&mut self) -> Result<Option<Unit>, DecodeError> {
        self.decode(true)
    }

    fn decode(&mut self, at_end: bool) -> Result<Option<Unit>, DecodeError> {
        let bytes = &self.buffer[self.consumed..];
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let offset = self.base + self.consumed;
        let Some(kind) = UnitType::from_code(first) else {
            return Err(
                if first >= ITEM_CODE_OFFSET && usize::from(first - ITEM_CODE_OFFSET) < ITEM_COUNT {
                    DecodeError::ItemOutsideData {
                        code: first,
                        offset,
                    }
                } else {
                    DecodeError::UnknownCode {
                        code: first,
                        offset,
                    }
                },
            );
        };
        let mut unit = Unit::new(kind);
        if !kind.has_items() {
            self.consumed += 1;
            return Ok(Some(unit));
        }
        let mut at = 1;
        let mut size = 0usize;
        loop {
            let Some(&code) = bytes.get(at) else {
                if at_end {
                    self.consumed += at;
                    return Ok(Some(unit));
                }
                return Ok(None);
            };
            if UnitType::from_code(code).is_some() {
                self.consumed += at;
                return Ok(Some(unit));
            }
            let index = code.wrapping_sub(ITEM_CODE_OFFSET);
            if code < ITEM_CODE_OFFSET || usize::from(index) >= ITEM_COUNT {
                return Err(DecodeError::UnknownCode {
                    code,
                    offset: offset + at,
                });
            }
            let Some(length) = bytes.get(at + 1..at + 3) else {
                return Ok(None);
            };
            let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
            size += length;
            if size > MAX_UNIT {
                return Err(DecodeError::UnitTooLarge { size });
            }
            let Some(value) = bytes.get(at + 3..at + 3 + length) else {
                return Ok(None);
            };
            let value = std::str::from_utf8(value).map_err(|_| DecodeError::NotUtf8 {
                code,
                offset: offset + at,
            })?;
            unit.items[usize::from(index)] = Some(value.to_string());
            at += 3 + length;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `knotc zone-status a.test` sends, as written by knotd's own client.
    const ZONE_STATUS: &[u8] = b"\x01\x10\x00\x0bzone-status\x16\x00\x06a.test\x03";

    #[test]
    fn encodes_a_command_as_knotc_does() {
        let mut bytes = Unit::command("zone-status")
            .with(Item::Zone, "a.test")
            .encode();
        bytes.extend(Unit::new(UnitType::Block).encode());
        assert_eq!(bytes, ZONE_STATUS);
        assert_eq!(Unit::new(UnitType::End).encode(), [0]);
    }

    #[test]
    fn decodes_whatever_the_split() {
        let answer = [
            Unit::new(UnitType::Data)
                .with(Item::Zone, "a.test.")
                .with(Item::Type, "serial")
                .with(Item::Data, "7")
                .encode(),
            Unit::new(UnitType::Extra)
                .with(Item::Zone, "a.test.")
                .with(Item::Type, "refresh")
                .with(Item::Data, "+1h")
                .encode(),
            Unit::new(UnitType::Block).encode(),
        ]
        .concat();
        for split in 0..=answer.len() {
            let mut decoder = Decoder::new();
            let mut units = Vec::new();
            for part in [&answer[..split], &answer[split..]] {
                decoder.push(part);
                while let Some(unit) = decoder.next_unit().unwrap() {
                    units.push(unit);
                }
            }
            assert_eq!(units.len(), 3, "split at {split}");
            assert_eq!(units[0].get(Item::Data), Some("7"));
            assert_eq!(units[1].kind, UnitType::Extra);
            assert_eq!(units[1].get(Item::Type), Some("refresh"));
            assert_eq!(units[2].kind, UnitType::Block);
            assert_eq!(decoder.pending(), 0);
        }
    }

    #[test]
    fn a_trailing_data_unit_needs_finish() {
        let mut decoder = Decoder::new();
        decoder.push(&Unit::command("status").encode());
        assert_eq!(decoder.next_unit(), Ok(None));
        let unit = decoder.finish().unwrap().unwrap();
        assert_eq!(unit.get(Item::Command), Some("status"));
    }

    #[test]
    fn rejects_what_knotd_would_not_send() {
        let mut decoder = Decoder::new();
        decoder.push(b"\x10\x00\x00");
        assert!(matches!(
            decoder.next_unit(),
            Err(DecodeError::ItemOutsideData { code: 16, .. })
        ));
        let mut decoder = Decoder::new();
        decoder.push(b"\x01\x1c\x00\x00");
        assert!(matches!(
            decoder.next_unit(),
            Err(DecodeError::UnknownCode {
                code: 28,
                offset: 1
            })
        ));
        let mut decoder = Decoder::new();
        decoder.push(b"\x01\x16\x00\x01\xff\x03");
        assert!(matches!(
            decoder.next_unit(),
            Err(DecodeError::NotUtf8 {
                code: 22,
                offset: 1
            })
        ));
        let mut decoder = Decoder::new();
        decoder.push(b"\x07");
        assert!(decoder.next_unit().is_err());
        let mut decoder = Decoder::new();
        let mut big = vec![1u8];
        for index in 0..5u8 {
            big.push(16 + index);
            big.extend_from_slice(&u16::MAX.to_be_bytes());
            big.extend(std::iter::repeat_n(b'x', usize::from(u16::MAX)));
        }
        decoder.push(&big);
        assert!(matches!(
            decoder.next_unit(),
            Err(DecodeError::UnitTooLarge { .. })
        ));
    }
}
