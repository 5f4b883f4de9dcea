//! The signals zone (design.md §3): what the push channel serves, to DNS Push subscribers
//! and to ordinary queries alike.
//!
//! ```text
//! <node>.<signals-zone>.                          SOA, NS
//! _dns-push-tls._tcp.<node>.<signals-zone>.       SRV 0 0 <port> <host>
//! <host>                                          A/AAAA of the listener (when inside the zone)
//! <condition>.<server>.<node>.<signals-zone>.     TXT, one per subject the condition is met for:
//!                                                 "subject=<zone or ->" "since=<RFC 3339>" "key=value"…
//! ```
//!
//! A level condition's record appears when it is met and disappears when it clears; an
//! event's record is replaced by the next event for the same subject. [`SignalsZone::apply`]
//! turns one engine step into the PUSH changes that say so, and moves the SOA serial.

use std::collections::BTreeMap;
use std::net::IpAddr;

use dso::{PushChange, Subscribe};
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::signal::{Args, CurrentCondition, Signal, SignalState, StateChange, format_time};

/// The label pair of the DNS Push service name (RFC 8765 §6.1).
pub const PUSH_SERVICE: &str = "_dns-push-tls._tcp";
/// A TXT string holds at most 255 octets.
const MAX_TXT_STRING: usize = 255;
/// Answers to ordinary queries stay under this size; the rest is cut and TC set.
const MAX_ANSWER_LEN: usize = 65_000;

/// What the zone is made of besides the conditions.
#[derive(Debug, Clone)]
pub struct ZoneSettings {
    /// `<node>.<signals-zone>.`, lowercase.
    pub apex: Name,
    /// The SRV target and NS host name.
    pub host: Name,
    /// The port the SRV record advertises.
    pub port: u16,
    /// Addresses of `host`, served when `host` is inside the zone.
    pub addresses: Vec<IpAddr>,
    /// TTL of every record (and the SOA's negative-caching TTL).
    pub ttl: u32,
}

/// One TXT record of a condition name: the subject it is about and its strings.
type Subjects = BTreeMap<String, Vec<String>>;

/// The signals zone of one node.
#[derive(Debug)]
pub struct SignalsZone {
    settings: ZoneSettings,
    serial: u32,
    /// Condition names (lowercase) to their TXT records, by subject.
    names: BTreeMap<Name, Subjects>,
}

impl SignalsZone {
    /// The zone as of `current` (what is met now) at `serial`.
    pub fn new(settings: ZoneSettings, current: &[CurrentCondition], serial: u32) -> Self {
        let mut zone = SignalsZone {
            settings,
            serial,
            names: BTreeMap::new(),
        };
        for row in current {
            zone.apply_upsert(row, &mut Vec::new());
        }
        zone
    }

