//! The `[[channel]] type = "webhook"` table: what it says ([`WebhookChannelFile`]), the
//! checks of the table as a whole, and the validated [`WebhookChannelConfig`].
//!
//! `url` is `http://` or `https://` with a host; `ca` (a PEM file to trust instead of the
//! system's roots) needs `https`. The HMAC key is written inline (`secret`) or read from
//! `secret-file` when the channel starts; exactly one of them is required, and neither
//! appears in `Debug` output or logs. `headers` are extra request headers; they cannot
//! replace `Content-Type` or the `X-Oops-*` headers the channel sets itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Errors;
use super::document::Positions;
use super::model::SignalFilter;
use super::mqtt::Secret;

/// Headers the channel sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "x-oops-seq",
    "x-oops-timestamp",
    "x-oops-signature",
];

/// `type = "webhook"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct WebhookChannelFile {
    #[serde(default)]
    pub name: Option<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(
        default = "default_timeout",
        deserialize_with = "super::file::duration"
    )]
    pub timeout: Duration,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
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
    Duration::from_secs(10)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}

/// Where the HMAC key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookSecret {
    Inline(Secret),
    /// Read when the channel starts; one trailing newline is dropped.
    File(PathBuf),
}

/// `type = "webhook"`: signals POSTed to an HTTP(S) receiver, HMAC-signed.
#[derive(Debug, Clone)]
pub struct WebhookChannelConfig {
    /// Default `webhook`.
    pub name: String,
    /// `http://…` or `https://…`.
    pub url: String,
    pub secret: WebhookSecret,
    /// How long one request (connection, TLS, answer) may take.
    pub timeout: Duration,
    /// Trust only this CA (PEM) for `https`; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// Extra request headers, in name order; the values may be credentials, so `Debug`
    /// does not show them.
    pub headers: Vec<(String, Secret)>,
    /// The longest wait between two tries of one signal (the first is 100 ms).
    pub max_backoff: Duration,
    pub filter: SignalFilter,
}

