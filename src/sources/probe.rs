//! The `probe` source: SOA queries to the server, for every zone, every interval.
//!
//! A round sends one SOA query per zone (RD clear, random ID) over a single connected UDP
//! socket, with at most [`MAX_IN_FLIGHT`] queries outstanding, and matches answers to
//! queries by ID and question. A query whose answer is truncated is asked again over TCP.
//! A datagram that does not parse, or does not answer an outstanding query (ID, question
//! name, type and class; the connected socket already drops other source addresses), is
//! ignored and counted: it may be spoofed, and the real answer may still come.
//!
//! Every query waits up to the `timeout` for its answer. When the server has answered
//! nothing for a whole `timeout`, the round gives up on the queries left, so a dead server
//! is seen after one timeout however many zones there are; a round also never runs past
//! `max(interval, timeout)` (plus one `timeout` for TCP retries).
//!
//! What a round reports, as [`Evidence::Sample`]s so the engine applies rise and fall, in
//! this order:
//!
//! * `server-running`: met when any valid DNS answer came back, whatever its rcode (a
//!   truncated one included); else not met with an `error` argument (`timeout`,
//!   `connection refused`, …). A server without zones is asked for the root SOA, only for
//!   this.
//! * `zone-ready` per zone: met on NOERROR with AA set and the zone's own SOA in the answer
//!   section, with the `serial` as argument; otherwise not met, with an `error` argument
//!   saying why (`not authoritative`, `refused`, `timeout`, …).
//!
//! Not implemented: EDNS (SOA answers fit in 512 octets), DNS cookies, 0x20 case
//! randomisation, and TCP pipelining of the retries (one connection per truncated answer).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::condition::ConditionId;
use crate::health::Health;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "probe";
/// Most queries outstanding at once in a round, over UDP and, separately, over TCP.
/// A burst larger than the server's socket buffer would be dropped by its kernel, so this
/// stays well below what a default receive buffer holds.
pub const MAX_IN_FLIGHT: usize = 128;
/// Largest UDP answer read (no EDNS is sent, so a server sends at most 512 octets).
const UDP_BUFFER: usize = 4096;

/// What the probe needs to know.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub server: String,
    pub address: SocketAddr,
    /// Zones to probe, with a trailing dot.
    pub zones: Vec<String>,
    /// From the start of one round to the start of the next.
    pub interval: Duration,
    /// How long a query waits for its answer.
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// What the query for one zone found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// NOERROR, AA, and the zone's own SOA in the answer section.
    Ready { serial: u32 },
    /// NOERROR with AA clear: the server does not serve the zone itself.
    NotAuthoritative,
    /// An rcode other than NOERROR (`refused`, `servfail`, `notauth`, `nxdomain`, …).
    Rcode(ResponseCode),
    /// NOERROR and AA, but no SOA for the zone in the answer section.
    NoSoa,
    /// The UDP answer was truncated and asking again over TCP failed.
    TcpFailed(String),
    /// The TCP answer does not parse, is cut short, or does not answer the query.
    Malformed(String),
    /// No matching answer within the timeout.
    Timeout,
    /// The server's UDP port is closed (ICMP port unreachable).
    ConnectionRefused,
    /// Another socket error.
    Network(String),
    /// The zone is not a valid domain name, so it was not asked about.
    InvalidName,
}

impl fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeOutcome::Ready { serial } => write!(f, "ready with serial {serial}"),
            ProbeOutcome::NotAuthoritative => f.write_str("not authoritative"),
            ProbeOutcome::Rcode(rcode) => f.write_str(&rcode_name(*rcode)),
            ProbeOutcome::NoSoa => f.write_str("no SOA in the answer"),
            ProbeOutcome::TcpFailed(e) => write!(f, "truncated over UDP, TCP failed: {e}"),
            ProbeOutcome::Malformed(e) => write!(f, "malformed answer: {e}"),
            ProbeOutcome::Timeout => f.write_str("timeout"),
            ProbeOutcome::ConnectionRefused => f.write_str("connection refused"),
            ProbeOutcome::Network(e) => f.write_str(e),
            ProbeOutcome::InvalidName => f.write_str("not a valid zone name"),
        }
    }
}

