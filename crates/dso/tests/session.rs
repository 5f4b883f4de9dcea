//! Session state machine scenarios, driven by a fake clock: a client and a server session
//! wired back to back, plus hand-made messages for what a correct peer never sends.

mod common;

use std::time::{Duration, Instant};

use common::{Clock, abort_reason, events, name, ptr, sends, sent_messages, to_client, to_server};
use dso::{
    AbortReason, Action, ClientConfig, ClientSession, DsoMessage, Event, Keepalive,
    MAX_PUSH_MESSAGE_LEN, PushChange, Rcode, Reconfirm, ServerConfig, ServerSession, SessionError,
    Subscribe, Tlv, Violation, decode,
};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{DNSClass, RData, RecordType};

fn a_record(owner: &str, last: u8) -> PushChange {
    PushChange::Add {
        name: name(owner),
        class: DNSClass::IN,
        ttl: 60,
        rdata: RData::A(A::new(192, 0, 2, last)),
    }
}

struct Pair {
    clock: Clock,
    client: ClientSession,
    server: ServerSession,
    sub_id: u16,
}

/// A client and a server with one accepted subscription (`printer.example.` A IN), set up
/// at time 0 with the default 15-second timeouts.
fn established_pair() -> Pair {
    let clock = Clock::new();
    let t = clock.at(0.0);
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let (sub_id, out) = client
        .subscribe(name("printer.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    let delivered = to_server(&mut server, &out, t);
    assert!(matches!(
        events(&delivered)[..],
        [Event::SubscribeRequest { id, .. }] if id == sub_id
    ));
    let response = server.accept_subscribe(sub_id, t).expect("accept");
    let at_client = to_client(&mut client, &response, t);
    assert_eq!(
        events(&at_client),
        vec![Event::Established, Event::Subscribed { id: sub_id }]
    );
    Pair {
        clock,
        client,
        server,
        sub_id,
    }
}

// ---- establishment --------------------------------------------------------------------

#[test]
fn establishment_race_with_pipelined_subscribes() {
    let clock = Clock::new();
    let t = clock.at(0.0);
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let mut server = ServerSession::new(ServerConfig::default(), t);

    // Apple-style: several SUBSCRIBEs at once, no Keepalive first.
    let (id_a, out_a) = client
        .subscribe(name("a.example."), RecordType::PTR, DNSClass::IN, t)
        .expect("a");
    let (id_b, out_b) = client
        .subscribe(name("b.example."), RecordType::PTR, DNSClass::IN, t)
        .expect("b");
    assert_ne!(id_a, id_b);
    // Cancelling before the session exists: no unidirectional message may go out yet.
    assert!(client.unsubscribe(id_a, t).expect("deferred").is_empty());
    assert!(
        client
            .reconfirm(name("a.example."), DNSClass::IN, ptr("x.example."), t)
            .is_err()
    );

    let mut delivered = to_server(&mut server, &out_a, t);
    delivered.extend(to_server(&mut server, &out_b, t));
    assert_eq!(events(&delivered).len(), 2);

    // The server sends nothing unsolicited before its first response.
    let push = [a_record("b.example.", 1)];
    assert!(matches!(
        server.push(&push, t),
        Err(SessionError::NotEstablished)
    ));
    assert!(matches!(
        server.set_timeouts(Keepalive::default(), t),
        Err(SessionError::NotEstablished)
    ));
    assert!(matches!(
        server.retry_delay(Duration::from_secs(1), Rcode::NOERROR, t),
        Err(SessionError::NotEstablished)
    ));
    assert!(!server.is_established());

    let response_a = server.accept_subscribe(id_a, t).expect("accept a");
    assert!(server.is_established());
    let at_client = to_client(&mut client, &response_a, t);
    assert_eq!(events(&at_client), vec![Event::Established]);
    let unsubscribe = sent_messages(&at_client);
    assert_eq!(
        unsubscribe,
        vec![DsoMessage::unidirectional(Tlv::Unsubscribe {
            subscribe_id: id_a
        })],
        "the deferred UNSUBSCRIBE goes out once the session is established"
    );
    assert_eq!(
        events(&to_server(&mut server, &at_client, t)),
        vec![Event::Unsubscribed { id: id_a }]
    );

    let response_b = server.accept_subscribe(id_b, t).expect("accept b");
    assert_eq!(
        events(&to_client(&mut client, &response_b, t)),
        vec![Event::Subscribed { id: id_b }]
    );

    let changes = [
        PushChange::Add {
            name: name("B.Example."), // case-insensitive match
            class: DNSClass::IN,
            ttl: 0,
            rdata: ptr("svc.b.example."),
        },
        PushChange::Add {
            name: name("a.example."),
            class: DNSClass::IN,
            ttl: 0,
            rdata: ptr("svc.a.example."),
        },
    ];
    let pushed = server.push(&changes, t).expect("push");
    assert_eq!(pushed.len(), 1);
    assert_eq!(
        events(&to_client(&mut client, &pushed, t)),
        vec![Event::Push(vec![changes[0].clone()])]
    );
}

#[test]
fn client_unidirectional_before_establishment_is_fatal() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let unsubscribe = DsoMessage::unidirectional(Tlv::Unsubscribe { subscribe_id: 1 })
        .encode()
        .expect("encode");
    let out = server.receive(&unsubscribe, t);
    assert!(matches!(
        abort_reason(&out),
        AbortReason::UnidirectionalBeforeEstablishment { .. }
    ));
    assert!(server.is_closed());
}

#[test]
fn server_message_before_establishment_is_fatal() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    let push = DsoMessage::unidirectional(Tlv::Push(vec![a_record("a.example.", 1)]))
        .encode()
        .expect("encode");
    assert!(matches!(
        abort_reason(&client.receive(&push, t)),
        AbortReason::ServerMessageBeforeEstablishment
    ));
}

