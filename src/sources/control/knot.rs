//! knotd over its control socket: `status` and `zone-status`, asked natively
//! ([`super::knot_ctl`]) once per poll on one short connection (knotd serves one control
//! client at a time, so the connection is closed at once).
//!
//! | knotd says | observation |
//! |---|---|
//! | `status` answers without error | `server-running` met |
//! | zone `serial: N` | `zone-ready` met, `serial` |
//! | zone `serial: -` (empty) or not in knotd's list | `zone-ready` not met, `error` |
//! | secondary: `expiration` within `expiring-period` (or passed) | `zone-expiring` met, `expires-at`, `remaining` |
//! | secondary: `expiration` further away | `zone-expiring` not met |
//! | secondary: `refresh-tries` refresh tries without success | `zone-refresh-failed` met, `tries`, `next-try` |
//!
//! knotd does not say over the control socket whether its last refresh worked (its
//! `last_refresh_ok` timer is internal), so [`RefreshWatch`] infers it from the two timers
//! it does show: a refresh try reschedules the `refresh` event, and only a successful one
//! pushes the `expiration` event later (or changes the serial, or loads an empty zone).
//! A try that moved `refresh` but neither of the others failed. Until the first try is
//! seen after dns-oops starts, `zone-refresh-failed` is not asserted either way.
//!
//! Limits: event times come as whole seconds relative to knotd's clock, so changes of up
//! to [`TOLERANCE`] are not told apart; two successful refreshes closer together than that
//! count as one success and one failure (the next refresh corrects it). A secondary fed
//! EDNS EXPIRE by another secondary may not move its expiry on success; that reads as a
//! failed try.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::knot_ctl::{Decoder, Item, Unit, UnitType};
use super::{ControlError, Reading, assert};
use crate::condition::ConditionId;
use crate::signal::Observation;

/// Event times closer than this (seconds) are the same time.
pub const TOLERANCE: f64 = 1.5;
/// At most this many units are read in one answer (a zone-status answer has about a
/// dozen per zone).
const MAX_UNITS: usize = 4_000_000;

/// When a zone event is due, as `zone-status` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventTime {
    /// Nothing scheduled (`-`).
    None,
    /// Running now.
    Running,
    /// Due and waiting for a worker (`pending`, `frozen`).
    Pending,
    /// Due at this Unix time (seconds).
    At(f64),
}

/// One zone's line of `zone-status`.
#[derive(Debug, Clone, PartialEq)]
pub struct KnotZone {
    /// Lowercase, with a trailing dot.
    pub zone: String,
    pub secondary: bool,
    /// `None`: the zone is empty (never loaded, or expired).
    pub serial: Option<u32>,
    pub refresh: EventTime,
    pub expiration: EventTime,
}

/// Asks knotd at `socket` for `status` and `zone-status`; relative event times are
/// taken from the moment the answer arrived.
pub async fn ask(socket: &Path, timeout: Duration) -> Result<Vec<KnotZone>, ControlError> {
    let session = async {
        let mut stream = UnixStream::connect(socket)
            .await
            .map_err(ControlError::Connect)?;
        let mut decoder = Decoder::new();
        let status = command(&mut stream, &mut decoder, Unit::command("status")).await?;
        check_error("status", &status)?;
        let zones = command(&mut stream, &mut decoder, Unit::command("zone-status")).await?;
        check_error("zone-status", &zones)?;
        let now = unix_now();
        // Say goodbye; knotd closes its side on END.
        let _ = stream.write_all(&Unit::new(UnitType::End).encode()).await;
        Ok(zone_status(&zones, now))
    };
    tokio::time::timeout(timeout, session)
        .await
        .map_err(|_| ControlError::Timeout(timeout))?
}

