//! NOTIFY listener tests: hand-built requests against the responder, the confirmation
//! schedule on a fake clock, and the listener on loopback against a scripted SOA server.

use std::sync::atomic::AtomicU32;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{RData, TSigVerifier};

use super::*;
use crate::signal::Observation;

/// Seconds since the epoch that the responder takes as "now".
const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"a shared secret of thirty-two by";

fn local() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn zones() -> Vec<String> {
    vec!["a.test.".to_string(), "b.test.".to_string()]
}

fn key_named(name: &str, algorithm: TsigAlgorithm, secret: &[u8]) -> TSigner {
    TSigner::new(
        secret.to_vec(),
        algorithm,
        Name::from_ascii(name).unwrap(),
        300,
    )
    .unwrap()
}

fn key() -> TSigner {
    key_named("notify-key.", TsigAlgorithm::HmacSha256, SECRET)
}

fn responder(key: Option<TSigner>, require_tsig: bool) -> NotifyResponder {
    NotifyResponder::new(&zones(), AddressPrefix::loopback(), key, require_tsig)
}

/// A NOTIFY as Knot sends it: opcode NOTIFY, AA, one SOA question.
fn notify(id: u16, zone: &str) -> Message {
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(
        Name::from_ascii(zone).unwrap(),
        RecordType::SOA,
    ));
    message
}

fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().unwrap()
}

/// The message signed with `key` at `time`, and the verifier of its answer.
fn signed(mut message: Message, key: &TSigner, time: u64) -> (Vec<u8>, TSigVerifier) {
    let verifier = message.finalize(key, time).unwrap().unwrap();
    (bytes(&message), verifier)
}

fn reply_of(answer: &NotifyAnswer) -> Message {
    let reply = answer.reply.as_ref().expect("an answer");
    Message::from_vec(reply).expect("the answer parses")
}

/// Asserts the outcome and the answer's rcode; returns the answer.
fn expect(answer: &NotifyAnswer, outcome: NotifyOutcome, rcode: ResponseCode) -> Message {
    assert_eq!(answer.outcome, outcome, "{answer:?}");
    let reply = reply_of(answer);
    assert_eq!(reply.metadata.response_code, rcode, "{reply:?}");
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    reply
}

#[test]
fn an_accepted_notify_is_answered_noerror_with_aa_and_the_question() {
    let request = notify(4711, "a.test.");
    let answer = responder(None, false).respond(&bytes(&request), local(), NOW);
    let reply = expect(&answer, NotifyOutcome::Accepted, ResponseCode::NoError);
    assert_eq!(answer.zone.as_deref(), Some("a.test."));
    assert_eq!(reply.metadata.id, 4711);
    assert_eq!(reply.metadata.op_code, OpCode::Notify);
    assert!(reply.metadata.authoritative);
    assert_eq!(reply.queries, request.queries);
    assert!(reply.answers.is_empty() && reply.signature.is_none() && reply.edns.is_none());
}

#[test]
fn zone_names_match_in_any_case() {
    let answer = responder(None, false).respond(&bytes(&notify(1, "B.Test.")), local(), NOW);
    expect(&answer, NotifyOutcome::Accepted, ResponseCode::NoError);
    assert_eq!(answer.zone.as_deref(), Some("b.test."));
}

#[test]
fn other_opcodes_are_not_implemented() {
    for opcode in [
        OpCode::Query,
        OpCode::Update,
        OpCode::Status,
        OpCode::Unknown(9),
    ] {
        let mut request = notify(7, "a.test.");
        request.metadata.op_code = opcode;
        let answer = responder(None, false).respond(&bytes(&request), local(), NOW);
        let reply = expect(&answer, NotifyOutcome::NotImplemented, ResponseCode::NotImp);
        assert_eq!(reply.metadata.op_code, opcode);
        assert_eq!(reply.metadata.id, 7);
    }
}

