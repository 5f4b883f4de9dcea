//! A small authoritative DNS server for the demo and for tests.
//!
//! It serves, over UDP and TCP on one port, a set of zones that can be changed while it
//! runs: each zone has a SOA (with a settable serial), an NS `ns1.<zone>` and `ns1.<zone>`
//! A 127.0.0.1. Names outside every zone get REFUSED, unknown names inside a zone NXDOMAIN
//! with the SOA in the authority section. For tests it can also misbehave on purpose
//! ([`LabBehaviour`]).
//!
//! [`run_lab_process`] runs it as a process of its own (the demo's `lab` server), driven by
//! commands on stdin, so that it can really be killed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How the lab server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabBehaviour {
    /// Correct authoritative answers.
    Normal,
    /// Random-looking bytes instead of DNS messages.
    Garbage,
    /// UDP answers have TC set and no records; TCP answers normally.
    Truncate,
    /// Answers with AA clear.
    NotAuthoritative,
    /// No answers at all.
    Silent,
    /// REFUSED for every query.
    Refuse,
}

impl std::str::FromStr for LabBehaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "normal" => LabBehaviour::Normal,
            "garbage" => LabBehaviour::Garbage,
            "truncate" => LabBehaviour::Truncate,
            "not-authoritative" => LabBehaviour::NotAuthoritative,
            "silent" => LabBehaviour::Silent,
            "refuse" => LabBehaviour::Refuse,
            other => return Err(format!("unknown behaviour `{other}`")),
        })
    }
}

#[derive(Debug)]
struct LabState {
    /// Zone (lowercase, trailing dot) → serial.
    zones: BTreeMap<Name, u32>,
    behaviour: LabBehaviour,
}

/// A running lab server; cloning gives another handle to the same server.
#[derive(Clone)]
pub struct LabServer {
    addr: SocketAddr,
    state: Arc<Mutex<LabState>>,
    tasks: Arc<Vec<JoinHandle<()>>>,
}

impl Drop for LabServer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.tasks) == 1 {
            for task in self.tasks.iter() {
                task.abort();
            }
        }
    }
}

