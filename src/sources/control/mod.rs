//! The `control` source: asks the server itself, over its own control channel, at every
//! `interval`.
//!
//! | `protocol` | how | module |
//! |---|---|---|
//! | `knot` | knotd's control-socket protocol, natively, on its unix socket | [`knot`] over [`knot_ctl`] |
//! | `nsd` | `NSDCT1 zonestatus` on NSD's unix control socket (no TLS there) | [`nsd`] |
//! | `unbound` | `UBCT1 status` on Unbound's unix control socket (no TLS there) | [`unbound`] |
//! | `rndc` | `rndc status` and `rndc zonestatus ZONE`, run as a program | [`bind`] |
//!
//! NSD and Unbound speak TLS on a TCP `control-interface`; on a unix-socket one they speak
//! the same lines in the clear, which is what this source uses. BIND's control protocol is
//! HMAC-authenticated binary; the `rndc` program speaks it and its text is parsed.
//!
//! **Source health is not a condition.** A poll that cannot reach the server (no socket,
//! refused, timed out, a garbled answer) is logged once when it starts and once when it
//! ends, and counted in `dns_oops_control_polls_total{server,outcome}` (with
//! `dns_oops_control_up{server}` 1 while the last poll was answered); the
//! conditions stay as they were, so "we cannot see the zone" is never mistaken for "the
//! zone is not ready". One exception, documented because it is a judgement: once the
//! control socket has answered, a socket that is then *gone* (the file removed, which
//! knotd does when it stops, or nobody listening on it, which is what a dead process
//! leaves) is evidence that the server is down, and clears `server-running` (with
//! `error`). It does not assert `server-crashed` or `server-stopping`: a vanished socket
//! cannot tell a crash from a stop; the `process` and `knot-dbus` sources can. A timeout
//! or a permission error says nothing about the server and changes no condition.

pub mod bind;
pub mod knot;
pub mod knot_ctl;
pub mod nsd;
pub mod unbound;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::condition::ConditionId;
use crate::config::{ControlConfig, ServerConfig};
use crate::signal::{Evidence, Observation};

/// The source's name in signals.
pub const SOURCE: &str = "control";

/// The default of `refresh-tries`.
pub fn default_refresh_tries() -> u32 {
    1
}

/// Which server's control channel is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlProtocol {
    /// knotd's control socket (`knotc`'s protocol).
    Knot,
    /// NSD's unix control socket (`nsd-control`'s protocol).
    Nsd,
    /// Unbound's unix control socket (`unbound-control`'s protocol).
    Unbound,
    /// BIND through the `rndc` program (its protocol is HMAC-authenticated binary).
    Rndc,
}

impl ControlProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlProtocol::Knot => "knot",
            ControlProtocol::Nsd => "nsd",
            ControlProtocol::Unbound => "unbound",
            ControlProtocol::Rndc => "rndc",
        }
    }
}

impl ControlConfig {
    /// What is wrong with the table: `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match (&self.socket, self.protocol) {
            (Some(_), ControlProtocol::Rndc) => problems.push((
                "socket",
                "`socket` is not used with protocol \"rndc\"; set `command`, e.g. [\"rndc\", \"-c\", \"/etc/bind/rndc.conf\"]".into(),
            )),
            (Some(socket), _) if socket.as_os_str().is_empty() => problems.push((
                "socket",
                "`socket` cannot be empty; write the control socket's path, e.g. \"/run/knot/knot.sock\"".into(),
            )),
            (None, ControlProtocol::Rndc) | (Some(_), _) => {}
            (None, protocol) => problems.push((
                "protocol",
                format!(
                    "protocol \"{}\" needs `socket`, the control socket's path",
                    protocol.as_str()
                ),
            )),
        }
        match (&self.command, self.protocol) {
            (Some(_), ControlProtocol::Rndc) | (None, _) => {}
            (Some(_), _) => problems.push((
                "command",
                "`command` is only used with protocol \"rndc\"".into(),
            )),
        }
        if self
            .command
            .as_ref()
            .is_some_and(|c| c.first().is_none_or(|p| p.is_empty()))
        {
            problems.push((
                "command",
                "`command` must name the rndc program: `command = [\"rndc\", \"-c\", \"/etc/bind/rndc.conf\"]`".into(),
            ));
        }
        if self.interval.is_zero() {
            problems.push(("interval", "`interval` must be more than 0".into()));
        }
        if self.timeout.is_zero() {
            problems.push(("timeout", "`timeout` must be more than 0".into()));
        }
        if self.refresh_tries == 0 {
            problems.push(("refresh-tries", "`refresh-tries` must be at least 1".into()));
        }
        problems
    }
}

/// Why one poll got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("{0}")]
    Io(io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed answer: {0}")]
    Protocol(String),
    #[error("the server refused: {0}")]
    Refused(String),
}

impl ControlError {
    /// Whether the error shows that nothing listens on the socket any more.
    pub fn socket_gone(&self) -> bool {
        matches!(
            self,
            ControlError::Connect(e)
                if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused)
        )
    }

    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            ControlError::Connect(_) if self.socket_gone() => "gone",
            ControlError::Connect(_) => "unreachable",
            ControlError::Io(_) => "io-error",
            ControlError::Timeout(_) => "timeout",
            ControlError::Protocol(_) => "malformed",
            ControlError::Refused(_) => "refused",
        }
    }
}

/// The result of one poll.
pub enum Reading {
    Answered(Vec<Observation>),
    Failed(ControlError),
}

/// What the source needs.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    pub server: String,
    pub protocol: ControlProtocol,
    /// Empty for `rndc`.
    pub socket: PathBuf,
    /// `rndc`'s argv before the command.
    pub command: Vec<String>,
    pub zones: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub refresh_tries: u32,
    pub expiring_period: Duration,
}