#[test]
fn a_notify_needs_exactly_one_soa_question_of_class_in() {
    let responder = responder(None, false);
    let none = Message::new(1, MessageType::Query, OpCode::Notify);
    let mut two = notify(2, "a.test.");
    two.add_query(Query::query(
        Name::from_ascii("b.test.").unwrap(),
        RecordType::SOA,
    ));
    let mut not_soa = notify(3, "a.test.");
    not_soa.queries[0].query_type = RecordType::A;
    let mut chaos = notify(4, "a.test.");
    chaos.queries[0].query_class = DNSClass::CH;
    for request in [none, two, not_soa, chaos] {
        let answer = responder.respond(&bytes(&request), local(), NOW);
        let reply = expect(&answer, NotifyOutcome::Malformed, ResponseCode::FormErr);
        assert_eq!(reply.metadata.id, request.metadata.id);
        assert_eq!(reply.queries, request.queries, "the questions are echoed");
    }
}

#[test]
fn responses_and_garbage_get_no_answer() {
    let responder = responder(None, false);
    let mut response = notify(5, "a.test.");
    response.metadata.message_type = MessageType::Response;
    let answer = responder.respond(&bytes(&response), local(), NOW);
    assert_eq!(answer, silent(NotifyOutcome::Response));
    for garbage in [
        &b""[..],
        b"\x00",
        b"not dns",
        b"\xde\xad\xbe\xef\x00\x01\x02\x03\x04\x05\x06",
    ] {
        let answer = responder.respond(garbage, local(), NOW);
        assert_eq!(answer, silent(NotifyOutcome::Unreadable), "{garbage:?}");
    }
}

#[test]
fn a_readable_header_with_a_broken_body_is_formerr() {
    let mut request = bytes(&notify(0xbeef, "a.test."));
    request.truncate(16);
    let answer = responder(None, false).respond(&request, local(), NOW);
    let reply = expect(&answer, NotifyOutcome::Malformed, ResponseCode::FormErr);
    assert_eq!(reply.metadata.id, 0xbeef);
    assert_eq!(reply.metadata.op_code, OpCode::Notify);
    assert!(reply.queries.is_empty());
}

#[test]
fn addresses_outside_the_acl_are_refused_even_when_signed() {
    let responder = responder(Some(key()), true);
    let (request, _) = signed(notify(9, "a.test."), &key(), NOW);
    for from in ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1"] {
        let answer = responder.respond(&request, from.parse().unwrap(), NOW);
        let reply = expect(&answer, NotifyOutcome::NotAllowed, ResponseCode::Refused);
        assert!(reply.signature.is_none());
        assert!(!reply.metadata.authoritative);
    }
    let mapped = "::ffff:127.0.0.1".parse().unwrap();
    let answer = responder.respond(&request, mapped, NOW);
    assert_eq!(answer.outcome, NotifyOutcome::Accepted);
}

#[test]
fn zones_the_server_does_not_have_are_refused() {
    let responder = responder(None, false);
    for zone in ["c.test.", "test.", "x.a.test.", "."] {
        let answer = responder.respond(&bytes(&notify(1, zone)), local(), NOW);
        expect(&answer, NotifyOutcome::UnknownZone, ResponseCode::Refused);
    }
}

#[test]
fn an_unsigned_notify_is_notauth_when_tsig_is_required() {
    let answer = responder(Some(key()), true).respond(&bytes(&notify(1, "a.test.")), local(), NOW);
    let reply = expect(&answer, NotifyOutcome::TsigMissing, ResponseCode::NotAuth);
    assert!(reply.signature.is_none(), "nothing to sign with");
}

/// The TSIG error of an answer, and whether it carries a MAC.
fn tsig_error(reply: &Message) -> (Option<TsigError>, bool) {
    let tsig = &reply.signature.as_ref().expect("a TSIG record").data;
    (tsig.error, !tsig.mac.is_empty())
}

#[test]
fn a_wrong_mac_is_notauth_badsig_unsigned() {
    let forger = key_named("notify-key.", TsigAlgorithm::HmacSha256, b"another secret");
    let (request, _) = signed(notify(1, "a.test."), &forger, NOW);
    let answer = responder(Some(key()), true).respond(&request, local(), NOW);
    let reply = expect(
        &answer,
        NotifyOutcome::TsigBadSignature,
        ResponseCode::NotAuth,
    );
    assert_eq!(tsig_error(&reply), (Some(TsigError::BadSig), false));
}

#[test]
fn a_signed_notify_changed_on_the_way_is_badsig() {
    let (mut request, _) = signed(notify(1, "a.test."), &key(), NOW);
    let at = request
        .windows(7)
        .position(|w| w == b"\x01a\x04test")
        .unwrap();
    request[at + 1] = b'b';
    let answer = responder(Some(key()), true).respond(&request, local(), NOW);
    let reply = expect(
        &answer,
        NotifyOutcome::TsigBadSignature,
        ResponseCode::NotAuth,
    );
    assert_eq!(reply.queries[0].name, Name::from_ascii("b.test.").unwrap());
}

