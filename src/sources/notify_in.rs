//! The `notify-in` source: DNS NOTIFY (RFC 1996) that the watched server sends when a zone
//! changes, confirmed by a SOA query to that server.
//!
//! The server is told to notify dns-oops (Knot `notify:`, NSD `notify:`, BIND
//! `also-notify`). The listener serves UDP and TCP on one address — Knot sends NOTIFY over
//! TCP, NSD and BIND over UDP. TCP messages carry a two-octet length, several per
//! connection; each connection has a task of its own, at most [`MAX_TCP_CONNECTIONS`] at
//! once, and is closed after [`TCP_IDLE_TIMEOUT`] without a message.
//!
//! What a request gets ([`NotifyResponder::respond`]), checked in this order:
//!
//! | request | answer | [`NotifyOutcome`] |
//! |---|---|---|
//! | shorter than a DNS header | none | `unreadable` |
//! | QR=1, a response | none: answering responses lets two servers ping-pong | `response` |
//! | source address outside `allow` | REFUSED | `not-allowed` |
//! | opcode other than NOTIFY | NOTIMP | `not-implemented` |
//! | does not parse | FORMERR | `malformed` |
//! | TSIG with a key or algorithm we do not have | NOTAUTH, TSIG error BADKEY | `tsig-bad-key` |
//! | TSIG whose MAC does not verify | NOTAUTH, BADSIG | `tsig-bad-signature` |
//! | TSIG signed further from now than its fudge | NOTAUTH, BADTIME | `tsig-bad-time` |
//! | no TSIG while TSIG is required | NOTAUTH | `tsig-missing` |
//! | not one question of type SOA, class IN | FORMERR | `malformed` |
//! | a zone that is not one of the server's | REFUSED | `unknown-zone` |
//! | anything else | NOERROR, AA, the question echoed | `accepted` |
//!
//! The answer to a signed request is signed with the same key, except BADKEY and BADSIG,
//! which RFC 8945 wants unsigned. Every request that is not accepted is counted and logged —
//! at most one line per outcome every [`LOG_INTERVAL`], with the total and how many went
//! unlogged — and is never acted on.
//!
//! An accepted NOTIFY only says "look now". The source then asks the server's configured
//! address, never the NOTIFY's sender, for the zone's SOA with the probe's
//! [`probe_once`]. A ready answer is observed as `zone-ready` met, as an
//! [`Evidence::Assert`] with the `serial`; the engine turns a new serial into
//! `zone-updated`. A failed confirmation is logged and observes nothing: not-ready belongs
//! to the probe source.
//!
//! Per zone, a confirmation starts at most once every `min-interval`. NOTIFYs that arrive
//! while one runs, or before the interval is over, are folded into one more confirmation
//! when it is, so the last change of a burst is always seen ([`ConfirmSchedule`]).
//!
//! Not implemented: truncated TSIG MACs (refused as BADSIG); a cache of the last time
//! signed per key, so a NOTIFY replayed within its fudge is accepted again (it can only
//! cause one more SOA query, within the rate limit); EDNS options (an OPT in the request
//! gets a bare OPT back); the serial that a NOTIFY may carry in its answer section (the
//! server is asked instead).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm, TsigError, make_tsig_record, signed_bitmessage_to_buf,
};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType, TSigner};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::probe::{ProbeOutcome, ProbeSettings, probe_once};
use crate::condition::ConditionId;
use crate::config::{AddressPrefix, TsigHmac, TsigKey};
use crate::health::Health;
use crate::http::metrics::Metrics;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "notify-in";
/// Most TCP connections open at once; more are closed as soon as they are accepted.
pub const MAX_TCP_CONNECTIONS: usize = 64;
/// A TCP connection that sends no message (or does not take its answer) for this long is
/// closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one log line per kind of refused request in this time.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The fudge of the TSIG records we sign, in seconds (RFC 8945 recommends 300).
const FUDGE: u16 = 300;
/// Largest UDP message read.
const UDP_BUFFER: usize = 65535;