#[test]
fn establishment_timeout_after_30_seconds() {
    let clock = Clock::new();
    let mut client = ClientSession::new(ClientConfig::default(), clock.at(0.0));
    client.keepalive(clock.at(0.0)).expect("keepalive");
    assert_eq!(client.next_deadline(), Some(clock.at(30.0)));
    assert!(client.poll(clock.at(29.9)).is_empty());
    assert!(matches!(
        abort_reason(&client.poll(clock.at(30.0))),
        AbortReason::NoResponse { .. }
    ));
}

#[test]
fn error_rcode_without_dso_tlv_means_no_dso() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let (id, _) = client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    let notimp = DsoMessage::response(id, Rcode::NOTIMP)
        .encode()
        .expect("encode");
    let out = client.receive(&notimp, t);
    assert_eq!(
        events(&out),
        vec![
            Event::DsoNotSupported {
                rcode: Rcode::NOTIMP
            },
            Event::SubscribeFailed {
                id,
                rcode: Rcode::NOTIMP,
                retry_delay: None
            }
        ]
    );
    assert!(matches!(
        client.subscribe(name("b.example."), RecordType::A, DNSClass::IN, t),
        Err(SessionError::DsoNotSupported)
    ));
    assert_eq!(client.next_deadline(), None);
}

#[test]
fn busy_servfail_with_retry_delay_is_not_no_dso() {
    // Apple's dnssd-proxy answers the 16th session with SERVFAIL + Retry Delay 300 s.
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let (id, out) = client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    to_server(&mut server, &out, t);
    let refusal = server
        .reject_subscribe(id, Rcode::SERVFAIL, Some(Duration::from_secs(300)), t)
        .expect("reject");
    assert_eq!(
        sent_messages(&refusal),
        vec![
            DsoMessage::response(id, Rcode::SERVFAIL)
                .with_additional(Tlv::RetryDelay { delay_ms: 300_000 })
        ]
    );
    assert_eq!(
        events(&to_client(&mut client, &refusal, t)),
        vec![Event::SubscribeFailed {
            id,
            rcode: Rcode::SERVFAIL,
            retry_delay: Some(Duration::from_secs(300))
        }]
    );
    assert!(!client.is_established());
    assert!(client.keepalive(t).is_ok(), "DSO may still be tried");
}

#[test]
fn dsotypeni_for_unknown_primary_in_a_request() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let request = DsoMessage::request(
        7,
        Tlv::Unknown {
            tlv_type: 0xf800,
            data: vec![1, 2, 3],
        },
    )
    .with_additional(Tlv::EncryptionPadding(vec![0; 5]))
    .encode()
    .expect("encode");
    let out = server.receive(&request, t);
    let [response] = &sends(&out)[..] else {
        panic!("one response expected: {out:?}")
    };
    let msg = decode(response).expect("decode");
    assert_eq!(
        (msg.id, msg.response, msg.rcode),
        (7, true, Rcode::DSOTYPENI)
    );
    assert!(
        msg.tlvs()
            .all(|tlv| matches!(tlv, Tlv::EncryptionPadding(_))),
        "no copy of the unknown TLV, but padding because the request was padded"
    );
    assert!(msg.has_padding());
    assert_eq!(response.len() % 468, 0);
    assert!(!server.is_established(), "DSOTYPENI establishes nothing");

    // The client side: DSOTYPENI to its first SUBSCRIBE leaves DSO usable.
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let (id, _) = client
        .subscribe(name("a.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    let out = client.receive(
        &DsoMessage::response(id, Rcode::DSOTYPENI)
            .encode()
            .expect("encode"),
        t,
    );
    assert!(matches!(
        events(&out)[..],
        [Event::SubscribeFailed {
            rcode: Rcode::DSOTYPENI,
            ..
        }]
    ));
    assert!(client.keepalive(t).is_ok());
}