#[test]
fn keys_we_do_not_have_are_notauth_badkey() {
    let other_name = key_named("other-key.", TsigAlgorithm::HmacSha256, SECRET);
    let other_algorithm = key_named("notify-key.", TsigAlgorithm::HmacSha512, SECRET);
    for (configured, signer) in [
        (Some(key()), other_name),
        (Some(key()), other_algorithm),
        (None, key()),
    ] {
        let (request, _) = signed(notify(1, "a.test."), &signer, NOW);
        let answer = responder(configured, false).respond(&request, local(), NOW);
        let reply = expect(&answer, NotifyOutcome::TsigBadKey, ResponseCode::NotAuth);
        assert_eq!(tsig_error(&reply), (Some(TsigError::BadKey), false));
        let record = reply.signature.as_ref().unwrap();
        assert_eq!(record.name, *signer.signer_name(), "the key name is echoed");
    }
}

#[test]
fn a_good_hmac_sha256_notify_is_accepted_with_a_signed_answer() {
    let (request, mut verifier) = signed(notify(77, "a.test."), &key(), NOW - 20);
    let answer = responder(Some(key()), true).respond(&request, local(), NOW);
    let reply = expect(&answer, NotifyOutcome::Accepted, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(tsig_error(&reply), (None, true));
    verifier
        .verify(answer.reply.as_ref().unwrap())
        .expect("the answer is signed over the request's MAC");
}

/// Bytes from hex.
fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).unwrap())
        .collect()
}

#[test]
fn notifies_signed_by_ldns_notify_and_named_are_accepted() {
    // As received from `ldns-notify -z a.test -y notify-key:<secret>:hmac-sha256|512` and
    // from named 9.18 with `also-notify { ... key "notify-key"; }` and hmac-sha384 (with
    // the SOA in the answer section); fuzz/corpus/notify_in keeps them too.
    let secret = b"password for NOTIFY to dns-oops!";
    for (algorithm, signed_at, hex) in [
        (
            TsigAlgorithm::HmacSha256,
            1_796_013_857,
            "8b3f240000010000000000010161047465737400000600010a6e6f746966792d6b65790000fa00ff\
             00000000003d0b686d61632d7368613235360000006b0cff21012c00203444cd621e1fb69a5fa7bf\
             b982e01c8a7ebedb952749b8e8dbf5fb697daa8dff8b3f00000000",
        ),
        (
            TsigAlgorithm::HmacSha512,
            1_796_013_857,
            "81b5240000010000000000010161047465737400000600010a6e6f746966792d6b65790000fa00ff\
             00000000005d0b686d61632d7368613531320000006b0cff2c012c0040ca7f3d629e42b77ad56608\
             d09cb863e7bbf1056c526ba836d6baf629b0f4812c3cbcf98d9e1c88836e6513aa2a88688623aef9\
             97cd0771d9b87c4183c2daa72581b500000000",
        ),
        (
            TsigAlgorithm::HmacSha384,
            1_796_016_585,
            "d3fe24000001000100000001016104746573740000060001c00c00060001000000000027036e7331\
             c00c0a686f73746d6173746572c00c0000000300000e1000000258000151800000012c0a6e6f7469\
             66792d6b65790000fa00ff00000000004d0b686d61632d7368613338340000006b0d09c9012c0030\
             005d22656800c735f48f79f26d22d6af42ff63709f8bb0c4aa40c2ab76eb17c1be1093957f7c12b8\
             a5daf20b9c9c75dcd3fe00000000",
        ),
    ] {
        let request = unhex(hex);
        let key = key_named("notify-key.", algorithm, secret);
        let answer = responder(Some(key.clone()), true).respond(&request, local(), signed_at + 5);
        let reply = expect(&answer, NotifyOutcome::Accepted, ResponseCode::NoError);
        let tsig = &Message::from_vec(&request).unwrap().signature.unwrap().data;
        let reply_bytes = answer.reply.as_ref().unwrap();
        let (signed_data, record) =
            signed_bitmessage_to_buf(reply_bytes, Some(&tsig.mac), true).unwrap();
        key.verify(&signed_data, &record.data.mac).unwrap();
        assert_eq!(reply.queries[0].name, Name::from_ascii("a.test.").unwrap());
    }
}

