//! Codec errors: which rule a message broke, and what the receiver must do about it.
//!
//! Every [`DecodeError`] carries a [`Violation`] naming the broken rule (with its RFC
//! section) and enough of the header to decide the [`Disposition`]: RFC 8490 answers a
//! malformed *request* with FORMERR, but a unidirectional message or a response can never
//! be answered (§5.4.3), so the same defect there is fatal and the session is aborted.
//! Violations that the RFCs themselves call fatal are fatal whatever the message kind.

use hickory_proto::ProtoError;
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_proto::serialize::binary::DecodeError as WireError;

/// A DSO message that could not be decoded, or that breaks a role-independent rule.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{violation}")]
pub struct DecodeError {
    header: Option<HeaderSummary>,
    violation: Violation,
}

/// The two header facts that decide how an error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderSummary {
    pub(crate) id: u16,
    pub(crate) response: bool,
}

/// What the receiver of a message that failed to decode must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Not a DSO message (another OPCODE): hand it to ordinary DNS processing.
    NotDso,
    /// A malformed DSO request: answer with RCODE FORMERR and this MESSAGE ID, keep the session.
    FormErr {
        /// MESSAGE ID of the request, to be echoed in the FORMERR response.
        id: u16,
    },
    /// A fatal error: forcibly abort the connection (RFC 8490 §5.3.1).
    Abort,
}

impl DecodeError {
    pub(crate) fn new(header: Option<HeaderSummary>, violation: Violation) -> Self {
        Self { header, violation }
    }

    /// The rule the message broke.
    pub fn violation(&self) -> &Violation {
        &self.violation
    }

    /// MESSAGE ID of the offending message, if its header could be read.
    pub fn message_id(&self) -> Option<u16> {
        self.header.map(|h| h.id)
    }

    /// What the receiver must do: FORMERR for a malformed request, abort otherwise.
    pub fn disposition(&self) -> Disposition {
        if matches!(self.violation, Violation::NotDso { .. }) {
            return Disposition::NotDso;
        }
        if self.violation.is_always_fatal() {
            return Disposition::Abort;
        }
        match self.header {
            Some(HeaderSummary {
                id,
                response: false,
            }) if id != 0 => Disposition::FormErr { id },
            _ => Disposition::Abort,
        }
    }
}

