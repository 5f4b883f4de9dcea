//! `[[anycast]]` policies and the `[[driver]]` tables they name.
//!
//! ```toml
//! [[driver]]
//! type = "bird"
//! socket = "/run/bird/bird.ctl"
//!
//! [[anycast]]
//! name = "dns"
//! prefixes = ["192.0.2.53/32", "2001:db8::53/128"]
//! announce-when = "server-running(knot) and all-zones-ready(knot)"
//! prepend-when = "query-rate-high(knot)"
//! prepend = 3
//! hold-down = "5s"
//! on-shutdown = "withdraw"
//! drain-grace = "5s"
//! driver = "bird"
//! ```
//!
//! Checked here: policy names unique and usable in BGP daemon configs, the expressions
//! parse and name configured servers (errors point inside the TOML string), `prepend` and
//! `prepend-when` come together, every policy names a configured driver (or there is
//! exactly one), driver names are unique.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Errors;
use super::document::Entry;
use super::file::duration;
use super::notify_in::AddressPrefix;
use super::validate::{KnownServers, policy};
use crate::anycast::Dampening;
use crate::engine::policy::Policy;

/// Most AS-path prepends a policy may ask for.
pub const MAX_PREPEND: u8 = 16;

/// One `[[anycast]]` policy, validated.
#[derive(Debug, Clone)]
pub struct AnycastConfig {
    /// `[a-z0-9_-]`, unique; it keys the announced state in the journal.
    pub name: String,
    /// Never empty.
    pub prefixes: Vec<AddressPrefix>,
    pub announce_when: Policy,
    /// While this holds (and the prefixes are announced), the AS path is prepended
    /// `prepend` times.
    pub prepend_when: Option<Policy>,
    pub prepend: u8,
    /// Minimum time between two changes of what is announced; see `crate::anycast`.
    pub hold_down: Duration,
    pub on_shutdown: OnShutdown,
    /// How long `dns-oops drain` waits after the daemon has withdrawn the routes.
    pub drain_grace: Duration,
    /// Route flap dampening; `None`: off (the default).
    pub dampening: Option<Dampening>,
    /// The name of a [`DriverConfig`].
    pub driver: String,
    /// What the driver calls this policy's routes: for BIRD, the `protocol static`s
    /// switched on and off together (one per address family). Default `["oops_<name>"]`
    /// (`-` becomes `_`). Never empty.
    pub protocols: Vec<String>,
    /// For BIRD, the static protocols used instead of `protocols` while prepending; default
    /// each of `protocols` with `_prepend` appended.
    pub prepend_protocols: Vec<String>,
}

/// What happens to a policy's routes when dns-oops stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnShutdown {
    /// Withdraw them: a node without its controller is not announced (the default).
    #[default]
    Withdraw,
    /// Leave them as they are (for restarts of dns-oops itself).
    Keep,
}

/// A `[[driver]]`, by its `type`.
#[derive(Debug, Clone)]
pub enum DriverConfig {
    Bird(BirdDriverConfig),
    Exabgp(ExabgpDriverConfig),
    Gobgp(GobgpDriverConfig),
    Frr(FrrDriverConfig),
}

impl DriverConfig {
    /// Unique among the drivers; default: the `type`.
    pub fn name(&self) -> &str {
        match self {
            DriverConfig::Bird(bird) => &bird.name,
            DriverConfig::Exabgp(exabgp) => &exabgp.name,
            DriverConfig::Gobgp(gobgp) => &gobgp.name,
            DriverConfig::Frr(frr) => &frr.name,
        }
    }
}

/// `type = "bird"`: BIRD 2 or 3 through its control socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BirdDriverConfig {
    #[serde(default = "bird_name")]
    pub name: String,
    /// BIRD's control socket (`bird -s`); default `/run/bird/bird.ctl`.
    #[serde(default = "bird_socket")]
    pub socket: PathBuf,
    /// How long one command may take before the connection is given up and retried.
    #[serde(default = "bird_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// `type = "exabgp"`: dns-oops runs as an ExaBGP API `process` (ExaBGP starts it) and
