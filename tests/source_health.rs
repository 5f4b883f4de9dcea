//! Source health apart from conditions: with knotd not running yet, every source says what
//! it cannot see (probe: no answer; control: no socket; knot-dbus: no bus; dnstap: no
//! connection) while the ones that work say so (notify-in listening, process waiting for
//! a pid file); a real knotd starting turns probe, control and process `connected`; a
//! kill -9 takes the probe and control back to `gone`. Shown in `/api/v1/conditions`,
//! `/metrics` and `dns-oops status`.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Knot, dns_oops_cli, free_port, http_get, knot_config_head};
use dns_oops::health::HealthState;
use dns_oops::http::api::StatusReport;

const WAIT: Duration = Duration::from_secs(20);

fn state(report: &StatusReport, kind: &str) -> Option<HealthState> {
    report
        .sources
        .iter()
        .find(|s| s.kind == kind)
        .map(|s| s.state)
}

fn detail(report: &StatusReport, kind: &str) -> String {
    report
        .sources
        .iter()
        .find(|s| s.kind == kind)
        .map(|s| s.detail.clone())
        .unwrap_or_default()
}

/// Waits until every `(source type, state)` holds; returns the report.
fn wait_states(http: u16, want: &[(&str, HealthState)]) -> StatusReport {
    let deadline = Instant::now() + WAIT;
    loop {
        let report: StatusReport =
            serde_json::from_str(&http_get(http, "/api/v1/conditions")).unwrap();
        if want
            .iter()
            .all(|(kind, s)| state(&report, kind) == Some(*s))
        {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {want:?}; the report:\n{}",
            report.to_json()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sources_say_whether_they_can_see_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut knot = Knot::new(dir.path(), &["a.test"]);
    let http = free_port();
    let notify_port = free_port();
    let socket = knot.dir.join("run/knot.sock");
    let dnstap = dir.path().join("dnstap.sock");
    let config = dir.path().join("dns-oops.toml");
    std::fs::write(
        &config,
        format!(
            "{head}[[source]]\ntype = \"control\"\nserver = \"knot\"\nprotocol = \"knot\"\n\
             socket = \"{socket}\"\ninterval = \"250ms\"\n\
             [[source]]\ntype = \"knot-dbus\"\nserver = \"knot\"\nbus = \"unix:path={nobus}\"\n\
             [[source]]\ntype = \"notify-in\"\nserver = \"knot\"\nlisten = \"127.0.0.1:{notify_port}\"\n\
             [[source]]\ntype = \"dnstap\"\nserver = \"knot\"\nlisten = \"unix:{dnstap}\"\n\
             [[channel]]\ntype = \"log\"\n",
            head = knot_config_head(dir.path(), &knot, http, true),
            socket = socket.display(),
            nobus = dir.path().join("no-bus").display(),
            dnstap = dnstap.display(),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config);

    // knotd is not running: what each source can and cannot see.
    let before = wait_states(
        http,
        &[
            ("probe", HealthState::Gone),
            ("control", HealthState::Gone),
            ("knot-dbus", HealthState::Gone),
            ("dnstap", HealthState::Gone),
            ("notify-in", HealthState::Connected),
            ("process", HealthState::Connected),
        ],
    );
    assert!(
        detail(&before, "control").contains(&socket.display().to_string()),
        "{}",
        before.to_json()
    );
    assert!(
        detail(&before, "knot-dbus").contains("no-bus"),
        "{}",
        before.to_json()
    );
    assert!(
        detail(&before, "notify-in").contains(&format!("127.0.0.1:{notify_port}")),
        "{}",
        before.to_json()
    );
    assert!(
        detail(&before, "dnstap").contains("no dnstap connection"),
        "{}",
        before.to_json()
    );
    assert!(before.sources.iter().all(|s| s.server == "knot"));
    let metrics = http_get(http, "/metrics");
    for line in [
        "dns_oops_source_state{source=\"control\",server=\"knot\",state=\"gone\"} 1",
        "dns_oops_source_state{source=\"notify-in\",server=\"knot\",state=\"connected\"} 1",
        "dns_oops_source_state{source=\"notify-in\",server=\"knot\",state=\"gone\"} 0",
    ] {
        assert!(metrics.contains(line), "no `{line}` in\n{metrics}");
    }
    let (ok, status, _) = dns_oops_cli(http, &["status"]);
    assert!(ok);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("source control (knot)") && l.contains("gone")),
        "{status}"
    );
    assert!(
        !status.contains("source notify-in"),
        "connected sources are not listed:\n{status}"
    );

    // knotd starts: the probe, the control socket and the process are seen.
    knot.start();
    let running = wait_states(
        http,
        &[
            ("probe", HealthState::Connected),
            ("control", HealthState::Connected),
            ("process", HealthState::Connected),
            ("knot-dbus", HealthState::Gone),
        ],
    );
    assert!(
        detail(&running, "process").starts_with("watching process"),
        "{}",
        running.to_json()
    );
    daemon.wait_for("zone-ready a.test.", WAIT, |s| {
        s.condition == dns_oops::condition::ConditionId::ZoneReady
    });

    // kill -9: the probe gets no answer and the control socket is dead.
    knot.kill9();
    knot.reap();
    wait_states(
        http,
        &[("probe", HealthState::Gone), ("control", HealthState::Gone)],
    );
}