#[test]
fn client_answers_unknown_server_request_with_dsotypeni() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let request = DsoMessage::request(
        0x4000,
        Tlv::Unknown {
            tlv_type: 0xf801,
            data: vec![],
        },
    )
    .encode()
    .expect("encode");
    let out = pair.client.receive(&request, t);
    assert_eq!(
        sent_messages(&out),
        vec![DsoMessage::response(0x4000, Rcode::DSOTYPENI)]
    );
}

// ---- keepalive negotiation and timers ---------------------------------------------------

#[test]
fn keepalive_negotiation() {
    let clock = Clock::new();
    let t = clock.at(0.0);
    let client_config = ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: 1_800_000,
            keepalive_interval_ms: 7_200_000,
        },
        ..ClientConfig::default()
    };
    let server_config = ServerConfig {
        max_inactivity_timeout_ms: 60_000,
        max_keepalive_interval_ms: 3_600_000,
        ..ServerConfig::default()
    };
    let mut client = ClientSession::new(client_config, t);
    let mut server = ServerSession::new(server_config, t);
    let request = client.keepalive(t).expect("keepalive");
    let response = to_server(&mut server, &request, t);
    let granted = Keepalive {
        inactivity_timeout_ms: 60_000,
        keepalive_interval_ms: 3_600_000,
    };
    assert_eq!(
        sent_messages(&response),
        vec![DsoMessage {
            primary: Some(Tlv::Keepalive(granted)),
            ..DsoMessage::response(1, Rcode::NOERROR)
        }]
    );
    assert!(server.is_established());
    assert_eq!(
        events(&to_client(&mut client, &response, t)),
        vec![Event::Established, Event::TimeoutsChanged(granted)]
    );
    assert_eq!(client.timeouts(), granted);
    assert_eq!(server.timeouts(), granted);

    // A client asking for keepalives every second gets the 10-second floor.
    let eager = ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: 0,
            keepalive_interval_ms: 1000,
        },
        ..ClientConfig::default()
    };
    let mut client = ClientSession::new(eager, t);
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let response = to_server(&mut server, &client.keepalive(t).expect("keepalive"), t);
    to_client(&mut client, &response, t);
    assert_eq!(
        client.timeouts(),
        Keepalive {
            inactivity_timeout_ms: 0,
            keepalive_interval_ms: 10_000
        }
    );
}

#[test]
fn keepalive_interval_under_ten_seconds_is_fatal_for_the_client() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    client.keepalive(t).expect("keepalive");
    let response = DsoMessage {
        primary: Some(Tlv::Keepalive(Keepalive {
            inactivity_timeout_ms: 15_000,
            keepalive_interval_ms: 9_999,
        })),
        ..DsoMessage::response(1, Rcode::NOERROR)
    };
    let out = client.receive(&response.encode().expect("encode"), t);
    assert!(matches!(
        abort_reason(&out),
        AbortReason::KeepaliveIntervalTooShort { interval_ms: 9_999 }
    ));

    // Also when dictated by a unidirectional Keepalive.
    let mut pair = established_pair();
    let short = DsoMessage::unidirectional(Tlv::Keepalive(Keepalive {
        inactivity_timeout_ms: 15_000,
        keepalive_interval_ms: 5_000,
    }));
    let out = pair
        .client
        .receive(&short.encode().expect("encode"), pair.clock.at(1.0));
    assert!(matches!(
        abort_reason(&out),
        AbortReason::KeepaliveIntervalTooShort { .. }
    ));
    assert!(matches!(
        pair.server.set_timeouts(
            Keepalive {
                inactivity_timeout_ms: 1,
                keepalive_interval_ms: 5_000
            },
            pair.clock.at(1.0)
        ),
        Err(SessionError::KeepaliveIntervalTooShort { .. })
    ));
}

#[test]
fn keepalive_response_must_carry_one_keepalive_tlv() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    client.keepalive(t).expect("keepalive");
    let bare = DsoMessage::response(1, Rcode::NOERROR)
        .encode()
        .expect("encode");
    assert!(matches!(
        abort_reason(&client.receive(&bare, t)),
        AbortReason::KeepaliveResponseTlv { count: 0 }
    ));

    let mut client = ClientSession::new(ClientConfig::default(), t);
    client.keepalive(t).expect("keepalive");
    let twice = DsoMessage {
        primary: Some(Tlv::Keepalive(Keepalive::default())),
        ..DsoMessage::response(1, Rcode::NOERROR)
    }
    .with_additional(Tlv::Keepalive(Keepalive::default()));
    assert!(matches!(
        abort_reason(&client.receive(&twice.encode().expect("encode"), t)),
        AbortReason::KeepaliveResponseTlv { count: 2 }
    ));
}

