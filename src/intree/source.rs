//! The `in-tree` source: checks hints files against the live DNS every `interval` and
//! reports, per domain (the subject):
//!
//! * `in-tree-mismatch` — met with `differs` (what differs, one sentence per difference,
//!   joined by `; `) while any comparison disagrees; cleared when a complete check (parent
//!   and domain both answered) finds nothing. A check that could not ask one side does
//!   not clear it: an unreachable parent is what the hints are for, not a proof of
//!   consistency.
//! * `in-tree-commitment-expiring` — met with `expires-at` (RFC 3339, or `none`) when the
//!   `_in-tree` TXT commitment is missing, unreadable, past, or within `commitment-period`.
//!
//! A hints file that cannot be read is logged and skipped for that round; `check-config`
//! reads the files too, so a bad file is normally caught before the daemon starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::check::{CheckSettings, Report, check};
use super::hints;
use crate::condition::ConditionId;
use crate::signal::{Evidence, Observation};

/// The source name in signals.
pub const SOURCE: &str = "in-tree";

/// `[[source]] type = "in-tree"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InTreeConfig {
    /// The server the conditions are reported for: the resolver the hints configure.
    pub server: String,
    /// Hints files, one domain each.
    pub hints: Vec<PathBuf>,
    /// From the start of one check to the start of the next. The draft asks for the
    /// commitment to be checked at least every 30 days; the default is hourly.
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// How long each query waits.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// `in-tree-commitment-expiring` is met this long before the commitment's time.
    #[serde(default = "default_period", deserialize_with = "duration")]
    pub commitment_period: Duration,
    /// The parent zones' servers, IP or IP:PORT; default: found through `resolver`.
    #[serde(default, deserialize_with = "servers")]
    pub parent: Vec<SocketAddr>,
    /// A recursive resolver for finding the parent's servers; default: the first
    /// `nameserver` of /etc/resolv.conf.
    #[serde(default, deserialize_with = "optional_server")]
    pub resolver: Option<SocketAddr>,
}

fn default_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_period() -> Duration {
    Duration::from_secs(30 * 86400)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration `{text}` ({e}); write e.g. \"30s\", \"1h\" or \"30d\""
        ))
    })
}

fn parse_server(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn servers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| {
            parse_server(t).ok_or_else(|| {
                serde::de::Error::custom(format!("`{t}` is not an address; write IP or IP:PORT"))
            })
        })
        .collect()
}

fn optional_server<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_server(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("`{text}` is not an address; write IP or IP:PORT"))
    })
}

impl InTreeConfig {
    /// What `check-config` finds wrong beyond the types: `(key, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, d) in [("interval", self.interval), ("timeout", self.timeout)] {
            if d.is_zero() {
                out.push((key, format!("`{key}` must be more than 0")));
            }
        }
        if self.hints.is_empty() {
            out.push(("hints", "`hints` must name at least one hints file".into()));
        }
        for path in &self.hints {
            // One problem per line, each under the config's own position.
            if let Err(e) = hints::load(path) {
                out.extend(
                    e.to_string()
                        .lines()
                        .map(|line| ("hints", line.to_string())),
                );
            }
        }
        out
    }

    fn settings(&self) -> CheckSettings {
        CheckSettings {
            parent: (!self.parent.is_empty()).then(|| self.parent.clone()),
            resolver: self.resolver,
            timeout: self.timeout,
            commitment_period: self.commitment_period,
        }
    }
}

/// Checks every interval until `tx` closes.
///
/// Its health is `connected` while every hints file loads and `stalled` while one does
/// not (its domains are not checked then).
pub async fn run_in_tree(
    config: InTreeConfig,
    tx: mpsc::Sender<Observation>,
    health: crate::health::Health,
) {
    let settings = config.settings();
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut problems = Vec::new();
        for path in &config.hints {
            let hints = match hints::load(path) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!("in-tree source: {e}");
                    problems.push(e.to_string());
                    continue;
                }
            };
            let report = check(&hints, &settings, chrono::Utc::now()).await;
            tracing::debug!("{}", report.summary());
            for obs in observations(&config.server, &report) {
                if tx.send(obs).await.is_err() {
                    return;
                }
            }
        }
        if problems.is_empty() {
            health.connected(format!("{} hints files checked", config.hints.len()));
        } else {
            health.stalled(problems.join("; "));
        }
    }
}

/// What one report tells the engine.
pub fn observations(server: &str, report: &Report) -> Vec<Observation> {
    let subject = Some(report.domain.as_str());
    let mut out = Vec::new();
    if !report.mismatches.is_empty() {
        out.push(
            Observation::new(
                SOURCE,
                server,
                ConditionId::InTreeMismatch,
                subject,
                Evidence::Assert { met: true },
            )
            .arg("differs", report.mismatches.join("; ")),
        );
    } else if report.complete() {
        out.push(Observation::new(
            SOURCE,
            server,
            ConditionId::InTreeMismatch,
            subject,
            Evidence::Assert { met: false },
        ));
    }
    if report.child_checked || report.commitment.is_expiring() {
        let expiring = report.commitment.is_expiring();
        let mut obs = Observation::new(
            SOURCE,
            server,
            ConditionId::InTreeCommitmentExpiring,
            subject,
            Evidence::Assert { met: expiring },
        );
        if expiring {
            obs = obs
                .arg("expires-at", report.commitment.expires_at())
                .arg("reason", report.commitment.describe());
        }
        out.push(obs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intree::check::Commitment;

    fn report() -> Report {
        Report {
            domain: "example.test.".into(),
            mismatches: vec![],
            commitment: Commitment::Missing,
            unreachable: vec![],
            parent_checked: true,
            child_checked: true,
        }
    }

    #[test]
    fn a_complete_clean_check_clears_and_a_partial_one_says_nothing_of_mismatches() {
        let mut r = report();
        let obs = observations("unbound", &r);
        assert_eq!(obs[0].condition, ConditionId::InTreeMismatch);
        assert_eq!(obs[0].evidence, Evidence::Assert { met: false });
        assert_eq!(obs[1].condition, ConditionId::InTreeCommitmentExpiring);
        assert_eq!(obs[1].args["expires-at"], "none");
        r.parent_checked = false;
        let obs = observations("unbound", &r);
        assert!(
            obs.iter()
                .all(|o| o.condition != ConditionId::InTreeMismatch)
        );
        r.mismatches = vec!["a".into(), "b".into()];
        let obs = observations("unbound", &r);
        assert_eq!(obs[0].args["differs"], "a; b");
        assert_eq!(obs[0].subject.as_deref(), Some("example.test."));
    }
}
