//! Sources: where observations come from.
//!
//! Each source is a task that sends [`Observation`](crate::signal::Observation)s to the
//! engine through an `mpsc` channel and ends when that channel closes.
//!
//! * [`probe`] — SOA probes over UDP with TCP fallback;
//! * [`process`] — the server's process, through a pidfd;
//! * [`notify_in`] — DNS NOTIFY from the server, confirmed by a SOA query;
//! * [`control`] — the server's own control channel (knotd's control socket);
//! * [`knot_dbus`] — Knot DNS's D-Bus signals and its bus name's owner;
//! * [`dnstap`] — the server's dnstap over Frame Streams: the traffic conditions;
//! * [`zone_health`] — SOA timers and zone transfers from outside: refresh, expiry and
//!   DNSSEC signature expiry.

pub mod control;
pub mod dnstap;
pub mod knot_dbus;
pub mod notify_in;
pub mod probe;
pub mod process;
pub mod zone_health;