#[test]
fn a_signed_refusal_is_signed_too() {
    let (request, mut verifier) = signed(notify(1, "c.test."), &key(), NOW);
    let answer = responder(Some(key()), true).respond(&request, local(), NOW);
    expect(&answer, NotifyOutcome::UnknownZone, ResponseCode::Refused);
    verifier.verify(answer.reply.as_ref().unwrap()).unwrap();
}

#[test]
fn a_stale_signature_is_badtime_signed_with_our_time() {
    let signed_at = NOW - 1000;
    let (request, mut verifier) = signed(notify(1, "a.test."), &key(), signed_at);
    let answer = responder(Some(key()), true).respond(&request, local(), NOW);
    let reply = expect(&answer, NotifyOutcome::TsigBadTime, ResponseCode::NotAuth);
    assert_eq!(tsig_error(&reply), (Some(TsigError::BadTime), true));
    let tsig = &reply.signature.as_ref().unwrap().data;
    assert_eq!(tsig.time, signed_at);
    assert_eq!(tsig.other, NOW.to_be_bytes()[2..]);
    verifier.verify(answer.reply.as_ref().unwrap()).unwrap();
}

#[test]
fn with_tsig_optional_both_unsigned_and_signed_notifies_are_accepted() {
    let responder = responder(Some(key()), false);
    let answer = responder.respond(&bytes(&notify(1, "a.test.")), local(), NOW);
    assert_eq!(answer.outcome, NotifyOutcome::Accepted);
    assert!(reply_of(&answer).signature.is_none());
    let (request, mut verifier) = signed(notify(2, "a.test."), &key(), NOW);
    let answer = responder.respond(&request, local(), NOW);
    assert_eq!(answer.outcome, NotifyOutcome::Accepted);
    verifier.verify(answer.reply.as_ref().unwrap()).unwrap();
}

#[test]
fn an_opt_in_the_request_gets_one_back() {
    let mut request = notify(1, "a.test.");
    request.set_edns(Edns::new());
    let answer = responder(None, false).respond(&bytes(&request), local(), NOW);
    assert!(reply_of(&answer).edns.is_some());
}

/// A small deterministic generator for the mutation test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn no_mutation_of_a_signed_notify_makes_it_panic_or_accepted() {
    let responder = responder(Some(key()), true);
    let (original, _) = signed(notify(1, "a.test."), &key(), NOW);
    let mut inputs: Vec<Vec<u8>> = (0..original.len())
        .map(|n| original[..n].to_vec())
        .collect();
    for at in 12..original.len() {
        for value in [
            0x00,
            0xff,
            original[at] ^ 0x80,
            original[at].wrapping_add(1),
        ] {
            let mut changed = original.clone();
            changed[at] = value;
            inputs.push(changed);
        }
    }
    let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut changed = original.clone();
        for _ in 0..1 + random.next() % 4 {
            let at = 12 + (random.next() as usize) % (changed.len() - 12);
            changed[at] = random.next() as u8;
        }
        inputs.push(changed);
    }
    for input in inputs {
        let answer = responder.respond(&input, local(), NOW);
        if answer.outcome == NotifyOutcome::Accepted {
            // Only changes the MAC does not cover may pass: the ID and the TSIG fudge
            // within its bounds, or bytes equal to the original.
            let message = Message::from_vec(&input).unwrap();
            assert_eq!(message.queries, notify(1, "a.test.").queries);
        }
    }
}

fn at(start: Instant, millis: u64) -> Instant {
    start + Duration::from_millis(millis)
}

#[test]
fn a_burst_is_one_confirmation_now_and_one_when_the_interval_ends() {
    let t0 = Instant::now();
    let mut schedule = ConfirmSchedule::new(Duration::from_secs(1));
    assert!(schedule.notified("a.test.", t0));
    for ms in [1, 5, 100, 400] {
        assert!(
            !schedule.notified("a.test.", at(t0, ms)),
            "folded at {ms} ms"
        );
    }
    assert_eq!(schedule.next_due(), None, "the first one still runs");
    schedule.finished("a.test.");
    assert_eq!(schedule.next_due(), Some(at(t0, 1000)));
    assert!(schedule.due(at(t0, 999)).is_empty());
    assert_eq!(schedule.due(at(t0, 1000)), ["a.test."]);
    assert!(
        schedule.due(at(t0, 5000)).is_empty(),
        "one more, not one per NOTIFY"
    );
    schedule.finished("a.test.");
    assert_eq!(schedule.next_due(), None);
    // After a quiet interval a NOTIFY is confirmed at once again.
    assert!(schedule.notified("a.test.", at(t0, 2001)));
}