/// What the source needs to know.
#[derive(Debug, Clone)]
pub struct NotifyInSettings {
    pub server: String,
    /// Where the confirming SOA queries go: the server's configured address.
    pub server_address: SocketAddr,
    /// The zones NOTIFY is accepted for: lowercase, with a trailing dot.
    pub zones: Vec<String>,
    /// UDP and TCP, on the same address. Port 0 picks a port free for both.
    pub listen: SocketAddr,
    pub allow: Vec<AddressPrefix>,
    pub tsig_key: Option<TsigKey>,
    pub require_tsig: bool,
    /// Per zone, at most one confirmation starts in this time.
    pub min_interval: Duration,
    /// How long a confirming SOA query waits for its answer.
    pub timeout: Duration,
}

/// Why the source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyInError {
    #[error("cannot listen for NOTIFY on {address} ({transport}): {source}")]
    Bind {
        address: SocketAddr,
        transport: &'static str,
        source: io::Error,
    },
    #[error("TSIG key `{name}` cannot be used: {reason}")]
    Key { name: String, reason: String },
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    Accepted,
    Unreadable,
    Response,
    NotAllowed,
    NotImplemented,
    Malformed,
    TsigBadKey,
    TsigBadSignature,
    TsigBadTime,
    TsigMissing,
    UnknownZone,
}

impl NotifyOutcome {
    const ALL: [NotifyOutcome; 11] = [
        NotifyOutcome::Accepted,
        NotifyOutcome::Unreadable,
        NotifyOutcome::Response,
        NotifyOutcome::NotAllowed,
        NotifyOutcome::NotImplemented,
        NotifyOutcome::Malformed,
        NotifyOutcome::TsigBadKey,
        NotifyOutcome::TsigBadSignature,
        NotifyOutcome::TsigBadTime,
        NotifyOutcome::TsigMissing,
        NotifyOutcome::UnknownZone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyOutcome::Accepted => "accepted",
            NotifyOutcome::Unreadable => "unreadable",
            NotifyOutcome::Response => "response",
            NotifyOutcome::NotAllowed => "not-allowed",
            NotifyOutcome::NotImplemented => "not-implemented",
            NotifyOutcome::Malformed => "malformed",
            NotifyOutcome::TsigBadKey => "tsig-bad-key",
            NotifyOutcome::TsigBadSignature => "tsig-bad-signature",
            NotifyOutcome::TsigBadTime => "tsig-bad-time",
            NotifyOutcome::TsigMissing => "tsig-missing",
            NotifyOutcome::UnknownZone => "unknown-zone",
        }
    }

    /// Its place in [`NotifyOutcome::ALL`], which lists the outcomes in declaration order.
    fn index(self) -> usize {
        self as usize
    }
}

/// How many requests ended each way since the source started.
#[derive(Debug, Default)]
pub struct NotifyCounters {
    counts: [AtomicU64; NotifyOutcome::ALL.len()],
}

