//! A small authoritative DNS server for the demo and for tests.
//!
//! It serves, over UDP and TCP on one port, a set of zones that can be changed while it
//! runs: each zone has a SOA at the apex (with a settable serial), an NS `ns1.<zone>` and
//! `ns1.<zone>` A 127.0.0.1. Answers inside a zone are authoritative (AA set); unknown
//! names inside a zone get NXDOMAIN with the SOA in the authority section, names outside
//! every zone REFUSED. A query that does not parse but has a readable header gets FORMERR;
//! anything shorter is dropped, and so is every message that is not a query. For tests it
//! can also misbehave on purpose ([`LabBehaviour`]).
//!
//! [`run_lab_process`] runs it as a process of its own (the demo's `lab` server), driven by
//! commands on stdin, so that it can really be killed.
//!
//! Not implemented: EDNS, wildcards, delegations, zone transfers, NOTIFY and DNSSEC.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// The TTL of every record served.
const TTL: u32 = 300;
/// Size of a DNS header: a message shorter than this has no readable ID to answer.
const HEADER_LEN: usize = 12;
/// What [`LabBehaviour::Garbage`] sends instead of an answer: not a DNS message.
const GARBAGE: &[u8] = b"\x13\x37 this is not DNS";

/// How the lab server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabBehaviour {
    /// Correct authoritative answers.
    Normal,
    /// Bytes that are not a DNS message instead of answers.
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

impl FromStr for LabBehaviour {
    type Err = LabError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "normal" => LabBehaviour::Normal,
            "garbage" => LabBehaviour::Garbage,
            "truncate" => LabBehaviour::Truncate,
            "not-authoritative" => LabBehaviour::NotAuthoritative,
            "silent" => LabBehaviour::Silent,
            "refuse" => LabBehaviour::Refuse,
            other => return Err(LabError::UnknownBehaviour(other.to_string())),
        })
    }
}

/// What the lab server or its command reader rejects.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{zone}` is not a zone name: {reason}")]
    BadZoneName { zone: String, reason: String },
    #[error("`{0}` is not a serial (0 to 4294967295)")]
    BadSerial(String),
    #[error(
        "unknown behaviour `{0}` (normal, garbage, truncate, not-authoritative, silent, refuse)"
    )]
    UnknownBehaviour(String),
    #[error("unknown command `{0}` (zone NAME SERIAL, remove NAME, behaviour B, stop)")]
    UnknownCommand(String),
}

/// The zones and behaviour, shared by the serving tasks and every handle.
#[derive(Debug)]
struct LabState {
    /// Zone apex (lowercase, fully qualified) → serial.
    zones: BTreeMap<Name, u32>,
    behaviour: LabBehaviour,
}

/// The serving tasks; dropping this (with the last [`LabServer`] handle) stops them.
struct ServingTasks(Vec<JoinHandle<()>>);

impl Drop for ServingTasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A running lab server. Clones are handles to the same server; it stops serving when the
/// last handle is dropped or [`LabServer::shutdown`] is called.
#[derive(Clone)]
pub struct LabServer {
    addr: SocketAddr,
    state: Arc<Mutex<LabState>>,
    tasks: Arc<ServingTasks>,
}

impl LabServer {
    /// Binds UDP and TCP on `addr` (port 0: a free port, the same for both) and serves.
    pub async fn bind(addr: SocketAddr) -> io::Result<LabServer> {
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
            tasks: Arc::new(ServingTasks(vec![udp_task, tcp_task])),
        })
    }

    /// The address served, on both UDP and TCP.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds a zone, or gives it a new serial.
    pub fn set_zone(&self, zone: &str, serial: u32) -> Result<(), LabError> {
        let name = zone_name(zone)?;
        self.state().zones.insert(name, serial);
        Ok(())
    }

    /// Removes a zone; names in it are REFUSED from now on.
    pub fn remove_zone(&self, zone: &str) -> Result<(), LabError> {
        let name = zone_name(zone)?;
        self.state().zones.remove(&name);
        Ok(())
    }

    pub fn set_behaviour(&self, behaviour: LabBehaviour) {
        self.state().behaviour = behaviour;
    }

    /// Stops serving (for every handle) and closes the sockets.
    pub fn shutdown(&self) {
        for task in &self.tasks.0 {
            task.abort();
        }
    }

    fn state(&self) -> MutexGuard<'_, LabState> {
        lock(&self.state)
    }
}

