//! `(value, bytes)` test vectors both ways, decode errors with their disposition, and the
//! encoder's refusals and PUSH splitting.

mod common;

use common::{hex, name, ptr, reference, unframe};
use dso::tlv::dso_type;
use dso::{
    DecodeError, Disposition, DsoMessage, EncodeError, Keepalive, MAX_PUSH_MESSAGE_LEN,
    NameCompression, PushChange, Rcode, Reconfirm, Subscribe, Tlv, Violation, decode, encode_push,
};
use hickory_proto::rr::rdata::{A, NULL};
use hickory_proto::rr::{DNSClass, RData, RecordType};

fn ipp() -> hickory_proto::rr::Name {
    name("_ipp._tcp.example.com.")
}

fn printer() -> RData {
    ptr("printer._ipp._tcp.example.com.")
}

/// Decodes to exactly `value`, and `value` encodes to exactly `bytes`.
fn both_ways(value: &DsoMessage, bytes: &[u8], compression: NameCompression) {
    let decoded = decode(bytes).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(&decoded, value, "decode → value");
    let encoded = value.encode_with(compression).expect("encode");
    assert_eq!(encoded, bytes, "encode → bytes");
}

fn reference_vector(framed: &str, value: DsoMessage) {
    both_ways(
        &value,
        &unframe(&hex(framed)),
        NameCompression::Uncompressed,
    );
}

#[test]
fn reference_keepalive_request() {
    let ka = Keepalive {
        inactivity_timeout_ms: 15_000,
        keepalive_interval_ms: 15_000,
    };
    reference_vector(
        reference::KEEPALIVE_REQUEST,
        DsoMessage::request(0x002a, Tlv::Keepalive(ka)),
    );
}

#[test]
fn reference_keepalive_response() {
    let value = DsoMessage {
        primary: Some(Tlv::Keepalive(Keepalive::default())),
        ..DsoMessage::response(0x002a, Rcode::NOERROR)
    };
    reference_vector(reference::KEEPALIVE_RESPONSE, value);
}

#[test]
fn reference_subscribe() {
    let sub = Subscribe {
        name: ipp(),
        rtype: RecordType::PTR,
        class: DNSClass::IN,
    };
    reference_vector(
        reference::SUBSCRIBE,
        DsoMessage::request(0x1234, Tlv::Subscribe(sub)),
    );
}

#[test]
fn reference_subscribe_response() {
    reference_vector(
        reference::SUBSCRIBE_RESPONSE,
        DsoMessage::response(0x1234, Rcode::NOERROR),
    );
}

#[test]
fn reference_subscribe_servfail_with_retry_delay() {
    let value = DsoMessage::response(0x1234, Rcode::SERVFAIL)
        .with_additional(Tlv::RetryDelay { delay_ms: 300_000 });
    reference_vector(reference::SUBSCRIBE_SERVFAIL_RETRY, value.clone());
    assert_eq!(value.retry_delay_ms(), Some(300_000));
}

#[test]
fn reference_push_add() {
    let add = PushChange::Add {
        name: ipp(),
        class: DNSClass::IN,
        ttl: 3600,
        rdata: printer(),
    };
    reference_vector(
        reference::PUSH_ADD,
        DsoMessage::unidirectional(Tlv::Push(vec![add])),
    );
}

#[test]
fn reference_push_removes() {
    reference_vector(reference::PUSH_REMOVES, push_removes());
}

fn push_removes() -> DsoMessage {
    DsoMessage::unidirectional(Tlv::Push(vec![
        PushChange::Remove {
            name: ipp(),
            class: DNSClass::IN,
            rdata: printer(),
        },
        PushChange::RemoveRrset {
            name: ipp(),
            rtype: RecordType::PTR,
            class: DNSClass::IN,
        },
    ]))
}

#[test]
fn reference_unsubscribe() {
    reference_vector(
        reference::UNSUBSCRIBE,
        DsoMessage::unidirectional(Tlv::Unsubscribe {
            subscribe_id: 0x1234,
        }),
    );
}