/// The result of one round.
#[derive(Debug, Clone)]
pub struct ProbeRound {
    pub server: String,
    pub rise: u32,
    pub fall: u32,
    /// Per configured zone, in the configured order; empty when the server has no zones
    /// (then only the root was asked, for `server-running`).
    pub zones: Vec<(String, ProbeOutcome)>,
    /// Whether any valid DNS answer came back (any rcode, truncated ones included).
    pub server_answered: bool,
    /// When nothing answered: what happened to the first query that was sent.
    pub server_failure: Option<ProbeOutcome>,
    /// Datagrams received that were not a valid answer to an outstanding query.
    pub ignored: u32,
    /// How long the round took.
    pub took: Duration,
}

impl ProbeRound {
    /// The round as observations: `server-running` first, then one `zone-ready` per zone.
    pub fn observations(&self) -> Vec<Observation> {
        let sample = |met| Evidence::Sample {
            met,
            rise: self.rise,
            fall: self.fall,
        };
        let mut running = Observation::new(
            SOURCE,
            &self.server,
            ConditionId::ServerRunning,
            None,
            sample(self.server_answered),
        );
        if let Some(failure) = &self.server_failure {
            running = running.arg("error", failure.to_string());
        }
        let mut observations = Vec::with_capacity(1 + self.zones.len());
        observations.push(running);
        for (zone, outcome) in &self.zones {
            let ready = Observation::new(
                SOURCE,
                &self.server,
                ConditionId::ZoneReady,
                Some(zone),
                sample(matches!(outcome, ProbeOutcome::Ready { .. })),
            );
            observations.push(match outcome {
                ProbeOutcome::Ready { serial } => ready.arg("serial", *serial),
                other => ready.arg("error", other.to_string()),
            });
        }
        observations
    }
}

/// Probes every interval and sends the observations, until `tx` is closed. Its health is
/// `connected` while the server answers and `gone` while it does not (then it cannot see
/// the zones).
pub async fn run_probe(settings: ProbeSettings, tx: mpsc::Sender<Observation>, health: Health) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let round = tokio::select! {
            _ = tx.closed() => return,
            round = async {
                ticker.tick().await;
                probe_once(&settings).await
            } => round,
        };
        match (&round.server_failure, round.server_answered) {
            (_, true) => health.connected(format!("{} answers SOA queries", settings.address)),
            (Some(failure), false) => health.gone(format!("{}: {failure}", settings.address)),
            (None, false) => health.gone(format!("no answer from {}", settings.address)),
        }
        if round.ignored > 0 {
            tracing::debug!(
                server = settings.server,
                ignored = round.ignored,
                "ignored datagrams that did not answer a probe"
            );
        }
        for observation in round.observations() {
            if tx.send(observation).await.is_err() {
                return;
            }
        }
    }
}

/// One round: every zone (or, without zones, the root) asked once.
pub async fn probe_once(settings: &ProbeSettings) -> ProbeRound {
    let started = Instant::now();
    let questions: Vec<Option<Name>> = if settings.zones.is_empty() {
        vec![Some(Name::root())]
    } else {
        settings.zones.iter().map(|z| zone_name(z)).collect()
    };
    let mut progress = RoundProgress {
        outcomes: vec![None; questions.len()],
        truncated: Vec::new(),
        answered: false,
        ignored: 0,
        first_sent: None,
    };
    let round_end = started + settings.interval.max(settings.timeout);
    let mut ids = RandomIds::new();
    if let Err(e) = udp_phase(settings, &questions, &mut ids, round_end, &mut progress).await {
        progress.settle(&socket_outcome(&e));
    }
    tcp_phase(settings, &questions, &mut ids, &mut progress).await;
    progress.settle(&ProbeOutcome::Timeout);

    let mut outcomes: Vec<ProbeOutcome> = progress.outcomes.into_iter().flatten().collect();
    let server_failure = match progress.answered {
        true => None,
        false => progress
            .first_sent
            .and_then(|index| outcomes.get(index))
            .or(outcomes.first())
            .cloned(),
    };
    if settings.zones.is_empty() {
        outcomes.clear();
    }
    ProbeRound {
        server: settings.server.clone(),
        rise: settings.rise,
        fall: settings.fall,
        zones: settings.zones.iter().cloned().zip(outcomes).collect(),
        server_answered: progress.answered,
        server_failure,
        ignored: progress.ignored,
        took: started.elapsed(),
    }
}

