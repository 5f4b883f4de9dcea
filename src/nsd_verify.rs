//! `dns-oops nsd-verify`: NSD's zone verifier hook, reporting each new zone version to the
//! running daemon.
//!
//! NSD (4.3.9 and later) runs the program set as `verifier:` each time it has received a
//! new version of a zone by AXFR or IXFR, before it serves that version. NSD 4.6 does not
//! run it for zones it (re)reads from a zone file. The program learns which zone from its
//! environment:
//!
//! | variable | what |
//! |---|---|
//! | `VERIFY_ZONE` | the zone, e.g. `example.net` |
//! | `VERIFY_ZONE_ON_STDIN` | `yes` when the new version is written to standard input (`verifier-feed-zone: yes`) |
//! | `VERIFY_IP_ADDRESS`, `VERIFY_PORT` | where NSD serves the new version to the verifier (the `verify:` clause's `ip-address` and `port`) |
//!
//! Exit 0 accepts the version; any other status rejects it, and NSD goes on serving the
//! version it had. NSD logs the verifier's standard output as info and its standard error
//! as errors, so a rejection prints one line to standard error that says why.
//!
//! ```text
//! NSD ──env, zone on stdin──▶ nsd-verify ──serial, signature check──▶ verdict
//!                                 │ POST /api/v1/verified
//!                                 ▼
//!                   daemon: external-verify event; accepted → zone-ready (serial),
//!                   zone-updated when the serial changed, zone-refresh-failed cleared;
//!                   rejected → zone-refresh-failed (error, serial); signatures-expiring
//! ```
//!
//! The signals go out while NSD waits for the verifier: NSD serves an accepted version only
//! after the verifier has exited, so `zone-ready` and `zone-updated` from this source come a
//! moment (milliseconds) before clients see the new serial.
//!
//! The serial and the signatures come from the zone on standard input when NSD feeds it,
//! else from NSD's verify address: a SOA query, or an AXFR when signatures are checked
//! (NSD refuses that AXFR unless the zone has `provide-xfr:` for the verifier's address;
//! feeding the zone is simpler).
//!
//! Verdicts:
//!
//! * Without `--reject-on`, every version is accepted and reported.
//! * `--reject-on expiring-signatures[=PERIOD]` (default period [`DEFAULT_SIGNATURE_PERIOD`])
//!   rejects a version with a signature that expires within the period, has expired, or is
//!   not yet valid, and one that cannot be read to be checked. A zone with no RRSIG at all
//!   is not judged (an unsigned zone is accepted).
//! * `--accept-always` accepts every version, whatever the checks found; the checks still
//!   run and are reported (`signatures-expiring`), so it is a dry run of `--reject-on`.
//!
//! When the daemon cannot be told (it is down, its API is elsewhere, it does not know
//! `--server`), the verdict stands as the checks gave it and a warning goes to standard
//! error: dns-oops being down must not make NSD refuse zones. `--reject-unreported`
//! rejects such versions instead, for operators who want no version served unseen.
//!
//! Exit status: 0 accepted; 1 rejected by a check; 2 the command line or the environment is
//! wrong (not run by NSD); 3 rejected because the daemon could not be told
//! (`--reject-unreported`).

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::condition::ConditionId;
use crate::signal::{Evidence, Observation, Signal};
use crate::zone::master::{ZoneError, ZoneReader};
use crate::zone::name::Name;
use crate::zone::scan::{SignatureScan, Verdict as ScanVerdict};
use crate::zone::transfer::{TransferError, soa_check, transfer};
use crate::zone::types::Rtype;

/// The source name of the signals this command causes.
pub const SOURCE: &str = "nsd-verify";
/// The period of `--reject-on expiring-signatures` without `=PERIOD`.
pub const DEFAULT_SIGNATURE_PERIOD: Duration = Duration::from_secs(2 * 86400);
/// The longest `reason` the daemon keeps from a report, in bytes.
pub const MAX_REASON: usize = 1000;

const EXIT_REJECTED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNREPORTED: u8 = 3;