#[test]
fn legacy_unsubscribe_by_name_type_class() {
    // Pre-RFC UNSUBSCRIBE as Apple's mDNSResponder client still sends it.
    let value = DsoMessage::unidirectional(Tlv::LegacyUnsubscribe(Subscribe {
        name: name("h.example."),
        rtype: RecordType::PTR,
        class: DNSClass::IN,
    }));
    let bytes = hex("
        00 00 30 00 00 00 00 00 00 00 00 00  00 42 00 0f
        01 68 07 65 78 61 6d 70 6c 65 00  00 0c 00 01
    ");
    both_ways(&value, &bytes, NameCompression::Compressed);
}

#[test]
fn reference_reconfirm() {
    let rc = Reconfirm {
        name: ipp(),
        class: DNSClass::IN,
        rdata: printer(),
    };
    reference_vector(
        reference::RECONFIRM,
        DsoMessage::unidirectional(Tlv::Reconfirm(rc)),
    );
}

#[test]
fn reference_retry_delay() {
    reference_vector(
        reference::RETRY_DELAY,
        DsoMessage::unidirectional(Tlv::RetryDelay { delay_ms: 5000 }),
    );
}

#[test]
fn push_compresses_owner_and_ptr_target() {
    let bytes = hex("
        00 00 30 00 00 00 00 00 00 00 00 00  00 41 00 37
        04 5f 69 70 70 04 5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00 # owner at offset 16
        00 0c 00 01 ff ff ff ff 00 0a  07 70 72 69 6e 74 65 72 c0 10       # printer + pointer
        c0 10 00 0c 00 01 ff ff ff fe 00 00                                # owner as pointer
    ");
    both_ways(&push_removes(), &bytes, NameCompression::Compressed);
    assert_eq!(
        push_removes().encode().expect("encode"),
        bytes,
        "compression is the default"
    );
}

#[test]
fn push_collective_forms_and_ignored_ttl() {
    let h = name("h.example.");
    let value = DsoMessage::unidirectional(Tlv::Push(vec![
        PushChange::RemoveAllTypes {
            name: h.clone(),
            class: DNSClass::IN,
        },
        PushChange::RemoveName { name: h.clone() },
        PushChange::Ignored {
            name: h.clone(),
            rtype: RecordType::A,
            class: DNSClass::IN,
            ttl: 0x8000_0000,
            rdata: vec![0xc0, 0x00, 0x02, 0x01],
        },
    ]));
    let bytes = hex("
        00 00 30 00 00 00 00 00 00 00 00 00  00 41 00 43
        01 68 07 65 78 61 6d 70 6c 65 00  00 ff 00 01 ff ff ff fe 00 00  # TYPE ANY
        01 68 07 65 78 61 6d 70 6c 65 00  00 00 00 ff ff ff ff fe 00 00  # CLASS ANY, TYPE 0
        01 68 07 65 78 61 6d 70 6c 65 00  00 01 00 01 80 00 00 00 00 04 c0 00 02 01
    ");
    both_ways(&value, &bytes, NameCompression::Uncompressed);
}

#[test]
fn collective_remove_with_class_any_ignores_type() {
    // TYPE is "silently ignored on reception" when CLASS is ANY (RFC 8765 §6.3.1).
    let bytes = hex("
        00 00 30 00 00 00 00 00 00 00 00 00  00 41 00 15
        01 68 07 65 78 61 6d 70 6c 65 00  00 1c 00 ff ff ff ff fe 00 00
    ");
    let expected = DsoMessage::unidirectional(Tlv::Push(vec![PushChange::RemoveName {
        name: name("h.example."),
    }]));
    assert_eq!(decode(&bytes).expect("decode"), expected);
}

#[test]
fn push_add_with_empty_rdata_and_ttl_zero() {
    // RFC 8765 §6.3.1: RDLEN 0 with an add TTL is an add of a record with empty RDATA.
    let value = DsoMessage::unidirectional(Tlv::Push(vec![PushChange::Add {
        name: name("h.example."),
        class: DNSClass::IN,
        ttl: 0,
        rdata: RData::Unknown {
            code: RecordType::from(42),
            rdata: NULL::new(),
        },
    }]));
    let bytes = hex("
        00 00 30 00 00 00 00 00 00 00 00 00  00 41 00 15
        01 68 07 65 78 61 6d 70 6c 65 00  00 2a 00 01 00 00 00 00 00 00
    ");
    both_ways(&value, &bytes, NameCompression::Uncompressed);
}

#[test]
fn server_keepalive_unidirectional_infinite_inactivity() {
    let ka = Keepalive {
        inactivity_timeout_ms: Keepalive::INFINITE,
        keepalive_interval_ms: 3_600_000,
    };
    let value = DsoMessage::unidirectional(Tlv::Keepalive(ka));
    let bytes = hex("00 00 30 00 00 00 00 00 00 00 00 00  00 01 00 08 ff ff ff ff 00 36 ee 80");
    both_ways(&value, &bytes, NameCompression::Compressed);
    assert_eq!(ka.inactivity_timeout(), None);
    assert_eq!(
        ka.keepalive_interval(),
        Some(std::time::Duration::from_secs(3600))
    );
}

#[test]
fn dsotypeni_response() {
    let bytes = hex("00 07 b0 0b 00 00 00 00 00 00 00 00");
    both_ways(
        &DsoMessage::response(7, Rcode::DSOTYPENI),
        &bytes,
        NameCompression::Compressed,
    );
    assert_eq!(Rcode::DSOTYPENI.to_string(), "DSOTYPENI");
}

#[test]
fn retry_delay_keeps_its_rcode() {
    let mut value = DsoMessage::unidirectional(Tlv::RetryDelay { delay_ms: 5000 });
    value.rcode = Rcode::REFUSED;
    let bytes = hex("00 00 30 05 00 00 00 00 00 00 00 00  00 02 00 04 00 00 13 88");
    both_ways(&value, &bytes, NameCompression::Compressed);
}

#[test]
fn unknown_tlvs_and_padding_are_kept_raw() {
    let value = DsoMessage::request(
        0x0101,
        Tlv::Unknown {
            tlv_type: 0xf800,
            data: vec![0xab, 0xcd],
        },
    )
    .with_additional(Tlv::EncryptionPadding(vec![0, 0, 0]))
    .with_additional(Tlv::Unknown {
        tlv_type: 0x0044,
        data: vec![],
    });
    let bytes = hex("
        01 01 30 00 00 00 00 00 00 00 00 00
        f8 00 00 02 ab cd  00 03 00 03 00 00 00  00 44 00 00
    ");
    both_ways(&value, &bytes, NameCompression::Compressed);
}

#[test]
fn z_bits_are_ignored_on_reception() {
    // AA/TC/RD/RA/Z/AD/CD set: all Z for DSO, ignored (RFC 8490 §5.4.1).
    let mut bytes = unframe(&hex(reference::RETRY_DELAY));
    bytes[2] |= 0x07;
    bytes[3] |= 0xf0;
    assert_eq!(
        decode(&bytes).expect("decode"),
        DsoMessage::unidirectional(Tlv::RetryDelay { delay_ms: 5000 })
    );
}

#[test]
fn reconfirm_follows_compression_pointer_into_the_message() {
    // RDATA "printer" + pointer to the owner name at offset 16.
    let bytes = hex("
        00 00 30 00 00 00 00 00 00 00 00 00  00 43 00 25
        04 5f 69 70 70 04 5f 74 63 70 07 65 78 61 6d 70 6c 65 03 63 6f 6d 00
        00 0c 00 01  07 70 72 69 6e 74 65 72 c0 10
    ");
    let expected = DsoMessage::unidirectional(Tlv::Reconfirm(Reconfirm {
        name: ipp(),
        class: DNSClass::IN,
        rdata: printer(),
    }));
    assert_eq!(decode(&bytes).expect("decode"), expected);
}

// ---- decode errors ----------------------------------------------------------------------

fn decode_err(bytes: &[u8]) -> DecodeError {
    match decode(bytes) {
        Ok(msg) => panic!("decoded unexpectedly: {msg:?}"),
        Err(e) => e,
    }
}

fn header(id: u16, flags: u8) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend([flags, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    h
}

#[test]
fn short_header_is_fatal() {
    let e = decode_err(&[0x12, 0x34, 0x30]);
    assert!(matches!(e.violation(), Violation::ShortHeader { len: 3 }));
    assert_eq!(e.disposition(), Disposition::Abort);
    assert_eq!(e.message_id(), None);
}

#[test]
fn other_opcodes_are_not_dso() {
    let mut query = header(0x4242, 0x01); // OPCODE 0, RD
    query[5] = 1; // QDCOUNT 1
    let e = decode_err(&query);
    assert!(matches!(e.violation(), Violation::NotDso { opcode: 0 }));
    assert_eq!(e.disposition(), Disposition::NotDso);
}

#[test]
fn response_with_id_zero_is_fatal() {
    let e = decode_err(&header(0, 0xb0));
    assert!(matches!(e.violation(), Violation::ResponseIdZero));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn nonzero_counts_formerr_for_requests_abort_otherwise() {
    let mut request = unframe(&hex(reference::KEEPALIVE_REQUEST));
    request[11] = 1; // ARCOUNT
    let e = decode_err(&request);
    assert!(matches!(
        e.violation(),
        Violation::NonZeroCount { arcount: 1, .. }
    ));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 0x2a });

    let mut unidirectional = unframe(&hex(reference::RETRY_DELAY));
    unidirectional[5] = 1; // QDCOUNT
    let e = decode_err(&unidirectional);
    assert!(matches!(
        e.violation(),
        Violation::NonZeroCount { qdcount: 1, .. }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);

    let mut response = unframe(&hex(reference::SUBSCRIBE_RESPONSE));
    response[7] = 2; // ANCOUNT
    assert_eq!(decode_err(&response).disposition(), Disposition::Abort);
}

#[test]
fn truncated_tlv_data() {
    let request = unframe(&hex(reference::KEEPALIVE_REQUEST));
    let e = decode_err(&request[..request.len() - 4]);
    assert!(matches!(
        e.violation(),
        Violation::TlvOverrun {
            tlv_type: dso_type::KEEPALIVE,
            length: 8,
            available: 4
        }
    ));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 0x2a });

    let push = unframe(&hex(reference::PUSH_ADD));
    let e = decode_err(&push[..push.len() - 1]);
    assert!(matches!(e.violation(), Violation::TlvOverrun { .. }));
    assert_eq!(
        e.disposition(),
        Disposition::Abort,
        "unidirectional: cannot answer"
    );
}

#[test]
fn truncated_tlv_header() {
    let mut bytes = unframe(&hex(reference::SUBSCRIBE_RESPONSE));
    bytes.extend([0x00, 0x02, 0x00]);
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::TruncatedTlvHeader {
            offset: 12,
            remaining: 3
        }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn request_without_tlv() {
    let e = decode_err(&header(9, 0x30));
    assert!(matches!(e.violation(), Violation::MissingPrimary));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 9 });
    assert_eq!(
        decode_err(&header(0, 0x30)).disposition(),
        Disposition::Abort
    );
}

#[test]
fn wrong_fixed_tlv_lengths() {
    // Keepalive with 4 trailing bytes (as in Apple's test harness).
    let mut bytes = header(5, 0x30);
    bytes.extend(hex("00 01 00 0c 00 00 3a 98 00 00 3a 98 de ad be ef"));
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::BadTlvLength {
            tlv_type: dso_type::KEEPALIVE,
            length: 12,
            expected: 8
        }
    ));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 5 });

    // Retry Delay with three bytes, in a unidirectional message.
    let mut bytes = header(0, 0x30);
    bytes.extend(hex("00 02 00 03 00 13 88"));
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::BadTlvLength {
            tlv_type: dso_type::RETRY_DELAY,
            expected: 4,
            ..
        }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);

    // An UNSUBSCRIBE that is neither a MESSAGE ID nor NAME/TYPE/CLASS.
    let mut bytes = header(0, 0x30);
    bytes.extend(hex("00 42 00 01 12"));
    assert!(matches!(
        decode_err(&bytes).violation(),
        Violation::MalformedTlv {
            tlv_type: dso_type::UNSUBSCRIBE,
            ..
        }
    ));
}

