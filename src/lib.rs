//! dns-oops: DNS Out Of Protocol Signalling.
//!
//! Reading order:
//!
//! 1. [`condition`] — the catalogue of conditions (design.md §2).
//! 2. [`signal`] — observations that sources send, and the signals the engine emits.
//! 3. [`engine`] — turns observations into signals: hysteresis, hold times, derived
//!    conditions, and the policy expression language.
//! 4. [`config`] — the TOML model, its validation and its error messages.
//! 5. [`journal`] — SQLite storage of every signal and of the current state.
//! 6. [`sources`] — where observations come from: SOA probes, the server's process, NOTIFY,
//!    Knot's D-Bus signals.
//!    [`dnstap`] — Frame Streams and dnstap decoding, the socket receiver, the traffic
//!    conditions, and `dnstap-read`, a capture's summary.
//!    [`health`] — whether each source can see its server and each channel reaches its peer,
//!    apart from the conditions.
//! 7. [`channels`] — where signals go: log lines, commands, MQTT, webhooks; [`anycast`] —
//!    policies over conditions that announce and withdraw prefixes through BIRD and ExaBGP.
//! 8. [`http`] — the HTTP API, server-sent events, metrics, and the clients behind
//!    `status` and `watch`.
//! 9. [`push`] — the signals zone over DNS Push (RFC 8765) on TLS, and the `subscribe`
//!    client; the protocol itself is the `dso` crate (`crates/dso`).
//! 10. [`daemon`] — wires it all together for `dns-oops run`.
//! 11. [`check`], [`demo`], [`lab`] — the one-shot monitoring check, the self-contained demo,
//!     and the small authoritative server the demo and the tests run.
//! 12. [`zone`] — zone files, zone transfers and the DNSSEC signature scan behind
//!     `check-zone`, and the SOA timers the `zone-health` source follows.
//! 13. [`intree`] — in-tree hints: the hints file, its check against the live DNS (the
//!     `in-tree` source and `in-tree check`), and resolver configuration (`in-tree render`).
//! 14. [`nsd_verify`] — `dns-oops nsd-verify`, NSD's zone verifier hook: each new zone
//!     version NSD receives is reported to the daemon, and rejected when a check fails.

pub mod anycast;
pub mod channels;
pub mod check;
pub mod cli;
pub mod condition;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dnstap;
pub mod drain;
pub mod engine;
pub mod health;
pub mod http;
pub mod intree;
pub mod journal;
pub mod lab;
pub mod nsd_verify;
pub mod push;
pub mod signal;
pub mod sources;
pub mod zone;