/// A broken rule, named after the RFC text that states it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Violation {
    /// Longer than the 65,535 bytes a two-byte TCP length prefix can frame.
    #[error(
        "message of {len} bytes exceeds the 65,535 bytes a DNS-over-TCP length prefix can frame (RFC 1035 §4.2.2)"
    )]
    MessageTooLong {
        /// Length of the message.
        len: usize,
    },
    /// Shorter than a DNS header.
    #[error("message of {len} bytes is shorter than the 12-byte DNS header (RFC 8490 §5.4)")]
    ShortHeader {
        /// Length of the message.
        len: usize,
    },
    /// The OPCODE is not DSO (6); not an error for the connection, just not ours.
    #[error("OPCODE {opcode} is not DSO (6)")]
    NotDso {
        /// The OPCODE found.
        opcode: u8,
    },
    /// QR=1 with MESSAGE ID 0.
    #[error("response (QR=1) with MESSAGE ID 0 is invalid (RFC 8490 §5.4.1, §8.1)")]
    ResponseIdZero,
    /// A count field is not zero.
    #[error(
        "QDCOUNT/ANCOUNT/NSCOUNT/ARCOUNT must be zero, found {qdcount}/{ancount}/{nscount}/{arcount} (RFC 8490 §5.4)"
    )]
    NonZeroCount {
        /// QDCOUNT.
        qdcount: u16,
        /// ANCOUNT.
        ancount: u16,
        /// NSCOUNT.
        nscount: u16,
        /// ARCOUNT.
        arcount: u16,
    },
    /// Fewer than four bytes left where a TLV header should start.
    #[error(
        "{remaining} byte(s) at offset {offset} are too few for a TLV header (RFC 8490 §5.4.4)"
    )]
    TruncatedTlvHeader {
        /// Offset of the partial TLV header.
        offset: usize,
        /// Bytes left in the message.
        remaining: usize,
    },
    /// DSO-LENGTH runs past the end of the message.
    #[error(
        "TLV {tlv_type:#06x} claims {length} bytes of DSO-DATA but only {available} remain (RFC 8490 §5.4.4)"
    )]
    TlvOverrun {
        /// DSO-TYPE.
        tlv_type: u16,
        /// DSO-LENGTH.
        length: u16,
        /// Bytes left in the message.
        available: usize,
    },
    /// A request or unidirectional message without any TLV.
    #[error(
        "a DSO request or unidirectional message must contain at least one TLV (RFC 8490 §5.4.2)"
    )]
    MissingPrimary,
    /// A fixed-size TLV with the wrong DSO-LENGTH.
    #[error(
        "TLV {tlv_type:#06x} must have DSO-LENGTH {expected}, found {length} (RFC 8490 §7, RFC 8765 §6.4.1)"
    )]
    BadTlvLength {
        /// DSO-TYPE.
        tlv_type: u16,
        /// DSO-LENGTH found.
        length: u16,
        /// DSO-LENGTH required.
        expected: u16,
    },
    /// The DSO-DATA of a TLV could not be parsed (name, fixed fields, RDATA).
    #[error("DSO-DATA of TLV {tlv_type:#06x} is malformed: {source}")]
    MalformedTlv {
        /// DSO-TYPE.
        tlv_type: u16,
        /// What the DNS wire decoder reported.
        source: WireError,
    },
    /// Bytes left over after the single NAME/TYPE/CLASS of a SUBSCRIBE.
    #[error(
        "TLV {tlv_type:#06x} has {extra} byte(s) after its data (RFC 8765 §6.2.1: exactly one NAME, TYPE and CLASS)"
    )]
    TrailingData {
        /// DSO-TYPE.
        tlv_type: u16,
        /// Number of extra bytes.
        extra: usize,
    },
    /// Encryption Padding in the Primary TLV position.
    #[error("Encryption Padding can only be an Additional TLV (RFC 8490 §7.3)")]
    PaddingAsPrimary,
    /// Retry Delay as Primary TLV of a request.
    #[error(
        "a Retry Delay primary TLV must be a unidirectional message with MESSAGE ID 0 (RFC 8490 §5.4.1, §7.2.1)"
    )]
    RetryDelayRequest,
    /// SUBSCRIBE sent without a MESSAGE ID.
    #[error(
        "SUBSCRIBE must be a request with a nonzero MESSAGE ID (RFC 8490 §5.4.1, RFC 8765 §6.2.1)"
    )]
    SubscribeWithoutId,
    /// PUSH, UNSUBSCRIBE or RECONFIRM with a nonzero MESSAGE ID.
    #[error(
        "TLV {tlv_type:#06x} must be a unidirectional message with MESSAGE ID 0 (RFC 8490 §5.4.1, RFC 8765 §6.3–§6.5)"
    )]
    UnidirectionalWithId {
        /// DSO-TYPE.
        tlv_type: u16,
    },
    /// PUSH, UNSUBSCRIBE or RECONFIRM sent as a response.
    #[error("TLV {tlv_type:#06x} in a response (QR=1) is a fatal error (RFC 8765 §6.3–§6.5)")]
    PushTlvInResponse {
        /// DSO-TYPE.
        tlv_type: u16,
    },
    /// A PUSH TLV without change notifications.
    #[error("a PUSH message must contain at least one change notification (RFC 8765 §6.3.1)")]
    EmptyPush,
    /// TYPE or CLASS ANY in an add or single-record remove.
    #[error(
        "PUSH add or remove with TYPE {rtype} / CLASS {class}: ANY (255) is not allowed (RFC 8765 §6.3.1)"
    )]
    AnyInPushRecord {
        /// TYPE.
        rtype: RecordType,
        /// CLASS.
        class: DNSClass,
    },
    /// A collective remove (TTL 0xFFFFFFFE) with RDATA.
    #[error(
        "collective remove (TTL 0xFFFFFFFE) must have RDLEN 0, found {rdlen} (RFC 8765 §6.3.1)"
    )]
    CollectiveRemoveWithRdata {
        /// RDLEN found.
        rdlen: u16,
    },
    /// A TTL that does not fit the change notification kind it was given for.
    #[error("TTL {ttl:#010x} does not encode this kind of change notification (RFC 8765 §6.3.1)")]
    PushTtlOutOfRange {
        /// The TTL.
        ttl: u32,
    },
    /// A PUSH message longer than 16,382 bytes.
    #[error("PUSH message of {len} bytes exceeds 16,382 bytes (RFC 8765 §6.3.1)")]
    PushTooLarge {
        /// Length of the DNS message (without the two-byte TCP length prefix).
        len: usize,
    },
    /// TYPE or CLASS ANY in a RECONFIRM.
    #[error(
        "RECONFIRM with TYPE {rtype} / CLASS {class}: ANY (255) is not allowed (RFC 8765 §6.5.1)"
    )]
    AnyInReconfirm {
        /// TYPE.
        rtype: RecordType,
        /// CLASS.
        class: DNSClass,
    },
}

impl Violation {
    /// Violations that abort the session even when the message was a request.
    fn is_always_fatal(&self) -> bool {
        matches!(
            self,
            Self::MessageTooLong { .. }
                | Self::ShortHeader { .. }
                | Self::ResponseIdZero
                | Self::RetryDelayRequest
                | Self::SubscribeWithoutId
                | Self::UnidirectionalWithId { .. }
                | Self::PushTlvInResponse { .. }
                | Self::EmptyPush
                | Self::AnyInPushRecord { .. }
                | Self::CollectiveRemoveWithRdata { .. }
                | Self::PushTooLarge { .. }
                | Self::AnyInReconfirm { .. }
        )
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeError {
    /// The message breaks a rule its receiver would reject it for.
    #[error("refusing to encode an invalid DSO message: {0}")]
    Invalid(#[from] Violation),
    /// A TLV's DSO-DATA does not fit the 16-bit DSO-LENGTH.
    #[error("DSO-DATA of TLV {tlv_type:#06x} is {len} bytes, more than DSO-LENGTH can express")]
    TlvTooLong {
        /// DSO-TYPE.
        tlv_type: u16,
        /// Length of the DSO-DATA.
        len: usize,
    },
    /// A single change notification cannot fit into a 16,382-byte PUSH message.
    #[error(
        "change notification {index} does not fit into a 16,382-byte PUSH message on its own (RFC 8765 §6.3.1)"
    )]
    ChangeTooLarge {
        /// Position of the change in the list given to the encoder.
        index: usize,
    },
    /// The DNS wire encoder failed (a name or RDATA that cannot be written).
    #[error("DNS wire encoding failed: {0}")]
    Wire(#[from] ProtoError),
}
