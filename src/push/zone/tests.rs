use std::str::FromStr;

use chrono::{TimeZone, Utc};
use hickory_proto::op::Query;

use super::*;
use crate::condition::ConditionId;

fn settings() -> ZoneSettings {
    ZoneSettings {
        apex: Name::from_ascii("ams1.oops.internal.").unwrap(),
        host: Name::from_ascii("push.ams1.oops.internal.").unwrap(),
        port: 853,
        addresses: vec!["192.0.2.1".parse().unwrap()],
        ttl: 60,
    }
}

fn row(condition: ConditionId, subject: Option<&str>, serial: u64) -> CurrentCondition {
    let mut args = Args::new();
    if condition == ConditionId::ZoneReady {
        args.insert("serial".into(), serial.into());
    }
    CurrentCondition {
        server: "knot".into(),
        condition,
        subject: subject.map(String::from),
        since: Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap(),
        args,
        source: "probe".into(),
        seq: 1,
    }
}

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

fn txt(strings: &[&str]) -> RData {
    RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect()))
}

fn query(qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name(qname), qtype));
    m
}

#[test]
fn records_follow_the_contract_of_design_section_3() {
    let zone = SignalsZone::new(
        settings(),
        &[row(
            ConditionId::ZoneReady,
            Some("example.net."),
            2026112201,
        )],
        5,
    );
    let records = zone.records(
        &name("zone-ready.knot.ams1.oops.internal."),
        RecordType::TXT,
    );
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].data,
        txt(&[
            "subject=example.net.",
            "since=2026-11-22T08:00:00.000000Z",
            "serial=2026112201"
        ])
    );
    let srv = zone.records(
        &name("_dns-push-tls._tcp.ams1.oops.internal."),
        RecordType::SRV,
    );
    assert_eq!(
        srv[0].data,
        RData::SRV(SRV::new(0, 0, 853, name("push.ams1.oops.internal.")))
    );
    let soa = zone.records(&name("AMS1.oops.internal."), RecordType::SOA);
    assert!(matches!(&soa[0].data, RData::SOA(s) if s.serial == 5));
    let a = zone.records(&name("push.ams1.oops.internal."), RecordType::A);
    assert_eq!(a.len(), 1);
}

#[test]
fn met_cleared_and_args_changes_become_push_adds_and_removes() {
    let mut zone = SignalsZone::new(settings(), &[], 5);
    let ready = row(ConditionId::ZoneReady, Some("example.net."), 1);
    let owner = name("zone-ready.knot.ams1.oops.internal.");

    let changes = zone.apply(&[], &[StateChange::Upsert(ready.clone())]);
    assert!(matches!(&changes[0], PushChange::Add { name, ttl: 60, .. } if *name == owner));
    // The SOA moves with every change: remove the old, add the new.
    assert_eq!(zone.serial(), 6);
    assert!(
        matches!(&changes[1], PushChange::Remove { rdata: RData::SOA(s), .. } if s.serial == 5)
    );
    assert!(matches!(&changes[2], PushChange::Add { rdata: RData::SOA(s), .. } if s.serial == 6));

    // The same row again changes nothing.
    assert!(
        zone.apply(&[], &[StateChange::Upsert(ready.clone())])
            .is_empty()
    );

    // A new serial replaces the record: remove the old one, add the new one.
    let newer = row(ConditionId::ZoneReady, Some("example.net."), 2);
    let changes = zone.apply(&[], &[StateChange::Upsert(newer)]);
    let old_txt = txt(&[
        "subject=example.net.",
        "since=2026-11-22T08:00:00.000000Z",
        "serial=1",
    ]);
    assert_eq!(
        changes[0],
        PushChange::Remove {
            name: owner.clone(),
            class: DNSClass::IN,
            rdata: old_txt
        }
    );
    assert!(
        matches!(&changes[1], PushChange::Add { rdata, .. } if *rdata == txt(&["subject=example.net.", "since=2026-11-22T08:00:00.000000Z", "serial=2"]))
    );

    let changes = zone.apply(
        &[],
        &[StateChange::Remove {
            server: "knot".into(),
            condition: ConditionId::ZoneReady,
            subject: Some("example.net.".into()),
        }],
    );
    assert!(matches!(&changes[0], PushChange::Remove { name, .. } if *name == owner));
    assert!(zone.records(&owner, RecordType::TXT).is_empty());
}

#[test]
fn an_event_replaces_the_previous_event_record() {
    let mut zone = SignalsZone::new(settings(), &[], 1);
    let event = |seq: u64, serial: u64| Signal {
        seq,
        time: Utc
            .with_ymd_and_hms(2026, 11, 22, 8, 0, seq as u32)
            .unwrap(),
        node: "ams1".into(),
        server: "knot".into(),
        condition: ConditionId::ZoneUpdated,
        subject: Some("example.net.".into()),
        state: SignalState::Event,
        args: [("serial".to_string(), serde_json::Value::from(serial))].into(),
        source: "probe".into(),
    };
    let first = zone.apply(&[event(10, 1)], &[]);
    assert!(matches!(first[0], PushChange::Add { .. }));
    assert_eq!(zone.serial(), 10, "the serial follows the signal seq");
    let second = zone.apply(&[event(11, 2)], &[]);
    assert!(matches!(second[0], PushChange::Remove { .. }));
    assert!(matches!(second[1], PushChange::Add { .. }));
    let owner = name("zone-updated.knot.ams1.oops.internal.");
    assert_eq!(zone.records(&owner, RecordType::TXT).len(), 1);
}

#[test]
fn ordinary_queries_get_authoritative_answers() {
    let zone = SignalsZone::new(settings(), &[row(ConditionId::ServerRunning, None, 0)], 5);
    let answer = zone
        .answer(&query(
            "server-running.knot.ams1.oops.internal.",
            RecordType::TXT,
        ))
        .unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert_eq!(answer.answers.len(), 1);

    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    let ent = zone
        .answer(&query("knot.ams1.oops.internal.", RecordType::TXT))
        .unwrap();
    assert_eq!(ent.metadata.response_code, ResponseCode::NoError);
    assert!(ent.answers.is_empty());
    assert_eq!(ent.authorities.len(), 1, "SOA for negative caching");

    let nx = zone
        .answer(&query(
            "zone-ready.knot.ams1.oops.internal.",
            RecordType::TXT,
        ))
        .unwrap();
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    let outside = zone
        .answer(&query("example.net.", RecordType::SOA))
        .unwrap();
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn a_subscription_snapshot_holds_the_current_records() {
    let zone = SignalsZone::new(
        settings(),
        &[
            row(ConditionId::ZoneReady, Some("a.example."), 1),
            row(ConditionId::ZoneReady, Some("b.example."), 1),
        ],
        5,
    );
    let subscribe = Subscribe {
        name: name("ZONE-READY.knot.ams1.oops.internal."),
        rtype: RecordType::ANY,
        class: DNSClass::IN,
    };
    assert_eq!(zone.snapshot(&subscribe).len(), 2);
    let other_class = Subscribe {
        class: DNSClass::CH,
        ..subscribe
    };
    assert!(zone.snapshot(&other_class).is_empty());
}

#[test]
fn long_argument_values_are_cut_to_a_txt_string() {
    let mut args = Args::new();
    args.insert("error".into(), "é".repeat(300).into());
    let strings = txt_strings("-", &Utc::now(), &args);
    assert!(strings.iter().all(|s| s.len() <= 255));
    assert!(strings[2].starts_with("error=é"));
}
