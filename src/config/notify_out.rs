//! The `[[channel]] type = "notify"` table: DNS NOTIFY (RFC 1996) sent to targets when a
//! matching signal is recorded. What the table says ([`NotifyChannelFile`]), its checks, and
//! the validated [`NotifyChannelConfig`].
//!
//! `zone` is the zone named in the NOTIFY, by default the node's signals zone
//! `<node>.oops.internal.`. `serve` adds a plain DNS listener (UDP and TCP) that answers
//! queries and AXFR for that signals zone, so secondaries have a primary to transfer it
//! from; `allow` says who may ask it (loopback by default). `tsig-key` signs every NOTIFY
//! (the same key table as the `notify-in` source).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Errors;
use super::document::Positions;
use super::file::{normalize_zone, parse_address};
use super::model::{DEFAULT_SIGNALS_ZONE, SignalFilter};
use super::notify_in::{AddressPrefix, TsigKey};

/// `type = "notify"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct NotifyChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub zone: Option<Spanned<String>>,
    #[serde(default)]
    pub serve: Option<Spanned<String>>,
    #[serde(default = "AddressPrefix::loopback")]
    pub allow: Vec<AddressPrefix>,
    #[serde(default)]
    pub tsig_key: Option<TsigKey>,
    #[serde(
        default = "default_timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "super::file::duration"
    )]
    pub max_backoff: Duration,
    #[serde(default)]
    pub conditions: Vec<Spanned<String>>,
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<Spanned<String>>,
    #[serde(default)]
    pub states: Vec<Spanned<String>>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

