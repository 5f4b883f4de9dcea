//! Checks what the file says as a whole and fills in the defaults.
//!
//! * names: the node and every server a DNS label, servers and channels each named once;
//! * references: every server a source, a channel filter or a policy names exists, and a
//!   probe's zones are zones of its server;
//! * values: zone names, durations and counts that make sense, one process per process
//!   source, one source of each type per server;
//! * `[check]`: the policies parse, with errors placed inside the TOML string, and default
//!   to "critical when a server is not running or crashed, warning when a server's zones
//!   are not all ready".
//! * `[[anycast]]` and `[[driver]]`: in [`super::anycast`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::Errors;
use super::anycast;
use super::document::{Document, Entry};
use super::file::{
    ChannelFile, CheckFile, HttpFile, PushChannelFile, ServerFile, check_label, hostname,
    normalize_zone, parse_address,
};
use super::model::*;
use super::notify_in;
use crate::condition::ConditionId;
use crate::engine::policy::{Policy, PolicyError, closest_condition};
use crate::signal::SignalState;

/// The whole config, or `None` when something it depends on is missing (the reasons are in
/// `errors`; other problems are reported there too, and make the config invalid).
pub(super) fn validate(document: Document, path: &Path, errors: &mut Errors) -> Option<Config> {
    let Document {
        file,
        sources,
        channels,
        drivers,
    } = document;
    let node = match file.node {
        Some(node) => {
            if let Err(e) = check_label("node", node.get_ref()) {
                errors.at(node.span(), e);
            }
            node.into_inner()
        }
        None => hostname(),
    };
    let http = validate_http(file.http, errors);
    let servers = validate_servers(file.server, errors);
    let known = KnownServers::new(&servers);
    let sources = validate_sources(sources, &servers, &known, errors);
    let channels = validate_channels(channels, &node, &known, errors);
    let check = validate_check(file.check, &servers, &known, errors);
    // The exabgp driver's API is dns-oops' stdout, where a `log` channel without `path` writes.
    let log_to_stdout = channels
        .iter()
        .any(|c| matches!(c, ChannelConfig::Log(l) if l.path.is_none()));
    let drivers = anycast::validate_drivers(drivers, log_to_stdout, errors);
    let anycast = anycast::validate_anycast(file.anycast, &drivers, &known, errors);
    Some(Config {
        node,
        journal: JournalConfig {
            path: file.journal.path,
            retention: file.journal.retention,
            max_signals: file.journal.max_signals,
        },
        http,
        servers,
        sources,
        channels,
        check: check?,
        anycast,
        drivers,
        path: path.to_path_buf(),
    })
}

fn validate_http(file: HttpFile, errors: &mut Errors) -> HttpConfig {
    let listen = match file.listen {
        None => Some(DEFAULT_HTTP.parse().expect("the default address is valid")),
        Some(listen) if listen.get_ref() == "off" => None,
        Some(listen) => {
            let address = parse_address(listen.get_ref());
            if address.is_none() {
                errors.at(
                    listen.span(),
                    format!(
                        "invalid listen address `{}`; write e.g. \"127.0.0.1:8054\", or \"off\"",
                        listen.get_ref()
                    ),
                );
            }
            address
        }
    };
    HttpConfig { listen }
}

fn validate_servers(files: Vec<ServerFile>, errors: &mut Errors) -> Vec<ServerConfig> {
    let mut servers = Vec::new();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    for file in files {
        let name_span = file.name.span();
        let name = file.name.into_inner();
        if let Err(e) = check_label("server name", &name) {
            errors.at(name_span.clone(), e);
        }
        match first_lines.get(&name) {
            Some(first) => errors.at(
                name_span,
                format!("duplicate server name `{name}`: already defined on line {first}"),
            ),
            None => {
                first_lines.insert(name.clone(), errors.line_of(&name_span));
            }
        }
        let mut zones: Vec<String> = Vec::new();
        for zone in &file.zones {
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
            address: file.address,
            zones,
            hold: file.hold,
        });
    }
    if servers.is_empty() {
        errors.at(
            0..0,
            "no [[server]] configured: add one with `name`, `address` and `zones`".into(),
        );
    }
    servers
}

