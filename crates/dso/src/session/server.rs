//! The server side of a DSO session carrying DNS Push Notifications.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{
    AbortReason, Action, Event, SessionError, SubscriptionTable, Timers, carries_padding,
    duration_ms, encode_response, is_keepalive,
};
use crate::error::Disposition;
use crate::message::{DsoMessage, MessageKind, NameCompression, Rcode, decode, encode_push};
use crate::tlv::{Keepalive, PushChange, Subscribe, Tlv};

/// Server settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest inactivity timeout granted; a client asking for less gets what it asked for.
    pub max_inactivity_timeout_ms: u32,
    /// Largest keepalive interval granted; a client asking for less gets what it asked for,
    /// but never under 10 s (RFC 8490 §6.5.2).
    pub max_keepalive_interval_ms: u32,
    /// How long the client has to close after a Retry Delay before the server aborts
    /// (RFC 8490 §6.6.1: five seconds).
    pub retry_delay_grace: Duration,
    /// Name compression in PUSH messages (RFC 8765 §6.3.1: SHOULD compress).
    pub compression: NameCompression,
}

impl Default for ServerConfig {
    /// Grants at most 15 s inactivity and the RECOMMENDED 60-minute keepalive interval.
    fn default() -> Self {
        Self {
            max_inactivity_timeout_ms: Keepalive::DEFAULT_MS,
            max_keepalive_interval_ms: 3_600_000,
            retry_delay_grace: Duration::from_secs(5),
            compression: NameCompression::Compressed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// Retry Delay sent: ignore everything, abort at `abort_at` (RFC 8490 §6.6.1, §6.6.1.1);
    /// `None` if the configured grace is too long to represent.
    Draining {
        abort_at: Option<Instant>,
    },
    Closed,
}

#[derive(Debug, Clone)]
struct PendingSubscribe {
    subscribe: Subscribe,
    /// The client sent UNSUBSCRIBE before the server answered (RFC 8765 §6.4.1).
    cancelled: bool,
    /// The request carried Encryption Padding, so the response must too (RFC 8490 §7.3).
    padded: bool,
}

/// A DSO server session: answers requests, tracks subscriptions, sends PUSH messages and
/// polices the client's timers.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    phase: Phase,
    /// Set once a NOERROR response has been sent (RFC 8490 §5.1.2).
    established: bool,
    timers: Timers,
    /// After the inactivity timeout was lowered: no inactivity abort before this
    /// (RFC 8490 §7.1.1).
    inactivity_grace_until: Option<Instant>,
    pending: HashMap<u16, PendingSubscribe>,
    subscriptions: SubscriptionTable,
}

impl ServerSession {
    /// A session on a freshly accepted connection. The default 15-second timeouts apply
    /// from the start, so a connection that never establishes DSO is also reaped.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        Self {
            config,
            phase: Phase::Open,
            established: false,
            timers: Timers::new(now),
            inactivity_grace_until: None,
            pending: HashMap::new(),
            subscriptions: SubscriptionTable::default(),
        }
    }

    /// Whether a NOERROR response has been sent, so server-initiated messages are allowed.
    pub fn is_established(&self) -> bool {
        self.established
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

    /// Accepts a SUBSCRIBE delivered as [`Event::SubscribeRequest`]: sends the NOERROR
    /// response, which establishes the session. Send the current answer set with
    /// [`ServerSession::push`] right after (RFC 8765 §6.3).
    pub fn accept_subscribe(&mut self, id: u16, now: Instant) -> Result<Vec<Action>, SessionError> {
        self.check_open()?;
        let pending = self
            .pending
            .get(&id)
            .ok_or(SessionError::NotPending { id })?;
        let bytes = encode_response(DsoMessage::response(id, Rcode::NOERROR), pending.padded)?;
        if let Some(pending) = self.pending.remove(&id)
            && !pending.cancelled
        {
            self.subscriptions.insert(id, pending.subscribe);
        }
        self.established = true;
        self.timers.note(now, false);
        Ok(vec![Action::Send(bytes)])
    }

    /// Refuses a SUBSCRIBE with an error RCODE and, as RFC 8765 §6.2.2 recommends, a
    /// Retry Delay.
    pub fn reject_subscribe(
        &mut self,
        id: u16,
        rcode: Rcode,
        retry_delay: Option<Duration>,
        now: Instant,
    ) -> Result<Vec<Action>, SessionError> {
        self.check_open()?;
        if rcode == Rcode::NOERROR {
            return Err(SessionError::NoErrorRcode);
        }
        let pending = self
            .pending
            .get(&id)
            .ok_or(SessionError::NotPending { id })?;
        let bytes = encode_response(error_response(id, rcode, retry_delay), pending.padded)?;
        self.pending.remove(&id);
        self.timers.note(now, false);
        Ok(vec![Action::Send(bytes)])
    }

    /// Cancels an accepted subscription with an error response carrying its MESSAGE ID
    /// (RFC 8490 §5.6).
    pub fn cancel_subscription(
        &mut self,
        id: u16,
        rcode: Rcode,
        retry_delay: Option<Duration>,
        now: Instant,
    ) -> Result<Vec<Action>, SessionError> {
        self.check_open()?;
        if rcode == Rcode::NOERROR {
            return Err(SessionError::NoErrorRcode);
        }
        if !self.subscriptions.contains(id) {
            return Err(SessionError::UnknownSubscription { id });
        }
        let bytes = error_response(id, rcode, retry_delay).encode()?;
        self.subscriptions.remove(id);
        self.timers.note(now, false);
        Ok(vec![Action::Send(bytes)])
    }

    /// Sends the changes that match at least one active subscription, each once, as PUSH
    /// messages of at most 16,382 bytes (RFC 8765 §6.3.1). Changes matching nothing, and
    /// [`PushChange::Ignored`] ones, are left out; if none is left nothing is sent.
    pub fn push(
        &mut self,
        changes: &[PushChange],
        now: Instant,
    ) -> Result<Vec<Action>, SessionError> {
        self.check_open()?;
        if !self.established {
            return Err(SessionError::NotEstablished);
        }
        let relevant: Vec<PushChange> = changes
            .iter()
            .filter(|change| self.subscriptions.matches(change))
            .cloned()
            .collect();
        let messages = encode_push(&relevant, self.config.compression)?;
        if !messages.is_empty() {
            self.timers.note(now, false);
        }
        Ok(messages.into_iter().map(Action::Send).collect())
    }

    /// Dictates new session timeouts with a unidirectional Keepalive (RFC 8490 §7.1).
    pub fn set_timeouts(
        &mut self,
        timeouts: Keepalive,
        now: Instant,
    ) -> Result<Vec<Action>, SessionError> {
        self.check_open()?;
        if !self.established {
            return Err(SessionError::NotEstablished);
        }
        if timeouts.keepalive_interval_ms < Keepalive::MIN_KEEPALIVE_INTERVAL_MS {
            return Err(SessionError::KeepaliveIntervalTooShort {
                interval_ms: timeouts.keepalive_interval_ms,
            });
        }
        let bytes = DsoMessage::unidirectional(Tlv::Keepalive(timeouts)).encode()?;
        self.timers.note(now, true);
        self.adopt_timeouts(timeouts, now);
        Ok(vec![Action::Send(bytes)])
    }

    /// Ends the session with a unidirectional Retry Delay (RFC 8490 §6.6.1, §7.2.1). After
    /// it nothing more is sent, incoming messages are ignored, and the session is aborted
    /// if the client has not closed within the grace period. Before the session is
    /// established, refuse requests with a Retry Delay in the error response instead.
    pub fn retry_delay(
        &mut self,
        delay: Duration,
        rcode: Rcode,
        now: Instant,
    ) -> Result<Vec<Action>, SessionError> {
        self.check_open()?;
        if !self.established {
            return Err(SessionError::NotEstablished);
        }
        let mut msg = DsoMessage::unidirectional(Tlv::RetryDelay {
            delay_ms: duration_ms(delay),
        });
        msg.rcode = rcode;
        let bytes = msg.encode()?;
        self.phase = Phase::Draining {
            abort_at: now.checked_add(self.config.retry_delay_grace),
        };
        Ok(vec![Action::Send(bytes)])
    }

    /// Records a non-DSO DNS message the application sent on this connection: it resets
    /// both timers (RFC 8490 §6.3).
    pub fn note_activity(&mut self, now: Instant) {
        self.timers.note(now, false);
    }

    /// When `poll` must next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Open => [self.inactivity_deadline(), self.keepalive_deadline()]
                .into_iter()
                .flatten()
                .min(),
            Phase::Draining { abort_at } => abort_at,
            Phase::Closed => None,
        }
    }

    /// Runs the timers: abort a delinquent client after max(5 s, 2 × inactivity timeout)
    /// idle or 2 × keepalive interval silent (RFC 8490 §6.4.1, §6.5.1), or one that has
    /// not closed after a Retry Delay (§6.6.1).
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        match self.phase {
            Phase::Open => {
                if self.inactivity_deadline().is_some_and(|at| now >= at) {
                    let idle = now.saturating_duration_since(self.timers.last_activity);
                    return self.abort(AbortReason::Inactive { idle });
                }
                if self.keepalive_deadline().is_some_and(|at| now >= at) {
                    let silent = now.saturating_duration_since(self.timers.last_traffic);
                    return self.abort(AbortReason::KeepaliveMissed { silent });
                }
            }
            Phase::Draining { abort_at } if abort_at.is_some_and(|at| now >= at) => {
                return self.abort(AbortReason::RetryDelayIgnored {
                    grace: self.config.retry_delay_grace,
                });
            }
            Phase::Draining { .. } | Phase::Closed => {}
        }
        Vec::new()
    }

    /// Handles one received DNS message (without its length prefix).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<Action> {
        if self.phase != Phase::Open {
            // Closed, or draining after a Retry Delay: ignore silently (RFC 8490 §6.6.1.1).
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
        self.timers.note(now, is_keepalive(&msg));
        match msg.kind() {
            MessageKind::Request => self.on_request(msg, now),
            MessageKind::Unidirectional => self.on_unidirectional(msg),
            // This server never sends requests, so no response can match (RFC 8490 §5.5.2);
            // this also makes a client's SUBSCRIBE response fatal (RFC 8765 §6.2).
            MessageKind::Response => self.abort(AbortReason::UnknownResponseId { id: msg.id }),
        }
    }

    fn on_request(&mut self, msg: DsoMessage, now: Instant) -> Vec<Action> {
        let id = msg.id;
        if self.pending.contains_key(&id) || self.subscriptions.contains(id) {
            return self.abort(AbortReason::MessageIdInUse { id });
        }
        let padded = msg.has_padding();
        match msg.primary {
            Some(Tlv::Keepalive(requested)) => {
                let granted = self.grant(requested);
                let response = DsoMessage {
                    primary: Some(Tlv::Keepalive(granted)),
                    ..DsoMessage::response(id, Rcode::NOERROR)
                };
                match encode_response(response, padded) {
                    Ok(bytes) => {
                        // A Keepalive exchange resets only the keepalive timer (RFC 8490 §7.1).
                        self.timers.note(now, true);
                        self.established = true;
                        self.adopt_timeouts(granted, now);
                        vec![Action::Send(bytes)]
                    }
                    Err(e) => self.abort(AbortReason::Encode(e)),
                }
            }
            Some(Tlv::Subscribe(mut subscribe)) => {
                subscribe.name.set_fqdn(true);
                if self.find(&subscribe).is_some() {
                    let Subscribe { name, rtype, class } = subscribe;
                    return self.abort(AbortReason::DuplicateSubscription { name, rtype, class });
                }
                self.pending.insert(
                    id,
                    PendingSubscribe {
                        subscribe: subscribe.clone(),
                        cancelled: false,
                        padded,
                    },
                );
                vec![Action::Deliver(Event::SubscribeRequest { id, subscribe })]
            }
            // Anything else that decodes as a request has a primary TLV this server does not
            // implement: DSOTYPENI, without a copy of that TLV (RFC 8490 §5.4.5).
            _ => self.respond(DsoMessage::response(id, Rcode::DSOTYPENI), padded, now),
        }
    }

    fn on_unidirectional(&mut self, msg: DsoMessage) -> Vec<Action> {
        let Some(primary) = msg.primary else {
            return Vec::new(); // decode guarantees a primary TLV
        };
        let fatal = match &primary {
            Tlv::Keepalive(_) => Some(AbortReason::UnidirectionalKeepaliveFromClient),
            Tlv::RetryDelay { .. } => Some(AbortReason::RetryDelayFromClient),
            Tlv::Push(_) => Some(AbortReason::PushFromClient),
            Tlv::Unsubscribe { .. } | Tlv::LegacyUnsubscribe(_) | Tlv::Reconfirm(_) => {
                (!self.established).then(|| AbortReason::UnidirectionalBeforeEstablishment {
                    tlv_type: primary.tlv_type(),
                })
            }
            other => Some(AbortReason::UnknownUnidirectional {
                tlv_type: other.tlv_type(),
            }),
        };
        if let Some(reason) = fatal {
            return self.abort(reason);
        }
        match primary {
            Tlv::Unsubscribe { subscribe_id } => self.unsubscribe(subscribe_id),
            Tlv::LegacyUnsubscribe(mut subscribe) => {
                subscribe.name.set_fqdn(true);
                match self.find(&subscribe) {
                    Some(id) => self.unsubscribe(id),
                    None => Vec::new(),
                }
            }
            Tlv::Reconfirm(reconfirm) => vec![Action::Deliver(Event::Reconfirm(reconfirm))],
            _ => Vec::new(),
        }
    }

    /// Ends an active subscription, or marks an unanswered SUBSCRIBE as cancelled; an ID
    /// matching neither is silently ignored (RFC 8765 §6.4.1).
    fn unsubscribe(&mut self, id: u16) -> Vec<Action> {
        let known = self.subscriptions.remove(id).is_some()
            || match self.pending.get_mut(&id) {
                Some(pending) if !pending.cancelled => {
                    pending.cancelled = true;
                    true
                }
                _ => false,
            };
        if known {
            vec![Action::Deliver(Event::Unsubscribed { id })]
        } else {
            Vec::new()
        }
    }

    /// min(requested, configured maximum), keepalive interval at least 10 s.
    fn grant(&self, requested: Keepalive) -> Keepalive {
        Keepalive {
            inactivity_timeout_ms: requested
                .inactivity_timeout_ms
                .min(self.config.max_inactivity_timeout_ms),
            keepalive_interval_ms: requested
                .keepalive_interval_ms
                .min(self.config.max_keepalive_interval_ms)
                .max(Keepalive::MIN_KEEPALIVE_INTERVAL_MS),
        }
    }

    /// Takes new timeouts into use; lowering the inactivity timeout grants the client
    /// max(5 s, ¼ of the new timeout) before an inactivity abort (RFC 8490 §7.1.1).
    fn adopt_timeouts(&mut self, timeouts: Keepalive, now: Instant) {
        if timeouts.inactivity_timeout_ms < self.timers.timeouts.inactivity_timeout_ms {
            let quarter = Duration::from_millis(u64::from(timeouts.inactivity_timeout_ms) / 4);
            self.inactivity_grace_until = now.checked_add(quarter.max(Duration::from_secs(5)));
        }
        self.timers.timeouts = timeouts;
    }

    /// The live subscription, accepted or awaiting the application's answer, with exactly
    /// this NAME, TYPE and CLASS (names compare case-insensitively).
    fn find(&self, subscribe: &Subscribe) -> Option<u16> {
        self.subscriptions.find_exact(subscribe).or_else(|| {
            self.pending
                .iter()
                .find(|(_, p)| !p.cancelled && p.subscribe == *subscribe)
                .map(|(id, _)| *id)
        })
    }

    fn inactivity_deadline(&self) -> Option<Instant> {
        if !self.subscriptions.is_empty() || !self.pending.is_empty() {
            return None; // an operation is active (RFC 8490 §6.3, RFC 8765 §6.3.1)
        }
        let timeout = self.timers.timeouts.inactivity_timeout()?;
        let limit = timeout.saturating_mul(2).max(Duration::from_secs(5));
        let deadline = self.timers.last_activity.checked_add(limit)?;
        Some(match self.inactivity_grace_until {
            Some(grace) => deadline.max(grace),
            None => deadline,
        })
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.timers.timeouts.keepalive_interval()?;
        self.timers
            .last_traffic
            .checked_add(interval.saturating_mul(2))
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

    fn check_open(&self) -> Result<(), SessionError> {
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Draining { .. } => Err(SessionError::ShuttingDown),
            Phase::Closed => Err(SessionError::Closed),
        }
    }

    fn abort(&mut self, reason: AbortReason) -> Vec<Action> {
        self.phase = Phase::Closed;
        vec![Action::Abort(reason)]
    }
}

fn error_response(id: u16, rcode: Rcode, retry_delay: Option<Duration>) -> DsoMessage {
    let response = DsoMessage::response(id, rcode);
    match retry_delay {
        Some(delay) => response.with_additional(Tlv::RetryDelay {
            delay_ms: duration_ms(delay),
        }),
        None => response,
    }
}
