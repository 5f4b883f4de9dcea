//! Probe tests against a scripted responder on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::*;

/// How the scripted responder answers a UDP query.
#[derive(Clone, Copy, Debug)]
enum Script {
    Serial(u32),
    Rcode(ResponseCode),
    NotAuthoritative,
    /// NOERROR and AA, but the SOA is for another name.
    OtherSoa,
    /// Random bytes, then nothing.
    Garbage,
    /// A valid answer with the wrong ID, then nothing.
    WrongId,
    /// The right ID but another question name, then nothing.
    WrongName,
    /// UDP: TC=1 and no records; TCP answers with the serial.
    Truncate(u32),
    /// UDP: TC=1; TCP: bytes that are not DNS.
    TruncateThenTcpGarbage,
    /// Answers with the serial, except for names whose first label is `drop`.
    DropSome(u32),
    Silent,
}

fn soa_answer(query: &Message, owner: Name, serial: u32, authoritative: bool) -> Message {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = authoritative;
    response.add_queries(query.queries.clone());
    let soa = SOA::new(
        Name::from_ascii("ns1.").unwrap(),
        Name::from_ascii("host.").unwrap(),
        serial,
        3600,
        600,
        86400,
        300,
    );
    response.add_answer(Record::from_rdata(owner, 300, RData::SOA(soa)));
    response
}

fn answer(query: &Message, serial: u32, authoritative: bool) -> Message {
    soa_answer(query, query.queries[0].name.clone(), serial, authoritative)
}

fn udp_reply(script: Script, query: &Message) -> Option<Vec<u8>> {
    let reply = match script {
        Script::Serial(s) => answer(query, s, true),
        Script::DropSome(s) => {
            if query.queries[0].name.to_ascii().starts_with("drop.") {
                return None;
            }
            answer(query, s, true)
        }
        Script::Rcode(rcode) => {
            let mut m = Message::error_msg(query.metadata.id, OpCode::Query, rcode);
            m.add_queries(query.queries.clone());
            m
        }
        Script::NotAuthoritative => answer(query, 1, false),
        Script::OtherSoa => soa_answer(query, Name::from_ascii("other.test.").unwrap(), 1, true),
        Script::Garbage => return Some(vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3]),
        Script::WrongId => {
            let mut m = answer(query, 1, true);
            m.metadata.id = query.metadata.id.wrapping_add(1);
            m
        }
        Script::WrongName => {
            let mut m = answer(query, 1, true);
            m.queries[0].name = Name::from_ascii("spoofed.test.").unwrap();
            m
        }
        Script::Truncate(_) | Script::TruncateThenTcpGarbage => {
            let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            m.metadata.truncation = true;
            m.metadata.authoritative = true;
            m.add_queries(query.queries.clone());
            m
        }
        Script::Silent => return None,
    };
    Some(reply.to_vec().unwrap())
}

/// Starts a responder on UDP and TCP; returns its address and a UDP query counter.
async fn responder(script: Script) -> (SocketAddr, Arc<AtomicUsize>) {
    // The kernel picks the UDP port, which TCP may have in use: try a few.
    let mut tries = 0;
    let (udp, addr, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => break (udp, addr, tcp),
            Err(_) if tries < 20 => tries += 1,
            Err(e) => panic!("no port free for both UDP and TCP: {e}"),
        }
    };
    let count = Arc::new(AtomicUsize::new(0));
    let udp_count = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 512];
        loop {
            let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
            udp_count.fetch_add(1, Ordering::SeqCst);
            let query = Message::from_vec(&buf[..len]).unwrap();
            assert!(!query.metadata.recursion_desired);
            if let Some(reply) = udp_reply(script, &query) {
                udp.send_to(&reply, peer).await.unwrap();
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tcp.accept().await.unwrap();
            tokio::spawn(async move {
                let len = stream.read_u16().await.unwrap() as usize;
                let mut buf = vec![0u8; len];
                stream.read_exact(&mut buf).await.unwrap();
                let query = Message::from_vec(&buf).unwrap();
                let reply = match script {
                    Script::Truncate(s) => answer(&query, s, true).to_vec().unwrap(),
                    _ => vec![0xff; 40],
                };
                stream.write_u16(reply.len() as u16).await.unwrap();
                stream.write_all(&reply).await.unwrap();
            });
        }
    });
    (addr, count)
}

