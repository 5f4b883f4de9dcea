//! Sans-I/O DSO session state machines for the client ([`ClientSession`]) and the server
//! ([`ServerSession`]) of DNS Push Notifications.
//!
//! The transport reads one DNS message (without its TCP length prefix) and calls
//! `receive(bytes, now)`; it calls `poll(now)` when `next_deadline()` has passed. Both
//! return [`Action`]s to carry out in order. The application's own operations (subscribe,
//! push, …) return actions the same way. Time is whatever `Instant` the caller passes, so
//! tests drive the timers with a fake clock.
//!
//! ```text
//!  client                                   server
//!  Sessionless ──request──▶ Establishing    Open (not established)
//!       ▲     ◀─DSOTYPENI──┘  │  │            │ first NOERROR response sent
//!       │   other RCODE:      │  │ NOERROR    ▼
//!       │   NoDso ◀───────────┘  ▼          Open (established) ──retry_delay()──▶ Draining
//!       │                   Established                         5 s later: abort ──┘
//!  any fatal error, Retry Delay, inactivity: Closed (Close or Abort action)
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::rr::{DNSClass, Name, RecordType};

use crate::error::{DecodeError, EncodeError};
use crate::message::{DsoMessage, HEADER_LEN, Rcode};
use crate::tlv::{Keepalive, PushChange, Reconfirm, Subscribe, Tlv, dso_type};

mod client;
mod server;

pub use client::{ClientConfig, ClientSession};
pub use server::{ServerConfig, ServerSession};

/// Something the transport or the application must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this DNS message, framed with its two-byte length prefix.
    Send(Vec<u8>),
    /// Hand this event to the application.
    Deliver(Event),
    /// Close gracefully: TLS close_notify, then TCP FIN (RFC 8490 §5.3).
    Close,
    /// Forcibly abort: TCP RST, e.g. SO_LINGER 0 then close (RFC 8490 §5.3, §5.3.1).
    Abort(AbortReason),
}

/// What happened on the session, for the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Client: the first NOERROR response arrived; the DSO session is established (RFC 8490 §5.1.2).
    Established,
    /// Client: the server accepted the SUBSCRIBE with this MESSAGE ID.
    Subscribed {
        /// MESSAGE ID of the SUBSCRIBE.
        id: u16,
    },
    /// Client: the server refused the SUBSCRIBE (RFC 8765 §6.2.2); the ID is free again.
    SubscribeFailed {
        /// MESSAGE ID of the SUBSCRIBE.
        id: u16,
        /// RCODE of the response.
        rcode: Rcode,
        /// Retry Delay TLV of the response, if any.
        retry_delay: Option<Duration>,
    },
    /// Client: the server cancelled an accepted subscription (RFC 8490 §5.6).
    SubscriptionCancelled {
        /// MESSAGE ID of the SUBSCRIBE.
        id: u16,
        /// RCODE giving the reason.
        rcode: Rcode,
        /// Retry Delay TLV of the cancellation, if any.
        retry_delay: Option<Duration>,
    },
    /// Client: change notifications that match at least one active subscription, in wire
    /// order; others were ignored as RFC 8765 §6.3.1 requires.
    Push(Vec<PushChange>),
    /// Client: the server set new session timeouts (Keepalive response or unidirectional Keepalive).
    TimeoutsChanged(Keepalive),
    /// Client: a Keepalive request failed.
    KeepaliveFailed {
        /// RCODE of the response.
        rcode: Rcode,
        /// Retry Delay TLV of the response, if any.
        retry_delay: Option<Duration>,
    },
    /// Client: the server asked the client to go away; a `Close` action follows
    /// (RFC 8490 §6.6.1). Do not reconnect to this server before `delay`.
    RetryDelay {
        /// RCODE of the Retry Delay message: the reason, for logging.
        rcode: Rcode,
        /// How long to stay away.
        delay: Duration,
    },
    /// Client: the first DSO response says the server does not implement DSO; send no more
    /// DSO messages on this connection (RFC 8490 §5.1.1).
    DsoNotSupported {
        /// RCODE of the response.
        rcode: Rcode,
    },
    /// Server: a SUBSCRIBE to answer with `accept_subscribe` or `reject_subscribe`.
    SubscribeRequest {
        /// MESSAGE ID of the request.
        id: u16,
        /// What is subscribed to.
        subscribe: Subscribe,
    },
    /// Server: the client cancelled the subscription with this MESSAGE ID.
    Unsubscribed {
        /// MESSAGE ID of the SUBSCRIBE.
        id: u16,
    },
    /// Server: the client disputes this record (RFC 8765 §6.5).
    Reconfirm(Reconfirm),
    /// Either side: a DNS message with another OPCODE, for ordinary DNS processing.
    NonDso(Vec<u8>),
}

