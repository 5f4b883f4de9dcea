//! The clients behind `dns-oops status`, `watch`, `drain`, `undrain` and `nsd-verify`.
//!
//! [`status`] reads `/api/v1/conditions` once. [`watch`] follows
//! `/api/v1/signals/stream`: when the connection drops (the daemon restarts, or nothing,
//! not even a keep-alive, arrived for [`IDLE_TIMEOUT`]) it reconnects with the last `seq`
//! it saw as `Last-Event-ID`, waiting longer after each failed attempt and giving up after
//! [`MAX_RECONNECT_ATTEMPTS`]. It hands each signal to its caller once: never one it has
//! handed over before, even if a server sends it again.
//!
//! The event stream parser takes lines ended by LF or CRLF (what the daemon sends), not by
//! a lone CR.

use std::error::Error as _;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use futures_util::StreamExt;
use reqwest::header::HeaderValue;

use super::api::{ErrorBody, StatusReport};
use crate::drain::{DrainReport, DrainRequest};
use crate::health::HealthState;
use crate::signal::{Args, Signal};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `status` waits for the whole answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);
/// A stream with nothing on it for this long counts as dropped (the daemon sends a
/// keep-alive comment every 15 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// How many reconnects in a row may fail before `watch` gives up.
pub const MAX_RECONNECT_ATTEMPTS: u32 = 12;
/// The wait before the first reconnect; it doubles after each failure, up to
/// [`MAX_RECONNECT_DELAY`].
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(250);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// A connection that lasted this long, or delivered a signal, resets the count of failures.
const HEALTHY_CONNECTION: Duration = Duration::from_secs(10);
/// The longest event stream line accepted.
const MAX_LINE: usize = 1 << 20;

/// Why a client could not do its job; each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "`{base}` is not an http:// URL; give the daemon's HTTP API as http://HOST:PORT, \
         the address set in [http] listen"
    )]
    InvalidUrl { base: String },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(reqwest::Error),
    #[error(
        "cannot reach dns-oops at {base}: {reason} — is `dns-oops run` running, and is \
         [http] listen set to this address?"
    )]
    Unreachable { base: String, reason: String },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: String,
        message: String,
    },
    #[error(
        "{url} sent something that is not what dns-oops sends: {reason} — is this the \
         address of dns-oops's HTTP API, and do client and daemon have the same version?"
    )]
    BadResponse { url: String, reason: String },
    #[error(
        "lost the connection to dns-oops at {base} and {attempts} attempts to reconnect \
         failed, the last with: {reason} — is `dns-oops run` still running? \
         (`dns-oops watch --after {last_seq}` continues where this stopped)"
    )]
    ConnectionLost {
        base: String,
        attempts: u32,
        reason: String,
        last_seq: u64,
    },
}

/// Reads the daemon's current conditions (`GET /api/v1/conditions`).
pub async fn status(base: &str) -> Result<StatusReport, ClientError> {
    let base = normalize_base(base)?;
    fetch_status(&http_client()?, &base).await
}

