//! DSO TLVs: typed values and their DSO-DATA wire formats.
//!
//! * RFC 8490 §5.4.4 — TLV syntax (DSO-TYPE, DSO-LENGTH, DSO-DATA);
//! * RFC 8490 §7.1, §7.2, §7.3 — Keepalive, Retry Delay, Encryption Padding;
//! * RFC 8765 §6.2.1, §6.3.1, §6.4.1, §6.5.1 — SUBSCRIBE, PUSH, UNSUBSCRIBE, RECONFIRM.
//!
//! Names and RDATA are read and written with hickory-proto, so compression pointers inside
//! a TLV are resolved against the whole DNS message, as RFC 8765 §6.3.1 specifies.

use std::time::Duration;

use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, DecodeError as WireError, NameEncoding,
    Restrict,
};

use crate::error::{EncodeError, Violation};

/// DSO-TYPE codes (IANA "DSO Type Codes" registry).
pub mod dso_type {
    /// Keepalive (RFC 8490 §7.1).
    pub const KEEPALIVE: u16 = 0x0001;
    /// Retry Delay (RFC 8490 §7.2).
    pub const RETRY_DELAY: u16 = 0x0002;
    /// Encryption Padding (RFC 8490 §7.3).
    pub const ENCRYPTION_PADDING: u16 = 0x0003;
    /// SUBSCRIBE (RFC 8765 §6.2).
    pub const SUBSCRIBE: u16 = 0x0040;
    /// PUSH (RFC 8765 §6.3).
    pub const PUSH: u16 = 0x0041;
    /// UNSUBSCRIBE (RFC 8765 §6.4).
    pub const UNSUBSCRIBE: u16 = 0x0042;
    /// RECONFIRM (RFC 8765 §6.5).
    pub const RECONFIRM: u16 = 0x0043;
}

/// One DSO TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tlv {
    /// Session timeouts (RFC 8490 §7.1).
    Keepalive(Keepalive),
    /// Retry Delay in milliseconds (RFC 8490 §7.2).
    RetryDelay {
        /// Delay before retrying, in milliseconds.
        delay_ms: u32,
    },
    /// Encryption Padding; the bytes carry no meaning (RFC 8490 §7.3).
    EncryptionPadding(Vec<u8>),
    /// SUBSCRIBE request (RFC 8765 §6.2.1).
    Subscribe(Subscribe),
    /// PUSH change notifications, in wire order (RFC 8765 §6.3.1).
    Push(Vec<PushChange>),
    /// UNSUBSCRIBE of the subscription set up by the request with this MESSAGE ID (RFC 8765 §6.4.1).
    Unsubscribe {
        /// MESSAGE ID of the SUBSCRIBE request being cancelled.
        subscribe_id: u16,
    },
    /// UNSUBSCRIBE in the pre-RFC draft form, carrying NAME, TYPE and CLASS instead of a
    /// MESSAGE ID (any DSO-LENGTH other than 2). Apple's mDNSResponder client still sends
    /// it; the server maps it to the matching subscription. This crate never sends it.
    LegacyUnsubscribe(Subscribe),
    /// RECONFIRM of one record (RFC 8765 §6.5.1).
    Reconfirm(Reconfirm),
    /// A TLV this crate does not implement, kept verbatim (RFC 8490 §5.4.5).
    Unknown {
        /// DSO-TYPE.
        tlv_type: u16,
        /// DSO-DATA.
        data: Vec<u8>,
    },
}

impl Tlv {
    /// The DSO-TYPE of this TLV.
    pub fn tlv_type(&self) -> u16 {
        match self {
            Self::Keepalive(_) => dso_type::KEEPALIVE,
            Self::RetryDelay { .. } => dso_type::RETRY_DELAY,
            Self::EncryptionPadding(_) => dso_type::ENCRYPTION_PADDING,
            Self::Subscribe(_) => dso_type::SUBSCRIBE,
            Self::Push(_) => dso_type::PUSH,
            Self::Unsubscribe { .. } | Self::LegacyUnsubscribe(_) => dso_type::UNSUBSCRIBE,
            Self::Reconfirm(_) => dso_type::RECONFIRM,
            Self::Unknown { tlv_type, .. } => *tlv_type,
        }
    }
}

