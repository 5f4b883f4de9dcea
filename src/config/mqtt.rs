//! The `[[channel]] type = "mqtt"` table: what it says ([`MqttChannelFile`]), the checks of
//! the table as a whole, and the validated [`MqttChannelConfig`].
//!
//! The broker is `host:port` (a name or an IP address; `[v6]:port` for IPv6); the port
//! defaults to 1883, or 8883 with `tls = true`. `ca`, `cert` and `key` need `tls = true`,
//! and `cert` and `key` go together. A password is written inline or read from
//! `password-file` when the channel starts; it never appears in `Debug` output or logs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Errors;
use super::document::Positions;
use super::model::SignalFilter;

/// The default topic prefix (design.md §3, "MQTT").
pub const DEFAULT_MQTT_PREFIX: &str = "dns-oops";

/// `type = "mqtt"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct MqttChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    pub broker: Spanned<String>,
    #[serde(default)]
    pub prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub client_id: Option<Spanned<String>>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(
        default = "default_keepalive",
        deserialize_with = "super::file::duration"
    )]
    pub keepalive: Duration,
    #[serde(default)]
    pub conditions: Vec<Spanned<String>>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<Spanned<String>>,
    #[serde(default)]
    pub states: Vec<Spanned<String>>,
}

fn default_keepalive() -> Duration {
    Duration::from_secs(30)
}

/// A secret string: shown as `<redacted>` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the password comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MqttPassword {
    Inline(Secret),
    /// Read when the channel starts; one trailing newline is dropped.
    File(PathBuf),
}

/// TLS to the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttTls {
    /// Trust only this CA (PEM); `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// A client certificate chain and its key (PEM).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// `type = "mqtt"`: signals published to an MQTT broker (design.md §3, "MQTT").
#[derive(Debug, Clone)]
pub struct MqttChannelConfig {
    /// Default `mqtt`.
    pub name: String,
    /// The node, for the topics and the default client id.
    pub node: String,
    /// Host name or IP address, without brackets.
    pub host: String,
    pub port: u16,
    /// Without a trailing `/`; default `dns-oops`.
    pub prefix: String,
    /// Default `dns-oops-<node>`.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<MqttPassword>,
    pub tls: Option<MqttTls>,
    pub keepalive: Duration,
    pub filter: SignalFilter,
}

impl MqttChannelConfig {
    /// `<prefix>/<node>/status`: retained `online`, last will `offline`.
    pub fn status_topic(&self) -> String {
        format!("{}/{}/status", self.prefix, self.node)
    }
}

/// Checks a `type = "mqtt"` table; `filter` is the channel's
/// filter, already checked.
pub(super) fn check(
    file: MqttChannelFile,
    node: &str,
    filter: SignalFilter,
    at: &Positions,
    errors: &mut Errors,
) -> MqttChannelConfig {
    let (host, port) = match broker_address(file.broker.get_ref(), file.tls) {
        Ok(address) => address,
        Err(message) => {
            errors.at(file.broker.span(), message);
            (String::new(), 0)
        }
    };
    let prefix = match &file.prefix {
        None => DEFAULT_MQTT_PREFIX.to_string(),
        Some(prefix) => {
            if let Err(message) = check_prefix(prefix.get_ref()) {
                errors.at(prefix.span(), message);
            }
            prefix.get_ref().clone()
        }
    };
    let client_id = match &file.client_id {
        None => format!("dns-oops-{node}"),
        Some(id) => {
            if id.get_ref().is_empty() || id.get_ref().len() > 65535 {
                errors.at(
                    id.span(),
                    "`client-id` must be 1 to 65535 bytes long".into(),
                );
            }
            id.get_ref().clone()
        }
    };
    let password = match (file.password, file.password_file) {
        (Some(_), Some(_)) => {
            errors.at(
                at.value_span("password-file"),
                "set one of `password` and `password-file`, not both".into(),
            );
            None
        }
        (Some(secret), None) => Some(MqttPassword::Inline(secret)),
        (None, Some(path)) => Some(MqttPassword::File(path)),
        (None, None) => None,
    };
    if password.is_some() && file.username.is_none() {
        let key = if at.value_span("password") != at.span {
            "password"
        } else {
            "password-file"
        };
        errors.at(
            at.value_span(key),
            "a password needs a `username` (MQTT 3.1.1 sends no password without one)".into(),
        );
    }
    if file.username.as_deref() == Some("") {
        errors.at(
            at.value_span("username"),
            "`username` cannot be empty".into(),
        );
    }
    let tls = if file.tls {
        let identity = match (file.cert, file.key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                errors.at(
                    at.value_span("cert"),
                    "`cert` needs `key`: the client certificate's private key".into(),
                );
                None
            }
            (None, Some(_)) => {
                errors.at(
                    at.value_span("key"),
                    "`key` needs `cert`: the client certificate it belongs to".into(),
                );
                None
            }
        };
        Some(MqttTls {
            ca: file.ca,
            identity,
        })
    } else {
        for (key, set) in [
            ("ca", file.ca.is_some()),
            ("cert", file.cert.is_some()),
            ("key", file.key.is_some()),
        ] {
            if set {
                errors.at(
                    at.value_span(key),
                    format!("`{key}` is for TLS: set `tls = true` as well"),
                );
            }
        }
        None
    };
    if file.keepalive < Duration::from_secs(5) || file.keepalive > Duration::from_secs(65535) {
        errors.at(
            at.value_span("keepalive"),
            "`keepalive` must be between 5s and 65535s".into(),
        );
    }
    MqttChannelConfig {
        name: file.name.unwrap_or_else(|| "mqtt".into()),
        node: node.to_string(),
        host,
        port,
        prefix,
        client_id,
        username: file.username,
        password,
        tls,
        keepalive: file.keepalive,
        filter,
    }
}