/// A fatal error: the connection must be forcibly aborted (RFC 8490 §5.3.1).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AbortReason {
    /// The message broke a wire-format rule that cannot be answered with FORMERR.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// A response whose MESSAGE ID matches no outstanding request.
    #[error("response with MESSAGE ID {id} matches no outstanding operation (RFC 8490 §5.5.2)")]
    UnknownResponseId {
        /// The MESSAGE ID.
        id: u16,
    },
    /// A request reusing the MESSAGE ID of an operation still in progress.
    #[error(
        "request reuses MESSAGE ID {id} of an operation still in progress (RFC 8490 §5.4.1, §5.5.2)"
    )]
    MessageIdInUse {
        /// The MESSAGE ID.
        id: u16,
    },
    /// The client sent a Keepalive with MESSAGE ID 0.
    #[error("client sent a Keepalive with MESSAGE ID 0 (RFC 8490 §7.1)")]
    UnidirectionalKeepaliveFromClient,
    /// The server sent a Keepalive request (nonzero MESSAGE ID).
    #[error("server sent a Keepalive request with a nonzero MESSAGE ID (RFC 8490 §7.1)")]
    KeepaliveRequestFromServer,
    /// The server dictated a keepalive interval under ten seconds.
    #[error(
        "server dictated a keepalive interval of {interval_ms} ms, under 10 s (RFC 8490 §6.5.2)"
    )]
    KeepaliveIntervalTooShort {
        /// The interval.
        interval_ms: u32,
    },
    /// A NOERROR Keepalive response without exactly one Keepalive TLV first.
    #[error(
        "Keepalive response must carry exactly one Keepalive TLV as its Response Primary TLV, found {count} (RFC 8490 §5.4.2, §7.1)"
    )]
    KeepaliveResponseTlv {
        /// Number of Keepalive TLVs found.
        count: usize,
    },
    /// The client sent a Retry Delay primary TLV.
    #[error("client sent a Retry Delay message (RFC 8490 §6.6.1, §7.2.1)")]
    RetryDelayFromClient,
    /// The client sent a PUSH.
    #[error("client sent a PUSH message (RFC 8765 §6.3)")]
    PushFromClient,
    /// The server sent a SUBSCRIBE.
    #[error("server sent a SUBSCRIBE request (RFC 8765 §6.2)")]
    SubscribeFromServer,
    /// The server sent an UNSUBSCRIBE.
    #[error("server sent an UNSUBSCRIBE message (RFC 8765 §6.4)")]
    UnsubscribeFromServer,
    /// The server sent a RECONFIRM.
    #[error("server sent a RECONFIRM message (RFC 8765 §6.5)")]
    ReconfirmFromServer,
    /// A unidirectional message whose Primary TLV is not implemented.
    #[error("unidirectional message with unknown primary TLV {tlv_type:#06x} (RFC 8490 §5.4.5)")]
    UnknownUnidirectional {
        /// DSO-TYPE.
        tlv_type: u16,
    },
    /// The client sent a unidirectional message before the session was established.
    #[error(
        "client sent unidirectional TLV {tlv_type:#06x} before the DSO session was established (RFC 8490 §5.1)"
    )]
    UnidirectionalBeforeEstablishment {
        /// DSO-TYPE.
        tlv_type: u16,
    },
    /// The server initiated a DSO message before the session was established.
    #[error(
        "server initiated a DSO message before the DSO session was established (RFC 8490 §5.1)"
    )]
    ServerMessageBeforeEstablishment,
    /// A SUBSCRIBE duplicating the NAME, TYPE and CLASS of an existing subscription.
    #[error("duplicate SUBSCRIBE for {name} {rtype} {class} (RFC 8765 §6.2.1)")]
    DuplicateSubscription {
        /// NAME.
        name: Name,
        /// TYPE.
        rtype: RecordType,
        /// CLASS.
        class: DNSClass,
    },
    /// No response to the first DSO request within the establishment timeout.
    #[error(
        "no response to a DSO request within {waited:?}; server state unknown (RFC 8490 §5.1.1)"
    )]
    NoResponse {
        /// How long the client waited.
        waited: Duration,
    },
    /// Server: the client kept an idle session open too long.
    #[error("client idle for {idle:?} with no operation active (RFC 8490 §6.4.1)")]
    Inactive {
        /// Time since the last activity.
        idle: Duration,
    },
    /// Server: no traffic for twice the keepalive interval.
    #[error("no traffic for {silent:?}, twice the keepalive interval (RFC 8490 §6.5.1)")]
    KeepaliveMissed {
        /// Time since the last message.
        silent: Duration,
    },
    /// Server: the client did not close after a Retry Delay.
    #[error("client did not close the session within {grace:?} of a Retry Delay (RFC 8490 §6.6.1)")]
    RetryDelayIgnored {
        /// How long the server waited.
        grace: Duration,
    },
    /// Client: all 65,535 MESSAGE IDs are in use, so no Keepalive can be sent.
    #[error("no free MESSAGE ID for a Keepalive request (RFC 8490 §5.4.1)")]
    NoFreeMessageId,
    /// One of our own messages could not be encoded (a bug, not a peer error).
    #[error("could not encode an outgoing message: {0}")]
    Encode(EncodeError),
}

