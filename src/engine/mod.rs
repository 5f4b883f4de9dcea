//! The engine: turns [`Observation`]s into [`Signal`]s.
//!
//! It is pure: no I/O, no clock of its own. Every call takes a [`Moment`] (a monotonic
//! instant for hold times and a wall-clock time for signal timestamps), so tests drive it
//! with a fake clock.
//!
//! ```text
//!                 Sample(met) × rise            hold elapsed
//!   not met ───────────────────────────▶ met ─────────────────┐
//!      ▲    Assert(met)                   │                   │
//!      │                                  │ Sample(!met) × fall, Assert(!met)
//!      └──────────────────────────────────┘ (deferred while the minimum hold lasts)
//! ```
//!
//! Level conditions are met or not; only a change is signalled (`met` / `cleared`).
//! Polled evidence must agree `rise` (or `fall`) times in a row before it changes a state;
//! certain evidence (a process exit, an event from inside the server) changes it at once.
//! A server's `hold` is the minimum time a condition stays in a state once it changed: a
//! change asked for earlier waits until the hold ends ([`Engine::next_deadline`],
//! [`Engine::tick`]), and is dropped if the evidence turns back in the meantime.
//!
//! Rules between conditions of one server, applied after every change:
//!
//! * `server-running` met clears `server-stopping` and `server-crashed`;
//! * `server-stopping` or `server-crashed` met clears `server-running`;
//! * a drain ([`Engine::drain`], `dns-oops drain`) meets `server-stopping` from
//!   [`DRAIN_SOURCE`] and holds it until [`Engine::undrain`], whatever the sources say;
//!   it leaves `server-running` alone (a drained server still answers);
//! * `server-running` cleared by failing polls, with no stop or crash seen, meets
//!   `server-crashed` (the server was running and stopped answering);
//! * `server-running` cleared clears every `zone-ready` of the server: a dead server
//!   serves no zone;
//! * a `zone-ready` observation with a new `serial` while the zone is ready is the event
//!   `zone-updated` (arguments `serial`, `previous-serial`);
//! * `all-zones-ready` (argument `count`) is met exactly while every configured zone of the
//!   server is ready.
//!
//! State that was met before a restart is given back with [`Engine::restore`]; a condition
//! still met afterwards is not signalled again.

pub mod policy;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::condition::{ConditionId, ConditionScope};
use crate::signal::{
    Args, CurrentCondition, Evidence, Observation, Signal, SignalState, StateChange,
};

/// The source name of signals the engine derives itself.
pub const ENGINE_SOURCE: &str = "engine";
/// The source name of `server-stopping` raised by `dns-oops drain`.
pub const DRAIN_SOURCE: &str = "drain";

/// A point in time, as both clocks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// For hold times: never jumps.
    pub mono: Instant,
    /// For signal timestamps.
    pub wall: DateTime<Utc>,
}

impl Moment {
    pub fn now() -> Moment {
        Moment {
            mono: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// This moment moved forward on both clocks.
    pub fn after(self, d: Duration) -> Moment {
        Moment {
            mono: self.mono + d,
            wall: self.wall + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX),
        }
    }
}

/// What the engine knows about one watched server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerModel {
    pub name: String,
    /// The zones `all-zones-ready` is derived over (lowercase, trailing dot).
    pub zones: Vec<String>,
    /// Minimum time a level condition stays in a state after it changed.
    pub hold: Duration,
}

/// Identifies one condition instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConditionKey {
    pub server: String,
    pub condition: ConditionId,
    pub subject: Option<String>,
}

impl ConditionKey {
    fn new(server: &str, condition: ConditionId, subject: Option<&str>) -> Self {
        ConditionKey {
            server: server.to_string(),
            condition,
            subject: subject.map(str::to_string),
        }
    }
}

/// A wanted change of a level condition.
#[derive(Debug, Clone)]
struct Change {
    met: bool,
    args: Args,
    source: String,
    /// The change comes from polls that failed or succeeded `rise`/`fall` times.
    polled: bool,
}

/// The state of one level condition.
#[derive(Debug, Clone)]
struct LevelState {
    met: bool,
    since: DateTime<Utc>,
    args: Args,
    source: String,
    /// `seq` of the `met` signal.
    seq: u64,
    /// Consecutive samples that disagree with `met`.
    streak: u32,
    /// When the state last changed; `None` when it came from a restore or never changed.
    changed_at: Option<Instant>,
    /// A change that waits for the hold time to end.
    pending: Option<Change>,
}