impl NotifyCounters {
    /// Counts one request; returns the new total for its outcome.
    fn add(&self, outcome: NotifyOutcome) -> u64 {
        self.counts[outcome.index()].fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn get(&self, outcome: NotifyOutcome) -> u64 {
        self.counts[outcome.index()].load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    server: String,
    outcome: String,
}

/// `dns_oops_notify_in_requests_total{server, outcome}`: the requests the listeners
/// received, by [`NotifyOutcome`].
#[derive(Debug, Default)]
pub struct NotifyInMetrics {
    requests: Family<RequestLabels, Counter>,
}

impl NotifyInMetrics {
    pub fn register(registry: &mut Registry) -> NotifyInMetrics {
        let m = NotifyInMetrics::default();
        registry.register(
            "dns_oops_notify_in_requests",
            "NOTIFY requests received, by outcome (accepted, or why refused)",
            m.requests.clone(),
        );
        m
    }

    fn request(&self, server: &str, outcome: NotifyOutcome) {
        self.requests
            .get_or_create(&RequestLabels {
                server: server.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .inc();
    }
}

/// The answer to one request, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAnswer {
    /// The response in wire format; `None` when nothing is sent back.
    pub reply: Option<Vec<u8>>,
    pub outcome: NotifyOutcome,
    /// The zone asked about, as read from the question (for logs); for an accepted
    /// request, the configured zone, lowercase with a trailing dot.
    pub zone: Option<String>,
}

/// Decides what to answer to a request and whether to act on it. No I/O and no clock of its
/// own, so it can be tested and fuzzed on bytes.
pub struct NotifyResponder {
    zones: HashSet<String>,
    allow: Vec<AddressPrefix>,
    key: Option<TSigner>,
    require_tsig: bool,
}

/// How a request was authenticated.
enum Authenticated {
    /// No TSIG, and none required.
    Unsigned,
    /// A valid TSIG; the answer is signed over the request's MAC.
    Signed { request_mac: Vec<u8> },
}

/// Why a request's TSIG (or its absence) is refused.
enum TsigFailure<'a> {
    Missing,
    /// A key or algorithm we do not have; the request's TSIG record.
    BadKey(&'a Record<TSIG>),
    /// The MAC does not verify; the request's TSIG record.
    BadSignature(&'a Record<TSIG>),
    /// Valid, but signed too far from now: the answer is signed and carries our time.
    BadTime {
        key: &'a TSigner,
        request_mac: Vec<u8>,
        signed_at: u64,
    },
}

/// The TSIG record of an answer.
enum AnswerTsig<'a> {
    None,
    /// Signed with our key over the request's MAC.
    Signed {
        key: &'a TSigner,
        request_mac: &'a [u8],
        error: Option<TsigError>,
        signed_at: u64,
        other: Vec<u8>,
    },
    /// Unsigned, echoing the request's key name and algorithm, with an error.
    Unsigned {
        request: &'a Record<TSIG>,
        error: TsigError,
    },
}

impl NotifyResponder {
    /// `zones` lowercase with a trailing dot; `key` the one key NOTIFY may be signed with.
    pub fn new(
        zones: &[String],
        allow: Vec<AddressPrefix>,
        key: Option<TSigner>,
        require_tsig: bool,
    ) -> NotifyResponder {
        NotifyResponder {
            zones: zones.iter().cloned().collect(),
            allow,
            key,
            require_tsig,
        }
    }

    /// Answers `request`, received from `from` at `now` (seconds since the Unix epoch, for
    /// TSIG). Never panics, whatever the bytes.
    pub fn respond(&self, request: &[u8], from: IpAddr, now: u64) -> NotifyAnswer {
        let Ok(header) = Header::read(&mut BinDecoder::new(request)) else {
            return silent(NotifyOutcome::Unreadable);
        };
        let metadata = header.metadata;
        if metadata.message_type == MessageType::Response {
            return silent(NotifyOutcome::Response);
        }
        let message = Message::from_vec(request).ok();
        let questions: &[Query] = message.as_ref().map_or(&[], |m| &m.queries);
        let reply = AnswerParts {
            metadata: &metadata,
            questions,
            edns: message.as_ref().is_some_and(|m| m.edns.is_some()),
            zone: match questions {
                [question] => Some(question.name.to_lowercase().to_ascii()),
                _ => None,
            },
            now,
        };
        if !self.allow.iter().any(|prefix| prefix.contains(from)) {
            return reply.answer(
                ResponseCode::Refused,
                NotifyOutcome::NotAllowed,
                AnswerTsig::None,
            );
        }
        if metadata.op_code != OpCode::Notify {
            let outcome = NotifyOutcome::NotImplemented;
            return reply.answer(ResponseCode::NotImp, outcome, AnswerTsig::None);
        }
        let Some(message) = &message else {
            return reply.answer(
                ResponseCode::FormErr,
                NotifyOutcome::Malformed,
                AnswerTsig::None,
            );
        };
        let request_mac = match self.authenticate(request, message, now) {
            Ok(Authenticated::Unsigned) => None,
            Ok(Authenticated::Signed { request_mac }) => Some(request_mac),
            Err(failure) => return refuse_tsig(&reply, failure),
        };
        // The answer to a signed request is signed.
        let tsig = || match (&self.key, &request_mac) {
            (Some(key), Some(request_mac)) => AnswerTsig::Signed {
                key,
                request_mac,
                error: None,
                signed_at: now,
                other: Vec::new(),
            },
            _ => AnswerTsig::None,
        };
        let soa_question = matches!(questions, [question]
            if question.query_type == RecordType::SOA && question.query_class == DNSClass::IN);
        let Some(zone) = reply.zone.as_ref().filter(|_| soa_question) else {
            return reply.answer(ResponseCode::FormErr, NotifyOutcome::Malformed, tsig());
        };
        if !self.zones.contains(zone) {
            return reply.answer(ResponseCode::Refused, NotifyOutcome::UnknownZone, tsig());
        }
        reply.answer(ResponseCode::NoError, NotifyOutcome::Accepted, tsig())
    }

    /// Checks the request's TSIG against our key (RFC 8945 §5.2).
    fn authenticate<'a>(
        &'a self,
        request: &[u8],
        message: &'a Message,
        now: u64,
    ) -> Result<Authenticated, TsigFailure<'a>> {
        let Some(record) = &message.signature else {
            return match self.require_tsig {
                true => Err(TsigFailure::Missing),
                false => Ok(Authenticated::Unsigned),
            };
        };
        let tsig = &record.data;
        let key = self
            .key
            .as_ref()
            .filter(|key| record.name == *key.signer_name() && tsig.algorithm == *key.algorithm())
            .ok_or(TsigFailure::BadKey(record))?;
        // `message` parsed, so its TSIG is the last record and the only one: the layout
        // this function expects.
        let verified = signed_bitmessage_to_buf(request, None, true)
            .is_ok_and(|(signed_data, _)| key.verify(&signed_data, &tsig.mac).is_ok());
        if !verified {
            return Err(TsigFailure::BadSignature(record));
        }
        if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
            return Err(TsigFailure::BadTime {
                key,
                request_mac: tsig.mac.clone(),
                signed_at: tsig.time,
            });
        }
        Ok(Authenticated::Signed {
            request_mac: tsig.mac.clone(),
        })
    }
}

