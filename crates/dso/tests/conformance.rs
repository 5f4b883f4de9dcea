//! One test per RFC 8490 / RFC 8765 requirement that the other test files did not yet
//! prove, named in `docs/conformance.md`; plus regression tests for bugs the fuzz targets
//! found. Each test drives the public API only: a client and a server session on a fake
//! clock, or hand-made messages for what a correct peer never sends.

mod common;

use std::time::{Duration, Instant};

use common::{Clock, abort_reason, events, name, ptr, sends, sent_messages, to_client, to_server};
use dso::{
    AbortReason, Action, ClientConfig, ClientSession, DsoMessage, Event, Keepalive,
    MAX_PUSH_MESSAGE_LEN, MessageKind, NameCompression, PushChange, Rcode, ServerConfig,
    ServerSession, SessionError, Subscribe, Tlv, Violation, decode,
};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{DNSClass, RData, RecordType};

// ---- helpers ----------------------------------------------------------------------------

fn encode(message: DsoMessage) -> Vec<u8> {
    message.encode().expect("encode")
}

fn a_record(owner: &str, last: u8) -> PushChange {
    PushChange::Add {
        name: name(owner),
        class: DNSClass::IN,
        ttl: 60,
        rdata: RData::A(A::new(192, 0, 2, last)),
    }
}

fn unknown_tlv() -> Tlv {
    Tlv::Unknown {
        tlv_type: 0xf800,
        data: vec![1, 2, 3],
    }
}

fn keepalive_response(id: u16, timeouts: Keepalive) -> DsoMessage {
    DsoMessage {
        primary: Some(Tlv::Keepalive(timeouts)),
        ..DsoMessage::response(id, Rcode::NOERROR)
    }
}

struct Pair {
    clock: Clock,
    client: ClientSession,
    server: ServerSession,
    sub_id: u16,
}

impl Pair {
    /// Subscribes `owner` A IN at time `secs` and has the server accept it.
    fn subscribe(&mut self, owner: &str, secs: f64) -> u16 {
        let t = self.clock.at(secs);
        let (id, out) = self
            .client
            .subscribe(name(owner), RecordType::A, DNSClass::IN, t)
            .expect("subscribe");
        to_server(&mut self.server, &out, t);
        let response = self.server.accept_subscribe(id, t).expect("accept");
        let at_client = to_client(&mut self.client, &response, t);
        assert!(events(&at_client).contains(&Event::Subscribed { id }));
        id
    }
}

/// A client and a server with one accepted subscription (`printer.example.` A IN), set up
/// at time 0 with the default 15-second timeouts.
fn established_pair() -> Pair {
    let clock = Clock::new();
    let t = clock.at(0.0);
    let mut pair = Pair {
        client: ClientSession::new(ClientConfig::default(), t),
        server: ServerSession::new(ServerConfig::default(), t),
        clock,
        sub_id: 0,
    };
    pair.sub_id = pair.subscribe("printer.example.", 0.0);
    pair
}

// ---- RFC 8490 §5.3.1, §5.4, §5.4.1: headers and fatal errors ----------------------------

/// §5.4 counts "MUST be set to zero on transmission"; §5.4.1 Z bits "MUST be set to zero
/// (0) on transmission", QR and MESSAGE ID by message kind.
#[test]
fn every_sent_message_has_a_valid_dso_header() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let mut out = Vec::new();
    out.extend(pair.client.keepalive(t).expect("keepalive"));
    out.extend(
        pair.client
            .reconfirm(name("x.example."), DNSClass::IN, ptr("y.example."), t)
            .expect("reconfirm"),
    );
    out.extend(
        pair.server
            .push(&[a_record("printer.example.", 1)], t)
            .expect("push"),
    );
    out.extend(
        pair.server
            .set_timeouts(Keepalive::default(), t)
            .expect("set"),
    );
    let (id, subscribe) = pair
        .client
        .subscribe(name("other.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    out.extend(subscribe.clone());
    to_server(&mut pair.server, &subscribe, t);
    out.extend(
        pair.server
            .reject_subscribe(id, Rcode::REFUSED, Some(Duration::from_secs(60)), t)
            .expect("reject"),
    );
    out.extend(
        pair.server
            .cancel_subscription(pair.sub_id, Rcode::NOTAUTH, None, t)
            .expect("cancel"),
    );
    out.extend(pair.client.unsubscribe(pair.sub_id, t).unwrap_or_default());
    out.extend(
        pair.server
            .retry_delay(Duration::from_secs(5), Rcode::NOERROR, t)
            .expect("retry delay"),
    );
    let sent = sends(&out);
    assert!(sent.len() >= 8);
    for bytes in sent {
        assert_eq!(bytes[2] & 0x78, 6 << 3, "OPCODE 6");
        assert_eq!(bytes[2] & 0x07, 0, "Z bits (flags byte)");
        assert_eq!(bytes[3] & 0xf0, 0, "Z bits (RCODE byte)");
        assert_eq!(bytes[4..12], [0; 8], "QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT");
        let message = decode(&bytes).expect("decode");
        match message.kind() {
            MessageKind::Request => assert_ne!(message.id, 0),
            MessageKind::Unidirectional => assert_eq!(message.id, 0),
            MessageKind::Response => assert_ne!(message.id, 0),
        }
    }
}

/// §5.3.1: a fatal error "MUST forcibly abort the connection immediately": one `Abort`, and
/// the session is dead for good: no more output, no timers, every operation refused.
#[test]
fn a_fatal_error_ends_the_session_for_good() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let stray = encode(DsoMessage::response(0x5555, Rcode::NOERROR));
    assert!(matches!(
        abort_reason(&pair.client.receive(&stray, t)),
        AbortReason::UnknownResponseId { .. }
    ));
    assert!(pair.client.is_closed());
    assert_eq!(pair.client.next_deadline(), None);
    assert!(pair.client.poll(pair.clock.at(100.0)).is_empty());
    assert!(pair.client.receive(&stray, t).is_empty());
    assert!(pair.client.close().is_empty());
    assert!(matches!(
        pair.client.keepalive(t),
        Err(SessionError::Closed)
    ));

    let push_from_client = encode(DsoMessage::unidirectional(Tlv::Push(vec![a_record(
        "printer.example.",
        1,
    )])));
    assert!(matches!(
        abort_reason(&pair.server.receive(&push_from_client, t)),
        AbortReason::PushFromClient
    ));
    assert!(pair.server.is_closed());
    assert_eq!(pair.server.next_deadline(), None);
    assert!(pair.server.poll(pair.clock.at(100.0)).is_empty());
    assert!(matches!(
        pair.server.push(&[a_record("printer.example.", 1)], t),
        Err(SessionError::Closed)
    ));
}