#[test]
fn subscribe_with_trailing_bytes_is_formerr() {
    let mut bytes = header(0x77, 0x30);
    bytes.extend(hex("00 40 00 08 01 68 00 00 01 00 01 ff"));
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::TrailingData { extra: 1, .. }
    ));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 0x77 });
}

#[test]
fn malformed_subscribe_name_is_formerr() {
    let mut bytes = header(0x78, 0x30);
    bytes.extend(hex("00 40 00 06 05 68 00 01 00 01")); // label runs past the TLV
    let e = decode_err(&bytes);
    assert!(matches!(e.violation(), Violation::MalformedTlv { .. }));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 0x78 });
}

#[test]
fn type_any_in_push_add_is_fatal() {
    let mut bytes = unframe(&hex(reference::PUSH_ADD));
    bytes[16 + 23 + 1] = 0xff; // TYPE low byte: PTR → ANY
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::AnyInPushRecord {
            rtype: RecordType::ANY,
            ..
        }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn class_any_in_single_remove_is_fatal() {
    let mut bytes = unframe(&hex(reference::PUSH_REMOVES));
    bytes[16 + 23 + 3] = 0xff; // CLASS low byte of the first record: IN → ANY
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::AnyInPushRecord {
            class: DNSClass::ANY,
            ..
        }
    ));
}