/// The condition engine of one node.
#[derive(Debug)]
pub struct Engine {
    node: String,
    servers: BTreeMap<String, ServerModel>,
    states: BTreeMap<ConditionKey, LevelState>,
    next_seq: u64,
    /// Keys whose stored row changed since the last [`Engine::take_changes`].
    dirty: BTreeSet<ConditionKey>,
}

/// Why an observation was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObservationError {
    #[error("observation for unknown server `{0}`")]
    UnknownServer(String),
    #[error("`{0}` is an event condition; it cannot be met or cleared")]
    EventAsLevel(ConditionId),
    #[error("`{0}` is a level condition; it cannot be observed as an event")]
    LevelAsEvent(ConditionId),
    #[error("`{0}` is a zone condition and needs a subject")]
    MissingSubject(ConditionId),
    #[error("`{0}` is a server condition and takes no subject")]
    UnexpectedSubject(ConditionId),
    #[error("`{0}` is derived by the engine and cannot be observed")]
    Derived(ConditionId),
}

impl Engine {
    /// A new engine; `last_seq` is the journal's last signal number (0 for a new journal).
    pub fn new(node: &str, servers: Vec<ServerModel>, last_seq: u64) -> Engine {
        Engine {
            node: node.to_string(),
            servers: servers.into_iter().map(|s| (s.name.clone(), s)).collect(),
            states: BTreeMap::new(),
            next_seq: last_seq + 1,
            dirty: BTreeSet::new(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Gives back the conditions that were met before a restart. Conditions of servers
    /// that are no longer configured are dropped and reported as removals by the next
    /// [`Engine::take_changes`]. Returns the signals that the current configuration implies
    /// at once (e.g. `all-zones-ready` cleared when a zone was added to the server).
    pub fn restore(&mut self, rows: Vec<CurrentCondition>, now: Moment) -> Vec<Signal> {
        for row in rows {
            let key = ConditionKey {
                server: row.server,
                condition: row.condition,
                subject: row.subject,
            };
            if !self.servers.contains_key(&key.server) || !key.condition.is_level() {
                self.dirty.insert(key);
                continue;
            }
            self.states.insert(
                key,
                LevelState {
                    met: true,
                    since: row.since,
                    args: row.args,
                    source: row.source,
                    seq: row.seq,
                    streak: 0,
                    changed_at: None,
                    pending: None,
                },
            );
        }
        let mut out = Vec::new();
        let servers: Vec<String> = self.servers.keys().cloned().collect();
        for server in servers {
            self.derive_all_zones_ready(&server, now, &mut out);
        }
        out
    }

    /// Applies one observation and returns the signals it causes, in order.
    pub fn observe(
        &mut self,
        obs: Observation,
        now: Moment,
    ) -> Result<Vec<Signal>, ObservationError> {
        self.validate(&obs)?;
        let mut out = Vec::new();
        if obs.condition == ConditionId::ServerStopping && self.is_drained(&obs.server) {
            // A drain holds `server-stopping` until `undrain`, whatever the sources say.
            return Ok(out);
        }
        let key = ConditionKey::new(&obs.server, obs.condition, obs.subject.as_deref());
        match obs.evidence {
            Evidence::Event => {
                out.push(self.signal(&key, SignalState::Event, obs.args, obs.source, now));
            }
            Evidence::Assert { met } => {
                let state = self.state_mut(&key, now);
                state.streak = 0;
                if state.met == met {
                    state.pending = None;
                    if met {
                        self.refresh_args(&key, obs.args, obs.source, now, &mut out);
                    }
                } else {
                    let change = Change {
                        met,
                        args: obs.args,
                        source: obs.source.to_string(),
                        polled: false,
                    };
                    self.request(&key, change, now, &mut out);
                }
            }
            Evidence::Sample { met, rise, fall } => {
                let state = self.state_mut(&key, now);
                if state.met == met {
                    state.streak = 0;
                    state.pending = None;
                    if met {
                        self.refresh_args(&key, obs.args, obs.source, now, &mut out);
                    }
                } else {
                    state.streak += 1;
                    let needed = if met { rise } else { fall }.max(1);
                    if state.streak >= needed {
                        let change = Change {
                            met,
                            args: obs.args,
                            source: obs.source.to_string(),
                            polled: true,
                        };
                        self.request(&key, change, now, &mut out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Applies the changes whose hold time has ended.
    pub fn tick(&mut self, now: Moment) -> Vec<Signal> {
        let due: Vec<ConditionKey> = self
            .states
            .iter()
            .filter(|(key, state)| {
                state.pending.is_some() && self.hold_ends(key, state).is_none_or(|t| t <= now.mono)
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            let Some(pending) = self.states.get_mut(&key).and_then(|s| s.pending.take()) else {
                continue;
            };
            self.request(&key, pending, now, &mut out);
        }
        out
    }

    /// When [`Engine::tick`] next has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.states
            .iter()
            .filter(|(_, state)| state.pending.is_some())
            .filter_map(|(key, state)| self.hold_ends(key, state))
            .min()
    }

    /// Whether a level condition is met; with `subject` `None`, a zone condition is met
    /// when it is met for any subject.
    pub fn is_met(&self, server: &str, condition: ConditionId, subject: Option<&str>) -> bool {
        match (condition.scope(), subject) {
            (ConditionScope::Zone, None) => self
                .states
                .iter()
                .any(|(k, s)| s.met && k.server == server && k.condition == condition),
            _ => self
                .states
                .get(&ConditionKey::new(server, condition, subject))
                .is_some_and(|s| s.met),
        }
    }

    /// Whether an operator has drained `server` (`dns-oops drain`): `server-stopping` is
    /// met from [`DRAIN_SOURCE`] and stays met, whatever the sources say, until
    /// [`Engine::undrain`].
    pub fn is_drained(&self, server: &str) -> bool {
        self.states
            .get(&ConditionKey::new(
                server,
                ConditionId::ServerStopping,
                None,
            ))
            .is_some_and(|s| s.met && s.source == DRAIN_SOURCE)
    }

    /// Raises `server-stopping` for `server` with `reason`, at once (an operator's command
    /// is certain and bypasses the hold time). The server's other conditions stay as the
    /// sources see them: a drained server that answers is still `server-running`. When
    /// `server-stopping` is already met (the server is stopping on its own), it becomes
    /// the drain's without a new signal.
    pub fn drain(
        &mut self,
        server: &str,
        reason: &str,
        now: Moment,
    ) -> Result<Vec<Signal>, ObservationError> {
        if !self.servers.contains_key(server) {
            return Err(ObservationError::UnknownServer(server.to_string()));
        }
        let key = ConditionKey::new(server, ConditionId::ServerStopping, None);
        let args = Args::from([("reason".to_string(), reason.into())]);
        let mut out = Vec::new();
        let state = self.state_mut(&key, now);
        state.pending = None;
        state.streak = 0;
        if state.met {
            state.source = DRAIN_SOURCE.to_string();
            state.args = args;
            self.dirty.insert(key);
        } else {
            let change = Change {
                met: true,
                args,
                source: DRAIN_SOURCE.to_string(),
                polled: false,
            };
            self.apply(&key, change, now, &mut out);
        }
        Ok(out)
    }

    /// Ends a drain: clears `server-stopping` at once when a drain raised it; nothing
    /// happens to a server that is not drained.
    pub fn undrain(&mut self, server: &str, now: Moment) -> Result<Vec<Signal>, ObservationError> {
        if !self.servers.contains_key(server) {
            return Err(ObservationError::UnknownServer(server.to_string()));
        }
        let mut out = Vec::new();
        if self.is_drained(server) {
            let key = ConditionKey::new(server, ConditionId::ServerStopping, None);
            let change = Change {
                met: false,
                args: Args::new(),
                source: DRAIN_SOURCE.to_string(),
                polled: false,
            };
            self.apply(&key, change, now, &mut out);
        }
        Ok(out)
    }

    /// Every condition that is met now.
    pub fn current(&self) -> Vec<CurrentCondition> {
        self.states
            .iter()
            .filter(|(_, s)| s.met)
            .map(|(k, s)| row(k, s))
            .collect()
    }

    /// The rows to write to the journal since the last call.
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|key| match self.states.get(&key) {
                Some(state) if state.met => StateChange::Upsert(row(&key, state)),
                _ => StateChange::Remove {
                    server: key.server,
                    condition: key.condition,
                    subject: key.subject,
                },
            })
            .collect()
    }

    fn validate(&self, obs: &Observation) -> Result<(), ObservationError> {
        if !self.servers.contains_key(&obs.server) {
            return Err(ObservationError::UnknownServer(obs.server.clone()));
        }
        match (obs.condition.is_level(), obs.evidence) {
            (false, Evidence::Sample { .. } | Evidence::Assert { .. }) => {
                return Err(ObservationError::EventAsLevel(obs.condition));
            }
            (true, Evidence::Event) => return Err(ObservationError::LevelAsEvent(obs.condition)),
            _ => {}
        }
        if obs.condition == ConditionId::AllZonesReady {
            return Err(ObservationError::Derived(obs.condition));
        }
        match (obs.condition.scope(), &obs.subject) {
            (ConditionScope::Zone, None) => Err(ObservationError::MissingSubject(obs.condition)),
            (ConditionScope::Server, Some(_)) => {
                Err(ObservationError::UnexpectedSubject(obs.condition))
            }
            _ => Ok(()),
        }
    }

    fn state_mut(&mut self, key: &ConditionKey, now: Moment) -> &mut LevelState {
        self.states
            .entry(key.clone())
            .or_insert_with(|| LevelState {
                met: false,
                since: now.wall,
                args: Args::new(),
                source: String::new(),
                seq: 0,
                streak: 0,
                changed_at: None,
                pending: None,
            })
    }

    fn hold_ends(&self, key: &ConditionKey, state: &LevelState) -> Option<Instant> {
        let hold = self.servers.get(&key.server)?.hold;
        Some(state.changed_at? + hold)
    }

    /// Asks for a level change; applies it now, or defers it to the end of the hold.
    fn request(&mut self, key: &ConditionKey, change: Change, now: Moment, out: &mut Vec<Signal>) {
        let hold_ends = self.states.get(key).and_then(|s| self.hold_ends(key, s));
        if hold_ends.is_some_and(|t| t > now.mono) {
            if let Some(state) = self.states.get_mut(key) {
                state.pending = Some(change);
            }
            return;
        }
        self.apply(key, change, now, out);
    }

    fn apply(&mut self, key: &ConditionKey, change: Change, now: Moment, out: &mut Vec<Signal>) {
        let Change {
            met,
            args,
            source,
            polled,
        } = change;
        let state = self.state_mut(key, now);
        if state.met == met {
            state.pending = None;
            return;
        }
        state.met = met;
        state.since = now.wall;
        state.streak = 0;
        state.changed_at = Some(now.mono);
        state.pending = None;
        state.source.clone_from(&source);
        if met {
            state.args = args.clone();
        }
        self.dirty.insert(key.clone());
        let signal_state = if met {
            SignalState::Met
        } else {
            SignalState::Cleared
        };
        let signal = self.signal(key, signal_state, args, &source, now);
        if met && let Some(state) = self.states.get_mut(key) {
            state.seq = signal.seq;
        }
        out.push(signal);
        self.follow_rules(key, met, polled, &source, now, out);
    }

    fn follow_rules(
        &mut self,
        key: &ConditionKey,
        met: bool,
        polled_failure: bool,
        source: &str,
        now: Moment,
        out: &mut Vec<Signal>,
    ) {
        let server = key.server.clone();
        let server_key = |c| ConditionKey::new(&server, c, None);
        match (key.condition, met) {
            (ConditionId::ServerRunning, true) => {
                if !self.is_drained(&server) {
                    let stopping = server_key(ConditionId::ServerStopping);
                    self.force(&stopping, false, Args::new(), source, now, out);
                }
                let crashed = server_key(ConditionId::ServerCrashed);
                self.force(&crashed, false, Args::new(), source, now, out);
            }
            // A drain takes the server out of service; it does not stop it.
            (ConditionId::ServerStopping, true) if source == DRAIN_SOURCE => {}
            (ConditionId::ServerStopping | ConditionId::ServerCrashed, true) => {
                self.force(
                    &server_key(ConditionId::ServerRunning),
                    false,
                    Args::new(),
                    source,
                    now,
                    out,
                );
            }
            (ConditionId::ServerRunning, false) => {
                let stop_seen = self.is_met(&server, ConditionId::ServerStopping, None)
                    || self.is_met(&server, ConditionId::ServerCrashed, None);
                if polled_failure && !stop_seen {
                    self.force(
                        &server_key(ConditionId::ServerCrashed),
                        true,
                        Args::new(),
                        source,
                        now,
                        out,
                    );
                }
                let ready_zones: Vec<ConditionKey> = self
                    .states
                    .iter()
                    .filter(|(k, s)| {
                        s.met && k.server == server && k.condition == ConditionId::ZoneReady
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                let reason = Args::from([("error".to_string(), "server not running".into())]);
                for zone in ready_zones {
                    self.force(&zone, false, reason.clone(), source, now, out);
                }
            }
            (ConditionId::ZoneReady, _) => self.derive_all_zones_ready(&server, now, out),
            _ => {}
        }
    }

    /// A change caused by a rule: certain, so it bypasses rise/fall but not the hold.
    fn force(
        &mut self,
        key: &ConditionKey,
        met: bool,
        args: Args,
        source: &str,
        now: Moment,
        out: &mut Vec<Signal>,
    ) {
        let current = self.states.get(key).map(|s| s.met).unwrap_or(false);
        if current != met {
            let change = Change {
                met,
                args,
                source: source.to_string(),
                polled: false,
            };
            self.request(key, change, now, out);
        }
    }

    fn derive_all_zones_ready(&mut self, server: &str, now: Moment, out: &mut Vec<Signal>) {
        let Some(model) = self.servers.get(server) else {
            return;
        };
        if model.zones.is_empty() {
            return;
        }
        let ready = model
            .zones
            .iter()
            .filter(|z| self.is_met(server, ConditionId::ZoneReady, Some(z)))
            .count();
        let all = ready == model.zones.len();
        let key = ConditionKey::new(server, ConditionId::AllZonesReady, None);
        let args = Args::from([("count".to_string(), ready.into())]);
        if self.states.get(&key).map(|s| s.met).unwrap_or(false) != all {
            let change = Change {
                met: all,
                args,
                source: ENGINE_SOURCE.to_string(),
                polled: false,
            };
            self.request(&key, change, now, out);
        }
    }

    /// A met condition observed met again: keep it, but follow its arguments. A new
    /// `zone-ready` serial is a `zone-updated` event.
    fn refresh_args(
        &mut self,
        key: &ConditionKey,
        args: Args,
        source: &str,
        now: Moment,
        out: &mut Vec<Signal>,
    ) {
        let Some(state) = self.states.get_mut(key) else {
            return;
        };
        if args.is_empty() || state.args == args {
            return;
        }
        let previous = std::mem::replace(&mut state.args, args.clone());
        self.dirty.insert(key.clone());
        if key.condition == ConditionId::ZoneReady
            && let (Some(serial), Some(old)) = (args.get("serial"), previous.get("serial"))
            && serial != old
        {
            let event_key = ConditionKey::new(
                &key.server,
                ConditionId::ZoneUpdated,
                key.subject.as_deref(),
            );
            let event_args = Args::from([
                ("serial".to_string(), serial.clone()),
                ("previous-serial".to_string(), old.clone()),
            ]);
            out.push(self.signal(&event_key, SignalState::Event, event_args, source, now));
        }
    }

    fn signal(
        &mut self,
        key: &ConditionKey,
        state: SignalState,
        args: Args,
        source: &str,
        now: Moment,
    ) -> Signal {
        let seq = self.next_seq;
        self.next_seq += 1;
        Signal {
            seq,
            time: now.wall,
            node: self.node.clone(),
            server: key.server.clone(),
            condition: key.condition,
            subject: key.subject.clone(),
            state,
            args,
            source: source.to_string(),
        }
    }
}

fn row(key: &ConditionKey, state: &LevelState) -> CurrentCondition {
    CurrentCondition {
        server: key.server.clone(),
        condition: key.condition,
        subject: key.subject.clone(),
        since: state.since,
        args: state.args.clone(),
        source: state.source.clone(),
        seq: state.seq,
    }
}

impl policy::ConditionFacts for Engine {
    fn is_met(&self, server: &str, condition: ConditionId, subject: Option<&str>) -> bool {
        Engine::is_met(self, server, condition, subject)
    }
}

#[cfg(test)]
mod tests;