#[test]
fn idle_client_sends_keepalives_then_closes() {
    let clock = Clock::new();
    let t0 = clock.at(0.0);
    let config = ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: 60_000,
            keepalive_interval_ms: 20_000,
        },
        ..ClientConfig::default()
    };
    let server_config = ServerConfig {
        max_inactivity_timeout_ms: 60_000,
        ..ServerConfig::default()
    };
    let mut client = ClientSession::new(config, t0);
    let mut server = ServerSession::new(server_config, t0);
    let response = to_server(&mut server, &client.keepalive(t0).expect("ka"), t0);
    to_client(&mut client, &response, t0);

    // Keepalive traffic resets only the keepalive timer, never the inactivity timer.
    for at in [20.0, 40.0] {
        assert_eq!(client.next_deadline(), Some(clock.at(at)));
        assert!(client.poll(clock.at(at - 0.1)).is_empty());
        let request = client.poll(clock.at(at));
        assert!(matches!(
            sent_messages(&request)[..],
            [DsoMessage {
                primary: Some(Tlv::Keepalive(_)),
                ..
            }]
        ));
        let response = to_server(&mut server, &request, clock.at(at));
        assert!(
            events(&to_client(&mut client, &response, clock.at(at)))
                .iter()
                .all(|e| matches!(e, Event::TimeoutsChanged(_)))
        );
    }
    assert_eq!(client.next_deadline(), Some(clock.at(60.0)));
    assert_eq!(client.poll(clock.at(60.0)), vec![Action::Close]);
    assert!(client.is_closed());
}

#[test]
fn subscribed_client_is_exempt_from_inactivity_not_keepalive() {
    let mut pair = established_pair();
    // Default timeouts: 15 s inactivity, 15 s keepalive; the subscription keeps it open.
    assert_eq!(pair.client.next_deadline(), Some(pair.clock.at(15.0)));
    let out = pair.client.poll(pair.clock.at(15.0));
    assert!(matches!(
        sent_messages(&out)[..],
        [DsoMessage {
            primary: Some(Tlv::Keepalive(_)),
            ..
        }]
    ));
    assert!(!pair.client.is_closed());

    // After UNSUBSCRIBE (t = 20), the inactivity timeout runs from that activity.
    let t = pair.clock.at(20.0);
    pair.client
        .unsubscribe(pair.sub_id, t)
        .expect("unsubscribe");
    // The keepalive request sent at 15 s is still unanswered; it does not count as an operation.
    assert_eq!(pair.client.next_deadline(), Some(pair.clock.at(35.0)));
    assert_eq!(pair.client.poll(pair.clock.at(35.0)), vec![Action::Close]);
}

#[test]
fn server_aborts_idle_client_after_twice_the_inactivity_timeout() {
    let clock = Clock::new();
    let t0 = clock.at(0.0);
    let config = ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: 10_000,
            keepalive_interval_ms: 3_600_000,
        },
        ..ClientConfig::default()
    };
    let mut client = ClientSession::new(config, t0);
    let mut server = ServerSession::new(ServerConfig::default(), t0);
    to_server(&mut server, &client.keepalive(t0).expect("ka"), t0);
    assert_eq!(server.next_deadline(), Some(clock.at(20.0)));
    assert!(server.poll(clock.at(19.9)).is_empty());
    assert!(matches!(
        abort_reason(&server.poll(clock.at(20.0))),
        AbortReason::Inactive { .. }
    ));

    // Inactivity timeout 0: five seconds, not zero.
    let zero = ClientConfig {
        requested: Keepalive {
            inactivity_timeout_ms: 0,
            keepalive_interval_ms: 3_600_000,
        },
        ..ClientConfig::default()
    };
    let mut client = ClientSession::new(zero, t0);
    let mut server = ServerSession::new(ServerConfig::default(), t0);
    to_server(&mut server, &client.keepalive(t0).expect("ka"), t0);
    assert_eq!(server.next_deadline(), Some(clock.at(5.0)));
}

#[test]
fn subscribed_server_session_is_exempt_from_inactivity_not_keepalive() {
    let mut pair = established_pair();
    // Default keepalive interval 15 s: abort after 30 s of silence, subscriptions or not.
    assert_eq!(pair.server.next_deadline(), Some(pair.clock.at(30.0)));
    assert!(pair.server.poll(pair.clock.at(29.9)).is_empty());
    assert!(matches!(
        abort_reason(&pair.server.poll(pair.clock.at(30.0))),
        AbortReason::KeepaliveMissed { .. }
    ));

    // With the client's keepalives the subscribed session lives on far past 2 × inactivity.
    let mut pair = established_pair();
    let mut now = 0.0;
    while now < 120.0 {
        now += 15.0;
        let t = pair.clock.at(now);
        assert!(pair.server.poll(t).is_empty(), "server aborted at {now}");
        let request = pair.client.poll(t);
        let response = to_server(&mut pair.server, &request, t);
        to_client(&mut pair.client, &response, t);
    }
    assert!(!pair.server.is_closed() && !pair.client.is_closed());
}