/// The configured server names, for checking references to them.
pub(super) struct KnownServers {
    names: Vec<String>,
}

impl KnownServers {
    fn new(servers: &[ServerConfig]) -> Self {
        KnownServers {
            names: servers.iter().map(|s| s.name.clone()).collect(),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    /// Reports `name` at `span` if no server has it.
    fn check(&self, name: &str, span: Range<usize>, errors: &mut Errors) {
        if !self.names.iter().any(|n| n == name) {
            let list = self
                .names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.at(
                span,
                format!("unknown server `{name}`; configured servers: {list}"),
            );
        }
    }
}

fn validate_sources(
    entries: Vec<Entry<SourceConfig>>,
    servers: &[ServerConfig],
    known: &KnownServers,
    errors: &mut Errors,
) -> Vec<SourceConfig> {
    let mut out = Vec::new();
    let mut first_lines: HashMap<(&'static str, String), usize> = HashMap::new();
    for Entry {
        mut value,
        positions: at,
    } in entries
    {
        let server_span = at.value_span("server");
        known.check(value.server(), server_span.clone(), errors);
        let key = (value.kind(), value.server().to_string());
        match first_lines.get(&key) {
            Some(first) => errors.at(
                server_span.clone(),
                format!(
                    "server `{}` already has a `{}` source, on line {first}",
                    key.1, key.0
                ),
            ),
            None => {
                first_lines.insert(key, errors.line_of(&at.span));
            }
        }
        match &mut value {
            SourceConfig::Probe(probe) => {
                for (key, duration) in [("interval", probe.interval), ("timeout", probe.timeout)] {
                    if duration.is_zero() {
                        errors.at(at.value_span(key), format!("`{key}` must be more than 0"));
                    }
                }
                for (key, count) in [("rise", probe.rise), ("fall", probe.fall)] {
                    if count == 0 {
                        errors.at(at.value_span(key), format!("`{key}` must be at least 1"));
                    }
                }
                if let Some(zones) = &mut probe.zones {
                    let server = servers.iter().find(|s| s.name == probe.server);
                    let mut normalized = Vec::new();
                    for (index, zone) in zones.iter().enumerate() {
                        let span = at.item_span("zones", index);
                        match normalize_zone(zone) {
                            Err(e) => errors.at(span, e),
                            Ok(z) if normalized.contains(&z) => {
                                errors.at(span, format!("zone `{z}` is listed twice"));
                            }
                            Ok(z) => {
                                if let Some(server) = server
                                    && !server.zones.contains(&z)
                                {
                                    errors.at(
                                        span,
                                        format!(
                                            "zone `{z}` is not one of server `{}`'s zones; add it to the server's `zones` first",
                                            server.name
                                        ),
                                    );
                                }
                                normalized.push(z);
                            }
                        }
                    }
                    *zones = normalized;
                }
            }
            SourceConfig::Process(process) => match (&process.pid_file, process.pid) {
                (Some(_), Some(_)) => errors.at(
                    at.value_span("pid"),
                    "set one of `pid-file` and `pid`, not both".into(),
                ),
                (None, None) => errors.at(
                    at.span.clone(),
                    "a process source needs `pid-file` (or `pid`)".into(),
                ),
                (None, Some(0)) => errors.at(
                    at.value_span("pid"),
                    "`pid` must be a process id, more than 0".into(),
                ),
                _ => {}
            },
            SourceConfig::NotifyIn(notify) => {
                let server = servers.iter().find(|s| s.name == notify.server);
                notify_in::check(notify, server, &at, errors);
            }
            SourceConfig::Dnstap(dnstap) => super::dnstap::check(dnstap, &at, errors),
            SourceConfig::ZoneHealth(health) => {
                let server = servers.iter().find(|s| s.name == health.server);
                super::zone_health::check(health, server, &at, errors);
            }
            SourceConfig::Control(control) => {
                for (key, message) in control.problems() {
                    errors.at(at.value_span(key), message);
                }
            }
            SourceConfig::InTree(in_tree) => {
                for (key, message) in in_tree.problems() {
                    errors.at(at.value_span(key), message);
                }
            }
            SourceConfig::KnotDbus(dbus) => {
                if dbus.bus.as_deref().is_some_and(|b| b.trim().is_empty()) {
                    errors.at(
                        at.value_span("bus"),
                        "`bus` cannot be empty; leave it out for the system bus, or write an address such as \"unix:path=/run/dbus/system_bus_socket\"".into(),
                    );
                }
                if dbus.timeout.is_zero() {
                    errors.at(
                        at.value_span("timeout"),
                        "`timeout` must be more than 0".into(),
                    );
                }
            }
        }
        out.push(value);
    }
    out
}

fn validate_channels(
    entries: Vec<Entry<ChannelFile>>,
    node: &str,
    known: &KnownServers,
    errors: &mut Errors,
) -> Vec<ChannelConfig> {
    let mut out = Vec::new();
    let mut first_lines: HashMap<String, usize> = HashMap::new();
    let mut exec_count = 0;
    for Entry {
        value,
        positions: at,
    } in entries
    {
        let mut filter = |conditions, servers: &Vec<String>, subjects, states| SignalFilter {
            conditions: self::conditions(conditions, errors),
            servers: servers.clone(),
            subjects: self::subjects(subjects, errors),
            states: self::states(states, errors),
        };
        let filter = match &value {
            ChannelFile::Log(f) => filter(&f.conditions, &f.servers, &f.subjects, &f.states),
            ChannelFile::Exec(f) => filter(&f.conditions, &f.servers, &f.subjects, &f.states),
            ChannelFile::Push(_) => SignalFilter::default(),
            ChannelFile::Mqtt(f) => filter(&f.conditions, &f.servers, &f.subjects, &f.states),
            ChannelFile::Webhook(f) => filter(&f.conditions, &f.servers, &f.subjects, &f.states),
            ChannelFile::Dbus(f) => filter(&f.conditions, &f.servers, &f.subjects, &f.states),
            ChannelFile::Notify(f) => filter(&f.conditions, &f.servers, &f.subjects, &f.states),
        };
        let (channel, default_name) = match value {
            ChannelFile::Log(file) => {
                let config = LogChannelConfig {
                    name: file.name.unwrap_or_else(|| "log".into()),
                    path: file.path.filter(|p| p != Path::new("-")),
                    filter,
                };
                (
                    ChannelConfig::Log(config),
                    "the default name of a log channel",
                )
            }
            ChannelFile::Exec(file) => {
                exec_count += 1;
                match file.command.first() {
                    None => errors.at(
                        at.value_span("command"),
                        "`command` must name a program: `command = [\"/usr/local/bin/hook\", \"arg\"]`"
                            .into(),
                    ),
                    Some(program) if program.is_empty() => errors.at(
                        at.item_span("command", 0),
                        "the program in `command` cannot be empty".into(),
                    ),
                    Some(_) => {}
                }
                if file.timeout.is_zero() {
                    errors.at(
                        at.value_span("timeout"),
                        "`timeout` must be more than 0".into(),
                    );
                }
                let config = ExecChannelConfig {
                    name: file.name.unwrap_or_else(|| format!("exec-{exec_count}")),
                    command: file.command,
                    timeout: file.timeout,
                    filter,
                };
                (
                    ChannelConfig::Exec(config),
                    "the default name of the n-th exec channel",
                )
            }
            ChannelFile::Push(file) => (
                ChannelConfig::Push(validate_push(file, &at, errors)),
                "the default name of a push channel",
            ),
            ChannelFile::Mqtt(file) => (
                ChannelConfig::Mqtt(super::mqtt::check(file, node, filter, &at, errors)),
                "the default name of an mqtt channel",
            ),
            ChannelFile::Webhook(file) => (
                ChannelConfig::Webhook(super::webhook::check(file, filter, &at, errors)),
                "the default name of a webhook channel",
            ),
            ChannelFile::Dbus(file) => (
                ChannelConfig::Dbus(super::dbus::check(file, filter, errors)),
                "the default name of a dbus channel",
            ),
            ChannelFile::Notify(file) => (
                ChannelConfig::Notify(super::notify_out::check(file, node, filter, &at, errors)),
                "the default name of a notify channel",
            ),
        };
        let name = channel.name();
        let name_span = at.value_span("name");
        if name.trim().is_empty() {
            errors.at(name_span.clone(), "a channel name cannot be empty".into());
        }
        match first_lines.get(name) {
            Some(first) => {
                let named_here = name_span != at.span;
                errors.at(
                    name_span,
                    format!(
                        "duplicate channel name `{name}`{}: already used on line {first}; give each channel its own `name`",
                        if named_here {
                            String::new()
                        } else {
                            format!(" ({default_name})")
                        }
                    ),
                );
            }
            None => {
                first_lines.insert(name.to_string(), errors.line_of(&at.span));
            }
        }
        for (index, server) in channel.filter().servers.iter().enumerate() {
            known.check(server, at.item_span("servers", index), errors);
        }
        out.push(channel);
    }
    out
}

fn validate_push(
    file: PushChannelFile,
    at: &super::document::Positions,
    errors: &mut Errors,
) -> PushChannelConfig {
    let mut zone_name = |written: &Option<Spanned<String>>, what: &str| {
        written
            .as_ref()
            .and_then(|w| match normalize_zone(w.get_ref()) {
                Ok(name) if name != "." => Some(name),
                Ok(_) => {
                    errors.at(w.span(), format!("`{what}` cannot be the root"));
                    None
                }
                Err(e) => {
                    errors.at(w.span(), e);
                    None
                }
            })
    };
    let signals_zone = zone_name(&file.signals_zone, "signals-zone")
        .unwrap_or_else(|| DEFAULT_SIGNALS_ZONE.into());
    let host = zone_name(&file.host, "host");
    for (key, value) in [("queue", file.queue), ("max-sessions", file.max_sessions)] {
        if value == 0 {
            errors.at(at.value_span(key), format!("`{key}` must be at least 1"));
        }
    }
    if file.keepalive < std::time::Duration::from_secs(10) {
        errors.at(
            at.value_span("keepalive"),
            "`keepalive` must be at least 10s (RFC 8490 §6.5.2)".into(),
        );
    }
    if !file.allow.is_empty() && file.client_ca.is_none() {
        errors.at(
            at.value_span("allow"),
            "`allow` needs `client-ca`: without client certificates there is no client to match"
                .into(),
        );
    }
    let mut allow = Vec::new();
    for rule in file.allow {
        let client = rule
            .client
            .get_ref()
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if client.is_empty() {
            errors.at(rule.client.span(), "`client` cannot be empty".into());
        }
        let mut names = Vec::new();
        for written in &rule.names {
            let text = written.get_ref();
            let (wild, rest) = match text.strip_prefix("*.") {
                Some(rest) => (true, rest),
                None if text == "*" => (true, "."),
                None => (false, text.as_str()),
            };
            match normalize_zone(rest) {
                Ok(name) if wild && name == "." => names.push("*.".to_string()),
                Ok(name) if wild => names.push(format!("*.{name}")),
                Ok(name) => names.push(name),
                Err(e) => errors.at(written.span(), e),
            }
        }
        allow.push(PushAllow { client, names });
    }
    PushChannelConfig {
        name: file.name.unwrap_or_else(|| "push".into()),
        listen: file.listen,
        cert: file.cert,
        key: file.key,
        client_ca: file.client_ca,
        signals_zone,
        host,
        ttl: file.ttl,
        queue: file.queue,
        max_sessions: file.max_sessions,
        keepalive: file.keepalive,
        allow,
    }
}

/// The condition ids of a channel filter.
/// A channel's `subjects` filter: zone names, or `*.<zone>` for every zone below one.
fn subjects(written: &[Spanned<String>], errors: &mut Errors) -> Vec<String> {
    let mut out = Vec::new();
    for subject in written {
        let text = subject.get_ref().trim();
        let (wildcard, zone) = match text.strip_prefix("*.") {
            Some(zone) => (true, zone),
            None => (false, text),
        };
        match super::file::normalize_zone(zone) {
            Ok(zone) if wildcard && zone == "." => out.push("*.".into()),
            Ok(zone) if wildcard => out.push(format!("*.{zone}")),
            Ok(zone) => out.push(zone),
            Err(e) => errors.at(
                subject.span(),
                format!("`subjects`: {e} (a zone name like `example.com.`, or `*.example.com.` for the zones below it)"),
            ),
        }
    }
    out
}

/// A channel's `states` filter: `met`, `cleared`, `event`.
fn states(written: &[Spanned<String>], errors: &mut Errors) -> Vec<SignalState> {
    let mut out = Vec::new();
    for state in written {
        match state.get_ref().as_str() {
            "met" => out.push(SignalState::Met),
            "cleared" => out.push(SignalState::Cleared),
            "event" => out.push(SignalState::Event),
            other => errors.at(
                state.span(),
                format!("unknown state `{other}` in `states`; a signal's state is `met`, `cleared` or `event`"),
            ),
        }
    }
    out
}

fn conditions(written: &[Spanned<String>], errors: &mut Errors) -> Vec<ConditionId> {
    let mut ids = Vec::new();
    for id in written {
        match id.get_ref().parse() {
            Ok(condition) => ids.push(condition),
            Err(_) => {
                let word = id.get_ref();
                let message = match closest_condition(word) {
                    Some(close) => {
                        format!("unknown condition `{word}`; did you mean `{close}`?")
                    }
                    None => format!(
                        "unknown condition `{word}`; known: {}",
                        ConditionId::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                errors.at(id.span(), message);
            }
        }
    }
    ids
}

fn validate_check(
    file: CheckFile,
    servers: &[ServerConfig],
    known: &KnownServers,
    errors: &mut Errors,
) -> Option<CheckConfig> {
    let or_all = |parts: Vec<String>| {
        if parts.is_empty() {
            "false".to_string()
        } else {
            parts.join(" or ")
        }
    };
    let critical_default = or_all(
        servers
            .iter()
            .map(|s| format!("not server-running({0}) or server-crashed({0})", s.name))
            .collect(),
    );
    let warning_default = or_all(
        servers
            .iter()
            .filter(|s| !s.zones.is_empty())
            .map(|s| format!("not all-zones-ready({})", s.name))
            .collect(),
    );
    let critical_when = policy(file.critical_when, critical_default, known, errors);
    let warning_when = policy(file.warning_when, warning_default, known, errors);
    Some(CheckConfig {
        critical_when: critical_when?,
        warning_when: warning_when?,
    })
}

/// The policy written in `value`, or the `default` text. A default made from server names
/// that are not valid labels may not parse; those names are reported already.
pub(super) fn policy(
    value: Option<Spanned<String>>,
    default: String,
    known: &KnownServers,
    errors: &mut Errors,
) -> Option<Policy> {
    let Some(value) = value else {
        return Policy::parse(&default).ok();
    };
    let span = value.span();
    let report =
        |errors: &mut Errors, e: PolicyError| match content_offset(errors.text, &span, e.offset) {
            Some(at) => errors.at(at..at, format!("invalid policy: {}", e.message)),
            None => errors.at(
                span.clone(),
                format!(
                    "invalid policy at column {} of the expression: {}",
                    e.offset + 1,
                    e.message
                ),
            ),
        };
    match Policy::parse(value.get_ref()) {
        Ok(policy) => {
            for e in policy.unknown_servers(&known.names()) {
                report(errors, e);
            }
            Some(policy)
        }
        Err(e) => {
            report(errors, e);
            None
        }
    }
}

/// Where byte `offset` of a string's content is in the file, given the span of the string
/// as written, quotes included. `None` where the content does not map byte for byte: a
/// basic string with escapes, or a multi-line string with CRLF line ends.
fn content_offset(text: &str, span: &Range<usize>, offset: usize) -> Option<usize> {
    let raw = text.get(span.clone())?;
    let multi_line = raw.starts_with("\"\"\"") || raw.starts_with("'''");
    let basic = raw.starts_with('"');
    if (basic && raw.contains('\\')) || (multi_line && raw.contains('\r')) {
        return None;
    }
    let mut start = span.start + if multi_line { 3 } else { 1 };
    // A newline right after the opening delimiter is not part of a multi-line string.
    if multi_line && raw[3..].starts_with('\n') {
        start += 1;
    }
    Some(start + offset)
}
