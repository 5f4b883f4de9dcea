//! The spine end to end against a real knotd (Debian package `knot`): probe and process
//! sources, engine, journal, log channel, and a restart of dns-oops.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, Knot, brief};
use dns_oops::condition::ConditionId::*;
use dns_oops::signal::{Signal, SignalState};

const ZONES: [&str; 3] = ["a.test", "b.test", "c.test"];
const LONG: Duration = Duration::from_secs(15);

fn config(dir: &Path, knot: &Knot) -> std::path::PathBuf {
    let http = common::free_port();
    let text = format!(
        r#"{head}[[channel]]
type = "log"
"#,
        head = common::knot_config_head(dir, knot, http, true),
    );
    let path = dir.join("dns-oops.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The HTTP API address from the config file.
fn http_url(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let listen = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .unwrap();
    format!("http://{}", listen.trim_matches('"'))
}

/// Runs a dns-oops subcommand; returns its exit code and stdout.
fn run(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dns-oops"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn is(s: &Signal, condition: dns_oops::condition::ConditionId, state: SignalState) -> bool {
    s.condition == condition && s.state == state
}

/// Waits until knot is up and every zone is ready; returns the signals up to then.
fn wait_all_ready(daemon: &mut Daemon) -> Vec<Signal> {
    let from = daemon.seen.len();
    daemon.wait_for("all-zones-ready met", LONG, |s| {
        is(s, AllZonesReady, SignalState::Met)
    });
    daemon.seen[from..].to_vec()
}

#[test]
fn knot_signal_sequence_with_serial_bump_and_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut knot = Knot::new(dir.path(), &ZONES);
    knot.start();
    let config = config(dir.path(), &knot);
    let mut daemon = Daemon::start(&config);

    let startup = wait_all_ready(&mut daemon);
    let names: Vec<String> = startup.iter().map(brief).collect();
    assert_eq!(names[0], "server-running - met", "{names:?}");
    let ready: Vec<&Signal> = startup
        .iter()
        .filter(|s| is(s, ZoneReady, SignalState::Met))
        .collect();
    let mut subjects: Vec<&str> = ready
        .iter()
        .map(|s| s.subject.as_deref().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["a.test.", "b.test.", "c.test."]);
    assert!(ready.iter().all(|s| s.args["serial"] == 1), "{names:?}");
    assert_eq!(names.last().unwrap(), "all-zones-ready - met");
    assert_eq!(startup.last().unwrap().args["count"], 3);
    assert_eq!(startup.len(), 5, "nothing else happens at start: {names:?}");
    // seq counts up by one.
    for pair in startup.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    assert!(startup.iter().all(|s| s.node == "it" && s.server == "knot"));

    // The clients see the same state.
    let url = http_url(&config);
    let (code, status) = run(&["status", "--url", &url]);
    assert_eq!(code, 0, "{status}");
    for needle in ["all-zones-ready", "zone-ready", "c.test.", "server-running"] {
        assert!(
            status.contains(needle),
            "`{needle}` missing from status:\n{status}"
        );
    }
    let (code, json) = run(&["status", "--url", &url, "--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["conditions"].as_array().unwrap().len(), 5, "{json}");
    let (code, line) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("DNS-OOPS OK - knot: running, 3/3 zones ready"),
        "{line}"
    );

    // A serial bump and reload is zone-updated with old and new serial.
    knot.write_zone("b.test", 2);
    knot.knotc(&["zone-reload", "b.test"]);
    let (_, updated) = daemon.wait_for("zone-updated b.test.", LONG, |s| {
        is(s, ZoneUpdated, SignalState::Event)
    });
    assert_eq!(updated.subject.as_deref(), Some("b.test."));
    assert_eq!(updated.args["serial"], 2);
    assert_eq!(updated.args["previous-serial"], 1);
    assert_eq!(updated.source, "probe");

    // kill -9: server-crashed within 100 ms of the kill, and all-zones-ready cleared.
    let killed_at = knot.kill9();
    let (crash_seen, crash) = daemon.wait_for("server-crashed met", LONG, |s| {
        is(s, ServerCrashed, SignalState::Met)
    });
    let latency = crash_seen - killed_at;
    eprintln!("kill -9 → server-crashed on stdout: {latency:?}");
    assert!(
        latency < Duration::from_millis(100),
        "server-crashed took {latency:?}"
    );
    assert_eq!(crash.source, "process");
    assert_eq!(crash.args["exit-status"], "signal 9 (SIGKILL)");
    let (_, cleared) = daemon.wait_for("all-zones-ready cleared", Duration::from_secs(1), |s| {
        is(s, AllZonesReady, SignalState::Cleared)
    });
    assert!(
        cleared.seq <= crash.seq + 5,
        "cleared in the same step as the crash"
    );
    knot.reap();
    let (code, line) = run(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("DNS-OOPS CRITICAL - knot: not running, 0/3 zones ready"),
        "{line}"
    );

    // Back up: running again clears the crash, zones come back.
    knot.start();
    let back = wait_all_ready(&mut daemon);
    let names: Vec<String> = back.iter().map(brief).collect();
    assert!(
        names.contains(&"server-crashed - cleared".to_string()),
        "{names:?}"
    );

    // A graceful stop (SIGTERM: knotd removes its pid file) is a stop, not a crash.
    let pid = knot.child.as_ref().unwrap().id();
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let (_, stop) = daemon.wait_for("server-stopping met", LONG, |s| {
        is(s, ServerStopping, SignalState::Met)
    });
    assert_eq!(stop.source, "process");
    knot.reap();
    let after = daemon.drain(Duration::from_millis(800));
    assert!(
        !after.iter().any(|s| s.condition == ServerCrashed),
        "a graceful stop was reported as a crash: {:?}",
        after.iter().map(brief).collect::<Vec<_>>()
    );
}

#[test]
fn restart_continues_seq_without_duplicates_and_reports_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut knot = Knot::new(dir.path(), &ZONES);
    knot.start();
    let config = config(dir.path(), &knot);
    let mut daemon = Daemon::start(&config);
    let startup = wait_all_ready(&mut daemon);
    let last = startup.last().unwrap().seq;
    // Let the log channel write its cursor, then kill -9 dns-oops.
    assert!(daemon.drain(Duration::from_millis(600)).is_empty());
    daemon.kill9();

    // While dns-oops is down, a zone gets a new serial.
    knot.write_zone("a.test", 5);
    knot.knotc(&["zone-reload", "a.test"]);
    std::thread::sleep(Duration::from_millis(300));

    let mut daemon = Daemon::start(&config);
    let (_, first) = daemon.wait_for("zone-updated a.test.", LONG, |_| true);
    assert_eq!(brief(&first), "zone-updated a.test. event");
    assert_eq!(first.seq, last + 1, "seq continues across the restart");
    assert_eq!(first.args["serial"], 5);
    assert_eq!(first.args["previous-serial"], 1);
    let rest = daemon.drain(Duration::from_millis(1500));
    assert!(
        rest.is_empty(),
        "nothing else changed, so nothing else is signalled: {:?}",
        rest.iter().map(brief).collect::<Vec<_>>()
    );

    // And the numbering goes on.
    knot.kill9();
    let (_, crash) = daemon.wait_for("server-crashed met", LONG, |s| {
        is(s, ServerCrashed, SignalState::Met)
    });
    assert_eq!(crash.seq, last + 2);
    knot.reap();
}