#[test]
fn lowering_the_inactivity_timeout_gives_a_grace_period() {
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
    let mut client = ClientSession::new(config, t0);
    let mut server = ServerSession::new(server_config, t0);
    let response = to_server(&mut server, &client.keepalive(t0).expect("ka"), t0);
    to_client(&mut client, &response, t0);

    // At 50 s the server lowers the inactivity timeout to 10 s: the client has been idle
    // for more than 2 × 10 s already, so it gets max(5 s, 10 s / 4) = 5 s of grace.
    let t50 = clock.at(50.0);
    let lowered = Keepalive {
        inactivity_timeout_ms: 10_000,
        keepalive_interval_ms: 3_600_000,
    };
    let update = server.set_timeouts(lowered, t50).expect("set");
    assert_eq!(server.next_deadline(), Some(clock.at(55.0)));
    assert!(server.poll(clock.at(54.9)).is_empty());

    // The client learns it is overdue and closes at once.
    assert_eq!(
        events(&to_client(&mut client, &update, t50)),
        vec![Event::TimeoutsChanged(lowered)]
    );
    assert!(client.next_deadline().is_some_and(|d| d <= t50));
    assert_eq!(client.poll(t50), vec![Action::Close]);
    assert!(matches!(
        abort_reason(&server.poll(clock.at(55.0))),
        AbortReason::Inactive { .. }
    ));
}

// ---- retry delay --------------------------------------------------------------------------

#[test]
fn retry_delay_client_closes_server_aborts_five_seconds_later() {
    let mut pair = established_pair();
    let t = pair.clock.at(2.0);
    let out = pair
        .server
        .retry_delay(Duration::from_secs(60), Rcode::SERVFAIL, t)
        .expect("retry delay");
    let mut expected = DsoMessage::unidirectional(Tlv::RetryDelay { delay_ms: 60_000 });
    expected.rcode = Rcode::SERVFAIL;
    assert_eq!(sent_messages(&out), vec![expected]);

    // Nothing more may be sent; in-flight requests are ignored silently.
    assert!(matches!(
        pair.server.push(&[a_record("printer.example.", 1)], t),
        Err(SessionError::ShuttingDown)
    ));
    let late = pair.client.keepalive(t).expect("keepalive");
    assert!(to_server(&mut pair.server, &late, t).is_empty());
    assert_eq!(pair.server.next_deadline(), Some(pair.clock.at(7.0)));
    assert!(pair.server.poll(pair.clock.at(6.9)).is_empty());

    let at_client = to_client(&mut pair.client, &out, t);
    assert_eq!(
        at_client,
        vec![
            Action::Deliver(Event::RetryDelay {
                rcode: Rcode::SERVFAIL,
                delay: Duration::from_secs(60)
            }),
            Action::Close
        ]
    );
    assert!(pair.client.is_closed());
    assert!(matches!(
        pair.client
            .subscribe(name("x."), RecordType::A, DNSClass::IN, t),
        Err(SessionError::Closed)
    ));

    assert!(matches!(
        abort_reason(&pair.server.poll(pair.clock.at(7.0))),
        AbortReason::RetryDelayIgnored { .. }
    ));
}

// ---- subscriptions, IDs and PUSH -----------------------------------------------------------

#[test]
fn duplicate_subscriptions() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    // The client API refuses a duplicate, case-insensitively.
    assert!(matches!(
        pair.client
            .subscribe(name("PRINTER.example."), RecordType::A, DNSClass::IN, t),
        Err(SessionError::DuplicateSubscription { id }) if id == pair.sub_id
    ));
    // A different type is fine.
    assert!(
        pair.client
            .subscribe(name("printer.example."), RecordType::AAAA, DNSClass::IN, t)
            .is_ok()
    );

    // A client that sends one anyway is aborted by the server (RFC 8765 §6.2.1).
    let dup = DsoMessage::request(
        0x7777,
        Tlv::Subscribe(Subscribe {
            name: name("Printer.EXAMPLE."),
            rtype: RecordType::A,
            class: DNSClass::IN,
        }),
    );
    let out = pair.server.receive(&dup.encode().expect("encode"), t);
    assert!(matches!(
        abort_reason(&out),
        AbortReason::DuplicateSubscription { .. }
    ));
}

