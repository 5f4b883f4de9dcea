//! The `notify` channel: DNS NOTIFY (RFC 1996) for a zone, sent to a list of targets when a
//! signal that the filter lets through is recorded, TSIG-signed (RFC 8945) when a key is
//! configured.
//!
//! A NOTIFY only says "the zone changed, look now", so one NOTIFY covers every signal
//! recorded before it: the channel reads the journal from its cursor, and after each batch
//! with a matching signal asks every target to be notified of the state as of the batch's
//! last `seq`. Each target has a task of its own, so a target that does not answer holds up
//! nobody else:
//!
//! * one try is a NOTIFY over UDP (`opcode` NOTIFY, `AA`, one question `<zone> SOA IN`, and
//!   the zone's SOA in the answer section when the channel serves the zone), answered or
//!   not within `timeout`;
//! * a `NOERROR` answer (with a valid TSIG when the request was signed) acknowledges it; any
//!   other answer (`NOTAUTH` for a key the target does not know, `REFUSED`, …) is logged and
//!   counted as an error, and not tried again: the target has spoken;
//! * no answer: tried again after 1 s, doubling up to `max-backoff`, at most `retries` times
//!   (RFC 1996 §3.6 suggests 5); then the target is logged and counted
//!   (`dns_oops_notify_unanswered_total`) as not answering, and the change is given up for
//!   it — it still picks the change up at its next SOA refresh;
//! * a newer change replaces one still being tried (tries start again), so a target that
//!   never answers costs one pending NOTIFY of memory, whatever the signal rate.
//!
//! The cursor moves past a signal once every target has acknowledged (or given up on) a
//! NOTIFY sent after it; a dns-oops killed before that notifies again at its next start.
//!
//! With `serve`, the channel also serves its zone — the node's signals zone — over plain
//! DNS for the targets to transfer ([`transfer`]); the zone is rebuilt from the journal's
//! current state after every batch, with the SOA serial set to the journal's `seq` (modulo
//! 2^32), so every change the targets are told of raises the serial.
//!
//! Not implemented: NOTIFY over TCP; TSIG on the served zone's transfers (the listener
//! relies on `allow`).

pub mod transfer;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType, TSigner};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, watch};

use super::{BATCH, ChannelError, start_cursor};
use crate::condition::ConditionId;
use crate::config::{NotifyChannelConfig, SignalFilter};
use crate::health::Health;
use crate::http::metrics::Metrics;
use crate::journal::{Journal, JournalError};
use crate::push::zone::{SignalsZone, ZoneSettings};
use crate::signal::{CurrentCondition, Signal, SignalState};
use transfer::{ServedZone, SharedZone, TransferListener};

/// The first wait before a NOTIFY is sent again.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// TTL of the served zone's records.
const SERVED_TTL: u32 = 60;
/// The served zone keeps the last event per server, condition and subject, at most this
/// many.
const MAX_EVENTS: usize = 4096;

/// A change the targets are to be told of.
#[derive(Debug, Clone)]
struct Change {
    /// The last journal signal it covers.
    seq: u64,
    /// The served zone's SOA, sent in the answer section.
    soa: Option<Record>,
}

/// A configured notify channel, its listener bound.
pub struct NotifyChannel {
    config: NotifyChannelConfig,
    zone_name: Name,
    signer: Option<TSigner>,
    listener: Option<TransferListener>,
}

