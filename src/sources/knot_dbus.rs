//! The `knot-dbus` source: what knotd says on D-Bus, the moment it says it.
//!
//! knotd (with `dbus-event:` set) emits signals on interface `cz.nic.knotd.events` of
//! object `/cz/nic/knotd` under the name `cz.nic.knotd` on the system bus. They map to:
//!
//! | signal (Knot 3.1.6 – 3.5) | observation |
//! |---|---|
//! | `started` | `server-running` met |
//! | `stopped` | `server-stopping` met (the engine clears `server-running`) |
//! | `zone_updated(s zone, u serial)` | `zone-ready` met with `serial` (a new serial is `zone-updated`) |
//! | `zone_not_updated(s zone)` (3.5.3+) | `zone-refresh-failed` met; cleared by the next `zone_updated` |
//! | `zone_dnssec_invalid(s zone[, u seconds])` | `signatures-expiring` met, `remaining` seconds (0 or absent: validation failed) |
//! | `zone_ksk_submission(s zone, q tag, s id)` | `ksk-submission` event with `key-tag`, `kasp-id` |
//! | `keys_updated(s zone)` (3.3+) | `keys-updated` event |
//! | `external_verify(s zone[, u serial])` (3.5+) | `external-verify` event (`serial` from 3.5.1) |
//!
//! Only leading arguments are read, so added arguments in later versions do no harm;
//! unknown members are ignored.
//!
//! Knot sends nothing when it dies, and signals are not replayed to a late listener, so:
//! * the bus daemon's `NameOwnerChanged` for `cz.nic.knotd` is watched: the name lost
//!   without a `stopped` first is `server-crashed`;
//! * on start and after every reconnect to the bus the state is resynchronised: if
//!   `cz.nic.knotd` has an owner, knotd is asked for `zone-status` on its control socket
//!   (`control-socket`; the same native protocol as the `control` source): running, and
//!   every configured zone ready with its serial or not ready when knotd holds it empty.
//!   Without a control socket, or when it does not answer, the server's zones are asked
//!   for their SOA (the probe's [`probe_once`]) and what answers is observed as running
//!   and ready.
//!
//! A lost bus connection is retried with backoff (1 s doubling to 30 s) and logged.
//!
//! The resync reports serials only; refresh and expiry timers are the `control` source's.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::message::Type as MessageType;
use zbus::{Connection, MatchRule, Message, MessageStream};

use super::probe::{ProbeOutcome, ProbeSettings, probe_once};
use crate::condition::ConditionId;
use crate::health::Health;
use crate::signal::{Evidence, Observation};

/// The source's name in signals.
pub const SOURCE: &str = "knot-dbus";
/// knotd's well-known bus name, object and interface.
pub const KNOT_NAME: &str = "cz.nic.knotd";
const KNOT_PATH: &str = "/cz/nic/knotd";
const KNOT_INTERFACE: &str = "cz.nic.knotd.events";
/// Signals waiting to be read before the oldest are dropped by zbus.
const QUEUE: usize = 1024;

