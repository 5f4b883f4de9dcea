//! The `probe` source: SOA queries to the server, for every zone, every interval.
//!
//! A round sends one SOA query per zone over a single connected UDP socket (at most
//! [`MAX_IN_FLIGHT`] outstanding, answers matched by ID and question), and repeats a query
//! over TCP when its answer is truncated. An answer that does not parse, or does not match
//! an outstanding query (ID, question name, type and class), is ignored: it may be spoofed,
//! and the real answer may still come before the timeout.
//!
//! What a round reports (as [`Evidence::Sample`]s, so the engine applies rise and fall):
//!
//! * `server-running`: met when any valid DNS answer came back, whatever its rcode;
//! * `zone-ready` per zone: met on NOERROR with AA set and the zone's SOA in the answer,
//!   with the serial as argument; otherwise not met, with an `error` argument saying why
//!   (`refused`, `not authoritative`, `timeout`, …).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::condition::ConditionId;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "probe";
/// Most queries outstanding at once in a round.
/// (A burst larger than a receiver's socket buffer is dropped by the kernel, so keep it modest.)
pub const MAX_IN_FLIGHT: usize = 128;
/// Largest UDP answer we accept (EDNS is not used, but be generous).
const UDP_BUFFER: usize = 4096;

/// What the probe needs to know.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub server: String,
    pub address: SocketAddr,
    /// Zones to probe, lowercase with a trailing dot.
    pub zones: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// What one query found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// NOERROR, AA, and the zone's SOA in the answer section.
    Ready { serial: u32 },
    /// A valid answer with AA clear: the server does not serve the zone itself.
    NotAuthoritative,
    /// A valid answer with an error rcode (`refused`, `servfail`, …).
    Rcode(String),
    /// NOERROR and AA, but no SOA for the zone in the answer.
    NoSoa,
    /// The UDP answer was truncated and the TCP retry failed.
    TcpFailed(String),
    /// A TCP answer that is not a DNS message for our query.
    Malformed(String),
    /// No matching answer within the timeout.
    Timeout,
    /// The server's port is closed (ICMP port unreachable, TCP RST).
    ConnectionRefused,
    /// Another socket error.
    Network(String),
}

impl ProbeOutcome {
    /// Whether a valid DNS answer came back, i.e. the server is running.
    pub fn answered(&self) -> bool {
        matches!(
            self,
            ProbeOutcome::Ready { .. }
                | ProbeOutcome::NotAuthoritative
                | ProbeOutcome::Rcode(_)
                | ProbeOutcome::NoSoa
        )
    }

    /// The `error` argument of a failed outcome.
    pub fn error(&self) -> String {
        match self {
            ProbeOutcome::Ready { .. } => "ready".into(),
            ProbeOutcome::NotAuthoritative => "not authoritative".into(),
            ProbeOutcome::Rcode(rcode) => rcode.clone(),
            ProbeOutcome::NoSoa => "no SOA in the answer".into(),
            ProbeOutcome::TcpFailed(e) => format!("truncated over UDP, TCP failed: {e}"),
            ProbeOutcome::Malformed(e) => format!("malformed answer: {e}"),
            ProbeOutcome::Timeout => "timeout".into(),
            ProbeOutcome::ConnectionRefused => "connection refused".into(),
            ProbeOutcome::Network(e) => e.clone(),
        }
    }
}

/// The result of one round.
#[derive(Debug, Clone)]
pub struct ProbeRound {
    pub server: String,
    pub rise: u32,
    pub fall: u32,
    /// Per zone, in the configured order. With no zones configured, the root zone's
    /// outcome, used only for `server-running`.
    pub zones: Vec<(String, ProbeOutcome)>,
    /// Whether zones were configured (else `zones` holds the root probe).
    pub has_zones: bool,
    /// Datagrams received that were not a valid answer to an outstanding query.
    pub ignored: u32,
}

impl ProbeRound {
    /// Whether any valid DNS answer came back.
    pub fn answered(&self) -> bool {
        self.zones.iter().any(|(_, o)| o.answered())
    }

    /// The round as observations: `server-running` first, then one `zone-ready` per zone.
    pub fn observations(&self) -> Vec<Observation> {
        let sample = |met| Evidence::Sample {
            met,
            rise: self.rise,
            fall: self.fall,
        };
        let running = self.answered();
        let mut obs = Observation::new(
            SOURCE,
            &self.server,
            ConditionId::ServerRunning,
            None,
            sample(running),
        );
        if !running && let Some((_, outcome)) = self.zones.first() {
            obs = obs.arg("error", outcome.error());
        }
        let mut out = vec![obs];
        if self.has_zones {
            for (zone, outcome) in &self.zones {
                let ready = matches!(outcome, ProbeOutcome::Ready { .. });
                let obs = Observation::new(
                    SOURCE,
                    &self.server,
                    ConditionId::ZoneReady,
                    Some(zone),
                    sample(ready),
                );
                out.push(match outcome {
                    ProbeOutcome::Ready { serial } => obs.arg("serial", *serial),
                    other => obs.arg("error", other.error()),
                });
            }
        }
        out
    }
}

