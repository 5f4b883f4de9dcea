//! DSO messages: the 12-byte DNS header with OPCODE 6 followed by TLVs (RFC 8490 §5.4).
//!
//! Byte strings here are whole DNS messages *without* the two-byte TCP length prefix;
//! framing belongs to the transport.

use std::fmt;

use hickory_proto::ProtoError;
use hickory_proto::serialize::binary::{BinEncoder, NameEncoding};

use crate::error::{DecodeError, EncodeError, HeaderSummary, Violation};
use crate::tlv::{PushChange, Tlv, dso_type, emit_tlv, read_tlv};

/// The DSO OPCODE (RFC 8490 §10.1).
pub const OPCODE_DSO: u8 = 6;
/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Largest PUSH message, counted from the start of the DNS header (RFC 8765 §6.3.1).
pub const MAX_PUSH_MESSAGE_LEN: usize = 16_382;
/// Largest DNS message a two-byte TCP length prefix can frame.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;

/// A 4-bit DNS RCODE.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(u8);

impl Rcode {
    /// No error.
    pub const NOERROR: Self = Self(0);
    /// Format error.
    pub const FORMERR: Self = Self(1);
    /// Server failure.
    pub const SERVFAIL: Self = Self(2);
    /// Name does not exist.
    pub const NXDOMAIN: Self = Self(3);
    /// Not implemented (here: DSO not supported).
    pub const NOTIMP: Self = Self(4);
    /// Refused for policy reasons.
    pub const REFUSED: Self = Self(5);
    /// Not authoritative.
    pub const NOTAUTH: Self = Self(9);
    /// DSO-TYPE of the Primary TLV not implemented (RFC 8490 §10.2).
    pub const DSOTYPENI: Self = Self(11);

    /// The RCODE with this value, if it fits the 4-bit header field.
    pub const fn new(value: u8) -> Option<Self> {
        if value < 16 { Some(Self(value)) } else { None }
    }

    /// The numeric value.
    pub const fn value(self) -> u8 {
        self.0
    }

    fn mnemonic(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            9 => "NOTAUTH",
            11 => "DSOTYPENI",
            _ => return None,
        })
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mnemonic() {
            Some(m) => f.write_str(m),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

impl fmt::Debug for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rcode({self})")
    }
}

/// What a DSO message is, from its QR bit and MESSAGE ID (RFC 8490 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// QR=0, nonzero MESSAGE ID: must be answered.
    Request,
    /// QR=0, MESSAGE ID 0: must not be answered.
    Unidirectional,
    /// QR=1, nonzero MESSAGE ID.
    Response,
}

/// Whether owner names and eligible RDATA names in PUSH TLVs are compressed on encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameCompression {
    /// Compress, as RFC 8765 §6.3.1 recommends (SHOULD).
    #[default]
    Compressed,
    /// Write every name in full.
    Uncompressed,
}

/// A decoded or to-be-encoded DSO message.
///
/// In a request or unidirectional message, `primary` is the Primary TLV and is always
/// present. In a response, `primary` holds the first TLV when that TLV could be a Response
/// Primary TLV; Retry Delay and Encryption Padding never can (RFC 8490 §8.2), so a
/// response such as "SERVFAIL + Retry Delay" decodes with `primary: None` and the Retry
/// Delay in `additional`. Encoding writes `primary` then `additional` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsoMessage {
    /// MESSAGE ID: 0 for unidirectional messages.
    pub id: u16,
    /// The QR bit.
    pub response: bool,
    /// RCODE.
    pub rcode: Rcode,
    /// Primary (or Response Primary) TLV.
    pub primary: Option<Tlv>,
    /// Additional (or Response Additional) TLVs, in wire order.
    pub additional: Vec<Tlv>,
}

impl DsoMessage {
    /// A request with a nonzero MESSAGE ID.
    pub fn request(id: u16, primary: Tlv) -> Self {
        Self {
            id,
            response: false,
            rcode: Rcode::NOERROR,
            primary: Some(primary),
            additional: Vec::new(),
        }
    }

    /// A unidirectional message (MESSAGE ID 0).
    pub fn unidirectional(primary: Tlv) -> Self {
        Self::request(0, primary)
    }

    /// A response without TLVs.
    pub fn response(id: u16, rcode: Rcode) -> Self {
        Self {
            id,
            response: true,
            rcode,
            primary: None,
            additional: Vec::new(),
        }
    }

    /// This message with `tlv` appended to the additional TLVs.
    pub fn with_additional(mut self, tlv: Tlv) -> Self {
        self.additional.push(tlv);
        self
    }

