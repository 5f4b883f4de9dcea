//! The config model: what the file says ([`FileConfig`] and friends, straight from serde)
//! and what the daemon uses ([`Config`] and friends, validated and with defaults filled in).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::Errors;
use crate::condition::ConditionId;
use crate::engine::policy::Policy;
use crate::signal::Signal;

/// Default journal location.
pub const DEFAULT_JOURNAL: &str = "/var/lib/dns-oops/journal.sqlite";
/// Default HTTP API address: loopback only.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8054";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name: in every signal, and later in topics and DNS names.
    pub node: String,
    pub journal: JournalConfig,
    pub http: HttpConfig,
    pub servers: Vec<ServerConfig>,
    pub sources: Vec<SourceConfig>,
    pub channels: Vec<ChannelConfig>,
    pub check: CheckConfig,
    /// The file it came from.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub path: PathBuf,
    /// Signals older than this are pruned.
    pub retention: Duration,
    /// At most this many signals are kept.
    pub max_signals: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `None`: no HTTP API.
    pub listen: Option<SocketAddr>,
}

/// A watched DNS server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub address: SocketAddr,
    /// Lowercase, with a trailing dot.
    pub zones: Vec<String>,
    /// Minimum time a level condition stays in a state after a change.
    pub hold: Duration,
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Probe(ProbeConfig),
    Process(ProcessConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProbeConfig {
    pub server: String,
    #[serde(default = "defaults::interval", deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default = "defaults::timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default = "defaults::rise_fall")]
    pub rise: u32,
    #[serde(default = "defaults::rise_fall")]
    pub fall: u32,
    /// Default: the server's zones.
    #[serde(default, deserialize_with = "zone_list")]
    pub zones: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProcessConfig {
    pub server: String,
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    #[serde(default)]
    pub pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum ChannelConfig {
    Log(LogChannelConfig),
    Exec(ExecChannelConfig),
}

impl ChannelConfig {
    /// The channel's name: it keys the channel's delivery cursor in the journal.
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Log(c) => &c.name,
            ChannelConfig::Exec(c) => &c.name,
        }
    }

    fn name_mut(&mut self) -> &mut String {
        match self {
            ChannelConfig::Log(c) => &mut c.name,
            ChannelConfig::Exec(c) => &mut c.name,
        }
    }

    fn filter(&self) -> &SignalFilter {
        match self {
            ChannelConfig::Log(c) => &c.filter,
            ChannelConfig::Exec(c) => &c.filter,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(from = "LogChannelFile")]
pub struct LogChannelConfig {
    pub name: String,
    /// `None` or `-`: stdout.
    pub path: Option<PathBuf>,
    pub filter: SignalFilter,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LogChannelFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    conditions: Vec<ConditionId>,
    #[serde(default)]
    servers: Vec<String>,
}

impl From<LogChannelFile> for LogChannelConfig {
    fn from(f: LogChannelFile) -> Self {
        LogChannelConfig {
            name: f.name,
            path: f.path,
            filter: SignalFilter {
                conditions: f.conditions,
                servers: f.servers,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(from = "ExecChannelFile")]
pub struct ExecChannelConfig {
    pub name: String,
    /// The argv; the first element is the program.
    pub command: Vec<String>,
    pub timeout: Duration,
    pub filter: SignalFilter,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ExecChannelFile {
    #[serde(default)]
    name: String,
    command: Vec<String>,
    #[serde(default = "defaults::exec_timeout", deserialize_with = "duration")]
    timeout: Duration,
    #[serde(default)]
    conditions: Vec<ConditionId>,
    #[serde(default)]
    servers: Vec<String>,
}

impl From<ExecChannelFile> for ExecChannelConfig {
    fn from(f: ExecChannelFile) -> Self {
        ExecChannelConfig {
            name: f.name,
            command: f.command,
            timeout: f.timeout,
            filter: SignalFilter {
                conditions: f.conditions,
                servers: f.servers,
            },
        }
    }
}

/// Which signals a channel carries (`conditions = [...]`, `servers = [...]` in the
/// channel's table); empty lists mean all.
#[derive(Debug, Clone, Default)]
pub struct SignalFilter {
    pub conditions: Vec<ConditionId>,
    pub servers: Vec<String>,
}

impl SignalFilter {
    pub fn matches(&self, s: &Signal) -> bool {
        (self.conditions.is_empty() || self.conditions.contains(&s.condition))
            && (self.servers.is_empty() || self.servers.contains(&s.server))
    }
}

/// `[check]`: what `dns-oops check` calls critical and warning.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub critical_when: Policy,
    pub warning_when: Policy,
}

mod defaults {
    use std::time::Duration;

    pub fn interval() -> Duration {
        Duration::from_secs(5)
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(1)
    }
    pub fn rise_fall() -> u32 {
        2
    }
    pub fn exec_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn retention() -> Duration {
        Duration::from_secs(30 * 86400)
    }
}

/// The file's top level, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct FileConfig {
    #[serde(default)]
    node: Option<Spanned<String>>,
    #[serde(default)]
    journal: JournalFile,
    #[serde(default)]
    http: HttpFile,
    #[serde(default)]
    server: Vec<ServerFile>,
    #[serde(default)]
    check: CheckFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct JournalFile {
    #[serde(default = "default_journal_path")]
    path: PathBuf,
    #[serde(default = "defaults::retention", deserialize_with = "duration")]
    retention: Duration,
    #[serde(default)]
    max_signals: Option<u64>,
}

fn default_journal_path() -> PathBuf {
    PathBuf::from(DEFAULT_JOURNAL)
}

impl Default for JournalFile {
    fn default() -> Self {
        JournalFile {
            path: default_journal_path(),
            retention: defaults::retention(),
            max_signals: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HttpFile {
    /// An address, or `"off"`.
    #[serde(default)]
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServerFile {
    name: Spanned<String>,
    #[serde(deserialize_with = "address")]
    address: SocketAddr,
    #[serde(default)]
    zones: Vec<Spanned<String>>,
    #[serde(default, deserialize_with = "duration")]
    hold: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CheckFile {
    #[serde(default)]
    critical_when: Option<Spanned<String>>,
    #[serde(default)]
    warning_when: Option<Spanned<String>>,
}

/// A duration written like `500ms`, `5s`, `1m 30s`, `30d`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration `{text}` ({e}); write e.g. \"500ms\", \"5s\", \"1m\", \"30d\""
        ))
    })
}

/// `127.0.0.1:5301`, `[::1]:5301`, or Knot's `127.0.0.1@5301`.
fn address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_address(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid address `{text}`; write an IP address and port, e.g. \"127.0.0.1:53\", \"[::1]:53\" or \"127.0.0.1@53\""
        ))
    })
}

pub(crate) fn parse_address(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (ip, port) = text.rsplit_once('@')?;
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

fn zone_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let zones = Vec::<String>::deserialize(d)?;
    zones
        .iter()
        .map(|z| normalize_zone(z).map_err(serde::de::Error::custom))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Lowercase with a trailing dot; refuses what is not a domain name.
pub fn normalize_zone(zone: &str) -> Result<String, String> {
    let mut name = zone.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err("a zone name cannot be empty (the root zone is \".\")".into());
    }
    if !name.ends_with('.') {
        name.push('.');
    }
    if name == "." {
        return Ok(name);
    }
    if name.len() > 254 {
        return Err(format!("zone `{zone}` is longer than 255 octets"));
    }
    for label in name[..name.len() - 1].split('.') {
        if label.is_empty() {
            return Err(format!("zone `{zone}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("zone `{zone}` has a label longer than 63 octets"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(format!(
                "zone `{zone}` contains `{c}`; write names in ASCII (IDNs as xn--)"
            ));
        }
    }
    Ok(name)
}

/// Server and node names end up in DNS labels and MQTT topics: `[a-z0-9-]`, 1–63.
fn check_label(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} `{name}` must be 1–63 characters of a-z, 0-9 and `-` (not at the ends): it is used in DNS names and topics"
        ))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().split('.').next().map(|s| s.to_ascii_lowercase()))
        .filter(|h| check_label("node", h).is_ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Validates what the file says and fills in defaults.
pub(crate) fn build(
    file: FileConfig,
    sources: Vec<Spanned<SourceConfig>>,
    channels: Vec<Spanned<ChannelConfig>>,
    path: PathBuf,
    errors: &mut Errors,
) -> Option<Config> {
    let node = match file.node {
        Some(node) => {
            if let Err(e) = check_label("node", node.get_ref()) {
                errors.at(node.span(), e);
            }
            node.into_inner()
        }
        None => hostname(),
    };

    let http = HttpConfig {
        listen: match file.http.listen {
            None => Some(DEFAULT_HTTP.parse().expect("valid default")),
            Some(listen) if listen.get_ref() == "off" => None,
            Some(listen) => match parse_address(listen.get_ref()) {
                Some(addr) => Some(addr),
                None => {
                    errors.at(
                        listen.span(),
                        format!("invalid listen address `{}`; write e.g. \"127.0.0.1:8054\", or \"off\"", listen.get_ref()),
                    );
                    None
                }
            },
        },
    };

    let mut servers = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for server in file.server {
        let name = server.name.get_ref().clone();
        if let Err(e) = check_label("server name", &name) {
            errors.at(server.name.span(), e);
        }
        let (line, _) = super::line_column(errors.text, server.name.span().start);
        if let Some(first) = first_line.get(&name) {
            errors.at(
                server.name.span(),
                format!("duplicate server name `{name}`: already defined on line {first}"),
            );
        } else {
            first_line.insert(name.clone(), line);
        }
        let mut zones: Vec<String> = Vec::new();
        for zone in &server.zones {
            match normalize_zone(zone.get_ref()) {
                Ok(z) if zones.contains(&z) => errors.at(
                    zone.span(),
                    format!("zone `{z}` is listed twice for server `{name}`"),
                ),
                Ok(z) => zones.push(z),
                Err(e) => errors.at(zone.span(), e),
            }
        }
        servers.push(ServerConfig {
            name,
            address: server.address,
            zones,
            hold: server.hold,
        });
    }
    if servers.is_empty() {
        errors.at(
            0..0,
            "no [[server]] configured: add one with `name`, `address` and `zones`".into(),
        );
    }
    let known: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let known_list = known
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let check_server = |errors: &mut Errors, span: std::ops::Range<usize>, name: &str| {
        if !known.contains(&name) {
            errors.at(
                span,
                format!("unknown server `{name}`; configured servers: {known_list}"),
            );
        }
    };

    let mut source_list = Vec::new();
    for source in sources {
        let span = source.span();
        let source = source.into_inner();
        match &source {
            SourceConfig::Probe(p) => {
                check_server(errors, span.clone(), &p.server);
                if p.interval.is_zero() || p.timeout.is_zero() {
                    errors.at(
                        span.clone(),
                        "probe `interval` and `timeout` must be more than 0".into(),
                    );
                }
                if p.rise == 0 || p.fall == 0 {
                    errors.at(
                        span.clone(),
                        "probe `rise` and `fall` must be at least 1".into(),
                    );
                }
            }
            SourceConfig::Process(p) => {
                check_server(errors, span.clone(), &p.server);
                if p.pid_file.is_some() == p.pid.is_some() {
                    errors.at(
                        span.clone(),
                        "a process source needs exactly one of `pid-file` and `pid`".into(),
                    );
                }
            }
        }
        source_list.push(source);
    }

    let mut channel_list: Vec<ChannelConfig> = Vec::new();
    for (index, channel) in channels.into_iter().enumerate() {
        let span = channel.span();
        let mut channel = channel.into_inner();
        if channel.name().is_empty() {
            let kind = match channel {
                ChannelConfig::Log(_) => "log",
                ChannelConfig::Exec(_) => "exec",
            };
            *channel.name_mut() = format!("{kind}-{}", index + 1);
        }
        if channel_list.iter().any(|c| c.name() == channel.name()) {
            errors.at(
                span.clone(),
                format!("duplicate channel name `{}`", channel.name()),
            );
        }
        for server in &channel.filter().servers {
            check_server(errors, span.clone(), server);
        }
        if let ChannelConfig::Exec(exec) = &channel {
            if exec.command.first().is_none_or(|c| c.is_empty()) {
                errors.at(
                    span.clone(),
                    "`command` must name a program: `command = [\"/usr/local/bin/hook\", \"arg\"]`"
                        .into(),
                );
            }
            if exec.timeout.is_zero() {
                errors.at(span.clone(), "`timeout` must be more than 0".into());
            }
        }
        channel_list.push(channel);
    }

    let policy =
        |errors: &mut Errors, text: Option<Spanned<String>>, default: String| -> Option<Policy> {
            let Some(text) = text else {
                return Policy::parse(&default).ok();
            };
            match Policy::parse(text.get_ref()) {
                Ok(p) => {
                    for server in p.servers() {
                        check_server(errors, text.span(), server);
                    }
                    Some(p)
                }
                Err(e) => {
                    // The value's span includes the opening quote.
                    let at = text.span().start + 1 + e.offset;
                    errors.at(at..at, format!("invalid policy: {}", e.message));
                    None
                }
            }
        };
    let critical_default = servers
        .iter()
        .map(|s| format!("not server-running({0}) or server-crashed({0})", s.name))
        .collect::<Vec<_>>();
    let warning_default = servers
        .iter()
        .filter(|s| !s.zones.is_empty())
        .map(|s| format!("not all-zones-ready({})", s.name))
        .collect::<Vec<_>>();
    let or_all = |parts: Vec<String>| {
        if parts.is_empty() {
            "false".to_string()
        } else {
            parts.join(" or ")
        }
    };
    let critical_when = policy(errors, file.check.critical_when, or_all(critical_default));
    let warning_when = policy(errors, file.check.warning_when, or_all(warning_default));

    Some(Config {
        node,
        journal: JournalConfig {
            path: file.journal.path,
            retention: file.journal.retention,
            max_signals: file.journal.max_signals,
        },
        http,
        servers,
        sources: source_list,
        channels: channel_list,
        check: CheckConfig {
            critical_when: critical_when?,
            warning_when: warning_when?,
        },
        path,
    })
}