/// Set as NSD's `verifier:`: read the new version of the zone NSD names in VERIFY_ZONE
/// (from standard input with `verifier-feed-zone: yes`, else from VERIFY_IP_ADDRESS and
/// VERIFY_PORT), report its serial and checks to the running daemon, and exit 0 to accept
/// it or non-zero to reject it.
///
/// Accepted versions make the daemon signal zone-ready with the serial (and zone-updated
/// when it changed); rejected ones zone-refresh-failed. When the daemon cannot be reached
/// the version is still accepted, with a warning on standard error, unless
/// --reject-unreported. Exit 0 accepted, 1 rejected by a check, 2 bad command line or
/// environment, 3 rejected because the daemon could not be told.
///
/// nsd.conf: `verifier: dns-oops nsd-verify --server nsd --reject-on expiring-signatures=2d`
/// with `verifier-feed-zone: yes`.
#[derive(Debug, Clone, clap::Args)]
pub struct NsdVerifyArgs {
    /// The [[server]] of the dns-oops configuration that this NSD is.
    #[arg(long, value_name = "NAME")]
    pub server: String,
    /// Base URL of the daemon's HTTP API.
    #[arg(long, value_name = "URL", env = "DNS_OOPS_URL", default_value = crate::cli::DEFAULT_URL)]
    pub api: String,
    /// Reject the version when a check fails: `expiring-signatures[=PERIOD]` rejects a
    /// signature that expires within PERIOD (default 2d), has expired or is not yet valid,
    /// and a zone that cannot be read to be checked.
    #[arg(long, value_name = "CHECK", value_parser = parse_reject_on)]
    pub reject_on: Option<RejectOn>,
    /// Accept every version, whatever the checks find; they are still run and reported.
    #[arg(long)]
    pub accept_always: bool,
    /// Reject the version when the daemon cannot be told about it (default: accept it, with
    /// a warning on standard error).
    #[arg(long, conflicts_with = "accept_always")]
    pub reject_unreported: bool,
    /// How long the DNS queries to NSD, and the report to the daemon, may each take.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// A check whose failure rejects a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectOn {
    /// A signature expires within this period, has expired, or is not yet valid.
    ExpiringSignatures(Duration),
}

fn parse_reject_on(text: &str) -> Result<RejectOn, String> {
    let (check, value) = match text.split_once('=') {
        Some((check, value)) => (check, Some(value)),
        None => (text, None),
    };
    match check {
        "expiring-signatures" => {
            let period = match value {
                None => DEFAULT_SIGNATURE_PERIOD,
                Some(v) => humantime::parse_duration(v)
                    .map_err(|e| format!("`{v}` is not a period such as 36h or 2d: {e}"))?,
            };
            Ok(RejectOn::ExpiringSignatures(period))
        }
        _ => Err(format!(
            "unknown check `{check}`; the checks are: expiring-signatures[=PERIOD]"
        )),
    }
}

/// What NSD tells its verifier, read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyEnv {
    pub zone: Name,
    /// `VERIFY_ZONE_ON_STDIN=yes`.
    pub on_stdin: bool,
    /// `VERIFY_IP_ADDRESS` and `VERIFY_PORT`, or why they are unusable (needed only when
    /// the zone is not on standard input).
    pub address: Result<SocketAddr, EnvError>,
}

/// A verifier environment variable that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error(
        "{0} is not set: run nsd-verify as NSD's `verifier:` (NSD sets VERIFY_ZONE, \
         VERIFY_IP_ADDRESS and VERIFY_PORT), or set it by hand to try it"
    )]
    Missing(&'static str),
    #[error("{variable}=`{value}`: {reason}")]
    Bad {
        variable: &'static str,
        value: String,
        reason: String,
    },
}

