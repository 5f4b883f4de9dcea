//! `dns-oops check`: one evaluation for Nagios/Icinga-style monitoring.
//!
//! Runs one round of every configured probe (with rise and fall taken as 1: one answer is
//! the truth), feeds the results through a fresh engine, evaluates `[check] critical-when`
//! and `warning-when`, prints one line and exits 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3
//! (UNKNOWN: the config is invalid or there is nothing to probe). Nothing is journalled.

use std::path::Path;
use std::process::ExitCode;

use crate::condition::ConditionId;
use crate::config::{Config, SourceConfig};
use crate::engine::{Engine, Moment, ServerModel};
use crate::signal::Evidence;
use crate::sources::probe::probe_once;

/// Monitoring-plugin states, in order of severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckState {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

impl CheckState {
    fn label(self) -> &'static str {
        match self {
            CheckState::Ok => "OK",
            CheckState::Warning => "WARNING",
            CheckState::Critical => "CRITICAL",
            CheckState::Unknown => "UNKNOWN",
        }
    }
}

pub async fn run(path: &Path) -> ExitCode {
    let (state, line) = match crate::config::load(path) {
        Ok(config) => evaluate(&config).await,
        Err(e) => (
            CheckState::Unknown,
            format!("invalid configuration: {}", first_line(&e.to_string())),
        ),
    };
    println!("DNS-OOPS {} - {line}", state.label());
    ExitCode::from(state as u8)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Probes once and evaluates the check policies; returns the state and the summary line.
pub async fn evaluate(config: &Config) -> (CheckState, String) {
    let models = config
        .servers
        .iter()
        .map(|s| ServerModel {
            name: s.name.clone(),
            zones: s.zones.clone(),
            hold: std::time::Duration::ZERO,
        })
        .collect();
    let mut engine = Engine::new(&config.node, models, 0);
    let probes: Vec<_> = config
        .sources
        .iter()
        .filter_map(|s| match s {
            SourceConfig::Probe(p) => Some(crate::daemon::probe_settings(config, p)),
            _ => None,
        })
        .collect();
    if probes.is_empty() {
        return (
            CheckState::Unknown,
            "no probe source configured: nothing to check".to_string(),
        );
    }
    let rounds = futures_util::future::join_all(probes.iter().map(probe_once)).await;
    let now = Moment::now();
    for round in rounds {
        for mut obs in round.observations() {
            if let Evidence::Sample { met, .. } = obs.evidence {
                obs.evidence = Evidence::Sample {
                    met,
                    rise: 1,
                    fall: 1,
                };
            }
            if let Err(e) = engine.observe(obs, now) {
                tracing::warn!("{e}");
            }
        }
    }
    let state = if config.check.critical_when.evaluate(&engine) {
        CheckState::Critical
    } else if config.check.warning_when.evaluate(&engine) {
        CheckState::Warning
    } else {
        CheckState::Ok
    };
    (state, summary(config, &engine))
}

/// `knot: running, 3/3 zones ready; nsd: not running | knot_zones_ready=3;;;0;3`
fn summary(config: &Config, engine: &Engine) -> String {
    let mut parts = Vec::new();
    let mut perf = Vec::new();
    for server in &config.servers {
        let running = engine.is_met(&server.name, ConditionId::ServerRunning, None);
        let mut text = format!(
            "{}: {}",
            server.name,
            if running { "running" } else { "not running" }
        );
        if !server.zones.is_empty() {
            let ready: Vec<&String> = server
                .zones
                .iter()
                .filter(|z| engine.is_met(&server.name, ConditionId::ZoneReady, Some(z)))
                .collect();
            text.push_str(&format!(
                ", {}/{} zones ready",
                ready.len(),
                server.zones.len()
            ));
            let not_ready: Vec<&str> = server
                .zones
                .iter()
                .filter(|z| !ready.contains(z))
                .map(String::as_str)
                .take(5)
                .collect();
            if !not_ready.is_empty() {
                text.push_str(&format!(" (not: {})", not_ready.join(" ")));
            }
            perf.push(format!(
                "{}_zones_ready={};;;0;{}",
                server.name,
                ready.len(),
                server.zones.len()
            ));
        }
        parts.push(text);
    }
    format!("{} | {}", parts.join("; "), perf.join(" "))
}
