//! `dns-oops check-zone FILE`: the signature scan over a zone file, for people and for
//! Nagios/Icinga-style monitoring.
//!
//! Reads the file as a stream (see [`super::master`]), feeds every record to a
//! [`SignatureScan`], prints a status line, then the signatures that expire first, those
//! already expired and those not yet valid, and exits with the monitoring-plugin codes:
//!
//! | exit | state | when |
//! |---|---|---|
//! | 0 | OK | every signature is valid and none expires within `--window` |
//! | 1 | WARNING | a signature expires within `--window` |
//! | 2 | CRITICAL | a signature has expired or is not yet valid |
//! | 3 | UNKNOWN | the file cannot be read or parsed (the message gives file:line), or it holds no RRSIG at all |
//!
//! The status line comes first because monitoring systems take the first line as the
//! status text and the rest as details.
//!
//! The default window, one day, is shorter than the margin before expiry at which common
//! signers re-sign (Knot, BIND, OpenDNSSEC re-sign days before a signature expires with
//! their default policies), so a healthy zone does not warn; set it just under your
//! signer's refresh period to be warned as early as possible.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::master::{ZoneError, ZoneReader};
use super::name::Name;
use super::scan::{ScannedSignature, SignatureScan, Verdict};
use crate::check::CheckState;

/// Check the DNSSEC signature validity periods in a zone file; exit 0 (OK), 1 (WARNING: a
/// signature expires within the window), 2 (CRITICAL: a signature has expired or is not
/// yet valid) or 3 (UNKNOWN: unreadable, or no signatures).
#[derive(Debug, clap::Args)]
pub struct CheckZoneArgs {
    /// The zone file, in RFC 1035 master format (as ldns-signzone and Knot write it); `-`
    /// reads standard input.
    pub file: PathBuf,
    /// Warn when a signature expires within this period (e.g. 36h, 7d).
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    pub window: Duration,
    /// The origin for relative names, for a file without $ORIGIN.
    #[arg(long, value_parser = parse_origin)]
    pub origin: Option<Name>,
    /// How many signatures of each list (expiring first, expired, not yet valid) to show.
    #[arg(long, default_value_t = 5)]
    pub show: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Judge the signatures as if it were this time (RFC 3339), instead of now.
    #[arg(long, hide = true, value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
}

fn parse_origin(text: &str) -> Result<Name, String> {
    Name::parse(text.as_bytes(), Some(&Name::root())).map_err(|e| e.to_string())
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

/// Why a zone file could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum CheckZoneError {
    #[error("{}: cannot open: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Zone(#[from] ZoneError),
}

pub fn run(args: &CheckZoneArgs) -> ExitCode {
    let now = args.now.unwrap_or_else(Utc::now).timestamp();
    let outcome = scan_file(&args.file, args.origin.clone(), now, args.show);
    let state = match &outcome {
        Ok(scan) => state_of(scan.verdict(args.window)),
        Err(_) => CheckState::Unknown,
    };
    let text = if args.json {
        format!("{}\n", to_json(args, now, state, &outcome))
    } else {
        render(args, state, &outcome)
    };
    crate::cli::emit(&text);
    ExitCode::from(state as u8)
}

/// Scans a zone file (`-`: standard input), keeping `keep` signatures of each list.
pub fn scan_file(
    path: &Path,
    origin: Option<Name>,
    now: i64,
    keep: usize,
) -> Result<SignatureScan, CheckZoneError> {
    let mut scan = SignatureScan::new(now, keep);
    let name = path.display().to_string();
    if path == Path::new("-") {
        let stdin = std::io::stdin().lock();
        scan_reader(ZoneReader::new(stdin, "<stdin>", origin), &mut scan)?;
    } else {
        let file = std::fs::File::open(path).map_err(|error| CheckZoneError::Open {
            path: path.to_path_buf(),
            error,
        })?;
        let input = std::io::BufReader::with_capacity(256 * 1024, file);
        scan_reader(ZoneReader::new(input, name, origin), &mut scan)?;
    }
    Ok(scan)
}

/// Feeds every record of `reader` to `scan`.
pub fn scan_reader<R: BufRead>(
    mut reader: ZoneReader<R>,
    scan: &mut SignatureScan,
) -> Result<(), ZoneError> {
    while let Some(record) = reader.next_record()? {
        match record.rrsig() {
            Some(rrsig) => scan.add_signature(&record.owner, rrsig),
            None => scan.add_record(&record.owner, record.class, record.rtype),
        }
    }
    Ok(())
}

fn state_of(verdict: Verdict) -> CheckState {
    match verdict {
        Verdict::Ok => CheckState::Ok,
        Verdict::Expiring => CheckState::Warning,
        Verdict::Invalid => CheckState::Critical,
        Verdict::Unsigned => CheckState::Unknown,
    }
}

fn label(state: CheckState) -> &'static str {
    match state {
        CheckState::Ok => "OK",
        CheckState::Warning => "WARNING",
        CheckState::Critical => "CRITICAL",
        CheckState::Unknown => "UNKNOWN",
    }
}