#[test]
fn subscription_ids_stay_in_use() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    // Reusing the ID of a live subscription is fatal at the server: a response with that
    // ID would read as a cancellation of the subscription (RFC 8490 §5.6).
    let reuse = DsoMessage::request(
        pair.sub_id,
        Tlv::Subscribe(Subscribe {
            name: name("other.example."),
            rtype: RecordType::A,
            class: DNSClass::IN,
        }),
    );
    assert!(matches!(
        abort_reason(&pair.server.receive(&reuse.encode().expect("encode"), t)),
        AbortReason::MessageIdInUse { .. }
    ));

    // Reusing the ID of a request still awaiting its response is fatal too.
    let mut pair = established_pair();
    let (pending, out) = pair
        .client
        .subscribe(name("other.example."), RecordType::A, DNSClass::IN, t)
        .expect("subscribe");
    to_server(&mut pair.server, &out, t);
    let again = DsoMessage::request(pending, Tlv::Keepalive(Keepalive::default()));
    assert!(matches!(
        abort_reason(&pair.server.receive(&again.encode().expect("encode"), t)),
        AbortReason::MessageIdInUse { id } if *id == pending
    ));
}

#[test]
fn client_ids_skip_live_subscriptions() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let mut used = std::collections::HashSet::new();
    // Cycle through the whole ID space with answered keepalives: the subscription's ID
    // must never be handed out again.
    for _ in 0..u16::MAX {
        let out = pair.client.keepalive(t).expect("keepalive");
        let msg = &sent_messages(&out)[0];
        assert_ne!(msg.id, pair.sub_id);
        assert_ne!(msg.id, 0);
        used.insert(msg.id);
        let response = DsoMessage {
            primary: Some(Tlv::Keepalive(Keepalive::default())),
            ..DsoMessage::response(msg.id, Rcode::NOERROR)
        };
        pair.client.receive(&response.encode().expect("encode"), t);
    }
    assert_eq!(used.len(), usize::from(u16::MAX) - 1);
}

#[test]
fn unknown_response_id_is_fatal() {
    let mut pair = established_pair();
    let stray = DsoMessage::response(0x5555, Rcode::NOERROR)
        .encode()
        .expect("encode");
    assert!(matches!(
        abort_reason(&pair.client.receive(&stray, pair.clock.at(1.0))),
        AbortReason::UnknownResponseId { id: 0x5555 }
    ));
}

#[test]
fn server_cancels_a_subscription() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let out = pair
        .server
        .cancel_subscription(pair.sub_id, Rcode::NOTAUTH, None, t)
        .expect("cancel");
    assert_eq!(
        events(&to_client(&mut pair.client, &out, t)),
        vec![Event::SubscriptionCancelled {
            id: pair.sub_id,
            rcode: Rcode::NOTAUTH,
            retry_delay: None
        }]
    );
    assert!(pair.client.subscription(pair.sub_id).is_none());
    assert!(pair.server.subscriptions().next().is_none());
    // Nothing left to push to.
    assert!(
        pair.server
            .push(&[a_record("printer.example.", 1)], t)
            .expect("push")
            .is_empty()
    );
}

#[test]
fn pushes_for_cancelled_subscriptions_are_ignored() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let push = pair
        .server
        .push(&[a_record("printer.example.", 9)], t)
        .expect("push");
    // The client unsubscribes while that PUSH is in flight.
    let unsubscribe = pair
        .client
        .unsubscribe(pair.sub_id, t)
        .expect("unsubscribe");
    assert!(to_client(&mut pair.client, &push, t).is_empty());
    assert!(!pair.client.is_closed());
    assert_eq!(
        events(&to_server(&mut pair.server, &unsubscribe, t)),
        vec![Event::Unsubscribed { id: pair.sub_id }]
    );
    // An UNSUBSCRIBE matching nothing is ignored (RFC 8765 §6.4.1).
    assert!(to_server(&mut pair.server, &unsubscribe, t).is_empty());
    assert!(!pair.server.is_closed());
}

