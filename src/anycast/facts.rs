//! The engine's current state as the controller sees it: the set of met level conditions,
//! evaluated by policies exactly as [`crate::engine::Engine`] would.

use std::collections::BTreeSet;

use crate::condition::{ConditionId, ConditionScope};
use crate::engine::DRAIN_SOURCE;
use crate::engine::policy::ConditionFacts;
use crate::signal::CurrentCondition;

/// The level conditions met after one engine step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetConditions {
    /// (server, condition, subject); `None` for server-level conditions.
    met: BTreeSet<(String, ConditionId, Option<String>)>,
    /// Servers an operator has drained (`dns-oops drain`).
    drained: BTreeSet<String>,
}

impl MetConditions {
    pub fn new(current: &[CurrentCondition]) -> MetConditions {
        MetConditions {
            met: current
                .iter()
                .map(|c| (c.server.clone(), c.condition, c.subject.clone()))
                .collect(),
            drained: current
                .iter()
                .filter(|c| c.condition == ConditionId::ServerStopping && c.source == DRAIN_SOURCE)
                .map(|c| c.server.clone())
                .collect(),
        }
    }

    /// Whether `server` is drained: every policy that names it is withdrawn.
    pub fn is_drained(&self, server: &str) -> bool {
        self.drained.contains(server)
    }
}

impl ConditionFacts for MetConditions {
    fn is_met(&self, server: &str, condition: ConditionId, subject: Option<&str>) -> bool {
        match (condition.scope(), subject) {
            (ConditionScope::Zone, None) => self
                .met
                .iter()
                .any(|(s, c, _)| s == server && *c == condition),
            _ => self
                .met
                .contains(&(server.to_string(), condition, subject.map(str::to_string))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::Policy;

    fn row(server: &str, condition: ConditionId, subject: Option<&str>) -> CurrentCondition {
        CurrentCondition {
            server: server.into(),
            condition,
            subject: subject.map(str::to_string),
            since: chrono::Utc::now(),
            args: Default::default(),
            source: "test".into(),
            seq: 1,
        }
    }

    #[test]
    fn policies_see_server_and_zone_conditions() {
        let facts = MetConditions::new(&[
            row("knot", ConditionId::ServerRunning, None),
            row("knot", ConditionId::ZoneReady, Some("a.test.")),
        ]);
        let eval = |text: &str| Policy::parse(text).unwrap().evaluate(&facts);
        assert!(eval("server-running(knot)"));
        assert!(!eval("server-running(nsd)"));
        assert!(eval("zone-ready(knot)"));
        assert!(eval("zone-ready(knot, a.test)"));
        assert!(!eval("zone-ready(knot, b.test)"));
        assert!(!eval("server-running(knot) and all-zones-ready(knot)"));
    }
}