/// Probes every interval and sends the observations, until `tx` is closed.
pub async fn run_probe(settings: ProbeSettings, tx: mpsc::Sender<Observation>) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let round = probe_once(&settings).await;
        if round.ignored > 0 {
            tracing::debug!(
                server = settings.server,
                "ignored {} datagrams that did not answer a probe",
                round.ignored
            );
        }
        for obs in round.observations() {
            if tx.send(obs).await.is_err() {
                return;
            }
        }
    }
}

/// One round: every zone probed once.
pub async fn probe_once(settings: &ProbeSettings) -> ProbeRound {
    let has_zones = !settings.zones.is_empty();
    let zones: Vec<String> = if has_zones {
        settings.zones.clone()
    } else {
        vec![".".to_string()]
    };
    let mut round = ProbeRound {
        server: settings.server.clone(),
        rise: settings.rise,
        fall: settings.fall,
        zones: Vec::with_capacity(zones.len()),
        has_zones,
        ignored: 0,
    };
    let names: Vec<Option<Name>> = zones.iter().map(|z| Name::from_ascii(z).ok()).collect();
    let mut outcomes = match udp_round(settings, &names, &mut round.ignored).await {
        Ok(outcomes) => outcomes,
        Err(e) => vec![Some(socket_outcome(&e)); names.len()],
    };
    // Truncated answers: ask again over TCP, concurrently.
    let retries: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_none())
        .map(|(i, _)| i)
        .collect();
    let names = &names;
    let tcp = futures_util::future::join_all(retries.iter().map(|&i| async move {
        let name = names[i].clone().expect("only valid names are sent");
        (
            i,
            tcp_query(settings.address, &name, settings.timeout).await,
        )
    }))
    .await;
    for (i, outcome) in tcp {
        outcomes[i] = Some(outcome);
    }
    round.zones = zones
        .into_iter()
        .zip(outcomes)
        .map(|(z, o)| (z, o.unwrap_or(ProbeOutcome::Timeout)))
        .collect();
    round
}

fn socket_outcome(e: &std::io::Error) -> ProbeOutcome {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        ProbeOutcome::ConnectionRefused
    } else {
        ProbeOutcome::Network(e.to_string())
    }
}

/// Sends every query over one UDP socket. `None` in the result: truncated, ask over TCP.
async fn udp_round(
    settings: &ProbeSettings,
    names: &[Option<Name>],
    ignored: &mut u32,
) -> std::io::Result<Vec<Option<ProbeOutcome>>> {
    let bind: SocketAddr = if settings.address.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(settings.address).await?;
    let mut outcomes: Vec<Option<ProbeOutcome>> = vec![Some(ProbeOutcome::Timeout); names.len()];
    let mut ids = QueryIds::new();
    // id → (zone index, deadline)
    let mut pending: HashMap<u16, (usize, Instant)> = HashMap::new();
    let mut next = 0;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        while next < names.len() && pending.len() < MAX_IN_FLIGHT {
            let index = next;
            next += 1;
            let Some(name) = &names[index] else {
                outcomes[index] = Some(ProbeOutcome::Network("not a valid zone name".into()));
                continue;
            };
            let id = ids.fresh(&pending);
            let query = soa_query(id, name);
            match socket.send(&query).await {
                Ok(_) => {
                    pending.insert(id, (index, Instant::now() + settings.timeout));
                }
                Err(e) => {
                    let outcome = socket_outcome(&e);
                    if outcome == ProbeOutcome::ConnectionRefused {
                        return Ok(refuse_all(outcomes));
                    }
                    outcomes[index] = Some(outcome);
                }
            }
        }
        let Some(deadline) = pending.values().map(|(_, d)| *d).min() else {
            return Ok(outcomes);
        };
        match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Err(_) => {
                let now = Instant::now();
                pending.retain(|_, (index, d)| {
                    if *d <= now {
                        outcomes[*index] = Some(ProbeOutcome::Timeout);
                        false
                    } else {
                        true
                    }
                });
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Ok(refuse_all(outcomes));
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(len)) => {
                let Ok(message) = Message::from_vec(&buf[..len]) else {
                    *ignored += 1;
                    continue;
                };
                let id = message.metadata.id;
                let Some(&(index, _)) = pending.get(&id) else {
                    *ignored += 1;
                    continue;
                };
                let name = names[index].as_ref().expect("only valid names are pending");
                let Some((truncated, outcome)) = read_answer(&message, name) else {
                    *ignored += 1;
                    continue;
                };
                pending.remove(&id);
                outcomes[index] = (!truncated).then_some(outcome);
            }
        }
    }
}