/// Checks a `type = "webhook"` table; `filter` is the channel's
/// filter, already checked.
pub(super) fn check(
    file: WebhookChannelFile,
    filter: SignalFilter,
    at: &Positions,
    errors: &mut Errors,
) -> WebhookChannelConfig {
    let https = match check_url(file.url.get_ref()) {
        Ok(https) => https,
        Err(message) => {
            errors.at(file.url.span(), message);
            false
        }
    };
    if file.ca.is_some() && !https {
        errors.at(
            at.value_span("ca"),
            "`ca` is for TLS: the `url` must start with `https://`".into(),
        );
    }
    let secret = match (file.secret, file.secret_file) {
        (Some(_), Some(_)) => {
            errors.at(
                at.value_span("secret-file"),
                "set one of `secret` and `secret-file`, not both".into(),
            );
            WebhookSecret::File(PathBuf::new())
        }
        (Some(secret), None) => {
            if secret.expose().is_empty() {
                errors.at(at.value_span("secret"), "`secret` cannot be empty".into());
            }
            WebhookSecret::Inline(secret)
        }
        (None, Some(path)) => WebhookSecret::File(path),
        (None, None) => {
            errors.at(
                at.span.clone(),
                "a webhook channel needs `secret` or `secret-file`: the HMAC key that signs every request".into(),
            );
            WebhookSecret::File(PathBuf::new())
        }
    };
    if file.timeout.is_zero() {
        errors.at(
            at.value_span("timeout"),
            "`timeout` must be more than 0".into(),
        );
    }
    if file.max_backoff < Duration::from_millis(100) {
        errors.at(
            at.value_span("max-backoff"),
            "`max-backoff` must be at least 100ms (the first wait)".into(),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in file.headers {
        let span = at.value_span("headers");
        let lower = name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.at(span, format!("`{name}` is not a valid header name"));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) {
            errors.at(
                span,
                format!("header `{name}` is set by the channel itself and cannot be configured"),
            );
        } else if reqwest::header::HeaderValue::from_str(&value).is_err() {
            errors.at(
                span,
                format!("the value of header `{name}` has characters a header cannot carry"),
            );
        } else {
            headers.push((name, Secret::new(value)));
        }
    }
    WebhookChannelConfig {
        name: file.name.unwrap_or_else(|| "webhook".into()),
        url: file.url.into_inner(),
        secret,
        timeout: file.timeout,
        ca: file.ca,
        headers,
        max_backoff: file.max_backoff,
        filter,
    }
}

/// An `http` or `https` URL with a host; whether it is `https`.
fn check_url(text: &str) -> Result<bool, String> {
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("invalid url `{text}`: {e}; write e.g. \"https://hooks.example.net/dns-oops\"")
    })?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(format!(
                "the url's scheme is `{other}`; a webhook url starts with `http://` or `https://`"
            ));
        }
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the url `{text}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the url carries credentials; put them in `headers` (e.g. `Authorization`) instead"
                .into(),
        );
    }
    Ok(https)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelConfig, ConfigError, parse};

    const BASE: &str = "node = \"lab\"\n[[server]]\nname = \"knot\"\naddress = \"127.0.0.1:53\"\nzones = [\"a.test.\"]\n[[channel]]\ntype = \"webhook\"\n";

    fn webhook(table: &str) -> Result<WebhookChannelConfig, ConfigError> {
        let config = parse(&format!("{BASE}{table}"), std::path::Path::new("t.toml"))?;
        match config.channels.into_iter().next() {
            Some(ChannelConfig::Webhook(c)) => Ok(c),
            other => panic!("not a webhook channel: {other:?}"),
        }
    }

    /// The problems as `line:column: message`.
    fn problems(table: &str) -> Vec<String> {
        match webhook(table) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(ConfigError::Invalid { problems, .. }) => problems
                .into_iter()
                .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
                .collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_full_table_parses_and_the_secret_is_redacted() {
        let c = webhook(
            "name = \"hook\"\nurl = \"https://hooks.example.net/oops\"\nsecret = \"s3cret\"\n\
             timeout = \"2s\"\nca = \"/etc/ca.pem\"\nmax-backoff = \"10s\"\n\
             conditions = [\"zone-ready\"]\nservers = [\"knot\"]\n\
             headers = { Authorization = \"Bearer x\", X-Site = \"ams\" }\n",
        )
        .unwrap();
        assert_eq!(c.name, "hook");
        assert_eq!(c.url, "https://hooks.example.net/oops");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.max_backoff, Duration::from_secs(10));
        assert_eq!(c.ca, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            c.headers,
            [
                ("Authorization".to_string(), Secret::new("Bearer x".into())),
                ("X-Site".to_string(), Secret::new("ams".into()))
            ]
        );
        assert_eq!(c.filter.servers, ["knot"]);
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(!debug.contains("Bearer"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn defaults() {
        let c = webhook("url = \"http://127.0.0.1:8080/\"\nsecret-file = \"/etc/key\"\n").unwrap();
        assert_eq!(c.name, "webhook");
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.max_backoff, Duration::from_secs(60));
        assert_eq!(c.secret, WebhookSecret::File("/etc/key".into()));
        assert!(c.headers.is_empty());
    }

    #[test]
    fn problems_point_at_what_is_wrong() {
        assert_eq!(
            problems("url = \"ftp://x/\"\nsecret = \"k\"\n"),
            ["8:7: the url's scheme is `ftp`; a webhook url starts with `http://` or `https://`"]
        );
        assert_eq!(
            problems("url = \"http://x/\"\n"),
            [
                "6:1: a webhook channel needs `secret` or `secret-file`: the HMAC key that signs every request"
            ]
        );
        assert_eq!(
            problems("url = \"http://x/\"\nsecret = \"k\"\nsecret-file = \"/k\"\nca = \"/ca\"\n"),
            [
                "10:15: set one of `secret` and `secret-file`, not both",
                "11:6: `ca` is for TLS: the `url` must start with `https://`"
            ]
        );
        assert_eq!(
            problems(
                "url = \"http://x/\"\nsecret = \"k\"\ntimeout = \"0s\"\nmax-backoff = \"10ms\"\n\
                 headers = { X-Oops-Seq = \"1\" }\n"
            ),
            [
                "10:11: `timeout` must be more than 0",
                "11:15: `max-backoff` must be at least 100ms (the first wait)",
                "12:11: header `X-Oops-Seq` is set by the channel itself and cannot be configured"
            ]
        );
        assert_eq!(
            problems("url = \"http://x/\"\nsecret = \"k\"\nretries = 3\n"),
            [
                "10:1: unknown field `retries`, expected one of `name`, `url`, `secret`, `secret-file`, `timeout`, `ca`, `headers`, `max-backoff`, `conditions`, `servers`, `subjects`, `states`"
            ]
        );
    }
}