impl NotifyChannel {
    /// Checks the key and binds the listener of the served zone, if any.
    pub fn open(config: &NotifyChannelConfig) -> Result<NotifyChannel, ChannelError> {
        let setup = |message: String| ChannelError::Setup {
            channel: config.name.clone(),
            message,
        };
        let zone_name = Name::from_ascii(&config.zone)
            .map_err(|e| setup(format!("zone `{}`: {e}", config.zone)))?;
        let signer = config
            .tsig_key
            .as_ref()
            .map(crate::sources::notify_in::signer)
            .transpose()
            .map_err(|e| setup(e.to_string()))?;
        let listener = config
            .serve
            .map(|addr| {
                TransferListener::bind(addr)
                    .map_err(|e| setup(format!("cannot serve the zone on {addr}: {e}")))
            })
            .transpose()?;
        Ok(NotifyChannel {
            config: config.clone(),
            zone_name,
            signer,
            listener,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn filter(&self) -> &SignalFilter {
        &self.config.filter
    }

    /// Reads the journal and notifies the targets until `latest` is closed.
    pub async fn run(
        mut self,
        journal: Arc<Journal>,
        mut latest: watch::Receiver<u64>,
        metrics: Arc<Metrics>,
        health: Health,
    ) -> Result<(), JournalError> {
        let name = self.config.name.clone();
        let start = start_cursor(&journal, &name)?;
        let targets = Arc::new(Targets::new(health, &self.config.targets));
        let mut tasks = tokio::task::JoinSet::new();

        let mut events = BTreeMap::new();
        let served = match self.listener.take() {
            Some(listener) => {
                let settings = zone_settings(&self.zone_name, listener.local_addr().ok());
                let zone = build_zone(&settings, &journal, &events)?;
                let shared: SharedZone = Arc::new(RwLock::new(Arc::new(zone)));
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(
                        channel = name,
                        "notify: serving {} on {addr} (UDP and TCP)",
                        self.config.zone
                    );
                }
                let allow = Arc::new(self.config.allow.clone());
                tasks.spawn(listener.serve(shared.clone(), allow));
                Some((settings, shared))
            }
            None => None,
        };

        let (change_tx, _) = watch::channel(None::<Change>);
        let wake = Arc::new(Notify::new());
        let mut done = Vec::new();
        for &target in &self.config.targets {
            let acknowledged = Arc::new(AtomicU64::new(start));
            done.push(acknowledged.clone());
            let task = TargetTask {
                channel: name.clone(),
                target,
                zone: self.zone_name.clone(),
                signer: self.signer.clone(),
                timeout: self.config.timeout,
                retries: self.config.retries,
                max_backoff: self.config.max_backoff,
                metrics: metrics.clone(),
                acknowledged,
                wake: wake.clone(),
                targets: targets.clone(),
            };
            tasks.spawn(task.run(change_tx.subscribe()));
        }

        let mut read = start;
        let mut wanted = start;
        let mut written = start;
        loop {
            let batch = journal.signals_after(read, BATCH)?;
            if let Some(last) = batch.last() {
                read = last.seq;
                remember_events(&mut events, &batch);
                let soa = match &served {
                    Some((settings, shared)) => {
                        let zone = build_zone(settings, &journal, &events)?;
                        let soa = zone.zone.records(zone.zone.apex(), RecordType::SOA);
                        *shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(zone);
                        soa.into_iter().next()
                    }
                    None => None,
                };
                if batch.iter().any(|s| self.config.filter.matches(s)) {
                    wanted = read;
                    change_tx.send_replace(Some(Change { seq: read, soa }));
                }
            } else {
                tokio::select! {
                    changed = latest.changed() => if changed.is_err() {
                        break;
                    },
                    () = wake.notified() => {}
                }
            }
            let position = cursor_position(read, wanted, &done);
            if position != written {
                journal.set_cursor(&name, position)?;
                metrics.channel_delivered(&name, position);
                written = position;
            }
        }
        if written < read {
            tracing::info!(
                channel = name,
                "shutting down with NOTIFY unacknowledged; the signals after seq {written} are notified again at the next start"
            );
        }
        tasks.abort_all();
        Ok(())
    }
}

/// Where the cursor may be: everything read when every target has settled the last change,
/// otherwise the least any target has settled.
fn cursor_position(read: u64, wanted: u64, done: &[Arc<AtomicU64>]) -> u64 {
    let least = done
        .iter()
        .map(|d| d.load(Ordering::Acquire))
        .min()
        .unwrap_or(read);
    if least >= wanted { read } else { least }
}

/// The zone settings of a served signals zone: the NS host `ns.<apex>` at the listener's
/// address.
fn zone_settings(apex: &Name, addr: Option<SocketAddr>) -> ZoneSettings {
    let apex = apex.to_lowercase();
    let host = Name::from_ascii("ns")
        .ok()
        .and_then(|ns| ns.append_domain(&apex).ok())
        .unwrap_or_else(|| apex.clone());
    ZoneSettings {
        apex,
        host,
        port: addr.map_or(53, |a| a.port()),
        addresses: addr.map(|a| a.ip()).into_iter().collect(),
        ttl: SERVED_TTL,
    }
}

/// Keeps the last event of each server, condition and subject.
fn remember_events(
    events: &mut BTreeMap<(String, ConditionId, Option<String>), CurrentCondition>,
    batch: &[Signal],
) {
    for signal in batch.iter().filter(|s| s.state == SignalState::Event) {
        let key = (
            signal.server.clone(),
            signal.condition,
            signal.subject.clone(),
        );
        if events.len() >= MAX_EVENTS && !events.contains_key(&key) {
            continue;
        }
        events.insert(
            key,
            CurrentCondition {
                server: signal.server.clone(),
                condition: signal.condition,
                subject: signal.subject.clone(),
                since: signal.time,
                args: signal.args.clone(),
                source: signal.source.clone(),
                seq: signal.seq,
            },
        );
    }
}

/// The signals zone as of the journal's current state and the last events.
fn build_zone(
    settings: &ZoneSettings,
    journal: &Journal,
    events: &BTreeMap<(String, ConditionId, Option<String>), CurrentCondition>,
) -> Result<ServedZone, JournalError> {
    let (seq, mut rows) = journal.current_with_seq()?;
    rows.extend(events.values().cloned());
    let zone = SignalsZone::new(settings.clone(), &rows, seq as u32);
    let mut names = BTreeSet::new();
    if zone.contains(&settings.host) && settings.host != settings.apex {
        names.insert(settings.host.clone());
    }
    for row in &rows {
        if let Some(name) = zone.condition_name(&row.server, row.condition.as_str()) {
            names.insert(name.to_lowercase());
        }
    }
    Ok(ServedZone { zone, names })
}

/// One target's sender.
struct TargetTask {
    channel: String,
    target: SocketAddr,
    zone: Name,
    signer: Option<TSigner>,
    timeout: Duration,
    retries: u32,
    max_backoff: Duration,
    metrics: Arc<Metrics>,
    /// The `seq` of the last change settled (acknowledged or given up).
    acknowledged: Arc<AtomicU64>,
    wake: Arc<Notify>,
    targets: Arc<Targets>,
}

/// The channel's health, from how each target answered its last NOTIFY: `connected` while
/// every target acknowledges, `stalled` while some do not, `gone` while none answers at all.
struct Targets {
    health: Health,
    /// Per target: `None` when its last NOTIFY was acknowledged, else whether it was silent
    /// (no answer) and why.
    problems: std::sync::Mutex<BTreeMap<SocketAddr, Option<(bool, String)>>>,
}

impl Targets {
    fn new(health: Health, targets: &[SocketAddr]) -> Targets {
        let targets_text = targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        health.connected(format!("notifying {targets_text}"));
        Targets {
            health,
            problems: std::sync::Mutex::new(targets.iter().map(|t| (*t, None)).collect()),
        }
    }

    /// Records how `target`'s last try ended and updates the channel's health.
    fn report(&self, target: SocketAddr, problem: Option<(bool, String)>) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.insert(target, problem);
        let failing: Vec<String> = problems
            .iter()
            .filter_map(|(t, p)| p.as_ref().map(|(_, why)| format!("{t}: {why}")))
            .collect();
        if failing.is_empty() {
            self.health
                .connected(format!("{} targets acknowledge", problems.len()));
        } else if problems.values().all(|p| matches!(p, Some((true, _)))) {
            self.health.gone(failing.join("; "));
        } else {
            self.health.stalled(failing.join("; "));
        }
    }
}

/// How one try ended, when it did not end with an acknowledgement.
enum TryFailure {
    /// The target answered, but not with an acknowledgement: not tried again.
    Answered(String),
    /// No (usable) answer: tried again.
    Silent(String),
}

impl TargetTask {
    async fn run(self, mut changes: watch::Receiver<Option<Change>>) {
        let mut failing = false;
        loop {
            if changes.changed().await.is_err() {
                return;
            }
            let Some(mut change) = changes.borrow_and_update().clone() else {
                continue;
            };
            let mut tries = 0u32;
            let mut step = FIRST_BACKOFF;
            loop {
                tries += 1;
                let failure = match self.try_once(&change).await {
                    Ok(()) => {
                        if failing {
                            self.targets.report(self.target, None);
                            tracing::info!(
                                channel = self.channel,
                                target = %self.target,
                                "notify: {} acknowledges again",
                                self.target
                            );
                            failing = false;
                        }
                        break;
                    }
                    Err(failure) => failure,
                };
                self.metrics.channel_error(&self.channel);
                failing = true;
                match &failure {
                    TryFailure::Answered(why) => self
                        .targets
                        .report(self.target, Some((false, format!("refused: {why}")))),
                    TryFailure::Silent(why) => self.targets.report(
                        self.target,
                        Some((true, format!("no answer after {tries} tries ({why})"))),
                    ),
                }
                match failure {
                    TryFailure::Answered(why) => {
                        tracing::error!(
                            channel = self.channel,
                            target = %self.target,
                            seq = change.seq,
                            "notify: {} refused the NOTIFY for {}: {why}; not sent again for this change",
                            self.target,
                            self.zone
                        );
                        break;
                    }
                    TryFailure::Silent(why) if tries > self.retries => {
                        self.metrics
                            .notify_unanswered(&self.channel, &self.target.to_string());
                        tracing::error!(
                            channel = self.channel,
                            target = %self.target,
                            seq = change.seq,
                            "notify: {} did not answer {tries} NOTIFYs for {} ({why}); giving up on this change",
                            self.target,
                            self.zone
                        );
                        break;
                    }
                    TryFailure::Silent(why) => {
                        tracing::warn!(
                            channel = self.channel,
                            target = %self.target,
                            seq = change.seq,
                            "notify: {} ({why}); try {tries} of {}, next in {step:?}",
                            self.target,
                            self.retries + 1
                        );
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(step) => {}
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if let Some(newer) = changes.borrow_and_update().clone() {
                            change = newer;
                            tries = 0;
                            step = FIRST_BACKOFF;
                            continue;
                        }
                    }
                }
                step = (step * 2).min(self.max_backoff);
            }
            self.acknowledged.store(change.seq, Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// Sends one NOTIFY and waits for its answer.
    async fn try_once(&self, change: &Change) -> Result<(), TryFailure> {
        let silent = |e: std::io::Error| TryFailure::Silent(e.to_string());
        let id = random_id();
        let mut request = Message::new(id, MessageType::Query, OpCode::Notify);
        request.metadata.authoritative = true;
        let mut question = Query::query(self.zone.clone(), RecordType::SOA);
        question.set_query_class(DNSClass::IN);
        request.add_query(question);
        if let Some(soa) = &change.soa {
            request.add_answer(soa.clone());
        }
        let mut verifier = None;
        if let Some(signer) = &self.signer {
            let (record, check) = signer
                .sign_message(&request, unix_now())
                .map_err(|e| TryFailure::Silent(format!("cannot sign: {e}")))?;
            request.set_signature(record);
            verifier = check;
        }
        let bytes = request
            .to_vec()
            .map_err(|e| TryFailure::Silent(format!("cannot encode: {e}")))?;
        let local: SocketAddr = if self.target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(silent)?;
        socket.connect(self.target).await.map_err(silent)?;
        socket.send(&bytes).await.map_err(silent)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut buffer = vec![0u8; 65535];
        loop {
            let len = match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
                Ok(Ok(len)) => len,
                // ICMP port unreachable shows up as a refused receive.
                Ok(Err(e)) => return Err(silent(e)),
                Err(_) => {
                    return Err(TryFailure::Silent(format!(
                        "no answer within {:?}",
                        self.timeout
                    )));
                }
            };
            let answer = &buffer[..len];
            let Ok(message) = Message::from_vec(answer) else {
                continue;
            };
            if message.metadata.id != id
                || message.metadata.message_type != MessageType::Response
                || message.metadata.op_code != OpCode::Notify
            {
                continue;
            }
            let rcode = message.metadata.response_code;
            let tsig_error = message
                .signature
                .as_ref()
                .and_then(|record| record.data.error.as_ref())
                .map(|e| format!(" (TSIG error {e:?})"))
                .unwrap_or_default();
            if let Some(verifier) = verifier.as_mut()
                && let Err(e) = verifier.verify(answer)
            {
                if rcode == ResponseCode::NoError {
                    // An unsigned or forged acknowledgement does not count.
                    return Err(TryFailure::Silent(format!(
                        "the answer's TSIG does not verify: {e}"
                    )));
                }
                return Err(TryFailure::Answered(format!(
                    "answered {rcode}{tsig_error}, unsigned or with a TSIG that does not verify"
                )));
            }
            return match rcode {
                ResponseCode::NoError => Ok(()),
                other => Err(TryFailure::Answered(format!(
                    "answered {other}{tsig_error}"
                ))),
            };
        }
    }
}

fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = SystemRandom::new().fill(&mut bytes);
    u16::from_be_bytes(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
