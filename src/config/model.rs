//! The validated configuration the daemon uses, with every default filled in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use super::anycast::{
    AnycastConfig, BirdDriverConfig, DriverConfig, ExabgpDriverConfig, FrrDriverConfig,
    GobgpDriverConfig, MAX_PREPEND, OnShutdown,
};
pub use super::dbus::{DEFAULT_DBUS_NAME, DbusBus, DbusChannelConfig};
pub use super::dnstap::{CountWhat, DnstapConfig, EdeFile, RateFile, parse_listen};
use super::file::defaults;
pub use super::mqtt::{DEFAULT_MQTT_PREFIX, MqttChannelConfig, MqttPassword, MqttTls, Secret};
pub use super::notify_in::{AddressPrefix, TsigHmac, TsigKey};
pub use super::notify_out::NotifyChannelConfig;
pub use super::webhook::{WebhookChannelConfig, WebhookSecret};
pub use super::zone_health::{PrimaryAddress, ZoneHealthConfig};
use crate::condition::ConditionId;
use crate::engine::policy::Policy;
use crate::signal::{Signal, SignalState};

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
    /// `[[anycast]]` policies, each naming one of `drivers`.
    pub anycast: Vec<AnycastConfig>,
    /// `[[driver]]`: the BGP daemons the anycast policies drive.
    pub drivers: Vec<DriverConfig>,
    /// The file it came from.
    pub path: PathBuf,
}

/// `[journal]`.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub path: PathBuf,
    /// Signals older than this are pruned.
    pub retention: Duration,
    /// At most this many signals are kept.
    pub max_signals: Option<u64>,
}

/// `[http]`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `None`: no HTTP API (`listen = "off"`).
    pub listen: Option<SocketAddr>,
}

/// A watched DNS server, `[[server]]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub address: SocketAddr,
    /// Lowercase, with a trailing dot, each once.
    pub zones: Vec<String>,
    /// Minimum time a level condition stays in a state after a change.
    pub hold: Duration,
}

/// A `[[source]]`, by its `type`.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    Probe(ProbeConfig),
    Process(ProcessConfig),
    NotifyIn(NotifyInConfig),
    KnotDbus(KnotDbusConfig),
    Dnstap(DnstapConfig),
    ZoneHealth(ZoneHealthConfig),
    InTree(crate::intree::source::InTreeConfig),
    Control(ControlConfig),
}

impl SourceConfig {
    /// The server it observes.
    pub fn server(&self) -> &str {
        match self {
            SourceConfig::Probe(p) => &p.server,
            SourceConfig::Process(p) => &p.server,
            SourceConfig::NotifyIn(n) => &n.server,
            SourceConfig::KnotDbus(k) => &k.server,
            SourceConfig::Dnstap(d) => &d.server,
            SourceConfig::ZoneHealth(z) => &z.server,
            SourceConfig::InTree(t) => &t.server,
            SourceConfig::Control(c) => &c.server,
        }
    }

    /// The `type` it is written with.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Probe(_) => "probe",
            SourceConfig::Process(_) => "process",
            SourceConfig::NotifyIn(_) => "notify-in",
            SourceConfig::KnotDbus(_) => "knot-dbus",
            SourceConfig::Dnstap(_) => "dnstap",
            SourceConfig::ZoneHealth(_) => "zone-health",
            SourceConfig::InTree(_) => "in-tree",
            SourceConfig::Control(_) => "control",
        }
    }
}

/// `type = "probe"`: SOA probes of the server's zones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProbeConfig {
    pub server: String,
    #[serde(
        default = "defaults::interval",
        deserialize_with = "super::file::duration"
    )]
    pub interval: Duration,
    #[serde(
        default = "defaults::timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
    #[serde(default = "defaults::rise_fall")]
    pub rise: u32,
    #[serde(default = "defaults::rise_fall")]
    pub fall: u32,
    /// Lowercase with a trailing dot, each one of the server's zones. Default (`None`):
    /// all the server's zones.
    #[serde(default)]
    pub zones: Option<Vec<String>>,
}

/// `type = "knot-dbus"`: Knot DNS's D-Bus signals (`cz.nic.knotd.events`), the bus name's
/// owner changes (a lost name without `stopped` is a crash), and a resync by SOA query on
/// start and after every reconnect.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KnotDbusConfig {
    pub server: String,
    /// A D-Bus address, e.g. `unix:path=/run/dbus/system_bus_socket`. Default: the system
    /// bus (`DBUS_SYSTEM_BUS_ADDRESS` when set).
    #[serde(default)]
    pub bus: Option<String>,
    /// knotd's control socket: the resync asks knotd itself for its zones' serials there
    /// (`zone-status`) instead of querying each zone's SOA. Default: SOA queries.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    /// How long the resync's SOA queries (or control-socket session) wait for an answer.
    #[serde(
        default = "defaults::timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
}