/// §5.4.1: a response with MESSAGE ID zero "is a fatal error and the recipient MUST
/// forcibly abort": the client side (the server side is in `session.rs`).
#[test]
fn client_aborts_on_a_response_with_message_id_zero() {
    let mut pair = established_pair();
    let bytes = [0, 0, 0xb0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let out = pair.client.receive(&bytes, pair.clock.at(1.0));
    assert!(matches!(abort_reason(&out), AbortReason::Malformed(_)));
}

/// §5.4.1: a request whose Primary TLV must be unidirectional, or a unidirectional message
/// whose Primary TLV needs a response: the receiver "MUST treat it as a fatal error".
#[test]
fn message_id_contrary_to_the_primary_tlv_is_fatal() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    // UNSUBSCRIBE with a MESSAGE ID (QR=0, ID 7): hand-made, the encoder refuses it.
    let mut unsubscribe = encode(DsoMessage::unidirectional(Tlv::Unsubscribe {
        subscribe_id: pair.sub_id,
    }));
    unsubscribe[1] = 7;
    assert!(sends(&pair.server.receive(&unsubscribe, t)).is_empty());
    assert!(pair.server.is_closed());

    // SUBSCRIBE without one.
    let mut pair = established_pair();
    let mut subscribe = encode(DsoMessage::request(
        9,
        Tlv::Subscribe(Subscribe {
            name: name("x.example."),
            rtype: RecordType::A,
            class: DNSClass::IN,
        }),
    ));
    subscribe[1] = 0;
    assert!(matches!(
        abort_reason(&pair.server.receive(&subscribe, t)),
        AbortReason::Malformed(_)
    ));

    // PUSH with a MESSAGE ID, at the client.
    let mut push = encode(DsoMessage::unidirectional(Tlv::Push(vec![a_record(
        "printer.example.",
        1,
    )])));
    push[1] = 3;
    assert!(matches!(
        abort_reason(&pair.client.receive(&push, t)),
        AbortReason::Malformed(_)
    ));
}

// ---- §5.4.2–§5.4.5: DSO data, unidirectional messages, unrecognized TLVs ----------------

/// §5.4.3: "the receiver MUST NOT generate responses to DSO unidirectional messages ...
/// even in the case of errors": malformed unidirectional messages are aborted, never
/// answered with FORMERR or DSOTYPENI.
#[test]
fn malformed_unidirectional_messages_are_never_answered() {
    let unsubscribe = encode(DsoMessage::unidirectional(Tlv::Unsubscribe {
        subscribe_id: 1,
    }));
    let mut nonzero_count = unsubscribe.clone();
    nonzero_count[5] = 1; // QDCOUNT
    let mut overrun = unsubscribe.clone();
    overrun[15] = 9; // DSO-LENGTH past the end
    let no_tlv = unsubscribe[..12].to_vec();
    let unknown = encode(DsoMessage::unidirectional(unknown_tlv()));
    for bytes in [nonzero_count, overrun, no_tlv, unknown] {
        let mut pair = established_pair();
        let t = pair.clock.at(1.0);
        let at_server = pair.server.receive(&bytes, t);
        assert!(matches!(at_server[..], [Action::Abort(_)]), "{at_server:?}");
        let at_client = pair.client.receive(&bytes, t);
        assert!(matches!(at_client[..], [Action::Abort(_)]), "{at_client:?}");
    }
}

/// §5.4.5: a unidirectional message with an unrecognized Primary TLV "is a fatal error and
/// the recipient MUST forcibly abort": the client side.
#[test]
fn client_aborts_on_an_unknown_unidirectional_primary_tlv() {
    let mut pair = established_pair();
    let out = pair.client.receive(
        &encode(DsoMessage::unidirectional(unknown_tlv())),
        pair.clock.at(1.0),
    );
    assert!(matches!(
        abort_reason(&out),
        AbortReason::UnknownUnidirectional { tlv_type: 0xf800 }
    ));
}