#[test]
fn push_filters_matches_and_splits() {
    let mut pair = established_pair(); // printer.example. A IN
    let t = pair.clock.at(1.0);
    for (owner, rtype, class) in [
        ("printer.example.", RecordType::ANY, DNSClass::IN),
        ("txt.example.", RecordType::TXT, DNSClass::ANY),
    ] {
        let (id, out) = pair
            .client
            .subscribe(name(owner), rtype, class, t)
            .expect("subscribe");
        to_server(&mut pair.server, &out, t);
        let response = pair.server.accept_subscribe(id, t).expect("accept");
        to_client(&mut pair.client, &response, t);
    }

    let txt = PushChange::Add {
        name: name("txt.example."),
        class: DNSClass::CH,
        ttl: 5,
        rdata: RData::TXT(TXT::new(vec!["hello".into()])),
    };
    let mut changes = vec![
        a_record("printer.example.", 1), // matches two subscriptions: sent once
        a_record("elsewhere.example.", 2),
        txt.clone(),
        PushChange::RemoveRrset {
            name: name("txt.example."),
            rtype: RecordType::MX,
            class: DNSClass::IN,
        },
        PushChange::RemoveAllTypes {
            name: name("printer.example."),
            class: DNSClass::CH,
        },
        PushChange::RemoveName {
            name: name("txt.example."),
        },
    ];
    changes.extend((0..800).map(|i| a_record("printer.example.", (i % 200) as u8)));
    let out = pair.server.push(&changes, t).expect("push");
    let messages = sends(&out);
    assert!(messages.len() > 1);
    assert!(messages.iter().all(|m| m.len() <= MAX_PUSH_MESSAGE_LEN));

    let delivered: Vec<PushChange> = events(&to_client(&mut pair.client, &out, t))
        .into_iter()
        .flat_map(|e| match e {
            Event::Push(changes) => changes,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    // Left out: 1 (elsewhere.example.: no subscription), 3 (txt.example. is subscribed for
    // TXT only, not MX), 4 (printer.example. is subscribed in class IN, not CH).
    let expected: Vec<PushChange> = changes
        .iter()
        .enumerate()
        .filter(|(i, _)| ![1, 3, 4].contains(i))
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(delivered.len(), expected.len());
    assert!(delivered == expected, "wrong changes delivered");
}

#[test]
fn legacy_unsubscribe_by_name_type_class() {
    // Apple's mDNSResponder client sends UNSUBSCRIBE with NAME/TYPE/CLASS (pre-RFC form).
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let legacy = unidirectional(Tlv::LegacyUnsubscribe(Subscribe {
        name: name("PRINTER.example."),
        rtype: RecordType::A,
        class: DNSClass::IN,
    }));
    assert_eq!(
        pair.server.receive(&legacy, t),
        vec![Action::Deliver(Event::Unsubscribed { id: pair.sub_id })]
    );
    assert!(
        pair.server.receive(&legacy, t).is_empty(),
        "no longer matches anything"
    );
    assert!(!pair.server.is_closed());
    // A server sending one is as wrong as a server sending an UNSUBSCRIBE.
    assert!(matches!(
        abort_reason(&pair.client.receive(&legacy, t)),
        AbortReason::UnsubscribeFromServer
    ));
}

#[test]
fn subscribe_tlv_in_a_subscribe_response_is_ignored() {
    let t = Instant::now();
    let mut client = ClientSession::new(ClientConfig::default(), t);
    let subscribe = Subscribe {
        name: name("a.example."),
        rtype: RecordType::A,
        class: DNSClass::IN,
    };
    let (id, _) = client
        .subscribe(subscribe.name.clone(), subscribe.rtype, subscribe.class, t)
        .expect("subscribe");
    let response = DsoMessage {
        primary: Some(Tlv::Subscribe(subscribe)),
        ..DsoMessage::response(id, Rcode::NOERROR)
    };
    assert_eq!(
        events(&client.receive(&response.encode().expect("encode"), t)),
        vec![Event::Established, Event::Subscribed { id }]
    );
}

#[test]
fn reconfirm_reaches_the_server_application() {
    let mut pair = established_pair();
    let t = pair.clock.at(1.0);
    let out = pair
        .client
        .reconfirm(name("svc.example."), DNSClass::IN, ptr("gone.example."), t)
        .expect("reconfirm");
    assert_eq!(
        events(&to_server(&mut pair.server, &out, t)),
        vec![Event::Reconfirm(Reconfirm {
            name: name("svc.example."),
            class: DNSClass::IN,
            rdata: ptr("gone.example."),
        })]
    );
}

// ---- fatal errors by role ----------------------------------------------------------------

/// A message and a check on the abort reason it must cause.
type FatalCase = (Vec<u8>, fn(&AbortReason) -> bool);

fn unidirectional(tlv: Tlv) -> Vec<u8> {
    DsoMessage::unidirectional(tlv).encode().expect("encode")
}

#[test]
fn fatal_messages_from_a_client() {
    let cases: Vec<FatalCase> = vec![
        (
            unidirectional(Tlv::Push(vec![a_record("printer.example.", 1)])),
            |r| matches!(r, AbortReason::PushFromClient),
        ),
        (unidirectional(Tlv::RetryDelay { delay_ms: 1 }), |r| {
            matches!(r, AbortReason::RetryDelayFromClient)
        }),
        (unidirectional(Tlv::Keepalive(Keepalive::default())), |r| {
            matches!(r, AbortReason::UnidirectionalKeepaliveFromClient)
        }),
        (
            unidirectional(Tlv::Unknown {
                tlv_type: 0xf800,
                data: vec![],
            }),
            |r| matches!(r, AbortReason::UnknownUnidirectional { tlv_type: 0xf800 }),
        ),
        (
            // A client's "SUBSCRIBE response": this server never sends requests.
            DsoMessage::response(3, Rcode::NOERROR)
                .encode()
                .expect("encode"),
            |r| matches!(r, AbortReason::UnknownResponseId { id: 3 }),
        ),
        (
            vec![0, 0, 0xb0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // QR=1, ID 0
            |r| matches!(r, AbortReason::Malformed(e) if matches!(e.violation(), Violation::ResponseIdZero)),
        ),
    ];
    for (bytes, expected) in cases {
        let mut pair = established_pair();
        let out = pair.server.receive(&bytes, pair.clock.at(1.0));
        let reason = abort_reason(&out);
        assert!(expected(reason), "unexpected reason {reason}");
        assert!(pair.server.is_closed());
        assert!(pair.server.receive(&bytes, pair.clock.at(1.0)).is_empty());
    }
}

#[test]
fn fatal_messages_from_a_server() {
    let subscribe = Subscribe {
        name: name("x.example."),
        rtype: RecordType::A,
        class: DNSClass::IN,
    };
    let mut type_any = DsoMessage::unidirectional(Tlv::Push(vec![a_record("printer.example.", 1)]))
        .encode_with(dso::NameCompression::Uncompressed)
        .expect("encode");
    let type_at = 16 + name("printer.example.").len() + 2; // low byte of TYPE
    type_any[type_at] = 0xff;
    let cases: Vec<FatalCase> = vec![
        (
            DsoMessage::request(0x100, Tlv::Subscribe(subscribe))
                .encode()
                .expect("encode"),
            |r| matches!(r, AbortReason::SubscribeFromServer),
        ),
        (unidirectional(Tlv::Unsubscribe { subscribe_id: 1 }), |r| {
            matches!(r, AbortReason::UnsubscribeFromServer)
        }),
        (
            unidirectional(Tlv::Reconfirm(Reconfirm {
                name: name("x.example."),
                class: DNSClass::IN,
                rdata: ptr("y.example."),
            })),
            |r| matches!(r, AbortReason::ReconfirmFromServer),
        ),
        (
            DsoMessage::request(0x101, Tlv::Keepalive(Keepalive::default()))
                .encode()
                .expect("encode"),
            |r| matches!(r, AbortReason::KeepaliveRequestFromServer),
        ),
        (
            type_any,
            |r| matches!(r, AbortReason::Malformed(e) if matches!(e.violation(), Violation::AnyInPushRecord { .. })),
        ),
    ];
    for (bytes, expected) in cases {
        let mut pair = established_pair();
        let out = pair.client.receive(&bytes, pair.clock.at(1.0));
        let reason = abort_reason(&out);
        assert!(expected(reason), "unexpected reason {reason}");
        assert!(pair.client.is_closed());
    }
}

// ---- other messages ------------------------------------------------------------------------

#[test]
fn malformed_request_gets_formerr_and_the_session_lives_on() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let mut bad = DsoMessage::request(0x31, Tlv::Keepalive(Keepalive::default()))
        .encode()
        .expect("encode");
    bad[11] = 1; // ARCOUNT
    let out = server.receive(&bad, t);
    assert_eq!(
        sent_messages(&out),
        vec![DsoMessage::response(0x31, Rcode::FORMERR)]
    );
    assert!(!server.is_closed() && !server.is_established());
    let good = DsoMessage::request(0x32, Tlv::Keepalive(Keepalive::default()))
        .encode()
        .expect("encode");
    assert_eq!(
        sent_messages(&server.receive(&good, t))[0].rcode,
        Rcode::NOERROR
    );
}

#[test]
fn padded_requests_get_padded_responses() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    let request = DsoMessage::request(9, Tlv::Keepalive(Keepalive::default()))
        .with_additional(Tlv::EncryptionPadding(vec![0; 100]))
        .encode()
        .expect("encode");
    let out = server.receive(&request, t);
    let [response] = &sends(&out)[..] else {
        panic!("one response")
    };
    assert_eq!(response.len(), 468);
    let msg = decode(response).expect("decode");
    assert!(matches!(msg.primary, Some(Tlv::Keepalive(_))));
    assert!(msg.has_padding());
}

#[test]
fn non_dso_messages_are_delivered() {
    let t = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), t);
    // A standard query: OPCODE 0, QDCOUNT 1, question "." NS IN.
    let query = vec![
        0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1,
    ];
    assert_eq!(
        server.receive(&query, t),
        vec![Action::Deliver(Event::NonDso(query.clone()))]
    );
    assert!(!server.is_closed());
}