/// Streams signals from the daemon at `base` to `out`, in order, each once: those after
/// `after`, or, without it, those that follow the call. Reconnects after a dropped
/// connection. Returns `Ok` when the daemon announced that it stops and did not come back
/// within the reconnect attempts; an error when it cannot be reached at all, refuses the
/// stream, or went away without a word.
pub async fn watch(
    base: &str,
    after: Option<u64>,
    mut out: impl FnMut(&Signal),
) -> Result<(), ClientError> {
    let base = normalize_base(base)?;
    let client = http_client()?;
    let mut last_seq = match after {
        Some(after) => after,
        None => fetch_status(&client, &base).await?.seq,
    };
    let url = format!("{base}/api/v1/signals/stream");
    let mut first = true;
    let mut failures = 0u32;
    let mut announced_stop = false;
    loop {
        let request = if first {
            client.get(format!("{url}?after={last_seq}"))
        } else {
            client
                .get(&url)
                .header("Last-Event-ID", HeaderValue::from(last_seq))
        };
        let reason = match request.send().await {
            Err(e) if first => {
                return Err(ClientError::Unreachable {
                    base,
                    reason: error_reason(&e),
                });
            }
            Err(e) => {
                failures += 1;
                error_reason(&e)
            }
            Ok(response) if !response.status().is_success() => {
                return Err(refused(&url, response).await);
            }
            Ok(response) => {
                let opened = Instant::now();
                let seq_before = last_seq;
                let end = follow(&url, response, &mut last_seq, &mut out).await?;
                if opened.elapsed() >= HEALTHY_CONNECTION || last_seq > seq_before {
                    failures = 0;
                } else {
                    failures += 1;
                }
                match end {
                    StreamEnd::Stopped => {
                        announced_stop = true;
                        "the daemon is stopping".to_string()
                    }
                    StreamEnd::Dropped(reason) => {
                        announced_stop = false;
                        reason
                    }
                }
            }
        };
        first = false;
        if failures >= MAX_RECONNECT_ATTEMPTS {
            if announced_stop {
                eprintln!("dns-oops watch: dns-oops at {base} stopped and did not come back");
                return Ok(());
            }
            return Err(ClientError::ConnectionLost {
                base,
                attempts: failures,
                reason,
                last_seq,
            });
        }
        let delay = reconnect_delay(failures);
        eprintln!(
            "dns-oops watch: {reason}; reconnecting to {base} in {:.2} s after seq {last_seq} \
             (attempt {} of {MAX_RECONNECT_ATTEMPTS})",
            delay.as_secs_f64(),
            failures + 1,
        );
        tokio::time::sleep(delay).await;
    }
}

impl StatusReport {
    /// The report as a table for people: server, condition, subject, since, args; then
    /// the sources and channels that are not connected, and the channels behind.
    pub fn render(&self) -> String {
        let mut text = self.render_conditions();
        text.push_str(&self.render_health());
        text
    }

    fn render_health(&self) -> String {
        let mut rows: Vec<[String; 5]> = Vec::new();
        for source in &self.sources {
            if source.state != HealthState::Connected {
                rows.push([
                    format!("source {} ({})", source.name, source.server),
                    source.state.to_string(),
                    source.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                    String::new(),
                    source.detail.clone(),
                ]);
            }
        }
        for channel in &self.channels {
            if channel.state != HealthState::Connected || channel.behind > 0 {
                rows.push([
                    format!("channel {} ({})", channel.name, channel.kind),
                    channel.state.to_string(),
                    channel.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                    match channel.oldest_undelivered {
                        Some(oldest) => format!(
                            "{} behind, oldest {}",
                            channel.behind,
                            oldest.to_rfc3339_opts(SecondsFormat::Secs, true)
                        ),
                        None => String::new(),
                    },
                    channel.detail.clone(),
                ]);
            }
        }
        let total = self.sources.len() + self.channels.len();
        if total == 0 {
            return String::new();
        }
        if rows.is_empty() {
            return format!(
                "\n{} sources and {} channels connected, no channel behind\n",
                self.sources.len(),
                self.channels.len()
            );
        }
        let header = ["PART", "HEALTH", "SINCE", "LAG", "DETAIL"].map(str::to_string);
        format!("\n{}", table(&header, &rows))
    }

