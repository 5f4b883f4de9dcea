//! What flows through the daemon: [`Observation`]s from sources into the engine, and
//! [`Signal`]s from the engine into the journal and out through the channels.
//!
//! A signal's JSON form is a user-facing contract (design.md §3):
//!
//! ```json
//! {"seq":1042,"time":"2026-11-22T08:00:00.123456Z","node":"ams1","server":"knot",
//!  "condition":"zone-ready","subject":"example.net.","state":"met",
//!  "args":{"serial":2026112201},"source":"probe"}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::condition::ConditionId;

/// A signal's arguments: names in kebab-case, values strings or numbers.
pub type Args = BTreeMap<String, serde_json::Value>;

/// `met`, `cleared` or `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalState {
    Met,
    Cleared,
    Event,
}

impl SignalState {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalState::Met => "met",
            SignalState::Cleared => "cleared",
            SignalState::Event => "event",
        }
    }
}

impl fmt::Display for SignalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal: a condition became met, stopped being met, or (for events) happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Increases by one per signal per node, across restarts.
    pub seq: u64,
    #[serde(with = "rfc3339_micros")]
    pub time: DateTime<Utc>,
    pub node: String,
    pub server: String,
    pub condition: ConditionId,
    /// The zone (with trailing dot) for zone-scoped conditions, absent for server-level ones.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    pub state: SignalState,
    #[serde(default)]
    pub args: Args,
    /// The source that caused the signal (`probe`, `process`, …; `engine` for derived ones).
    pub source: String,
}

impl Signal {
    /// The signal as one line of JSON, without a newline.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a signal always serialises")
    }

    /// The subject as used in names and topics: `-` for server-level conditions.
    pub fn subject_or_dash(&self) -> &str {
        self.subject.as_deref().unwrap_or("-")
    }
}

/// Formats times as RFC 3339 in UTC with microseconds, the signal JSON's time format.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// [`rfc3339_micros`] for an optional time; `null` or absent is `None`.
pub(crate) mod rfc3339_micros_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

pub(crate) mod rfc3339_micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// What a source tells the engine about one condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub server: String,
    pub condition: ConditionId,
    pub subject: Option<String>,
    pub evidence: Evidence,
    pub args: Args,
    /// The source's name as it appears in signals (`probe`, `process`, …).
    pub source: &'static str,
}

/// How strong an observation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// One result of a poll: counts toward `rise` consecutive successes before the condition
    /// becomes met, and `fall` consecutive failures before it clears.
    Sample { met: bool, rise: u32, fall: u32 },
    /// The source knows for certain (an event from inside the server, a process exit):
    /// the condition is met or cleared now, subject only to the minimum hold time.
    Assert { met: bool },
    /// An event condition happened.
    Event,
}

impl Observation {
    pub fn new(
        source: &'static str,
        server: &str,
        condition: ConditionId,
        subject: Option<&str>,
        evidence: Evidence,
    ) -> Self {
        Observation {
            server: server.to_string(),
            condition,
            subject: subject.map(str::to_string),
            evidence,
            args: Args::new(),
            source,
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.args.insert(name.to_string(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn json_matches_the_contract() {
        let signal = Signal {
            seq: 1042,
            time: Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap()
                + chrono::Duration::microseconds(123456),
            node: "ams1".into(),
            server: "knot".into(),
            condition: ConditionId::ZoneReady,
            subject: Some("example.net.".into()),
            state: SignalState::Met,
            args: Args::from([("serial".to_string(), 2026112201u32.into())]),
            source: "knot-dbus".into(),
        };
        assert_eq!(
            signal.to_json_line(),
            r#"{"seq":1042,"time":"2026-11-22T08:00:00.123456Z","node":"ams1","server":"knot","condition":"zone-ready","subject":"example.net.","state":"met","args":{"serial":2026112201},"source":"knot-dbus"}"#
        );
        let back: Signal = serde_json::from_str(&signal.to_json_line()).unwrap();
        assert_eq!(back, signal);
    }

    #[test]
    fn server_level_signal_has_no_subject_field() {
        let signal = Signal {
            seq: 1,
            time: Utc::now(),
            node: "n".into(),
            server: "s".into(),
            condition: ConditionId::ServerRunning,
            subject: None,
            state: SignalState::Cleared,
            args: Args::new(),
            source: "probe".into(),
        };
        let line = signal.to_json_line();
        assert!(!line.contains("subject"), "{line}");
        assert_eq!(signal.subject_or_dash(), "-");
    }
}

/// A level condition that is met now: one row of the current state, as the journal stores
/// it and the HTTP API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentCondition {
    pub server: String,
    pub condition: ConditionId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// When the condition became met.
    #[serde(with = "rfc3339_micros")]
    pub since: DateTime<Utc>,
    /// The arguments as they are now (a `zone-ready` serial follows the zone's updates).
    #[serde(default)]
    pub args: Args,
    pub source: String,
    /// The `seq` of the `met` signal.
    pub seq: u64,
}

/// A change to the current state, written to the journal together with the signals of the
/// same engine step.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// Insert or replace the row for (server, condition, subject).
    Upsert(CurrentCondition),
    /// The condition is no longer met: delete its row.
    Remove {
        server: String,
        condition: ConditionId,
        subject: Option<String>,
    },
}