/// The two session timeouts of a Keepalive TLV, in milliseconds (RFC 8490 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keepalive {
    /// How long the client may keep an idle session open.
    pub inactivity_timeout_ms: u32,
    /// Longest allowed silence before the client must send keepalive traffic.
    pub keepalive_interval_ms: u32,
}

impl Keepalive {
    /// 0xFFFFFFFF: no limit (RFC 8490 §6.4.2, §6.5.2).
    pub const INFINITE: u32 = u32::MAX;
    /// Value of both timeouts before any Keepalive exchange (RFC 8490 §6.2).
    pub const DEFAULT_MS: u32 = 15_000;
    /// Smallest keepalive interval a server may dictate (RFC 8490 §6.5.2).
    pub const MIN_KEEPALIVE_INTERVAL_MS: u32 = 10_000;

    /// The inactivity timeout, or `None` for infinity.
    pub fn inactivity_timeout(&self) -> Option<Duration> {
        finite(self.inactivity_timeout_ms)
    }

    /// The keepalive interval, or `None` for infinity.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        finite(self.keepalive_interval_ms)
    }
}

impl Default for Keepalive {
    /// The 15-second defaults that apply until a Keepalive exchange (RFC 8490 §6.2).
    fn default() -> Self {
        Self {
            inactivity_timeout_ms: Self::DEFAULT_MS,
            keepalive_interval_ms: Self::DEFAULT_MS,
        }
    }
}

fn finite(ms: u32) -> Option<Duration> {
    (ms != Keepalive::INFINITE).then(|| Duration::from_millis(u64::from(ms)))
}

/// NAME, TYPE and CLASS of a subscription (RFC 8765 §6.2.1). TYPE or CLASS ANY (255)
/// subscribe to all types or classes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscribe {
    /// Owner name; compared case-insensitively.
    pub name: Name,
    /// Record type, or ANY.
    pub rtype: RecordType,
    /// Class, or ANY.
    pub class: DNSClass,
}

/// The record a client disputes (RFC 8765 §6.5.1). The TYPE is the type of `rdata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfirm {
    /// Owner name.
    pub name: Name,
    /// Class; never ANY.
    pub class: DNSClass,
    /// RDATA of the disputed record.
    pub rdata: RData,
}

/// One change notification of a PUSH TLV, by the meaning of its TTL (RFC 8765 §6.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushChange {
    /// TTL 0..=0x7FFFFFFF: add this record (TTL 0: keep while subscribed). TYPE is the type of `rdata`.
    Add {
        /// Owner name.
        name: Name,
        /// Class; never ANY.
        class: DNSClass,
        /// TTL in seconds, at most [`PushChange::MAX_ADD_TTL`].
        ttl: u32,
        /// RDATA; its record type is never ANY.
        rdata: RData,
    },
    /// TTL 0xFFFFFFFF: remove exactly this record.
    Remove {
        /// Owner name.
        name: Name,
        /// Class; never ANY.
        class: DNSClass,
        /// RDATA that must match the record to remove.
        rdata: RData,
    },
    /// TTL 0xFFFFFFFE, RDLEN 0: remove the RRset of this name, type and class.
    RemoveRrset {
        /// Owner name.
        name: Name,
        /// Record type.
        rtype: RecordType,
        /// Class.
        class: DNSClass,
    },
    /// TTL 0xFFFFFFFE, RDLEN 0, TYPE ANY: remove all types of this name in this class.
    RemoveAllTypes {
        /// Owner name.
        name: Name,
        /// Class.
        class: DNSClass,
    },
    /// TTL 0xFFFFFFFE, RDLEN 0, CLASS ANY: remove everything at this name (TYPE sent as 0).
    RemoveName {
        /// Owner name.
        name: Name,
    },
    /// Any other TTL: the receiver ignores this one record (RFC 8765 §6.3.1). Kept raw so
    /// the message re-encodes unchanged; RDATA is not parsed, so a compression pointer in
    /// it is kept as bytes.
    Ignored {
        /// Owner name.
        name: Name,
        /// Record type.
        rtype: RecordType,
        /// Class.
        class: DNSClass,
        /// TTL, in 0x80000000..=0xFFFFFFFD.
        ttl: u32,
        /// RDATA bytes as received.
        rdata: Vec<u8>,
    },
}