/// Sends one command and reads its answer up to the closing BLOCK.
async fn command(
    stream: &mut UnixStream,
    decoder: &mut Decoder,
    request: Unit,
) -> Result<Vec<Unit>, ControlError> {
    let mut bytes = request.encode();
    bytes.extend(Unit::new(UnitType::Block).encode());
    stream.write_all(&bytes).await.map_err(ControlError::Io)?;
    let mut units = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        while let Some(unit) = decoder
            .next_unit()
            .map_err(|e| ControlError::Protocol(e.to_string()))?
        {
            match unit.kind {
                UnitType::Block => return Ok(units),
                UnitType::End => {
                    return Err(ControlError::Protocol(
                        "knotd ended the session before answering".into(),
                    ));
                }
                UnitType::Data | UnitType::Extra => units.push(unit),
            }
            if units.len() > MAX_UNITS {
                return Err(ControlError::Protocol(format!(
                    "answer longer than {MAX_UNITS} units"
                )));
            }
        }
        let n = stream.read(&mut buffer).await.map_err(ControlError::Io)?;
        if n == 0 {
            return Err(ControlError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "knotd closed the control connection mid-answer",
            )));
        }
        decoder.push(&buffer[..n]);
    }
}

fn check_error(command: &str, units: &[Unit]) -> Result<(), ControlError> {
    match units.iter().find_map(|u| u.get(Item::Error)) {
        Some(error) => Err(ControlError::Refused(format!("{command}: {error}"))),
        None => Ok(()),
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The zones of a `zone-status` answer, in knotd's order; items knotd adds in later
/// versions are ignored.
pub fn zone_status(units: &[Unit], now: f64) -> Vec<KnotZone> {
    let mut zones: Vec<KnotZone> = Vec::new();
    for unit in units {
        let Some(name) = unit.get(Item::Zone) else {
            continue;
        };
        let name = normalize(name);
        let index = match zones.iter().position(|z| z.zone == name) {
            Some(index) => index,
            None => {
                zones.push(KnotZone {
                    zone: name,
                    secondary: false,
                    serial: None,
                    refresh: EventTime::None,
                    expiration: EventTime::None,
                });
                zones.len() - 1
            }
        };
        let zone = &mut zones[index];
        let value = unit.get(Item::Data).unwrap_or("").trim();
        match unit.get(Item::Type).unwrap_or("") {
            "role" => zone.secondary = matches!(value, "slave" | "secondary"),
            "serial" => zone.serial = value.parse().ok(),
            "refresh" => zone.refresh = event_time(value, now),
            "expiration" | "expire" => zone.expiration = event_time(value, now),
            _ => {}
        }
    }
    zones
}

/// Reads an event time: `-`, `running`, `pending`, `frozen` (each possibly followed by
/// `(…)`, as newer knotd writes it), a relative time such as `+1D2h3m4s` or `-5s`, or a
/// Unix time.
pub fn event_time(text: &str, now: f64) -> EventTime {
    let word = text.split('(').next().unwrap_or("").trim();
    match word {
        "running" => return EventTime::Running,
        "pending" | "frozen" => return EventTime::Pending,
        "" | "-" | "0" => return EventTime::None,
        _ => {}
    }
    if let Some(rest) = word.strip_prefix('+') {
        return relative(rest).map_or(EventTime::None, |s| EventTime::At(now + s));
    }
    if let Some(rest) = word.strip_prefix('-') {
        return relative(rest).map_or(EventTime::None, |s| EventTime::At(now - s));
    }
    match word.parse::<u64>() {
        Ok(unix) => EventTime::At(unix as f64),
        Err(_) => EventTime::None,
    }
}

/// `1Y2M3D4h5m6s` in seconds (knotd's years and months are 365 and 30 days).
fn relative(text: &str) -> Option<f64> {
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(digit))?,
            );
            continue;
        }
        let unit: u64 = match c {
            'Y' | 'y' => 365 * 86_400,
            'M' => 30 * 86_400,
            'D' | 'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() {
        return None;
    }
    Some(total as f64)
}

