//! What the file says, straight from serde: the top level, `[journal]`, `[http]`,
//! `[[server]]`, `[check]`, and the channel tables, before validation and defaults that
//! depend on other tables. Also the parsers of the value types: durations, addresses, zone
//! names, and the labels used as node and server names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::model::DEFAULT_JOURNAL;

/// The file's top level, without `[[source]]` and `[[channel]]`, which are dispatched on
/// their `type` one by one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileConfig {
    #[serde(default)]
    pub node: Option<Spanned<String>>,
    #[serde(default)]
    pub journal: JournalFile,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub server: Vec<ServerFile>,
    #[serde(default)]
    pub check: CheckFile,
    #[serde(default)]
    pub anycast: Vec<super::anycast::AnycastFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct JournalFile {
    #[serde(default = "default_journal_path")]
    pub path: PathBuf,
    #[serde(default = "defaults::retention", deserialize_with = "duration")]
    pub retention: Duration,
    #[serde(default)]
    pub max_signals: Option<u64>,
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
pub(super) struct HttpFile {
    /// An address, or `"off"`.
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ServerFile {
    pub name: Spanned<String>,
    #[serde(deserialize_with = "address")]
    pub address: SocketAddr,
    #[serde(default)]
    pub zones: Vec<Spanned<String>>,
    #[serde(default, deserialize_with = "duration")]
    pub hold: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CheckFile {
    #[serde(default)]
    pub critical_when: Option<Spanned<String>>,
    #[serde(default)]
    pub warning_when: Option<Spanned<String>>,
}

/// A `[[channel]]` table without its `type`.
#[derive(Debug)]
pub(super) enum ChannelFile {
    Log(LogChannelFile),
    Exec(ExecChannelFile),
    Push(PushChannelFile),
    Mqtt(super::mqtt::MqttChannelFile),
    Webhook(super::webhook::WebhookChannelFile),
    Dbus(super::dbus::DbusChannelFile),
    Notify(super::notify_out::NotifyChannelFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LogChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub conditions: Vec<Spanned<String>>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<Spanned<String>>,
    #[serde(default)]
    pub states: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ExecChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    pub command: Vec<String>,
    #[serde(default = "defaults::exec_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub conditions: Vec<Spanned<String>>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<Spanned<String>>,
    #[serde(default)]
    pub states: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PushChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(deserialize_with = "address")]
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub signals_zone: Option<Spanned<String>>,
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default = "defaults::push_ttl", deserialize_with = "duration")]
    pub ttl: Duration,
    #[serde(default = "defaults::push_queue")]
    pub queue: usize,
    #[serde(default = "defaults::push_max_sessions")]
    pub max_sessions: usize,
    #[serde(default = "defaults::push_keepalive", deserialize_with = "duration")]
    pub keepalive: Duration,
    #[serde(default)]
    pub allow: Vec<PushAllowFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PushAllowFile {
    pub client: Spanned<String>,
    pub names: Vec<Spanned<String>>,
}

pub(super) mod defaults {
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
    pub fn push_ttl() -> Duration {
        Duration::from_secs(60)
    }
    pub fn push_queue() -> usize {
        1024
    }
    pub fn push_max_sessions() -> usize {
        100_000
    }
    pub fn push_keepalive() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn retention() -> Duration {
        Duration::from_secs(30 * 86400)
    }
}

/// A duration written like `500ms`, `5s`, `1m 30s`, `30d`.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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

/// An IP address and port as `IP:port`, `[IPv6]:port` or `IP@port`.
pub(super) fn parse_address(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (ip, port) = text.rsplit_once('@')?;
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

/// Lowercase with a trailing dot; refuses what is not a domain name.
pub(super) fn normalize_zone(zone: &str) -> Result<String, String> {
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

/// Node and server names end up in DNS labels and MQTT topics: `[a-z0-9-]`, 1–63, no `-`
/// at either end.
pub(super) fn check_label(what: &str, name: &str) -> Result<(), String> {
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

/// The machine's host name, first label, lowercase; `localhost` if that is not a valid
/// node name.
pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().split('.').next().map(|s| s.to_ascii_lowercase()))
        .filter(|h| check_label("node", h).is_ok())
        .unwrap_or_else(|| "localhost".to_string())
}