    pub fn apex(&self) -> &Name {
        &self.settings.apex
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Whether `name` is at or below the apex.
    pub fn contains(&self, name: &Name) -> bool {
        self.settings.apex.zone_of(name)
    }

    /// The name that holds `condition` of `server`.
    pub fn condition_name(&self, server: &str, condition: &str) -> Option<Name> {
        Name::from_ascii(format!("{condition}.{server}"))
            .ok()?
            .append_domain(&self.settings.apex)
            .ok()
    }

    /// Applies one engine step (its signals and the state changes written with them) and
    /// returns the PUSH changes that describe it, the SOA's included.
    pub fn apply(&mut self, signals: &[Signal], changes: &[StateChange]) -> Vec<PushChange> {
        let mut out = Vec::new();
        for change in changes {
            match change {
                StateChange::Upsert(row) => self.apply_upsert(row, &mut out),
                StateChange::Remove {
                    server,
                    condition,
                    subject,
                } => {
                    if let Some(name) = self.condition_name(server, condition.as_str()) {
                        let subject = subject.as_deref().unwrap_or("-");
                        self.remove(&name, subject, &mut out);
                    }
                }
            }
        }
        for signal in signals.iter().filter(|s| s.state == SignalState::Event) {
            if let Some(name) = self.condition_name(&signal.server, signal.condition.as_str()) {
                let subject = signal.subject_or_dash().to_string();
                let strings = txt_strings(&subject, &signal.time, &signal.args);
                self.set(name, subject, strings, &mut out);
            }
        }
        if !out.is_empty() {
            let old = self.soa();
            self.serial = match signals.last() {
                Some(last) if last.seq as u32 != self.serial => last.seq as u32,
                _ => self.serial.wrapping_add(1),
            };
            out.push(PushChange::Remove {
                name: old.name.clone(),
                class: DNSClass::IN,
                rdata: old.data.clone(),
            });
            out.push(self.add(self.soa()));
        }
        out
    }

    fn apply_upsert(&mut self, row: &CurrentCondition, out: &mut Vec<PushChange>) {
        if let Some(name) = self.condition_name(&row.server, row.condition.as_str()) {
            let subject = row.subject.clone().unwrap_or_else(|| "-".into());
            let strings = txt_strings(&subject, &row.since, &row.args);
            self.set(name, subject, strings, out);
        }
    }

    /// Puts the record of `subject` at `name`, replacing (remove, then add) a different one.
    fn set(
        &mut self,
        name: Name,
        subject: String,
        strings: Vec<String>,
        out: &mut Vec<PushChange>,
    ) {
        let subjects = self.names.entry(name.clone()).or_default();
        match subjects.insert(subject, strings.clone()) {
            Some(old) if old == strings => return,
            Some(old) => out.push(PushChange::Remove {
                name: name.clone(),
                class: DNSClass::IN,
                rdata: RData::TXT(TXT::new(old)),
            }),
            None => {}
        }
        let record = Record::from_rdata(name, self.settings.ttl, RData::TXT(TXT::new(strings)));
        out.push(self.add(record));
    }

    fn remove(&mut self, name: &Name, subject: &str, out: &mut Vec<PushChange>) {
        let Some(subjects) = self.names.get_mut(name) else {
            return;
        };
        if let Some(old) = subjects.remove(subject) {
            out.push(PushChange::Remove {
                name: name.clone(),
                class: DNSClass::IN,
                rdata: RData::TXT(TXT::new(old)),
            });
        }
        if subjects.is_empty() {
            self.names.remove(name);
        }
    }

    fn add(&self, record: Record) -> PushChange {
        PushChange::Add {
            name: record.name.clone(),
            class: DNSClass::IN,
            ttl: record.ttl,
            rdata: record.data.clone(),
        }
    }

    fn soa(&self) -> Record {
        let apex = &self.settings.apex;
        let hostmaster = Name::from_ascii("hostmaster")
            .ok()
            .and_then(|h| h.append_domain(apex).ok())
            .unwrap_or_else(|| apex.clone());
        let ttl = self.settings.ttl;
        let soa = SOA::new(
            self.settings.host.clone(),
            hostmaster,
            self.serial,
            3600,
            600,
            86400,
            ttl,
        );
        Record::from_rdata(apex.clone(), ttl, RData::SOA(soa))
    }

    fn service_name(&self) -> Option<Name> {
        Name::from_ascii(PUSH_SERVICE)
            .ok()?
            .append_domain(&self.settings.apex)
            .ok()
    }

    /// Every record at `name` (lowercase) of type `rtype` (ANY: all types).
    pub fn records(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        let name = name.to_lowercase();
        let ttl = self.settings.ttl;
        let mut all = Vec::new();
        if name == self.settings.apex {
            all.push(self.soa());
            all.push(Record::from_rdata(
                name.clone(),
                ttl,
                RData::NS(NS(self.settings.host.clone())),
            ));
        }
        if self.service_name().as_ref() == Some(&name) {
            let srv = SRV::new(0, 0, self.settings.port, self.settings.host.clone());
            all.push(Record::from_rdata(name.clone(), ttl, RData::SRV(srv)));
        }
        if name == self.settings.host && self.contains(&name) {
            for ip in &self.settings.addresses {
                let rdata = match ip {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                all.push(Record::from_rdata(name.clone(), ttl, rdata));
            }
        }
        if let Some(subjects) = self.names.get(&name) {
            all.extend(subjects.values().map(|strings| {
                Record::from_rdata(name.clone(), ttl, RData::TXT(TXT::new(strings.clone())))
            }));
        }
        all.retain(|r| rtype == RecordType::ANY || r.record_type() == rtype);
        all
    }

    /// The current answer to a subscription, as adds.
    pub fn snapshot(&self, subscribe: &Subscribe) -> Vec<PushChange> {
        if !matches!(subscribe.class, DNSClass::IN | DNSClass::ANY) {
            return Vec::new();
        }
        self.records(&subscribe.name, subscribe.rtype)
            .into_iter()
            .map(|r| self.add(r))
            .collect()
    }

    /// Whether `name` exists: it owns records or is an empty non-terminal above some.
    fn exists(&self, name: &Name) -> bool {
        if !self.records(name, RecordType::ANY).is_empty() {
            return true;
        }
        let service = self.service_name();
        let host = self
            .contains(&self.settings.host)
            .then_some(&self.settings.host);
        self.names
            .keys()
            .chain(service.as_ref())
            .chain(host)
            .any(|owner| name.zone_of(owner))
    }

    /// Answers an ordinary DNS query about the zone. `None` for a message that is not a
    /// query (answering responses invites loops). The caller has checked the client may ask.
    pub fn answer(&self, query: &Message) -> Option<Message> {
        if query.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::new(
            query.metadata.id,
            MessageType::Response,
            query.metadata.op_code,
        );
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.add_queries(query.queries.clone());
        if query.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
            return Some(response);
        }
        let [question] = query.queries.as_slice() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return Some(response);
        };
        let qname = question.name.to_lowercase();
        if !self.contains(&qname) || !matches!(question.query_class, DNSClass::IN | DNSClass::ANY) {
            response.metadata.response_code = ResponseCode::Refused;
            return Some(response);
        }
        response.metadata.authoritative = true;
        let answers = self.records(&qname, question.query_type);
        if answers.is_empty() {
            if !self.exists(&qname) {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            response.add_authority(self.soa());
            return Some(response);
        }
        let mut size = 12 + qname.len() + 4;
        for record in answers {
            size += record_size(&record);
            if size > MAX_ANSWER_LEN {
                response.metadata.truncation = true;
                break;
            }
            response.add_answer(record);
        }
        Some(response)
    }
}

/// An upper bound of a record's wire size (owner uncompressed).
fn record_size(record: &Record) -> usize {
    let rdata = match &record.data {
        RData::TXT(txt) => txt.txt_data.iter().map(|s| s.len() + 1).sum(),
        _ => 256,
    };
    record.name.len() + 10 + rdata
}

/// The TXT strings of a condition record: `subject=`, `since=`, then one per argument.
pub fn txt_strings(
    subject: &str,
    since: &chrono::DateTime<chrono::Utc>,
    args: &Args,
) -> Vec<String> {
    let mut strings = vec![
        format!("subject={subject}"),
        format!("since={}", format_time(since)),
    ];
    for (key, value) in args {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        strings.push(format!("{key}={value}"));
    }
    for s in &mut strings {
        truncate_at_char(s, MAX_TXT_STRING);
    }
    strings
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests;
