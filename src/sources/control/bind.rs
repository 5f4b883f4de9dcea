//! BIND through the `rndc` program: its control protocol is HMAC-authenticated binary, so
//! the program that speaks it is run (`command`, default `rndc`, with the operator's
//! `-c`/`-s`/`-p`/`-k` arguments) and its text is read defensively.
//!
//! Per poll: `rndc status` (exit 0 → `server-running` met), then `rndc zonestatus ZONE` for
//! each zone (BIND 9.18):
//!
//! ```text
//! name: example.test
//! type: primary
//! serial: 9
//! last loaded: Mon, 30 Nov 2026 03:13:53 GMT
//! expires: Tue, 01 Dec 2026 03:13:53 GMT      (secondaries)
//! ```
//!
//! | rndc says | observation |
//! |---|---|
//! | `serial: N` | `zone-ready` met, `serial` |
//! | fails with `zone not loaded` (or no serial) | `zone-ready` not met, `error` |
//! | `expires:` within `expiring-period` (or passed) | `zone-expiring` met, `expires-at`, `remaining` |
//! | `expires:` further away | `zone-expiring` not met |
//!
//! Not reported: `zone-refresh-failed` (rndc does not show failed tries; the `zone-health`
//! source sees a lagging serial from outside). A refused connection after rndc has worked
//! counts as the server gone, as for the socket protocols.

use std::io;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::process::Command;

use super::{ControlError, Reading, assert};
use crate::condition::ConditionId;
use crate::signal::Observation;

/// The most output read from one rndc run.
const MAX_OUTPUT: usize = 1 << 20;

/// What `zonestatus` says about one zone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BindZone {
    pub serial: Option<u32>,
    pub secondary: bool,
    pub expires: Option<DateTime<Utc>>,
}

/// Reads `rndc zonestatus` output; lines it does not know are skipped.
pub fn zonestatus(text: &str) -> BindZone {
    let mut zone = BindZone::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "serial" => zone.serial = value.parse().ok(),
            "type" => zone.secondary = matches!(value, "secondary" | "slave" | "mirror"),
            "expires" => {
                zone.expires = DateTime::parse_from_rfc2822(value)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
            _ => {}
        }
    }
    zone
}

/// Runs `command` + `args`; its stdout on success.
async fn rndc(
    command: &[String],
    args: &[&str],
    timeout: Duration,
) -> Result<String, ControlError> {
    let Some((program, leading)) = command.split_first() else {
        return Err(ControlError::Refused("no rndc command configured".into()));
    };
    let run = Command::new(program)
        .args(leading)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ControlError::Timeout(timeout))?
        .map_err(|e| ControlError::Io(io::Error::new(e.kind(), format!("{program}: {e}"))))?;
    let cut =
        |bytes: &[u8]| String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned();
    let stdout = cut(&output.stdout);
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = cut(&output.stderr);
    let message = stderr
        .lines()
        .chain(stdout.lines())
        .find(|l| !l.trim().is_empty());
    let message: String = message.unwrap_or("failed").chars().take(200).collect();
    if message.contains("connection refused") {
        return Err(ControlError::Connect(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            message,
        )));
    }
    Err(ControlError::Refused(message))
}

/// One poll.
pub async fn poll(
    command: &[String],
    timeout: Duration,
    server: &str,
    zones: &[String],
    expiring_period: Duration,
) -> Reading {
    if let Err(e) = rndc(command, &["status"], timeout).await {
        return Reading::Failed(e);
    }
    let mut out = vec![assert(server, ConditionId::ServerRunning, None, true)];
    for zone in zones {
        let name = zone.trim_end_matches('.');
        match rndc(command, &["zonestatus", name], timeout).await {
            Ok(text) => out.extend(judge(
                server,
                zone,
                &zonestatus(&text),
                expiring_period,
                Utc::now(),
            )),
            Err(ControlError::Refused(error)) => out.push(
                assert(server, ConditionId::ZoneReady, Some(zone), false).arg("error", error),
            ),
            Err(e) => return Reading::Failed(e),
        }
    }
    Reading::Answered(out)
}

/// The observations for one zone's `zonestatus`.
pub fn judge(
    server: &str,
    zone: &str,
    status: &BindZone,
    expiring_period: Duration,
    now: DateTime<Utc>,
) -> Vec<Observation> {
    let mut out = vec![match status.serial {
        Some(serial) => {
            assert(server, ConditionId::ZoneReady, Some(zone), true).arg("serial", serial)
        }
        None => assert(server, ConditionId::ZoneReady, Some(zone), false)
            .arg("error", "rndc zonestatus shows no serial"),
    }];
    if let (true, Some(expires)) = (status.secondary, status.expires) {
        let remaining = (expires - now).num_seconds().max(0) as u64;
        let met = remaining <= expiring_period.as_secs();
        let mut obs = assert(server, ConditionId::ZoneExpiring, Some(zone), met);
        if met {
            obs = obs
                .arg(
                    "expires-at",
                    expires.to_rfc3339_opts(SecondsFormat::Secs, true),
                )
                .arg("remaining", remaining);
        }
        out.push(obs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Evidence;

    #[test]
    fn reads_zonestatus_of_bind_9_18() {
        let primary = zonestatus(
            "name: example.test\ntype: primary\nfiles: example.test.zone\nserial: 9\nnodes: 2\nlast loaded: Mon, 30 Nov 2026 03:13:53 GMT\nsecure: no\ndynamic: no\nreconfigurable via modzone: no\n",
        );
        assert_eq!(primary.serial, Some(9));
        assert!(!primary.secondary);
        let secondary = zonestatus(
            "name: s.test\ntype: secondary\nserial: 3\nexpires: Mon, 30 Nov 2026 03:20:00 GMT\nnext refresh: Mon, 30 Nov 2026 03:14:00 GMT\n",
        );
        assert!(secondary.secondary);
        let now = DateTime::parse_from_rfc3339("2026-11-30T03:19:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let obs = judge("bind", "s.test.", &secondary, Duration::from_secs(120), now);
        assert_eq!(obs[0].args["serial"], 3);
        assert_eq!(obs[1].condition, ConditionId::ZoneExpiring);
        assert_eq!(obs[1].evidence, Evidence::Assert { met: true });
        assert_eq!(obs[1].args["remaining"], 60);
        assert_eq!(zonestatus("garbage\nserial: x\n"), BindZone::default());
    }
}