#[test]
fn a_notify_while_a_slow_confirmation_runs_waits_for_it() {
    let t0 = Instant::now();
    let mut schedule = ConfirmSchedule::new(Duration::from_millis(100));
    assert!(schedule.notified("a.test.", t0));
    assert!(!schedule.notified("a.test.", at(t0, 50)));
    assert!(schedule.due(at(t0, 500)).is_empty(), "still running");
    schedule.finished("a.test.");
    assert_eq!(schedule.due(at(t0, 500)), ["a.test."]);
}

#[test]
fn zones_are_scheduled_apart() {
    let t0 = Instant::now();
    let mut schedule = ConfirmSchedule::new(Duration::from_secs(1));
    assert!(schedule.notified("a.test.", t0));
    assert!(schedule.notified("b.test.", at(t0, 1)));
    assert!(!schedule.notified("a.test.", at(t0, 2)));
    schedule.finished("a.test.");
    schedule.finished("b.test.");
    assert_eq!(schedule.due(at(t0, 1000)), ["a.test."]);
}

#[test]
fn with_no_interval_notifies_during_a_confirmation_still_fold() {
    let t0 = Instant::now();
    let mut schedule = ConfirmSchedule::new(Duration::ZERO);
    assert!(schedule.notified("a.test.", t0));
    assert!(!schedule.notified("a.test.", t0));
    assert!(!schedule.notified("a.test.", t0));
    schedule.finished("a.test.");
    assert_eq!(schedule.due(t0), ["a.test."]);
    schedule.finished("a.test.");
    assert!(schedule.notified("a.test.", t0));
}

#[test]
fn refusals_are_logged_once_per_interval_with_the_count_left_out() {
    let limit = LogLimit::default();
    let t0 = Instant::now();
    assert_eq!(limit.admit(NotifyOutcome::NotAllowed, t0), Some(0));
    assert_eq!(limit.admit(NotifyOutcome::NotAllowed, at(t0, 1)), None);
    assert_eq!(limit.admit(NotifyOutcome::NotAllowed, at(t0, 2)), None);
    assert_eq!(limit.admit(NotifyOutcome::TsigMissing, at(t0, 3)), Some(0));
    let later = t0 + LOG_INTERVAL;
    assert_eq!(limit.admit(NotifyOutcome::NotAllowed, later), Some(2));
}

/// A scripted authoritative server on loopback UDP: answers every SOA query with AA and a
/// serial equal to the number of queries it has had.
async fn soa_server() -> (SocketAddr, Arc<AtomicU32>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicU32::new(0));
    let counted = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let serial = counted.fetch_add(1, Ordering::SeqCst) + 1;
            let mut answer = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            answer.metadata.authoritative = true;
            answer.add_queries(query.queries.clone());
            let soa = SOA::new(
                Name::from_ascii("ns1.").unwrap(),
                Name::from_ascii("host.").unwrap(),
                serial,
                3600,
                600,
                86400,
                300,
            );
            let owner = query.queries[0].name.clone();
            answer.add_answer(Record::from_rdata(owner, 300, RData::SOA(soa)));
            let _ = socket.send_to(&answer.to_vec().unwrap(), from).await;
        }
    });
    (address, queries)
}

fn settings(server_address: SocketAddr) -> NotifyInSettings {
    NotifyInSettings {
        server: "knot".into(),
        server_address,
        zones: zones(),
        listen: "127.0.0.1:0".parse().unwrap(),
        allow: AddressPrefix::loopback(),
        tsig_key: None,
        require_tsig: false,
        min_interval: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
    }
}

/// Starts the listener; returns its address, its handler, and the observations.
async fn start(
    settings: NotifyInSettings,
) -> (SocketAddr, Arc<NotifyHandler>, mpsc::Receiver<Observation>) {
    let listener = NotifyListener::bind(settings).await.unwrap();
    let address = listener.local_addr().unwrap();
    let handler = listener.handler.clone();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(listener.run(tx));
    (address, handler, rx)
}

