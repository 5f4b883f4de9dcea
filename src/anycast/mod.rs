//! The anycast controller: `[[anycast]]` policies over conditions, driving BGP daemons.
//!
//! ```text
//! engine step ──Anycast::apply──▶ watch(met conditions) ──▶ one controller task per driver
//!                                                              │ policy → wanted → hold-down
//!                                                              │   → intended (journal)
//!                                                              ▼
//!                                  driver: BIRD control socket, ExaBGP API process,
//!                                          gobgpd gRPC, or FRR vtysh
//! ```
//!
//! After every engine step the daemon hands the met conditions to [`Anycast::apply`]. Each
//! driver's task evaluates its policies (`announce-when`, `prepend-when`), passes the wish
//! through the hold-down (`machine`: worse at once, better at most once per hold-down),
//! records what is intended in the journal's `anycast` table, and tells the daemon only
//! when the daemon does not already have it — never repeating an unchanged state.
//!
//! * **Restart of dns-oops:** the intended state comes back from the journal, the daemon is
//!   asked what it has, and nothing is sent when they agree: no withdraw, no re-announce.
//!   (The hold-down clock starts anew with each run.)
//! * **Health:** `/metrics` has `dns_oops_anycast_driver_up{driver}` (0 while the daemon
//!   cannot be reached; logged as a warning once per outage) and
//!   `dns_oops_anycast_announced{policy}`.
//! * **Restart of the BGP daemon:** the driver notices the lost connection, reconnects with
//!   a backoff of at most 500 ms, reads the daemon's state and re-applies the intended one.
//! * **Shutdown of dns-oops** (SIGTERM): each policy with `on-shutdown = "withdraw"` (the
//!   default) is withdrawn before the daemon exits; `"keep"` leaves it as it is.
//! * **Death of dns-oops** (kill -9, crash): BIRD keeps its static protocols as they were
//!   last switched, so the prefixes stay announced while nothing watches the server. Make
//!   the unit that runs dns-oops withdraw when it dies (e.g. systemd
//!   `ExecStopPost=/usr/sbin/birdc disable "oops_*"`) — `etc/examples/bird/bird.conf`
//!   shows the static protocols, which start `disabled` so that BIRD alone announces
//!   nothing.
//! * **The `exabgp` driver** runs the other way round: ExaBGP starts dns-oops as its API
//!   process and dns-oops lives and dies with it; see `exabgp` for restarts and deaths.
//! * **The `gobgp` and `frr` drivers**: gobgpd keeps paths added over gRPC, and bgpd the
//!   `network` statements added through vtysh, after dns-oops dies; the drop-ins
//!   `etc/examples/gobgp/dns-oops-gobgp.conf` and `etc/examples/frr/dns-oops-frr.conf`
//!   remove them after an abnormal end (`ExecStopPost=`, not after a clean stop). A restart
//!   of gobgpd is noticed by the end of the HTTP/2 connection, one of bgpd by the end of an
//!   idle connection to its vty socket. See `gobgp` and `frr`.

mod bird;
mod controller;
mod driver;
mod exabgp;
mod facts;
mod frr;
mod gobgp;
mod machine;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

pub use bird::{BirdConnection, BirdDriver, Reply, ReplyLine};
pub use driver::{Driver, DriverError};
pub use exabgp::{ExabgpDriver, read_lines, route_command};
pub use facts::MetConditions;
pub use frr::FrrDriver;
pub use gobgp::GobgpDriver;
pub use machine::{Dampening, PolicyMachine, RouteState};

use crate::config::{AnycastConfig, Config, DriverConfig};
use crate::http::metrics::Metrics;
use crate::journal::{Journal, JournalError};
use crate::signal::CurrentCondition;
use controller::{Controller, depends_on};
pub use controller::{PolicyRoute, Routes};

/// How long shutdown waits for the withdrawals.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running controllers, one per driver with policies.
pub struct Anycast {
    facts: watch::Sender<MetConditions>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The policies being driven.
    policies: Vec<AnycastConfig>,
    routes: Arc<watch::Sender<Routes>>,
}