/// `host:port`, `[v6]:port`, or a host alone (port 1883, 8883 with TLS).
fn broker_address(text: &str, tls: bool) -> Result<(String, u16), String> {
    let invalid = || {
        format!(
            "invalid broker `{text}`; write a host and port, e.g. \"127.0.0.1:1883\", \"[::1]:1883\" or \"mqtt.example.net:8883\""
        )
    };
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid());
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
        }
    } else {
        match text.split_once(':') {
            Some((_, after)) if after.contains(':') => {
                return Err(format!("{}; an IPv6 address goes in brackets", invalid()));
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_host {
        return Err(invalid());
    }
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(invalid()),
        },
    };
    Ok((host.to_string(), port))
}

/// A topic prefix: one or more levels, no wildcards, not a `$` topic.
fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("`prefix` cannot be empty".into());
    }
    if prefix.contains(['+', '#', '\0']) {
        return Err(format!(
            "`prefix` `{prefix}` contains a wildcard (`+`, `#`) or NUL; topics published to cannot"
        ));
    }
    if prefix.starts_with('$') {
        return Err(format!(
            "`prefix` `{prefix}` starts with `$`, which brokers reserve for their own topics"
        ));
    }
    if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        return Err(format!(
            "`prefix` `{prefix}` has an empty level; write e.g. \"dns-oops\" or \"site/dns-oops\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::condition::ConditionId;
    use crate::config::{ChannelConfig, ConfigError, parse};

    const BASE: &str = "node = \"ams1\"\n[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\n\n[[channel]]\ntype = \"mqtt\"\n";

    fn mqtt(table: &str) -> Result<MqttChannelConfig, ConfigError> {
        let config = parse(&format!("{BASE}{table}"), Path::new("t.toml"))?;
        match config.channels.into_iter().next() {
            Some(ChannelConfig::Mqtt(mqtt)) => Ok(mqtt),
            other => panic!("{other:?}"),
        }
    }

    /// The one problem of `table`, as `line:column: message` (line 1 is the table's first).
    fn problem(table: &str) -> String {
        let e = mqtt(table).unwrap_err();
        let [p] = e.problems() else {
            panic!("expected one problem: {e}")
        };
        format!(
            "{}:{}: {}",
            p.line - BASE.lines().count(),
            p.column,
            p.message
        )
    }

    #[test]
    fn defaults() {
        let c = mqtt("broker = \"127.0.0.1:1883\"").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 1883));
        assert_eq!(c.name, "mqtt");
        assert_eq!(c.prefix, "dns-oops");
        assert_eq!(c.client_id, "dns-oops-ams1");
        assert_eq!(c.status_topic(), "dns-oops/ams1/status");
        assert_eq!(c.keepalive, Duration::from_secs(30));
        assert!(c.username.is_none() && c.password.is_none() && c.tls.is_none());
        assert!(c.filter.conditions.is_empty() && c.filter.servers.is_empty());
    }

    #[test]
    fn every_key() {
        let c = mqtt(
            "name = \"broker\"\nbroker = \"mqtt.example.net\"\nprefix = \"site/oops\"\nclient-id = \"me\"\n\
             username = \"u\"\npassword-file = \"/etc/dns-oops/mqtt.secret\"\ntls = true\nca = \"/ca.pem\"\n\
             cert = \"/c.pem\"\nkey = \"/c.key\"\nkeepalive = \"1m\"\nconditions = [\"zone-ready\"]\nservers = [\"knot\"]",
        )
        .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("mqtt.example.net", 8883));
        assert_eq!(
            (c.name.as_str(), c.prefix.as_str()),
            ("broker", "site/oops")
        );
        assert_eq!(c.client_id, "me");
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(
            c.password,
            Some(MqttPassword::File("/etc/dns-oops/mqtt.secret".into()))
        );
        assert_eq!(
            c.tls,
            Some(MqttTls {
                ca: Some("/ca.pem".into()),
                identity: Some(("/c.pem".into(), "/c.key".into())),
            })
        );
        assert_eq!(c.keepalive, Duration::from_secs(60));
        assert_eq!(c.filter.conditions, [ConditionId::ZoneReady]);
        assert_eq!(c.filter.servers, ["knot"]);
    }

    #[test]
    fn problems_are_placed() {
        assert_eq!(
            problem("broker = \"127.0.0.1\"\nbrokr = 1"),
            "2:1: unknown field `brokr`, expected one of `name`, `broker`, `prefix`, `client-id`, `username`, `password`, `password-file`, `tls`, `ca`, `cert`, `key`, `keepalive`, `conditions`, `servers`, `subjects`, `states`"
        );
        assert!(problem("broker = \"::1:1883\"").starts_with("1:10: invalid broker `::1:1883`"));
        assert!(
            problem("broker = \"h\"\nprefix = \"a/#\"")
                .starts_with("2:10: `prefix` `a/#` contains a wildcard")
        );
        assert!(problem("broker = \"h\"\nprefix = \"dns-oops/\"").contains("empty level"));
        assert_eq!(
            problem("broker = \"h\"\nusername = \"u\"\npassword = \"p\"\npassword-file = \"/f\""),
            "4:17: set one of `password` and `password-file`, not both"
        );
        assert!(
            problem("broker = \"h\"\npassword = \"p\"")
                .starts_with("2:12: a password needs a `username`")
        );
        assert_eq!(
            problem("broker = \"h\"\nca = \"/ca.pem\""),
            "2:6: `ca` is for TLS: set `tls = true` as well"
        );
        assert!(
            problem("broker = \"h\"\ntls = true\ncert = \"/c.pem\"")
                .starts_with("3:8: `cert` needs `key`")
        );
        assert_eq!(
            problem("broker = \"h\"\nkeepalive = \"1s\""),
            "2:13: `keepalive` must be between 5s and 65535s"
        );
        assert!(
            problem("broker = \"h\"\nconditions = [\"zone-redy\"]")
                .contains("did you mean `zone-ready`?")
        );
        assert!(
            problem("broker = \"h\"\nservers = [\"nsd\"]")
                .starts_with("2:12: unknown server `nsd`")
        );
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let c = mqtt("broker = \"h\"\nusername = \"u\"\npassword = \"hunter2\"").unwrap();
        assert_eq!(
            c.password,
            Some(MqttPassword::Inline(Secret::new("hunter2".into())))
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn the_example_publishes_the_lab_to_a_local_broker() {
        let c = parse(
            include_str!("../../etc/examples/mqtt.toml"),
            Path::new("mqtt.toml"),
        )
        .unwrap();
        assert_eq!(c.node, "lab");
        let knot = c.server("knot").unwrap();
        assert_eq!(knot.address, "127.0.0.1:5301".parse().unwrap());
        assert_eq!(knot.zones, ["a.test.", "b.test.", "c.test."]);
        assert!(c.journal.path.starts_with("/tmp/dns-oops-lab/state"));
        let mqtt: Vec<_> = c
            .channels
            .iter()
            .filter_map(|ch| match ch {
                ChannelConfig::Mqtt(m) => Some(m),
                _ => None,
            })
            .collect();
        let [m] = &mqtt[..] else { panic!("{mqtt:?}") };
        assert_eq!((m.host.as_str(), m.port), ("127.0.0.1", 1883));
        assert_eq!(m.prefix, "dns-oops");
        assert!(m.username.is_none() && m.password.is_none() && m.tls.is_none());
    }

    #[test]
    fn broker_addresses() {
        assert_eq!(
            broker_address("127.0.0.1:1883", false),
            Ok(("127.0.0.1".into(), 1883))
        );
        assert_eq!(broker_address("[::1]:8884", true), Ok(("::1".into(), 8884)));
        assert_eq!(
            broker_address("mqtt.example.net", true),
            Ok(("mqtt.example.net".into(), 8883))
        );
        assert_eq!(broker_address("[::1]", false), Ok(("::1".into(), 1883)));
        for bad in [
            "", ":1883", "h:0", "h:99999", "::1:1883", "[nope]:1", "a b:1",
        ] {
            assert!(broker_address(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_shown() {
        let password = MqttPassword::Inline(Secret::new("hunter2".into()));
        assert_eq!(format!("{password:?}"), "Inline(<redacted>)");
    }
}