/// speaks ExaBGP's text API on its stdout, reading the `done`/`error` acks on its stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExabgpDriverConfig {
    #[serde(default = "exabgp_name")]
    pub name: String,
    /// `next-hop` of the announcements: `"self"` (the default) or an address.
    #[serde(default = "exabgp_next_hop")]
    pub next_hop: String,
    /// ExaBGP's `local-as`: prepending repeats it in the AS path. Needed by policies with
    /// `prepend`.
    #[serde(default)]
    pub local_as: Option<u32>,
    /// How long ExaBGP may take to ack one command before it is taken as unreachable.
    #[serde(default = "bird_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// `type = "gobgp"`: gobgpd 3.x through its gRPC API (`apipb.GobgpApi`, plaintext).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GobgpDriverConfig {
    #[serde(default = "gobgp_name")]
    pub name: String,
    /// gobgpd's `--api-hosts`, as `host:port`; default `127.0.0.1:50051`.
    #[serde(default = "gobgp_api")]
    pub api: String,
    /// Next hop of the IPv4 paths; gobgpd replaces it with its own address towards eBGP
    /// peers. Default `0.0.0.0`.
    #[serde(default = "gobgp_next_hop_ipv4")]
    pub next_hop_ipv4: std::net::Ipv4Addr,
    /// Next hop of the IPv6 paths (in MP_REACH_NLRI). Default `::`.
    #[serde(default = "gobgp_next_hop_ipv6")]
    pub next_hop_ipv6: std::net::Ipv6Addr,
    /// MULTI_EXIT_DISC of every path; default none.
    #[serde(default)]
    pub med: Option<u32>,
    /// COMMUNITIES of every path, `"asn:value"`; default none.
    #[serde(default, deserialize_with = "communities")]
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITIES of every path, `"global:local1:local2"`; default none.
    #[serde(default, deserialize_with = "large_communities")]
    pub large_communities: Vec<[u32; 3]>,
    /// How long one gRPC call may take before gobgpd is taken as unreachable.
    #[serde(default = "bird_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// `type = "frr"`: FRR's bgpd through `vtysh`, with `network` statements under
/// `router bgp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FrrDriverConfig {
    #[serde(default = "frr_name")]
    pub name: String,
    /// The `vtysh` program; default `/usr/bin/vtysh`.
    #[serde(default = "frr_vtysh")]
    pub vtysh: PathBuf,
    /// The directory of the daemons' vty sockets (`vtysh --vty_socket`); default FRR's own,
    /// `/var/run/frr`. dns-oops keeps a connection to `bgpd.vty` there to notice restarts.
    #[serde(default)]
    pub vty_socket: Option<PathBuf>,
    /// The AS of `router bgp <asn>`; default: asked from bgpd.
    #[serde(default)]
    pub asn: Option<u32>,
    /// How long one `vtysh` run may take.
    #[serde(default = "frr_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl FrrDriverConfig {
    /// The vty socket directory in effect.
    pub fn vty_dir(&self) -> PathBuf {
        self.vty_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/run/frr"))
    }
}

fn gobgp_name() -> String {
    "gobgp".into()
}

fn gobgp_api() -> String {
    "127.0.0.1:50051".into()
}

fn gobgp_next_hop_ipv4() -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::UNSPECIFIED
}

fn gobgp_next_hop_ipv6() -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::UNSPECIFIED
}

fn frr_name() -> String {
    "frr".into()
}

fn frr_vtysh() -> PathBuf {
    PathBuf::from("/usr/bin/vtysh")
}

fn frr_timeout() -> Duration {
    Duration::from_secs(5)
}

/// One 16-bit number of a community.
fn community_part(text: &str, whole: &str) -> Result<u32, String> {
    text.parse::<u16>()
        .map(u32::from)
        .map_err(|_| format!("community `{whole}`: `{text}` is not a number from 0 to 65535"))
}

/// `["65000:53", …]` as `(asn << 16) + value`.
fn communities<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    let written = Vec::<String>::deserialize(d)?;
    written
        .iter()
        .map(|c| {
            let (asn, value) = c.split_once(':').ok_or_else(|| {
                format!("community `{c}` must be written `asn:value`, e.g. \"65000:53\"")
            })?;
            Ok((community_part(asn, c)? << 16) | community_part(value, c)?)
        })
        .collect::<Result<_, String>>()
        .map_err(serde::de::Error::custom)
}

/// `["65000:0:1", …]`.
fn large_communities<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<[u32; 3]>, D::Error> {
    let written = Vec::<String>::deserialize(d)?;
    written
        .iter()
        .map(|c| {
            let parts: Vec<&str> = c.split(':').collect();
            let numbers: Option<Vec<u32>> = parts.iter().map(|p| p.parse().ok()).collect();
            match numbers.as_deref() {
                Some([a, b, c]) => Ok([*a, *b, *c]),
                _ => Err(format!(
                    "large community `{c}` must be three numbers from 0 to 4294967295, `global:local1:local2`"
                )),
            }
        })
        .collect::<Result<_, String>>()
        .map_err(serde::de::Error::custom)
}

