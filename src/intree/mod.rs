//! In-tree hints (draft-kolkman-in-tree-hints): resolver configuration that pins a domain's
//! in-domain name servers and trust anchor, so that resolution inside the domain survives
//! an unreachable or wrong parent delegation.
//!
//! The draft asks for tooling that "signals inconsistencies between information in the
//! parents and the in-tree configuration"; this module is that tooling:
//!
//! 1. [`hints`] — the hints file (TOML): reading with line and column errors, refusing what
//!    the draft forbids (no in-domain name server, no trust anchor).
//! 2. [`dns`] — one query to one server, UDP then TCP.
//! 3. [`check`] — the hints against the live DNS: the parent's delegation (NS, glue, DS),
//!    the domain's own NS set, addresses and DNSKEY set, the recursive in-domain
//!    requirement, and the `_in-tree.<domain>` TXT commitment.
//! 4. [`render`] — configuration for unbound, BIND, Knot Resolver and PowerDNS Recursor.
//! 5. [`source`] — the daemon's `in-tree` source: the check every interval, as the
//!    `in-tree-mismatch` and `in-tree-commitment-expiring` conditions.
//! 6. [`cli`] — `dns-oops in-tree check|render|init`.
//!
//! Not implemented: verification of the DNSKEY RRset's signatures (the check compares key
//! material, it does not validate), and RFC 5011 trust anchor maintenance (the rendered
//! configuration holds static anchors; the draft allows an off-band mechanism, which
//! `in-tree check` and the source are).

pub mod check;
pub mod cli;
pub mod dns;
pub mod hints;
pub mod render;
pub mod source;