async fn udp_exchange(to: SocketAddr, request: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request, to).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    Message::from_vec(&buf[..len]).unwrap()
}

async fn next_observation(rx: &mut mpsc::Receiver<Observation>) -> Observation {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an observation within 5 s")
        .expect("the source runs")
}

fn zone_ready(zone: &str, serial: u32) -> Observation {
    Observation::new(
        SOURCE,
        "knot",
        ConditionId::ZoneReady,
        Some(zone),
        Evidence::Assert { met: true },
    )
    .arg("serial", serial)
}

#[tokio::test]
async fn a_udp_notify_is_answered_and_confirmed_at_the_server_address() {
    let (server, queries) = soa_server().await;
    let (address, handler, mut rx) = start(settings(server)).await;
    let reply = udp_exchange(address, &bytes(&notify(42, "a.test."))).await;
    assert_eq!(reply.metadata.id, 42);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(next_observation(&mut rx).await, zone_ready("a.test.", 1));
    assert_eq!(queries.load(Ordering::SeqCst), 1);
    assert_eq!(handler.counters.get(NotifyOutcome::Accepted), 1);
}

#[tokio::test]
async fn a_tcp_connection_carries_several_notifies() {
    let (server, _) = soa_server().await;
    let (address, _, mut rx) = start(settings(server)).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    for (id, zone) in [(1, "a.test."), (2, "b.test."), (3, "c.test.")] {
        let request = bytes(&notify(id, zone));
        stream.write_u16(request.len() as u16).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let len = stream.read_u16().await.unwrap();
        let mut reply = vec![0u8; usize::from(len)];
        stream.read_exact(&mut reply).await.unwrap();
        let reply = Message::from_vec(&reply).unwrap();
        assert_eq!(reply.metadata.id, id);
        let expected = match zone {
            "c.test." => ResponseCode::Refused,
            _ => ResponseCode::NoError,
        };
        assert_eq!(reply.metadata.response_code, expected, "{zone}");
    }
    let mut confirmed = vec![
        next_observation(&mut rx).await.subject.unwrap(),
        next_observation(&mut rx).await.subject.unwrap(),
    ];
    confirmed.sort();
    assert_eq!(confirmed, ["a.test.", "b.test."]);
}

#[tokio::test]
async fn a_refused_notify_is_counted_and_never_confirmed() {
    let (server, queries) = soa_server().await;
    let mut settings = settings(server);
    settings.allow = vec!["192.0.2.0/24".parse().unwrap()];
    let (address, handler, mut rx) = start(settings).await;
    let reply = udp_exchange(address, &bytes(&notify(1, "a.test."))).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    let nothing = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await;
    assert!(nothing.is_err(), "observed {nothing:?}");
    assert_eq!(queries.load(Ordering::SeqCst), 0);
    assert_eq!(handler.counters.get(NotifyOutcome::NotAllowed), 1);
    assert_eq!(handler.counters.get(NotifyOutcome::Accepted), 0);
}

#[tokio::test]
async fn a_burst_of_notifies_is_confirmed_twice_and_the_second_sees_the_end() {
    let (server, queries) = soa_server().await;
    let mut settings = settings(server);
    settings.min_interval = Duration::from_secs(1);
    let (address, _, mut rx) = start(settings).await;
    for id in 0..10 {
        let reply = udp_exchange(address, &bytes(&notify(id, "a.test."))).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    }
    assert_eq!(next_observation(&mut rx).await, zone_ready("a.test.", 1));
    assert_eq!(next_observation(&mut rx).await, zone_ready("a.test.", 2));
    let more = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await;
    assert!(more.is_err(), "a third confirmation: {more:?}");
    assert_eq!(queries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_confirmation_observes_nothing() {
    // A port with nothing behind it: the SOA query is refused.
    let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = closed.local_addr().unwrap();
    drop(closed);
    let (address, _, mut rx) = start(settings(server)).await;
    let reply = udp_exchange(address, &bytes(&notify(1, "a.test."))).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    let nothing = tokio::time::timeout(Duration::from_millis(1200), rx.recv()).await;
    assert!(nothing.is_err(), "observed {nothing:?}");
}
