//! The condition catalogue (design.md §2): every condition dns-oops can signal, with its
//! stable id, its kind, and whether it is scoped to a zone.
//!
//! The ids are a user-facing contract: they appear in config files, policy expressions,
//! signal JSON, MQTT topics and DNS names. Never rename one without a migration note.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whether a condition is a state that holds for a while or a moment in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    /// Met or not met; signalled as `met` and `cleared`.
    Level,
    /// Happens at an instant; signalled as `event`.
    Event,
}

/// What a condition is about: the whole server, or one subject (a zone) on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionScope {
    Server,
    Zone,
}

macro_rules! catalogue {
    ($( $variant:ident = $id:literal, $kind:ident, $scope:ident, $doc:literal; )*) => {
        /// One entry of the condition catalogue.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ConditionId {
            $( #[doc = $doc] $variant, )*
        }

        impl ConditionId {
            /// Every condition, in catalogue order.
            pub const ALL: &'static [ConditionId] = &[$(ConditionId::$variant,)*];

            /// The stable id, e.g. `zone-ready`.
            pub fn as_str(self) -> &'static str {
                match self { $(ConditionId::$variant => $id,)* }
            }

            pub fn kind(self) -> ConditionKind {
                match self { $(ConditionId::$variant => ConditionKind::$kind,)* }
            }

            pub fn scope(self) -> ConditionScope {
                match self { $(ConditionId::$variant => ConditionScope::$scope,)* }
            }

            /// One line saying what the condition means, for `--help` and docs.
            pub fn description(self) -> &'static str {
                match self { $(ConditionId::$variant => $doc,)* }
            }
        }

        impl FromStr for ConditionId {
            type Err = UnknownCondition;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($id => Ok(ConditionId::$variant),)*
                    _ => Err(UnknownCondition(s.to_string())),
                }
            }
        }
    };
}

catalogue! {
    ServerRunning = "server-running", Level, Server, "the server runs and answers queries";
    ServerStopping = "server-stopping", Level, Server, "the server is shutting down or stopped on purpose";
    ServerCrashed = "server-crashed", Level, Server, "the server died without a stop being seen";
    ZoneReady = "zone-ready", Level, Zone, "the zone is loaded and answered authoritatively";
    AllZonesReady = "all-zones-ready", Level, Server, "every configured zone of the server is ready";
    ZoneUpdated = "zone-updated", Event, Zone, "the zone's SOA serial changed";
    ZoneRefreshFailed = "zone-refresh-failed", Level, Zone, "the zone could not be refreshed";
    ZoneExpiring = "zone-expiring", Level, Zone, "the zone expires within the configured period";
    SignaturesExpiring = "signatures-expiring", Level, Zone, "DNSSEC signatures in the zone expire within the configured period";
    QueryRateHigh = "query-rate-high", Level, Server, "the query rate exceeds the threshold";
    QueryRateRising = "query-rate-rising", Level, Server, "the query rate rises faster than the threshold";
    ExtendedError = "extended-error", Level, Zone, "responses carry a watched Extended DNS Error";
    InTreeMismatch = "in-tree-mismatch", Level, Zone, "in-tree hints differ from the live delegation";
    InTreeCommitmentExpiring = "in-tree-commitment-expiring", Level, Zone, "the _in-tree commitment expires within the configured period";
    KeysUpdated = "keys-updated", Event, Zone, "the zone's DNSSEC key set changed";
    KskSubmission = "ksk-submission", Event, Zone, "a KSK is ready for submission to the parent";
    ExternalVerify = "external-verify", Event, Zone, "a zone version waits for external verification";
}

impl ConditionId {
    pub fn is_level(self) -> bool {
        self.kind() == ConditionKind::Level
    }
}

impl fmt::Display for ConditionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition id that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown condition `{0}`; known conditions: {list}", list = known_list())]
pub struct UnknownCondition(pub String);

fn known_list() -> String {
    ConditionId::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Serialize for ConditionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConditionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ConditionId::ALL {
            assert!(seen.insert(c.as_str()), "duplicate id {c}");
            assert_eq!(c.as_str().parse::<ConditionId>().unwrap(), *c);
        }
        assert_eq!(seen.len(), 17);
    }

    #[test]
    fn unknown_condition_lists_the_known_ones() {
        let err = "zone-redy".parse::<ConditionId>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`zone-redy`"), "{text}");
        assert!(text.contains("zone-ready"), "{text}");
    }

    #[test]
    fn kinds_match_the_catalogue() {
        assert_eq!(ConditionId::ZoneUpdated.kind(), ConditionKind::Event);
        assert_eq!(ConditionId::KskSubmission.kind(), ConditionKind::Event);
        assert_eq!(ConditionId::ZoneReady.kind(), ConditionKind::Level);
        assert_eq!(ConditionId::ZoneReady.scope(), ConditionScope::Zone);
        assert_eq!(ConditionId::AllZonesReady.scope(), ConditionScope::Server);
    }
}