/// The NOTAUTH answer to a request whose TSIG is refused (RFC 8945 §5.2): BADKEY and BADSIG
/// unsigned, BADTIME signed.
fn refuse_tsig(reply: &AnswerParts, failure: TsigFailure) -> NotifyAnswer {
    let code = ResponseCode::NotAuth;
    match failure {
        TsigFailure::Missing => reply.answer(code, NotifyOutcome::TsigMissing, AnswerTsig::None),
        TsigFailure::BadKey(request) => {
            let error = TsigError::BadKey;
            let tsig = AnswerTsig::Unsigned { request, error };
            reply.answer(code, NotifyOutcome::TsigBadKey, tsig)
        }
        TsigFailure::BadSignature(request) => {
            let error = TsigError::BadSig;
            let tsig = AnswerTsig::Unsigned { request, error };
            reply.answer(code, NotifyOutcome::TsigBadSignature, tsig)
        }
        TsigFailure::BadTime {
            key,
            request_mac,
            signed_at,
        } => {
            // The answer keeps the request's time, so the sender can verify it, and tells
            // ours in Other Data (48 bits).
            let tsig = AnswerTsig::Signed {
                key,
                request_mac: &request_mac,
                error: Some(TsigError::BadTime),
                signed_at,
                other: reply.now.to_be_bytes()[2..].to_vec(),
            };
            reply.answer(code, NotifyOutcome::TsigBadTime, tsig)
        }
    }
}

/// An outcome that gets no answer.
fn silent(outcome: NotifyOutcome) -> NotifyAnswer {
    NotifyAnswer {
        reply: None,
        outcome,
        zone: None,
    }
}

/// What an answer is built from.
struct AnswerParts<'a> {
    metadata: &'a Metadata,
    /// Echoed in the answer.
    questions: &'a [Query],
    /// Whether the request had an OPT record, so the answer needs one.
    edns: bool,
    /// The name in the request's only question, lowercase, for logs.
    zone: Option<String>,
    now: u64,
}

