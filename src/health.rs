//! Health of sources and channels, reported apart from the conditions they produce.
//!
//! A condition says what dns-oops knows about a server ("zone not ready"); health says
//! whether dns-oops can know it at all ("we cannot see the zone"). Every source and channel
//! holds a [`Health`] handle and says what state it is in:
//!
//! | state | source | channel |
//! |---|---|---|
//! | `starting` | not yet connected or listening | not yet tried its peer |
//! | `connected` | hears the server (bus, socket, listener up) | its peer takes signals |
//! | `stalled` | connected, but nothing useful arrives (e.g. refused, bad answers) | its peer is reachable but does not take signals (5xx, refused auth, no answer) |
//! | `gone` | cannot reach what it listens to (bus lost, socket missing) | its peer is unreachable |
//!
//! The [`Board`] keeps the latest state of each, with the reason and the time it began;
//! `GET /api/v1/conditions` shows it under `sources` and `channels` (channels with their lag:
//! how many signals they are behind the journal and how old the oldest undelivered one is),
//! `/metrics` has `dns_oops_source_state` and `dns_oops_channel_state` (1 for the current
//! state), and every change of state is logged once: a warning when it becomes `stalled` or
//! `gone`, an info line when it is `connected` again. A new reason in the same state is
//! logged at debug level only, so a peer that stays down does not flood the log.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a source or channel can say about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    Starting,
    Connected,
    Stalled,
    Gone,
}

impl HealthState {
    pub const ALL: [HealthState; 4] = [
        HealthState::Starting,
        HealthState::Connected,
        HealthState::Stalled,
        HealthState::Gone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Connected => "connected",
            HealthState::Stalled => "stalled",
            HealthState::Gone => "gone",
        }
    }

    fn is_bad(self) -> bool {
        matches!(self, HealthState::Stalled | HealthState::Gone)
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an entry is a source or a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Source,
    Channel,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Source => "source",
            Part::Channel => "channel",
        }
    }
}

/// One source's health, as `/api/v1/conditions` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// The type, or `<type>-N` for the N-th source of that type for the same server.
    #[serde(default)]
    pub name: String,
    /// The source's type (`probe`, `knot-dbus`, `control`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The server it observes.
    pub server: String,
    pub state: HealthState,
    /// Since when it is in this state.
    #[serde(with = "crate::signal::rfc3339_micros")]
    pub since: DateTime<Utc>,
    /// Why, in a sentence an operator can act on (the last error, what it listens on).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One channel's health and lag, as `/api/v1/conditions` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelHealth {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: HealthState,
    #[serde(with = "crate::signal::rfc3339_micros")]
    pub since: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The last `seq` the channel delivered (its journal cursor); absent for channels that
    /// serve the current state instead of reading the journal (DNS Push).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_seq: Option<u64>,
    /// Signals in the journal after `delivered_seq` (whatever the channel's filter).
    #[serde(default)]
    pub behind: u64,
    /// The time of the oldest signal not yet delivered.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::signal::rfc3339_micros_option"
    )]
    pub oldest_undelivered: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
struct Entry {
    kind: String,
    state: HealthState,
    since: DateTime<Utc>,
    detail: String,
}

type Key = (Part, String, String);

/// Every source's and channel's latest health. Shared as `Arc<Board>`.
#[derive(Debug, Default)]
pub struct Board {
    entries: Mutex<BTreeMap<Key, Entry>>,
}

impl Board {
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    /// Registers a source of type `kind` observing `server`, in state `starting`.
    /// A second source of the same type for the same server is `<type>-2`, and so on.
    pub fn source(self: &Arc<Self>, kind: &str, server: &str) -> Health {
        let taken = |name: &str| {
            self.lock()
                .contains_key(&(Part::Source, name.to_string(), server.to_string()))
        };
        let mut name = kind.to_string();
        let mut n = 1;
        while taken(&name) {
            n += 1;
            name = format!("{kind}-{n}");
        }
        self.register(Part::Source, &name, server.to_string(), kind.to_string())
    }

    /// Registers the channel `name` of type `kind`, in state `starting`.
    pub fn channel(self: &Arc<Self>, name: &str, kind: &str) -> Health {
        self.register(Part::Channel, name, String::new(), kind.to_string())
    }

    fn register(self: &Arc<Self>, part: Part, name: &str, server: String, kind: String) -> Health {
        let key = (part, name.to_string(), server);
        self.lock().entry(key.clone()).or_insert(Entry {
            kind,
            state: HealthState::Starting,
            since: Utc::now(),
            detail: String::new(),
        });
        Health {
            board: self.clone(),
            key: Arc::new(key),
        }
    }

