//! The controller of one driver: evaluates its policies after every engine step, keeps
//! the journal's record of what is announced, and tells the daemon when what it has
//! differs from what is intended — reconnecting with backoff when it cannot be reached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::driver::{Driver, DriverError};
use super::facts::MetConditions;
use super::machine::{PolicyMachine, RouteState};
use crate::config::{AnycastConfig, OnShutdown};
use crate::http::metrics::Metrics;
use crate::journal::{AnycastRecord, Journal};

/// First wait before reconnecting; doubled up to [`MAX_BACKOFF`]. Both are short so that
/// a BGP daemon that restarts is re-told the state well within a second of its return.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// The policies of one driver and the driver.
pub(super) struct Controller<D> {
    pub driver_name: String,
    pub driver: D,
    pub policies: Vec<(AnycastConfig, PolicyMachine)>,
    pub journal: Arc<Journal>,
    /// Where reachability and the announced state are reported (`/metrics`).
    pub metrics: Arc<Metrics>,
    pub facts: watch::Receiver<MetConditions>,
    pub shutdown: watch::Receiver<bool>,
    /// Where each policy's intended state and what the daemon has are published (what
    /// `dns-oops drain` waits on).
    pub routes: Arc<watch::Sender<Routes>>,
}

/// Each policy's route, by policy name.
pub type Routes = BTreeMap<String, PolicyRoute>;

/// One policy's route as the controller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRoute {
    /// What dns-oops wants announced.
    pub intended: RouteState,
    /// What the BGP daemon has, when known (`None`: not reachable, or not told yet).
    pub in_daemon: Option<RouteState>,
}

/// What a policy asks for, given the conditions met now.
pub(super) fn wanted(policy: &AnycastConfig, facts: &MetConditions) -> RouteState {
    if drained_by(policy, facts).is_some() || !policy.announce_when.evaluate(facts) {
        RouteState::Withdrawn
    } else if policy
        .prepend_when
        .as_ref()
        .is_some_and(|p| p.evaluate(facts))
    {
        RouteState::Announced {
            prepend: policy.prepend,
        }
    } else {
        RouteState::Announced { prepend: 0 }
    }
}

impl Controller<()> {
    /// The same controller with its driver.
    pub fn with_driver<D: Driver>(self, driver: D) -> Controller<D> {
        Controller {
            driver_name: self.driver_name,
            driver,
            policies: self.policies,
            journal: self.journal,
            metrics: self.metrics,
            facts: self.facts,
            shutdown: self.shutdown,
            routes: self.routes,
        }
    }
}

/// The first drained server that `policy` depends on (names in `announce-when` or
/// `prepend-when`).
pub(super) fn drained_by<'a>(policy: &'a AnycastConfig, facts: &MetConditions) -> Option<&'a str> {
    depends_on(policy).find(|server| facts.is_drained(server))
}

/// The servers `policy` names.
pub(super) fn depends_on(policy: &AnycastConfig) -> impl Iterator<Item = &str> {
    policy
        .announce_when
        .servers()
        .chain(policy.prepend_when.iter().flat_map(|p| p.servers()))
}