/// §5.4.5: "the unrecognized Additional TLVs MUST be silently ignored" in requests and
/// unidirectional messages, in both directions.
#[test]
fn unknown_additional_tlvs_are_ignored() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let subscribe = Subscribe {
        name: name("other.example."),
        rtype: RecordType::TXT,
        class: DNSClass::IN,
    };
    let request = DsoMessage::request(0x100, Tlv::Subscribe(subscribe.clone()))
        .with_additional(unknown_tlv());
    assert_eq!(
        events(&pair.server.receive(&encode(request), t)),
        vec![Event::SubscribeRequest {
            id: 0x100,
            subscribe
        }]
    );

    let keepalive = DsoMessage::request(0x101, Tlv::Keepalive(Keepalive::default()))
        .with_additional(unknown_tlv());
    let answer = sent_messages(&pair.server.receive(&encode(keepalive), t));
    assert_eq!(
        answer,
        vec![keepalive_response(0x101, Keepalive::default())]
    );

    let unsubscribe = DsoMessage::unidirectional(Tlv::Unsubscribe {
        subscribe_id: pair.sub_id,
    })
    .with_additional(unknown_tlv());
    assert_eq!(
        events(&pair.server.receive(&encode(unsubscribe), t)),
        vec![Event::Unsubscribed { id: pair.sub_id }]
    );

    let change = a_record("printer.example.", 1);
    let push =
        DsoMessage::unidirectional(Tlv::Push(vec![change.clone()])).with_additional(unknown_tlv());
    assert_eq!(
        events(&pair.client.receive(&encode(push), t)),
        vec![Event::Push(vec![change])]
    );
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

/// §5.4.5: in a response "the unrecognized TLVs MUST be silently ignored and the remainder
/// of the message is interpreted and handled as if the unrecognized parts are not
/// present" — wherever they stand, even before the Keepalive Response Primary TLV.
#[test]
fn unknown_tlvs_in_responses_are_ignored() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let (id, _) = client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    let response = DsoMessage {
        primary: Some(unknown_tlv()),
        ..DsoMessage::response(id, Rcode::NOERROR)
    };
    assert_eq!(
        events(&client.receive(&encode(response), t)),
        vec![Event::Established, Event::Subscribed { id }]
    );

    let granted = Keepalive {
        inactivity_timeout_ms: 30_000,
        keepalive_interval_ms: 60_000,
    };
    for unknown_first in [false, true] {
        let request = sent_messages(&client.keepalive(t).expect("keepalive"));
        let id = request[0].id;
        let response = if unknown_first {
            DsoMessage {
                primary: Some(unknown_tlv()),
                ..DsoMessage::response(id, Rcode::NOERROR)
            }
            .with_additional(Tlv::Keepalive(granted))
        } else {
            keepalive_response(id, granted).with_additional(unknown_tlv())
        };
        let out = client.receive(&encode(response), t);
        assert!(
            !client.is_closed(),
            "unknown first: {unknown_first}: {out:?}"
        );
        assert_eq!(client.timeouts(), granted);
    }
}

/// §5.4.2: a response missing a required TLV, or with more than the specified number, is
/// fatal: a Keepalive response whose only Keepalive TLV follows Encryption Padding (a
/// recognized TLV) has no Response Primary TLV.
#[test]
fn keepalive_response_with_the_keepalive_tlv_not_first_is_fatal() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    client.keepalive(t).expect("keepalive");
    let response = DsoMessage::response(1, Rcode::NOERROR)
        .with_additional(Tlv::EncryptionPadding(vec![0; 4]))
        .with_additional(Tlv::Keepalive(Keepalive::default()));
    assert!(matches!(
        abort_reason(&client.receive(&encode(response), t)),
        AbortReason::KeepaliveResponseTlv { count: 1 }
    ));
}

// ---- §5.1, §5.2, §5.5: establishment, responses, MESSAGE IDs ----------------------------

/// §5.1.1 "MUST NOT return DSOTYPENI for a DSO Keepalive request message"; §5.2 "MUST
/// return an RCODE of NOERROR": whatever timeouts are asked for.
#[test]
fn keepalive_requests_always_get_noerror() {
    let t = Instant::now();
    for (inactivity, interval) in [(0, 0), (u32::MAX, u32::MAX), (1, 9_999), (15_000, 15_000)] {
        let mut server = ServerSession::new(ServerConfig::default(), t);
        let request = DsoMessage::request(
            0x42,
            Tlv::Keepalive(Keepalive {
                inactivity_timeout_ms: inactivity,
                keepalive_interval_ms: interval,
            }),
        );
        let answer = sent_messages(&server.receive(&encode(request), t));
        assert!(
            matches!(
                &answer[..],
                [DsoMessage {
                    id: 0x42,
                    response: true,
                    rcode: Rcode::NOERROR,
                    primary: Some(Tlv::Keepalive(_)),
                    ..
                }]
            ),
            "{answer:?}"
        );
        assert!(server.is_established());
    }
}