fn exabgp_name() -> String {
    "exabgp".into()
}

fn exabgp_next_hop() -> String {
    "self".into()
}

fn bird_name() -> String {
    "bird".into()
}

fn bird_socket() -> PathBuf {
    PathBuf::from("/run/bird/bird.ctl")
}

fn bird_timeout() -> Duration {
    Duration::from_secs(2)
}

/// One `[[anycast]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AnycastFile {
    pub name: Spanned<String>,
    /// Parsed in validation, so that a bad prefix does not hide the policy's other errors.
    pub prefixes: Spanned<Vec<Spanned<String>>>,
    pub announce_when: Spanned<String>,
    #[serde(default)]
    pub prepend_when: Option<Spanned<String>>,
    #[serde(default)]
    pub prepend: Option<Spanned<u8>>,
    #[serde(default = "default_hold_down", deserialize_with = "duration")]
    pub hold_down: Duration,
    #[serde(default)]
    pub on_shutdown: OnShutdown,
    #[serde(default = "default_drain_grace", deserialize_with = "duration")]
    pub drain_grace: Duration,
    #[serde(default)]
    pub dampening: Option<Spanned<DampeningFile>>,
    #[serde(default)]
    pub driver: Option<Spanned<String>>,
    #[serde(default)]
    pub protocols: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub prepend_protocols: Option<Spanned<Vec<Spanned<String>>>>,
}

fn default_hold_down() -> Duration {
    Duration::from_secs(5)
}

fn default_drain_grace() -> Duration {
    Duration::from_secs(5)
}

/// `dampening = { … }` as written; every key has the default of RFC 2439's common
/// practice (half-life 15 min, suppress 2000 and reuse 750 per 1000 of a flap, 60 min
/// at most), so `dampening = {}` turns it on with those.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct DampeningFile {
    #[serde(default = "default_half_life", deserialize_with = "duration")]
    half_life: Duration,
    #[serde(default = "default_suppress")]
    suppress: f64,
    #[serde(default = "default_reuse")]
    reuse: f64,
    #[serde(default = "default_max_suppress", deserialize_with = "duration")]
    max_suppress: Duration,
}

fn default_half_life() -> Duration {
    Duration::from_secs(15 * 60)
}

fn default_suppress() -> f64 {
    2.0
}

fn default_reuse() -> f64 {
    0.75
}

fn default_max_suppress() -> Duration {
    Duration::from_secs(60 * 60)
}

/// Checks `dampening`: positive half-life, 0 < reuse < suppress, max-suppress ≥ half-life.
fn dampening(written: Option<Spanned<DampeningFile>>, errors: &mut Errors) -> Option<Dampening> {
    let written = written?;
    let span = written.span();
    let d = written.into_inner();
    let problem = if d.half_life.is_zero() {
        Some("`half-life` must be more than 0".to_string())
    } else if !(d.reuse.is_finite() && d.suppress.is_finite() && d.reuse > 0.0) {
        Some("`reuse` and `suppress` must be numbers above 0 (flaps; 1 per withdraw)".into())
    } else if d.reuse >= d.suppress {
        Some(format!(
            "`reuse` ({}) must be below `suppress` ({}): a route is suppressed at `suppress` flaps and reused below `reuse`",
            d.reuse, d.suppress
        ))
    } else if d.max_suppress < d.half_life {
        Some("`max-suppress` must be at least `half-life`".into())
    } else {
        None
    };
    if let Some(problem) = problem {
        errors.at(span, format!("dampening: {problem}"));
        return None;
    }
    Some(Dampening {
        half_life: d.half_life,
        suppress: d.suppress,
        reuse: d.reuse,
        max_suppress: d.max_suppress,
    })
}