fn settings(address: SocketAddr, zones: &[&str]) -> ProbeSettings {
    ProbeSettings {
        server: "knot".into(),
        address,
        zones: zones.iter().map(|z| z.to_string()).collect(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(300),
        rise: 2,
        fall: 3,
    }
}

fn sample(met: bool) -> Evidence {
    Evidence::Sample {
        met,
        rise: 2,
        fall: 3,
    }
}

async fn outcome(script: Script) -> (ProbeOutcome, ProbeRound) {
    let (addr, _) = responder(script).await;
    let round = probe_once(&settings(addr, &["example.test."])).await;
    (round.zones[0].1.clone(), round)
}

#[tokio::test]
async fn ready_with_serial_and_observations_in_order() {
    let (addr, count) = responder(Script::Serial(2026112201)).await;
    let zones = ["a.test.", "b.test.", "c.test."];
    let round = probe_once(&settings(addr, &zones)).await;
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(
        round
            .zones
            .iter()
            .all(|(_, o)| *o == ProbeOutcome::Ready { serial: 2026112201 })
    );
    assert_eq!(round.ignored, 0);
    let obs = round.observations();
    assert_eq!(obs.len(), 4);
    assert_eq!(obs[0].condition, ConditionId::ServerRunning);
    assert_eq!(obs[0].evidence, sample(true));
    assert!(obs[0].args.is_empty());
    assert_eq!(obs[0].source, "probe");
    for (o, zone) in obs[1..].iter().zip(zones) {
        assert_eq!(o.condition, ConditionId::ZoneReady);
        assert_eq!(o.subject.as_deref(), Some(zone));
        assert_eq!(o.evidence, sample(true));
        assert_eq!(o.args["serial"], 2026112201u32);
    }
}

#[tokio::test]
async fn refused_and_servfail_mean_running_but_not_ready() {
    let (o, round) = outcome(Script::Rcode(ResponseCode::Refused)).await;
    assert_eq!(o, ProbeOutcome::Rcode(ResponseCode::Refused));
    let obs = round.observations();
    assert_eq!(obs[0].evidence, sample(true));
    assert_eq!(obs[1].evidence, sample(false));
    assert_eq!(obs[1].args["error"], "refused");
    let (o, _) = outcome(Script::Rcode(ResponseCode::ServFail)).await;
    assert_eq!(o, ProbeOutcome::Rcode(ResponseCode::ServFail));
    let (o, round) = outcome(Script::Rcode(ResponseCode::NotAuth)).await;
    assert_eq!(round.observations()[1].args["error"], "notauth");
    assert_eq!(o.to_string(), "notauth");
}

#[tokio::test]
async fn non_authoritative_or_soa_less_answers_are_not_ready() {
    let (o, round) = outcome(Script::NotAuthoritative).await;
    assert_eq!(o, ProbeOutcome::NotAuthoritative);
    assert!(round.server_answered);
    assert_eq!(round.observations()[1].args["error"], "not authoritative");
    let (o, round) = outcome(Script::OtherSoa).await;
    assert_eq!(o, ProbeOutcome::NoSoa);
    assert!(round.server_answered);
}

#[tokio::test]
async fn garbage_wrong_ids_and_wrong_names_are_ignored_until_the_timeout() {
    for script in [Script::Garbage, Script::WrongId, Script::WrongName] {
        let (o, round) = outcome(script).await;
        assert_eq!(o, ProbeOutcome::Timeout, "{script:?}");
        assert_eq!(round.ignored, 1, "{script:?}");
        assert!(!round.server_answered, "{script:?}");
        let obs = round.observations();
        assert_eq!(obs[0].evidence, sample(false));
        assert_eq!(obs[0].args["error"], "timeout");
        assert_eq!(obs[1].args["error"], "timeout");
    }
}

#[tokio::test]
async fn truncated_answers_are_asked_again_over_tcp() {
    let (o, round) = outcome(Script::Truncate(77)).await;
    assert_eq!(o, ProbeOutcome::Ready { serial: 77 });
    assert!(round.server_answered);
    let (o, round) = outcome(Script::TruncateThenTcpGarbage).await;
    assert!(matches!(o, ProbeOutcome::Malformed(_)), "{o:?}");
    // The truncated UDP answer was a valid DNS answer: the server runs.
    assert!(round.server_answered);
    let obs = round.observations();
    assert_eq!(obs[0].evidence, sample(true));
    assert_eq!(obs[1].evidence, sample(false));
}

#[tokio::test]
async fn silence_is_a_timeout() {
    let (o, round) = outcome(Script::Silent).await;
    assert_eq!(o, ProbeOutcome::Timeout);
    assert_eq!(round.server_failure, Some(ProbeOutcome::Timeout));
}

#[tokio::test]
async fn a_silent_server_ends_the_round_after_one_timeout_whatever_the_zone_count() {
    let (addr, _) = responder(Script::Silent).await;
    let zones: Vec<String> = (0..4 * MAX_IN_FLIGHT)
        .map(|i| format!("z{i}.test."))
        .collect();
    let zone_refs: Vec<&str> = zones.iter().map(String::as_str).collect();
    let mut s = settings(addr, &zone_refs);
    s.timeout = Duration::from_millis(500);
    s.interval = Duration::from_secs(10);
    let round = probe_once(&s).await;
    assert!(round.zones.iter().all(|(_, o)| *o == ProbeOutcome::Timeout));
    // Waiting window by window would take four timeouts (2 s); the bound leaves room for a
    // loaded machine.
    assert!(round.took < Duration::from_millis(1500), "{:?}", round.took);
}

#[tokio::test]
async fn one_unanswered_zone_times_out_alone() {
    let (addr, _) = responder(Script::DropSome(9)).await;
    let round = probe_once(&settings(addr, &["a.test.", "drop.test.", "b.test."])).await;
    let outcomes: Vec<&ProbeOutcome> = round.zones.iter().map(|(_, o)| o).collect();
    assert_eq!(
        outcomes,
        [
            &ProbeOutcome::Ready { serial: 9 },
            &ProbeOutcome::Timeout,
            &ProbeOutcome::Ready { serial: 9 }
        ]
    );
    assert!(round.server_answered);
}

#[tokio::test]
async fn a_closed_port_is_refused_quickly() {
    let addr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let mut s = settings(addr, &["a.test.", "b.test."]);
    s.timeout = Duration::from_secs(5);
    let round = probe_once(&s).await;
    assert!(
        round
            .zones
            .iter()
            .all(|(_, o)| *o == ProbeOutcome::ConnectionRefused),
        "{:?}",
        round.zones
    );
    // The ICMP error arrives long before the 5 s timeout.
    assert!(round.took < Duration::from_millis(2500), "{:?}", round.took);
    assert_eq!(round.observations()[0].args["error"], "connection refused");
}

#[tokio::test]
async fn without_zones_the_root_is_probed_for_running_only() {
    let (addr, count) = responder(Script::Rcode(ResponseCode::Refused)).await;
    let round = probe_once(&settings(addr, &[])).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(round.zones.is_empty());
    let obs = round.observations();
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0].evidence, sample(true));
}

