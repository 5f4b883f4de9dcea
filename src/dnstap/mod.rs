//! dnstap: the traffic a DNS server logs about itself, as Frame Streams of protobuf
//! messages (Knot `mod-dnstap`, NSD, BIND, Unbound, PowerDNS Recursor, Knot Resolver,
//! dnsdist all write it).
//!
//! * [`fstrm`] — Frame Streams framing: control and data frames, capture files.
//! * [`message`] — the dnstap protobuf messages (hand-written prost structs).
//! * [`dns`] — the parts of a DNS message the traffic conditions read: header, question,
//!   EDNS options and Extended DNS Errors.
//! * [`read`] — `dns-oops dnstap-read FILE`, a summary of a capture.
//! * [`receiver`] — the Frame Streams socket receiver (unix and TCP, the bidirectional
//!   handshake, bounded memory: drops and counts rather than block a server).
//! * [`classify`] — what one frame means for the traffic conditions, read without a full
//!   decode.
//! * [`traffic`] — the traffic conditions (`query-rate-high`, `query-rate-rising`,
//!   `extended-error`) from counts per second.
//!
//! The source that runs them for a server is [`crate::sources::dnstap`].
//!
//! Not implemented: TLS listeners.

pub mod classify;
pub mod dns;
pub mod fstrm;
pub mod message;
pub mod read;
pub mod receiver;
pub mod traffic;
