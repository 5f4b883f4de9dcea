//! Unit tests of the notify channel: the served zone's answers and a sender against local
//! sockets.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::transfer::{ServedZone, respond};
use super::*;
use crate::config::AddressPrefix;
use crate::signal::Args;

fn row(condition: ConditionId, subject: Option<&str>, seq: u64) -> CurrentCondition {
    CurrentCondition {
        server: "knot".into(),
        condition,
        subject: subject.map(str::to_string),
        since: chrono::Utc::now(),
        args: Args::from([("serial".to_string(), 7.into())]),
        source: "probe".into(),
        seq,
    }
}

fn served() -> ServedZone {
    let journal = Journal::open_in_memory().unwrap();
    let signal = |seq, condition, subject: Option<&str>| Signal {
        seq,
        time: chrono::Utc::now(),
        node: "lab".into(),
        server: "knot".into(),
        condition,
        subject: subject.map(str::to_string),
        state: SignalState::Met,
        args: Args::new(),
        source: "probe".into(),
    };
    journal
        .record(
            &[
                signal(1, ConditionId::ServerRunning, None),
                signal(2, ConditionId::ZoneReady, Some("a.test.")),
            ],
            &[
                crate::signal::StateChange::Upsert(row(ConditionId::ServerRunning, None, 1)),
                crate::signal::StateChange::Upsert(row(ConditionId::ZoneReady, Some("a.test."), 2)),
            ],
        )
        .unwrap();
    let apex = Name::from_ascii("lab.oops.internal.").unwrap();
    let settings = zone_settings(&apex, Some("127.0.0.1:5354".parse().unwrap()));
    build_zone(&settings, &journal, &BTreeMap::new()).unwrap()
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(4242, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message.to_vec().unwrap()
}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn axfr_over_tcp_is_soa_records_soa() {
    let zone = served();
    let allow = AddressPrefix::loopback();
    let answers = respond(
        &zone,
        &query("lab.oops.internal.", RecordType::AXFR),
        LOOPBACK,
        &allow,
        true,
    );
    assert_eq!(answers.len(), 1);
    let answer = Message::from_vec(&answers[0]).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    let types: Vec<RecordType> = answer.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types.first(), Some(&RecordType::SOA));
    assert_eq!(types.last(), Some(&RecordType::SOA));
    assert_eq!(types.iter().filter(|t| **t == RecordType::SOA).count(), 2);
    assert!(types.contains(&RecordType::NS));
    assert!(types.contains(&RecordType::A), "the NS host's address");
    assert!(
        !types.contains(&RecordType::SRV),
        "no DNS Push service here"
    );
    let RData::SOA(soa) = &answer.answers[0].data else {
        panic!("not a SOA");
    };
    assert_eq!(soa.serial, 2, "the serial is the journal's seq");
    let txt: Vec<String> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == RecordType::TXT)
        .map(|r| r.name.to_string())
        .collect();
    assert_eq!(
        txt,
        [
            "server-running.knot.lab.oops.internal.",
            "zone-ready.knot.lab.oops.internal."
        ]
    );
}

#[test]
fn refusals_and_plain_queries() {
    let zone = served();
    let allow = AddressPrefix::loopback();
    let rcode = |bytes: &[u8], from: IpAddr, tcp: bool| {
        let answers = respond(&zone, bytes, from, &allow, tcp);
        Message::from_vec(&answers[0])
            .unwrap()
            .metadata
            .response_code
    };
    let axfr = query("lab.oops.internal.", RecordType::AXFR);
    let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(rcode(&axfr, stranger, true), ResponseCode::Refused);
    assert_eq!(rcode(&axfr, LOOPBACK, false), ResponseCode::Refused);
    let other = query("example.net.", RecordType::AXFR);
    assert_eq!(rcode(&other, LOOPBACK, true), ResponseCode::NotAuth);
    // IXFR over UDP: the SOA alone, so the secondary comes back over TCP.
    let ixfr = query("lab.oops.internal.", RecordType::IXFR);
    let answers = respond(&zone, &ixfr, LOOPBACK, &allow, false);
    let answer = Message::from_vec(&answers[0]).unwrap();
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(answer.answers[0].record_type(), RecordType::SOA);
    // A SOA query over UDP, and the SRV name is not there.
    let soa = query("lab.oops.internal.", RecordType::SOA);
    let answer = Message::from_vec(&respond(&zone, &soa, LOOPBACK, &allow, false)[0]).unwrap();
    assert_eq!(answer.answers[0].record_type(), RecordType::SOA);
    let srv = query("_dns-push-tls._tcp.lab.oops.internal.", RecordType::SRV);
    let answer = Message::from_vec(&respond(&zone, &srv, LOOPBACK, &allow, false)[0]).unwrap();
    assert!(answer.answers.is_empty());
    // Garbage gets nothing or FORMERR, never a panic.
    for bytes in [&b""[..], &[0u8; 5], &[0u8; 12], &[0xff; 40]] {
        let _ = respond(&zone, bytes, LOOPBACK, &allow, true);
    }
}