#[test]
fn collective_remove_with_rdata_is_fatal() {
    let mut bytes = header(0, 0x30);
    bytes.extend(hex(
        "00 41 00 0e  01 68 00  00 01 00 01 ff ff ff fe 00 01 00",
    ));
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::CollectiveRemoveWithRdata { rdlen: 1 }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn empty_push_is_fatal() {
    let mut bytes = header(0, 0x30);
    bytes.extend(hex("00 41 00 00"));
    let e = decode_err(&bytes);
    assert!(matches!(e.violation(), Violation::EmptyPush));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn primary_tlv_must_match_message_kind() {
    // PUSH with a MESSAGE ID: a request that must not be one (RFC 8490 §5.4.1) — fatal.
    let mut push = unframe(&hex(reference::PUSH_ADD));
    push[1] = 1;
    let e = decode_err(&push);
    assert!(matches!(
        e.violation(),
        Violation::UnidirectionalWithId {
            tlv_type: dso_type::PUSH
        }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);

    // SUBSCRIBE without MESSAGE ID.
    let mut sub = unframe(&hex(reference::SUBSCRIBE));
    sub[0] = 0;
    sub[1] = 0;
    assert!(matches!(
        decode_err(&sub).violation(),
        Violation::SubscribeWithoutId
    ));

    // Retry Delay as a request.
    let mut rd = unframe(&hex(reference::RETRY_DELAY));
    rd[1] = 3;
    let e = decode_err(&rd);
    assert!(matches!(e.violation(), Violation::RetryDelayRequest));
    assert_eq!(e.disposition(), Disposition::Abort);

    // Encryption Padding as primary of a request: malformed, so FORMERR.
    let mut pad = header(4, 0x30);
    pad.extend(hex("00 03 00 01 00"));
    let e = decode_err(&pad);
    assert!(matches!(e.violation(), Violation::PaddingAsPrimary));
    assert_eq!(e.disposition(), Disposition::FormErr { id: 4 });
}

#[test]
fn push_unsubscribe_reconfirm_as_response_are_fatal() {
    for vector in [
        reference::PUSH_ADD,
        reference::UNSUBSCRIBE,
        reference::RECONFIRM,
    ] {
        let mut bytes = unframe(&hex(vector));
        bytes[1] = 9;
        bytes[2] |= 0x80;
        let e = decode_err(&bytes);
        assert!(matches!(e.violation(), Violation::PushTlvInResponse { .. }));
        assert_eq!(e.disposition(), Disposition::Abort);
    }
}

#[test]
fn type_any_in_reconfirm_is_fatal() {
    let mut bytes = unframe(&hex(reference::RECONFIRM));
    bytes[16 + 23 + 1] = 0xff;
    let e = decode_err(&bytes);
    assert!(matches!(e.violation(), Violation::AnyInReconfirm { .. }));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn bad_rdata_in_push_is_fatal() {
    let mut bytes = header(0, 0x30);
    // A record with RDLEN 3.
    bytes.extend(hex(
        "00 41 00 10 01 68 00 00 01 00 01 00 00 00 3c 00 03 01 02 03",
    ));
    let e = decode_err(&bytes);
    assert!(matches!(
        e.violation(),
        Violation::MalformedTlv {
            tlv_type: dso_type::PUSH,
            ..
        }
    ));
    assert_eq!(e.disposition(), Disposition::Abort);
}

fn big_push(count: usize) -> Vec<PushChange> {
    (0..count)
        .map(|i| PushChange::Add {
            name: name(&format!("host-{i:05}.example.com.")),
            class: DNSClass::IN,
            ttl: 120,
            rdata: RData::A(A::new(192, 0, 2, (i % 250) as u8)),
        })
        .collect()
}

#[test]
fn oversized_push_is_refused_and_rejected() {
    let changes = big_push(600); // 600 × 38 bytes uncompressed > 16,382
    let msg = DsoMessage::unidirectional(Tlv::Push(changes));
    match msg.encode_with(NameCompression::Uncompressed) {
        Err(EncodeError::Invalid(Violation::PushTooLarge { len })) => {
            assert!(len > MAX_PUSH_MESSAGE_LEN);
        }
        other => panic!("expected PushTooLarge, got {other:?}"),
    }

    // The same message built by hand must be rejected by the receiver.
    let Tlv::Push(changes) = msg.primary.expect("push") else {
        unreachable!()
    };
    let mut data = Vec::new();
    for part in encode_push(&changes, NameCompression::Uncompressed).expect("split") {
        data.extend_from_slice(&part[16..]);
    }
    let mut bytes = header(0, 0x30);
    bytes.extend(dso_type::PUSH.to_be_bytes());
    bytes.extend(u16::try_from(data.len()).expect("fits").to_be_bytes());
    bytes.extend(data);
    let e = decode_err(&bytes);
    assert!(matches!(e.violation(), Violation::PushTooLarge { .. }));
    assert_eq!(e.disposition(), Disposition::Abort);
}

#[test]
fn oversized_messages_are_rejected() {
    let mut bytes = header(0, 0x30);
    bytes.resize(70_000, 0);
    assert!(matches!(
        decode_err(&bytes).violation(),
        Violation::MessageTooLong { len: 70_000 }
    ));
}

// ---- encoder refusals and PUSH splitting ----------------------------------------------------

#[test]
fn encoder_refuses_invalid_messages() {
    let cases = [
        (
            DsoMessage::unidirectional(Tlv::Push(vec![PushChange::Add {
                name: name("h.example."),
                class: DNSClass::IN,
                ttl: 0x8000_0000,
                rdata: RData::A(A::new(192, 0, 2, 1)),
            }])),
            "TTL",
        ),
        (
            DsoMessage::unidirectional(Tlv::Push(vec![PushChange::Remove {
                name: name("h.example."),
                class: DNSClass::ANY,
                rdata: RData::A(A::new(192, 0, 2, 1)),
            }])),
            "ANY",
        ),
        (
            DsoMessage::unidirectional(Tlv::Push(vec![])),
            "at least one",
        ),
        (
            DsoMessage {
                primary: None,
                ..DsoMessage::request(1, Tlv::RetryDelay { delay_ms: 0 })
            },
            "at least one TLV",
        ),
        (DsoMessage::response(0, Rcode::NOERROR), "MESSAGE ID 0"),
        (
            DsoMessage::request(3, Tlv::Unsubscribe { subscribe_id: 1 }),
            "unidirectional",
        ),
    ];
    for (msg, needle) in cases {
        let err = msg.encode().expect_err("must refuse");
        assert!(
            matches!(err, EncodeError::Invalid(_)) && err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
}

#[test]
fn encode_push_splits_between_records() {
    let changes = big_push(1000);
    for compression in [NameCompression::Uncompressed, NameCompression::Compressed] {
        let messages = encode_push(&changes, compression).expect("split");
        assert!(messages.len() > 1, "{compression:?}: must split");
        let mut decoded = Vec::new();
        for (i, bytes) in messages.iter().enumerate() {
            assert!(bytes.len() <= MAX_PUSH_MESSAGE_LEN, "message {i} too long");
            let msg = decode(bytes).expect("each part decodes on its own");
            assert_eq!((msg.id, msg.response), (0, false));
            let Some(Tlv::Push(part)) = msg.primary else {
                panic!("not a PUSH")
            };
            decoded.extend(part);
        }
        assert_eq!(
            decoded, changes,
            "{compression:?}: same changes, same order"
        );
    }

    // Uncompressed, every record is 38 bytes: messages hold as many as fit.
    let messages = encode_push(&changes, NameCompression::Uncompressed).expect("split");
    let per_message = (MAX_PUSH_MESSAGE_LEN - 16) / 38;
    assert_eq!(messages[0].len(), 16 + per_message * 38);
    assert_eq!(messages.len(), changes.len().div_ceil(per_message));
}

#[test]
fn encode_push_compresses_within_each_message() {
    let changes = big_push(10);
    let compressed = encode_push(&changes, NameCompression::Compressed).expect("encode");
    let plain = encode_push(&changes, NameCompression::Uncompressed).expect("encode");
    assert_eq!((compressed.len(), plain.len()), (1, 1));
    // "example.com." is written once, then pointed to: 13 bytes become 2, nine times.
    assert_eq!(plain[0].len() - compressed[0].len(), 9 * 11);
}

#[test]
fn encode_push_refuses_a_change_that_cannot_fit() {
    let huge = PushChange::Add {
        name: name("h.example."),
        class: DNSClass::IN,
        ttl: 1,
        rdata: RData::NULL(NULL::with(vec![0; 17_000])),
    };
    let changes = vec![big_push(1).remove(0), huge];
    assert!(matches!(
        encode_push(&changes, NameCompression::Compressed),
        Err(EncodeError::ChangeTooLarge { index: 1 })
    ));
    assert!(
        encode_push(&[], NameCompression::Compressed)
            .expect("empty")
            .is_empty()
    );
}