    /// Every source's health, by type and server.
    pub fn sources(&self) -> Vec<SourceHealth> {
        self.lock()
            .iter()
            .filter(|((part, _, _), _)| *part == Part::Source)
            .map(|((_, name, server), e)| SourceHealth {
                name: name.clone(),
                kind: e.kind.clone(),
                server: server.clone(),
                state: e.state,
                since: e.since,
                detail: e.detail.clone(),
            })
            .collect()
    }

    /// Every channel's health, without its lag (see [`ChannelHealth::with_lag`]).
    pub fn channels(&self) -> Vec<ChannelHealth> {
        self.lock()
            .iter()
            .filter(|((part, _, _), _)| *part == Part::Channel)
            .map(|((_, name, _), e)| ChannelHealth {
                name: name.clone(),
                kind: e.kind.clone(),
                state: e.state,
                since: e.since,
                detail: e.detail.clone(),
                delivered_seq: None,
                behind: 0,
                oldest_undelivered: None,
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Entry>> {
        // A panic while holding this lock cannot leave an entry half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChannelHealth {
    /// Fills in the lag from the journal: the channel's cursor, how many signals follow it
    /// and when the first of them was written.
    pub fn with_lag(
        mut self,
        journal: &crate::journal::Journal,
        last_seq: u64,
    ) -> Result<ChannelHealth, crate::journal::JournalError> {
        let Some(cursor) = journal.cursor(&self.name)? else {
            return Ok(self);
        };
        self.delivered_seq = Some(cursor);
        self.behind = last_seq.saturating_sub(cursor);
        if self.behind > 0 {
            self.oldest_undelivered = journal
                .signals_after(cursor, 1)?
                .first()
                .map(|signal| signal.time);
        }
        Ok(self)
    }
}

/// One source's or channel's handle on the [`Board`]. Cloning shares the entry.
#[derive(Debug, Clone)]
pub struct Health {
    board: Arc<Board>,
    key: Arc<Key>,
}

impl Health {
    /// A handle on a board of its own, for code run outside the daemon (tests, one-shot
    /// commands).
    pub fn detached(kind: &str, server: &str) -> Health {
        Board::new().source(kind, server)
    }

    /// It hears its server / its peer takes signals.
    pub fn connected(&self, detail: impl Into<String>) {
        self.set(HealthState::Connected, detail.into());
    }

    /// Reachable but not working: what arrives is refused or useless.
    pub fn stalled(&self, detail: impl Into<String>) {
        self.set(HealthState::Stalled, detail.into());
    }

    /// Cannot reach what it listens to or delivers to.
    pub fn gone(&self, detail: impl Into<String>) {
        self.set(HealthState::Gone, detail.into());
    }

    /// The current state.
    pub fn state(&self) -> HealthState {
        self.board
            .lock()
            .get(&*self.key)
            .map(|e| e.state)
            .unwrap_or(HealthState::Starting)
    }

    fn set(&self, state: HealthState, detail: String) {
        let now = Utc::now();
        let previous = {
            let mut entries = self.board.lock();
            let Some(entry) = entries.get_mut(&*self.key) else {
                return;
            };
            let previous = (entry.state, entry.since, entry.detail == detail);
            if entry.state != state {
                entry.since = now;
            }
            entry.state = state;
            entry.detail = detail.clone();
            previous
        };
        let (before, since, same_detail) = previous;
        let (part, name, server) = &*self.key;
        let what = match part {
            Part::Source => format!("source {name} for server `{server}`"),
            Part::Channel => format!("channel `{name}`"),
        };
        if before == state {
            if !same_detail {
                tracing::debug!(part = part.as_str(), "{what} is still {state}: {detail}");
            }
            return;
        }
        let after = (now - since).to_std().unwrap_or_default();
        let after = humantime::format_duration(std::time::Duration::from_secs(after.as_secs()));
        if state.is_bad() {
            tracing::warn!(part = part.as_str(), "{what} is {state}: {detail}");
        } else if before.is_bad() {
            tracing::info!(
                part = part.as_str(),
                "{what} is {state} again after {after} {before}: {detail}"
            );
        } else {
            tracing::info!(part = part.as_str(), "{what} is {state}: {detail}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionId;
    use crate::journal::Journal;
    use crate::signal::{Args, Signal, SignalState};

    #[test]
    fn states_and_reasons_are_kept_per_source_and_channel() {
        let board = Board::new();
        let dbus = board.source("knot-dbus", "knot");
        let control = board.source("control", "knot");
        let mqtt = board.channel("broker", "mqtt");
        assert_eq!(dbus.state(), HealthState::Starting);

        dbus.connected("on the system bus");
        control.gone("cannot connect to /run/knot/knot.sock: No such file or directory");
        mqtt.stalled("the broker refused the connection: bad user name or password");
        let gone_since = |board: &Board| {
            board
                .sources()
                .into_iter()
                .find(|s| s.kind == "control")
                .unwrap()
                .since
        };
        let first = gone_since(&board);
        control.gone("cannot connect to /run/knot/knot.sock: Connection refused");

        let sources = board.sources();
        assert_eq!(sources.len(), 2);
        let control_entry = sources.iter().find(|s| s.kind == "control").unwrap();
        assert_eq!(control_entry.state, HealthState::Gone);
        assert!(control_entry.detail.ends_with("Connection refused"));
        let dbus_entry = sources.iter().find(|s| s.kind == "knot-dbus").unwrap();
        assert_eq!(dbus_entry.state, HealthState::Connected);
        assert_eq!(dbus_entry.server, "knot");
        let channels = board.channels();
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].name, "broker");
        assert_eq!(channels[0].kind, "mqtt");
        assert_eq!(channels[0].state, HealthState::Stalled);
        // A new reason in the same state keeps `since`.
        assert_eq!(gone_since(&board), first);

        // A clone is the same entry.
        let again = mqtt.clone();
        again.connected("publishing");
        assert_eq!(mqtt.state(), HealthState::Connected);
    }

    #[test]
    fn two_sources_of_one_type_for_one_server_are_told_apart() {
        let board = Board::new();
        let first = board.source("probe", "knot");
        let second = board.source("probe", "knot");
        let other = board.source("probe", "nsd");
        first.connected("answers");
        second.gone("no answer");
        other.stalled("refused");
        let sources = board.sources();
        let names: Vec<(&str, &str, &str, HealthState)> = sources
            .iter()
            .map(|s| (s.name.as_str(), s.kind.as_str(), s.server.as_str(), s.state))
            .collect();
        assert_eq!(
            names,
            [
                ("probe", "probe", "knot", HealthState::Connected),
                ("probe", "probe", "nsd", HealthState::Stalled),
                ("probe-2", "probe", "knot", HealthState::Gone),
            ]
        );
    }

    #[test]
    fn a_registered_name_keeps_its_state_when_registered_again() {
        let board = Board::new();
        board.channel("hook", "webhook").gone("connection refused");
        let again = board.channel("hook", "webhook");
        assert_eq!(again.state(), HealthState::Gone);
    }

    fn signal(seq: u64) -> Signal {
        Signal {
            seq,
            time: Utc::now(),
            node: "n".into(),
            server: "s".into(),
            condition: ConditionId::ZoneUpdated,
            subject: Some("a.test.".into()),
            state: SignalState::Event,
            args: Args::new(),
            source: "probe".into(),
        }
    }

    #[test]
    fn channel_lag_comes_from_its_journal_cursor() {
        let journal = Journal::open_in_memory().unwrap();
        let signals: Vec<Signal> = (1..=5).map(signal).collect();
        journal.record(&signals, &[]).unwrap();
        let board = Board::new();
        board.channel("hook", "webhook");
        board.channel("never", "log");

        journal.set_cursor("hook", 2).unwrap();
        let lag: Vec<ChannelHealth> = board
            .channels()
            .into_iter()
            .map(|c| c.with_lag(&journal, 5).unwrap())
            .collect();
        let hook = lag.iter().find(|c| c.name == "hook").unwrap();
        assert_eq!(hook.delivered_seq, Some(2));
        assert_eq!(hook.behind, 3);
        let third = journal.signals_after(2, 1).unwrap()[0].time;
        assert_eq!(hook.oldest_undelivered, Some(third));
        let never = lag.iter().find(|c| c.name == "never").unwrap();
        assert_eq!((never.delivered_seq, never.behind), (None, 0));

        journal.set_cursor("hook", 5).unwrap();
        let hook = board.channels()[0].clone().with_lag(&journal, 5).unwrap();
        assert_eq!((hook.behind, hook.oldest_undelivered), (0, None));
    }
}