    fn render_conditions(&self) -> String {
        let mut text = format!("node {}, last signal #{}", self.node, self.seq);
        if self.conditions.is_empty() {
            text.push_str(": no condition is met\n");
            return text;
        }
        let count = self.conditions.len();
        text.push_str(&format!(
            ", {count} condition{} met\n\n",
            if count == 1 { "" } else { "s" }
        ));
        let header = ["SERVER", "CONDITION", "SUBJECT", "SINCE", "ARGS"].map(str::to_string);
        let rows: Vec<[String; 5]> = self
            .conditions
            .iter()
            .map(|c| {
                [
                    c.server.clone(),
                    c.condition.to_string(),
                    c.subject.clone().unwrap_or_else(|| "-".to_string()),
                    c.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                    render_args(&c.args),
                ]
            })
            .collect();
        text.push_str(&table(&header, &rows));
        text
    }
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
fn table(header: &[String; 5], rows: &[[String; 5]]) -> String {
    let mut text = String::new();
    let mut widths = [0usize; 5];
    for row in std::iter::once(header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(cell);
            line.push_str(&" ".repeat(width - cell.chars().count() + 2));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `key=value` pairs, strings without quotes.
fn render_args(args: &Args) -> String {
    args.iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => format!("{name}={s}"),
            other => format!("{name}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the base URL and drops trailing slashes.
fn normalize_base(base: &str) -> Result<String, ClientError> {
    let trimmed = base.trim().trim_end_matches('/');
    match trimmed.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() => Ok(trimmed.to_string()),
        _ => Err(ClientError::InvalidUrl {
            base: base.to_string(),
        }),
    }
}

fn http_client() -> Result<reqwest::Client, ClientError> {
    // reqwest's rustls needs a process-wide provider, even for plain http.
    crate::push::tls::install_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(ClientError::Setup)
}

/// Asks the daemon to drain a server (`POST /api/v1/drain`) and waits for its answer: when
/// the BGP daemons have withdrawn the routes that depend on the server and the grace has
/// passed. `wait` is how long the daemon may wait for the BGP daemons.
pub async fn drain(
    base: &str,
    server: &str,
    reason: Option<&str>,
    wait: Duration,
) -> Result<DrainReport, ClientError> {
    let request = DrainRequest {
        server: server.to_string(),
        reason: reason.map(str::to_string),
        wait_ms: Some(wait.as_millis().try_into().unwrap_or(u64::MAX)),
    };
    // The daemon answers after `wait` at the latest, plus the grace (at most an hour).
    let timeout = wait + Duration::from_secs(3600);
    post_control(base, "/api/v1/drain", &request, timeout).await
}

/// Asks the daemon to end the drain of a server (`POST /api/v1/undrain`).
pub async fn undrain(base: &str, server: &str) -> Result<DrainReport, ClientError> {
    let request = DrainRequest {
        server: server.to_string(),
        reason: None,
        wait_ms: None,
    };
    post_control(base, "/api/v1/undrain", &request, STATUS_TIMEOUT).await
}

/// Reports a verifier's verdict on a zone version (`POST /api/v1/verified`, see
/// [`crate::nsd_verify`]); the answer lists the signals it caused.
pub async fn report_verified(
    base: &str,
    report: &crate::nsd_verify::VerifiedReport,
    timeout: Duration,
) -> Result<crate::nsd_verify::VerifiedAnswer, ClientError> {
    let base = normalize_base(base)?;
    let url = format!("{base}/api/v1/verified");
    let request = http_client()?.post(&url).json(report).timeout(timeout);
    answer_json(&base, url, request).await
}

async fn post_control(
    base: &str,
    path: &str,
    request: &DrainRequest,
    timeout: Duration,
) -> Result<DrainReport, ClientError> {
    let base = normalize_base(base)?;
    let url = format!("{base}{path}");
    let request = http_client()?.post(&url).json(request).timeout(timeout);
    answer_json(&base, url, request).await
}

/// Sends `request` to `url` and reads the JSON answer as `T`, each error saying what to
/// check.
async fn answer_json<T: serde::de::DeserializeOwned>(
    base: &str,
    url: String,
    request: reqwest::RequestBuilder,
) -> Result<T, ClientError> {
    let response = request.send().await.map_err(|e| ClientError::Unreachable {
        base: base.to_string(),
        reason: error_reason(&e),
    })?;
    if !response.status().is_success() {
        return Err(refused(&url, response).await);
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::BadResponse {
            url: url.clone(),
            reason: error_reason(&e),
        })?;
    serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        url,
        reason: e.to_string(),
    })
}

async fn fetch_status(client: &reqwest::Client, base: &str) -> Result<StatusReport, ClientError> {
    let url = format!("{base}/api/v1/conditions");
    let request = client.get(&url).timeout(STATUS_TIMEOUT);
    answer_json(base, url, request).await
}

/// The error for a non-success answer, with the API's own message when there is one.
async fn refused(url: &str, response: reqwest::Response) -> ClientError {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    let message = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => error,
        Err(_) if status == reqwest::StatusCode::NOT_FOUND => {
            "no such page — is this the address of dns-oops's HTTP API?".to_string()
        }
        Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
    };
    ClientError::Refused {
        url: url.to_string(),
        status: status.to_string(),
        message,
    }
}

/// What went wrong with a request, in a few words: the innermost cause, which is where
/// "connection refused" is.
fn error_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_string();
    }
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return "connection refused".to_string();
        }
        reason = cause.to_string();
        source = cause.source();
    }
    reason
}