/// §5.5: every DSO request "MUST elicit a corresponding response, with the QR bit ... set
/// to one and the MESSAGE ID field set to the value given in the ... request": Keepalive,
/// unknown Primary TLV, malformed request, SUBSCRIBE (answered by the application).
#[test]
fn every_request_gets_a_response_with_its_message_id() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let keepalive = encode(DsoMessage::request(
        0x11,
        Tlv::Keepalive(Keepalive::default()),
    ));
    let unknown = encode(DsoMessage::request(0x12, unknown_tlv()));
    let mut malformed = encode(DsoMessage::request(
        0x13,
        Tlv::Keepalive(Keepalive::default()),
    ));
    malformed[7] = 1; // ANCOUNT
    let no_tlv = vec![0x00, 0x14, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (bytes, id, rcode) in [
        (keepalive, 0x11, Rcode::NOERROR),
        (unknown, 0x12, Rcode::DSOTYPENI),
        (malformed, 0x13, Rcode::FORMERR),
        (no_tlv, 0x14, Rcode::FORMERR),
    ] {
        let answer = sent_messages(&server.receive(&bytes, t));
        assert_eq!(answer.len(), 1, "{answer:?}");
        assert_eq!(
            (answer[0].id, answer[0].response, answer[0].rcode),
            (id, true, rcode)
        );
    }
    let subscribe = DsoMessage::request(
        0x15,
        Tlv::Subscribe(Subscribe {
            name: name("a.example."),
            rtype: RecordType::A,
            class: DNSClass::IN,
        }),
    );
    assert!(sends(&server.receive(&encode(subscribe), t)).is_empty());
    let answer = sent_messages(&server.accept_subscribe(0x15, t).expect("accept"));
    assert_eq!(answer, vec![DsoMessage::response(0x15, Rcode::NOERROR)]);
}

/// §5.5.2: MESSAGE ID namespaces are independent per direction, so a server request
/// reusing the ID of the client's own outstanding request is answered (§5.5: "MUST elicit
/// a corresponding response") and the client's request still completes.
#[test]
fn client_answers_a_server_request_that_reuses_its_own_message_id() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let request = sent_messages(&pair.client.keepalive(t).expect("keepalive"));
    let id = request[0].id;
    let from_server = encode(DsoMessage::request(id, unknown_tlv()));
    assert_eq!(
        sent_messages(&pair.client.receive(&from_server, t)),
        vec![DsoMessage::response(id, Rcode::DSOTYPENI)]
    );
    // The client's own request still completes: its response is matched, not fatal.
    let granted = Keepalive {
        inactivity_timeout_ms: 20_000,
        keepalive_interval_ms: 30_000,
    };
    let out = pair
        .client
        .receive(&encode(keepalive_response(id, granted)), t);
    assert_eq!(out, vec![Action::Deliver(Event::TimeoutsChanged(granted))]);
}

/// §5.5.3: "a client SHOULD NOT automatically close the DSO Session" on an error response,
/// and "SHOULD continue to use that DSO Session for subsequent operations"; the server's
/// refusal leaves the session open ("SHOULD return an error response ... and leave the
/// DSO Session open").
#[test]
fn an_error_response_leaves_the_session_in_use() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let (id, out) = pair
        .client
        .subscribe(name("refused.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    to_server(&mut pair.server, &out, t);
    let refusal = pair
        .server
        .reject_subscribe(id, Rcode::REFUSED, None, t)
        .expect("reject");
    assert!(!pair.server.is_closed());
    let at_client = to_client(&mut pair.client, &refusal, t);
    assert_eq!(
        events(&at_client),
        vec![Event::SubscribeFailed {
            id,
            rcode: Rcode::REFUSED,
            retry_delay: None
        }]
    );
    assert!(!at_client.contains(&Action::Close));
    assert!(!pair.client.is_closed() && pair.client.is_established());
    pair.subscribe("accepted.example.", 2.0);
    assert_eq!(pair.client.subscriptions().count(), 2);
}

/// §5.5.3: for errors likely to affect all operations the server "SHOULD return an error
/// response to the client and then end the DSO Session by sending a Retry Delay message";
/// RFC 8765 §6.2.2: "Clients MUST correctly handle both cases".
#[test]
fn an_error_response_followed_by_retry_delay() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let (id, out) = pair
        .client
        .subscribe(name("busy.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    to_server(&mut pair.server, &out, t);
    let mut out = pair
        .server
        .reject_subscribe(id, Rcode::SERVFAIL, Some(Duration::from_secs(60)), t)
        .expect("reject");
    out.extend(
        pair.server
            .retry_delay(Duration::from_secs(60), Rcode::SERVFAIL, t)
            .expect("retry delay"),
    );
    let at_client = to_client(&mut pair.client, &out, t);
    assert_eq!(
        at_client,
        vec![
            Action::Deliver(Event::SubscribeFailed {
                id,
                rcode: Rcode::SERVFAIL,
                retry_delay: Some(Duration::from_secs(60))
            }),
            Action::Deliver(Event::RetryDelay {
                rcode: Rcode::SERVFAIL,
                delay: Duration::from_secs(60)
            }),
            Action::Close
        ]
    );
}

// ---- §6.1: message order ------------------------------------------------------------------

/// §6.1: "A responder MUST act on messages in the order they are received" and "SHOULD
/// NOT delay sending responses for the purpose of delivering responses in the same order":
/// events come out in arrival order; answers may go out in any order.
#[test]
fn messages_are_handled_in_arrival_order_and_answered_in_any_order() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let (id_a, mut out) = pair
        .client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("a");
    let (id_b, out_b) = pair
        .client
        .subscribe(name("b.example."), RecordType::A, DNSClass::IN, t)
        .expect("b");
    out.extend(out_b);
    out.extend(pair.client.unsubscribe(id_a, t).expect("unsubscribe a"));
    let delivered = events(&to_server(&mut pair.server, &out, t));
    assert!(matches!(
        &delivered[..],
        [
            Event::SubscribeRequest { id: first, .. },
            Event::SubscribeRequest { id: second, .. },
            Event::Unsubscribed { id: third },
        ] if (*first, *second, *third) == (id_a, id_b, id_a)
    ));
    // Answer b first, then a.
    let mut answers = pair.server.accept_subscribe(id_b, t).expect("accept b");
    answers.extend(pair.server.accept_subscribe(id_a, t).expect("accept a"));
    assert_eq!(
        events(&to_client(&mut pair.client, &answers, t)),
        vec![Event::Subscribed { id: id_b }]
    );
    assert!(pair.client.subscription(id_a).is_none());
    assert!(pair.server.subscription(id_a).is_none());
}

// ---- §6.5.2, §7.1, §7.1.1: keepalive ------------------------------------------------------

/// §6.5.2: "it is RECOMMENDED that clients request, and servers grant, a keepalive
/// interval of 60 minutes".
#[test]
fn defaults_request_and_grant_a_60_minute_keepalive_interval() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let request = client.keepalive(t).expect("keepalive");
    assert!(matches!(
        sent_messages(&request)[..],
        [DsoMessage {
            primary: Some(Tlv::Keepalive(Keepalive {
                keepalive_interval_ms: 3_600_000,
                ..
            })),
            ..
        }]
    ));
    let response = to_server(&mut server, &request, t);
    to_client(&mut client, &response, t);
    assert_eq!(client.timeouts().keepalive_interval_ms, 3_600_000);
    assert_eq!(server.timeouts().keepalive_interval_ms, 3_600_000);
}