    /// Request, unidirectional or response. QR=1 with ID 0 counts as a response here and is
    /// rejected by [`DsoMessage::validate`].
    pub fn kind(&self) -> MessageKind {
        match (self.response, self.id) {
            (true, _) => MessageKind::Response,
            (false, 0) => MessageKind::Unidirectional,
            (false, _) => MessageKind::Request,
        }
    }

    /// All TLVs in wire order.
    pub fn tlvs(&self) -> impl Iterator<Item = &Tlv> {
        self.primary.iter().chain(&self.additional)
    }

    /// The Retry Delay carried as an additional TLV (the first one, if several).
    pub fn retry_delay_ms(&self) -> Option<u32> {
        self.additional.iter().find_map(|tlv| match tlv {
            Tlv::RetryDelay { delay_ms } => Some(*delay_ms),
            _ => None,
        })
    }

    /// Whether any TLV is Encryption Padding.
    pub fn has_padding(&self) -> bool {
        self.tlvs()
            .any(|tlv| matches!(tlv, Tlv::EncryptionPadding(_)))
    }

    /// Checks the rules that hold whoever sends the message: QR/ID combination, Primary TLV
    /// versus message kind, and the PUSH and RECONFIRM content rules. Role-dependent rules
    /// (who may send what) are the session's job.
    pub fn validate(&self) -> Result<(), Violation> {
        if self.response {
            if self.id == 0 {
                return Err(Violation::ResponseIdZero);
            }
            if let Some(
                tlv @ (Tlv::Push(_)
                | Tlv::Unsubscribe { .. }
                | Tlv::LegacyUnsubscribe(_)
                | Tlv::Reconfirm(_)),
            ) = self.tlvs().next()
            {
                return Err(Violation::PushTlvInResponse {
                    tlv_type: tlv.tlv_type(),
                });
            }
        } else {
            let primary = self.primary.as_ref().ok_or(Violation::MissingPrimary)?;
            let unidirectional = self.id == 0;
            match primary {
                Tlv::EncryptionPadding(_) => return Err(Violation::PaddingAsPrimary),
                Tlv::RetryDelay { .. } if !unidirectional => {
                    return Err(Violation::RetryDelayRequest);
                }
                Tlv::Subscribe(_) if unidirectional => return Err(Violation::SubscribeWithoutId),
                Tlv::Push(_)
                | Tlv::Unsubscribe { .. }
                | Tlv::LegacyUnsubscribe(_)
                | Tlv::Reconfirm(_)
                    if !unidirectional =>
                {
                    return Err(Violation::UnidirectionalWithId {
                        tlv_type: primary.tlv_type(),
                    });
                }
                _ => {}
            }
        }
        for tlv in self.tlvs() {
            if let Tlv::Push(changes) = tlv {
                if changes.is_empty() {
                    return Err(Violation::EmptyPush);
                }
                changes.iter().try_for_each(PushChange::validate)?;
            }
        }
        Ok(())
    }

    /// Encodes with name compression in PUSH TLVs (RFC 8765 §6.3.1).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        self.encode_with(NameCompression::Compressed)
    }

    /// Encodes after [`DsoMessage::validate`]; refuses a PUSH message over
    /// [`MAX_PUSH_MESSAGE_LEN`] bytes. Use [`encode_push`] to split long change lists.
    pub fn encode_with(&self, compression: NameCompression) -> Result<Vec<u8>, EncodeError> {
        self.validate()?;
        let mut buf = Vec::new();
        {
            let mut enc = BinEncoder::new(&mut buf);
            emit_header(&mut enc, self.id, self.response, self.rcode)?;
            for tlv in self.tlvs() {
                emit_tlv(tlv, &mut enc, compression == NameCompression::Compressed)?;
            }
        }
        if matches!(self.primary, Some(Tlv::Push(_))) && buf.len() > MAX_PUSH_MESSAGE_LEN {
            return Err(Violation::PushTooLarge { len: buf.len() }.into());
        }
        Ok(buf)
    }
}

fn emit_header(
    enc: &mut BinEncoder<'_>,
    id: u16,
    response: bool,
    rcode: Rcode,
) -> Result<(), ProtoError> {
    enc.emit_u16(id)?;
    enc.emit(u8::from(response) << 7 | OPCODE_DSO << 3)?;
    enc.emit(rcode.value())?;
    for _count in 0..4 {
        enc.emit_u16(0)?;
    }
    Ok(())
}

