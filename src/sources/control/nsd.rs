//! NSD over its control socket in the clear (`control-interface: /path` in
//! `remote-control:`): the line `NSDCT1 zonestatus`, answered in text (a tab after `zone:` and before each field), read defensively.
//!
//! ```text
//! zone:    example.test
//!     state: master
//! zone:    sec.test
//!     state: refreshing
//!     served-serial: "5 since 2026-11-30T02:50:01"
//!     commit-serial: none
//!     wait: "59 sec between attempts"
//! ```
//!
//! | NSD says | observation |
//! |---|---|
//! | any answer | `server-running` met |
//! | `state: master` | `zone-ready` met (NSD shows no serial for its primary zones) |
//! | `state: ok` | `zone-ready` met, `serial`; `zone-refresh-failed`, `zone-expiring` not met |
//! | `state: refreshing` with `wait:` | `zone-refresh-failed` met: a round of tries failed and NSD waits to retry |
//! | `state: expired` | `zone-ready` not met; `zone-expiring` met, `remaining` 0 |
//! | no `served-serial`, or the zone not listed | `zone-ready` not met, `error` |
//!
//! NSD does not show its expiry timer, so `zone-expiring` is met only at expiry, whatever
//! `expiring-period` says; `refresh-tries` does not apply (NSD shows a failed round, not
//! tries).

use std::path::Path;
use std::time::Duration;

use super::{Reading, assert, text_command};
use crate::condition::ConditionId;
use crate::signal::Observation;

/// One zone of `zonestatus`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NsdZone {
    /// Lowercase, with a trailing dot.
    pub zone: String,
    /// `master`, `ok`, `refreshing`, `expired` (or whatever a later NSD says).
    pub state: String,
    pub served_serial: Option<u32>,
    /// A `wait:` line: NSD waits between rounds of failed tries.
    pub waiting: bool,
}

/// Reads a `zonestatus` answer; lines it does not know are skipped.
pub fn zonestatus(text: &str) -> Vec<NsdZone> {
    let mut zones: Vec<NsdZone> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        if key == "zone" {
            if value.is_empty() {
                continue;
            }
            zones.push(NsdZone {
                zone: normalize(value),
                ..NsdZone::default()
            });
            continue;
        }
        let Some(zone) = zones.last_mut() else {
            continue;
        };
        match key {
            "state" => zone.state = value.to_string(),
            "served-serial" => {
                zone.served_serial = value
                    .trim_matches('"')
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok());
            }
            "wait" => zone.waiting = true,
            _ => {}
        }
    }
    zones
}

fn normalize(zone: &str) -> String {
    let mut zone = zone.to_ascii_lowercase();
    if !zone.ends_with('.') {
        zone.push('.');
    }
    zone
}

/// The observations of one answer.
pub fn judge(server: &str, zones: &[String], nsd: &[NsdZone]) -> Vec<Observation> {
    let mut out = vec![assert(server, ConditionId::ServerRunning, None, true)];
    for zone in zones {
        let zone = zone.as_str();
        let Some(status) = nsd.iter().find(|z| z.zone == zone) else {
            out.push(
                assert(server, ConditionId::ZoneReady, Some(zone), false)
                    .arg("error", "NSD does not serve this zone"),
            );
            continue;
        };
        let ready = |serial: Option<u32>| match serial {
            Some(serial) => {
                assert(server, ConditionId::ZoneReady, Some(zone), true).arg("serial", serial)
            }
            None => assert(server, ConditionId::ZoneReady, Some(zone), false)
                .arg("error", "NSD has no copy of the zone"),
        };
        match status.state.as_str() {
            "master" | "primary" => {
                out.push(assert(server, ConditionId::ZoneReady, Some(zone), true));
            }
            "ok" => {
                out.push(ready(status.served_serial));
                out.push(assert(
                    server,
                    ConditionId::ZoneRefreshFailed,
                    Some(zone),
                    false,
                ));
                out.push(assert(server, ConditionId::ZoneExpiring, Some(zone), false));
            }
            "refreshing" => {
                out.push(ready(status.served_serial));
                if status.waiting {
                    out.push(
                        assert(server, ConditionId::ZoneRefreshFailed, Some(zone), true).arg(
                            "error",
                            "NSD's tries failed; it waits before the next round",
                        ),
                    );
                }
            }
            "expired" => {
                out.push(
                    assert(server, ConditionId::ZoneReady, Some(zone), false)
                        .arg("error", "the zone expired in NSD"),
                );
                out.push(
                    assert(server, ConditionId::ZoneRefreshFailed, Some(zone), true)
                        .arg("error", "the zone expired in NSD"),
                );
                out.push(
                    assert(server, ConditionId::ZoneExpiring, Some(zone), true)
                        .arg("remaining", 0)
                        .arg("error", "the zone expired in NSD"),
                );
            }
            _ => {}
        }
    }
    out
}

/// One poll.
pub async fn poll(socket: &Path, timeout: Duration, server: &str, zones: &[String]) -> Reading {
    match text_command(socket, "NSDCT1 zonestatus\n", timeout).await {
        Ok(text) => Reading::Answered(judge(server, zones, &zonestatus(&text))),
        Err(e) => Reading::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Evidence;

    /// `nsd-control zonestatus` of NSD 4.6.1, as it answered.
    const ANSWER: &str = "zone:\texample.test\n\tstate: master\nzone:\tsec.test\n\tstate: refreshing\n\tserved-serial: \"5 since 2026-11-30T02:50:01\"\n\tcommit-serial: none\n\twait: \"59 sec between attempts\"\nzone:\tgone.test\n\tstate: expired\n\tserved-serial: none\n";

    #[test]
    fn reads_zonestatus() {
        let zones = zonestatus(ANSWER);
        assert_eq!(zones.len(), 3);
        assert_eq!(zones[0].state, "master");
        assert_eq!(zones[1].served_serial, Some(5));
        assert!(zones[1].waiting);
        assert_eq!(zones[2].zone, "gone.test.");
        assert!(zonestatus("garbage\n\tstate: ok\nzone:\n").is_empty());
    }

    #[test]
    fn judges_zonestatus() {
        let zones: Vec<String> = ["example.test.", "sec.test.", "gone.test.", "x.test."]
            .map(String::from)
            .to_vec();
        let obs = judge("nsd", &zones, &zonestatus(ANSWER));
        let find = |zone: &str, c: ConditionId| {
            obs.iter()
                .find(|o| o.subject.as_deref() == Some(zone) && o.condition == c)
                .map(|o| o.evidence)
        };
        let met = Some(Evidence::Assert { met: true });
        let not = Some(Evidence::Assert { met: false });
        assert_eq!(find("example.test.", ConditionId::ZoneReady), met);
        assert_eq!(find("sec.test.", ConditionId::ZoneReady), met);
        assert_eq!(find("sec.test.", ConditionId::ZoneRefreshFailed), met);
        assert_eq!(find("gone.test.", ConditionId::ZoneReady), not);
        assert_eq!(find("gone.test.", ConditionId::ZoneExpiring), met);
        assert_eq!(find("x.test.", ConditionId::ZoneReady), not);
    }
}