/// RFC 1996 §3.6 suggests at most 5 retransmissions.
fn default_retries() -> u32 {
    5
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

/// Most targets one channel notifies.
const MAX_TARGETS: usize = 64;
/// Most retransmissions of one NOTIFY.
const MAX_RETRIES: u32 = 100;

/// `type = "notify"`: DNS NOTIFY for a zone to a list of targets.
#[derive(Debug, Clone)]
pub struct NotifyChannelConfig {
    /// Default `notify`.
    pub name: String,
    /// Where NOTIFY is sent (UDP), each once; never empty.
    pub targets: Vec<SocketAddr>,
    /// The zone named in the NOTIFY: lowercase, with a trailing dot.
    pub zone: String,
    /// Where the signals zone `zone` is served for transfers; `None`: not served.
    pub serve: Option<SocketAddr>,
    /// Who may query and transfer the served zone.
    pub allow: Vec<AddressPrefix>,
    pub tsig_key: Option<TsigKey>,
    /// How long one try waits for the answer.
    pub timeout: Duration,
    /// Retransmissions after the first try, per target and change.
    pub retries: u32,
    /// The longest wait between two tries (the first is 1 s).
    pub max_backoff: Duration,
    pub filter: SignalFilter,
}

/// Checks a `type = "notify"` table of node `node`; `filter` is the channel's
/// filter, already checked.
pub(super) fn check(
    file: NotifyChannelFile,
    node: &str,
    filter: SignalFilter,
    at: &Positions,
    errors: &mut Errors,
) -> NotifyChannelConfig {
    let mut targets = Vec::new();
    if file.targets.is_empty() {
        errors.at(
            at.span.clone(),
            "a notify channel needs `targets`: the addresses NOTIFY is sent to, e.g. [\"192.0.2.53:53\"]".into(),
        );
    }
    if file.targets.len() > MAX_TARGETS {
        errors.at(
            at.value_span("targets"),
            format!("at most {MAX_TARGETS} targets per notify channel"),
        );
    }
    for (index, written) in file.targets.iter().enumerate() {
        match parse_address(written.get_ref()) {
            Some(addr) if targets.contains(&addr) => errors.at(
                at.item_span("targets", index),
                format!("target {addr} is listed twice"),
            ),
            Some(addr) if addr.port() == 0 => errors.at(
                at.item_span("targets", index),
                format!("target {addr} has port 0; NOTIFY goes to a server's DNS port, usually 53"),
            ),
            Some(addr) => targets.push(addr),
            None => errors.at(
                at.item_span("targets", index),
                format!(
                    "invalid target `{}`; write an IP address and port, e.g. \"192.0.2.53:53\" or \"[2001:db8::53]:53\"",
                    written.get_ref()
                ),
            ),
        }
    }
    let zone = match &file.zone {
        None => format!("{node}.{DEFAULT_SIGNALS_ZONE}"),
        Some(written) => match normalize_zone(written.get_ref()) {
            Ok(name) => name,
            Err(e) => {
                errors.at(written.span(), e);
                String::new()
            }
        },
    };
    let serve = file
        .serve
        .as_ref()
        .and_then(|written| match parse_address(written.get_ref()) {
            Some(addr) => Some(addr),
            None => {
                errors.at(
                    written.span(),
                    format!(
                        "invalid `serve` address `{}`; write an IP address and port, e.g. \"127.0.0.1:5354\"",
                        written.get_ref()
                    ),
                );
                None
            }
        });
    if file.allow.is_empty() && serve.is_some() {
        errors.at(
            at.value_span("allow"),
            "`allow` is empty, so nobody could transfer the served zone; leave it out for loopback only".into(),
        );
    }
    if file.timeout.is_zero() {
        errors.at(
            at.value_span("timeout"),
            "`timeout` must be more than 0".into(),
        );
    }
    if file.retries > MAX_RETRIES {
        errors.at(
            at.value_span("retries"),
            format!("`retries` is at most {MAX_RETRIES} (RFC 1996 suggests 5)"),
        );
    }
    if file.max_backoff < Duration::from_secs(1) {
        errors.at(
            at.value_span("max-backoff"),
            "`max-backoff` must be at least 1s (the first wait)".into(),
        );
    }
    NotifyChannelConfig {
        name: file.name.unwrap_or_else(|| "notify".into()),
        targets,
        zone,
        serve,
        allow: file.allow,
        tsig_key: file.tsig_key,
        timeout: file.timeout,
        retries: file.retries,
        max_backoff: file.max_backoff,
        filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelConfig, ConfigError, parse};

    const BASE: &str = "node = \"lab\"\n[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\nzones = [\"a.test.\"]\n[[channel]]\ntype = \"notify\"\n";

    fn notify(table: &str) -> Result<NotifyChannelConfig, ConfigError> {
        let config = parse(&format!("{BASE}{table}"), std::path::Path::new("t.toml"))?;
        match config.channels.into_iter().next() {
            Some(ChannelConfig::Notify(c)) => Ok(c),
            other => panic!("not a notify channel: {other:?}"),
        }
    }

    fn problems(table: &str) -> Vec<String> {
        match notify(table) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(ConfigError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
                .collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_and_a_full_table() {
        let c = notify("targets = [\"127.0.0.1:5300\"]\n").unwrap();
        assert_eq!(c.name, "notify");
        assert_eq!(c.zone, "lab.oops.internal.");
        assert_eq!(c.targets, ["127.0.0.1:5300".parse().unwrap()]);
        assert_eq!(c.serve, None);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.retries, 5);
        assert_eq!(c.max_backoff, Duration::from_secs(60));
        assert!(c.tsig_key.is_none());
        let c = notify(
            "name = \"n\"\ntargets = [\"127.0.0.1:5300\", \"[::1]:53\"]\nzone = \"Example.NET\"\n\
             serve = \"127.0.0.1:5354\"\nallow = [\"192.0.2.0/24\"]\n\
             tsig-key = { name = \"k\", algorithm = \"hmac-sha256\", secret = \"c2VjcmV0\" }\n\
             timeout = \"500ms\"\nretries = 2\nmax-backoff = \"5s\"\nconditions = [\"zone-updated\"]\n",
        )
        .unwrap();
        assert_eq!(c.zone, "example.net.");
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.serve, Some("127.0.0.1:5354".parse().unwrap()));
        assert_eq!(c.tsig_key.unwrap().name, "k.");
        assert_eq!(c.retries, 2);
        assert_eq!(c.max_backoff, Duration::from_secs(5));
    }

    #[test]
    fn problems_point_at_what_is_wrong() {
        assert_eq!(
            problems(""),
            [
                "6:1: a notify channel needs `targets`: the addresses NOTIFY is sent to, e.g. [\"192.0.2.53:53\"]"
            ]
        );
        assert_eq!(
            problems(
                "targets = [\"127.0.0.1:53\", \"nowhere\", \"127.0.0.1:53\"]\nzone = \"a..b\"\n\
                 timeout = \"0s\"\nretries = 1000\nmax-backoff = \"10ms\"\n"
            ),
            [
                "8:28: invalid target `nowhere`; write an IP address and port, e.g. \"192.0.2.53:53\" or \"[2001:db8::53]:53\"",
                "8:39: target 127.0.0.1:53 is listed twice",
                "9:8: zone `a..b` has an empty label",
                "10:11: `timeout` must be more than 0",
                "11:11: `retries` is at most 100 (RFC 1996 suggests 5)",
                "12:15: `max-backoff` must be at least 1s (the first wait)"
            ]
        );
    }
}