/// §7.1: "When a client is sending its second and subsequent DSO Keepalive request
/// messages to the server, the client SHOULD continue to request its preferred values".
#[test]
fn client_keeps_requesting_its_preferred_timeouts() {
    let clock = Clock::new();
    let t = clock.at(0.0);
    let preferred = Keepalive {
        inactivity_timeout_ms: 120_000,
        keepalive_interval_ms: 600_000,
    };
    let config = ClientConfig {
        requested: preferred,
        ..ClientConfig::default()
    };
    let mut client = ClientSession::new(config, t);
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let response = to_server(&mut server, &client.keepalive(t).expect("first"), t);
    to_client(&mut client, &response, t);
    assert_ne!(client.timeouts(), preferred, "the server granted less");
    let dictated = server
        .set_timeouts(
            Keepalive {
                inactivity_timeout_ms: 5_000,
                keepalive_interval_ms: 20_000,
            },
            clock.at(1.0),
        )
        .expect("set");
    to_client(&mut client, &dictated, clock.at(1.0));
    // Subscribed, so the lowered inactivity timeout does not close the session.
    let (_, _) = client
        .subscribe(
            name("a.example."),
            RecordType::A,
            DNSClass::IN,
            clock.at(1.0),
        )
        .expect("subscribe");
    for request in [
        client.keepalive(clock.at(2.0)).expect("explicit"),
        client.poll(client.next_deadline().expect("keepalive due")),
    ] {
        assert!(
            matches!(
                sent_messages(&request)[..],
                [DsoMessage { primary: Some(Tlv::Keepalive(asked)), .. }] if asked == preferred
            ),
            "{request:?}"
        );
    }
}

/// §7.1: the server's Keepalive "MUST be sent as a DSO unidirectional message with the
/// MESSAGE ID set to zero"; "The client MUST NOT generate a response to a server-initiated
/// DSO Keepalive message"; its values "the client MUST respect".
#[test]
fn server_keepalive_is_unidirectional_and_unanswered() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let dictated = Keepalive {
        inactivity_timeout_ms: 60_000,
        keepalive_interval_ms: 20_000,
    };
    let out = pair.server.set_timeouts(dictated, t).expect("set");
    assert_eq!(
        sent_messages(&out),
        vec![DsoMessage::unidirectional(Tlv::Keepalive(dictated))]
    );
    let at_client = to_client(&mut pair.client, &out, t);
    assert_eq!(
        at_client,
        vec![Action::Deliver(Event::TimeoutsChanged(dictated))]
    );
    assert_eq!(pair.client.timeouts(), dictated);
    assert_eq!(pair.client.next_deadline(), Some(pair.clock.at(21.0)));
}