#[tokio::test]
async fn an_invalid_zone_name_is_reported_not_sent() {
    let (addr, count) = responder(Script::Serial(3)).await;
    let long_label = format!("{}.test.", "x".repeat(64));
    let round = probe_once(&settings(addr, &[&long_label, "ok.test."])).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(round.zones[0].1, ProbeOutcome::InvalidName);
    assert_eq!(round.zones[1].1, ProbeOutcome::Ready { serial: 3 });
}

#[tokio::test]
async fn many_zones_in_one_round() {
    let (addr, count) = responder(Script::Serial(5)).await;
    let zones: Vec<String> = (0..2000).map(|i| format!("z{i}.test.")).collect();
    let zone_refs: Vec<&str> = zones.iter().map(String::as_str).collect();
    let mut s = settings(addr, &zone_refs);
    s.timeout = Duration::from_secs(2);
    let round = probe_once(&s).await;
    assert_eq!(count.load(Ordering::SeqCst), 2000);
    assert!(
        round
            .zones
            .iter()
            .all(|(_, o)| *o == ProbeOutcome::Ready { serial: 5 })
    );
}

#[tokio::test]
async fn run_probe_sends_rounds_until_the_channel_closes() {
    let (addr, _) = responder(Script::Serial(8)).await;
    let mut s = settings(addr, &["a.test."]);
    s.interval = Duration::from_millis(20);
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(run_probe(
        s,
        tx,
        crate::health::Health::detached("probe", "s"),
    ));
    for _ in 0..3 {
        let running = rx.recv().await.unwrap();
        assert_eq!(running.condition, ConditionId::ServerRunning);
        let ready = rx.recv().await.unwrap();
        assert_eq!(ready.condition, ConditionId::ZoneReady);
    }
    drop(rx);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the probe ends when the engine is gone")
        .unwrap();
}

#[test]
fn random_ids_avoid_taken_ones() {
    let mut ids = RandomIds::new();
    let drawn: Vec<u16> = (0..1000)
        .map(|_| ids.fresh(|id| id % 2 == 0).unwrap())
        .collect();
    assert!(drawn.iter().all(|id| id % 2 == 1));
    let distinct: std::collections::HashSet<_> = drawn.iter().collect();
    assert!(distinct.len() > 900, "{}", distinct.len());
}

#[test]
fn the_fuzz_seeds_classify() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/probe_answer");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    assert_eq!(
        classify_answer(&read("soa-answer"), "example.test."),
        Some((false, ProbeOutcome::Ready { serial: 2026112201 }))
    );
    assert_eq!(
        classify_answer(&read("refused"), "Example.Test"),
        Some((false, ProbeOutcome::Rcode(ResponseCode::Refused)))
    );
    assert_eq!(
        classify_answer(&read("truncated"), "example.test.").map(|a| a.0),
        Some(true)
    );
    assert_eq!(classify_answer(&read("short"), "example.test."), None);
    assert_eq!(classify_answer(&read("soa-answer"), "other.test."), None);
}

#[tokio::test]
async fn many_truncated_answers_are_all_asked_again_over_tcp() {
    let (addr, _) = responder(Script::Truncate(12)).await;
    let zones: Vec<String> = (0..3 * MAX_IN_FLIGHT)
        .map(|i| format!("z{i}.test."))
        .collect();
    let zone_refs: Vec<&str> = zones.iter().map(String::as_str).collect();
    let mut s = settings(addr, &zone_refs);
    s.timeout = Duration::from_secs(2);
    let round = probe_once(&s).await;
    assert!(
        round
            .zones
            .iter()
            .all(|(_, o)| *o == ProbeOutcome::Ready { serial: 12 })
    );
}