impl PushChange {
    /// Largest TTL of an add (2^31 - 1).
    pub const MAX_ADD_TTL: u32 = 0x7FFF_FFFF;
    /// TTL of a single-record remove.
    pub const TTL_REMOVE: u32 = 0xFFFF_FFFF;
    /// TTL of a collective remove.
    pub const TTL_REMOVE_COLLECTIVE: u32 = 0xFFFF_FFFE;

    /// Owner name of the change.
    pub fn name(&self) -> &Name {
        match self {
            Self::Add { name, .. }
            | Self::Remove { name, .. }
            | Self::RemoveRrset { name, .. }
            | Self::RemoveAllTypes { name, .. }
            | Self::RemoveName { name }
            | Self::Ignored { name, .. } => name,
        }
    }

    /// The types and classes the change touches: `None` means all of them. Used to match
    /// changes against subscriptions (RFC 8765 §6.3.1: a collective remove matches if at
    /// least one record it removes would match).
    pub(crate) fn scope(&self) -> (Option<RecordType>, Option<DNSClass>) {
        let specific_type = |t: RecordType| (t != RecordType::ANY).then_some(t);
        let specific_class = |c: DNSClass| (c != DNSClass::ANY).then_some(c);
        match self {
            Self::Add { class, rdata, .. } | Self::Remove { class, rdata, .. } => {
                (Some(rdata.record_type()), Some(*class))
            }
            Self::Ignored { rtype, class, .. } => (Some(*rtype), Some(*class)),
            Self::RemoveRrset { class, .. } | Self::RemoveAllTypes { class, .. }
                if *class == DNSClass::ANY =>
            {
                (None, None)
            }
            Self::RemoveRrset { rtype, class, .. } => {
                (specific_type(*rtype), specific_class(*class))
            }
            Self::RemoveAllTypes { class, .. } => (None, specific_class(*class)),
            Self::RemoveName { .. } => (None, None),
        }
    }

    /// Checks the rules RFC 8765 §6.3.1 sets for each kind of change.
    pub(crate) fn validate(&self) -> Result<(), Violation> {
        match self {
            Self::Add {
                class, ttl, rdata, ..
            } => {
                if *ttl > Self::MAX_ADD_TTL {
                    return Err(Violation::PushTtlOutOfRange { ttl: *ttl });
                }
                check_not_any_push(rdata.record_type(), *class)
            }
            Self::Remove { class, rdata, .. } => check_not_any_push(rdata.record_type(), *class),
            Self::Ignored { ttl, .. }
                if *ttl <= Self::MAX_ADD_TTL || *ttl >= Self::TTL_REMOVE_COLLECTIVE =>
            {
                Err(Violation::PushTtlOutOfRange { ttl: *ttl })
            }
            Self::RemoveRrset { .. }
            | Self::RemoveAllTypes { .. }
            | Self::RemoveName { .. }
            | Self::Ignored { .. } => Ok(()),
        }
    }