fn normalize(zone: &str) -> String {
    let mut zone = zone.trim().to_ascii_lowercase();
    if !zone.ends_with('.') {
        zone.push('.');
    }
    zone
}

/// Follows one secondary zone's timers from poll to poll to tell failed refresh tries
/// from successful ones.
#[derive(Debug, Default, Clone)]
pub struct RefreshWatch {
    previous: Option<KnotZone>,
    /// Failed tries since the last success; `None` until a try has been seen.
    failed: Option<u32>,
}

impl RefreshWatch {
    /// Takes this poll's view; returns the failed tries since the last success, `None`
    /// while unknown.
    pub fn update(&mut self, now: &KnotZone) -> Option<u32> {
        if let Some(before) = &self.previous
            && let Some(succeeded) = try_outcome(before, now)
        {
            self.failed = Some(if succeeded {
                0
            } else {
                self.failed.unwrap_or(0).saturating_add(1)
            });
        }
        // A running try is judged when it has finished.
        if now.refresh != EventTime::Running {
            self.previous = Some(now.clone());
        }
        self.failed
    }
}

/// Whether a refresh try happened between `before` and `now`, and if so, whether it
/// succeeded.
fn try_outcome(before: &KnotZone, now: &KnotZone) -> Option<bool> {
    let loaded = before.serial.is_none() && now.serial.is_some();
    let serial_changed = before.serial.is_some() && now.serial != before.serial;
    let expiry_moved = match (before.expiration, now.expiration) {
        (EventTime::At(a), EventTime::At(b)) => b > a + TOLERANCE,
        (EventTime::None, EventTime::At(_)) => true,
        _ => false,
    };
    if loaded || serial_changed || expiry_moved {
        return Some(true);
    }
    let tried = match (before.refresh, now.refresh) {
        (EventTime::Running | EventTime::Pending, EventTime::At(_) | EventTime::None) => true,
        (EventTime::At(a), EventTime::At(b)) => (b - a).abs() > TOLERANCE,
        _ => false,
    };
    tried.then_some(false)
}

/// What the `control` source needs to judge knotd's zones.
#[derive(Debug, Clone)]
pub struct KnotJudge {
    pub server: String,
    pub zones: Vec<String>,
    pub refresh_tries: u32,
    pub expiring_period: Duration,
    watches: HashMap<String, RefreshWatch>,
}

impl KnotJudge {
    pub fn new(
        server: &str,
        zones: &[String],
        refresh_tries: u32,
        expiring_period: Duration,
    ) -> KnotJudge {
        KnotJudge {
            server: server.to_string(),
            zones: zones.to_vec(),
            refresh_tries,
            expiring_period,
            watches: HashMap::new(),
        }
    }

