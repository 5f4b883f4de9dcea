//! `[[source]] type = "dnstap"`: a Frame Streams receiver for the server's dnstap, and the
//! traffic conditions it drives.
//!
//! ```toml
//! [[source]]
//! type = "dnstap"
//! server = "knot"
//! listen = ["unix:/run/dns-oops/knot-dnstap.sock", "127.0.0.1:6000"]
//! [source.query-rate-high]
//! threshold = 20000        # queries per second
//! window = "10s"
//! [source.query-rate-rising]
//! threshold = 2000         # queries per second, per second
//! window = "10s"
//! [source.extended-error]
//! codes = [6, 7, 22]       # default: every code
//! rate = 1                 # responses per second with the code, per zone
//! window = "10s"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Errors;
use super::document::Positions;
use super::file::{normalize_zone, parse_address};
use super::model::ServerConfig;
use crate::dnstap::receiver::Listen;
use crate::dnstap::traffic::{EdeRule, RateRule, TrafficRules};

/// `type = "dnstap"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DnstapConfig {
    pub server: String,
    /// `unix:/path` (or an absolute path) and `IP:port` listeners.
    #[serde(deserialize_with = "listen_list")]
    pub listen: Vec<Listen>,
    /// Permissions of unix sockets, written in octal as a string (`"0660"`).
    #[serde(default = "default_socket_mode", deserialize_with = "octal_mode")]
    pub socket_mode: u32,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bytes of frames read and not yet classified, over all connections; beyond it
    /// frames are dropped and counted.
    #[serde(default = "default_max_buffer")]
    pub max_buffer: usize,
    /// What the query rate counts: `queries` (default) or `responses`, for a server that
    /// logs only its responses.
    #[serde(default)]
    pub count: CountWhat,
    /// Zones `extended-error` is reported for (by question name suffix); default: the
    /// server's zones. Names under none of them are reported for `.`.
    #[serde(default)]
    pub zones: Option<Vec<String>>,
    #[serde(default)]
    pub query_rate_high: Option<RateFile>,
    #[serde(default)]
    pub query_rate_rising: Option<RateFile>,
    #[serde(default)]
    pub extended_error: Option<EdeFile>,
}

/// What the query rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountWhat {
    #[default]
    Queries,
    Responses,
}

/// `[source.query-rate-high]`, `[source.query-rate-rising]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateFile {
    pub threshold: f64,
    #[serde(default = "default_window", deserialize_with = "super::file::duration")]
    pub window: Duration,
    /// Default: 90 % of `threshold`.
    #[serde(default)]
    pub clear_below: Option<f64>,
}

/// `[source.extended-error]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EdeFile {
    #[serde(default)]
    pub codes: Vec<u16>,
    #[serde(default = "default_ede_rate")]
    pub rate: f64,
    #[serde(default = "default_window", deserialize_with = "super::file::duration")]
    pub window: Duration,
    #[serde(default)]
    pub clear_below: Option<f64>,
}

fn default_socket_mode() -> u32 {
    0o660
}
fn default_max_connections() -> usize {
    64
}
fn default_max_buffer() -> usize {
    16 * 1024 * 1024
}
fn default_window() -> Duration {
    Duration::from_secs(10)
}
fn default_ede_rate() -> f64 {
    1.0
}

/// The smallest `max-buffer`: a few reads' worth.
const MIN_MAX_BUFFER: usize = 1024 * 1024;
/// The longest window.
const MAX_WINDOW: u64 = 3600;

fn listen_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Listen>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let written = match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    };
    written
        .iter()
        .map(|w| parse_listen(w))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// `unix:/path`, `/path`, `IP:port`, `[IPv6]:port` or `IP@port`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    let path = text.strip_prefix("unix:").unwrap_or(text);
    if path.starts_with('/') {
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    let address = text.strip_prefix("tcp:").unwrap_or(text);
    parse_address(address).map(Listen::Tcp).ok_or_else(|| {
        format!(
            "invalid listen `{text}`; write \"unix:/absolute/path.sock\" or an address and port such as \"127.0.0.1:6000\""
        )
    })
}

fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let text = String::deserialize(d)?;
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid socket mode `{text}`; write permissions in octal, e.g. \"0660\""
            ))
        })
}

impl DnstapConfig {
    /// The rules of the traffic conditions, with defaults applied; `server` gives the
    /// zones when `zones` is not set.
    pub fn rules(&self, server: &ServerConfig) -> TrafficRules {
        let rate = |r: &RateFile| RateRule {
            threshold: r.threshold,
            window: r.window.as_secs() as u32,
            clear_below: r.clear_below.unwrap_or(r.threshold * 0.9),
        };
        TrafficRules {
            query_rate_high: self.query_rate_high.as_ref().map(rate),
            query_rate_rising: self.query_rate_rising.as_ref().map(rate),
            extended_error: self.extended_error.as_ref().map(|e| EdeRule {
                codes: e.codes.clone(),
                rate: e.rate,
                window: e.window.as_secs() as u32,
                clear_below: e.clear_below.unwrap_or(e.rate * 0.9),
            }),
            zones: self.zones.clone().unwrap_or_else(|| server.zones.clone()),
        }
    }
}

