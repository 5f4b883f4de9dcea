//! dnstap: the traffic a DNS server logs about itself, as Frame Streams of protobuf
//! messages (Knot `mod-dnstap`, NSD, BIND, Unbound, PowerDNS Recursor, Knot Resolver,
//! dnsdist all write it).
//!
//! * [`fstrm`] — Frame Streams framing: control and data frames, capture files.
//! * [`message`] — the dnstap protobuf messages (hand-written prost structs).
//! * [`dns`] — the parts of a DNS message the traffic conditions read: header, question,
//!   EDNS options and Extended DNS Errors.
//! * [`read`] — `dns-oops dnstap-read FILE`, a summary of a capture.
//!
//! Not implemented yet (issue 7): the socket receiver (unix/TCP/TLS listeners and the
//! bidirectional handshake), the traffic conditions (`query-rate-high`,
//! `query-rate-rising`, `extended-error`), their metrics, and backpressure.

pub mod dns;
pub mod fstrm;
pub mod message;
pub mod read;