#[test]
fn the_cursor_waits_for_every_target() {
    let done: Vec<Arc<AtomicU64>> = [5, 9]
        .iter()
        .map(|&s| Arc::new(AtomicU64::new(s)))
        .collect();
    assert_eq!(cursor_position(12, 9, &done), 5);
    done[0].store(9, Ordering::Release);
    assert_eq!(cursor_position(12, 9, &done), 12);
    assert_eq!(cursor_position(12, 3, &[]), 12);
}

fn target_task(target: SocketAddr, signer: Option<TSigner>) -> (TargetTask, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let task = TargetTask {
        channel: "notify".into(),
        target,
        zone: Name::from_ascii("lab.oops.internal.").unwrap(),
        signer,
        timeout: Duration::from_millis(100),
        retries: 2,
        max_backoff: Duration::from_secs(1),
        metrics: metrics.clone(),
        acknowledged: Arc::new(AtomicU64::new(0)),
        wake: Arc::new(Notify::new()),
        targets: Arc::new(Targets::new(
            crate::health::Board::new().channel("notify", "notify"),
            &[target],
        )),
    };
    (task, metrics)
}

#[tokio::test]
async fn a_silent_target_is_given_up_after_the_retries() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (task, metrics) = target_task(silent.local_addr().unwrap(), None);
    let targets = task.targets.clone();
    let acknowledged = task.acknowledged.clone();
    let wake = task.wake.clone();
    let (tx, rx) = watch::channel(None);
    let run = tokio::spawn(task.run(rx));
    tx.send_replace(Some(Change { seq: 3, soa: None }));
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), wake.notified())
        .await
        .expect("the change is settled");
    // Three tries (100 ms each) with waits of 1 s between them (`max-backoff`).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2200) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(acknowledged.load(Ordering::Acquire), 3);
    let mut requests = 0;
    let mut buffer = [0u8; 512];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(10), silent.recv_from(&mut buffer)).await
    {
        requests += 1;
    }
    assert_eq!(requests, 3);
    let text = metrics.encode();
    assert!(
        text.contains("dns_oops_notify_unanswered_total{channel=\"notify\",target=\""),
        "{text}"
    );
    assert_eq!(
        targets.health.state(),
        crate::health::HealthState::Gone,
        "its only target never answers"
    );
    run.abort();
}

#[tokio::test]
async fn a_signed_notify_is_acknowledged_by_a_signed_answer_only() {
    use crate::config::{TsigHmac, TsigKey};
    use crate::sources::notify_in::NotifyResponder;
    let key = TsigKey {
        name: "oops-key.".into(),
        algorithm: TsigHmac::Sha256,
        secret: b"0123456789abcdef0123456789abcdef".to_vec(),
    };
    let signer = crate::sources::notify_in::signer(&key).unwrap();
    // The notify-in source's responder, which checks TSIG, answers.
    let responder = NotifyResponder::new(
        &["lab.oops.internal.".to_string()],
        AddressPrefix::loopback(),
        Some(signer.clone()),
        true,
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
            let answer = responder.respond(&buffer[..len], from.ip(), unix_now());
            if let Some(reply) = answer.reply {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    let (task, _) = target_task(target, Some(signer));
    assert!(task.try_once(&Change { seq: 1, soa: None }).await.is_ok());

    // A key the target does not know: refused, not tried again.
    let other = TsigKey {
        name: "other-key.".into(),
        ..key
    };
    let (task, _) = target_task(
        target,
        Some(crate::sources::notify_in::signer(&other).unwrap()),
    );
    match task.try_once(&Change { seq: 1, soa: None }).await {
        Err(TryFailure::Answered(why)) => assert!(
            why.contains("Not authorized") && why.contains("BadKey"),
            "{why}"
        ),
        Err(TryFailure::Silent(why)) => panic!("silent: {why}"),
        Ok(()) => panic!("acknowledged with an unknown key"),
    }
}
