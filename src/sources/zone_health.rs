//! The `zone-health` source: what anyone outside the server can tell about its zones —
//! whether a secondary keeps its copy fresh, and whether the zone's DNSSEC signatures are
//! about to expire — for any server, even one that signals nothing itself.
//!
//! Two loops run side by side, one zone at a time each:
//!
//! * **Freshness**, every `interval`: the server is asked for each zone's SOA with the EDNS
//!   EXPIRE option, and every configured primary for its serial; [`Freshness`] follows the
//!   SOA timers from there (the module explains what "from outside" can and cannot see).
//!   Between polls the loop wakes when a refresh try falls due or the expiring period
//!   starts, so the conditions do not wait for the next poll.
//!
//!   | observation | when |
//!   |---|---|
//!   | `zone-refresh-failed` met, `tries`, `error` | `refresh-tries` refresh tries failed since the last success |
//!   | `zone-expiring` met, `expires-at` | within `expiring-period` of the secondary's expiry |
//!   | both cleared | the secondary has refreshed again |
//!
//! * **Signatures** (with `signatures = true`): each zone is transferred by AXFR from the
//!   server (TSIG-signed with `tsig-key`) and every RRSIG's validity is checked as the
//!   messages stream in ([`AxfrReader`](crate::zone::axfr::AxfrReader)). A zone is scanned
//!   again when its serial changes (seen by a SOA query every `interval`), when its
//!   earliest signature enters the `signatures-period`, and when it expires — not on a
//!   blind timer.
//!
//!   | scan | `signatures-expiring` |
//!   |---|---|
//!   | every signature valid beyond the period | cleared |
//!   | one expires within the period | met: `owner`, `type`, `expires-at` of the earliest, `signatures` |
//!   | one has expired, or is not yet valid | met: the one expired longest (or valid last), with `expired` / `not-yet-valid` counts |
//!   | no RRSIG at all | met: `error` |
//!   | the transfer fails (refused, TSIG, cut off, malformed) | met: `error`; retried after `interval` |
//!
//!   A zone whose signatures cannot be checked is not known to be fine, so a failed scan
//!   never clears the condition.
//!
//! Not implemented: IXFR (each scan is a full AXFR, in memory that does not grow with the
//! zone); NOTIFY as a trigger (pair with the `notify-in` source for that).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::join_all;
use hickory_proto::rr::TSigner;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::notify_in::signer;
use crate::condition::ConditionId;
use crate::config::{ServerConfig, TsigKey, ZoneHealthConfig};
use crate::health::Health;
use crate::signal::{Evidence, Observation};
use crate::zone::freshness::{Freshness, Poll, ServerSoa};
use crate::zone::name::Name;
use crate::zone::scan::{SignatureScan, Verdict};
use crate::zone::transfer::{soa_check, transfer};
use crate::zone::wire::rcode_name;

/// The source name in signals.
pub const SOURCE: &str = "zone-health";
/// Zones polled at once (each poll asks the server and every primary).
pub const MAX_POLLS_IN_FLIGHT: usize = 64;

/// What the source needs.
#[derive(Debug, Clone)]
pub struct ZoneHealthSettings {
    pub server: String,
    pub address: SocketAddr,
    /// Lowercase, with a trailing dot.
    pub zones: Vec<String>,
    pub primaries: Vec<SocketAddr>,
    pub interval: Duration,
    pub timeout: Duration,
    pub transfer_timeout: Duration,
    pub refresh_tries: u32,
    pub expiring_period: Duration,
    pub signatures: bool,
    pub signatures_period: Duration,
    pub tsig_key: Option<TsigKey>,
}

impl ZoneHealthSettings {
    pub fn new(config: &ZoneHealthConfig, server: &ServerConfig) -> ZoneHealthSettings {
        ZoneHealthSettings {
            server: server.name.clone(),
            address: server.address,
            zones: config.zones.clone().unwrap_or_else(|| server.zones.clone()),
            primaries: config.primaries.iter().map(|p| p.0).collect(),
            interval: config.interval,
            timeout: config.timeout,
            transfer_timeout: config.transfer_timeout,
            refresh_tries: config.refresh_tries,
            expiring_period: config.expiring_period,
            signatures: config.signatures,
            signatures_period: config.signatures_period,
            tsig_key: config.tsig_key.clone(),
        }
    }
}