/// §7.1: "In DSO Keepalive response messages, exactly one instance of the Keepalive TLV
/// MUST be present"; "A Keepalive TLV MUST NOT be added to other responses as a Response
/// Additional TLV".
#[test]
fn keepalive_tlv_only_in_keepalive_responses() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let mut responses = Vec::new();
    let padded = DsoMessage::request(1, Tlv::Keepalive(Keepalive::default()))
        .with_additional(Tlv::EncryptionPadding(vec![0; 8]));
    responses.extend(sent_messages(&server.receive(&encode(padded), t)));
    let keepalive_count = responses[0]
        .tlvs()
        .filter(|tlv| matches!(tlv, Tlv::Keepalive(_)))
        .count();
    assert_eq!(keepalive_count, 1);
    assert!(matches!(responses[0].primary, Some(Tlv::Keepalive(_))));

    for id in [2, 3, 4] {
        let subscribe = DsoMessage::request(
            id,
            Tlv::Subscribe(Subscribe {
                name: name(&format!("s{id}.example.")),
                rtype: RecordType::A,
                class: DNSClass::IN,
            }),
        );
        server.receive(&encode(subscribe), t);
    }
    responses.extend(sent_messages(
        &server.accept_subscribe(2, t).expect("accept"),
    ));
    let retry = Some(Duration::from_secs(1));
    responses.extend(sent_messages(
        &server
            .reject_subscribe(3, Rcode::SERVFAIL, retry, t)
            .expect("reject"),
    ));
    server.accept_subscribe(4, t).expect("accept");
    responses.extend(sent_messages(
        &server
            .cancel_subscription(4, Rcode::NOTAUTH, retry, t)
            .expect("cancel"),
    ));
    responses.extend(sent_messages(
        &server.receive(&encode(DsoMessage::request(5, unknown_tlv())), t),
    ));
    for response in &responses[1..] {
        assert!(
            response.tlvs().all(|tlv| !matches!(tlv, Tlv::Keepalive(_))),
            "{response:?}"
        );
    }
    assert_eq!(responses.len(), 5);
}

/// §7.1.1: if the inactivity timer already equals the new inactivity timeout "the client
/// MUST immediately begin closing"; if it is still below it, the client "MUST then begin
/// closing" when it gets there.
#[test]
fn lowered_inactivity_timeout_closes_on_time() {
    let clock = Clock::new();
    let t0 = clock.at(0.0);
    let config = ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: 60_000,
            keepalive_interval_ms: 3_600_000,
        },
        ..ClientConfig::default()
    };
    let server_config = ServerConfig {
        max_inactivity_timeout_ms: 60_000,
        ..ServerConfig::default()
    };
    for (dictated_secs, close_at) in [(10.0, 10.0), (25.0, 25.0)] {
        let mut client = ClientSession::new(config, t0);
        let mut server = ServerSession::new(server_config, t0);
        let response = to_server(&mut server, &client.keepalive(t0).expect("ka"), t0);
        to_client(&mut client, &response, t0);
        // Idle for exactly ten seconds when the server lowers the timeout.
        let t10 = clock.at(10.0);
        let lowered = Keepalive {
            inactivity_timeout_ms: (dictated_secs * 1000.0) as u32,
            keepalive_interval_ms: 3_600_000,
        };
        let update = server.set_timeouts(lowered, t10).expect("set");
        to_client(&mut client, &update, t10);
        assert_eq!(client.next_deadline(), Some(clock.at(close_at)));
        if close_at > 10.0 {
            assert!(client.poll(clock.at(close_at - 0.001)).is_empty());
        }
        assert_eq!(client.poll(clock.at(close_at)), vec![Action::Close]);
    }
}

// ---- §6.6, §7.2: Retry Delay ---------------------------------------------------------------

/// §7.2.1: "clients MUST be prepared to accept DSO Retry Delay messages with any RCODE
/// value", and close (§6.6.1: "MUST make note of the reconnect delay ... and then
/// immediately close the connection gracefully").
#[test]
fn client_accepts_retry_delay_with_any_rcode() {
    for rcode in [Rcode::NXDOMAIN, Rcode::new(15).expect("rcode")] {
        let mut pair = established_pair();
        let mut message = DsoMessage::unidirectional(Tlv::RetryDelay { delay_ms: 2_500 });
        message.rcode = rcode;
        assert_eq!(
            pair.client.receive(&encode(message), pair.clock.at(1.0)),
            vec![
                Action::Deliver(Event::RetryDelay {
                    rcode,
                    delay: Duration::from_millis(2_500)
                }),
                Action::Close
            ]
        );
    }
}

/// §6.6.3: a server that never wants the client back "SHOULD set the retry delay to the
/// maximum value 0xFFFFFFFF"; clients "SHOULD NOT attempt to randomize the delay": the
/// client reports exactly what was sent.
#[test]
fn retry_delay_saturates_at_the_maximum_and_is_reported_exactly() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let out = pair
        .server
        .retry_delay(Duration::MAX, Rcode::REFUSED, t)
        .expect("retry delay");
    let mut expected = DsoMessage::unidirectional(Tlv::RetryDelay { delay_ms: u32::MAX });
    expected.rcode = Rcode::REFUSED;
    assert_eq!(sent_messages(&out), vec![expected]);
    assert_eq!(
        events(&to_client(&mut pair.client, &out, t)),
        vec![Event::RetryDelay {
            rcode: Rcode::REFUSED,
            delay: Duration::from_millis(u64::from(u32::MAX))
        }]
    );
}

// ---- §7.3: Encryption Padding ------------------------------------------------------------