/// What the source needs.
#[derive(Debug, Clone)]
pub struct KnotDbusSettings {
    pub server: String,
    /// Where the server answers DNS, for the resync.
    pub server_address: SocketAddr,
    pub zones: Vec<String>,
    /// `None`: the system bus.
    pub bus: Option<String>,
    /// knotd's control socket, for the resync; `None`: SOA queries.
    pub control_socket: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

/// Runs until the engine goes away. Its health is `connected` while it listens on the bus
/// and `gone` while it cannot reach the bus (Knot's signals are lost then).
pub async fn run_knot_dbus(
    settings: KnotDbusSettings,
    tx: mpsc::Sender<Observation>,
    health: Health,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match follow(&settings, &tx, &health).await {
            Ok(()) => return,
            Err(e) => {
                health.gone(format!(
                    "{}: {e}; connecting again in {}s",
                    settings.bus.as_deref().unwrap_or("the system bus"),
                    backoff.as_secs()
                ));
                tracing::warn!(
                    server = settings.server,
                    "knot-dbus: {e}; connecting again in {}s",
                    backoff.as_secs()
                );
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// What knotd's `zone-status` says of the configured zones: running, and each zone ready
/// with its serial, or not ready when knotd holds it empty; zones knotd does not list are
/// left alone (the signals or the next resync will tell).
fn resync_observations(
    server: &str,
    configured: &[String],
    zones: &[crate::sources::control::knot::KnotZone],
) -> Vec<Observation> {
    let mut observations = vec![assert(server, ConditionId::ServerRunning, None, true)];
    for zone in configured {
        let Some(status) = zones.iter().find(|z| z.zone.eq_ignore_ascii_case(zone)) else {
            continue;
        };
        observations.push(match status.serial {
            Some(serial) => {
                assert(server, ConditionId::ZoneReady, Some(zone), true).arg("serial", serial)
            }
            None => assert(server, ConditionId::ZoneReady, Some(zone), false)
                .arg("error", "knotd holds the zone empty"),
        });
    }
    observations
}

/// One bus connection: subscribe, resync, then translate signals until it breaks.
/// `Ok` when the engine went away.
async fn follow(
    settings: &KnotDbusSettings,
    tx: &mpsc::Sender<Observation>,
    health: &Health,
) -> zbus::Result<()> {
    let connection = match &settings.bus {
        Some(address) => {
            zbus::connection::Builder::address(address.as_str())
                .build()
                .await?
        }
        None => Connection::system().await?,
    };
    let events = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(KNOT_NAME)
        .path(KNOT_PATH)
        .interface(KNOT_INTERFACE)
        .build()?;
    let owners = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .member("NameOwnerChanged")
        .arg(0, KNOT_NAME)
        .build()?;
    let queue = std::num::NonZeroUsize::new(QUEUE);
    let mut events = MessageStream::for_match_rule(events, &connection, queue).await?;
    let mut owners = MessageStream::for_match_rule(owners, &connection, queue).await?;
    tracing::info!(server = settings.server, "knot-dbus: listening on the bus");
    health.connected(format!(
        "listening for {KNOT_NAME} on {}",
        settings.bus.as_deref().unwrap_or("the system bus")
    ));

    let dbus = zbus::fdo::DBusProxy::new(&connection).await?;
    let present = dbus.name_has_owner(KNOT_NAME.try_into()?).await?;
    if present && !resync(settings, tx).await {
        return Ok(());
    }
    let mut stopping = false;
    loop {
        let observations = tokio::select! {
            message = events.next() => match message {
                Some(Ok(message)) => {
                    let observations = knot_signal(&settings.server, &message);
                    if observations.iter().any(|o| o.condition == ConditionId::ServerStopping) {
                        stopping = true;
                    }
                    if observations.iter().any(|o| o.condition == ConditionId::ServerRunning) {
                        stopping = false;
                    }
                    observations
                }
                Some(Err(e)) => return Err(e),
                None => return Err(zbus::Error::Failure("the bus connection closed".into())),
            },
            message = owners.next() => match message {
                Some(Ok(message)) => match owner_change(&message) {
                    Some(OwnerChange::Lost) if !stopping => {
                        vec![assert(&settings.server, ConditionId::ServerCrashed, None, true)
                            .arg("error", "cz.nic.knotd left the bus without a stopped signal")]
                    }
                    Some(OwnerChange::Lost) => {
                        stopping = false;
                        Vec::new()
                    }
                    Some(OwnerChange::Acquired) | None => Vec::new(),
                },
                Some(Err(e)) => return Err(e),
                None => return Err(zbus::Error::Failure("the bus connection closed".into())),
            },
            () = tx.closed() => return Ok(()),
        };
        for observation in observations {
            if tx.send(observation).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Asks the server's zones for their SOA and observes what answers. False when the
/// engine went away.
async fn resync(settings: &KnotDbusSettings, tx: &mpsc::Sender<Observation>) -> bool {
    if let Some(socket) = &settings.control_socket {
        match crate::sources::control::knot::ask(socket, settings.timeout).await {
            Ok(zones) => {
                let observations = resync_observations(&settings.server, &settings.zones, &zones);
                tracing::info!(
                    server = settings.server,
                    "knot-dbus: knotd is on the bus; resynchronised {} zones from its control socket {}",
                    observations.len().saturating_sub(1),
                    socket.display()
                );
                for observation in observations {
                    if tx.send(observation).await.is_err() {
                        return false;
                    }
                }
                return true;
            }
            Err(e) => tracing::warn!(
                server = settings.server,
                "knot-dbus: control socket {}: {e}; resynchronising by SOA query instead",
                socket.display()
            ),
        }
    }
    let round = probe_once(&ProbeSettings {
        server: settings.server.clone(),
        address: settings.server_address,
        zones: settings.zones.clone(),
        interval: Duration::from_secs(1),
        timeout: settings.timeout,
        rise: 1,
        fall: 1,
    })
    .await;
    let mut observations = Vec::new();
    if round.server_answered {
        observations.push(assert(
            &settings.server,
            ConditionId::ServerRunning,
            None,
            true,
        ));
    }
    for (zone, outcome) in &round.zones {
        if let ProbeOutcome::Ready { serial } = outcome {
            observations.push(
                assert(&settings.server, ConditionId::ZoneReady, Some(zone), true)
                    .arg("serial", *serial),
            );
        }
    }
    tracing::info!(
        server = settings.server,
        "knot-dbus: knotd is on the bus; resynchronised {} of {} zones by SOA query",
        observations.len().saturating_sub(1),
        round.zones.len()
    );
    for observation in observations {
        if tx.send(observation).await.is_err() {
            return false;
        }
    }
    true
}

fn assert(server: &str, condition: ConditionId, zone: Option<&str>, met: bool) -> Observation {
    Observation::new(SOURCE, server, condition, zone, Evidence::Assert { met })
}

fn event(server: &str, condition: ConditionId, zone: &str) -> Observation {
    Observation::new(SOURCE, server, condition, Some(zone), Evidence::Event)
}

/// The arguments of a Knot signal, read leniently: a leading zone name, then an optional
/// second and third argument of whatever type this version sends.
#[derive(Debug, Default, PartialEq)]
struct KnotArgs {
    zone: Option<String>,
    number: Option<u64>,
    text: Option<String>,
}

fn knot_args(message: &Message) -> KnotArgs {
    let body = message.body();
    let signature = body.signature().to_string();
    let signature = signature.trim_start_matches('(').trim_end_matches(')');
    let mut args = KnotArgs::default();
    match signature {
        "s" => args.zone = body.deserialize::<(String,)>().ok().map(|(z,)| z),
        "su" => {
            if let Ok((zone, n)) = body.deserialize::<(String, u32)>() {
                (args.zone, args.number) = (Some(zone), Some(n.into()));
            }
        }
        "sqs" => {
            if let Ok((zone, tag, id)) = body.deserialize::<(String, u16, String)>() {
                (args.zone, args.number, args.text) = (Some(zone), Some(tag.into()), Some(id));
            }
        }
        _ => {
            // A later version with more arguments: the zone still comes first.
            args.zone = body
                .deserialize_ignore_signature::<(String,)>()
                .ok()
                .map(|(z,)| z)
        }
    }
    args.zone = args.zone.map(|z| normalize(&z));
    args
}

/// Knot writes zones with a trailing dot; configured zones are lowercase with one.
fn normalize(zone: &str) -> String {
    let mut zone = zone.to_ascii_lowercase();
    if !zone.ends_with('.') {
        zone.push('.');
    }
    zone
}

/// The observations of one `cz.nic.knotd.events` signal.
fn knot_signal(server: &str, message: &Message) -> Vec<Observation> {
    let header = message.header();
    let Some(member) = header.member() else {
        return Vec::new();
    };
    let member = member.as_str().to_string();
    let args = knot_args(message);
    translate(server, &member, args)
}

fn translate(server: &str, member: &str, args: KnotArgs) -> Vec<Observation> {
    let zone = args.zone.as_deref();
    match (member, zone) {
        ("started", _) => vec![assert(server, ConditionId::ServerRunning, None, true)],
        ("stopped", _) => vec![assert(server, ConditionId::ServerStopping, None, true)],
        ("zone_updated", Some(zone)) => {
            let mut ready = assert(server, ConditionId::ZoneReady, Some(zone), true);
            if let Some(serial) = args.number {
                ready = ready.arg("serial", serial);
            }
            vec![
                ready,
                assert(server, ConditionId::ZoneRefreshFailed, Some(zone), false),
            ]
        }
        ("zone_not_updated", Some(zone)) => vec![
            assert(server, ConditionId::ZoneRefreshFailed, Some(zone), true)
                .arg("error", "knotd could not update the zone"),
        ],
        ("zone_dnssec_invalid", Some(zone)) => {
            let remaining = args.number.unwrap_or(0);
            let mut expiring = assert(server, ConditionId::SignaturesExpiring, Some(zone), true)
                .arg("remaining", remaining);
            if remaining == 0 {
                expiring = expiring.arg("error", "DNSSEC validation failed");
            }
            vec![expiring]
        }
        ("zone_ksk_submission", Some(zone)) => {
            let mut submission = event(server, ConditionId::KskSubmission, zone);
            if let Some(tag) = args.number {
                submission = submission.arg("key-tag", tag);
            }
            if let Some(id) = args.text {
                submission = submission.arg("kasp-id", id);
            }
            vec![submission]
        }
        ("keys_updated", Some(zone)) => vec![event(server, ConditionId::KeysUpdated, zone)],
        ("external_verify", Some(zone)) => {
            let mut verify = event(server, ConditionId::ExternalVerify, zone);
            if let Some(serial) = args.number {
                verify = verify.arg("serial", serial);
            }
            vec![verify]
        }
        _ => Vec::new(),
    }
}

enum OwnerChange {
    Acquired,
    Lost,
}

fn owner_change(message: &Message) -> Option<OwnerChange> {
    let (name, _old, new) = message
        .body()
        .deserialize::<(String, String, String)>()
        .ok()?;
    if name != KNOT_NAME {
        return None;
    }
    Some(if new.is_empty() {
        OwnerChange::Lost
    } else {
        OwnerChange::Acquired
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(z: &str) -> KnotArgs {
        KnotArgs {
            zone: Some(normalize(z)),
            ..Default::default()
        }
    }

    #[test]
    fn the_control_socket_resync_reports_configured_zones_only() {
        use crate::sources::control::knot::{EventTime, KnotZone};
        let status = |zone: &str, serial| KnotZone {
            zone: zone.into(),
            secondary: false,
            serial,
            refresh: EventTime::None,
            expiration: EventTime::None,
        };
        let knot = [
            status("a.test.", Some(7)),
            status("b.test.", None),
            status("other.test.", Some(1)),
        ];
        let configured = ["a.test.".to_string(), "B.Test.".into(), "c.test.".into()];
        let obs = resync_observations("knot", &configured, &knot);
        let summary: Vec<_> = obs
            .iter()
            .map(|o| (o.condition, o.subject.clone(), o.evidence))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    ConditionId::ServerRunning,
                    None,
                    Evidence::Assert { met: true }
                ),
                (
                    ConditionId::ZoneReady,
                    Some("a.test.".into()),
                    Evidence::Assert { met: true }
                ),
                (
                    ConditionId::ZoneReady,
                    Some("B.Test.".into()),
                    Evidence::Assert { met: false }
                ),
            ]
        );
        assert_eq!(obs[1].args["serial"], 7);
    }

    #[test]
    fn every_knot_signal_maps_to_its_condition() {
        let obs = translate("knot", "started", KnotArgs::default());
        assert_eq!(obs[0].condition, ConditionId::ServerRunning);
        assert_eq!(obs[0].evidence, Evidence::Assert { met: true });

        let obs = translate("knot", "stopped", KnotArgs::default());
        assert_eq!(obs[0].condition, ConditionId::ServerStopping);

        let updated = KnotArgs {
            number: Some(2026112201),
            ..zone("Example.TEST")
        };
        let obs = translate("knot", "zone_updated", updated);
        assert_eq!(obs[0].condition, ConditionId::ZoneReady);
        assert_eq!(obs[0].subject.as_deref(), Some("example.test."));
        assert_eq!(obs[0].args["serial"], 2026112201);
        assert_eq!(obs[1].evidence, Evidence::Assert { met: false });

        let obs = translate("knot", "zone_not_updated", zone("example.test."));
        assert_eq!(obs[0].condition, ConditionId::ZoneRefreshFailed);

        // 3.2 sends only the zone, 3.4+ adds the seconds left.
        let obs = translate("knot", "zone_dnssec_invalid", zone("example.test."));
        assert_eq!(obs[0].args["remaining"], 0);
        assert!(obs[0].args.contains_key("error"));
        let soon = KnotArgs {
            number: Some(3600),
            ..zone("example.test.")
        };
        let obs = translate("knot", "zone_dnssec_invalid", soon);
        assert_eq!(obs[0].args["remaining"], 3600);
        assert!(!obs[0].args.contains_key("error"));

        let ksk = KnotArgs {
            number: Some(12345),
            text: Some("abc".into()),
            ..zone("example.test.")
        };
        let obs = translate("knot", "zone_ksk_submission", ksk);
        assert_eq!(obs[0].evidence, Evidence::Event);
        assert_eq!(obs[0].args["key-tag"], 12345);

        let obs = translate("knot", "keys_updated", zone("example.test."));
        assert_eq!(obs[0].condition, ConditionId::KeysUpdated);
        // 3.5.0 sends the zone only, 3.5.1+ the serial too.
        let obs = translate("knot", "external_verify", zone("example.test."));
        assert_eq!(obs[0].condition, ConditionId::ExternalVerify);

        assert!(translate("knot", "some_future_signal", zone("x.")).is_empty());
        assert!(translate("knot", "zone_updated", KnotArgs::default()).is_empty());
    }
}