impl AnswerParts<'_> {
    /// The answer, authoritative when the request is accepted. Its `reply` is `None` only if
    /// it cannot be encoded, which it always can: its names came off the wire.
    fn answer(
        &self,
        rcode: ResponseCode,
        outcome: NotifyOutcome,
        tsig: AnswerTsig,
    ) -> NotifyAnswer {
        let mut response = Message::new(
            self.metadata.id,
            MessageType::Response,
            self.metadata.op_code,
        );
        response.metadata = Metadata::response_from_request(self.metadata);
        response.metadata.response_code = rcode;
        response.metadata.authoritative = outcome == NotifyOutcome::Accepted;
        response.add_queries(self.questions.iter().cloned());
        if self.edns {
            response.set_edns(Edns::new());
        }
        let reply = sign(response, self.metadata.id, self.now, tsig).and_then(|m| m.to_vec().ok());
        NotifyAnswer {
            reply,
            outcome,
            zone: self.zone.clone(),
        }
    }
}

/// Adds the TSIG record to an answer (RFC 8945 §5.3).
fn sign(mut response: Message, id: u16, now: u64, tsig: AnswerTsig) -> Option<Message> {
    match tsig {
        AnswerTsig::None => {}
        AnswerTsig::Unsigned { request, error } => {
            let data = TSIG::new(
                request.data.algorithm.clone(),
                now,
                request.data.fudge,
                Vec::new(),
                id,
                Some(error),
                Vec::new(),
            );
            response.set_signature(Box::new(make_tsig_record(request.name.clone(), data)));
        }
        AnswerTsig::Signed {
            key,
            request_mac,
            error,
            signed_at,
            other,
        } => {
            let unsigned = response.to_vec().ok()?;
            let stub = TSIG::new(
                key.algorithm().clone(),
                signed_at,
                FUDGE,
                Vec::new(),
                id,
                error,
                other,
            );
            let signed_data = key
                .encode_response_tbs(request_mac, &unsigned, &stub)
                .ok()?;
            let mac = key.sign(&signed_data).ok()?;
            let record = make_tsig_record(key.signer_name().clone(), stub.set_mac(mac));
            response.set_signature(Box::new(record));
        }
    }
    Some(response)
}

/// The hickory signer for a configured key.
pub(crate) fn signer(key: &TsigKey) -> Result<TSigner, NotifyInError> {
    let fail = |reason: String| NotifyInError::Key {
        name: key.name.clone(),
        reason,
    };
    let name = Name::from_ascii(&key.name).map_err(|e| fail(e.to_string()))?;
    let algorithm = match key.algorithm {
        TsigHmac::Sha256 => TsigAlgorithm::HmacSha256,
        TsigHmac::Sha384 => TsigAlgorithm::HmacSha384,
        TsigHmac::Sha512 => TsigAlgorithm::HmacSha512,
    };
    TSigner::new(key.secret.clone(), algorithm, name, FUDGE).map_err(|e| fail(e.to_string()))
}

/// When to confirm each zone: a confirmation starts at most once per `min_interval`, and
/// NOTIFYs that come while one runs or before the interval is over are folded into one
/// more, started when both are done.
///
/// ```text
///  NOTIFY ──▶ idle, interval over ──────────▶ start now
///         └─▶ running, or interval not over ─▶ waiting ──(finished and interval over)──▶ start
/// ```
#[derive(Debug)]
pub struct ConfirmSchedule {
    min_interval: Duration,
    zones: HashMap<String, ZoneTurn>,
}

#[derive(Debug)]
struct ZoneTurn {
    /// When the last confirmation started.
    started: Instant,
    running: bool,
    /// A NOTIFY came after the last confirmation started.
    waiting: bool,
}

impl ConfirmSchedule {
    pub fn new(min_interval: Duration) -> ConfirmSchedule {
        ConfirmSchedule {
            min_interval,
            zones: HashMap::new(),
        }
    }