impl PartialEq for AbortReason {
    /// Compares by rendered message, since wrapped wire errors carry no equality.
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// A misuse of the session API by the application; nothing was sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SessionError {
    /// The session was closed or aborted.
    #[error("the DSO session is closed")]
    Closed,
    /// Server: a Retry Delay was sent, nothing more may be (RFC 8490 §6.6.1).
    #[error("a Retry Delay was sent; no further messages may be sent (RFC 8490 §6.6.1)")]
    ShuttingDown,
    /// The operation needs an established DSO session (RFC 8490 §5.1).
    #[error("no DSO session established yet (RFC 8490 §5.1)")]
    NotEstablished,
    /// Client: the server does not implement DSO (RFC 8490 §5.1.1).
    #[error("the server does not implement DSO on this connection (RFC 8490 §5.1.1)")]
    DsoNotSupported,
    /// Client: every MESSAGE ID is in use.
    #[error("all 65,535 MESSAGE IDs are in use (RFC 8490 §5.4.1)")]
    NoFreeMessageId,
    /// Client: a subscription with the same NAME, TYPE and CLASS exists.
    #[error("subscription {id} already covers this NAME, TYPE and CLASS (RFC 8765 §6.2.1)")]
    DuplicateSubscription {
        /// MESSAGE ID of the existing subscription.
        id: u16,
    },
    /// No subscription (active or pending) with this MESSAGE ID.
    #[error("no subscription with MESSAGE ID {id}")]
    UnknownSubscription {
        /// The MESSAGE ID.
        id: u16,
    },
    /// Server: no unanswered SUBSCRIBE with this MESSAGE ID.
    #[error("no unanswered SUBSCRIBE with MESSAGE ID {id}")]
    NotPending {
        /// The MESSAGE ID.
        id: u16,
    },
    /// A refusal or cancellation needs an RCODE other than NOERROR.
    #[error("a refusal or cancellation needs an RCODE other than NOERROR")]
    NoErrorRcode,
    /// Server: keepalive intervals under ten seconds are forbidden (RFC 8490 §6.5.2).
    #[error("keepalive interval {interval_ms} ms is under 10 s (RFC 8490 §6.5.2)")]
    KeepaliveIntervalTooShort {
        /// The interval.
        interval_ms: u32,
    },
    /// The message could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Active subscriptions, by MESSAGE ID and by name (names compare case-insensitively).
#[derive(Debug, Default)]
pub(crate) struct SubscriptionTable {
    by_id: HashMap<u16, Subscribe>,
    by_name: HashMap<Name, Vec<u16>>,
}

impl SubscriptionTable {
    pub(crate) fn insert(&mut self, id: u16, mut sub: Subscribe) {
        sub.name.set_fqdn(true);
        self.by_name.entry(sub.name.clone()).or_default().push(id);
        self.by_id.insert(id, sub);
    }

    pub(crate) fn remove(&mut self, id: u16) -> Option<Subscribe> {
        let sub = self.by_id.remove(&id)?;
        if let Some(ids) = self.by_name.get_mut(&sub.name) {
            ids.retain(|&other| other != id);
            if ids.is_empty() {
                self.by_name.remove(&sub.name);
            }
        }
        Some(sub)
    }