/// A zone as a fully qualified name, or `None` when it is not a domain name.
fn zone_name(zone: &str) -> Option<Name> {
    let mut name = Name::from_ascii(zone).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// What a round knows so far.
struct RoundProgress {
    /// Per question; `None` while unknown (unsent, outstanding, or truncated).
    outcomes: Vec<Option<ProbeOutcome>>,
    /// Questions whose UDP answer was truncated, to ask again over TCP.
    truncated: Vec<usize>,
    /// Whether any valid DNS answer came back.
    answered: bool,
    ignored: u32,
    /// The first question actually sent, whose outcome explains a silent server.
    first_sent: Option<usize>,
}

impl RoundProgress {
    /// Gives every question still unknown, and not waiting for TCP, this outcome.
    fn settle(&mut self, outcome: &ProbeOutcome) {
        for (index, slot) in self.outcomes.iter_mut().enumerate() {
            if slot.is_none() && !self.truncated.contains(&index) {
                *slot = Some(outcome.clone());
            }
        }
    }
}

fn socket_outcome(e: &io::Error) -> ProbeOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeOutcome::ConnectionRefused,
        _ => ProbeOutcome::Network(e.to_string()),
    }
}

/// Asks every question over one connected UDP socket. Questions left unknown when it
/// returns (the server went silent, or the round ran out of time) are timeouts.
async fn udp_phase(
    settings: &ProbeSettings,
    questions: &[Option<Name>],
    ids: &mut RandomIds,
    round_end: Instant,
    progress: &mut RoundProgress,
) -> io::Result<()> {
    let local: SocketAddr = match settings.address {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(settings.address).await?;
    // Outstanding queries by ID: (question index, when sent).
    let mut outstanding: HashMap<u16, (usize, Instant)> = HashMap::with_capacity(MAX_IN_FLIGHT);
    // Outstanding queries in the order sent, oldest first; entries already answered are
    // skipped lazily.
    let mut send_order: VecDeque<(u16, usize)> = VecDeque::with_capacity(MAX_IN_FLIGHT);
    let mut last_answer: Option<Instant> = None;
    let mut next = 0;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        if Instant::now() >= round_end {
            return Ok(());
        }
        while next < questions.len() && outstanding.len() < MAX_IN_FLIGHT {
            let index = next;
            next += 1;
            let Some(name) = &questions[index] else {
                progress.outcomes[index] = Some(ProbeOutcome::InvalidName);
                continue;
            };
            let id = ids.fresh(|id| outstanding.contains_key(&id))?;
            let query = match soa_query(id, name) {
                Ok(query) => query,
                Err(e) => {
                    progress.outcomes[index] = Some(ProbeOutcome::Network(e.to_string()));
                    continue;
                }
            };
            match socket.send(&query).await {
                Ok(_) => {
                    outstanding.insert(id, (index, Instant::now()));
                    send_order.push_back((id, index));
                    progress.first_sent.get_or_insert(index);
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    progress.first_sent.get_or_insert(index);
                    progress.settle(&ProbeOutcome::ConnectionRefused);
                    return Ok(());
                }
                Err(e) => progress.outcomes[index] = Some(ProbeOutcome::Network(e.to_string())),
            }
        }
        while let Some(&(id, index)) = send_order.front() {
            if outstanding.get(&id).is_some_and(|&(i, _)| i == index) {
                break;
            }
            send_order.pop_front();
        }
        let Some(&(oldest_id, oldest_index)) = send_order.front() else {
            // Nothing outstanding and nothing left to send.
            return Ok(());
        };
        let oldest_sent = outstanding[&oldest_id].1;
        let deadline = (oldest_sent + settings.timeout).min(round_end);
        match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => {
                if last_answer.is_none_or(|t| t < oldest_sent) {
                    // Silent for a whole timeout: the rest would time out too.
                    return Ok(());
                }
                outstanding.remove(&oldest_id);
                send_order.pop_front();
                progress.outcomes[oldest_index] = Some(ProbeOutcome::Timeout);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                progress.settle(&ProbeOutcome::ConnectionRefused);
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(len)) => {
                let answer = Message::from_vec(&buf[..len]).ok().and_then(|message| {
                    let &(index, _) = outstanding.get(&message.metadata.id)?;
                    let name = questions[index].as_ref()?;
                    Some((message.metadata.id, index, read_answer(&message, name)?))
                });
                let Some((id, index, (truncated, outcome))) = answer else {
                    progress.ignored += 1;
                    continue;
                };
                outstanding.remove(&id);
                progress.answered = true;
                last_answer = Some(Instant::now());
                if truncated {
                    progress.truncated.push(index);
                } else {
                    progress.outcomes[index] = Some(outcome);
                }
            }
        }
    }
}