/// Runs until the engine goes away.
pub async fn run_zone_health(
    settings: ZoneHealthSettings,
    tx: mpsc::Sender<Observation>,
    health: Health,
) {
    let key = match settings.tsig_key.as_ref().map(signer).transpose() {
        Ok(key) => key,
        Err(e) => {
            health.gone(format!("not started: {e}"));
            tracing::error!(server = settings.server, "zone-health: {e}; not started");
            return;
        }
    };
    let mut zones = Vec::new();
    for zone in &settings.zones {
        match Name::parse(zone.as_bytes(), None) {
            Ok(name) => zones.push((zone.clone(), name)),
            Err(e) => tracing::error!(server = settings.server, "zone-health: zone {zone}: {e}"),
        }
    }
    let settings = Arc::new(settings);
    let mut tasks = JoinSet::new();
    tasks.spawn(freshness_loop(
        settings.clone(),
        zones.clone(),
        tx.clone(),
        health,
    ));
    if settings.signatures {
        tasks.spawn(signature_loop(settings, zones, key, tx));
    }
    while tasks.join_next().await.is_some() {}
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `after` from now, or a century from now for durations that do not fit the clock.
fn later(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

fn rfc3339(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn assert(server: &str, condition: ConditionId, zone: &str, met: bool) -> Observation {
    Observation::new(
        SOURCE,
        server,
        condition,
        Some(zone),
        Evidence::Assert { met },
    )
}

/// The zone's SOA as the watched server answers it.
async fn server_soa(settings: &ZoneHealthSettings, zone: &Name) -> ServerSoa {
    match soa_check(settings.address, zone, settings.timeout).await {
        Err(e) => ServerSoa::Failed(e.to_string()),
        Ok(answer) if answer.header.rcode != 0 => {
            ServerSoa::Failed(format!("answered {}", rcode_name(answer.header.rcode)))
        }
        Ok(answer) if !answer.header.authoritative => {
            ServerSoa::Failed("not authoritative for the zone".into())
        }
        Ok(answer) => match answer.soa {
            Some(soa) => ServerSoa::Answer {
                soa,
                expire: answer.expire,
            },
            None => ServerSoa::Failed("no SOA in the answer".into()),
        },
    }
}

/// A primary's serial for the zone.
async fn primary_serial(
    address: SocketAddr,
    zone: &Name,
    timeout: Duration,
) -> Result<u32, String> {
    match soa_check(address, zone, timeout).await {
        Err(e) => Err(e.to_string()),
        Ok(answer) if answer.header.rcode != 0 => {
            Err(format!("answered {}", rcode_name(answer.header.rcode)))
        }
        Ok(answer) => answer
            .soa
            .map(|soa| soa.serial)
            .ok_or_else(|| "no SOA in the answer".into()),
    }
}

async fn freshness_loop(
    settings: Arc<ZoneHealthSettings>,
    zones: Vec<(String, Name)>,
    tx: mpsc::Sender<Observation>,
    health: Health,
) {
    let period_ms = i64::try_from(settings.expiring_period.as_millis()).unwrap_or(i64::MAX);
    let grace_ms = i64::try_from(settings.timeout.as_millis()).unwrap_or(i64::MAX);
    let mut states: Vec<Freshness> = zones
        .iter()
        .map(|_| Freshness::new(settings.refresh_tries, period_ms, grace_ms))
        .collect();
    let mut next_poll = Instant::now();
    loop {
        let polling = Instant::now() >= next_poll;
        if polling {
            next_poll = later(settings.interval);
            let mut polls = Vec::with_capacity(zones.len());
            for chunk in zones.chunks(MAX_POLLS_IN_FLIGHT) {
                polls.extend(join_all(chunk.iter().map(|(_, name)| poll(&settings, name))).await);
            }
            for (state, poll) in states.iter_mut().zip(&polls) {
                state.observe(poll);
            }
            // Health: whether the server answers for its zones (the primaries' answers
            // are what the conditions are about).
            let failed: Vec<String> = zones
                .iter()
                .zip(&polls)
                .filter_map(|((zone, _), poll)| match &poll.server {
                    ServerSoa::Failed(why) => Some(format!("{zone} {why}")),
                    ServerSoa::Answer { .. } => None,
                })
                .collect();
            if failed.is_empty() || zones.is_empty() {
                health.connected(format!("{} answers SOA for its zones", settings.address));
            } else if failed.len() == zones.len() {
                health.gone(format!("{}: {}", settings.address, failed.join("; ")));
            } else {
                health.stalled(format!("{}: {}", settings.address, failed.join("; ")));
            }
        }
        let now = now_ms();
        for ((zone, _), state) in zones.iter().zip(&states) {
            let Some(judgement) = state.judge(now) else {
                continue;
            };
            let server = &settings.server;
            let failed = match &judgement.refresh_failed {
                Some((tries, error)) => assert(server, ConditionId::ZoneRefreshFailed, zone, true)
                    .arg("tries", *tries)
                    .arg("error", error.as_str()),
                None => assert(server, ConditionId::ZoneRefreshFailed, zone, false),
            };
            let mut expiring = assert(server, ConditionId::ZoneExpiring, zone, judgement.expiring);
            if judgement.expiring
                && let Some(at) = judgement.expires_at_ms
            {
                expiring = expiring.arg("expires-at", rfc3339(at.div_euclid(1000)));
            }
            for obs in [failed, expiring] {
                if tx.send(obs).await.is_err() {
                    return;
                }
            }
        }
        let now = now_ms();
        let wake_ms = states
            .iter()
            .filter_map(|s| s.next_change_ms(now))
            .min()
            .map(|at| later(Duration::from_millis(at.saturating_sub(now).max(0) as u64)));
        let until = wake_ms.map_or(next_poll, |w| w.min(next_poll));
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = tx.closed() => return,
        }
    }
}

async fn poll(settings: &ZoneHealthSettings, zone: &Name) -> Poll {
    let server = server_soa(settings, zone);
    let primaries = join_all(
        settings
            .primaries
            .iter()
            .map(|&p| primary_serial(p, zone, settings.timeout)),
    );
    let (server, primaries) = tokio::join!(server, primaries);
    Poll {
        now_ms: now_ms(),
        server,
        primaries: settings
            .primaries
            .iter()
            .map(|p| p.to_string())
            .zip(primaries)
            .collect(),
    }
}

/// What the signature loop remembers of a zone.
struct ScanState {
    zone: String,
    name: Name,
    /// The serial of the last complete scan.
    scanned_serial: Option<u32>,
    /// When to scan again even if the serial stays.
    due: Option<Instant>,
}

async fn signature_loop(
    settings: Arc<ZoneHealthSettings>,
    zones: Vec<(String, Name)>,
    key: Option<TSigner>,
    tx: mpsc::Sender<Observation>,
) {
    let mut states: Vec<ScanState> = zones
        .into_iter()
        .map(|(zone, name)| ScanState {
            zone,
            name,
            scanned_serial: None,
            due: Some(Instant::now()),
        })
        .collect();
    loop {
        let started = Instant::now();
        for state in &mut states {
            let serial = match soa_check(settings.address, &state.name, settings.timeout).await {
                Ok(answer) if answer.header.rcode == 0 => answer.soa.map(|s| s.serial),
                _ => None,
            };
            let changed = serial.is_some() && serial != state.scanned_serial;
            if !changed && state.due.is_none_or(|due| due > Instant::now()) {
                continue;
            }
            let obs = scan_zone(&settings, state, key.as_ref()).await;
            if tx.send(obs).await.is_err() {
                return;
            }
        }
        let next_poll = started
            .checked_add(settings.interval)
            .unwrap_or_else(|| later(settings.interval));
        let until = states
            .iter()
            .filter_map(|s| s.due)
            .fold(next_poll, Instant::min);
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = tx.closed() => return,
        }
    }
}

/// Transfers and scans one zone; the observation to send and, in `state`, when to scan
/// again.
async fn scan_zone(
    settings: &ZoneHealthSettings,
    state: &mut ScanState,
    key: Option<&TSigner>,
) -> Observation {
    let now = now_ms().div_euclid(1000);
    let started = Instant::now();
    let result = transfer(
        settings.address,
        &state.name,
        key,
        SignatureScan::new(now, 1),
        settings.timeout,
        settings.transfer_timeout,
    )
    .await;
    let server = &settings.server;
    let zone = state.zone.as_str();
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            tracing::warn!(
                server,
                zone,
                "zone-health: signatures not checked: {e}; trying again in {:?}",
                settings.interval
            );
            state.due = Some(later(settings.interval));
            return assert(server, ConditionId::SignaturesExpiring, zone, true)
                .arg("error", e.to_string());
        }
    };
    let scan = &summary.scan;
    tracing::info!(
        server,
        zone,
        serial = summary.serial,
        rrsets = scan.rrsets(),
        signatures = scan.signatures(),
        messages = summary.messages,
        "zone-health: scanned in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    state.scanned_serial = Some(summary.serial);
    let in_seconds = |at: i64| later(Duration::from_secs(at.saturating_sub(now).max(0) as u64));
    let period = i64::try_from(settings.signatures_period.as_secs()).unwrap_or(i64::MAX);
    let verdict = scan.verdict(settings.signatures_period);
    let met = assert(server, ConditionId::SignaturesExpiring, zone, true)
        .arg("signatures", scan.signatures());
    match verdict {
        Verdict::Ok => {
            state.due = scan
                .earliest_expiration()
                .map(|e| in_seconds(e.saturating_sub(period)));
            assert(server, ConditionId::SignaturesExpiring, zone, false)
        }
        Verdict::Expiring => {
            // Scan again when it expires: the zone may still not be re-signed.
            state.due = scan.earliest_expiration().map(|e| in_seconds(e + 1));
            match scan.earliest().first() {
                Some(first) => met
                    .arg("owner", first.owner.to_string())
                    .arg("type", first.type_covered.to_string())
                    .arg("expires-at", rfc3339(first.expiration)),
                None => met,
            }
        }
        Verdict::Invalid => {
            // Signatures not yet valid become valid by themselves; expired ones wait for a
            // new serial.
            let latest_inception = scan.not_yet_valid().first().map(|s| s.inception);
            state.due = latest_inception.map(|i| in_seconds(i + 1));
            let met = met
                .arg("expired", scan.expired_total())
                .arg("not-yet-valid", scan.not_yet_valid_total());
            let worst = scan
                .expired()
                .into_iter()
                .next()
                .or_else(|| scan.not_yet_valid().into_iter().next());
            match worst {
                Some(s) => met
                    .arg("owner", s.owner.to_string())
                    .arg("type", s.type_covered.to_string())
                    .arg("expires-at", rfc3339(s.expiration))
                    .arg("valid-from", rfc3339(s.inception)),
                None => met,
            }
        }
        Verdict::Unsigned => {
            state.due = None;
            met.arg("error", "the zone has no RRSIG records")
        }
    }
}
