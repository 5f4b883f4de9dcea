//! Zone contents from outside the server: reading zone files and checking the validity
//! periods of their DNSSEC signatures (the `signatures-expiring` condition, design.md §2).
//!
//! Reading order:
//!
//! 1. [`name`], [`types`] — domain names, record types, classes and algorithm mnemonics.
//! 2. [`rrsig`] — the RRSIG fields the scan needs and signature times with RFC 4034
//!    §3.1.5 serial-number arithmetic.
//! 3. [`master`] — a streaming reader of RFC 1035 master files (what `ldns-signzone` and
//!    Knot write), one record at a time.
//! 4. [`scan`] — [`scan::SignatureScan`], the accumulator that judges signatures as the
//!    records stream past, the same for a file and for a zone transfer.
//! 5. [`check_zone`] — `dns-oops check-zone FILE`: the scan over a file, with Nagios exit
//!    codes.
//! 6. [`wire`] — DNS messages read without copying: SOA answers with EDNS EXPIRE, TSIG
//!    records; [`axfr`] — a zone transfer fed message by message into the same scan;
//!    [`transfer`] — the queries and the transfer over the network.
//! 7. [`freshness`] — a secondary's SOA refresh, retry and expire timers followed from
//!    outside (`zone-refresh-failed`, `zone-expiring`).
//!
//! The daemon's `zone-health` source ([`crate::sources::zone_health`]) puts these together.
//!
//! Not implemented here: IXFR, verification of the signatures themselves, and a check that
//! every RRset that should be signed is.

pub mod axfr;
pub mod check_zone;
pub mod freshness;
pub mod master;
pub mod name;
pub mod rrsig;
pub mod scan;
pub mod transfer;
pub mod types;
pub mod wire;
