//! The hints against the live DNS.
//!
//! What is compared, each with the draft's reason:
//!
//! * the domain's own NS set, asked of every hinted address (RD clear), against the hints'
//!   name servers; it must hold an in-domain name server (§2.1, §2.2);
//! * the addresses of every in-domain name server, asked of the domain's servers, against
//!   the hints' addresses. A name server whose name lies in a zone delegated further down
//!   is followed through the referral, and that zone must have an in-domain name server of
//!   its own, recursively (§2.2);
//! * the domain's DNSKEY set against the trust anchors: at least one anchor must designate
//!   a key the domain publishes;
//! * the parent's delegation, asked of the parent's servers (RD clear): its NS set and its
//!   glue against the hints, and its DS set, when there is one, against the trust anchors
//!   (§2.1: "signal inconsistencies between information in the parents and the in-tree
//!   configuration");
//! * the `_in-tree.<domain>` TXT commitment (§3.1): an RFC 3339 time until which the domain
//!   owner commits to the practices; missing, unreadable, past, or within the period is
//!   reported.
//!
//! The parent's servers are given, or found through a recursive resolver: the SOA walk
//! up from the domain's parent name, then the NS set and addresses of that zone.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use super::dns::{self, QueryError};
use super::hints::{DnskeyData, DsData, Hints, NO_IN_DOMAIN_REASON, TrustAnchor, is_at_or_below};

/// The port name servers are asked on (hints hold addresses only, as the parent's glue).
const DNS_PORT: u16 = 53;
/// How deep name servers inside delegated zones are followed.
const MAX_DELEGATION_DEPTH: usize = 4;
/// The most steps of the SOA walk to the parent zone.
const MAX_WALK: usize = 16;
/// The most parent servers asked.
const MAX_PARENT_SERVERS: usize = 8;

/// Where to ask, and what counts as expiring.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    /// The parent zone's servers; `None`: found through `resolver`.
    pub parent: Option<Vec<SocketAddr>>,
    /// A recursive resolver for finding the parent's servers; `None`: the first
    /// `nameserver` of `/etc/resolv.conf`.
    pub resolver: Option<SocketAddr>,
    /// How long each query waits.
    pub timeout: Duration,
    /// The commitment is reported as expiring this long before its time.
    pub commitment_period: Duration,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            parent: None,
            resolver: None,
            timeout: Duration::from_secs(2),
            commitment_period: Duration::from_secs(30 * 86400),
        }
    }
}

/// The `_in-tree` commitment as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commitment {
    /// Expires after the period.
    Valid(DateTime<Utc>),
    /// Expires within the period.
    Expiring(DateTime<Utc>),
    /// Expired.
    Expired(DateTime<Utc>),
    /// No TXT record at `_in-tree.<domain>`.
    Missing,
    /// TXT records, none of them an RFC 3339 time.
    Invalid(String),
    /// No server of the domain answered.
    Unknown,
}

impl Commitment {
    /// Whether `in-tree-commitment-expiring` is met.
    pub fn is_expiring(&self) -> bool {
        !matches!(self, Commitment::Valid(_) | Commitment::Unknown)
    }