/// Checks the drivers: names unique and not empty.
pub(super) fn validate_drivers(
    entries: Vec<Entry<DriverConfig>>,
    log_to_stdout: bool,
    errors: &mut Errors,
) -> Vec<DriverConfig> {
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut exabgp_seen = false;
    for Entry {
        value,
        positions: at,
    } in entries
    {
        let name = value.name().to_string();
        let span = at.value_span("name");
        if name.trim().is_empty() {
            errors.at(span.clone(), "a driver name cannot be empty".into());
        }
        match first_lines.get(&name) {
            Some(first) => errors.at(
                span,
                format!(
                    "duplicate driver name `{name}`: already used on line {first}; give each driver its own `name`"
                ),
            ),
            None => {
                first_lines.insert(name, errors.line_of(&at.span));
            }
        }
        let timeout = match &value {
            DriverConfig::Bird(bird) => bird.timeout,
            DriverConfig::Exabgp(exabgp) => exabgp.timeout,
            DriverConfig::Gobgp(gobgp) => gobgp.timeout,
            DriverConfig::Frr(frr) => frr.timeout,
        };
        if timeout.is_zero() {
            errors.at(
                at.value_span("timeout"),
                "`timeout` must be more than 0".into(),
            );
        }
        if let DriverConfig::Exabgp(exabgp) = &value {
            let hop = &exabgp.next_hop;
            if hop != "self" && hop.parse::<std::net::IpAddr>().is_err() {
                errors.at(
                    at.value_span("next-hop"),
                    format!("`next-hop` must be \"self\" or an IP address, not `{hop}`"),
                );
            }
            if exabgp_seen {
                errors.at(
                    at.span.clone(),
                    "only one `exabgp` driver: ExaBGP talks to dns-oops on its stdin and stdout"
                        .into(),
                );
            }
            exabgp_seen = true;
            if log_to_stdout {
                errors.at(
                    at.span.clone(),
                    "the exabgp driver speaks to ExaBGP on stdout, where a `log` channel without `path` writes: give that channel a `path`"
                        .into(),
                );
            }
        }
        out.push(value);
    }
    out
}

/// Checks the policies against the servers and drivers.
pub(super) fn validate_anycast(
    files: Vec<AnycastFile>,
    drivers: &[DriverConfig],
    known: &KnownServers,
    errors: &mut Errors,
) -> Vec<AnycastConfig> {
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for file in files {
        let name_span = file.name.span();
        let name = file.name.into_inner();
        if let Err(e) = check_policy_name(&name) {
            errors.at(name_span.clone(), e);
        }
        match first_lines.get(&name) {
            Some(first) => errors.at(
                name_span.clone(),
                format!("duplicate anycast policy `{name}`: already defined on line {first}"),
            ),
            None => {
                first_lines.insert(name.clone(), errors.line_of(&name_span));
            }
        }
        let mut prefixes: Vec<AddressPrefix> = Vec::new();
        for written in file.prefixes.get_ref() {
            match written.get_ref().parse::<AddressPrefix>() {
                Err(e) => errors.at(written.span(), e),
                Ok(prefix) if prefixes.contains(&prefix) => {
                    errors.at(written.span(), format!("prefix `{prefix}` is listed twice"))
                }
                Ok(prefix) => prefixes.push(prefix),
            }
        }
        if file.prefixes.get_ref().is_empty() {
            errors.at(
                file.prefixes.span(),
                "`prefixes` cannot be empty: list what this policy announces, e.g. [\"192.0.2.53/32\"]"
                    .into(),
            );
        }
        let announce_when = policy(Some(file.announce_when), "false".into(), known, errors);
        let prepend_when = file
            .prepend_when
            .map(|p| (p.span(), policy(Some(p), "false".into(), known, errors)));
        let prepend = match (prepend_when.as_ref(), file.prepend.as_ref()) {
            (Some((span, _)), None) => {
                errors.at(
                    span.clone(),
                    "`prepend-when` needs `prepend`, the number of times to prepend".into(),
                );
                0
            }
            (None, Some(count)) => {
                errors.at(
                    count.span(),
                    "`prepend` needs `prepend-when`, the policy that says when".into(),
                );
                0
            }
            (Some(_), Some(count)) if !(1..=MAX_PREPEND).contains(count.get_ref()) => {
                errors.at(
                    count.span(),
                    format!("`prepend` must be 1 to {MAX_PREPEND}"),
                );
                0
            }
            (Some(_), Some(count)) => *count.get_ref(),
            (None, None) => 0,
        };
        let driver = match file.driver {
            Some(written) => {
                if !drivers.iter().any(|d| d.name() == written.get_ref()) {
                    errors.at(
                        written.span(),
                        format!(
                            "unknown driver `{}`; {}",
                            written.get_ref(),
                            driver_list(drivers)
                        ),
                    );
                }
                written.into_inner()
            }
            None => match drivers {
                [only] => only.name().to_string(),
                _ => {
                    errors.at(
                        name_span.clone(),
                        format!(
                            "anycast policy `{name}` needs `driver`; {}",
                            driver_list(drivers)
                        ),
                    );
                    String::new()
                }
            },
        };
        if prepend > 0
            && let Some(DriverConfig::Exabgp(exabgp)) = drivers.iter().find(|d| d.name() == driver)
            && exabgp.local_as.is_none()
            && let Some(count) = file.prepend.as_ref()
        {
            errors.at(
                count.span(),
                format!(
                    "`prepend` through the exabgp driver `{driver}` needs its `local-as`, the AS to repeat"
                ),
            );
        }
        let protocols = protocol_names(
            file.protocols,
            vec![format!("oops_{}", name.replace('-', "_"))],
            errors,
        );
        let prepend_protocols = protocol_names(
            file.prepend_protocols,
            protocols.iter().map(|p| format!("{p}_prepend")).collect(),
            errors,
        );
        let dampening = dampening(file.dampening, errors);
        let (Some(announce_when), prepend_when) = (announce_when, prepend_when) else {
            continue;
        };
        let prepend_when = match prepend_when {
            Some((_, Some(policy))) => Some(policy),
            Some((_, None)) => continue,
            None => None,
        };
        out.push(AnycastConfig {
            name,
            prefixes,
            announce_when,
            prepend_when,
            prepend,
            hold_down: file.hold_down,
            on_shutdown: file.on_shutdown,
            drain_grace: file.drain_grace,
            dampening,
            driver,
            protocols,
            prepend_protocols,
        });
    }
    out
}