    /// The observations of one answered poll at Unix time `now`.
    pub fn judge(&mut self, knot: &[KnotZone], now: f64) -> Vec<Observation> {
        let server = self.server.clone();
        let mut out = vec![assert(&server, ConditionId::ServerRunning, None, true)];
        for zone_name in &self.zones {
            let zone = zone_name.as_str();
            let Some(status) = knot.iter().find(|z| z.zone == zone) else {
                out.push(
                    assert(&server, ConditionId::ZoneReady, Some(zone), false)
                        .arg("error", "knotd does not serve this zone"),
                );
                continue;
            };
            out.push(match status.serial {
                Some(serial) => {
                    assert(&server, ConditionId::ZoneReady, Some(zone), true).arg("serial", serial)
                }
                None => assert(&server, ConditionId::ZoneReady, Some(zone), false)
                    .arg("error", "the zone is empty in knotd"),
            });
            if !status.secondary {
                continue;
            }
            let watch = self.watches.entry(zone_name.clone()).or_default();
            let before = watch.previous.clone();
            if let Some(failed) = watch.update(status) {
                let met = failed >= self.refresh_tries;
                let mut obs = assert(&server, ConditionId::ZoneRefreshFailed, Some(zone), met);
                if met {
                    obs = obs.arg("tries", failed).arg(
                        "error",
                        "knotd's refresh tries did not reach the primary or were refused",
                    );
                    if let EventTime::At(at) = status.refresh {
                        obs = obs.arg("next-try", rfc3339(at));
                    }
                }
                out.push(obs);
            }
            match (status.expiration, status.serial) {
                (EventTime::At(at), _) => {
                    let remaining = (at - now).max(0.0);
                    let met = remaining <= self.expiring_period.as_secs_f64();
                    let mut obs = assert(&server, ConditionId::ZoneExpiring, Some(zone), met);
                    if met {
                        obs = obs
                            .arg("expires-at", rfc3339(at))
                            .arg("remaining", remaining.round() as u64);
                    }
                    out.push(obs);
                }
                (EventTime::Running | EventTime::Pending, _) => out.push(
                    assert(&server, ConditionId::ZoneExpiring, Some(zone), true)
                        .arg("remaining", 0),
                ),
                // Expired: knotd has emptied the zone and dropped the event.
                (EventTime::None, None) => {
                    if let Some(EventTime::At(at)) = before.map(|b| b.expiration) {
                        out.push(
                            assert(&server, ConditionId::ZoneExpiring, Some(zone), true)
                                .arg("expires-at", rfc3339(at))
                                .arg("remaining", 0)
                                .arg("error", "the zone expired in knotd"),
                        );
                    }
                }
                (EventTime::None, Some(_)) => out.push(assert(
                    &server,
                    ConditionId::ZoneExpiring,
                    Some(zone),
                    false,
                )),
            }
        }
        out
    }
}