/// §7.3: "PADDING bytes of any value MUST be accepted"; the response "MUST also include an
/// Encryption Padding TLV", whose bytes "SHOULD be set to 0x00".
#[test]
fn padding_of_any_value_is_accepted_and_answered_with_zeros() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let request = DsoMessage::request(5, Tlv::Keepalive(Keepalive::default()))
        .with_additional(Tlv::EncryptionPadding(vec![0xa5; 37]));
    let answer = sent_messages(&server.receive(&encode(request), t));
    let [response] = &answer[..] else {
        panic!("one response: {answer:?}")
    };
    assert_eq!(response.rcode, Rcode::NOERROR);
    let padding: Vec<&Vec<u8>> = response
        .tlvs()
        .filter_map(|tlv| match tlv {
            Tlv::EncryptionPadding(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(padding.len(), 1);
    assert!(padding[0].iter().all(|&b| b == 0));
}

/// §7.3: "if a DSO request message is received with an Encryption Padding TLV, then the DSO
/// response MUST also include an Encryption Padding TLV" — also when the request is
/// malformed and the response is FORMERR, at the server and at the client.
#[test]
fn formerr_for_a_padded_request_is_padded() {
    let mut malformed = encode(
        DsoMessage::request(0x21, Tlv::Keepalive(Keepalive::default()))
            .with_additional(Tlv::EncryptionPadding(vec![0; 16])),
    );
    malformed[11] = 1; // ARCOUNT
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    for out in [
        pair.server.receive(&malformed, t),
        pair.client.receive(&malformed, t),
    ] {
        let answer = sent_messages(&out);
        assert_eq!(answer.len(), 1);
        assert_eq!((answer[0].id, answer[0].rcode), (0x21, Rcode::FORMERR));
        assert!(answer[0].has_padding(), "{answer:?}");
    }
    // An unpadded malformed request gets a bare FORMERR.
    let mut bare = encode(DsoMessage::request(
        0x22,
        Tlv::Keepalive(Keepalive::default()),
    ));
    bare[11] = 1;
    assert_eq!(
        sent_messages(&pair.server.receive(&bare, t)),
        vec![DsoMessage::response(0x22, Rcode::FORMERR)]
    );
}

// ---- RFC 8765 §6.2: SUBSCRIBE ------------------------------------------------------------

/// RFC 8765 §6.2.1 "the server MUST echo back the MESSAGE ID value unchanged"; §6.2.2 "A
/// SUBSCRIBE response message MUST NOT include a SUBSCRIBE TLV".
#[test]
fn subscribe_response_echoes_the_id_and_carries_no_subscribe_tlv() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    for (id, accept) in [(0x1234, true), (0xfffe, false)] {
        let subscribe = DsoMessage::request(
            id,
            Tlv::Subscribe(Subscribe {
                name: name(&format!("s{id}.example.")),
                rtype: RecordType::PTR,
                class: DNSClass::IN,
            }),
        );
        server.receive(&encode(subscribe), t);
        let out = if accept {
            server.accept_subscribe(id, t).expect("accept")
        } else {
            server
                .reject_subscribe(id, Rcode::NOTAUTH, None, t)
                .expect("reject")
        };
        let answer = sent_messages(&out);
        assert_eq!(answer.len(), 1);
        assert_eq!((answer[0].id, answer[0].response), (id, true));
        assert!(
            answer[0]
                .tlvs()
                .all(|tlv| !matches!(tlv, Tlv::Subscribe(_)))
        );
    }
}

/// RFC 8765 §6.2.2: "clients MUST be prepared to accept SUBSCRIBE Responses with any other
/// RCODE value".
#[test]
fn client_accepts_subscribe_responses_with_any_rcode() {
    let mut pair = established_pair();
    for (i, value) in [3u8, 6, 12, 15].into_iter().enumerate() {
        let t = pair.clock.at(1.0 + i as f64);
        let rcode = Rcode::new(value).expect("rcode");
        let (id, _) = pair
            .client
            .subscribe(
                name(&format!("r{value}.example.")),
                RecordType::A,
                DNSClass::IN,
                t,
            )
            .expect("subscribe");
        let out = pair
            .client
            .receive(&encode(DsoMessage::response(id, rcode)), t);
        assert_eq!(
            events(&out),
            vec![Event::SubscribeFailed {
                id,
                rcode,
                retry_delay: None
            }]
        );
        assert!(!pair.client.is_closed());
    }
}

// ---- RFC 8765 §6.3: PUSH -----------------------------------------------------------------

/// RFC 8765 §6.3.1 PUSH "MESSAGE ID field MUST be zero"; "A server SHOULD combine multiple
/// change notifications in a single PUSH message when possible, even if those change
/// notifications apply to different subscriptions".
#[test]
fn push_is_unidirectional_and_combines_subscriptions() {
    let mut pair = established_pair();
    pair.subscribe("scanner.example.", 1.0);
    let t = pair.clock.at(2.0);
    let changes = [
        a_record("printer.example.", 1),
        a_record("scanner.example.", 2),
    ];
    let out = pair.server.push(&changes, t).expect("push");
    assert_eq!(
        sent_messages(&out),
        vec![DsoMessage::unidirectional(Tlv::Push(changes.to_vec()))]
    );
}

/// RFC 8765 §6.3.1: a PUSH without change notifications "is a fatal error, and the client
/// MUST forcibly abort"; one over 16,382 bytes too.
#[test]
fn client_aborts_on_empty_or_oversized_push() {
    let empty = [0, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x41, 0, 0];
    let text = "x".repeat(250);
    let change = PushChange::Add {
        name: name("printer.example."),
        class: DNSClass::IN,
        ttl: 60,
        rdata: RData::TXT(TXT::new(vec![text.clone(), text])),
    };
    let big = DsoMessage::request(1, Tlv::Keepalive(Keepalive::default()))
        .with_additional(Tlv::Push(vec![change; 40]));
    // The encoder refuses an oversized PUSH message, so build one from a request carrying
    // the PUSH TLV as an Additional TLV: uncompressed, drop the Keepalive TLV, clear the ID.
    let mut oversized = big
        .encode_with(NameCompression::Uncompressed)
        .expect("encode");
    oversized.drain(12..24);
    oversized[1] = 0;
    assert!(oversized.len() > MAX_PUSH_MESSAGE_LEN);
    for (bytes, too_large) in [(empty.to_vec(), false), (oversized, true)] {
        let mut pair = established_pair();
        let out = pair.client.receive(&bytes, pair.clock.at(1.0));
        let AbortReason::Malformed(error) = abort_reason(&out) else {
            panic!("{out:?}")
        };
        let expected = match error.violation() {
            Violation::EmptyPush => !too_large,
            Violation::PushTooLarge { .. } => too_large,
            _ => false,
        };
        assert!(expected, "{error}");
    }
}

/// RFC 8765 §6.3: "a PUSH message is sent with the QR bit set ... this is a fatal error and
/// the receiver MUST forcibly abort"; §6.4 and §6.5 say the same of UNSUBSCRIBE and
/// RECONFIRM.
#[test]
fn push_unsubscribe_reconfirm_with_qr_set_are_fatal_at_both_ends() {
    let push = Tlv::Push(vec![a_record("printer.example.", 1)]);
    let unsubscribe = Tlv::Unsubscribe { subscribe_id: 1 };
    let reconfirm = Tlv::Reconfirm(dso::Reconfirm {
        name: name("x.example."),
        class: DNSClass::IN,
        rdata: ptr("y.example."),
    });
    for tlv in [push, unsubscribe, reconfirm] {
        let mut bytes = encode(DsoMessage::unidirectional(tlv));
        bytes[1] = 1; // MESSAGE ID 1 …
        bytes[2] |= 0x80; // … and QR=1
        let mut pair = established_pair();
        let t = pair.clock.at(1.0);
        assert!(matches!(
            abort_reason(&pair.client.receive(&bytes, t)),
            AbortReason::Malformed(_)
        ));
        assert!(matches!(
            abort_reason(&pair.server.receive(&bytes, t)),
            AbortReason::Malformed(_)
        ));
    }
}

/// RFC 8765 §6.3.1: a change notification with any other TTL "the receiver SHOULD silently
/// ignore ... The connection is not terminated and other valid change notification records
/// within this PUSH message are processed as usual".
#[test]
fn change_notifications_with_unknown_ttls_are_skipped() {
    let mut pair = established_pair();
    let valid = a_record("printer.example.", 1);
    let odd = PushChange::Ignored {
        name: name("printer.example."),
        rtype: RecordType::A,
        class: DNSClass::IN,
        ttl: 0x8000_0000,
        rdata: vec![192, 0, 2, 9],
    };
    let push = DsoMessage::unidirectional(Tlv::Push(vec![odd.clone(), valid.clone(), odd]));
    assert_eq!(
        events(&pair.client.receive(&encode(push), pair.clock.at(1.0))),
        vec![Event::Push(vec![valid])]
    );
    assert!(!pair.client.is_closed());
}

// ---- RFC 8765 §6.4, §6.5: UNSUBSCRIBE, RECONFIRM -----------------------------------------

/// RFC 8765 §6.4.1 and §6.5.1: UNSUBSCRIBE and RECONFIRM "MESSAGE ID field MUST be zero";
/// UNSUBSCRIBE carries the SUBSCRIBE's MESSAGE ID.
#[test]
fn unsubscribe_and_reconfirm_are_unidirectional() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let reconfirm = pair
        .client
        .reconfirm(name("svc.example."), DNSClass::IN, ptr("gone.example."), t)
        .expect("reconfirm");
    let unsubscribe = pair
        .client
        .unsubscribe(pair.sub_id, t)
        .expect("unsubscribe");
    let messages = sent_messages(&[reconfirm, unsubscribe].concat());
    assert_eq!(messages.len(), 2);
    assert!(
        messages
            .iter()
            .all(|m| m.kind() == MessageKind::Unidirectional)
    );
    assert_eq!(
        messages[1].primary,
        Some(Tlv::Unsubscribe {
            subscribe_id: pair.sub_id
        })
    );
}

// ---- regressions found by the fuzz targets -----------------------------------------------

/// fuzz/dso_session: `next_deadline` panicked with "overflow when adding duration to
/// instant" when the establishment timeout could not be added to the clock. A timeout too
/// long to represent now never expires.
#[test]
fn unrepresentable_establishment_timeout_never_expires() {
    let t = Instant::now();
    let config = ClientConfig {
        establishment_timeout: Duration::MAX,
        ..ClientConfig::default()
    };
    let mut client = ClientSession::new(config, t);
    client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    assert_eq!(client.next_deadline(), None);
    assert!(
        client
            .poll(t + Duration::from_secs(86_400 * 365))
            .is_empty()
    );
    assert!(!client.is_closed());
}