impl LabServer {
    /// Binds UDP and TCP on `addr` (port 0: a free port, the same for both) and serves.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<LabServer> {
        let (udp, tcp) = bind_both(addr).await?;
        let addr = udp.local_addr()?;
        let state = Arc::new(Mutex::new(LabState {
            zones: BTreeMap::new(),
            behaviour: LabBehaviour::Normal,
        }));
        let udp_task = tokio::spawn(serve_udp(udp, state.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, state.clone()));
        Ok(LabServer {
            addr,
            state,
            tasks: Arc::new(vec![udp_task, tcp_task]),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a zone, or gives it a new serial.
    pub fn set_zone(&self, zone: &str, serial: u32) -> Result<(), String> {
        let name = zone_name(zone)?;
        self.state().zones.insert(name, serial);
        Ok(())
    }

    pub fn remove_zone(&self, zone: &str) -> Result<(), String> {
        let name = zone_name(zone)?;
        self.state().zones.remove(&name);
        Ok(())
    }

    pub fn set_behaviour(&self, behaviour: LabBehaviour) {
        self.state().behaviour = behaviour;
    }
}

fn zone_name(zone: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(zone).map_err(|e| format!("bad zone name `{zone}`: {e}"))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

async fn bind_both(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((UdpSocket::bind(addr).await?, TcpListener::bind(addr).await?));
    }
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

async fn serve_udp(socket: UdpSocket, state: Arc<Mutex<LabState>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = respond(&buf[..len], &state, false) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<Mutex<LabState>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_connection(stream, state.clone()));
    }
}

async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<LabState>>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut query = vec![0u8; len as usize];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(reply) = respond(&query, &state, true) else {
            continue;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len().min(u16::MAX as usize) as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// The answer to one query, or `None` to stay silent.
fn respond(query: &[u8], state: &Mutex<LabState>, tcp: bool) -> Option<Vec<u8>> {
    let state = state.lock().unwrap_or_else(|p| p.into_inner());
    let behaviour = state.behaviour;
    if behaviour == LabBehaviour::Silent {
        return None;
    }
    if behaviour == LabBehaviour::Garbage {
        return Some(b"\x13\x37 this is not DNS".to_vec());
    }
    let query = match Message::from_vec(query) {
        Ok(q) => q,
        Err(_) if query.len() >= 2 => {
            let id = u16::from_be_bytes([query[0], query[1]]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
        Err(_) => return None,
    };
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
    if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
        response.metadata.response_code = ResponseCode::NotImp;
        return response.to_vec().ok();
    }
    let question = &query.queries[0];
    let qname = question.name.to_lowercase();
    let zone = state
        .zones
        .iter()
        .filter(|(z, _)| z.zone_of(&qname))
        .max_by_key(|(z, _)| z.num_labels());
    let Some((zone, &serial)) = zone else {
        response.metadata.response_code = ResponseCode::Refused;
        return response.to_vec().ok();
    };
    if behaviour == LabBehaviour::Refuse {
        response.metadata.response_code = ResponseCode::Refused;
        return response.to_vec().ok();
    }
    response.metadata.authoritative = behaviour != LabBehaviour::NotAuthoritative;
    if behaviour == LabBehaviour::Truncate && !tcp {
        response.metadata.truncation = true;
        return response.to_vec().ok();
    }
    let ns = Name::from_ascii("ns1").ok()?.append_domain(zone).ok()?;
    let soa = Record::from_rdata(
        zone.clone(),
        300,
        RData::SOA(SOA::new(
            ns.clone(),
            Name::from_ascii("hostmaster")
                .ok()?
                .append_domain(zone)
                .ok()?,
            serial,
            3600,
            600,
            86400,
            300,
        )),
    );
    let qtype = question.query_type;
    if question.query_class != DNSClass::IN {
        response.metadata.response_code = ResponseCode::Refused;
    } else if qname == *zone {
        match qtype {
            RecordType::SOA => {
                response.add_answer(soa);
            }
            RecordType::NS => {
                response.add_answer(Record::from_rdata(
                    zone.clone(),
                    300,
                    RData::NS(NS(ns.clone())),
                ));
            }
            _ => {
                response.add_authority(soa);
            }
        }
    } else if qname == ns {
        if qtype == RecordType::A {
            response.add_answer(Record::from_rdata(ns, 300, RData::A(A::new(127, 0, 0, 1))));
        } else {
            response.add_authority(soa);
        }
    } else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(soa);
    }
    response.to_vec().ok()
}

/// Runs the lab as its own process: binds, writes `pid_file`, serves `zones`, and obeys
/// commands on stdin, one per line:
///
/// * `zone <name> <serial>` — add a zone or set its serial;
/// * `remove <name>` — remove a zone;
/// * `behaviour <normal|garbage|truncate|not-authoritative|silent|refuse>`;
/// * `stop` (or end of input, or SIGTERM) — a clean stop: remove the pid file and exit.
pub async fn run_lab_process(
    addr: SocketAddr,
    pid_file: &Path,
    zones: &[(String, u32)],
) -> std::io::Result<()> {
    let lab = LabServer::bind(addr).await?;
    for (zone, serial) in zones {
        lab.set_zone(zone, *serial).map_err(std::io::Error::other)?;
    }
    std::fs::write(pid_file, format!("{}\n", std::process::id()))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let words: Vec<&str> = line.split_whitespace().collect();
                let result = match words.as_slice() {
                    ["zone", name, serial] => serial
                        .parse::<u32>()
                        .map_err(|e| format!("bad serial `{serial}`: {e}"))
                        .and_then(|serial| lab.set_zone(name, serial)),
                    ["remove", name] => lab.remove_zone(name),
                    ["behaviour", b] => b.parse().map(|b| lab.set_behaviour(b)),
                    ["stop"] => break,
                    [] => Ok(()),
                    _ => Err(format!("unknown command `{line}`")),
                };
                if let Err(e) = result {
                    eprintln!("lab: {e}");
                }
            }
        }
    }
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::probe::{ProbeOutcome, ProbeSettings, probe_once};
    use std::time::Duration;

    async fn probe(lab: &LabServer, zones: &[&str]) -> Vec<ProbeOutcome> {
        let settings = ProbeSettings {
            server: "lab".into(),
            address: lab.local_addr(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            rise: 1,
            fall: 1,
        };
        probe_once(&settings)
            .await
            .zones
            .into_iter()
            .map(|(_, o)| o)
            .collect()
    }

    #[tokio::test]
    async fn serves_zones_and_follows_changes() {
        let lab = LabServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        lab.set_zone("Example.COM", 7).unwrap();
        assert_eq!(
            probe(&lab, &["example.com.", "example.net."]).await,
            [
                ProbeOutcome::Ready { serial: 7 },
                ProbeOutcome::Rcode("refused".into())
            ]
        );
        lab.set_zone("example.com.", 8).unwrap();
        assert_eq!(
            probe(&lab, &["example.com."]).await,
            [ProbeOutcome::Ready { serial: 8 }]
        );
        lab.remove_zone("example.com").unwrap();
        assert_eq!(
            probe(&lab, &["example.com."]).await,
            [ProbeOutcome::Rcode("refused".into())]
        );
    }

    #[tokio::test]
    async fn misbehaves_on_request() {
        let lab = LabServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        lab.set_zone("example.com.", 3).unwrap();
        let cases = [
            (
                LabBehaviour::NotAuthoritative,
                ProbeOutcome::NotAuthoritative,
            ),
            (LabBehaviour::Truncate, ProbeOutcome::Ready { serial: 3 }),
            (LabBehaviour::Refuse, ProbeOutcome::Rcode("refused".into())),
            (LabBehaviour::Silent, ProbeOutcome::Timeout),
        ];
        for (behaviour, expected) in cases {
            lab.set_behaviour(behaviour);
            assert_eq!(
                probe(&lab, &["example.com."]).await,
                [expected],
                "{behaviour:?}"
            );
        }
        lab.set_behaviour(LabBehaviour::Garbage);
        let outcome = &probe(&lab, &["example.com."]).await[0];
        assert_eq!(
            *outcome,
            ProbeOutcome::Timeout,
            "garbage is ignored, then the probe times out"
        );
    }

    #[tokio::test]
    async fn answers_other_names_like_an_authoritative_server() {
        let lab = LabServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        lab.set_zone("example.com.", 3).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ask = |name: &str, qtype| {
            let mut q = Message::new(42, MessageType::Query, OpCode::Query);
            q.add_query(hickory_proto::op::Query::query(
                Name::from_ascii(name).unwrap(),
                qtype,
            ));
            q.to_vec().unwrap()
        };
        let mut buf = vec![0u8; 1500];
        for (name, qtype, rcode, answers) in [
            ("ns1.example.com.", RecordType::A, ResponseCode::NoError, 1),
            ("www.example.com.", RecordType::A, ResponseCode::NXDomain, 0),
            ("example.com.", RecordType::NS, ResponseCode::NoError, 1),
        ] {
            socket
                .send_to(&ask(name, qtype), lab.local_addr())
                .await
                .unwrap();
            let (len, _) = socket.recv_from(&mut buf).await.unwrap();
            let m = Message::from_vec(&buf[..len]).unwrap();
            assert_eq!(m.metadata.response_code, rcode, "{name}");
            assert_eq!(m.answers.len(), answers, "{name}");
            assert!(m.metadata.authoritative);
        }
        // Not DNS at all, but with a readable ID: FORMERR.
        socket
            .send_to(&[0, 42, 0xff], lab.local_addr())
            .await
            .unwrap();
        let (len, _) = socket.recv_from(&mut buf).await.unwrap();
        let m = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    }
}
