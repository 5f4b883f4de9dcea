//! Unbound over its control socket in the clear (`control-interface: /path` in
//! `remote-control:`): the line `UBCT1 status`, answered in text.
//!
//! ```text
//! version: 1.17.1
//! verbosity: 1
//! threads: 1
//! modules: 1 [ iterator ]
//! uptime: 5 seconds
//! options: reuseport control(namedpipe)
//! unbound (pid 14500) is running...
//! ```
//!
//! A `… is running...` line is `server-running` met, with `version` and `uptime` when
//! given. Unbound is a resolver: it has no zones to report here.

use std::path::Path;
use std::time::Duration;

use super::{ControlError, Reading, assert, text_command};
use crate::condition::ConditionId;

/// What `status` says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnboundStatus {
    pub running: bool,
    pub version: Option<String>,
    pub uptime: Option<u64>,
}

/// Reads a `status` answer; lines it does not know are skipped.
pub fn status(text: &str) -> UnboundStatus {
    let mut out = UnboundStatus::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("unbound (pid ") && line.ends_with("is running...") {
            out.running = true;
        } else if let Some(version) = line.strip_prefix("version:") {
            out.version = Some(version.trim().to_string()).filter(|v| !v.is_empty());
        } else if let Some(uptime) = line.strip_prefix("uptime:") {
            out.uptime = uptime
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
        }
    }
    out
}

/// One poll.
pub async fn poll(socket: &Path, timeout: Duration, server: &str) -> Reading {
    match text_command(socket, "UBCT1 status\n", timeout).await {
        Ok(text) => {
            let status = status(&text);
            if !status.running {
                let first = text.lines().next().unwrap_or("").trim();
                return Reading::Failed(ControlError::Refused(format!(
                    "status did not say the server is running: `{}`",
                    first.chars().take(200).collect::<String>()
                )));
            }
            let mut running = assert(server, ConditionId::ServerRunning, None, true);
            if let Some(version) = status.version {
                running = running.arg("version", version);
            }
            Reading::Answered(vec![running])
        }
        Err(e) => Reading::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status() {
        let s = status(
            "version: 1.17.1\nverbosity: 1\nthreads: 1\nmodules: 1 [ iterator ]\nuptime: 5 seconds\noptions: reuseport control(namedpipe)\nunbound (pid 14500) is running...\n",
        );
        assert!(s.running);
        assert_eq!(s.version.as_deref(), Some("1.17.1"));
        assert_eq!(s.uptime, Some(5));
        assert!(!status("error unknown command 'x'\n").running);
        assert!(!status("").running);
    }
}
