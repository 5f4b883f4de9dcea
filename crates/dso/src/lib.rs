//! DNS Stateful Operations (RFC 8490) and DNS Push Notifications (RFC 8765): the message
//! codec and a sans-I/O session state machine for both roles. No sockets, no async, no
//! clock: the caller feeds in messages and instants and carries out the returned actions.
//!
//! # Reading order
//!
//! 1. [`tlv`] — the TLVs: Keepalive, Retry Delay, Encryption Padding, SUBSCRIBE, PUSH
//!    (with the TTL encodings of RFC 8765 §6.3.1), UNSUBSCRIBE, RECONFIRM, unknown.
//! 2. [`message`] — [`DsoMessage`], [`decode`] (the fuzzing entry point), encoding, and
//!    [`encode_push`], which splits change lists into PUSH messages of at most 16,382 bytes.
//! 3. [`error`] — [`DecodeError`] names the broken rule and its [`Disposition`]: answer
//!    FORMERR (malformed request) or abort (everything the RFCs call fatal, and any
//!    defect in a message that cannot be answered).
//! 4. [`session`] — [`ClientSession`] and [`ServerSession`]: `receive(bytes, now)`,
//!    `poll(now)`, `next_deadline()`, plus the application's operations, all returning
//!    [`Action`]s (`Send`, `Deliver(Event)`, `Close`, `Abort(reason)`).
//!
//! Messages are DNS messages *without* the two-byte TCP length prefix, in and out.
//!
//! # Implemented
//!
//! RFC 8490:
//! * §5.1, §5.1.1, §5.1.2 — explicit session establishment by the first NOERROR response
//!   (Keepalive or SUBSCRIBE); DSOTYPENI versus "no DSO" on failure; 30 s wait for a first
//!   response; no unidirectional messages before establishment, in either direction.
//! * §5.3, §5.3.1 — graceful close ([`Action::Close`]) versus forcible abort ([`Action::Abort`]).
//! * §5.4, §5.4.1, §5.4.2 — header (OPCODE 6, zero counts: FORMERR), QR/MESSAGE ID rules,
//!   Primary/Additional TLVs, Response Primary TLVs.
//! * §5.4.3, §5.4.4, §5.4.5 — unidirectional messages never answered; TLV syntax; unknown
//!   Primary TLV: DSOTYPENI for a request, abort for a unidirectional message; unknown
//!   Additional TLVs ignored (decoded as [`Tlv::Unknown`]).
//! * §5.5, §5.5.2 — responses matched by MESSAGE ID per direction; unknown response ID and
//!   reuse of an in-progress ID are fatal.
//! * §5.5.3, §5.6 — error responses; responder-initiated cancellation of a subscription.
//! * §6.2–§6.5 — inactivity and keepalive timers (Keepalive traffic resets only the
//!   keepalive timer; active operations suspend inactivity); client closes when idle and
//!   sends Keepalives; server aborts after max(5 s, 2 × inactivity) idle or
//!   2 × keepalive interval silent; 0xFFFFFFFF is infinity.
//! * §6.6.1, §6.6.1.1 — Retry Delay: client closes; server sends nothing more, ignores
//!   input and aborts after 5 s.
//! * §7.1, §7.1.1 — Keepalive TLV: client requests, server grants; server-initiated
//!   unidirectional Keepalive; intervals under 10 s fatal; grace of max(5 s, ¼ timeout)
//!   when the server lowers the inactivity timeout.
//! * §7.2.1, §7.2.2 — Retry Delay as Primary (server to client only) and as Response
//!   Additional TLV.
//! * §7.3 — Encryption Padding; a padded request gets a response padded to a multiple of
//!   468 bytes (RFC 8467 §4.1).
//! * §8.1, §8.2 — the QR/ID table and the TLV context table.
//!
//! RFC 8765:
//! * §6.2.1, §6.2.2 — SUBSCRIBE (request only); NOERROR response carries no SUBSCRIBE
//!   TLV (one received is ignored); a duplicate NAME/TYPE/CLASS (case-insensitive) is
//!   fatal at the server and refused by the client API; MESSAGE IDs of live subscriptions
//!   stay in use.
//! * §6.3, §6.3.1 — PUSH: unidirectional, server to client only, QR=1 fatal; at least
//!   one change; add/remove/collective-remove TTL encodings; TYPE/CLASS 255 in add or
//!   remove fatal; collective remove with RDLEN ≠ 0 fatal; unknown TTLs ignored per record;
//!   16,382-byte limit on both sides; changes not matching an active subscription ignored
//!   by the client and not sent by the server; owner-name compression.
//! * §6.4, §6.4.1 — UNSUBSCRIBE (2-byte MESSAGE ID, unidirectional); unknown IDs ignored;
//!   allowed before the SUBSCRIBE response (deferred until the session is established).
//!   For interoperability the server also accepts the pre-RFC NAME/TYPE/CLASS form that
//!   Apple's mDNSResponder client sends ([`Tlv::LegacyUnsubscribe`]).
//! * §6.5, §6.5.1 — RECONFIRM without RDLEN, unidirectional, client to server only.
//! * §6.6 — the TLV context tables. §6.7 — client-initiated close.
//!
//! # Deliberately not implemented
//!
//! * Anything on the transport: TLS (RFC 8765 §5, §7), TLS early data and TCP Fast Open
//!   rules (RFC 8490 §5.1, §11.1), RST versus FIN mechanics, length-prefix framing.
//! * Implicit session establishment (RFC 8490 §5.1): sessions are always explicit.
//! * Server-initiated DSO *requests*: this server never sends one, so every response a
//!   client sends is fatal; the client answers any server request with DSOTYPENI.
//! * Inspection of non-DSO messages: they are delivered as [`Event::NonDso`]; the
//!   edns-tcp-keepalive prohibition (RFC 8490 §5.4.6, §7.1.2) is the application's job.
//!   Use `note_activity` for non-DSO messages the application sends.
//! * Discovery, reconnection back-off and polling fallback (RFC 8765 §6.1, §6.8; RFC 8490
//!   §6.6.3): policy of the application; events carry the Retry Delays it needs.
//! * Padding of requests: only responses are padded (when the request was).
//! * Name compression in RDATA beyond what hickory-proto applies (NS, CNAME, PTR, SOA, MX);
//!   SRV and the other types RFC 8765 §6.3.1 lists are written uncompressed.

pub mod error;
pub mod message;
pub mod session;
pub mod tlv;

pub use error::{DecodeError, Disposition, EncodeError, Violation};
pub use message::{
    DsoMessage, MAX_PUSH_MESSAGE_LEN, MessageKind, NameCompression, Rcode, decode, encode_push,
};
pub use session::{
    AbortReason, Action, ClientConfig, ClientSession, Event, ServerConfig, ServerSession,
    SessionError,
};
pub use tlv::{Keepalive, PushChange, Reconfirm, Subscribe, Tlv};
