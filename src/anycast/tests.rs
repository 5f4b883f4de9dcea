//! The controller against a fake driver: reconciliation on start, re-application after a
//! lost connection, no repeated commands, withdraw on shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::controller::Controller;
use super::*;
use crate::condition::ConditionId;
use crate::config::AnycastConfig;
use crate::journal::AnycastRecord;

/// What the fake daemon has, and every command it was sent.
#[derive(Default)]
struct FakeDaemon {
    reachable: bool,
    routes: HashMap<String, RouteState>,
    commands: Vec<String>,
}

struct FakeDriver {
    daemon: Arc<Mutex<FakeDaemon>>,
    lost: Arc<Notify>,
}

impl Driver for FakeDriver {
    async fn connect(&mut self) -> Result<(), DriverError> {
        if self.daemon.lock().unwrap().reachable {
            Ok(())
        } else {
            Err(DriverError::Unreachable("down".into()))
        }
    }

    async fn reported(
        &mut self,
        policy: &AnycastConfig,
    ) -> Result<Option<RouteState>, DriverError> {
        let daemon = self.daemon.lock().unwrap();
        Ok(Some(
            daemon
                .routes
                .get(&policy.name)
                .copied()
                .unwrap_or(RouteState::Withdrawn),
        ))
    }

    async fn apply(&mut self, policy: &AnycastConfig, to: RouteState) -> Result<(), DriverError> {
        let mut daemon = self.daemon.lock().unwrap();
        if !daemon.reachable {
            return Err(DriverError::Unreachable("down".into()));
        }
        daemon.commands.push(format!("{} {to}", policy.name));
        daemon.routes.insert(policy.name.clone(), to);
        Ok(())
    }

    async fn lost(&mut self) -> DriverError {
        self.lost.notified().await;
        DriverError::Unreachable("lost".into())
    }
}

fn policy() -> AnycastConfig {
    let text = r#"
[[server]]
name = "knot"
address = "127.0.0.1:5301"
[[driver]]
type = "bird"
[[anycast]]
name = "dns"
prefixes = ["192.0.2.53/32"]
announce-when = "server-running(knot)"
hold-down = "0s"
"#;
    crate::config::parse(text, Path::new("t.toml"))
        .unwrap()
        .anycast
        .remove(0)
}

fn running() -> MetConditions {
    MetConditions::new(&[CurrentCondition {
        server: "knot".into(),
        condition: ConditionId::ServerRunning,
        subject: None,
        since: chrono::Utc::now(),
        args: Default::default(),
        source: "test".into(),
        seq: 1,
    }])
}

struct Harness {
    daemon: Arc<Mutex<FakeDaemon>>,
    lost: Arc<Notify>,
    facts: watch::Sender<MetConditions>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    journal: Arc<Journal>,
    routes: watch::Receiver<Routes>,
}

fn start(journal: Arc<Journal>, daemon: FakeDaemon, facts: MetConditions) -> Harness {
    let daemon = Arc::new(Mutex::new(daemon));
    let lost = Arc::new(Notify::new());
    let (facts, facts_rx) = watch::channel(facts);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let intended = journal
        .anycast_records()
        .unwrap()
        .first()
        .map(|r| {
            if r.announced {
                RouteState::Announced { prepend: r.prepend }
            } else {
                RouteState::Withdrawn
            }
        })
        .unwrap_or(RouteState::Withdrawn);
    let policy = policy();
    let routes = Arc::new(watch::Sender::new(Routes::new()));
    let routes_rx = routes.subscribe();
    let controller = Controller {
        driver_name: "fake".into(),
        driver: FakeDriver {
            daemon: daemon.clone(),
            lost: lost.clone(),
        },
        policies: vec![(
            policy.clone(),
            PolicyMachine::new(policy.hold_down, intended),
        )],
        journal: journal.clone(),
        metrics: Arc::new(crate::http::metrics::Metrics::new()),
        facts: facts_rx,
        shutdown: shutdown_rx,
        routes,
    };
    Harness {
        daemon,
        lost,
        facts,
        shutdown,
        task: tokio::spawn(controller.run()),
        journal,
        routes: routes_rx,
    }
}

impl Harness {
    fn commands(&self) -> Vec<String> {
        self.daemon.lock().unwrap().commands.clone()
    }

    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    async fn stop(self) -> Vec<String> {
        self.shutdown.send_replace(true);
        let commands = self.daemon.clone();
        self.task.await.unwrap();
        commands.lock().unwrap().commands.clone()
    }
}

const ANNOUNCED: RouteState = RouteState::Announced { prepend: 0 };

#[tokio::test]
async fn announces_once_withdraws_once_and_records_it() {
    let journal = Arc::new(Journal::open_in_memory().unwrap());
    let daemon = FakeDaemon {
        reachable: true,
        ..Default::default()
    };
    let h = start(journal, daemon, MetConditions::default());
    h.settle().await;
    assert!(h.commands().is_empty(), "{:?}", h.commands());
    h.facts.send_replace(running());
    h.settle().await;
    h.facts.send_replace(running());
    h.settle().await;
    assert_eq!(h.commands(), ["dns announced"]);
    let record = &h.journal.anycast_records().unwrap()[0];
    assert!(record.announced);
    h.facts.send_replace(MetConditions::default());
    h.settle().await;
    assert_eq!(h.commands(), ["dns announced", "dns withdrawn"]);
    assert!(!h.journal.anycast_records().unwrap()[0].announced);
}