    /// A NOTIFY for `zone` was accepted: whether to start confirming it now (then it counts
    /// as running until [`ConfirmSchedule::finished`]).
    pub fn notified(&mut self, zone: &str, now: Instant) -> bool {
        let min_interval = self.min_interval;
        match self.zones.get_mut(zone) {
            Some(turn) if turn.running || now < turn.started + min_interval => {
                turn.waiting = true;
                false
            }
            Some(turn) => {
                *turn = ZoneTurn {
                    started: now,
                    running: true,
                    waiting: false,
                };
                true
            }
            None => {
                let turn = ZoneTurn {
                    started: now,
                    running: true,
                    waiting: false,
                };
                self.zones.insert(zone.to_string(), turn);
                true
            }
        }
    }

    /// The confirmation of `zone` ended.
    pub fn finished(&mut self, zone: &str) {
        if let Some(turn) = self.zones.get_mut(zone) {
            turn.running = false;
        }
    }

    /// The zones whose folded NOTIFYs are due at `now`; each now counts as running.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        for (zone, turn) in &mut self.zones {
            if turn.waiting && !turn.running && now >= turn.started + self.min_interval {
                *turn = ZoneTurn {
                    started: now,
                    running: true,
                    waiting: false,
                };
                due.push(zone.clone());
            }
        }
        due
    }

    /// When [`ConfirmSchedule::due`] has something next, not counting zones whose
    /// confirmation still runs.
    pub fn next_due(&self) -> Option<Instant> {
        self.zones
            .values()
            .filter(|turn| turn.waiting && !turn.running)
            .map(|turn| turn.started + self.min_interval)
            .min()
    }
}