/// Asks the questions whose UDP answers were truncated again over TCP, concurrently.
async fn tcp_phase(
    settings: &ProbeSettings,
    questions: &[Option<Name>],
    ids: &mut RandomIds,
    progress: &mut RoundProgress,
) {
    let mut retries = Vec::with_capacity(progress.truncated.len());
    for &index in &progress.truncated {
        match (ids.fresh(|_| false), &questions[index]) {
            (Ok(id), Some(name)) => retries.push((index, id, name.clone())),
            (Err(e), _) => progress.outcomes[index] = Some(ProbeOutcome::TcpFailed(e.to_string())),
            (_, None) => progress.outcomes[index] = Some(ProbeOutcome::InvalidName),
        }
    }
    let (address, timeout) = (settings.address, settings.timeout);
    let results: Vec<(usize, bool, ProbeOutcome)> = futures_util::stream::iter(retries)
        .map(move |(index, id, name)| async move {
            let (answered, outcome) = tcp_query(address, id, &name, timeout).await;
            (index, answered, outcome)
        })
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await;
    for (index, answered, outcome) in results {
        progress.answered |= answered;
        progress.outcomes[index] = Some(outcome);
    }
    progress.truncated.clear();
}

/// One SOA query over TCP: whether a valid answer came back, and what it says.
async fn tcp_query(
    address: SocketAddr,
    id: u16,
    name: &Name,
    timeout: Duration,
) -> (bool, ProbeOutcome) {
    let query = match soa_query(id, name) {
        Ok(query) => query,
        Err(e) => return (false, ProbeOutcome::Network(e.to_string())),
    };
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(&query);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await?;
        let mut answer = vec![0u8; usize::from(len)];
        stream.read_exact(&mut answer).await?;
        Ok::<Vec<u8>, io::Error>(answer)
    };
    let bytes = match tokio::time::timeout(timeout, exchange).await {
        Err(_) => return (false, ProbeOutcome::TcpFailed("timeout".into())),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            let cut = "the connection closed before a whole answer";
            return (false, ProbeOutcome::Malformed(cut.into()));
        }
        Ok(Err(e)) => return (false, ProbeOutcome::TcpFailed(e.to_string())),
        Ok(Ok(bytes)) => bytes,
    };
    match Message::from_vec(&bytes) {
        Err(e) => (false, ProbeOutcome::Malformed(e.to_string())),
        Ok(message) if message.metadata.id != id => (
            false,
            ProbeOutcome::Malformed("the answer has another ID than the query".into()),
        ),
        Ok(message) => match read_answer(&message, name) {
            Some((false, outcome)) => (true, outcome),
            Some((true, _)) => (
                true,
                ProbeOutcome::Malformed("the TCP answer is truncated too".into()),
            ),
            None => (
                false,
                ProbeOutcome::Malformed("the answer does not match the query".into()),
            ),
        },
    }
}