    /// Writes NAME, TYPE, CLASS, TTL, RDLEN and RDATA.
    pub(crate) fn emit(&self, enc: &mut BinEncoder<'_>) -> Result<(), EncodeError> {
        self.validate()?;
        let collective = Self::TTL_REMOVE_COLLECTIVE;
        match self {
            Self::Add {
                name,
                class,
                ttl,
                rdata,
            } => emit_rr(
                enc,
                name,
                rdata.record_type(),
                *class,
                *ttl,
                RdataOut::Typed(rdata),
            ),
            Self::Remove { name, class, rdata } => emit_rr(
                enc,
                name,
                rdata.record_type(),
                *class,
                Self::TTL_REMOVE,
                RdataOut::Typed(rdata),
            ),
            Self::RemoveRrset { name, rtype, class } => {
                emit_rr(enc, name, *rtype, *class, collective, RdataOut::Raw(&[]))
            }
            Self::RemoveAllTypes { name, class } => emit_rr(
                enc,
                name,
                RecordType::ANY,
                *class,
                collective,
                RdataOut::Raw(&[]),
            ),
            Self::RemoveName { name } => emit_rr(
                enc,
                name,
                RecordType::ZERO,
                DNSClass::ANY,
                collective,
                RdataOut::Raw(&[]),
            ),
            Self::Ignored {
                name,
                rtype,
                class,
                ttl,
                rdata,
            } => emit_rr(enc, name, *rtype, *class, *ttl, RdataOut::Raw(rdata)),
        }
    }
}

fn check_not_any_push(rtype: RecordType, class: DNSClass) -> Result<(), Violation> {
    if rtype == RecordType::ANY || class == DNSClass::ANY {
        return Err(Violation::AnyInPushRecord { rtype, class });
    }
    Ok(())
}

fn check_not_any_reconfirm(rtype: RecordType, class: DNSClass) -> Result<(), Violation> {
    if rtype == RecordType::ANY || class == DNSClass::ANY {
        return Err(Violation::AnyInReconfirm { rtype, class });
    }
    Ok(())
}