/// `type = "control"`: the server's own control channel, polled (see
/// [`crate::sources::control`]; its checks are [`ControlConfig::problems`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ControlConfig {
    pub server: String,
    /// Whose control channel: `knot`, `nsd`, `unbound` or `rndc`.
    pub protocol: crate::sources::control::ControlProtocol,
    /// The control socket's path (`knot`, `nsd`, `unbound`).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// `rndc` only: the rndc command and its leading arguments (e.g. `-c`, `-s`, `-p`).
    /// Default: `["rndc"]`.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(
        default = "defaults::interval",
        deserialize_with = "super::file::duration"
    )]
    pub interval: Duration,
    /// How long one poll (connect, ask, read the answers) may take.
    #[serde(
        default = "defaults::timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
    /// `zone-refresh-failed` is met after this many failed refresh tries.
    #[serde(default = "crate::sources::control::default_refresh_tries")]
    pub refresh_tries: u32,
    /// `zone-expiring` is met this long before the server's expiry timer runs out (0: at
    /// expiry).
    #[serde(default, deserialize_with = "super::file::duration")]
    pub expiring_period: Duration,
}

/// `type = "process"`: the server's process; exactly one of `pid_file` and `pid` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProcessConfig {
    pub server: String,
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    #[serde(default)]
    pub pid: Option<u32>,
}

/// `type = "notify-in"`: a listener for DNS NOTIFY (RFC 1996) from the server, over UDP and
/// TCP; each accepted NOTIFY is confirmed with a SOA query to the server's own address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NotifyInConfig {
    pub server: String,
    /// UDP and TCP, on the same address.
    #[serde(deserialize_with = "super::notify_in::listen_address")]
    pub listen: SocketAddr,
    /// Where NOTIFY is accepted from. Default: loopback only.
    #[serde(default = "AddressPrefix::loopback")]
    pub allow: Vec<AddressPrefix>,
    #[serde(default)]
    pub tsig_key: Option<TsigKey>,
    /// As written; [`NotifyInConfig::requires_tsig`] applies the default.
    #[serde(default)]
    pub require_tsig: Option<bool>,
    /// At most one confirming SOA query per zone in this time; NOTIFYs in between are
    /// folded into one confirmation at its end.
    #[serde(
        default = "super::notify_in::default_min_interval",
        deserialize_with = "super::file::duration"
    )]
    pub min_interval: Duration,
    /// How long the confirming SOA query waits for its answer.
    #[serde(
        default = "defaults::timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
}

impl NotifyInConfig {
    /// Whether an unsigned NOTIFY is refused: `require-tsig`, by default whether a key is set.
    pub fn requires_tsig(&self) -> bool {
        self.require_tsig.unwrap_or(self.tsig_key.is_some())
    }
}

/// A `[[channel]]`, by its `type`.
#[derive(Debug, Clone)]
pub enum ChannelConfig {
    Log(LogChannelConfig),
    Exec(ExecChannelConfig),
    Push(PushChannelConfig),
    Mqtt(MqttChannelConfig),
    Webhook(WebhookChannelConfig),
    Dbus(DbusChannelConfig),
    Notify(NotifyChannelConfig),
}

impl ChannelConfig {
    /// The channel's name, unique in the config: it keys the channel's delivery cursor in
    /// the journal.
    pub fn name(&self) -> &str {
        match self {
            ChannelConfig::Log(c) => &c.name,
            ChannelConfig::Exec(c) => &c.name,
            ChannelConfig::Push(c) => &c.name,
            ChannelConfig::Mqtt(c) => &c.name,
            ChannelConfig::Webhook(c) => &c.name,
            ChannelConfig::Dbus(c) => &c.name,
            ChannelConfig::Notify(c) => &c.name,
        }
    }

    /// The channel's type as written in the config (`log`, `mqtt`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Log(_) => "log",
            ChannelConfig::Exec(_) => "exec",
            ChannelConfig::Push(_) => "push",
            ChannelConfig::Mqtt(_) => "mqtt",
            ChannelConfig::Webhook(_) => "webhook",
            ChannelConfig::Dbus(_) => "dbus",
            ChannelConfig::Notify(_) => "notify",
        }
    }

    /// Which signals it carries (a push channel serves them all).
    pub fn filter(&self) -> &SignalFilter {
        static ALL: SignalFilter = SignalFilter {
            conditions: Vec::new(),
            servers: Vec::new(),
            subjects: Vec::new(),
            states: Vec::new(),
        };
        match self {
            ChannelConfig::Log(c) => &c.filter,
            ChannelConfig::Exec(c) => &c.filter,
            ChannelConfig::Push(_) => &ALL,
            ChannelConfig::Mqtt(c) => &c.filter,
            ChannelConfig::Webhook(c) => &c.filter,
            ChannelConfig::Dbus(c) => &c.filter,
            ChannelConfig::Notify(c) => &c.filter,
        }
    }
}