/// A SOA query for `name` without recursion desired, in wire format.
fn soa_query(id: u16, name: &Name) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(name.clone(), RecordType::SOA));
    message.to_vec()
}

/// Reads a message as the answer to our SOA query for `zone`: `None` when it is not one
/// (the probe ignores it), else whether it is truncated and what it says.
fn read_answer(message: &Message, zone: &Name) -> Option<(bool, ProbeOutcome)> {
    let is_answer = message.metadata.message_type == MessageType::Response
        && message.metadata.op_code == OpCode::Query
        && message.queries.len() == 1
        && message.queries[0].query_type == RecordType::SOA
        && message.queries[0].query_class == DNSClass::IN
        && message.queries[0].name == *zone;
    is_answer.then(|| (message.metadata.truncation, classify(message, zone)))
}

/// [`read_answer`] on raw bytes, for the fuzz target: never panics on any input.
pub fn classify_answer(bytes: &[u8], zone: &str) -> Option<(bool, ProbeOutcome)> {
    read_answer(&Message::from_vec(bytes).ok()?, &zone_name(zone)?)
}

/// What a matching, untruncated answer says about the zone.
fn classify(message: &Message, zone: &Name) -> ProbeOutcome {
    let rcode = message.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return ProbeOutcome::Rcode(rcode);
    }
    if !message.metadata.authoritative {
        return ProbeOutcome::NotAuthoritative;
    }
    message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) if record.name == *zone => {
                Some(ProbeOutcome::Ready { serial: soa.serial })
            }
            _ => None,
        })
        .unwrap_or(ProbeOutcome::NoSoa)
}

/// The rcode's mnemonic in lowercase (`refused`, `servfail`), or `rcode N`.
fn rcode_name(rcode: ResponseCode) -> String {
    let name = match rcode {
        ResponseCode::NoError => "noerror",
        ResponseCode::FormErr => "formerr",
        ResponseCode::ServFail => "servfail",
        ResponseCode::NXDomain => "nxdomain",
        ResponseCode::NotImp => "notimp",
        ResponseCode::Refused => "refused",
        ResponseCode::YXDomain => "yxdomain",
        ResponseCode::YXRRSet => "yxrrset",
        ResponseCode::NXRRSet => "nxrrset",
        ResponseCode::NotAuth => "notauth",
        ResponseCode::NotZone => "notzone",
        other => return format!("rcode {}", u16::from(other)),
    };
    name.to_string()
}

/// Unpredictable query IDs (a spoofer must guess them), drawn from the kernel's random
/// source in batches.
struct RandomIds {
    batch: [u8; 256],
    used: usize,
}

impl RandomIds {
    fn new() -> RandomIds {
        RandomIds {
            batch: [0; 256],
            used: 256,
        }
    }

    /// A random ID for which `taken` is false.
    fn fresh(&mut self, taken: impl Fn(u16) -> bool) -> io::Result<u16> {
        loop {
            if self.used + 2 > self.batch.len() {
                fill_random(&mut self.batch)?;
                self.used = 0;
            }
            let id = u16::from_ne_bytes([self.batch[self.used], self.batch[self.used + 1]]);
            self.used += 2;
            if !taken(id) {
                return Ok(id);
            }
        }
    }
}

/// Fills `buf` from getrandom(2).
fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid for `rest.len()` writable bytes.
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            filled += got as usize;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