fn rfc3339(unix: f64) -> String {
    DateTime::<Utc>::from_timestamp(unix.round() as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The [`Reading`] of one poll.
pub async fn poll(socket: &Path, timeout: Duration, judge: &mut KnotJudge) -> Reading {
    match ask(socket, timeout).await {
        Ok(zones) => Reading::Answered(judge.judge(&zones, unix_now())),
        Err(e) => Reading::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(kind: UnitType, zone: &str, ty: &str, data: &str) -> Unit {
        Unit::new(kind)
            .with(Item::Zone, zone)
            .with(Item::Flags, "s")
            .with(Item::Type, ty)
            .with(Item::Data, data)
    }

    #[test]
    fn reads_event_times_of_every_knot_version() {
        let now = 1000.0;
        assert_eq!(
            event_time("+1D2h3m4s", now),
            EventTime::At(1000.0 + 93_784.0)
        );
        assert_eq!(event_time("-5s", now), EventTime::At(995.0));
        assert_eq!(event_time("+0s", now), EventTime::At(1000.0));
        assert_eq!(event_time("-", now), EventTime::None);
        assert_eq!(event_time("running", now), EventTime::Running);
        assert_eq!(event_time("running(+3s)", now), EventTime::Running);
        assert_eq!(event_time("pending(-2s)", now), EventTime::Pending);
        assert_eq!(event_time("1700000000", now), EventTime::At(1.7e9));
        assert_eq!(event_time("+1x", now), EventTime::None);
        assert_eq!(event_time("+12", now), EventTime::None);
        assert_eq!(event_time("+99999999999999999999Y", now), EventTime::None);
    }

    #[test]
    fn groups_units_by_zone() {
        let units = [
            unit(UnitType::Data, "A.test.", "role", "master"),
            unit(UnitType::Extra, "a.test.", "serial", "7"),
            unit(UnitType::Data, "s.test.", "role", "slave"),
            unit(UnitType::Extra, "s.test.", "serial", "-"),
            unit(UnitType::Extra, "s.test.", "refresh", "+20s"),
            unit(UnitType::Extra, "s.test.", "expiration", "-"),
            Unit::new(UnitType::Extra).with(Item::Type, "serial"),
        ];
        let zones = zone_status(&units, 100.0);
        assert_eq!(zones.len(), 2);
        assert_eq!(zones[0].zone, "a.test.");
        assert_eq!(zones[0].serial, Some(7));
        assert!(!zones[0].secondary);
        assert!(zones[1].secondary);
        assert_eq!(zones[1].serial, None);
        assert_eq!(zones[1].refresh, EventTime::At(120.0));
    }

    fn secondary(serial: Option<u32>, refresh: EventTime, expiration: EventTime) -> KnotZone {
        KnotZone {
            zone: "s.test.".into(),
            secondary: true,
            serial,
            refresh,
            expiration,
        }
    }

    #[test]
    fn tells_failed_refresh_tries_from_good_ones() {
        use EventTime::At;
        let mut watch = RefreshWatch::default();
        // Loaded at t=0: refresh at 3, expires at 20.
        assert_eq!(
            watch.update(&secondary(Some(1), At(3.0), At(20.0))),
            None,
            "nothing known before a try"
        );
        assert_eq!(watch.update(&secondary(Some(1), At(3.4), At(20.3))), None);
        // The try at 3 succeeded: both timers moved.
        assert_eq!(
            watch.update(&secondary(Some(1), At(6.0), At(23.0))),
            Some(0)
        );
        // The try at 6 failed: retry at 8, expiry unchanged.
        assert_eq!(
            watch.update(&secondary(Some(1), At(8.0), At(23.0))),
            Some(1)
        );
        assert_eq!(
            watch.update(&secondary(Some(1), EventTime::Running, At(23.0))),
            Some(1)
        );
        assert_eq!(
            watch.update(&secondary(Some(1), At(10.0), At(23.0))),
            Some(2)
        );
        // A new serial is a success whatever the timers say.
        assert_eq!(
            watch.update(&secondary(Some(2), At(13.0), At(23.0))),
            Some(0)
        );
    }

    #[test]
    fn judges_a_secondary_losing_its_primary() {
        use EventTime::At;
        let zones = vec!["s.test.".to_string(), "gone.test.".to_string()];
        let mut judge = KnotJudge::new("knot", &zones, 1, Duration::from_secs(10));
        let obs = judge.judge(&[secondary(Some(5), At(103.0), At(120.0))], 100.0);
        assert_eq!(obs[0].condition, ConditionId::ServerRunning);
        assert_eq!(obs[1].condition, ConditionId::ZoneReady);
        assert_eq!(obs[1].args["serial"], 5);
        assert_eq!(obs[2].condition, ConditionId::ZoneExpiring);
        assert_eq!(
            obs[2].evidence,
            crate::signal::Evidence::Assert { met: false }
        );
        assert!(
            obs.iter()
                .any(|o| o.subject.as_deref() == Some("gone.test.")
                    && o.evidence == crate::signal::Evidence::Assert { met: false })
        );
        // The refresh try failed; 9 s left.
        let obs = judge.judge(&[secondary(Some(5), At(105.0), At(120.0))], 111.0);
        let failed = obs
            .iter()
            .find(|o| o.condition == ConditionId::ZoneRefreshFailed)
            .unwrap();
        assert_eq!(
            failed.evidence,
            crate::signal::Evidence::Assert { met: true }
        );
        assert_eq!(failed.args["tries"], 1);
        let expiring = obs
            .iter()
            .find(|o| o.condition == ConditionId::ZoneExpiring)
            .unwrap();
        assert_eq!(
            expiring.evidence,
            crate::signal::Evidence::Assert { met: true }
        );
        assert_eq!(expiring.args["remaining"], 9);
        // Expired: knotd emptied the zone.
        let obs = judge.judge(&[secondary(None, At(107.0), EventTime::None)], 121.0);
        assert!(obs.iter().any(|o| o.condition == ConditionId::ZoneReady
            && o.evidence == crate::signal::Evidence::Assert { met: false }));
        assert!(
            obs.iter()
                .any(|o| o.condition == ConditionId::ZoneExpiring && o.args.contains_key("error"))
        );
    }
}