/// Zones with accepted NOTIFYs that the confirmer has not taken yet: one entry per zone
/// however many NOTIFYs come, so a flood cannot grow it.
#[derive(Default)]
struct NotifiedZones {
    zones: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl NotifiedZones {
    fn add(&self, zone: String) {
        self.zones
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(zone);
        self.wake.notify_one();
    }

    fn take(&self) -> BTreeSet<String> {
        std::mem::take(
            &mut *self
                .zones
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// Rate limit for log lines: one per outcome per [`LOG_INTERVAL`].
#[derive(Default)]
struct LogLimit {
    /// Per outcome: when a line was last written, and how many were left out since.
    slots: Mutex<[(Option<Instant>, u64); NotifyOutcome::ALL.len()]>,
}

impl LogLimit {
    /// `Some(left out since the last line)` when a line for `outcome` may be written now.
    fn admit(&self, outcome: NotifyOutcome, now: Instant) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let (last, left_out) = &mut slots[outcome.index()];
        if last.is_some_and(|at| now < at + LOG_INTERVAL) {
            *left_out += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(left_out))
    }
}

/// Answers requests from both transports, counts and logs them, and hands accepted zones
/// to the confirmer.
struct NotifyHandler {
    server: String,
    responder: NotifyResponder,
    counters: NotifyCounters,
    log_limit: LogLimit,
    notified: NotifiedZones,
    /// Where the counters are exported, when the daemon serves metrics.
    metrics: Option<Arc<Metrics>>,
}

impl NotifyHandler {
    /// The reply to send for one request, if any.
    fn handle(&self, request: &[u8], from: SocketAddr, transport: &'static str) -> Option<Vec<u8>> {
        let answer = self.responder.respond(request, from.ip(), unix_now());
        let total = self.counters.add(answer.outcome);
        if let Some(metrics) = &self.metrics {
            metrics.notify_in.request(&self.server, answer.outcome);
        }
        let zone = answer.zone.as_deref().unwrap_or("-");
        if answer.outcome == NotifyOutcome::Accepted {
            tracing::debug!(server = self.server, %from, transport, zone, accepted = total, "NOTIFY accepted");
            if let Some(zone) = answer.zone {
                self.notified.add(zone);
            }
        } else if let Some(left_out) = self.log_limit.admit(answer.outcome, Instant::now()) {
            tracing::warn!(
                server = self.server,
                %from,
                transport,
                zone,
                reason = answer.outcome.as_str(),
                total,
                unlogged = left_out,
                "NOTIFY refused, not acted on"
            );
        }
        answer.reply
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A bound NOTIFY listener, ready to run.
pub struct NotifyListener {
    settings: NotifyInSettings,
    udp: UdpSocket,
    tcp: TcpListener,
    handler: Arc<NotifyHandler>,
}

impl NotifyListener {
    /// Binds UDP and TCP on `settings.listen` (with port 0, on one port free for both).
    pub async fn bind(settings: NotifyInSettings) -> Result<NotifyListener, NotifyInError> {
        NotifyListener::bind_with_metrics(settings, None).await
    }

    /// [`NotifyListener::bind`], counting requests in `metrics` too.
    pub async fn bind_with_metrics(
        settings: NotifyInSettings,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<NotifyListener, NotifyInError> {
        let key = settings.tsig_key.as_ref().map(signer).transpose()?;
        let (udp, tcp) = bind_both(settings.listen).await?;
        let handler = NotifyHandler {
            server: settings.server.clone(),
            responder: NotifyResponder::new(
                &settings.zones,
                settings.allow.clone(),
                key,
                settings.require_tsig,
            ),
            counters: NotifyCounters::default(),
            log_limit: LogLimit::default(),
            notified: NotifiedZones::default(),
            metrics,
        };
        Ok(NotifyListener {
            settings,
            udp,
            tcp,
            handler: Arc::new(handler),
        })
    }

    /// The address both transports listen on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves NOTIFY and confirms zones until `tx` is closed.
    pub async fn run(self, tx: mpsc::Sender<Observation>) {
        let NotifyListener {
            settings,
            udp,
            tcp,
            handler,
        } = self;
        if let Ok(address) = udp.local_addr() {
            tracing::info!(
                server = settings.server,
                "listening for NOTIFY on {address} (UDP and TCP)"
            );
        }
        tokio::select! {
            () = tx.closed() => {}
            () = serve_udp(udp, handler.clone()) => {}
            () = serve_tcp(tcp, handler.clone()) => {}
            () = confirm_zones(&settings, &handler, tx.clone()) => {}
        }
    }
}

/// Binds the source and runs it until `tx` is closed; a failure to bind is logged. Its
/// health is `connected` while it listens, `gone` when it could not bind.
pub async fn run_notify_in(
    settings: NotifyInSettings,
    tx: mpsc::Sender<Observation>,
    metrics: Arc<Metrics>,
    health: Health,
) {
    let server = settings.server.clone();
    let listen = settings.listen;
    match NotifyListener::bind_with_metrics(settings, Some(metrics)).await {
        Ok(listener) => {
            let address = listener.local_addr().unwrap_or(listen);
            health.connected(format!("listening for NOTIFY on {address} (UDP and TCP)"));
            listener.run(tx).await
        }
        Err(e) => {
            health.gone(format!("not started: {e}"));
            tracing::error!(server, "notify-in source not started: {e}")
        }
    }
}

/// A UDP socket and a TCP listener on the same address.
async fn bind_both(address: SocketAddr) -> Result<(UdpSocket, TcpListener), NotifyInError> {
    let bind_error = |transport, source| NotifyInError::Bind {
        address,
        transport,
        source,
    };
    // With port 0 the kernel picks the UDP port, which TCP may have in use: try again.
    let attempts = if address.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(address)
            .await
            .map_err(|e| bind_error("udp", e))?;
        let bound = udp.local_addr().map_err(|e| bind_error("udp", e))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_error = Some(e),
        }
    }
    let e = last_error.unwrap_or_else(|| io::Error::other("no attempt made"));
    Err(bind_error("tcp", e))
}

async fn serve_udp(socket: UdpSocket, handler: Arc<NotifyHandler>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::debug!(server = handler.server, "NOTIFY over UDP: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Some(reply) = handler.handle(&buf[..len], from, "udp")
            && let Err(e) = socket.send_to(&reply, from).await
        {
            tracing::debug!(server = handler.server, %from, "answering NOTIFY over UDP: {e}");
        }
    }
}

async fn serve_tcp(listener: TcpListener, handler: Arc<NotifyHandler>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let handler = handler.clone();
                        connections.spawn(async move {
                            serve_connection(stream, peer, &handler).await;
                            drop(slot);
                        });
                    }
                    Err(_) => tracing::debug!(
                        server = handler.server,
                        %peer,
                        "{MAX_TCP_CONNECTIONS} NOTIFY connections open; closed another"
                    ),
                },
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to close.
                    tracing::warn!(server = handler.server, "accepting a NOTIFY connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// Answers the messages of one TCP connection until it closes, goes idle, or sends what
/// gets no answer.
async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, handler: &NotifyHandler) {
    let idle = TCP_IDLE_TIMEOUT;
    let mut request = Vec::new();
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(idle, stream.read_u16()).await else {
            return;
        };
        request.resize(usize::from(len), 0);
        let Ok(Ok(_)) = tokio::time::timeout(idle, stream.read_exact(&mut request)).await else {
            return;
        };
        let Some(reply) = handler.handle(&request, peer, "tcp") else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&reply);
        let Ok(Ok(())) = tokio::time::timeout(idle, stream.write_all(&framed)).await else {
            return;
        };
    }
}

/// Confirms notified zones by the schedule, concurrently across zones.
async fn confirm_zones(
    settings: &NotifyInSettings,
    handler: &NotifyHandler,
    tx: mpsc::Sender<Observation>,
) {
    let mut schedule = ConfirmSchedule::new(settings.min_interval);
    let mut confirmations = Confirmations {
        settings,
        tx,
        tasks: JoinSet::new(),
        zones: HashMap::new(),
    };
    loop {
        let next_due = schedule.next_due();
        let due = async {
            match next_due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = handler.notified.wake.notified() => {
                let now = Instant::now();
                for zone in handler.notified.take() {
                    if schedule.notified(&zone, now) {
                        confirmations.start(zone);
                    }
                }
            }
            Some(zone) = confirmations.finished() => schedule.finished(&zone),
            () = due => {}
        }
        for zone in schedule.due(Instant::now()) {
            confirmations.start(zone);
        }
    }
}

/// The confirmations running now, one task each.
struct Confirmations<'a> {
    settings: &'a NotifyInSettings,
    tx: mpsc::Sender<Observation>,
    tasks: JoinSet<()>,
    /// The zone each task confirms.
    zones: HashMap<tokio::task::Id, String>,
}