impl ControlSettings {
    pub fn new(config: &ControlConfig, server: &ServerConfig) -> ControlSettings {
        ControlSettings {
            server: server.name.clone(),
            protocol: config.protocol,
            socket: config.socket.clone().unwrap_or_default(),
            command: config
                .command
                .clone()
                .unwrap_or_else(|| vec!["rndc".to_string()]),
            zones: server.zones.clone(),
            interval: config.interval,
            timeout: config.timeout,
            refresh_tries: config.refresh_tries,
            expiring_period: config.expiring_period,
        }
    }
}

/// Whether the control channel answers, for logs and the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unknown,
    Connected,
    Failing,
}

/// Polls until the engine goes away.
pub async fn run_control(
    settings: ControlSettings,
    tx: mpsc::Sender<Observation>,
    metrics: std::sync::Arc<crate::http::metrics::Metrics>,
    source_health: crate::health::Health,
) {
    let mut judge = knot::KnotJudge::new(
        &settings.server,
        &settings.zones,
        settings.refresh_tries,
        settings.expiring_period,
    );
    let target = match settings.protocol {
        ControlProtocol::Rndc => format!("`{}`", settings.command.join(" ")),
        _ => settings.socket.display().to_string(),
    };
    let mut health = Health::Unknown;
    let mut answered_once = false;
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = tx.closed() => return,
        }
        let reading = match settings.protocol {
            ControlProtocol::Knot => {
                knot::poll(&settings.socket, settings.timeout, &mut judge).await
            }
            ControlProtocol::Nsd => {
                nsd::poll(
                    &settings.socket,
                    settings.timeout,
                    &settings.server,
                    &settings.zones,
                )
                .await
            }
            ControlProtocol::Unbound => {
                unbound::poll(&settings.socket, settings.timeout, &settings.server).await
            }
            ControlProtocol::Rndc => {
                bind::poll(
                    &settings.command,
                    settings.timeout,
                    &settings.server,
                    &settings.zones,
                    settings.expiring_period,
                )
                .await
            }
        };
        let observations = match reading {
            Reading::Answered(observations) => {
                metrics.control.poll(&settings.server, "answered");
                source_health.connected(format!(
                    "{} answers on {target}",
                    settings.protocol.as_str()
                ));
                if health != Health::Connected {
                    tracing::info!(
                        server = settings.server,
                        "control: {} answers on {target}",
                        settings.protocol.as_str(),
                    );
                }
                health = Health::Connected;
                answered_once = true;
                observations
            }
            Reading::Failed(error) => {
                metrics.control.poll(&settings.server, error.outcome());
                let detail = format!("{} on {target}: {error}", settings.protocol.as_str());
                if error.socket_gone() {
                    source_health.gone(detail);
                } else {
                    source_health.stalled(detail);
                }
                if health != Health::Failing {
                    tracing::warn!(
                        server = settings.server,
                        "control: {} on {target}: {error}; retrying every {:?}",
                        settings.protocol.as_str(),
                        settings.interval
                    );
                }
                let was_connected = health == Health::Connected;
                health = Health::Failing;
                if answered_once && was_connected && error.socket_gone() {
                    vec![
                        assert(&settings.server, ConditionId::ServerRunning, None, false).arg(
                            "error",
                            format!("the control channel {target} is gone: {error}"),
                        ),
                    ]
                } else {
                    Vec::new()
                }
            }
        };
        for observation in observations {
            if tx.send(observation).await.is_err() {
                return;
            }
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    server: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

/// The control sources' health metrics.
#[derive(Debug, Default)]
pub struct ControlMetrics {
    polls: Family<PollLabels, Counter>,
    up: Family<ServerLabels, Gauge>,
}

impl ControlMetrics {
    pub fn register(registry: &mut Registry) -> ControlMetrics {
        let m = ControlMetrics::default();
        registry.register(
            "dns_oops_control_polls",
            "Control-channel polls, by outcome (answered, gone, unreachable, timeout, io-error, malformed, refused)",
            m.polls.clone(),
        );
        registry.register(
            "dns_oops_control_up",
            "Whether the last control-channel poll was answered",
            m.up.clone(),
        );
        m
    }

    /// Records one poll's outcome.
    pub fn poll(&self, server: &str, outcome: &str) {
        self.polls
            .get_or_create(&PollLabels {
                server: server.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.up
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .set(i64::from(outcome == "answered"));
    }
}

/// The most text a line-based control answer may have.
const MAX_TEXT_ANSWER: usize = 4 << 20;

/// Sends one request line on a unix control socket and reads the answer until the server
/// closes the connection (NSD and Unbound close after each command).
async fn text_command(
    socket: &std::path::Path,
    request: &str,
    timeout: Duration,
) -> Result<String, ControlError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let session = async {
        let mut stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(ControlError::Connect)?;
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(ControlError::Io)?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            let n = stream.read(&mut buffer).await.map_err(ControlError::Io)?;
            if n == 0 {
                break;
            }
            if answer.len() + n > MAX_TEXT_ANSWER {
                return Err(ControlError::Protocol(format!(
                    "answer longer than {MAX_TEXT_ANSWER} bytes"
                )));
            }
            answer.extend_from_slice(&buffer[..n]);
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(error) = text.lines().find(|l| l.starts_with("error")) {
            return Err(ControlError::Refused(error.chars().take(200).collect()));
        }
        Ok(text)
    };
    tokio::time::timeout(timeout, session)
        .await
        .map_err(|_| ControlError::Timeout(timeout))?
}

fn assert(server: &str, condition: ConditionId, zone: Option<&str>, met: bool) -> Observation {
    Observation::new(SOURCE, server, condition, zone, Evidence::Assert { met })
}