    pub(crate) fn get(&self, id: u16) -> Option<&Subscribe> {
        self.by_id.get(&id)
    }

    pub(crate) fn contains(&self, id: u16) -> bool {
        self.by_id.contains_key(&id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u16, &Subscribe)> {
        self.by_id.iter().map(|(id, sub)| (*id, sub))
    }

    fn on_name(&self, name: &Name) -> impl Iterator<Item = (u16, &Subscribe)> {
        let ids = if name.is_fqdn() {
            self.by_name.get(name)
        } else {
            let mut fqdn = name.clone();
            fqdn.set_fqdn(true);
            self.by_name.get(&fqdn)
        };
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).map(|sub| (*id, sub)))
    }

    /// The subscription with exactly this NAME, TYPE and CLASS.
    pub(crate) fn find_exact(&self, sub: &Subscribe) -> Option<u16> {
        self.on_name(&sub.name)
            .find(|(_, s)| s.rtype == sub.rtype && s.class == sub.class)
            .map(|(id, _)| id)
    }

    /// Whether the change touches a record some subscription covers (RFC 8765 §6.3.1).
    /// Ignored changes (unknown TTL encodings) match nothing.
    pub(crate) fn matches(&self, change: &PushChange) -> bool {
        if matches!(change, PushChange::Ignored { .. }) {
            return false;
        }
        let (rtype, class) = change.scope();
        self.on_name(change.name()).any(|(_, sub)| {
            let type_ok = rtype.is_none_or(|t| sub.rtype == RecordType::ANY || sub.rtype == t);
            let class_ok = class.is_none_or(|c| sub.class == DNSClass::ANY || sub.class == c);
            type_ok && class_ok
        })
    }
}

/// The inactivity and keepalive timers (RFC 8490 §6.3): any message resets both, except
/// that a Keepalive message (Keepalive as first TLV) resets only the keepalive timer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub(crate) timeouts: Keepalive,
    /// Start of the inactivity timer: last non-Keepalive message sent or received.
    pub(crate) last_activity: Instant,
    /// Start of the keepalive timer: last message of any kind sent or received.
    pub(crate) last_traffic: Instant,
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            timeouts: Keepalive::default(),
            last_activity: now,
            last_traffic: now,
        }
    }

    pub(crate) fn note(&mut self, now: Instant, keepalive_only: bool) {
        self.last_traffic = now;
        if !keepalive_only {
            self.last_activity = now;
        }
    }
}

/// Whether a message counts as Keepalive traffic only (RFC 8490 §7.1).
pub(crate) fn is_keepalive(msg: &DsoMessage) -> bool {
    matches!(msg.primary, Some(Tlv::Keepalive(_)))
}

pub(crate) fn ms_duration(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

pub(crate) fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Whether a request that failed to decode carries Encryption Padding among the TLV headers
/// that can still be walked, so that its FORMERR response is padded too (RFC 8490 §7.3).
pub(crate) fn carries_padding(bytes: &[u8]) -> bool {
    let mut offset = HEADER_LEN;
    while let Some(&[type_hi, type_lo, len_hi, len_lo]) = bytes.get(offset..offset + 4) {
        if u16::from_be_bytes([type_hi, type_lo]) == dso_type::ENCRYPTION_PADDING {
            return true;
        }
        offset += 4 + usize::from(u16::from_be_bytes([len_hi, len_lo]));
    }
    false
}

/// Block length responses are padded to when the request carried Encryption Padding
/// (RFC 8467 §4.1, recommended for responses).
const RESPONSE_PADDING_BLOCK: usize = 468;

/// Encodes a response. If the request carried Encryption Padding, the response carries
/// it too (RFC 8490 §7.3), padding the message to a multiple of 468 bytes.
pub(crate) fn encode_response(mut response: DsoMessage, pad: bool) -> Result<Vec<u8>, EncodeError> {
    if !pad {
        return response.encode();
    }
    let unpadded = response.encode()?.len() + 4;
    let fill =
        (RESPONSE_PADDING_BLOCK - unpadded % RESPONSE_PADDING_BLOCK) % RESPONSE_PADDING_BLOCK;
    response
        .additional
        .push(Tlv::EncryptionPadding(vec![0; fill]));
    response.encode()
}