/// The status line, then the lists.
fn render(
    args: &CheckZoneArgs,
    state: CheckState,
    outcome: &Result<SignatureScan, CheckZoneError>,
) -> String {
    let scan = match outcome {
        Ok(scan) => scan,
        Err(e) => return format!("DNS-OOPS UNKNOWN - {e}\n"),
    };
    let now = scan.now();
    let window = human(i64::try_from(args.window.as_secs()).unwrap_or(i64::MAX));
    let headline = match state {
        CheckState::Ok => format!("no signature expires within {window}"),
        CheckState::Warning => format!("a signature expires within {window}"),
        CheckState::Critical => {
            let mut parts = Vec::new();
            if scan.expired_total() > 0 {
                parts.push(format!(
                    "{} expired",
                    count(scan.expired_total(), "signature")
                ));
            }
            if scan.not_yet_valid_total() > 0 {
                parts.push(format!(
                    "{} not yet valid",
                    count(scan.not_yet_valid_total(), "signature")
                ));
            }
            parts.join(", ")
        }
        CheckState::Unknown => "no RRSIG records: the zone is not signed".to_string(),
    };
    let mut out = format!(
        "DNS-OOPS {} - {}: {headline}; {} RRsets, {} checked",
        label(state),
        args.file.display(),
        scan.rrsets(),
        count(scan.signatures(), "signature"),
    );
    let earliest = scan.earliest();
    if let Some(first) = earliest.first() {
        out.push_str(&format!(
            "; earliest expiry {} ({}) {} {}",
            timestamp(first.expiration),
            relative(first.expiration - now),
            first.owner,
            first.type_covered
        ));
    }
    out.push_str(&format!(
        " | rrsets={} signatures={} expired={} not_yet_valid={}",
        scan.rrsets(),
        scan.signatures(),
        scan.expired_total(),
        scan.not_yet_valid_total()
    ));
    if let Some(expiration) = scan.earliest_expiration() {
        out.push_str(&format!(
            " earliest_expiry={}s;{};0",
            expiration - now,
            args.window.as_secs()
        ));
    }
    out.push('\n');
    let sections = [
        (
            "signatures expiring first",
            scan.signatures() - scan.expired_total() - scan.not_yet_valid_total(),
            earliest,
        ),
        ("expired signatures", scan.expired_total(), scan.expired()),
        (
            "signatures not yet valid",
            scan.not_yet_valid_total(),
            scan.not_yet_valid(),
        ),
    ];
    for (title, total, list) in sections {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{title} ({} of {total}):\n", list.len()));
        for sig in &list {
            let (when, at) = if title.ends_with("not yet valid") {
                ("valid from", sig.inception)
            } else if sig.expiration < now {
                ("expired", sig.expiration)
            } else {
                ("expires", sig.expiration)
            };
            out.push_str(&format!(
                "  {} {}  {when} {} ({})  key {}, algorithm {}\n",
                sig.owner,
                sig.type_covered,
                timestamp(at),
                relative(at - now),
                sig.key_tag,
                sig.algorithm
            ));
        }
    }
    out
}

fn to_json(
    args: &CheckZoneArgs,
    now: i64,
    state: CheckState,
    outcome: &Result<SignatureScan, CheckZoneError>,
) -> serde_json::Value {
    let mut value = serde_json::json!({
        "state": label(state),
        "file": args.file.display().to_string(),
        "now": timestamp(now),
        "window_seconds": args.window.as_secs(),
    });
    match outcome {
        Err(e) => value["error"] = e.to_string().into(),
        Ok(scan) => {
            let list = |sigs: Vec<ScannedSignature>| -> serde_json::Value {
                sigs.iter()
                    .map(|s| {
                        serde_json::json!({
                            "owner": s.owner.to_string(),
                            "type": s.type_covered.to_string(),
                            "key_tag": s.key_tag,
                            "algorithm": s.algorithm,
                            "inception": timestamp(s.inception),
                            "expiration": timestamp(s.expiration),
                            "expires_in_seconds": s.expiration - now,
                        })
                    })
                    .collect()
            };
            value["rrsets"] = scan.rrsets().into();
            value["signatures"] = scan.signatures().into();
            value["earliest_expiration"] = scan.earliest_expiration().map(timestamp).into();
            value["earliest"] = list(scan.earliest());
            value["expired_total"] = scan.expired_total().into();
            value["expired"] = list(scan.expired());
            value["not_yet_valid_total"] = scan.not_yet_valid_total().into();
            value["not_yet_valid"] = list(scan.not_yet_valid());
        }
    }
    value
}

fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `2026-12-27T23:00:32Z`.
fn timestamp(seconds: i64) -> String {
    match DateTime::<Utc>::from_timestamp(seconds, 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("{seconds} s after the epoch"),
    }
}

/// `in 6d 23h`, `3h 12m ago`, `now`.
fn relative(seconds: i64) -> String {
    match seconds {
        0 => "now".to_string(),
        s if s > 0 => format!("in {}", human(s)),
        s => format!("{} ago", human(s.saturating_abs())),
    }
}

/// The two largest units of a period: `6d 23h`, `5m 3s`, `1d`, `0s`.
fn human(seconds: i64) -> String {
    const UNITS: [(i64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let seconds = seconds.max(0);
    for (i, &(size, unit)) in UNITS.iter().enumerate() {
        if seconds >= size {
            let mut text = format!("{}{unit}", seconds / size);
            if let Some(&(next_size, next_unit)) = UNITS.get(i + 1) {
                let next = seconds % size / next_size;
                if next > 0 {
                    text.push_str(&format!(" {next}{next_unit}"));
                }
            }
            return text;
        }
    }
    "0s".to_string()
}