    /// The `expires-at` argument: an RFC 3339 time, or `none`.
    pub fn expires_at(&self) -> String {
        match self {
            Commitment::Valid(t) | Commitment::Expiring(t) | Commitment::Expired(t) => {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }
            _ => "none".into(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Commitment::Valid(t) => format!("commitment until {}", rfc3339(t)),
            Commitment::Expiring(t) => format!("commitment expires {}", rfc3339(t)),
            Commitment::Expired(t) => format!("commitment expired {}", rfc3339(t)),
            Commitment::Missing => "no _in-tree TXT commitment".into(),
            Commitment::Invalid(text) => {
                format!("_in-tree TXT is not an RFC 3339 time: \"{text}\"")
            }
            Commitment::Unknown => "commitment unknown: no server of the domain answered".into(),
        }
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub domain: String,
    /// What differs between the hints and the live DNS, one sentence each.
    pub mismatches: Vec<String>,
    pub commitment: Commitment,
    /// What could not be asked (servers that did not answer).
    pub unreachable: Vec<String>,
    /// Whether the parent's delegation was compared.
    pub parent_checked: bool,
    /// Whether the domain's own servers were compared.
    pub child_checked: bool,
}

impl Report {
    /// Whether the comparison was complete: every side answered.
    pub fn complete(&self) -> bool {
        self.parent_checked && self.child_checked
    }

    /// Monitoring-plugin state: 2 on a mismatch or a commitment that is missing, unreadable
    /// or past; 1 when it expires within the period; 3 when a side could not be asked;
    /// else 0.
    pub fn exit_code(&self) -> u8 {
        let commitment = match &self.commitment {
            Commitment::Valid(_) => 0,
            Commitment::Expiring(_) => 1,
            Commitment::Unknown => 3,
            _ => 2,
        };
        if !self.mismatches.is_empty() || commitment == 2 {
            2
        } else if !self.complete() {
            3
        } else {
            commitment
        }
    }

    /// One line for people and monitoring: `IN-TREE CRITICAL example.test.: …`.
    pub fn summary(&self) -> String {
        let state = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][usize::from(self.exit_code())];
        let mut parts: Vec<String> = self.mismatches.clone();
        parts.push(self.commitment.describe());
        parts.extend(self.unreachable.iter().cloned());
        format!("IN-TREE {state} {}: {}", self.domain, parts.join("; "))
    }
}

/// Checks `hints` against the live DNS at `now`.
pub async fn check(hints: &Hints, settings: &CheckSettings, now: DateTime<Utc>) -> Report {
    let mut report = Report {
        domain: hints.domain.clone(),
        mismatches: Vec::new(),
        commitment: Commitment::Unknown,
        unreachable: Vec::new(),
        parent_checked: false,
        child_checked: false,
    };
    let timeout = settings.timeout;
    let hinted: Vec<SocketAddr> = hints
        .addresses()
        .into_iter()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .collect();
    let hint_names: BTreeSet<String> = hints.nameservers.iter().map(|n| n.name.clone()).collect();

    // The domain's own servers: NS set from each hinted address.
    let mut answering: Vec<SocketAddr> = Vec::new();
    let mut child_ns: Option<BTreeSet<String>> = None;
    for server in &hinted {
        match dns::query(*server, &hints.domain, RecordType::NS, false, timeout).await {
            Ok(m) if dns::is_noerror(&m) && m.metadata.authoritative => {
                answering.push(*server);
                let names: BTreeSet<String> = dns::ns_names(m.answers.iter(), &hints.domain)
                    .into_iter()
                    .collect();
                if names != hint_names {
                    report.mismatches.push(format!(
                        "NS set at {server} is {}, the hints have {}",
                        list(&names),
                        list(&hint_names)
                    ));
                }
                child_ns.get_or_insert(names);
            }
            Ok(m) => report.mismatches.push(format!(
                "{server} does not answer for {} with authority ({}{})",
                hints.domain,
                m.metadata.response_code,
                if m.metadata.authoritative {
                    ""
                } else {
                    ", AA clear"
                }
            )),
            Err(e) => report.unreachable.push(e.to_string()),
        }
    }
    if let Some(names) = &child_ns {
        report.child_checked = true;
        if !names.iter().any(|n| is_at_or_below(n, &hints.domain)) {
            report.mismatches.push(format!(
                "the NS set of {} has no in-domain name server: {NO_IN_DOMAIN_REASON}",
                hints.domain
            ));
        }
        check_addresses(hints, &answering, timeout, &mut report).await;
        check_keys(hints, &answering, timeout, &mut report).await;
        report.commitment = commitment(hints, &answering, timeout, settings, now).await;
    }

    // The parent's delegation.
    match parent_servers(hints, settings).await {
        Ok(parents) => check_parent(hints, &parents, timeout, &mut report).await,
        Err(e) => report.unreachable.push(e),
    }
    report
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "empty".into()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

fn ip_list(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        "none".into()
    } else {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Asks the first of `servers` that answers.
async fn ask(
    servers: &[SocketAddr],
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Result<Message, QueryError> {
    let mut last = None;
    for server in servers {
        match dns::query(*server, name, rtype, false, timeout).await {
            Ok(m) => return Ok(m),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(QueryError {
        server: SocketAddr::from(([0, 0, 0, 0], 0)),
        name: name.to_string(),
        rtype,
        reason: "no server to ask".into(),
    }))
}

/// The addresses of each in-domain name server, following delegations inside the domain.
async fn check_addresses(
    hints: &Hints,
    servers: &[SocketAddr],
    timeout: Duration,
    report: &mut Report,
) {
    for ns in hints.in_domain_nameservers() {
        match resolve_inside(&ns.name, &hints.domain, servers, timeout, 0).await {
            Ok(mut live) => {
                let mut hinted = ns.addresses.clone();
                hinted.sort();
                live.sort();
                if live != hinted {
                    report.mismatches.push(format!(
                        "{} has addresses {}, the hints have {}",
                        ns.name,
                        ip_list(&live),
                        ip_list(&hinted)
                    ));
                }
            }
            Err(Inside::Mismatch(m)) => report.mismatches.push(m),
            Err(Inside::Unreachable(e)) => report.unreachable.push(e),
        }
    }
}

enum Inside {
    Mismatch(String),
    Unreachable(String),
}

/// The A and AAAA addresses of `name`, asked of `servers` (authoritative for `zone`),
/// following referrals to zones below `zone`, each of which must have an in-domain name
/// server with glue.
async fn resolve_inside(
    name: &str,
    zone: &str,
    servers: &[SocketAddr],
    timeout: Duration,
    depth: usize,
) -> Result<Vec<IpAddr>, Inside> {
    let mut out = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        let m = ask(servers, name, rtype, timeout)
            .await
            .map_err(|e| Inside::Unreachable(e.to_string()))?;
        if m.metadata.authoritative {
            out.extend(dns::addresses(m.answers.iter(), name));
            continue;
        }
        // A referral to a zone cut between `zone` and `name`.
        let Some(cut) = m
            .authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::NS)
            .map(dns::owner)
            .find(|owner| {
                owner != zone && is_at_or_below(owner, zone) && is_at_or_below(name, owner)
            })
        else {
            return Err(Inside::Mismatch(format!(
                "{name}: {} answered without authority and without a referral ({})",
                zone, m.metadata.response_code
            )));
        };
        let names = dns::ns_names(m.authorities.iter(), &cut);
        let inside: Vec<&String> = names.iter().filter(|n| is_at_or_below(n, &cut)).collect();
        if inside.is_empty() {
            return Err(Inside::Mismatch(format!(
                "name server {name} is in the delegated zone {cut}, whose name servers ({}) are all outside it: {NO_IN_DOMAIN_REASON} (§2.2: the requirement is recursive)",
                names.join(" ")
            )));
        }
        if depth >= MAX_DELEGATION_DEPTH {
            return Err(Inside::Mismatch(format!(
                "{name}: more than {MAX_DELEGATION_DEPTH} delegations deep inside the domain"
            )));
        }
        let mut below: Vec<SocketAddr> = Vec::new();
        for ns in &inside {
            for ip in dns::addresses(m.additionals.iter(), ns) {
                below.push(SocketAddr::new(ip, DNS_PORT));
            }
        }
        if below.is_empty() {
            return Err(Inside::Mismatch(format!(
                "the delegation of {cut} has no glue for its in-domain name servers"
            )));
        }
        return Box::pin(resolve_inside(name, &cut, &below, timeout, depth + 1)).await;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The domain's DNSKEY set against the trust anchors.
async fn check_keys(hints: &Hints, servers: &[SocketAddr], timeout: Duration, report: &mut Report) {
    let m = match ask(servers, &hints.domain, RecordType::DNSKEY, timeout).await {
        Ok(m) => m,
        Err(e) => {
            report.unreachable.push(e.to_string());
            return;
        }
    };
    let keys: Vec<DnskeyData> = dns::rdatas(m.answers.iter(), &hints.domain, RecordType::DNSKEY)
        .iter()
        .filter_map(|rdata| DnskeyData::from_rdata(rdata))
        .collect();
    if keys.is_empty() {
        report.mismatches.push(format!(
            "{} publishes no DNSKEY: the trust anchor cannot validate it",
            hints.domain
        ));
        return;
    }
    let designated = hints
        .trust_anchors
        .iter()
        .any(|anchor| keys.iter().any(|key| anchor.designates(&hints.domain, key)));
    if !designated {
        let anchors: Vec<String> = hints
            .trust_anchors
            .iter()
            .map(TrustAnchor::describe)
            .collect();
        let tags: Vec<String> = keys.iter().map(|k| k.key_tag().to_string()).collect();
        report.mismatches.push(format!(
            "no DNSKEY of {} (key tags {}) matches the trust anchor ({})",
            hints.domain,
            tags.join(" "),
            anchors.join(", ")
        ));
    }
}

/// The `_in-tree.<domain>` TXT commitment.
async fn commitment(
    hints: &Hints,
    servers: &[SocketAddr],
    timeout: Duration,
    settings: &CheckSettings,
    now: DateTime<Utc>,
) -> Commitment {
    let owner = format!("_in-tree.{}", hints.domain);
    let Ok(m) = ask(servers, &owner, RecordType::TXT, timeout).await else {
        return Commitment::Unknown;
    };
    let texts = dns::txt_texts(m.answers.iter(), &owner);
    if texts.is_empty() {
        return Commitment::Missing;
    }
    let latest = texts
        .iter()
        .filter_map(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
        .max();
    judge_commitment(latest, &texts, settings.commitment_period, now)
}

/// The commitment given its latest time, the TXT texts, the period and now.
pub fn judge_commitment(
    latest: Option<DateTime<Utc>>,
    texts: &[String],
    period: Duration,
    now: DateTime<Utc>,
) -> Commitment {
    let Some(expiry) = latest else {
        let shown: String = texts
            .first()
            .map(|t| t.chars().take(80).collect())
            .unwrap_or_default();
        return Commitment::Invalid(shown);
    };
    let period = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
    if expiry <= now {
        Commitment::Expired(expiry)
    } else if now
        .checked_add_signed(period)
        .is_none_or(|limit| expiry <= limit)
    {
        Commitment::Expiring(expiry)
    } else {
        Commitment::Valid(expiry)
    }
}

/// The parent zone's servers: given, or found through the resolver.
async fn parent_servers(
    hints: &Hints,
    settings: &CheckSettings,
) -> Result<Vec<SocketAddr>, String> {
    if let Some(parent) = &settings.parent {
        return Ok(parent.clone());
    }
    let resolver = match settings.resolver {
        Some(r) => r,
        None => system_resolver()?,
    };
    let timeout = settings.timeout;
    let parent_name = match hints.domain.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest.to_string(),
        _ => ".".to_string(),
    };
    // The SOA walk: the zone the parent name is in.
    let mut current = parent_name;
    let mut zone = None;
    for _ in 0..MAX_WALK {
        let m = dns::query(resolver, &current, RecordType::SOA, true, timeout)
            .await
            .map_err(|e| format!("finding the parent zone: {e}"))?;
        let owner = m
            .answers
            .iter()
            .chain(m.authorities.iter())
            .find(|r| r.record_type() == RecordType::SOA)
            .map(dns::owner);
        if let Some(owner) = owner {
            zone = Some(owner);
            break;
        }
        if current == "." {
            break;
        }
        current = match current.split_once('.') {
            Some((_, rest)) if !rest.is_empty() => rest.to_string(),
            _ => ".".to_string(),
        };
    }
    let zone = zone.ok_or_else(|| format!("no SOA found above {}", hints.domain))?;
    let m = dns::query(resolver, &zone, RecordType::NS, true, timeout)
        .await
        .map_err(|e| format!("finding the parent's servers: {e}"))?;
    let mut out = Vec::new();
    for ns in dns::ns_names(m.answers.iter(), &zone)
        .iter()
        .take(MAX_PARENT_SERVERS)
    {
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Ok(m) = dns::query(resolver, ns, rtype, true, timeout).await {
                for ip in dns::addresses(m.answers.iter(), ns) {
                    out.push(SocketAddr::new(ip, DNS_PORT));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no address found for the servers of the parent zone {zone}"
        ));
    }
    Ok(out)
}

/// The first `nameserver` of `/etc/resolv.conf`.
pub fn system_resolver() -> Result<SocketAddr, String> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| {
        format!("cannot read /etc/resolv.conf ({e}); give the parent's servers or a resolver")
    })?;
    conf.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .ok_or_else(|| {
            "no nameserver in /etc/resolv.conf; give the parent's servers or a resolver".into()
        })
}

/// The parent's delegation: NS set, glue, DS set.
async fn check_parent(
    hints: &Hints,
    parents: &[SocketAddr],
    timeout: Duration,
    report: &mut Report,
) {
    let hint_names: BTreeSet<String> = hints.nameservers.iter().map(|n| n.name.clone()).collect();
    let mut compared = false;
    for parent in parents.iter().take(MAX_PARENT_SERVERS) {
        let m = match dns::query(*parent, &hints.domain, RecordType::NS, false, timeout).await {
            Ok(m) => m,
            Err(e) => {
                report.unreachable.push(format!("parent: {e}"));
                continue;
            }
        };
        compared = true;
        // A referral carries the NS set in the authority section; a parent that also
        // serves the child answers it.
        let mut names: BTreeSet<String> = dns::ns_names(m.authorities.iter(), &hints.domain)
            .into_iter()
            .collect();
        if names.is_empty() {
            names = dns::ns_names(m.answers.iter(), &hints.domain)
                .into_iter()
                .collect();
        }
        if names.is_empty() {
            report.mismatches.push(format!(
                "the parent ({parent}) has no delegation for {} ({})",
                hints.domain, m.metadata.response_code
            ));
            continue;
        }
        if names != hint_names {
            report.mismatches.push(format!(
                "the parent's delegation ({parent}) has NS {}, the hints have {}",
                list(&names),
                list(&hint_names)
            ));
        }
        for ns in hints.in_domain_nameservers() {
            if !names.contains(&ns.name) {
                continue;
            }
            let glue = dns::addresses(m.additionals.iter(), &ns.name);
            let mut hinted = ns.addresses.clone();
            hinted.sort();
            if !glue.is_empty() && glue != hinted {
                report.mismatches.push(format!(
                    "the parent's glue ({parent}) for {} is {}, the hints have {}",
                    ns.name,
                    ip_list(&glue),
                    ip_list(&hinted)
                ));
            }
        }
        check_parent_ds(hints, *parent, timeout, report).await;
        break;
    }
    report.parent_checked = compared;
}

async fn check_parent_ds(
    hints: &Hints,
    parent: SocketAddr,
    timeout: Duration,
    report: &mut Report,
) {
    let m = match dns::query(parent, &hints.domain, RecordType::DS, false, timeout).await {
        Ok(m) => m,
        Err(e) => {
            report.unreachable.push(format!("parent: {e}"));
            return;
        }
    };
    let ds_set: Vec<DsData> = dns::rdatas(m.answers.iter(), &hints.domain, RecordType::DS)
        .iter()
        .filter_map(|r| DsData::from_rdata(r))
        .collect();
    if ds_set.is_empty() {
        // An unsigned delegation: the trust anchor stands alone (§2.1).
        return;
    }
    let matched = ds_set.iter().any(|ds| {
        hints.trust_anchors.iter().any(|anchor| match anchor {
            TrustAnchor::Ds(own) => own == ds,
            TrustAnchor::Dnskey(key) => key.matches(&hints.domain, ds),
        })
    });
    if !matched {
        let parent_ds: Vec<String> = ds_set
            .iter()
            .map(|ds| format!("DS {} {} {}", ds.key_tag, ds.algorithm, ds.digest_type))
            .collect();
        let anchors: Vec<String> = hints
            .trust_anchors
            .iter()
            .map(TrustAnchor::describe)
            .collect();
        report.mismatches.push(format!(
            "the parent's DS set ({parent}: {}) does not match the trust anchor ({})",
            parent_ds.join(", "),
            anchors.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn commitment_is_judged_against_the_period() {
        let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let day = Duration::from_secs(86400);
        let at = |d: u32| Some(Utc.with_ymd_and_hms(2026, 11, d, 0, 0, 0).unwrap());
        assert!(matches!(
            judge_commitment(at(20), &[], day * 30, now),
            Commitment::Expiring(_)
        ));
        assert!(matches!(
            judge_commitment(at(20), &[], day * 10, now),
            Commitment::Valid(_)
        ));
        assert!(matches!(
            judge_commitment(at(1), &[], day, now),
            Commitment::Expired(_)
        ));
        let texts = vec!["next tuesday".to_string()];
        assert_eq!(
            judge_commitment(None, &texts, day, now),
            Commitment::Invalid("next tuesday".into())
        );
        assert!(Commitment::Missing.is_expiring());
        assert!(!Commitment::Unknown.is_expiring());
        assert_eq!(
            Commitment::Valid(at(20).unwrap()).expires_at(),
            "2026-11-20T00:00:00Z"
        );
    }

    #[test]
    fn exit_codes_follow_the_monitoring_convention() {
        let t = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let mut report = Report {
            domain: "example.test.".into(),
            mismatches: vec![],
            commitment: Commitment::Valid(t),
            unreachable: vec![],
            parent_checked: true,
            child_checked: true,
        };
        assert_eq!(report.exit_code(), 0);
        report.commitment = Commitment::Expiring(t);
        assert_eq!(report.exit_code(), 1);
        report.parent_checked = false;
        assert_eq!(report.exit_code(), 3);
        report.mismatches.push("x".into());
        assert_eq!(report.exit_code(), 2);
        assert!(
            report
                .summary()
                .starts_with("IN-TREE CRITICAL example.test.: x;")
        );
    }
}