/// Encodes `changes` as unidirectional PUSH messages of at most [`MAX_PUSH_MESSAGE_LEN`]
/// bytes each, splitting between change notifications and never inside one (RFC 8765
/// §6.3.1). Changes keep their order. With [`NameCompression::Compressed`], owner names
/// and the RDATA names hickory-proto compresses (NS, CNAME, PTR, SOA, MX) point back into
/// the same message; hickory-proto stops compressing after 120 names in one message.
/// An empty list gives no messages.
pub fn encode_push(
    changes: &[PushChange],
    compression: NameCompression,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    let mut messages = Vec::new();
    let mut next = 0;
    while next < changes.len() {
        let mut buf = Vec::new();
        {
            let mut enc = BinEncoder::new(&mut buf);
            if compression == NameCompression::Uncompressed {
                enc.set_name_encoding(NameEncoding::Uncompressed);
            }
            emit_header(&mut enc, 0, false, Rcode::NOERROR)?;
            enc.emit_u16(dso_type::PUSH)?;
            let place = enc.place::<u16>()?;
            let first = next;
            while next < changes.len() {
                let mark = enc.offset();
                let result = changes[next].emit(&mut enc);
                let fits = enc.len() <= MAX_PUSH_MESSAGE_LEN;
                match result {
                    Ok(()) if fits => next += 1,
                    Ok(()) | Err(EncodeError::Wire(ProtoError::MaxBufferSizeExceeded(_))) => {
                        enc.set_offset(mark);
                        enc.trim();
                        if next == first {
                            return Err(EncodeError::ChangeTooLarge { index: next });
                        }
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            let len = enc.len_since_place(&place);
            // At most MAX_PUSH_MESSAGE_LEN bytes were written, so the length fits.
            enc.emit_at(place, u16::try_from(len).unwrap_or(u16::MAX))?;
        }
        messages.push(buf);
    }
    Ok(messages)
}

/// Decodes one DSO message. Never panics; every error names the rule that was broken and
/// tells, through [`DecodeError::disposition`], whether to answer FORMERR or abort.
pub fn decode(bytes: &[u8]) -> Result<DsoMessage, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::new(
            None,
            Violation::ShortHeader { len: bytes.len() },
        ));
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let response = bytes[2] & 0x80 != 0;
    let header = HeaderSummary { id, response };
    let fail = |violation| DecodeError::new(Some(header), violation);
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(fail(Violation::MessageTooLong { len: bytes.len() }));
    }
    let opcode = (bytes[2] >> 3) & 0x0f;
    if opcode != OPCODE_DSO {
        return Err(fail(Violation::NotDso { opcode }));
    }
    let rcode = Rcode(bytes[3] & 0x0f);
    if response && id == 0 {
        return Err(fail(Violation::ResponseIdZero));
    }
    let count = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let (qdcount, ancount, nscount, arcount) = (count(4), count(6), count(8), count(10));
    if qdcount | ancount | nscount | arcount != 0 {
        return Err(fail(Violation::NonZeroCount {
            qdcount,
            ancount,
            nscount,
            arcount,
        }));
    }

    let mut tlvs = Vec::new();
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        let remaining = bytes.len() - offset;
        if remaining < 4 {
            return Err(fail(Violation::TruncatedTlvHeader { offset, remaining }));
        }
        let tlv_type = u16::from_be_bytes([bytes[offset], bytes[offset + 1]]);
        let length = u16::from_be_bytes([bytes[offset + 2], bytes[offset + 3]]);
        let start = offset + 4;
        let end = start + usize::from(length);
        if end > bytes.len() {
            return Err(fail(Violation::TlvOverrun {
                tlv_type,
                length,
                available: remaining - 4,
            }));
        }
        tlvs.push(read_tlv(tlv_type, bytes, start, end).map_err(fail)?);
        offset = end;
    }

    let mut tlvs = tlvs.into_iter();
    let primary = match tlvs.as_slice().first() {
        Some(Tlv::RetryDelay { .. } | Tlv::EncryptionPadding(_)) if response => None,
        _ => tlvs.next(),
    };
    let message = DsoMessage {
        id,
        response,
        rcode,
        primary,
        additional: tlvs.collect(),
    };
    message.validate().map_err(fail)?;
    if matches!(message.primary, Some(Tlv::Push(_))) && bytes.len() > MAX_PUSH_MESSAGE_LEN {
        return Err(fail(Violation::PushTooLarge { len: bytes.len() }));
    }
    Ok(message)
}