/// `type = "log"`: signal JSON lines.
#[derive(Debug, Clone)]
pub struct LogChannelConfig {
    /// Default `log`.
    pub name: String,
    /// `None` (absent or `"-"`): stdout.
    pub path: Option<PathBuf>,
    pub filter: SignalFilter,
}

/// `type = "exec"`: a command per signal.
#[derive(Debug, Clone)]
pub struct ExecChannelConfig {
    /// Default `exec-N` for the N-th exec channel of the file.
    pub name: String,
    /// The argv; the first element is the program. Never empty.
    pub command: Vec<String>,
    pub timeout: Duration,
    pub filter: SignalFilter,
}

/// `type = "push"`: the signals zone over DNS Push (RFC 8765) and plain DNS, on TLS.
#[derive(Debug, Clone)]
pub struct PushChannelConfig {
    /// Default `push`.
    pub name: String,
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by this CA.
    pub client_ca: Option<PathBuf>,
    /// Lowercase with a trailing dot; default `oops.internal.`. The zone served is
    /// `<node>.<signals-zone>`.
    pub signals_zone: String,
    /// The SRV target and NS host; default `push.<node>.<signals-zone>`.
    pub host: Option<String>,
    /// TTL of the records.
    pub ttl: Duration,
    /// Updates a session may fall behind before it is sent Retry Delay and dropped.
    pub queue: usize,
    /// Sessions beyond this are refused with SERVFAIL and a Retry Delay.
    pub max_sessions: usize,
    /// Largest keepalive interval granted.
    pub keepalive: Duration,
    /// Per-client name ACL (only with `client-ca`); empty: every client sees everything.
    pub allow: Vec<PushAllow>,
}

/// One `[[channel.allow]]`: a client identity and the names it may query and subscribe to.
#[derive(Debug, Clone, PartialEq)]
pub struct PushAllow {
    /// A DNS name (or IP address) the client's certificate must be valid for.
    pub client: String,
    /// Lowercase absolute names; a leading `*.` matches any name below the rest.
    pub names: Vec<String>,
}

impl PushAllow {
    /// Whether `name` (lowercase, absolute) is one of this rule's names.
    pub fn covers(&self, name: &str) -> bool {
        self.names
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(".") => true,
                Some(parent) => {
                    name.len() > parent.len()
                        && name.ends_with(parent)
                        && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
                }
                None => pattern == name,
            })
    }
}

/// The default signals zone (design.md §3).
pub const DEFAULT_SIGNALS_ZONE: &str = "oops.internal.";

/// Which signals a channel carries (`conditions = [...]`, `servers = [...]`,
/// `subjects = [...]`, `states = [...]` in the channel's table); an empty list means all,
/// and a signal must pass every list that is not empty.
#[derive(Debug, Clone, Default)]
pub struct SignalFilter {
    pub conditions: Vec<ConditionId>,
    pub servers: Vec<String>,
    /// Zone names, lowercase with a trailing dot; `*.example.` is every zone below
    /// `example.` (not `example.` itself). A signal without a subject (a server-level
    /// condition) does not pass a subjects list.
    pub subjects: Vec<String>,
    pub states: Vec<SignalState>,
}

impl SignalFilter {
    pub fn matches(&self, s: &Signal) -> bool {
        (self.conditions.is_empty() || self.conditions.contains(&s.condition))
            && (self.servers.is_empty() || self.servers.contains(&s.server))
            && (self.states.is_empty() || self.states.contains(&s.state))
            && (self.subjects.is_empty()
                || s.subject.as_deref().is_some_and(|subject| {
                    self.subjects
                        .iter()
                        .any(|pattern| subject_matches(pattern, subject))
                }))
    }
}

/// Whether `subject` is `pattern`, or below it when the pattern is `*.<zone>`; names
/// compare without regard to ASCII case.
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let subject = subject.to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        // `*.` is every zone but the root.
        Some(".") => subject != ".",
        Some(suffix) => subject.len() > suffix.len() && subject.ends_with(suffix),
        None => subject == pattern,
    }
}

/// `[check]`: what `dns-oops check` calls critical and warning.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    pub critical_when: Policy,
    pub warning_when: Policy,
}
