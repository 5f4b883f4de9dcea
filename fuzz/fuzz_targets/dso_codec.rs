//! Any bytes given to `dso::decode` yield a message or an error, never a panic. A decoded
//! message encodes again, with and without name compression, and the result decodes to an
//! equal message (parse/encode/parse round trip).
//!
//! One allowance: names the input compressed where the encoder writes them in full
//! (SUBSCRIBE and RECONFIRM names, RDATA of types hickory-proto does not compress, names
//! after its 120-name limit) make the re-encoded message longer. When that breaks a size
//! limit, the encoder must refuse with a size error, and for a PUSH message `encode_push`
//! must carry the same changes, in order, in PUSH messages within the limit.
#![no_main]

use dso::{
    DecodeError, Disposition, DsoMessage, EncodeError, MAX_PUSH_MESSAGE_LEN, NameCompression,
    PushChange, Tlv, Violation, decode, encode_push,
};
use hickory_proto::ProtoError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(message) => round_trip(&message),
        Err(error) => check_error(data, &error),
    }
});

fn round_trip(message: &DsoMessage) {
    for compression in [NameCompression::Compressed, NameCompression::Uncompressed] {
        match message.encode_with(compression) {
            Ok(bytes) => {
                let again = decode(&bytes).unwrap_or_else(|e| {
                    panic!(
                        "{message:?} encoded ({compression:?}) as {bytes:02x?}, which fails: {e}"
                    )
                });
                assert_eq!(&again, message, "unstable round trip ({compression:?})");
            }
            Err(e) if grew_past_a_limit(&e) => {
                let carries_names = |tlv: &Tlv| {
                    matches!(
                        tlv,
                        Tlv::Push(_)
                            | Tlv::Subscribe(_)
                            | Tlv::LegacyUnsubscribe(_)
                            | Tlv::Reconfirm(_)
                    )
                };
                assert!(
                    message.tlvs().any(carries_names),
                    "only TLVs with names can grow on re-encoding: {e} for {message:?}"
                );
            }
            Err(e) => panic!("decoded {message:?} but cannot encode it ({compression:?}): {e}"),
        }
        if let Some(Tlv::Push(changes)) = &message.primary {
            split_round_trip(changes, compression);
        }
    }
}

/// The size limits a grown message can break: 16,382 bytes for a PUSH message, 65,535 for
/// a TLV or (in hickory-proto's encoder) a whole message.
fn grew_past_a_limit(error: &EncodeError) -> bool {
    matches!(
        error,
        EncodeError::Invalid(Violation::PushTooLarge { .. })
            | EncodeError::TlvTooLong { .. }
            | EncodeError::Wire(ProtoError::MaxBufferSizeExceeded(_))
    )
}

/// The changes of a decoded PUSH, split by `encode_push`, decode to the same changes.
fn split_round_trip(changes: &[PushChange], compression: NameCompression) {
    let messages = encode_push(changes, compression)
        .unwrap_or_else(|e| panic!("encode_push refused decoded changes {changes:?}: {e}"));
    let mut carried = Vec::with_capacity(changes.len());
    for bytes in &messages {
        assert!(
            bytes.len() <= MAX_PUSH_MESSAGE_LEN,
            "PUSH of {} bytes",
            bytes.len()
        );
        match decode(bytes) {
            Ok(DsoMessage {
                id: 0,
                response: false,
                primary: Some(Tlv::Push(part)),
                additional,
                ..
            }) if additional.is_empty() && !part.is_empty() => carried.extend(part),
            other => panic!("encode_push produced {bytes:02x?}, decoding to {other:?}"),
        }
    }
    assert_eq!(carried, changes, "encode_push lost or reordered changes");
}

/// Rendering never panics; FORMERR is only asked for a request with a MESSAGE ID, and only
/// other OPCODEs are passed on as non-DSO.
fn check_error(data: &[u8], error: &DecodeError) {
    let _ = error.to_string();
    if let Disposition::FormErr { id } = error.disposition() {
        assert_ne!(id, 0, "FORMERR for a unidirectional message: {error}");
        assert_eq!(error.message_id(), Some(id));
        assert!(
            data.len() >= 12 && data[2] & 0x80 == 0,
            "FORMERR for a response: {error}"
        );
    }
    if error.disposition() == Disposition::NotDso {
        assert!(
            data.len() >= 12 && (data[2] >> 3) & 0x0f != 6,
            "DSO taken for non-DSO"
        );
    }
}