fn reconnect_delay(failures: u32) -> Duration {
    FIRST_RECONNECT_DELAY
        .saturating_mul(1 << failures.min(16))
        .min(MAX_RECONNECT_DELAY)
}

/// How an event stream ended.
#[derive(Debug, PartialEq, Eq)]
enum StreamEnd {
    /// The daemon sent `shutdown`.
    Stopped,
    /// The connection dropped, for this reason.
    Dropped(String),
}

/// Reads one event stream, handing new signals to `out` and moving `last_seq` along.
async fn follow(
    url: &str,
    response: reqwest::Response,
    last_seq: &mut u64,
    out: &mut impl FnMut(&Signal),
) -> Result<StreamEnd, ClientError> {
    let mut body = response.bytes_stream();
    let mut parser = EventStreamParser::default();
    loop {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
            Err(_) => {
                return Ok(StreamEnd::Dropped(format!(
                    "nothing received for {} s",
                    IDLE_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => {
                return Ok(StreamEnd::Dropped(
                    "the daemon closed the stream".to_string(),
                ));
            }
            Ok(Some(Err(e))) => return Ok(StreamEnd::Dropped(error_reason(&e))),
            Ok(Some(Ok(chunk))) => chunk,
        };
        let events = parser
            .push(&chunk)
            .map_err(|reason| ClientError::BadResponse {
                url: url.to_string(),
                reason,
            })?;
        for event in events {
            match event.name.as_str() {
                "signal" => {
                    let signal: Signal = serde_json::from_str(&event.data).map_err(|e| {
                        ClientError::BadResponse {
                            url: url.to_string(),
                            reason: format!("a signal that does not parse: {e}"),
                        }
                    })?;
                    if signal.seq > *last_seq {
                        *last_seq = signal.seq;
                        out(&signal);
                    }
                }
                "shutdown" => return Ok(StreamEnd::Stopped),
                _ => {}
            }
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamEvent {
    /// `message` when the event has no `event:` field.
    name: String,
    data: String,
}

/// Splits an event stream's bytes into events.
#[derive(Debug, Default)]
struct EventStreamParser {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
}

impl EventStreamParser {
    /// Takes the next bytes; returns the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line)
                .map_err(|_| "an event stream line that is not UTF-8".to_string())?;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            return Err(format!("an event stream line longer than {MAX_LINE} bytes"));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<StreamEvent> {
        if line.is_empty() {
            let data = self.data.take();
            let name = self.name.take();
            return data.map(|data| StreamEvent {
                name: name.unwrap_or_else(|| "message".to_string()),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            // The id is the signal's seq, which the client reads from the signal itself.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionId;
    use crate::signal::CurrentCondition;

    #[test]
    fn parser_splits_events_across_chunks() {
        let mut parser = EventStreamParser::default();
        let stream = b":\n\nid: 7\r\nevent: signal\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nid: 8\nevent: shutdown\ndata: bye\n\ndata:x\n\n";
        let mut events = Vec::new();
        for chunk in stream.chunks(5) {
            events.extend(parser.push(chunk).unwrap());
        }
        assert_eq!(
            events,
            vec![
                StreamEvent {
                    name: "signal".into(),
                    data: "{\"a\":\n1}".into()
                },
                StreamEvent {
                    name: "shutdown".into(),
                    data: "bye".into()
                },
                StreamEvent {
                    name: "message".into(),
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn parser_refuses_endless_lines() {
        let mut parser = EventStreamParser::default();
        assert!(parser.push(&vec![b'a'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            normalize_base("http://127.0.0.1:8054/").unwrap(),
            "http://127.0.0.1:8054"
        );
        for bad in ["127.0.0.1:8054", "https://example.net", "http://"] {
            let err = normalize_base(bad).unwrap_err();
            assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn reconnect_delay_grows_and_is_bounded() {
        assert_eq!(reconnect_delay(0), FIRST_RECONNECT_DELAY);
        assert_eq!(reconnect_delay(1), FIRST_RECONNECT_DELAY * 2);
        assert_eq!(reconnect_delay(40), MAX_RECONNECT_DELAY);
    }

    #[test]
    fn status_renders_a_table() {
        let since = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
            .unwrap()
            .to_utc();
        let report = StatusReport {
            node: "ams1".into(),
            seq: 42,
            conditions: vec![
                CurrentCondition {
                    server: "knot".into(),
                    condition: ConditionId::ServerRunning,
                    subject: None,
                    since,
                    args: Args::new(),
                    source: "probe".into(),
                    seq: 1,
                },
                CurrentCondition {
                    server: "knot".into(),
                    condition: ConditionId::ZoneReady,
                    subject: Some("example.net.".into()),
                    since,
                    args: Args::from([
                        ("serial".to_string(), 2026112201u32.into()),
                        ("note".to_string(), "two words".into()),
                    ]),
                    source: "probe".into(),
                    seq: 2,
                },
            ],
            sources: vec![],
            channels: vec![],
        };
        assert_eq!(
            report.render(),
            "node ams1, last signal #42, 2 conditions met\n\
             \n\
             SERVER  CONDITION       SUBJECT       SINCE                 ARGS\n\
             knot    server-running  -             2026-11-22T08:00:00Z\n\
             knot    zone-ready      example.net.  2026-11-22T08:00:00Z  note=two words serial=2026112201\n"
        );
        let empty = StatusReport {
            conditions: vec![],
            ..report
        };
        assert_eq!(
            empty.render(),
            "node ams1, last signal #42: no condition is met\n"
        );

        let healthy = crate::health::SourceHealth {
            name: "probe".into(),
            kind: "probe".into(),
            server: "knot".into(),
            state: HealthState::Connected,
            since,
            detail: String::new(),
        };
        let gone = crate::health::SourceHealth {
            name: "control".into(),
            kind: "control".into(),
            state: HealthState::Gone,
            detail: "cannot connect to /run/knot/knot.sock: No such file or directory".into(),
            ..healthy.clone()
        };
        let behind = crate::health::ChannelHealth {
            name: "hook".into(),
            kind: "webhook".into(),
            state: HealthState::Stalled,
            since,
            detail: "the receiver answered 500 Internal Server Error".into(),
            delivered_seq: Some(40),
            behind: 2,
            oldest_undelivered: Some(since),
        };
        let with_health = StatusReport {
            sources: vec![healthy.clone()],
            ..empty.clone()
        };
        assert_eq!(
            with_health.render(),
            "node ams1, last signal #42: no condition is met\n\n\
             1 sources and 0 channels connected, no channel behind\n"
        );
        let unhealthy = StatusReport {
            sources: vec![healthy, gone],
            channels: vec![behind],
            ..empty
        };
        assert_eq!(
            unhealthy.render(),
            "node ams1, last signal #42: no condition is met\n\n\
             PART                    HEALTH   SINCE                 LAG                                    DETAIL\n\
             source control (knot)   gone     2026-11-22T08:00:00Z                                         cannot connect to /run/knot/knot.sock: No such file or directory\n\
             channel hook (webhook)  stalled  2026-11-22T08:00:00Z  2 behind, oldest 2026-11-22T08:00:00Z  the receiver answered 500 Internal Server Error\n"
        );
    }
}