#[tokio::test]
async fn a_restart_that_finds_the_route_sends_nothing_and_keep_keeps_it() {
    let journal = Arc::new(Journal::open_in_memory().unwrap());
    journal
        .set_anycast_record(&AnycastRecord {
            policy: "dns".into(),
            announced: true,
            prepend: 0,
            changed: chrono::Utc::now(),
        })
        .unwrap();
    let mut daemon = FakeDaemon {
        reachable: true,
        ..Default::default()
    };
    daemon.routes.insert("dns".into(), ANNOUNCED);
    let h = start(journal, daemon, running());
    h.settle().await;
    assert!(h.commands().is_empty(), "{:?}", h.commands());
    // on-shutdown = "withdraw" (the default).
    assert_eq!(h.stop().await, ["dns withdrawn"]);
}

#[tokio::test]
async fn a_daemon_that_restarts_is_told_again() {
    let journal = Arc::new(Journal::open_in_memory().unwrap());
    let daemon = FakeDaemon {
        reachable: true,
        ..Default::default()
    };
    let h = start(journal, daemon, running());
    h.settle().await;
    assert_eq!(h.commands(), ["dns announced"]);
    // The daemon goes away and comes back without the route.
    {
        let mut daemon = h.daemon.lock().unwrap();
        daemon.reachable = false;
        daemon.routes.clear();
    }
    h.lost.notify_one();
    h.settle().await;
    h.daemon.lock().unwrap().reachable = true;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.commands(), ["dns announced", "dns announced"]);
}

#[tokio::test]
async fn a_change_while_unreachable_is_applied_when_the_daemon_is_back() {
    let journal = Arc::new(Journal::open_in_memory().unwrap());
    let h = start(journal, FakeDaemon::default(), MetConditions::default());
    h.settle().await;
    h.facts.send_replace(running());
    h.settle().await;
    assert!(h.commands().is_empty());
    // Recorded as intended even though the daemon could not be told.
    assert!(h.journal.anycast_records().unwrap()[0].announced);
    h.daemon.lock().unwrap().reachable = true;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(h.commands(), ["dns announced"]);
}

#[test]
fn the_journal_keeps_the_announced_state_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let record = AnycastRecord {
        policy: "dns".into(),
        announced: true,
        prepend: 2,
        changed: chrono::Utc::now(),
    };
    Journal::open(&path)
        .unwrap()
        .set_anycast_record(&record)
        .unwrap();
    let reopened = Journal::open(&path).unwrap();
    let read = reopened.anycast_records().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(
        (read[0].policy.as_str(), read[0].announced, read[0].prepend),
        ("dns", true, 2)
    );
    // Microseconds survive: the time is written as RFC 3339 with six digits.
    assert!((read[0].changed - record.changed).num_milliseconds().abs() < 1);
}

/// `running()` plus `server-stopping` raised by `dns-oops drain`.
fn running_but_drained() -> MetConditions {
    let row = |condition, source: &str| CurrentCondition {
        server: "knot".into(),
        condition,
        subject: None,
        since: chrono::Utc::now(),
        args: Default::default(),
        source: source.into(),
        seq: 1,
    };
    MetConditions::new(&[
        row(ConditionId::ServerRunning, "probe"),
        row(ConditionId::ServerStopping, crate::engine::DRAIN_SOURCE),
    ])
}

#[tokio::test]
async fn a_drained_server_withdraws_its_policies_and_says_when_the_daemon_has_it() {
    let journal = Arc::new(Journal::open_in_memory().unwrap());
    let daemon = FakeDaemon {
        reachable: true,
        ..Default::default()
    };
    let mut h = start(journal, daemon, running());
    let announced = |r: &Routes| r.get("dns").is_some_and(|r| r.in_daemon == Some(ANNOUNCED));
    h.routes.wait_for(announced).await.unwrap();
    // The policy itself still holds (the server runs); the drain alone withdraws it.
    h.facts.send_replace(running_but_drained());
    let withdrawn = |r: &Routes| {
        r.get("dns").is_some_and(|r| {
            r.intended == RouteState::Withdrawn && r.in_daemon == Some(RouteState::Withdrawn)
        })
    };
    h.routes.wait_for(withdrawn).await.unwrap();
    assert_eq!(h.commands(), ["dns announced", "dns withdrawn"]);
    // Undrained: announced again.
    h.facts.send_replace(running());
    h.routes.wait_for(announced).await.unwrap();
    assert_eq!(
        h.commands(),
        ["dns announced", "dns withdrawn", "dns announced"]
    );
}

#[test]
fn only_a_drain_counts_as_drained() {
    let mut rows = vec![CurrentCondition {
        server: "knot".into(),
        condition: ConditionId::ServerStopping,
        subject: None,
        since: chrono::Utc::now(),
        args: Default::default(),
        source: "knot-dbus".into(),
        seq: 1,
    }];
    assert!(!MetConditions::new(&rows).is_drained("knot"));
    rows[0].source = crate::engine::DRAIN_SOURCE.into();
    let facts = MetConditions::new(&rows);
    assert!(facts.is_drained("knot"));
    assert!(!facts.is_drained("nsd"));
    // A policy that names the server in `prepend-when` only depends on it too.
    let text = r#"
[[server]]
name = "knot"
address = "127.0.0.1:5301"
[[server]]
name = "nsd"
address = "127.0.0.1:5302"
[[driver]]
type = "bird"
[[anycast]]
name = "dns"
prefixes = ["192.0.2.53/32"]
announce-when = "server-running(nsd)"
prepend-when = "server-crashed(knot)"
prepend = 2
"#;
    let policy = crate::config::parse(text, Path::new("t.toml"))
        .unwrap()
        .anycast
        .remove(0);
    assert_eq!(policy.drain_grace, Duration::from_secs(5));
    assert_eq!(controller::drained_by(&policy, &facts), Some("knot"));
    assert_eq!(controller::wanted(&policy, &facts), RouteState::Withdrawn);
}