/// The port is closed: every query without an answer was refused.
fn refuse_all(mut outcomes: Vec<Option<ProbeOutcome>>) -> Vec<Option<ProbeOutcome>> {
    for outcome in &mut outcomes {
        if *outcome == Some(ProbeOutcome::Timeout) {
            *outcome = Some(ProbeOutcome::ConnectionRefused);
        }
    }
    outcomes
}

/// One SOA query over TCP.
async fn tcp_query(address: SocketAddr, name: &Name, timeout: Duration) -> ProbeOutcome {
    let id = QueryIds::new().fresh(&HashMap::<u16, ()>::new());
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let query = soa_query(id, name);
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(&query);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await? as usize;
        let mut answer = vec![0u8; len];
        stream.read_exact(&mut answer).await?;
        Ok::<Vec<u8>, std::io::Error>(answer)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => ProbeOutcome::Timeout,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ProbeOutcome::Malformed("the connection closed before a whole answer".into())
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeOutcome::ConnectionRefused
        }
        Ok(Err(e)) => ProbeOutcome::TcpFailed(e.to_string()),
        Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
            Err(e) => ProbeOutcome::Malformed(e.to_string()),
            Ok(m) => match read_answer(&m, name).filter(|_| m.metadata.id == id) {
                Some((_, outcome)) => outcome,
                None => ProbeOutcome::Malformed("the answer does not match the query".into()),
            },
        },
    }
}

fn soa_query(id: u16, name: &Name) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(name.clone(), RecordType::SOA));
    message.to_vec().expect("a SOA query always encodes")
}

/// Reads a message as the answer to our SOA query for `zone`: `None` when it is not one
/// (the probe ignores it), else whether it is truncated and what it says.
fn read_answer(message: &Message, zone: &Name) -> Option<(bool, ProbeOutcome)> {
    answers(message, zone).then(|| (message.metadata.truncation, classify(message, zone)))
}

/// [`read_answer`] on raw bytes, for the fuzz target: never panics on any input.
pub fn classify_answer(bytes: &[u8], zone: &str) -> Option<(bool, ProbeOutcome)> {
    let mut zone = Name::from_ascii(zone).ok()?;
    zone.set_fqdn(true);
    read_answer(&Message::from_vec(bytes).ok()?, &zone)
}

/// Whether `message` is a response to our SOA query for `name`.
fn answers(message: &Message, name: &Name) -> bool {
    message.metadata.message_type == MessageType::Response
        && message.metadata.op_code == OpCode::Query
        && message.queries.len() == 1
        && message.queries[0].query_type == RecordType::SOA
        && message.queries[0].query_class == DNSClass::IN
        && message.queries[0].name == *name
}

/// What a matching answer says about the zone.
fn classify(message: &Message, zone: &Name) -> ProbeOutcome {
    let rcode = message.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return ProbeOutcome::Rcode(rcode_name(rcode));
    }
    if !message.metadata.authoritative {
        return ProbeOutcome::NotAuthoritative;
    }
    let zone = zone.to_lowercase();
    message
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) if r.name.to_lowercase() == zone => {
                Some(ProbeOutcome::Ready { serial: soa.serial })
            }
            _ => None,
        })
        .unwrap_or(ProbeOutcome::NoSoa)
}

/// The rcode's mnemonic in lowercase (`refused`, `servfail`), or `rcode N`.
fn rcode_name(rcode: ResponseCode) -> String {
    let code = u16::from(rcode);
    match code {
        1 => "formerr".into(),
        2 => "servfail".into(),
        3 => "nxdomain".into(),
        4 => "notimp".into(),
        5 => "refused".into(),
        9 => "notauth".into(),
        other => format!("rcode {other}"),
    }
}

/// Unpredictable query IDs (a spoofer must guess them), from the kernel's random source.
struct QueryIds {
    state: u64,
}

impl QueryIds {
    fn new() -> QueryIds {
        let mut seed = [0u8; 8];
        // SAFETY: the buffer is valid for 8 writable bytes.
        let got = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
        let mut state = u64::from_ne_bytes(seed);
        if got != 8 {
            state ^= std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15);
        }
        QueryIds { state: state | 1 }
    }

    /// A random ID not in `pending`.
    fn fresh<V>(&mut self, pending: &HashMap<u16, V>) -> u16 {
        loop {
            // xorshift64*
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let id = (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16;
            if !pending.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests;