impl<D: Driver> Controller<D> {
    pub async fn run(mut self) {
        self.metrics.anycast_driver_up(&self.driver_name, false);
        for (policy, machine) in &self.policies {
            self.metrics
                .anycast_announced(&policy.name, machine.intended() != RouteState::Withdrawn);
        }
        let mut connected = false;
        let mut backoff = MIN_BACKOFF;
        let mut retry_at = Instant::now();
        let mut down_since: Option<Instant> = None;
        loop {
            if !connected && Instant::now() >= retry_at {
                match self.connect().await {
                    Ok(()) => {
                        // The backoff is reset when the connection is lost, not here: a
                        // daemon that takes connections but fails commands keeps backing off.
                        connected = true;
                        if let Some(since) = down_since.take() {
                            tracing::info!(
                                driver = self.driver_name,
                                "the BGP daemon is back after {:?}; applying the current state",
                                since.elapsed()
                            );
                        }
                    }
                    Err(e) => {
                        if down_since.is_none() {
                            tracing::warn!(
                                driver = self.driver_name,
                                "{e}; retrying every {MAX_BACKOFF:?} at most, routes are applied when it is back"
                            );
                            down_since = Some(Instant::now());
                        } else {
                            tracing::debug!(driver = self.driver_name, "{e}");
                        }
                        retry_at = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            self.metrics.anycast_driver_up(&self.driver_name, connected);
            let facts = self.facts.borrow_and_update().clone();
            let mut deadline: Option<Instant> = None;
            for index in 0..self.policies.len() {
                let (policy, machine) = &mut self.policies[index];
                let want = wanted(policy, &facts);
                let now = Instant::now();
                let flap = drained_by(policy, &facts).is_none();
                if let Some(new) = machine.want(want, now.into_std(), flap) {
                    tracing::info!(
                        driver = self.driver_name,
                        policy = policy.name,
                        "{new}: {}",
                        prefixes(policy)
                    );
                    record(&self.journal, policy, new);
                    self.metrics
                        .anycast_announced(&policy.name, new != RouteState::Withdrawn);
                }
                if let Some(at) = machine.deadline(want) {
                    let at = Instant::from_std(at);
                    deadline = Some(deadline.map_or(at, |d| d.min(at)));
                }
                if connected && !self.send(index).await {
                    // Connected, yet the command failed: back off, so that a daemon that
                    // accepts connections but does not answer is not hammered.
                    connected = false;
                    down_since.get_or_insert_with(Instant::now);
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            self.publish();
            let driver = &mut self.driver;
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => break,
                changed = self.facts.changed() => if changed.is_err() { break },
                () = sleep_until(deadline) => {}
                e = driver.lost(), if connected => {
                    tracing::warn!(driver = self.driver_name, "{e}; reconnecting");
                    connected = false;
                    down_since = Some(Instant::now());
                    retry_at = Instant::now();
                    backoff = MIN_BACKOFF;
                }
                () = tokio::time::sleep_until(retry_at), if !connected => {}
            }
        }
        self.shut_down(connected).await;
        self.publish();
    }

    /// Publishes every policy's route where `drain` can see it, when it changed.
    fn publish(&self) {
        self.routes.send_if_modified(|routes| {
            let mut changed = false;
            for (policy, machine) in &self.policies {
                let route = PolicyRoute {
                    intended: machine.intended(),
                    in_daemon: machine.in_daemon,
                };
                if routes.get(&policy.name) != Some(&route) {
                    routes.insert(policy.name.clone(), route);
                    changed = true;
                }
            }
            changed
        });
    }

    /// Connects and reads what the daemon has for every policy.
    async fn connect(&mut self) -> Result<(), DriverError> {
        self.driver.connect().await?;
        for (policy, machine) in &mut self.policies {
            machine.in_daemon = match self.driver.reported(policy).await {
                Ok(state) => state,
                Err(DriverError::Refused(e)) => {
                    tracing::warn!(driver = self.driver_name, policy = policy.name, "{e}");
                    None
                }
                Err(e) => return Err(e),
            };
            if machine.in_daemon == Some(machine.intended()) {
                tracing::info!(
                    driver = self.driver_name,
                    policy = policy.name,
                    "the daemon already has the route {}",
                    machine.intended()
                );
            }
        }
        Ok(())
    }

    /// Tells the daemon policy `index`'s intended state if it does not have it; false when
    /// the daemon cannot be reached.
    async fn send(&mut self, index: usize) -> bool {
        let (policy, machine) = &mut self.policies[index];
        let Some(to) = machine.to_send() else {
            return true;
        };
        match self.driver.apply(policy, to).await {
            Ok(()) => {
                tracing::info!(
                    driver = self.driver_name,
                    policy = policy.name,
                    "the daemon now has the route {to}"
                );
                machine.in_daemon = Some(to);
                true
            }
            Err(DriverError::Refused(e)) => {
                tracing::error!(driver = self.driver_name, policy = policy.name, "{e}");
                machine.in_daemon = None;
                true
            }
            Err(e @ DriverError::Unreachable(_)) => {
                tracing::warn!(driver = self.driver_name, policy = policy.name, "{e}");
                for (_, machine) in &mut self.policies {
                    machine.in_daemon = None;
                }
                false
            }
        }
    }

    /// Withdraws what `on-shutdown = "withdraw"` asks for.
    async fn shut_down(&mut self, mut connected: bool) {
        let now = Instant::now().into_std();
        let mut any = false;
        for (policy, machine) in &mut self.policies {
            if policy.on_shutdown == OnShutdown::Withdraw
                && machine.want(RouteState::Withdrawn, now, false).is_some()
            {
                record(&self.journal, policy, RouteState::Withdrawn);
                self.metrics.anycast_announced(&policy.name, false);
                any = true;
            }
        }
        if !any {
            return;
        }
        if !connected {
            connected = self.driver.connect().await.is_ok();
        }
        if !connected {
            tracing::warn!(
                driver = self.driver_name,
                "cannot withdraw on shutdown: the BGP daemon is unreachable"
            );
            return;
        }
        for index in 0..self.policies.len() {
            if self.policies[index].0.on_shutdown == OnShutdown::Withdraw && !self.send(index).await
            {
                return;
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn prefixes(policy: &AnycastConfig) -> String {
    policy
        .prefixes
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn record(journal: &Journal, policy: &AnycastConfig, state: RouteState) {
    let (announced, prepend) = match state {
        RouteState::Withdrawn => (false, 0),
        RouteState::Announced { prepend } => (true, prepend),
    };
    let record = AnycastRecord {
        policy: policy.name.clone(),
        announced,
        prepend,
        changed: chrono::Utc::now(),
    };
    if let Err(e) = journal.set_anycast_record(&record) {
        tracing::error!(
            policy = policy.name,
            "cannot record the anycast state in the journal: {e}"
        );
    }
}