/// Checks a dnstap table and normalizes its zones.
pub(super) fn check(config: &mut DnstapConfig, at: &Positions, errors: &mut Errors) {
    if config.listen.is_empty() {
        errors.at(
            at.value_span("listen"),
            "`listen` is empty: give a unix socket path or a TCP address to receive dnstap on"
                .into(),
        );
    }
    for (i, a) in config.listen.iter().enumerate() {
        if config.listen[..i].contains(a) {
            errors.at(at.item_span("listen", i), format!("`{a}` is listed twice"));
        }
    }
    if config.max_connections == 0 {
        errors.at(
            at.value_span("max-connections"),
            "`max-connections` must be at least 1".into(),
        );
    }
    if config.max_buffer < MIN_MAX_BUFFER {
        errors.at(
            at.value_span("max-buffer"),
            format!("`max-buffer` must be at least {MIN_MAX_BUFFER} (bytes)"),
        );
    }
    for (key, rule, min_window, unit) in [
        (
            "query-rate-high",
            &config.query_rate_high,
            1,
            "queries per second",
        ),
        (
            "query-rate-rising",
            &config.query_rate_rising,
            2,
            "queries per second, per second",
        ),
    ] {
        let Some(rule) = rule else { continue };
        let span = at.value_span(key);
        if !(rule.threshold.is_finite() && rule.threshold > 0.0) {
            errors.at(
                span.clone(),
                format!("[source.{key}] `threshold` must be more than 0 ({unit})"),
            );
        }
        check_window(key, rule.window, min_window, span.clone(), errors);
        if let Some(clear) = rule.clear_below
            && !(clear.is_finite() && clear < rule.threshold)
        {
            errors.at(
                span,
                format!("[source.{key}] `clear-below` must be less than `threshold`"),
            );
        }
    }
    if let Some(rule) = &config.extended_error {
        let span = at.value_span("extended-error");
        if !(rule.rate.is_finite() && rule.rate > 0.0) {
            errors.at(
                span.clone(),
                "[source.extended-error] `rate` must be more than 0 (responses per second)".into(),
            );
        }
        check_window("extended-error", rule.window, 1, span.clone(), errors);
        if let Some(clear) = rule.clear_below
            && !(clear.is_finite() && clear < rule.rate)
        {
            errors.at(
                span,
                "[source.extended-error] `clear-below` must be less than `rate`".into(),
            );
        }
    }
    if let Some(zones) = &mut config.zones {
        let mut normalized = Vec::new();
        for (index, zone) in zones.iter().enumerate() {
            match normalize_zone(zone) {
                Ok(z) if normalized.contains(&z) => {
                    errors.at(
                        at.item_span("zones", index),
                        format!("zone `{z}` is listed twice"),
                    );
                }
                Ok(z) => normalized.push(z),
                Err(e) => errors.at(at.item_span("zones", index), e),
            }
        }
        *zones = normalized;
    }
}

fn check_window(
    key: &str,
    window: Duration,
    min: u64,
    span: std::ops::Range<usize>,
    errors: &mut Errors,
) {
    let whole = window.subsec_nanos() == 0;
    if !whole || window.as_secs() < min || window.as_secs() > MAX_WINDOW {
        errors.at(
            span,
            format!(
                "[source.{key}] `window` must be whole seconds from {min}s to {MAX_WINDOW}s, not {}",
                humantime::format_duration(window)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{SourceConfig, parse};

    const HEAD: &str = "node = \"lab\"\n[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:5301\"\nzones = [\"a.test.\"]\n[[source]]\ntype = \"dnstap\"\nserver = \"knot\"\n";

    #[test]
    fn defaults_and_rules() {
        let text = format!(
            "{HEAD}listen = [\"unix:/run/tap.sock\", \"/run/tap2.sock\", \"127.0.0.1@6000\"]\n\
             [source.query-rate-high]\nthreshold = 100\n\
             [source.extended-error]\ncodes = [6]\nwindow = \"30s\"\n"
        );
        let config = parse(&text, Path::new("t.toml")).unwrap();
        let SourceConfig::Dnstap(dnstap) = &config.sources[0] else {
            panic!("{:?}", config.sources);
        };
        assert_eq!(
            dnstap.listen,
            vec![
                Listen::Unix("/run/tap.sock".into()),
                Listen::Unix("/run/tap2.sock".into()),
                Listen::Tcp("127.0.0.1:6000".parse().unwrap()),
            ]
        );
        assert_eq!(dnstap.socket_mode, 0o660);
        assert_eq!(dnstap.count, CountWhat::Queries);
        let rules = dnstap.rules(&config.servers[0]);
        let high = rules.query_rate_high.unwrap();
        assert_eq!(
            (high.threshold, high.window, high.clear_below),
            (100.0, 10, 90.0)
        );
        assert!(rules.query_rate_rising.is_none());
        let ede = rules.extended_error.unwrap();
        assert_eq!((ede.codes, ede.rate, ede.window), (vec![6], 1.0, 30));
        assert_eq!(rules.zones, vec!["a.test.".to_string()]);
    }

    #[test]
    fn problems_name_their_line() {
        let text = format!(
            "{HEAD}listen = \"127.0.0.1:6000\"\nmax-buffer = 10\nzones = [\"a..test\"]\n\
             [source.query-rate-rising]\nthreshold = 10\nwindow = \"1s\"\n"
        );
        let err = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            err.contains("t.toml:10:14: `max-buffer` must be at least"),
            "{err}"
        );
        assert!(
            err.contains("t.toml:11:10: zone `a..test` has an empty label"),
            "{err}"
        );
        assert!(
            err.contains(
                "t.toml:12:1: [source.query-rate-rising] `window` must be whole seconds from 2s"
            ),
            "{err}"
        );
        let text = format!("{HEAD}listen = \"tcp:nowhere\"\n");
        let err = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(
            err.contains("t.toml:9:10: `listen`: invalid listen `tcp:nowhere`"),
            "{err}"
        );
        let text = format!("{HEAD}listen = \"/a.sock\"\nsocket-mode = \"0999\"\n");
        let err = parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("t.toml:10:15:"), "{err}");
        assert!(err.contains("invalid socket mode `0999`"), "{err}");
    }
}
