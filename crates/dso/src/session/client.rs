//! The client side of a DSO session carrying DNS Push Notifications.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use super::{
    AbortReason, Action, Event, SessionError, SubscriptionTable, Timers, carries_padding,
    encode_response, is_keepalive, ms_duration,
};
use crate::error::{Disposition, EncodeError};
use crate::message::{DsoMessage, MessageKind, Rcode, decode};
use crate::tlv::{Keepalive, Reconfirm, Subscribe, Tlv};

/// Client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Session timeouts asked for in every Keepalive request; the server decides (RFC 8490 §7.1).
    pub requested: Keepalive,
    /// How long to wait for the first DSO response before aborting (RFC 8490 §5.1.1: 30 s).
    pub establishment_timeout: Duration,
}

impl Default for ClientConfig {
    /// Requests a 15 s inactivity timeout and the RECOMMENDED 60-minute keepalive
    /// interval (RFC 8490 §6.5.2); waits 30 s for the first response.
    fn default() -> Self {
        Self {
            requested: Keepalive {
                inactivity_timeout_ms: Keepalive::DEFAULT_MS,
                keepalive_interval_ms: 3_600_000,
            },
            establishment_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No DSO request outstanding and no session (RFC 8490 §5 "Connected but Sessionless").
    Sessionless,
    /// DSO request(s) sent, no NOERROR response yet.
    Establishing {
        since: Instant,
    },
    Established,
    /// The server does not implement DSO (RFC 8490 §5.1.1).
    NoDso,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    No,
    /// UNSUBSCRIBE already sent; the response is still due.
    Sent,
    /// Not yet sendable (no session); send UNSUBSCRIBE if the response is NOERROR.
    Deferred,
}

#[derive(Debug, Clone)]
enum Pending {
    Keepalive,
    Subscribe {
        subscribe: Subscribe,
        cancel: Cancel,
    },
}

/// A DSO client session: subscriptions, keepalives and the client's timer duties.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    timers: Timers,
    next_id: u16,
    pending: HashMap<u16, Pending>,
    subscriptions: SubscriptionTable,
}

impl ClientSession {
    /// A session on a freshly connected transport.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        Self {
            config,
            phase: Phase::Sessionless,
            timers: Timers::new(now),
            next_id: 1,
            pending: HashMap::new(),
            subscriptions: SubscriptionTable::default(),
        }
    }

    /// Whether a NOERROR response has established the DSO session.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// Whether the session has been closed or aborted.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The session timeouts in force.
    pub fn timeouts(&self) -> Keepalive {
        self.timers.timeouts
    }

    /// An accepted subscription.
    pub fn subscription(&self, id: u16) -> Option<&Subscribe> {
        self.subscriptions.get(id)
    }

    /// All accepted subscriptions.
    pub fn subscriptions(&self) -> impl Iterator<Item = (u16, &Subscribe)> {
        self.subscriptions.iter()
    }

    /// Sends a SUBSCRIBE and returns its MESSAGE ID, which names the subscription until it
    /// is unsubscribed or refused. Refuses a duplicate NAME/TYPE/CLASS (RFC 8765 §6.2.1).
    pub fn subscribe(
        &mut self,
        name: Name,
        rtype: RecordType,
        class: DNSClass,
        now: Instant,
    ) -> Result<(u16, Vec<Action>), SessionError> {
        self.check_dso_allowed()?;
        let mut subscribe = Subscribe { name, rtype, class };
        subscribe.name.set_fqdn(true);
        if let Some(id) = self.duplicate_of(&subscribe) {
            return Err(SessionError::DuplicateSubscription { id });
        }
        let id = self.allocate_id().ok_or(SessionError::NoFreeMessageId)?;
        let bytes = DsoMessage::request(id, Tlv::Subscribe(subscribe.clone())).encode()?;
        self.pending.insert(
            id,
            Pending::Subscribe {
                subscribe,
                cancel: Cancel::No,
            },
        );
        self.sent_request(now, false);
        Ok((id, vec![Action::Send(bytes)]))
    }

    /// Cancels a subscription, accepted or still awaiting its response (RFC 8765 §6.4.1).
    /// Before the session is established no unidirectional message may be sent, so the
    /// UNSUBSCRIBE then waits for the SUBSCRIBE's NOERROR response.
    pub fn unsubscribe(&mut self, id: u16, now: Instant) -> Result<Vec<Action>, SessionError> {
        self.check_dso_allowed()?;
        let established = self.is_established();
        if self.subscriptions.remove(id).is_some() {
            return Ok(vec![self.send_unsubscribe(id, now)?]);
        }
        match self.pending.get_mut(&id) {
            Some(Pending::Subscribe { cancel, .. }) if *cancel == Cancel::No => {
                if established {
                    *cancel = Cancel::Sent;
                    Ok(vec![self.send_unsubscribe(id, now)?])
                } else {
                    *cancel = Cancel::Deferred;
                    Ok(Vec::new())
                }
            }
            _ => Err(SessionError::UnknownSubscription { id }),
        }
    }

    /// Asks the server to re-verify a record (RFC 8765 §6.5); needs an established session.
    pub fn reconfirm(
        &mut self,
        name: Name,
        class: DNSClass,
        rdata: RData,
        now: Instant,
    ) -> Result<Vec<Action>, SessionError> {
        self.check_dso_allowed()?;
        if !self.is_established() {
            return Err(SessionError::NotEstablished);
        }
        let tlv = Tlv::Reconfirm(Reconfirm { name, class, rdata });
        let bytes = DsoMessage::unidirectional(tlv).encode()?;
        self.timers.note(now, false);
        Ok(vec![Action::Send(bytes)])
    }

    /// Sends a Keepalive request with the configured timeouts; also establishes a session.
    pub fn keepalive(&mut self, now: Instant) -> Result<Vec<Action>, SessionError> {
        self.check_dso_allowed()?;
        let id = self.allocate_id().ok_or(SessionError::NoFreeMessageId)?;
        Ok(vec![self.send_keepalive(id, now)?])
    }

    /// Closes the session gracefully; the client's job when it is done (RFC 8765 §6.7).
    pub fn close(&mut self) -> Vec<Action> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        self.phase = Phase::Closed;
        vec![Action::Close]
    }

    /// Records a non-DSO DNS message the application sent on this connection: it resets
    /// both timers (RFC 8490 §6.3).
    pub fn note_activity(&mut self, now: Instant) {
        self.timers.note(now, false);
    }

    /// When `poll` must next be called, if ever. A timeout too long to represent as an
    /// `Instant` never expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Establishing { since } => since.checked_add(self.config.establishment_timeout),
            Phase::Established => [self.keepalive_deadline(), self.inactivity_deadline()]
                .into_iter()
                .flatten()
                .min(),
            Phase::Sessionless | Phase::NoDso | Phase::Closed => None,
        }
    }

    /// Runs the timers: establishment timeout, inactivity close, keepalive (RFC 8490 §5.1.1,
    /// §6.4.1, §6.5.1).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Establishing { since } => {
                let waited = now.saturating_duration_since(since);
                if waited >= self.config.establishment_timeout {
                    return self.abort(AbortReason::NoResponse { waited });
                }
            }
            Phase::Established => {
                if self.inactivity_deadline().is_some_and(|at| now >= at) {
                    self.phase = Phase::Closed;
                    return vec![Action::Close];
                }
                if self.keepalive_deadline().is_some_and(|at| now >= at) {
                    let Some(id) = self.allocate_id() else {
                        return self.abort(AbortReason::NoFreeMessageId);
                    };
                    return match self.send_keepalive(id, now) {
                        Ok(action) => vec![action],
                        Err(e) => self.abort(AbortReason::Encode(e)),
                    };
                }
            }
            Phase::Sessionless | Phase::NoDso | Phase::Closed => {}
        }
        Vec::new()
    }

    /// Handles one received DNS message (without its length prefix).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        let msg = match decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                return match e.disposition() {
                    Disposition::NotDso => {
                        self.timers.note(now, false);
                        vec![Action::Deliver(Event::NonDso(bytes.to_vec()))]
                    }
                    Disposition::FormErr { id } => {
                        self.timers.note(now, false);
                        let padded = carries_padding(bytes);
                        self.respond(DsoMessage::response(id, Rcode::FORMERR), padded, now)
                    }
                    Disposition::Abort => self.abort(e.into()),
                };
            }
        };
        match msg.kind() {
            MessageKind::Response => self.on_response(msg, now),
            MessageKind::Request => {
                self.timers.note(now, is_keepalive(&msg));
                self.on_request(&msg, now)
            }
            MessageKind::Unidirectional => {
                self.timers.note(now, is_keepalive(&msg));
                self.on_unidirectional(msg)
            }
        }
    }

    fn on_request(&mut self, msg: &DsoMessage, now: Instant) -> Vec<Action> {
        if !self.is_established() {
            return self.abort(AbortReason::ServerMessageBeforeEstablishment);
        }
        match msg.primary {
            Some(Tlv::Keepalive(_)) => self.abort(AbortReason::KeepaliveRequestFromServer),
            Some(Tlv::Subscribe(_)) => self.abort(AbortReason::SubscribeFromServer),
            // Any other request primary is one this client does not implement (decode has
            // already rejected the TLVs that can only be unidirectional).
            _ => self.respond(
                DsoMessage::response(msg.id, Rcode::DSOTYPENI),
                msg.has_padding(),
                now,
            ),
        }
    }

    fn on_unidirectional(&mut self, msg: DsoMessage) -> Vec<Action> {
        if !self.is_established() {
            return self.abort(AbortReason::ServerMessageBeforeEstablishment);
        }
        let Some(primary) = msg.primary else {
            return Vec::new(); // decode guarantees a primary TLV
        };
        match primary {
            Tlv::Keepalive(ka) => match check_interval(ka) {
                Ok(()) => self.apply_timeouts(ka).into_iter().collect(),
                Err(reason) => self.abort(reason),
            },
            Tlv::RetryDelay { delay_ms } => {
                self.phase = Phase::Closed;
                vec![
                    Action::Deliver(Event::RetryDelay {
                        rcode: msg.rcode,
                        delay: ms_duration(delay_ms),
                    }),
                    Action::Close,
                ]
            }
            Tlv::Push(changes) => {
                let relevant: Vec<_> = changes
                    .into_iter()
                    .filter(|change| self.subscriptions.matches(change))
                    .collect();
                if relevant.is_empty() {
                    Vec::new()
                } else {
                    vec![Action::Deliver(Event::Push(relevant))]
                }
            }
            Tlv::Unsubscribe { .. } | Tlv::LegacyUnsubscribe(_) => {
                self.abort(AbortReason::UnsubscribeFromServer)
            }
            Tlv::Reconfirm(_) => self.abort(AbortReason::ReconfirmFromServer),
            other => self.abort(AbortReason::UnknownUnidirectional {
                tlv_type: other.tlv_type(),
            }),
        }
    }

    fn on_response(&mut self, msg: DsoMessage, now: Instant) -> Vec<Action> {
        let retry_delay = msg.retry_delay_ms().map(ms_duration);
        let Some(pending) = self.pending.remove(&msg.id) else {
            self.timers.note(now, false);
            // RFC 8490 §5.6: an error response for an accepted long-lived operation cancels it.
            if msg.rcode != Rcode::NOERROR && self.subscriptions.remove(msg.id).is_some() {
                return vec![Action::Deliver(Event::SubscriptionCancelled {
                    id: msg.id,
                    rcode: msg.rcode,
                    retry_delay,
                })];
            }
            return self.abort(AbortReason::UnknownResponseId { id: msg.id });
        };
        let keepalive = matches!(pending, Pending::Keepalive);
        self.timers.note(now, keepalive);

        let mut actions = Vec::new();
        if msg.rcode == Rcode::NOERROR {
            if keepalive {
                let count = msg
                    .tlvs()
                    .filter(|tlv| matches!(tlv, Tlv::Keepalive(_)))
                    .count();
                // Unrecognized TLVs are ignored as if absent (RFC 8490 §5.4.5), so the
                // Response Primary TLV is the first recognized one.
                let first = msg.tlvs().find(|tlv| !matches!(tlv, Tlv::Unknown { .. }));
                let Some(&Tlv::Keepalive(ka)) = first.filter(|_| count == 1) else {
                    return self.abort(AbortReason::KeepaliveResponseTlv { count });
                };
                if let Err(reason) = check_interval(ka) {
                    return self.abort(reason);
                }
                self.establish(&mut actions);
                actions.extend(self.apply_timeouts(ka));
            } else if let Pending::Subscribe { subscribe, cancel } = pending {
                self.establish(&mut actions);
                match cancel {
                    Cancel::No => {
                        self.subscriptions.insert(msg.id, subscribe);
                        actions.push(Action::Deliver(Event::Subscribed { id: msg.id }));
                    }
                    Cancel::Sent => {}
                    Cancel::Deferred => match self.send_unsubscribe(msg.id, now) {
                        Ok(sent) => actions.push(sent),
                        Err(e) => return self.abort(AbortReason::Encode(e)),
                    },
                }
            }
            return actions;
        }

        if matches!(self.phase, Phase::Sessionless | Phase::Establishing { .. }) {
            self.establishment_failed(&msg, &mut actions, now);
        }
        match pending {
            Pending::Keepalive => actions.push(Action::Deliver(Event::KeepaliveFailed {
                rcode: msg.rcode,
                retry_delay,
            })),
            Pending::Subscribe {
                cancel: Cancel::No, ..
            } => actions.push(Action::Deliver(Event::SubscribeFailed {
                id: msg.id,
                rcode: msg.rcode,
                retry_delay,
            })),
            Pending::Subscribe { .. } => {}
        }
        actions
    }

    /// RFC 8490 §5.1.1: DSOTYPENI means "DSO yes, this TLV no"; any other error RCODE means
    /// the server lacks DSO, unless the response carries a DSO TLV (Retry Delay), which only
    /// a DSO server can send (Apple's busy reply is SERVFAIL + Retry Delay).
    fn establishment_failed(&mut self, msg: &DsoMessage, actions: &mut Vec<Action>, now: Instant) {
        let speaks_dso = msg.rcode == Rcode::DSOTYPENI || msg.retry_delay_ms().is_some();
        if speaks_dso {
            self.phase = if self.pending.is_empty() {
                Phase::Sessionless
            } else {
                Phase::Establishing { since: now }
            };
        } else {
            self.phase = Phase::NoDso;
            actions.push(Action::Deliver(Event::DsoNotSupported { rcode: msg.rcode }));
        }
    }

    fn establish(&mut self, actions: &mut Vec<Action>) {
        if self.phase != Phase::Established {
            self.phase = Phase::Established;
            actions.push(Action::Deliver(Event::Established));
        }
    }

    /// Adopts the server's timeouts, reporting them if they changed. The inactivity timer
    /// keeps running from the last activity, so a lowered timeout may make the session due
    /// for closing at once (RFC 8490 §7.1.1).
    fn apply_timeouts(&mut self, ka: Keepalive) -> Option<Action> {
        let changed = self.timers.timeouts != ka;
        self.timers.timeouts = ka;
        changed.then_some(Action::Deliver(Event::TimeoutsChanged(ka)))
    }

    fn inactivity_deadline(&self) -> Option<Instant> {
        if self.operation_active() {
            return None;
        }
        let timeout = self.timers.timeouts.inactivity_timeout()?;
        self.timers.last_activity.checked_add(timeout)
    }

    /// When the client must send keepalive traffic (RFC 8490 §6.5.1).
    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.timers.timeouts.keepalive_interval()?;
        self.timers.last_traffic.checked_add(interval)
    }

    /// RFC 8490 §6.3: requests awaiting a response and long-lived subscriptions keep the
    /// session active; a Keepalive exchange does not.
    fn operation_active(&self) -> bool {
        !self.subscriptions.is_empty()
            || self
                .pending
                .values()
                .any(|p| matches!(p, Pending::Subscribe { .. }))
    }

    /// A subscription with the same NAME, TYPE and CLASS that the server knows of or will:
    /// accepted, awaiting its response, or with an UNSUBSCRIBE not yet sent.
    fn duplicate_of(&self, subscribe: &Subscribe) -> Option<u16> {
        self.subscriptions.find_exact(subscribe).or_else(|| {
            self.pending.iter().find_map(|(id, pending)| match pending {
                Pending::Subscribe {
                    subscribe: s,
                    cancel,
                } if *cancel != Cancel::Sent && s == subscribe => Some(*id),
                _ => None,
            })
        })
    }

    /// The next MESSAGE ID not used by a pending request or an active subscription
    /// (RFC 8490 §5.4.1, RFC 8765 §6.2.1).
    fn allocate_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&id) && !self.subscriptions.contains(id) {
                return Some(id);
            }
        }
        None
    }

    fn send_keepalive(&mut self, id: u16, now: Instant) -> Result<Action, EncodeError> {
        let bytes = DsoMessage::request(id, Tlv::Keepalive(self.config.requested)).encode()?;
        self.pending.insert(id, Pending::Keepalive);
        self.sent_request(now, true);
        Ok(Action::Send(bytes))
    }

    fn send_unsubscribe(&mut self, id: u16, now: Instant) -> Result<Action, EncodeError> {
        let bytes = DsoMessage::unidirectional(Tlv::Unsubscribe { subscribe_id: id }).encode()?;
        self.timers.note(now, false);
        Ok(Action::Send(bytes))
    }

    fn sent_request(&mut self, now: Instant, keepalive: bool) {
        self.timers.note(now, keepalive);
        if self.phase == Phase::Sessionless {
            self.phase = Phase::Establishing { since: now };
        }
    }

    fn respond(&mut self, response: DsoMessage, pad: bool, now: Instant) -> Vec<Action> {
        match encode_response(response, pad) {
            Ok(bytes) => {
                self.timers.note(now, false);
                vec![Action::Send(bytes)]
            }
            Err(e) => self.abort(AbortReason::Encode(e)),
        }
    }

    fn check_dso_allowed(&self) -> Result<(), SessionError> {
        match self.phase {
            Phase::Closed => Err(SessionError::Closed),
            Phase::NoDso => Err(SessionError::DsoNotSupported),
            _ => Ok(()),
        }
    }

    fn abort(&mut self, reason: AbortReason) -> Vec<Action> {
        self.phase = Phase::Closed;
        vec![Action::Abort(reason)]
    }
}

/// RFC 8490 §6.5.2: a keepalive interval under ten seconds from the server is fatal.
fn check_interval(ka: Keepalive) -> Result<(), AbortReason> {
    if ka.keepalive_interval_ms < Keepalive::MIN_KEEPALIVE_INTERVAL_MS {
        return Err(AbortReason::KeepaliveIntervalTooShort {
            interval_ms: ka.keepalive_interval_ms,
        });
    }
    Ok(())
}
