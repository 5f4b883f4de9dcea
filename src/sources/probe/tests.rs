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
    /// Random bytes, then nothing.
    Garbage,
    /// A valid answer with the wrong ID, then nothing.
    WrongId,
    /// UDP: TC=1 and no records; TCP answers with the serial.
    Truncate(u32),
    /// UDP: TC=1; TCP: garbage.
    TruncateThenTcpGarbage,
    Silent,
}

fn answer(query: &Message, serial: u32, authoritative: bool) -> Message {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = authoritative;
    response.add_queries(query.queries.clone());
    let name = query.queries[0].name.clone();
    let soa = SOA::new(
        Name::from_ascii("ns1.").unwrap(),
        Name::from_ascii("host.").unwrap(),
        serial,
        3600,
        600,
        86400,
        300,
    );
    response.add_answer(Record::from_rdata(name, 300, RData::SOA(soa)));
    response
}

/// Starts a responder on UDP and TCP; returns its address and a UDP query counter.
async fn responder(script: Script) -> (SocketAddr, Arc<AtomicUsize>) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let udp_count = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 512];
        loop {
            let (len, peer) = udp.recv_from(&mut buf).await.unwrap();
            udp_count.fetch_add(1, Ordering::SeqCst);
            let query = Message::from_vec(&buf[..len]).unwrap();
            let reply = match script {
                Script::Serial(s) => answer(&query, s, true).to_vec().unwrap(),
                Script::Rcode(rcode) => {
                    let mut m = Message::error_msg(query.metadata.id, OpCode::Query, rcode);
                    m.add_queries(query.queries.clone());
                    m.to_vec().unwrap()
                }
                Script::NotAuthoritative => answer(&query, 1, false).to_vec().unwrap(),
                Script::Garbage => vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3],
                Script::WrongId => {
                    let mut m = answer(&query, 1, true);
                    m.metadata.id = query.metadata.id.wrapping_add(1);
                    m.to_vec().unwrap()
                }
                Script::Truncate(_) | Script::TruncateThenTcpGarbage => {
                    let mut m =
                        Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
                    m.metadata.truncation = true;
                    m.metadata.authoritative = true;
                    m.add_queries(query.queries.clone());
                    m.to_vec().unwrap()
                }
                Script::Silent => continue,
            };
            udp.send_to(&reply, peer).await.unwrap();
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

async fn outcome(script: Script) -> (ProbeOutcome, ProbeRound) {
    let (addr, _) = responder(script).await;
    let round = probe_once(&settings(addr, &["example.test."])).await;
    (round.zones[0].1.clone(), round)
}

#[tokio::test]
async fn ready_with_serial_and_observations() {
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
    let obs = round.observations();
    assert_eq!(obs.len(), 4);
    assert_eq!(obs[0].condition, ConditionId::ServerRunning);
    assert_eq!(
        obs[0].evidence,
        Evidence::Sample {
            met: true,
            rise: 2,
            fall: 3
        }
    );
    assert_eq!(obs[2].subject.as_deref(), Some("b.test."));
    assert_eq!(obs[2].args["serial"], 2026112201u32);
}

#[tokio::test]
async fn refused_and_servfail_mean_running_but_not_ready() {
    let (o, round) = outcome(Script::Rcode(ResponseCode::Refused)).await;
    assert_eq!(o, ProbeOutcome::Rcode("refused".into()));
    let obs = round.observations();
    assert_eq!(
        obs[0].evidence,
        Evidence::Sample {
            met: true,
            rise: 2,
            fall: 3
        }
    );
    assert_eq!(
        obs[1].evidence,
        Evidence::Sample {
            met: false,
            rise: 2,
            fall: 3
        }
    );
    assert_eq!(obs[1].args["error"], "refused");
    let (o, _) = outcome(Script::Rcode(ResponseCode::ServFail)).await;
    assert_eq!(o, ProbeOutcome::Rcode("servfail".into()));
}

#[tokio::test]
async fn non_authoritative_answer_is_not_ready() {
    let (o, round) = outcome(Script::NotAuthoritative).await;
    assert_eq!(o, ProbeOutcome::NotAuthoritative);
    assert!(round.answered());
}

#[tokio::test]
async fn garbage_and_wrong_ids_are_ignored_until_the_timeout() {
    for script in [Script::Garbage, Script::WrongId] {
        let (o, round) = outcome(script).await;
        assert_eq!(o, ProbeOutcome::Timeout, "{script:?}");
        assert_eq!(round.ignored, 1, "{script:?}");
        let obs = round.observations();
        assert_eq!(
            obs[0].evidence,
            Evidence::Sample {
                met: false,
                rise: 2,
                fall: 3
            }
        );
        assert_eq!(obs[0].args["error"], "timeout");
    }
}

#[tokio::test]
async fn truncated_answers_are_asked_again_over_tcp() {
    let (o, _) = outcome(Script::Truncate(77)).await;
    assert_eq!(o, ProbeOutcome::Ready { serial: 77 });
    let (o, round) = outcome(Script::TruncateThenTcpGarbage).await;
    assert!(matches!(o, ProbeOutcome::Malformed(_)), "{o:?}");
    assert!(!round.answered());
}

#[tokio::test]
async fn silence_is_a_timeout() {
    let started = std::time::Instant::now();
    let (o, _) = outcome(Script::Silent).await;
    assert_eq!(o, ProbeOutcome::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_closed_port_is_refused_quickly() {
    let addr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let started = std::time::Instant::now();
    let round = probe_once(&settings(addr, &["a.test.", "b.test."])).await;
    assert!(
        round
            .zones
            .iter()
            .all(|(_, o)| *o == ProbeOutcome::ConnectionRefused),
        "{:?}",
        round.zones
    );
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(round.observations()[0].args["error"], "connection refused");
}

#[tokio::test]
async fn without_zones_the_root_is_probed_for_running_only() {
    let (addr, _) = responder(Script::Rcode(ResponseCode::Refused)).await;
    let round = probe_once(&settings(addr, &[])).await;
    let obs = round.observations();
    assert_eq!(obs.len(), 1);
    assert_eq!(
        obs[0].evidence,
        Evidence::Sample {
            met: true,
            rise: 2,
            fall: 3
        }
    );
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
        Some((false, ProbeOutcome::Rcode("refused".into())))
    );
    assert_eq!(
        classify_answer(&read("truncated"), "example.test.").map(|a| a.0),
        Some(true)
    );
    assert_eq!(classify_answer(&read("short"), "example.test."), None);
    assert_eq!(classify_answer(&read("soa-answer"), "other.test."), None);
}
