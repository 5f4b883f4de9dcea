//! `dns-oops drain` and `undrain`: take a server out of anycast service before maintenance,
//! and put it back.
//!
//! ```text
//! dns-oops drain knot ──POST /api/v1/drain──▶ daemon: engine.drain → server-stopping met
//!                                              (journal, channels)  → anycast: every policy
//!                                              naming knot withdrawn → BGP daemon confirms
//!                       ◀── 200 + report ──── + the policies' largest drain-grace
//! ```
//!
//! The drain is state, not a moment: `server-stopping` (source `drain`, argument `reason`)
//! is kept in the journal and holds across restarts of dns-oops and of the server until
//! `dns-oops undrain`. While it holds, every `[[anycast]]` policy that names the server in
//! `announce-when` or `prepend-when` is withdrawn, whatever else its expression says.
//!
//! `drain` returns (exit 0) once the BGP daemon of every such policy has confirmed the
//! withdraw and the largest `drain-grace` of those policies has passed — so it can be the
//! DNS server's `ExecStop=` (`etc/examples/systemd/`). When a daemon does not confirm within
//! `--timeout`, it exits 1 naming the policies still announced; the drain itself stays.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::anycast::{Anycast, PolicyRoute, RouteState, Routes};
use crate::signal::Signal;

/// The reason of a drain when none is given.
pub const DEFAULT_REASON: &str = "drain";
/// How long the daemon waits for the withdraws when the request does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait a request may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The body of `POST /api/v1/drain` and `POST /api/v1/undrain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    pub server: String,
    /// The `reason` argument of `server-stopping` (drain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long to wait for the BGP daemons, in milliseconds (drain only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// The answer to a drain or an undrain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainReport {
    pub server: String,
    /// Whether the server is drained now.
    pub drained: bool,
    pub reason: Option<String>,
    /// The policies that depend on the server.
    pub policies: Vec<String>,
    /// How long the BGP daemons took to confirm the withdraws, in milliseconds.
    pub withdrawn_after_ms: Option<u64>,
    /// The grace waited after that, in milliseconds.
    pub grace_ms: u64,
}

/// Why a drain or undrain failed; the HTTP API answers 404 for an unknown server and 504
/// for withdraws not confirmed in time.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DrainError {
    #[error("no server `{server}` in the configuration; configured servers: {known}")]
    UnknownServer { server: String, known: String },
    #[error(
        "`{server}` is drained (server-stopping is met), but after {waited:?} the BGP daemon \
         has not confirmed the withdraw of: {pending} — check the driver's log and \
         dns_oops_anycast_driver_up in /metrics; the drain stays until `dns-oops undrain {server}`"
    )]
    NotWithdrawn {
        server: String,
        waited: Duration,
        pending: String,
    },
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// A request from the HTTP API to the task that owns the engine.
#[derive(Debug)]
pub enum Control {
    Drain {
        server: String,
        reason: String,
        wait: Duration,
        reply: oneshot::Sender<Result<DrainReport, DrainError>>,
    },
    Undrain {
        server: String,
        reply: oneshot::Sender<Result<DrainReport, DrainError>>,
    },
    /// Observations a command reported through the API (`dns-oops nsd-verify`, see
    /// [`crate::nsd_verify`]), applied in one engine step; the answer is the signals they
    /// caused.
    Observe {
        observations: Vec<crate::signal::Observation>,
        reply: oneshot::Sender<Result<Vec<Signal>, crate::engine::ObservationError>>,
    },
}

/// What the daemon waits for after it raised a drain: the withdraws of `policies`, then
/// the grace. Built while the engine task holds the controllers, run apart from it.
pub struct DrainWait {
    server: String,
    reason: String,
    policies: Vec<String>,
    grace: Duration,
    routes: watch::Receiver<Routes>,
}

impl DrainWait {
    pub fn new(anycast: &Anycast, server: &str, reason: &str) -> DrainWait {
        let dependents = anycast.dependents(server);
        DrainWait {
            server: server.to_string(),
            reason: reason.to_string(),
            policies: dependents.iter().map(|p| p.name.clone()).collect(),
            grace: dependents
                .iter()
                .map(|p| p.drain_grace)
                .max()
                .unwrap_or_default(),
            routes: anycast.route_watch(),
        }
    }

    /// Waits up to `wait` for the withdraws, then the grace.
    pub async fn run(mut self, wait: Duration) -> Result<DrainReport, DrainError> {
        let started = tokio::time::Instant::now();
        let policies = self.policies.clone();
        let all_withdrawn = |routes: &Routes| {
            policies
                .iter()
                .all(|name| routes.get(name).is_some_and(withdrawn))
        };
        let confirmed = tokio::time::timeout(wait, self.routes.wait_for(all_withdrawn))
            .await
            .map(|r| r.map(drop));
        match confirmed {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(DrainError::ShuttingDown),
            Err(_) => {
                let routes = self.routes.borrow();
                let pending: Vec<String> = self
                    .policies
                    .iter()
                    .filter(|name| !routes.get(*name).is_some_and(withdrawn))
                    .cloned()
                    .collect();
                return Err(DrainError::NotWithdrawn {
                    server: self.server,
                    waited: wait,
                    pending: pending.join(", "),
                });
            }
        }
        let withdrawn_after = started.elapsed();
        tokio::time::sleep(self.grace).await;
        Ok(DrainReport {
            server: self.server,
            drained: true,
            reason: Some(self.reason),
            policies: self.policies,
            withdrawn_after_ms: Some(withdrawn_after.as_millis() as u64),
            grace_ms: self.grace.as_millis() as u64,
        })
    }
}

/// Whether the BGP daemon has confirmed that the route is withdrawn.
fn withdrawn(route: &PolicyRoute) -> bool {
    route.in_daemon == Some(RouteState::Withdrawn)
}