fn driver_list(drivers: &[DriverConfig]) -> String {
    if drivers.is_empty() {
        return "no [[driver]] is configured: add one, e.g. `type = \"bird\"`".into();
    }
    let names: Vec<String> = drivers.iter().map(|d| format!("`{}`", d.name())).collect();
    format!("configured drivers: {}", names.join(", "))
}

/// Policy names key journal rows and become parts of BGP daemon symbols.
fn check_policy_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "anycast policy name `{name}` must be 1–63 characters of a-z, 0-9, `-` and `_`"
        ))
    }
}

/// BIRD symbols: a letter or `_`, then letters, digits and `_`; at least one.
fn protocol_names(
    written: Option<Spanned<Vec<Spanned<String>>>>,
    default: Vec<String>,
    errors: &mut Errors,
) -> Vec<String> {
    let Some(written) = written else {
        return default;
    };
    if written.get_ref().is_empty() {
        errors.at(
            written.span(),
            "the list of protocols cannot be empty".into(),
        );
    }
    let mut names = Vec::new();
    for name in written.into_inner() {
        let mut chars = name.get_ref().chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.get_ref().len() <= 64;
        if !ok {
            errors.at(
                name.span(),
                format!(
                    "protocol name `{}` must be a BIRD symbol: a letter or `_`, then letters, digits and `_`",
                    name.get_ref()
                ),
            );
        }
        names.push(name.into_inner());
    }
    names
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{Config, ConfigProblem, line_column, parse};
    use super::*;

    const BASE: &str = r#"
[[server]]
name = "knot"
address = "127.0.0.1:5301"
zones = ["a.test."]

[[driver]]
type = "bird"
socket = "/tmp/bird.ctl"
"#;

    fn config(extra: &str) -> Config {
        parse(&format!("{BASE}{extra}"), Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("refused: {e}"))
    }

    fn problems(extra: &str) -> (String, Vec<ConfigProblem>) {
        let text = format!("{BASE}{extra}");
        match parse(&text, Path::new("t.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => (text, e.problems().to_vec()),
        }
    }

    /// The first problem is at `needle` (plus `skip` bytes) and contains `expected`.
    fn assert_problem(extra: &str, needle: &str, skip: usize, expected: &str) {
        let (text, problems) = problems(extra);
        let offset = text.find(needle).unwrap_or_else(|| panic!("no `{needle}`")) + skip;
        let (line, column) = line_column(&text, offset);
        let first = &problems[0];
        assert!(
            first.message.contains(expected),
            "expected `{expected}` in: {}",
            first.message
        );
        assert_eq!(
            (first.line, first.column),
            (line, column),
            "{}",
            first.message
        );
    }

    #[test]
    fn a_policy_gets_its_defaults() {
        let c = config(
            r#"
[[anycast]]
name = "dns-v4"
prefixes = ["192.0.2.53/32", "2001:db8::53/128", "198.51.100.7"]
announce-when = "server-running(knot) and all-zones-ready(knot)"
"#,
        );
        let DriverConfig::Bird(bird) = &c.drivers[0] else {
            panic!("not bird")
        };
        assert_eq!(bird.name, "bird");
        assert_eq!(bird.socket, Path::new("/tmp/bird.ctl"));
        assert_eq!(bird.timeout, Duration::from_secs(2));
        let p = &c.anycast[0];
        assert_eq!(p.name, "dns-v4");
        let prefixes: Vec<String> = p.prefixes.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            prefixes,
            ["192.0.2.53/32", "2001:db8::53/128", "198.51.100.7/32"]
        );
        assert_eq!(p.driver, "bird");
        assert_eq!(p.hold_down, Duration::from_secs(5));
        assert_eq!(p.on_shutdown, OnShutdown::Withdraw);
        assert_eq!(p.protocols, ["oops_dns_v4"]);
        assert_eq!(p.prepend_protocols, ["oops_dns_v4_prepend"]);
        assert!(p.prepend_when.is_none());
        assert_eq!(p.prepend, 0);
    }

    #[test]
    fn a_policy_with_everything_set() {
        let c = config(
            r#"
[[anycast]]
name = "dns"
prefixes = ["192.0.2.53/32", "2001:db8::53/128"]
announce-when = "server-running(knot)"
prepend-when = "query-rate-high(knot)"
prepend = 3
hold-down = "30s"
on-shutdown = "keep"
driver = "bird"
protocols = ["anycast4", "anycast6"]
prepend-protocols = ["anycast4_slow", "anycast6_slow"]
"#,
        );
        let p = &c.anycast[0];
        assert_eq!(p.prepend, 3);
        assert!(p.prepend_when.is_some());
        assert_eq!(p.hold_down, Duration::from_secs(30));
        assert_eq!(p.on_shutdown, OnShutdown::Keep);
        assert_eq!(p.protocols, ["anycast4", "anycast6"]);
        assert_eq!(p.prepend_protocols, ["anycast4_slow", "anycast6_slow"]);
    }

    #[test]
    fn policy_errors_point_into_the_expression() {
        let policy = |when: &str| {
            format!(
                "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"{when}\"\n"
            )
        };
        assert_problem(
            &policy("server-running(knot) and all-zones-redy(knot)"),
            "all-zones-redy",
            0,
            "unknown condition `all-zones-redy`",
        );
        assert_problem(
            &policy("server-running(nsd)"),
            "nsd)",
            0,
            "unknown server `nsd`",
        );
        assert_problem(
            &policy("server-running(knot) and"),
            "server-running(knot) and\"",
            24,
            "invalid policy",
        );
    }

    #[test]
    fn prefixes_are_checked_where_written() {
        assert_problem(
            "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\", \"192.0.2.0/33\"]\nannounce-when = \"true\"\n",
            "\"192.0.2.0/33\"",
            0,
            "invalid address prefix",
        );
        assert_problem(
            "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/24\"]\nannounce-when = \"true\"\n",
            "\"192.0.2.53/24\"",
            0,
            "bits set past its length",
        );
        assert_problem(
            "[[anycast]]\nname = \"dns\"\nprefixes = []\nannounce-when = \"true\"\n",
            "[]",
            0,
            "`prefixes` cannot be empty",
        );
        assert_problem(
            "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53\", \"192.0.2.53/32\"]\nannounce-when = \"true\"\n",
            "\"192.0.2.53/32\"",
            0,
            "listed twice",
        );
    }

    #[test]
    fn drivers_are_named_and_known() {
        assert_problem(
            "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\ndriver = \"bird2\"\n",
            "\"bird2\"",
            0,
            "unknown driver `bird2`; configured drivers: `bird`",
        );
        assert_problem(
            "[[driver]]\ntype = \"bird\"\nsocket = \"/x\"\n",
            "\n[[driver]]\ntype = \"bird\"\nsocket = \"/x\"",
            1,
            "duplicate driver name `bird`",
        );
        assert_problem(
            "[[driver]]\ntype = \"exabird\"\n",
            "\"exabird\"",
            0,
            "unknown type `exabird`; expected one of `bird`, `exabgp`",
        );
        assert_problem(
            "[[driver]]\ntype = \"bird\"\nname = \"b2\"\nsocke = \"/x\"\n",
            "socke =",
            0,
            "unknown field `socke`",
        );
    }

    #[test]
    fn exabgp_drivers_are_checked() {
        let exa = "[[driver]]\ntype = \"exabgp\"\n";
        let c = config(exa);
        let DriverConfig::Exabgp(e) = &c.drivers[1] else {
            panic!("not exabgp")
        };
        assert_eq!(
            (e.name.as_str(), e.next_hop.as_str(), e.local_as),
            ("exabgp", "self", None)
        );
        assert_eq!(e.timeout, Duration::from_secs(2));
        assert_problem(
            "[[driver]]\ntype = \"exabgp\"\nnext-hop = \"me\"\n",
            "\"me\"",
            0,
            "`next-hop` must be \"self\" or an IP address, not `me`",
        );
        assert_problem(
            &format!("{exa}[[driver]]\ntype = \"exabgp\"\nname = \"e2\"\n"),
            "[[driver]]\ntype = \"exabgp\"\nname",
            0,
            "only one `exabgp` driver",
        );
        assert_problem(
            &format!("[[channel]]\ntype = \"log\"\n{exa}"),
            "[[driver]]\ntype = \"exabgp\"",
            0,
            "give that channel a `path`",
        );
        assert_problem(
            &format!(
                "{exa}[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\nprepend-when = \"true\"\nprepend = 2\ndriver = \"exabgp\"\n"
            ),
            "prepend = 2",
            10,
            "needs its `local-as`",
        );
    }

    #[test]
    fn prepend_comes_with_prepend_when() {
        let base = "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\n";
        assert_problem(
            &format!("{base}prepend = 2\n"),
            "2\n",
            0,
            "`prepend` needs `prepend-when`",
        );
        assert_problem(
            &format!("{base}prepend-when = \"server-crashed(knot)\"\n"),
            "\"server-crashed(knot)\"",
            0,
            "`prepend-when` needs `prepend`",
        );
        assert_problem(
            &format!("{base}prepend-when = \"true\"\nprepend = 17\n"),
            "17",
            0,
            "`prepend` must be 1 to 16",
        );
        assert_problem(
            &format!("{base}on-shutdown = \"linger\"\n"),
            "\"linger\"",
            0,
            "unknown variant `linger`",
        );
    }

    #[test]
    fn names_are_checked() {
        assert_problem(
            "[[anycast]]\nname = \"DNS!\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\n",
            "\"DNS!\"",
            0,
            "anycast policy name `DNS!`",
        );
        assert_problem(
            "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\nprotocols = [\"ok\", \"no-dash\"]\n",
            "\"no-dash\"",
            0,
            "must be a BIRD symbol",
        );
        let twice = "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\n";
        let (text, problems) = problems(&format!("{twice}{twice}"));
        let second = text.rfind("\"dns\"").unwrap();
        assert_eq!(
            (problems[0].line, problems[0].column),
            line_column(&text, second)
        );
        assert!(
            problems[0]
                .message
                .contains("duplicate anycast policy `dns`")
        );
    }

    #[test]
    fn the_exabgp_example_parses() {
        let c = parse(
            include_str!("../../etc/examples/anycast-exabgp.toml"),
            Path::new("anycast-exabgp.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let DriverConfig::Exabgp(e) = &c.drivers[0] else {
            panic!("not exabgp")
        };
        assert_eq!(e.local_as, Some(65001));
        assert_eq!(c.anycast[0].prepend, 2);
        assert_eq!(c.anycast[0].driver, "exabgp");
    }

    #[test]
    fn the_shipped_examples_parse() {
        for (name, text) in [
            ("etc/dns-oops.toml", include_str!("../../etc/dns-oops.toml")),
            (
                "etc/examples/anycast-bird.toml",
                include_str!("../../etc/examples/anycast-bird.toml"),
            ),
        ] {
            let c = parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.anycast[0].protocols, ["oops_dns4", "oops_dns6"], "{name}");
            assert_eq!(c.anycast[0].prefixes.len(), 2, "{name}");
        }
        // The lab of the issue: knotd of knot-probe.toml, BIRD's socket in the lab directory.
        let lab = parse(
            include_str!("../../etc/examples/anycast-bird.toml"),
            Path::new("anycast-bird.toml"),
        )
        .unwrap();
        let DriverConfig::Bird(bird) = &lab.drivers[0] else {
            panic!("not bird")
        };
        assert_eq!(bird.socket, Path::new("/tmp/dns-oops-lab/bird.ctl"));
        assert!(
            lab.summary().ends_with(", 1 anycast policy (dns via bird)"),
            "{}",
            lab.summary()
        );
        assert_eq!(
            lab.anycast[0].announce_when.text(),
            "server-running(knot) and all-zones-ready(knot)"
        );
    }

    #[test]
    fn gobgp_and_frr_drivers_are_checked() {
        let c = config("[[driver]]\ntype = \"gobgp\"\n[[driver]]\ntype = \"frr\"\n");
        let DriverConfig::Gobgp(g) = &c.drivers[1] else {
            panic!("not gobgp")
        };
        assert_eq!(
            (g.name.as_str(), g.api.as_str()),
            ("gobgp", "127.0.0.1:50051")
        );
        assert_eq!(g.next_hop_ipv4.to_string(), "0.0.0.0");
        assert_eq!(g.next_hop_ipv6.to_string(), "::");
        assert!(g.communities.is_empty() && g.med.is_none());
        let DriverConfig::Frr(f) = &c.drivers[2] else {
            panic!("not frr")
        };
        assert_eq!(f.vtysh, Path::new("/usr/bin/vtysh"));
        assert_eq!(f.vty_dir(), Path::new("/var/run/frr"));
        assert_eq!((f.asn, f.timeout), (None, Duration::from_secs(5)));
        assert_problem(
            "[[driver]]\ntype = \"gobgp\"\ncommunities = [\"65002:70000\"]\n",
            "[\"65002:70000\"]",
            0,
            "community `65002:70000`: `70000` is not a number from 0 to 65535",
        );
        assert_problem(
            "[[driver]]\ntype = \"gobgp\"\nlarge-communities = [\"1:2\"]\n",
            "[\"1:2\"]",
            0,
            "large community `1:2` must be three numbers",
        );
        assert_problem(
            "[[driver]]\ntype = \"gobgp\"\nnext-hop-ipv4 = \"::1\"\n",
            "\"::1\"",
            0,
            "invalid IPv4 address",
        );
        assert_problem(
            "[[driver]]\ntype = \"frr\"\nvty_socket = \"/x\"\n",
            "vty_socket",
            0,
            "unknown field `vty_socket`",
        );
        for (name, text) in [
            (
                "anycast-gobgp.toml",
                include_str!("../../etc/examples/anycast-gobgp.toml"),
            ),
            (
                "anycast-frr.toml",
                include_str!("../../etc/examples/anycast-frr.toml"),
            ),
        ] {
            let c = parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.anycast[0].driver, c.drivers[0].name(), "{name}");
            assert_eq!(c.anycast[0].prefixes.len(), 2, "{name}");
        }
    }

    #[test]
    fn a_policy_without_driver_needs_exactly_one() {
        let text = r#"
[[server]]
name = "knot"
address = "127.0.0.1:5301"

[[anycast]]
name = "dns"
prefixes = ["192.0.2.53/32"]
announce-when = "true"
"#;
        let e = parse(text, Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("no [[driver]] is configured"), "{e}");
    }

    #[test]
    fn dampening_is_off_by_default_and_checked_where_written() {
        let on = |extra: &str| {
            format!(
                "[[anycast]]\nname = \"dns\"\nprefixes = [\"192.0.2.53/32\"]\nannounce-when = \"true\"\n{extra}\n"
            )
        };
        assert!(config(&on("")).anycast[0].dampening.is_none());
        assert_eq!(
            config(&on("drain-grace = \"1s\"")).anycast[0].drain_grace,
            Duration::from_secs(1)
        );
        let d = config(&on("dampening = {}")).anycast[0].dampening.unwrap();
        assert_eq!(d.half_life, Duration::from_secs(900));
        assert_eq!((d.suppress, d.reuse), (2.0, 0.75));
        assert_eq!(d.max_suppress, Duration::from_secs(3600));
        let d = config(&on(
            "dampening = { half-life = \"1m\", suppress = 3, reuse = 1.5 }",
        ))
        .anycast[0]
            .dampening
            .unwrap();
        assert_eq!(
            (d.half_life, d.suppress, d.reuse),
            (Duration::from_secs(60), 3.0, 1.5)
        );
        assert_problem(
            &on("dampening = { suppress = 1, reuse = 2 }"),
            "{ suppress",
            0,
            "`reuse` (2) must be below `suppress` (1)",
        );
        assert_problem(
            &on("dampening = { half-life = \"1h\", max-suppress = \"10m\" }"),
            "{ half-life",
            0,
            "`max-suppress` must be at least `half-life`",
        );
        let (_, problems) = problems(&on("dampening = { halflife = \"1m\" }"));
        assert!(
            problems[0].message.contains("halflife"),
            "{}",
            problems[0].message
        );
    }
}