impl Confirmations<'_> {
    fn start(&mut self, zone: String) {
        let probe = ProbeSettings {
            server: self.settings.server.clone(),
            address: self.settings.server_address,
            zones: vec![zone.clone()],
            interval: self.settings.timeout,
            timeout: self.settings.timeout,
            rise: 1,
            fall: 1,
        };
        let task = self.tasks.spawn(confirm(probe, self.tx.clone()));
        self.zones.insert(task.id(), zone);
    }

    /// The zone of the next confirmation that ends; `None` when none runs.
    async fn finished(&mut self) -> Option<String> {
        while let Some(done) = self.tasks.join_next_with_id().await {
            let id = match &done {
                Ok((id, ())) => *id,
                Err(e) => e.id(),
            };
            if let Some(zone) = self.zones.remove(&id) {
                return Some(zone);
            }
        }
        None
    }
}

/// One confirming SOA query; observes `zone-ready` with the serial when the zone is ready.
async fn confirm(probe: ProbeSettings, tx: mpsc::Sender<Observation>) {
    let round = probe_once(&probe).await;
    let Some((zone, outcome)) = round.zones.first() else {
        return;
    };
    match outcome {
        ProbeOutcome::Ready { serial } => {
            tracing::debug!(server = probe.server, zone, serial, "NOTIFY confirmed");
            let observation = Observation::new(
                SOURCE,
                &probe.server,
                ConditionId::ZoneReady,
                Some(zone),
                Evidence::Assert { met: true },
            )
            .arg("serial", *serial);
            // A closed channel means the daemon is stopping.
            let _ = tx.send(observation).await;
        }
        other => tracing::warn!(
            server = probe.server,
            zone,
            "NOTIFY not confirmed: the server's SOA answer is {other}"
        ),
    }
}

#[cfg(test)]
mod tests;