impl VerifyEnv {
    /// Reads the variables through `get` (the process environment in production).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<VerifyEnv, EnvError> {
        let zone_text = get("VERIFY_ZONE").ok_or(EnvError::Missing("VERIFY_ZONE"))?;
        let zone = parse_zone(&zone_text).map_err(|reason| EnvError::Bad {
            variable: "VERIFY_ZONE",
            value: zone_text.clone(),
            reason,
        })?;
        let on_stdin = get("VERIFY_ZONE_ON_STDIN").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        let address = (|| {
            let ip_text = get("VERIFY_IP_ADDRESS").ok_or(EnvError::Missing("VERIFY_IP_ADDRESS"))?;
            let ip: IpAddr = ip_text.trim().parse().map_err(|_| EnvError::Bad {
                variable: "VERIFY_IP_ADDRESS",
                value: ip_text.clone(),
                reason: "not an IPv4 or IPv6 address".into(),
            })?;
            let port_text = get("VERIFY_PORT").ok_or(EnvError::Missing("VERIFY_PORT"))?;
            let port: u16 = match port_text.trim().parse() {
                Ok(p) if p != 0 => p,
                _ => {
                    return Err(EnvError::Bad {
                        variable: "VERIFY_PORT",
                        value: port_text.clone(),
                        reason: "not a port number (1 to 65535)".into(),
                    });
                }
            };
            Ok(SocketAddr::new(ip, port))
        })();
        Ok(VerifyEnv {
            zone,
            on_stdin,
            address,
        })
    }
}

fn parse_zone(text: &str) -> Result<Name, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty zone name".into());
    }
    Name::parse(text.as_bytes(), Some(&Name::root())).map_err(|e| e.to_string())
}

/// A zone name as subjects are written: lowercase, with the trailing dot.
fn subject(zone: &Name) -> String {
    zone.to_string().to_ascii_lowercase()
}

/// The verdict of a verifier on one version of a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Reject,
}

/// How a version's signatures fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureState {
    /// Every signature is valid and none expires within the period.
    Ok,
    /// A signature expires within the period.
    Expiring,
    /// A signature has expired or is not yet valid.
    Invalid,
    /// The zone has no RRSIG: nothing to judge.
    Unsigned,
    /// The zone could not be read to be checked.
    Error,
}