impl Anycast {
    /// Starts a controller per driver, from the conditions met now and what the journal
    /// says each policy had announced.
    pub fn start(
        config: &Config,
        journal: Arc<Journal>,
        metrics: Arc<Metrics>,
        current: &[CurrentCondition],
    ) -> Result<Anycast, JournalError> {
        let (facts, facts_rx) = watch::channel(MetConditions::new(current));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let routes = Arc::new(watch::Sender::new(Routes::new()));
        let mut driven = Vec::new();
        let records: HashMap<String, RouteState> = journal
            .anycast_records()?
            .into_iter()
            .map(|r| {
                let state = if r.announced {
                    RouteState::Announced { prepend: r.prepend }
                } else {
                    RouteState::Withdrawn
                };
                (r.policy, state)
            })
            .collect();
        let mut tasks = JoinSet::new();
        for driver in &config.drivers {
            let policies: Vec<_> = config
                .anycast
                .iter()
                .filter(|p| p.driver == driver.name())
                .map(|p| {
                    let intended = records
                        .get(&p.name)
                        .copied()
                        .unwrap_or(RouteState::Withdrawn);
                    let machine =
                        PolicyMachine::new(p.hold_down, intended).with_dampening(p.dampening);
                    (p.clone(), machine)
                })
                .collect();
            if policies.is_empty() {
                continue;
            }
            driven.extend(policies.iter().map(|(p, _)| p.clone()));
            // Everything but the driver is the same for every controller.
            let controller = |driver_name: &str| Controller {
                driver_name: driver_name.to_string(),
                driver: (),
                policies,
                journal: journal.clone(),
                metrics: metrics.clone(),
                facts: facts_rx.clone(),
                shutdown: shutdown_rx.clone(),
                routes: routes.clone(),
            };
            match driver {
                DriverConfig::Bird(c) => {
                    let driver = BirdDriver::new(c.clone());
                    tasks.spawn(controller(&c.name).with_driver(driver).run());
                }
                DriverConfig::Exabgp(c) => {
                    let driver = ExabgpDriver::stdio(c.clone());
                    tasks.spawn(controller(&c.name).with_driver(driver).run());
                }
                DriverConfig::Gobgp(c) => {
                    let driver = GobgpDriver::new(c.clone());
                    tasks.spawn(controller(&c.name).with_driver(driver).run());
                }
                DriverConfig::Frr(c) => {
                    let driver = FrrDriver::new(c.clone());
                    tasks.spawn(controller(&c.name).with_driver(driver).run());
                }
            }
        }
        Ok(Anycast {
            facts,
            shutdown,
            tasks,
            policies: driven,
            routes,
        })
    }

    /// The policies that depend on `server` (name it in `announce-when` or
    /// `prepend-when`): what `dns-oops drain` withdraws and waits for.
    pub fn dependents(&self, server: &str) -> Vec<&AnycastConfig> {
        self.policies
            .iter()
            .filter(|p| depends_on(p).any(|s| s == server))
            .collect()
    }

    /// Each policy's route, as it changes.
    pub fn route_watch(&self) -> watch::Receiver<Routes> {
        self.routes.subscribe()
    }

    /// Hands over the conditions met after an engine step; wakes the controllers only
    /// when they changed.
    pub fn apply(&self, current: &[CurrentCondition]) {
        if self.tasks.is_empty() {
            return;
        }
        let met = MetConditions::new(current);
        self.facts.send_if_modified(|old| {
            if *old == met {
                false
            } else {
                *old = met;
                true
            }
        });
    }

    /// Withdraws what is to be withdrawn on shutdown and stops the controllers.
    pub async fn shut_down(mut self) {
        self.shutdown.send_replace(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("anycast: withdrawing on shutdown took longer than {SHUTDOWN_GRACE:?}");
        }
    }
}

#[cfg(test)]
mod tests;