/// The state, even if a serving task panicked while holding the lock.
fn lock(state: &Mutex<LabState>) -> MutexGuard<'_, LabState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn zone_name(zone: &str) -> Result<Name, LabError> {
    let mut name = Name::from_ascii(zone).map_err(|e| LabError::BadZoneName {
        zone: zone.to_string(),
        reason: e.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// Binds UDP and TCP to the same address; with port 0, to the same free port.
async fn bind_both(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if addr.port() != 0 {
        return Ok((UdpSocket::bind(addr).await?, TcpListener::bind(addr).await?));
    }
    // The UDP port the kernel picks may be taken for TCP: try a few.
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

async fn serve_udp(socket: UdpSocket, state: Arc<Mutex<LabState>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = respond(&buf[..len], &state, Transport::Udp) {
            // A client that went away is no concern of the server's.
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, state: Arc<Mutex<LabState>>) {
    // Owned here so that aborting this task also ends every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(serve_connection(stream, state.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers length-prefixed queries on one connection until the client closes it.
async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<LabState>>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut query = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(reply) = respond(&query, &state, Transport::Tcp) else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// The answer to one message, or `None` to stay silent.
fn respond(query: &[u8], state: &Mutex<LabState>, transport: Transport) -> Option<Vec<u8>> {
    let state = lock(state);
    match state.behaviour {
        LabBehaviour::Silent => return None,
        LabBehaviour::Garbage => return Some(GARBAGE.to_vec()),
        _ => {}
    }
    let query = match Message::from_vec(query) {
        Ok(query) => query,
        Err(_) => return format_error(query),
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
        .filter(|(apex, _)| apex.zone_of(&qname))
        .max_by_key(|(apex, _)| apex.num_labels());
    let Some((apex, &serial)) = zone else {
        response.metadata.response_code = ResponseCode::Refused;
        return response.to_vec().ok();
    };
    if state.behaviour == LabBehaviour::Refuse || question.query_class != DNSClass::IN {
        response.metadata.response_code = ResponseCode::Refused;
        return response.to_vec().ok();
    }
    response.metadata.authoritative = state.behaviour != LabBehaviour::NotAuthoritative;
    if state.behaviour == LabBehaviour::Truncate && transport == Transport::Udp {
        response.metadata.truncation = true;
        return response.to_vec().ok();
    }
    let records = ZoneRecords::new(apex, serial)?;
    let qtype = question.query_type;
    if qname == *apex && qtype == RecordType::SOA {
        response.add_answer(records.soa);
    } else if qname == *apex && qtype == RecordType::NS {
        response.add_answer(records.ns);
    } else if qname == records.ns_host && qtype == RecordType::A {
        response.add_answer(records.a);
    } else if qname == *apex || qname == records.ns_host {
        // The name exists, the type does not: NODATA.
        response.add_authority(records.soa);
    } else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(records.soa);
    }
    response.to_vec().ok()
}

/// FORMERR for a message that does not parse, when its header can be read and it is a
/// query (answering responses could start a loop between two servers).
fn format_error(message: &[u8]) -> Option<Vec<u8>> {
    if message.len() < HEADER_LEN || message[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([message[0], message[1]]);
    let op_code = OpCode::from_u8((message[2] >> 3) & 0x0f);
    Message::error_msg(id, op_code, ResponseCode::FormErr)
        .to_vec()
        .ok()
}

/// The records of one zone.
struct ZoneRecords {
    soa: Record,
    ns: Record,
    /// `ns1.<zone>`.
    ns_host: Name,
    a: Record,
}

impl ZoneRecords {
    /// `None` when the apex is too long to have an `ns1` below it.
    fn new(apex: &Name, serial: u32) -> Option<ZoneRecords> {
        let ns_host = Name::from_ascii("ns1").ok()?.append_domain(apex).ok()?;
        let hostmaster = Name::from_ascii("hostmaster")
            .ok()?
            .append_domain(apex)
            .ok()?;
        let soa = SOA::new(ns_host.clone(), hostmaster, serial, 3600, 600, 86400, 300);
        Some(ZoneRecords {
            soa: Record::from_rdata(apex.clone(), TTL, RData::SOA(soa)),
            ns: Record::from_rdata(apex.clone(), TTL, RData::NS(NS(ns_host.clone()))),
            a: Record::from_rdata(ns_host.clone(), TTL, RData::A(A::new(127, 0, 0, 1))),
            ns_host,
        })
    }
}

/// One line of the lab process's command language.
#[derive(Debug, PartialEq, Eq)]
enum LabCommand {
    Zone(String, u32),
    Remove(String),
    Behaviour(LabBehaviour),
    Stop,
    Nothing,
}

impl FromStr for LabCommand {
    type Err = LabError;
    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = line.split_whitespace().collect();
        Ok(match words.as_slice() {
            ["zone", name, serial] => LabCommand::Zone(
                name.to_string(),
                serial
                    .parse()
                    .map_err(|_| LabError::BadSerial(serial.to_string()))?,
            ),
            ["remove", name] => LabCommand::Remove(name.to_string()),
            ["behaviour", behaviour] => LabCommand::Behaviour(behaviour.parse()?),
            ["stop"] => LabCommand::Stop,
            [] => LabCommand::Nothing,
            _ => return Err(LabError::UnknownCommand(line.trim().to_string())),
        })
    }
}

/// Runs the lab as its own process: binds, serves `zones`, writes this process's id to
/// `pid_file`, and obeys commands on stdin, one per line:
///
/// * `zone <name> <serial>` — add a zone or set its serial;
/// * `remove <name>` — remove a zone;
/// * `behaviour <normal|garbage|truncate|not-authoritative|silent|refuse>`;
/// * `stop` (or the end of stdin, or SIGTERM) — a clean stop: remove the pid file and
///   return, so the process exits 0.
///
/// A bad command is reported on stderr and ignored.
pub async fn run_lab_process(
    addr: SocketAddr,
    pid_file: &Path,
    zones: &[(String, u32)],
) -> io::Result<()> {
    let lab = LabServer::bind(addr).await?;
    for (zone, serial) in zones {
        lab.set_zone(zone, *serial).map_err(io::Error::other)?;
    }
    let mut terminate = signal(SignalKind::terminate())?;
    std::fs::write(pid_file, format!("{}\n", std::process::id()))?;
    let mut lines = stdin_lines();
    loop {
        let line = tokio::select! {
            _ = terminate.recv() => break,
            line = lines.recv() => line,
        };
        let Some(Ok(line)) = line else { break };
        let done = match line.parse::<LabCommand>() {
            Ok(LabCommand::Zone(zone, serial)) => lab.set_zone(&zone, serial),
            Ok(LabCommand::Remove(zone)) => lab.remove_zone(&zone),
            Ok(LabCommand::Behaviour(behaviour)) => {
                lab.set_behaviour(behaviour);
                Ok(())
            }
            Ok(LabCommand::Stop) => break,
            Ok(LabCommand::Nothing) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            eprintln!("lab: {e}");
        }
    }
    lab.shutdown();
    match std::fs::remove_file(pid_file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The lines of stdin, read on a thread of their own: a read blocked there does not keep
/// the runtime from shutting down (as one in tokio's blocking pool would), so a SIGTERM
/// ends the process even while stdin stays open. The channel closes at the end of input.
fn stdin_lines() -> mpsc::Receiver<io::Result<String>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::probe::{ProbeOutcome, ProbeSettings, probe_once};
    use hickory_proto::op::Query;
    use std::time::Duration;

    async fn lab() -> LabServer {
        LabServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    }

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

    fn ask(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut q = Message::new(42, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        q.to_vec().unwrap()
    }

    /// Sends `query` over UDP and returns the answer, or `None` after 300 ms.
    async fn exchange(lab: &LabServer, query: &[u8]) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.send_to(query, lab.local_addr()).await.unwrap();
        let mut buf = vec![0u8; 1500];
        let received = tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf));
        let len = received.await.ok()?.unwrap();
        Some(buf[..len].to_vec())
    }

    async fn answer(lab: &LabServer, query: &[u8]) -> Message {
        Message::from_vec(&exchange(lab, query).await.expect("an answer")).unwrap()
    }

    const REFUSED: ProbeOutcome = ProbeOutcome::Rcode(ResponseCode::Refused);

    #[tokio::test]
    async fn serves_zones_and_follows_changes() {
        let lab = lab().await;
        lab.set_zone("Example.COM", 7).unwrap();
        assert_eq!(
            probe(&lab, &["example.com.", "example.net."]).await,
            [ProbeOutcome::Ready { serial: 7 }, REFUSED]
        );
        lab.set_zone("example.com.", 8).unwrap();
        assert_eq!(
            probe(&lab, &["example.com."]).await,
            [ProbeOutcome::Ready { serial: 8 }]
        );
        lab.remove_zone("example.com").unwrap();
        assert_eq!(probe(&lab, &["example.com."]).await, [REFUSED]);
        assert!(matches!(
            lab.set_zone("a..b", 1),
            Err(LabError::BadZoneName { .. })
        ));
    }

    #[tokio::test]
    async fn misbehaves_on_request() {
        let lab = lab().await;
        lab.set_zone("example.com.", 3).unwrap();
        let cases = [
            (
                LabBehaviour::NotAuthoritative,
                ProbeOutcome::NotAuthoritative,
            ),
            (LabBehaviour::Truncate, ProbeOutcome::Ready { serial: 3 }),
            (LabBehaviour::Refuse, REFUSED),
            (LabBehaviour::Silent, ProbeOutcome::Timeout),
            (LabBehaviour::Garbage, ProbeOutcome::Timeout),
            (LabBehaviour::Normal, ProbeOutcome::Ready { serial: 3 }),
        ];
        for (behaviour, expected) in cases {
            lab.set_behaviour(behaviour);
            assert_eq!(
                probe(&lab, &["example.com."]).await,
                [expected],
                "{behaviour:?}"
            );
        }
        lab.set_behaviour(LabBehaviour::Truncate);
        let m = answer(&lab, &ask("example.com.", RecordType::SOA)).await;
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        lab.set_behaviour(LabBehaviour::Garbage);
        let bytes = exchange(&lab, &ask("example.com.", RecordType::SOA)).await;
        assert!(Message::from_vec(&bytes.unwrap()).is_err());
    }

    #[tokio::test]
    async fn answers_other_names_like_an_authoritative_server() {
        let lab = lab().await;
        lab.set_zone("example.com.", 3).unwrap();
        lab.set_zone("sub.example.com.", 4).unwrap();
        for (name, qtype, rcode, answers, authorities) in [
            (
                "ns1.example.com.",
                RecordType::A,
                ResponseCode::NoError,
                1,
                0,
            ),
            (
                "www.example.com.",
                RecordType::A,
                ResponseCode::NXDomain,
                0,
                1,
            ),
            ("example.com.", RecordType::NS, ResponseCode::NoError, 1, 0),
            ("example.com.", RecordType::MX, ResponseCode::NoError, 0, 1),
            (
                "ns1.example.com.",
                RecordType::AAAA,
                ResponseCode::NoError,
                0,
                1,
            ),
            (
                "SUB.example.com.",
                RecordType::SOA,
                ResponseCode::NoError,
                1,
                0,
            ),
        ] {
            let m = answer(&lab, &ask(name, qtype)).await;
            assert_eq!(m.metadata.id, 42);
            assert_eq!(m.metadata.message_type, MessageType::Response);
            assert_eq!(m.metadata.response_code, rcode, "{name}");
            assert_eq!(m.answers.len(), answers, "{name}");
            assert_eq!(m.authorities.len(), authorities, "{name}");
            assert!(m.metadata.authoritative, "{name}");
        }
        // The most specific zone answers.
        let m = answer(&lab, &ask("sub.example.com.", RecordType::SOA)).await;
        match &m.answers[0].data {
            RData::SOA(soa) => assert_eq!(soa.serial, 4),
            other => panic!("{other:?}"),
        }
        // Outside every zone: REFUSED, not authoritative.
        let m = answer(&lab, &ask("example.org.", RecordType::SOA)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(!m.metadata.authoritative);
    }

    #[tokio::test]
    async fn bad_messages_get_formerr_or_nothing() {
        let lab = lab().await;
        // A readable header with a question that is cut off: FORMERR with the query's ID.
        let mut cut = ask("example.com.", RecordType::SOA);
        cut.truncate(HEADER_LEN + 3);
        let m = answer(&lab, &cut).await;
        assert_eq!(m.metadata.id, 42);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // Too short for a header, or a response: dropped.
        assert_eq!(exchange(&lab, &[0, 42, 0xff]).await, None);
        let mut response = cut.clone();
        response[2] |= 0x80;
        assert_eq!(exchange(&lab, &response).await, None);
    }

    #[tokio::test]
    async fn tcp_answers_and_shutdown() {
        let lab = lab().await;
        lab.set_zone("example.com.", 5).unwrap();
        let mut stream = TcpStream::connect(lab.local_addr()).await.unwrap();
        for _ in 0..2 {
            let query = ask("example.com.", RecordType::SOA);
            stream.write_u16(query.len() as u16).await.unwrap();
            stream.write_all(&query).await.unwrap();
            let len = stream.read_u16().await.unwrap();
            let mut reply = vec![0u8; usize::from(len)];
            stream.read_exact(&mut reply).await.unwrap();
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(m.answers.len(), 1);
        }
        let handle = lab.clone();
        drop(lab);
        // Another handle keeps it serving.
        assert_eq!(
            probe(&handle, &["example.com."]).await,
            [ProbeOutcome::Ready { serial: 5 }]
        );
        handle.shutdown();
        tokio::task::yield_now().await;
        // The open connection is closed too.
        let closed = tokio::time::timeout(Duration::from_secs(1), stream.read_u16()).await;
        assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
        assert_ne!(
            probe(&handle, &["example.com."]).await,
            [ProbeOutcome::Ready { serial: 5 }]
        );
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            "zone example.com. 42".parse::<LabCommand>().unwrap(),
            LabCommand::Zone("example.com.".into(), 42)
        );
        assert_eq!(
            " remove example.com. ".parse::<LabCommand>().unwrap(),
            LabCommand::Remove("example.com.".into())
        );
        assert_eq!(
            "behaviour not-authoritative".parse::<LabCommand>().unwrap(),
            LabCommand::Behaviour(LabBehaviour::NotAuthoritative)
        );
        assert_eq!("stop".parse::<LabCommand>().unwrap(), LabCommand::Stop);
        assert_eq!("".parse::<LabCommand>().unwrap(), LabCommand::Nothing);
        assert!(matches!(
            "zone a. -1".parse::<LabCommand>(),
            Err(LabError::BadSerial(_))
        ));
        assert!(matches!(
            "behaviour rude".parse::<LabCommand>(),
            Err(LabError::UnknownBehaviour(_))
        ));
        assert!(matches!(
            "reboot".parse::<LabCommand>(),
            Err(LabError::UnknownCommand(_))
        ));
    }
}