enum RdataOut<'r> {
    Typed(&'r RData),
    Raw(&'r [u8]),
}

fn emit_rr(
    enc: &mut BinEncoder<'_>,
    name: &Name,
    rtype: RecordType,
    class: DNSClass,
    ttl: u32,
    rdata: RdataOut<'_>,
) -> Result<(), EncodeError> {
    name.emit(enc)?;
    enc.emit_u16(rtype.into())?;
    enc.emit_u16(class.into())?;
    enc.emit_u32(ttl)?;
    let place = enc.place::<u16>()?;
    match rdata {
        RdataOut::Typed(rdata) => rdata.emit(enc)?,
        RdataOut::Raw(bytes) => enc.emit_vec(bytes)?,
    }
    let len = enc.len_since_place(&place);
    let len = u16::try_from(len).map_err(|_| EncodeError::TlvTooLong {
        tlv_type: dso_type::PUSH,
        len,
    })?;
    enc.emit_at(place, len)?;
    Ok(())
}

/// Writes one TLV (type, length, data). Names are compressed only inside PUSH, and only
/// when `compress_push` is set; SUBSCRIBE and RECONFIRM are always written uncompressed.
pub(crate) fn emit_tlv(
    tlv: &Tlv,
    enc: &mut BinEncoder<'_>,
    compress_push: bool,
) -> Result<(), EncodeError> {
    let tlv_type = tlv.tlv_type();
    enc.emit_u16(tlv_type)?;
    let place = enc.place::<u16>()?;
    {
        let mode = if compress_push && tlv_type == dso_type::PUSH {
            NameEncoding::Compressed
        } else {
            NameEncoding::Uncompressed
        };
        let mut enc = enc.with_name_encoding(mode);
        emit_tlv_data(tlv, &mut enc)?;
    }
    let len = enc.len_since_place(&place);
    let len = u16::try_from(len).map_err(|_| EncodeError::TlvTooLong { tlv_type, len })?;
    enc.emit_at(place, len)?;
    Ok(())
}

fn emit_tlv_data(tlv: &Tlv, enc: &mut BinEncoder<'_>) -> Result<(), EncodeError> {
    match tlv {
        Tlv::Keepalive(ka) => {
            enc.emit_u32(ka.inactivity_timeout_ms)?;
            enc.emit_u32(ka.keepalive_interval_ms)?;
        }
        Tlv::RetryDelay { delay_ms } => enc.emit_u32(*delay_ms)?,
        Tlv::EncryptionPadding(data) | Tlv::Unknown { data, .. } => enc.emit_vec(data)?,
        Tlv::Subscribe(sub) | Tlv::LegacyUnsubscribe(sub) => {
            sub.name.emit(enc)?;
            enc.emit_u16(sub.rtype.into())?;
            enc.emit_u16(sub.class.into())?;
        }
        Tlv::Push(changes) => {
            for change in changes {
                change.emit(enc)?;
            }
        }
        Tlv::Unsubscribe { subscribe_id } => enc.emit_u16(*subscribe_id)?,
        Tlv::Reconfirm(rc) => {
            check_not_any_reconfirm(rc.rdata.record_type(), rc.class)?;
            rc.name.emit(enc)?;
            enc.emit_u16(rc.rdata.record_type().into())?;
            enc.emit_u16(rc.class.into())?;
            rc.rdata.emit(enc)?;
        }
    }
    Ok(())
}

/// Reads the DSO-DATA at `msg[start..end]`. `msg` starts at the DNS header, so that name
/// compression pointers resolve; nothing past `end` is ever read.
pub(crate) fn read_tlv(
    tlv_type: u16,
    msg: &[u8],
    start: usize,
    end: usize,
) -> Result<Tlv, Violation> {
    let data = &msg[start..end];
    let fixed = |expected: u16| -> Result<(), Violation> {
        if data.len() == usize::from(expected) {
            Ok(())
        } else {
            Err(Violation::BadTlvLength {
                tlv_type,
                length: u16::try_from(data.len()).unwrap_or(u16::MAX),
                expected,
            })
        }
    };
    let u32_at =
        |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    match tlv_type {
        dso_type::KEEPALIVE => {
            fixed(8)?;
            Ok(Tlv::Keepalive(Keepalive {
                inactivity_timeout_ms: u32_at(0),
                keepalive_interval_ms: u32_at(4),
            }))
        }
        dso_type::RETRY_DELAY => {
            fixed(4)?;
            Ok(Tlv::RetryDelay {
                delay_ms: u32_at(0),
            })
        }
        dso_type::UNSUBSCRIBE if data.len() == 2 => Ok(Tlv::Unsubscribe {
            subscribe_id: u16::from_be_bytes([data[0], data[1]]),
        }),
        dso_type::ENCRYPTION_PADDING => Ok(Tlv::EncryptionPadding(data.to_vec())),
        dso_type::SUBSCRIBE | dso_type::UNSUBSCRIBE | dso_type::PUSH | dso_type::RECONFIRM => {
            let mut dec = BinDecoder::new(&msg[..end]);
            let malformed = |source| Violation::MalformedTlv { tlv_type, source };
            dec.read_slice(start).map_err(malformed)?;
            let tlv = match tlv_type {
                dso_type::SUBSCRIBE => read_question(&mut dec, tlv_type).map(Tlv::Subscribe),
                dso_type::UNSUBSCRIBE => {
                    read_question(&mut dec, tlv_type).map(Tlv::LegacyUnsubscribe)
                }
                dso_type::PUSH => read_push(&mut dec),
                _ => read_reconfirm(&mut dec),
            };
            tlv.map_err(|e| e.into_violation(tlv_type))
        }
        _ => Ok(Tlv::Unknown {
            tlv_type,
            data: data.to_vec(),
        }),
    }
}

/// Either a low-level wire error (reported as [`Violation::MalformedTlv`]) or a rule.
enum ReadError {
    Wire(WireError),
    Rule(Violation),
}

impl ReadError {
    fn into_violation(self, tlv_type: u16) -> Violation {
        match self {
            Self::Wire(source) => Violation::MalformedTlv { tlv_type, source },
            Self::Rule(v) => v,
        }
    }
}

impl From<WireError> for ReadError {
    fn from(e: WireError) -> Self {
        Self::Wire(e)
    }
}

impl From<Violation> for ReadError {
    fn from(v: Violation) -> Self {
        Self::Rule(v)
    }
}

fn read_u16(dec: &mut BinDecoder<'_>) -> Result<u16, WireError> {
    Ok(dec.read_u16()?.unverified(/* every value has a meaning */))
}

/// Exactly one NAME, TYPE and CLASS (RFC 8765 §6.2.1).
fn read_question(dec: &mut BinDecoder<'_>, tlv_type: u16) -> Result<Subscribe, ReadError> {
    let name = Name::read(dec)?;
    let rtype = RecordType::from(read_u16(dec)?);
    let class = DNSClass::from(read_u16(dec)?);
    if !dec.is_empty() {
        return Err(Violation::TrailingData {
            tlv_type,
            extra: dec.len(),
        }
        .into());
    }
    Ok(Subscribe { name, rtype, class })
}

fn read_push(dec: &mut BinDecoder<'_>) -> Result<Tlv, ReadError> {
    let mut changes = Vec::new();
    while !dec.is_empty() {
        changes.push(read_change(dec)?);
    }
    Ok(Tlv::Push(changes))
}

fn read_change(dec: &mut BinDecoder<'_>) -> Result<PushChange, ReadError> {
    let name = Name::read(dec)?;
    let rtype = RecordType::from(read_u16(dec)?);
    let class = DNSClass::from(read_u16(dec)?);
    let ttl = dec.read_u32()?.unverified(/* classified below */);
    let rdlen = read_u16(dec)?;
    let change = match ttl {
        0..=PushChange::MAX_ADD_TTL | PushChange::TTL_REMOVE => {
            check_not_any_push(rtype, class)?;
            let rdata = RData::read(dec, rtype, Restrict::new(rdlen))?;
            if ttl == PushChange::TTL_REMOVE {
                PushChange::Remove { name, class, rdata }
            } else {
                PushChange::Add {
                    name,
                    class,
                    ttl,
                    rdata,
                }
            }
        }
        PushChange::TTL_REMOVE_COLLECTIVE => {
            if rdlen != 0 {
                return Err(Violation::CollectiveRemoveWithRdata { rdlen }.into());
            }
            if class == DNSClass::ANY {
                PushChange::RemoveName { name }
            } else if rtype == RecordType::ANY {
                PushChange::RemoveAllTypes { name, class }
            } else {
                PushChange::RemoveRrset { name, rtype, class }
            }
        }
        _ => {
            let rdata = dec.read_vec(usize::from(rdlen))?.unverified(/* opaque */);
            PushChange::Ignored {
                name,
                rtype,
                class,
                ttl,
                rdata,
            }
        }
    };
    Ok(change)
}

fn read_reconfirm(dec: &mut BinDecoder<'_>) -> Result<Tlv, ReadError> {
    let name = Name::read(dec)?;
    let rtype = RecordType::from(read_u16(dec)?);
    let class = DNSClass::from(read_u16(dec)?);
    check_not_any_reconfirm(rtype, class)?;
    // No RDLEN: the RDATA runs to the end of the TLV (RFC 8765 §6.5.1). A TLV is at most
    // 65,535 bytes, so the remainder always fits.
    let rdlen = u16::try_from(dec.len()).unwrap_or(u16::MAX);
    let rdata = RData::read(dec, rtype, Restrict::new(rdlen))?;
    Ok(Tlv::Reconfirm(Reconfirm { name, class, rdata }))
}
