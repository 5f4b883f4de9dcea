//! Sources: where observations come from.
//!
//! Each source is a task that sends [`Observation`](crate::signal::Observation)s to the
//! engine through an `mpsc` channel and ends when that channel closes.
//!
//! * [`probe`] — SOA probes over UDP with TCP fallback;
//! * [`process`] — the server's process, through a pidfd;
//! * [`notify_in`] — DNS NOTIFY from the server, confirmed by a SOA query;
//! * [`knot_dbus`] — Knot DNS's D-Bus signals and its bus name's owner.

pub mod knot_dbus;
pub mod notify_in;
pub mod probe;
pub mod process;