/// The signature check of one version, as reported to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SignatureCheck {
    pub state: SignatureState,
    /// The period the check warned about, in seconds.
    pub period: u64,
    #[serde(default)]
    pub signatures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub rtype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_yet_valid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SignatureCheck {
    /// Judges a finished scan for `period`.
    pub fn from_scan(scan: &SignatureScan, period: Duration) -> SignatureCheck {
        let mut check = SignatureCheck {
            state: SignatureState::Ok,
            period: period.as_secs(),
            signatures: scan.signatures(),
            owner: None,
            rtype: None,
            expires_at: None,
            valid_from: None,
            expired: None,
            not_yet_valid: None,
            error: None,
        };
        match scan.verdict(period) {
            ScanVerdict::Ok => {}
            ScanVerdict::Unsigned => check.state = SignatureState::Unsigned,
            ScanVerdict::Expiring => {
                check.state = SignatureState::Expiring;
                if let Some(first) = scan.earliest().first() {
                    check.owner = Some(first.owner.to_string());
                    check.rtype = Some(first.type_covered.to_string());
                    check.expires_at = Some(rfc3339(first.expiration));
                }
            }
            ScanVerdict::Invalid => {
                check.state = SignatureState::Invalid;
                check.expired = Some(scan.expired_total());
                check.not_yet_valid = Some(scan.not_yet_valid_total());
                let worst = scan
                    .expired()
                    .into_iter()
                    .next()
                    .or_else(|| scan.not_yet_valid().into_iter().next());
                if let Some(s) = worst {
                    check.owner = Some(s.owner.to_string());
                    check.rtype = Some(s.type_covered.to_string());
                    check.expires_at = Some(rfc3339(s.expiration));
                    check.valid_from = Some(rfc3339(s.inception));
                }
            }
        }
        check
    }

    /// The check of a zone that could not be read.
    pub fn failed(period: Duration, error: String) -> SignatureCheck {
        SignatureCheck {
            state: SignatureState::Error,
            period: period.as_secs(),
            signatures: 0,
            owner: None,
            rtype: None,
            expires_at: None,
            valid_from: None,
            expired: None,
            not_yet_valid: None,
            error: Some(error),
        }
    }

    /// Whether the check found the version wanting.
    pub fn failed_check(&self) -> bool {
        matches!(
            self.state,
            SignatureState::Expiring | SignatureState::Invalid | SignatureState::Error
        )
    }

    /// One line saying what is wrong, for a failed check.
    pub fn describe(&self) -> String {
        let what = match (&self.owner, &self.rtype) {
            (Some(owner), Some(rtype)) => format!("the signature of {owner} {rtype}"),
            _ => "a signature".to_string(),
        };
        let at = self.expires_at.as_deref().unwrap_or("?");
        match self.state {
            SignatureState::Ok => format!(
                "{} signatures, none expiring within {}",
                self.signatures,
                human(self.period)
            ),
            SignatureState::Unsigned => "no RRSIG in the zone".to_string(),
            SignatureState::Expiring => {
                format!("{what} expires at {at}, within {}", human(self.period))
            }
            SignatureState::Invalid => {
                let expired = self.expired.unwrap_or(0);
                let early = self.not_yet_valid.unwrap_or(0);
                if expired > 0 {
                    format!("{expired} signatures expired ({what} at {at})")
                } else {
                    let from = self.valid_from.as_deref().unwrap_or("?");
                    format!("{early} signatures not yet valid ({what} from {from})")
                }
            }
            SignatureState::Error => format!(
                "signatures not checked: {}",
                self.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

fn human(seconds: u64) -> String {
    humantime::format_duration(Duration::from_secs(seconds)).to_string()
}

fn rfc3339(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The body of `POST /api/v1/verified`: a verifier's verdict on one version of a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifiedReport {
    /// The dns-oops server (`[[server]] name`).
    pub server: String,
    pub zone: String,
    /// The version's SOA serial, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    pub verdict: Verdict,
    /// Why, for a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signature check, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<SignatureCheck>,
}

/// The answer to `POST /api/v1/verified`: the signals the report caused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedAnswer {
    pub signals: Vec<Signal>,
}

/// Why the daemon refused a report (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("zone `{zone}`: {reason}")]
    BadZone { zone: String, reason: String },
}

impl VerifiedReport {
    /// The observations the daemon applies for this report, in order:
    ///
    /// * `external-verify` (event; `verdict`, `serial`, `reason`);
    /// * accepted: `zone-ready` met with the serial (the engine signals `zone-updated` when
    ///   the serial changed) and `zone-refresh-failed` cleared;
    /// * rejected: `zone-refresh-failed` met (`error` = the reason, `serial`); `zone-ready`
    ///   is left alone, as NSD goes on serving the version it had;
    /// * with a signature check: `signatures-expiring` met when it failed; cleared when it
    ///   passed and the version was accepted (an unsigned zone leaves it alone).
    pub fn observations(&self) -> Result<Vec<Observation>, ReportError> {
        let zone = parse_zone(&self.zone).map_err(|reason| ReportError::BadZone {
            zone: self.zone.clone(),
            reason,
        })?;
        let zone = subject(&zone);
        let server = self.server.as_str();
        let reason = self.reason.as_deref().map(|r| clip(r, MAX_REASON));
        let level = |condition, met| {
            Observation::new(
                SOURCE,
                server,
                condition,
                Some(&zone),
                Evidence::Assert { met },
            )
        };
        let mut verify = Observation::new(
            SOURCE,
            server,
            ConditionId::ExternalVerify,
            Some(&zone),
            Evidence::Event,
        )
        .arg(
            "verdict",
            match self.verdict {
                Verdict::Accept => "accept",
                Verdict::Reject => "reject",
            },
        );
        if let Some(serial) = self.serial {
            verify = verify.arg("serial", serial);
        }
        if let Some(reason) = &reason {
            verify = verify.arg("reason", reason.clone());
        }
        let mut out = vec![verify];
        match self.verdict {
            Verdict::Accept => {
                if let Some(serial) = self.serial {
                    out.push(level(ConditionId::ZoneReady, true).arg("serial", serial));
                }
                out.push(level(ConditionId::ZoneRefreshFailed, false));
            }
            Verdict::Reject => {
                let mut failed = level(ConditionId::ZoneRefreshFailed, true).arg(
                    "error",
                    reason.clone().unwrap_or_else(|| "rejected".to_string()),
                );
                if let Some(serial) = self.serial {
                    failed = failed.arg("serial", serial);
                }
                out.push(failed);
            }
        }
        if let Some(check) = &self.signatures {
            let accepted = self.verdict == Verdict::Accept;
            match check.state {
                SignatureState::Unsigned => {}
                SignatureState::Ok if accepted => {
                    out.push(level(ConditionId::SignaturesExpiring, false));
                }
                SignatureState::Ok => {}
                SignatureState::Expiring | SignatureState::Invalid | SignatureState::Error => {
                    let mut met = level(ConditionId::SignaturesExpiring, true)
                        .arg("signatures", check.signatures);
                    let fields = [
                        ("owner", &check.owner),
                        ("type", &check.rtype),
                        ("expires-at", &check.expires_at),
                        ("valid-from", &check.valid_from),
                        ("error", &check.error),
                    ];
                    for (name, value) in fields {
                        if let Some(value) = value {
                            met = met.arg(name, clip(value, MAX_REASON));
                        }
                    }
                    for (name, value) in [
                        ("expired", check.expired),
                        ("not-yet-valid", check.not_yet_valid),
                    ] {
                        if let Some(value) = value {
                            met = met.arg(name, value);
                        }
                    }
                    out.push(met);
                }
            }
        }
        Ok(out)
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// What was read of the new version.
#[derive(Debug)]
pub struct ZoneVersion {
    pub serial: u32,
    /// The signature scan, when signatures were to be checked.
    pub scan: Option<SignatureScan>,
}

/// Why the new version could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the zone on standard input: {0}")]
    Feed(#[from] ZoneError),
    #[error("the zone on standard input has no SOA record for {zone}")]
    NoSoa { zone: String },
    #[error("the zone on standard input: SOA of {zone} at line {line} has no valid serial")]
    BadSerial { zone: String, line: u64 },
    #[error("reading standard input: {0}")]
    Stdin(std::io::Error),
    #[error(
        "the zone is not on standard input (set `verifier-feed-zone: yes`) and {0}, so NSD \
         cannot be asked for it"
    )]
    NoAddress(EnvError),
    #[error("asking NSD for the new version: {0}")]
    Query(#[from] TransferError),
    #[error("NSD's verify address answered the SOA query with {rcode} and no SOA of {zone}")]
    NoSoaAnswer { zone: String, rcode: String },
}

/// Reads a zone fed by NSD in master format: the serial of the SOA owned by `zone`, and,
/// with `scan`, every record fed to the signature scan.
pub fn read_feed<R: BufRead>(
    input: R,
    zone: &Name,
    mut scan: Option<SignatureScan>,
) -> Result<ZoneVersion, ReadError> {
    let mut reader = ZoneReader::new(input, "<stdin>", Some(zone.clone()));
    let mut serial = None;
    while let Some(record) = reader.next_record()? {
        if serial.is_none() && record.rtype == Rtype::SOA && record.owner == *zone {
            let value = record
                .rdata()
                .nth(2)
                .and_then(|t| std::str::from_utf8(t.text).ok()?.parse::<u32>().ok());
            match value {
                Some(v) => serial = Some(v),
                None => {
                    return Err(ReadError::BadSerial {
                        zone: subject(zone),
                        line: record.line,
                    });
                }
            }
        }
        if let Some(scan) = scan.as_mut() {
            match record.rrsig() {
                Some(rrsig) => scan.add_signature(&record.owner, rrsig),
                None => scan.add_record(&record.owner, record.class, record.rtype),
            }
        }
    }
    let serial = serial.ok_or_else(|| ReadError::NoSoa {
        zone: subject(zone),
    })?;
    Ok(ZoneVersion { serial, scan })
}

/// Asks NSD's verify address for the new version: its SOA, or, with `scan`, the whole zone
/// by AXFR.
async fn read_from_nsd(
    address: SocketAddr,
    zone: &Name,
    scan: Option<SignatureScan>,
    timeout: Duration,
) -> Result<ZoneVersion, ReadError> {
    match scan {
        Some(scan) => {
            let summary = transfer(address, zone, None, scan, timeout, timeout * 12).await?;
            Ok(ZoneVersion {
                serial: summary.serial,
                scan: Some(summary.scan),
            })
        }
        None => {
            let answer = soa_check(address, zone, timeout).await?;
            match answer.soa {
                Some(soa) if answer.header.rcode == 0 => Ok(ZoneVersion {
                    serial: soa.serial,
                    scan: None,
                }),
                _ => Err(ReadError::NoSoaAnswer {
                    zone: subject(zone),
                    rcode: crate::zone::wire::rcode_name(answer.header.rcode),
                }),
            }
        }
    }
}

/// Runs the command; see the module documentation.
pub async fn run(args: &NsdVerifyArgs) -> ExitCode {
    let env = match VerifyEnv::read(|name| std::env::var(name).ok()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("dns-oops nsd-verify: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let zone = subject(&env.zone);
    let period = args.reject_on.map(|RejectOn::ExpiringSignatures(p)| p);
    let now = Utc::now().timestamp();
    let scan = period.map(|_| SignatureScan::new(now, 1));
    let version = if env.on_stdin {
        let stdin = std::io::stdin().lock();
        let result = read_feed(stdin, &env.zone, scan);
        // NSD writes the whole zone; take the rest after an error so that it does not fail
        // writing.
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        result
    } else {
        match env.address.clone() {
            Ok(address) => read_from_nsd(address, &env.zone, scan, args.timeout).await,
            Err(e) => Err(ReadError::NoAddress(e)),
        }
    };
    let (serial, check, read_error) = match version {
        Ok(version) => {
            let check = match (version.scan, period) {
                (Some(scan), Some(period)) => Some(SignatureCheck::from_scan(&scan, period)),
                _ => None,
            };
            (Some(version.serial), check, None)
        }
        Err(e) => {
            let check = period.map(|p| SignatureCheck::failed(p, e.to_string()));
            (None, check, Some(e.to_string()))
        }
    };
    let failed = check.as_ref().filter(|c| c.failed_check());
    let reject = failed.is_some() && !args.accept_always;
    let mut reason = failed.map(SignatureCheck::describe);
    if reason.is_none() {
        reason = read_error.clone();
    }
    let report = VerifiedReport {
        server: args.server.clone(),
        zone: zone.clone(),
        serial,
        verdict: if reject {
            Verdict::Reject
        } else {
            Verdict::Accept
        },
        reason: reason.clone(),
        signatures: check,
    };
    let version = match serial {
        Some(serial) => format!("{zone} serial {serial}"),
        None => format!("{zone} (serial unknown)"),
    };
    if let Some(e) = &read_error
        && !reject
    {
        eprintln!("dns-oops nsd-verify: warning: {version}: {e}");
    }
    let reported = crate::http::client::report_verified(&args.api, &report, args.timeout).await;
    let unreported = match reported {
        Ok(answer) => {
            let seqs: Vec<String> = answer.signals.iter().map(|s| s.seq.to_string()).collect();
            if !reject {
                println!(
                    "dns-oops nsd-verify: {version} accepted; reported to dns-oops as server `{}` (signals: {})",
                    args.server,
                    if seqs.is_empty() {
                        "none".to_string()
                    } else {
                        seqs.join(", ")
                    }
                );
            }
            false
        }
        Err(e) => {
            let outcome = if reject || args.reject_unreported {
                "rejected"
            } else {
                "accepted anyway"
            };
            eprintln!(
                "dns-oops nsd-verify: warning: {version} not reported to dns-oops ({outcome}): {e}"
            );
            true
        }
    };
    if reject {
        eprintln!(
            "dns-oops nsd-verify: {version} rejected: {}",
            reason.as_deref().unwrap_or("a check failed")
        );
        return ExitCode::from(EXIT_REJECTED);
    }
    if unreported && args.reject_unreported {
        eprintln!(
            "dns-oops nsd-verify: {version} rejected: dns-oops could not be told (--reject-unreported)"
        );
        return ExitCode::from(EXIT_UNREPORTED);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Result<VerifyEnv, EnvError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        VerifyEnv::read(|name| map.get(name).cloned())
    }

    #[test]
    fn environment_errors_name_the_variable() {
        assert_eq!(env(&[]), Err(EnvError::Missing("VERIFY_ZONE")));
        let ok = env(&[
            ("VERIFY_ZONE", "Example.TEST"),
            ("VERIFY_IP_ADDRESS", "::1"),
            ("VERIFY_PORT", "5347"),
            ("VERIFY_ZONE_ON_STDIN", "yes"),
        ])
        .unwrap();
        assert_eq!(subject(&ok.zone), "example.test.");
        assert!(ok.on_stdin);
        assert_eq!(ok.address, Ok("[::1]:5347".parse().unwrap()));
        let bad_port = env(&[
            ("VERIFY_ZONE", "example.test"),
            ("VERIFY_IP_ADDRESS", "127.0.0.1"),
            ("VERIFY_PORT", "70000"),
        ])
        .unwrap();
        let text = bad_port.address.unwrap_err().to_string();
        assert!(text.starts_with("VERIFY_PORT=`70000`"), "{text}");
        let no_ip = env(&[("VERIFY_ZONE", "example.test")]).unwrap();
        assert!(!no_ip.on_stdin);
        assert_eq!(no_ip.address, Err(EnvError::Missing("VERIFY_IP_ADDRESS")));
        let bad_ip = env(&[
            ("VERIFY_ZONE", "example.test"),
            ("VERIFY_IP_ADDRESS", "localhost"),
            ("VERIFY_PORT", "53"),
        ])
        .unwrap();
        assert!(
            bad_ip
                .address
                .unwrap_err()
                .to_string()
                .contains("VERIFY_IP_ADDRESS=`localhost`")
        );
        let bad_zone = env(&[("VERIFY_ZONE", "a..b")]).unwrap_err();
        assert!(bad_zone.to_string().starts_with("VERIFY_ZONE=`a..b`"));
    }

    #[test]
    fn reject_on_parses_the_period() {
        assert_eq!(
            parse_reject_on("expiring-signatures"),
            Ok(RejectOn::ExpiringSignatures(DEFAULT_SIGNATURE_PERIOD))
        );
        assert_eq!(
            parse_reject_on("expiring-signatures=36h"),
            Ok(RejectOn::ExpiringSignatures(Duration::from_secs(36 * 3600)))
        );
        assert!(parse_reject_on("expiring-signatures=soon").is_err());
        assert!(
            parse_reject_on("bogus")
                .unwrap_err()
                .contains("expiring-signatures")
        );
    }

    /// The zone as NSD 4.6 feeds it to a verifier.
    const FEED: &str = "$ORIGIN test.\nexample\t300\tIN\tSOA\tns1.example.test. hostmaster.example.test. (\n\
        \t\t2024010102 3600 600 86400 300 )\n\t300\tIN\tNS\tns1.example.test.\n\
        $ORIGIN example.test.\nns1\t300\tIN\tA\t127.0.0.1\nwww\t300\tIN\tA\t192.0.2.1\n";

    #[test]
    fn reads_the_serial_from_nsds_feed() {
        let zone = parse_zone("example.test").unwrap();
        let version = read_feed(FEED.as_bytes(), &zone, None).unwrap();
        assert_eq!(version.serial, 2024010102);
        let version = read_feed(FEED.as_bytes(), &zone, Some(SignatureScan::new(0, 1))).unwrap();
        let check = SignatureCheck::from_scan(&version.scan.unwrap(), DEFAULT_SIGNATURE_PERIOD);
        assert_eq!(check.state, SignatureState::Unsigned);
        assert!(!check.failed_check());
        let other = parse_zone("other.test").unwrap();
        assert!(matches!(
            read_feed(FEED.as_bytes(), &other, None),
            Err(ReadError::NoSoa { .. })
        ));
        let broken = "example.test. 300 IN SOA ns1 hm (\n";
        let text = read_feed(broken.as_bytes(), &zone, None)
            .unwrap_err()
            .to_string();
        assert!(text.contains("<stdin>:"), "{text}");
        let bad_serial = "example.test. 300 IN SOA ns1 hm x 1 2 3 4\n";
        assert!(matches!(
            read_feed(bad_serial.as_bytes(), &zone, None),
            Err(ReadError::BadSerial { line: 1, .. })
        ));
    }

    #[test]
    fn judges_expiring_signatures() {
        let zone = parse_zone("example.test").unwrap();
        let now = 1_800_000_000i64;
        let expires = now + 3600;
        let signed = format!(
            "{FEED}www.example.test. 300 IN RRSIG A 13 3 300 {} {} 12345 example.test. AAAA\n",
            DateTime::<Utc>::from_timestamp(expires, 0)
                .unwrap()
                .format("%Y%m%d%H%M%S"),
            DateTime::<Utc>::from_timestamp(now - 3600, 0)
                .unwrap()
                .format("%Y%m%d%H%M%S"),
        );
        let version =
            read_feed(signed.as_bytes(), &zone, Some(SignatureScan::new(now, 1))).unwrap();
        let scan = version.scan.unwrap();
        let check = SignatureCheck::from_scan(&scan, Duration::from_secs(7200));
        assert_eq!(check.state, SignatureState::Expiring);
        assert_eq!(check.owner.as_deref(), Some("www.example.test."));
        assert_eq!(check.rtype.as_deref(), Some("A"));
        assert_eq!(check.expires_at, Some(rfc3339(expires)));
        assert!(check.failed_check());
        assert!(check.describe().contains("www.example.test. A"));
        let fine = SignatureCheck::from_scan(&scan, Duration::from_secs(60));
        assert_eq!(fine.state, SignatureState::Ok);
    }

    fn report(verdict: Verdict, signatures: Option<SignatureCheck>) -> VerifiedReport {
        VerifiedReport {
            server: "nsd".into(),
            zone: "Example.Test".into(),
            serial: Some(7),
            verdict,
            reason: (verdict == Verdict::Reject).then(|| "too old".to_string()),
            signatures,
        }
    }

    fn summary(obs: &[Observation]) -> Vec<String> {
        obs.iter()
            .map(|o| {
                format!(
                    "{} {} {:?}",
                    o.condition,
                    o.subject.as_deref().unwrap_or("-"),
                    o.evidence
                )
            })
            .collect()
    }

    #[test]
    fn accepted_version_is_ready_and_rejected_one_failed_to_refresh() {
        let accepted = report(Verdict::Accept, None).observations().unwrap();
        assert_eq!(
            summary(&accepted),
            [
                "external-verify example.test. Event",
                "zone-ready example.test. Assert { met: true }",
                "zone-refresh-failed example.test. Assert { met: false }",
            ]
        );
        assert_eq!(accepted[1].args["serial"], 7);
        assert!(accepted.iter().all(|o| o.source == SOURCE));
        let expiring = SignatureCheck {
            state: SignatureState::Expiring,
            owner: Some("www.example.test.".into()),
            rtype: Some("A".into()),
            expires_at: Some("2027-01-01T00:00:00Z".into()),
            ..SignatureCheck::failed(Duration::from_secs(60), String::new())
        };
        let expiring = SignatureCheck {
            error: None,
            ..expiring
        };
        let rejected = report(Verdict::Reject, Some(expiring))
            .observations()
            .unwrap();
        assert_eq!(
            summary(&rejected),
            [
                "external-verify example.test. Event",
                "zone-refresh-failed example.test. Assert { met: true }",
                "signatures-expiring example.test. Assert { met: true }",
            ]
        );
        assert_eq!(rejected[0].args["verdict"], "reject");
        assert_eq!(rejected[1].args["error"], "too old");
        assert_eq!(rejected[1].args["serial"], 7);
        assert_eq!(rejected[2].args["owner"], "www.example.test.");
        assert!(!rejected[2].args.contains_key("error"));
        let ok = SignatureCheck::from_scan(&SignatureScan::new(0, 1), Duration::ZERO);
        let unsigned = report(Verdict::Accept, Some(ok)).observations().unwrap();
        assert_eq!(
            unsigned.len(),
            3,
            "an unsigned zone leaves signatures alone"
        );
        let bad = VerifiedReport {
            zone: "a..b".into(),
            ..report(Verdict::Accept, None)
        };
        assert!(bad.observations().is_err());
    }

    #[test]
    fn report_json_round_trips_and_refuses_unknown_fields() {
        let r = report(Verdict::Reject, None);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<VerifiedReport>(&json).unwrap(), r);
        assert!(
            serde_json::from_str::<VerifiedReport>(
                r#"{"server":"nsd","zone":"x.","verdict":"accept","extra":1}"#
            )
            .is_err()
        );
        assert_eq!(clip("ééé", 3), "é…");
    }
}
